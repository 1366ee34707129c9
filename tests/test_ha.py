"""HA control plane and registration data path against their formulas.

* keepalived track_script: the first failing check comes a uniform phase after the fault, FAULT
  after ``fall`` failures: detection ∈ ((fall−1)·interval, fall·interval] (+ exec time); the
  priority-0 advert then lets the backup take over after exactly its Skew_Time.
* Interface down: FAULT at once, no advert reaches the peer: takeover after MDI − phase.
* Async replication that holds each update D seconds on the sender (``send_delay``): a crash loses
  the saves of the last D seconds, λ·D on average with refreshes at rate λ = N/R; an update that
  already left (the ``lag`` after it, Kamailio dmq_usrloc's case) arrives even if its sender died.
* Split brain: conflicts only while both nodes are master and until the affected phones' next
  refresh after the heal; none with a shared store.
"""

from __future__ import annotations

import numpy as np
import pytest

from simsip.api import simulate
from simsip.engine.model import Model
from simsip.metrics import ci95
from tests.conftest import scenario

NODES = [{"name": "a", "priority": 150}, {"name": "b", "priority": 100}]


def _skew(prio: int, advert: float = 1.0, version: int = 2) -> float:
    return (256 - prio) / 256 if version == 2 else (256 - prio) * advert / 256


@pytest.mark.parametrize("interval,fall", [("1s", 1), ("2s", 3), ("500ms", 2)])
def test_track_script_detection_and_priority_zero_takeover(interval, fall):
    cfg = scenario(
        duration="120s",
        replications=8,
        ha={"nodes": NODES, "health_check": {"kind": "socket", "interval": interval, "fall": fall}},
        faults=[{"kind": "process_crash", "node": "a", "at": "40s"}],
    )
    res = simulate(cfg)
    iv = cfg.ha.health_check.interval
    f = res.faults
    det = f["detection_time"].to_numpy()
    assert ((det > (fall - 1) * iv - 1e-9) & (det <= fall * iv + 1e-9)).all(), det
    # released with a priority-0 advert: the backup takes over Skew_Time later
    assert np.allclose(f["vip_move_time"] - f["detection_time"], _skew(100))
    # mean detection: the phase is uniform, so (fall − 1/2)·interval
    assert abs(det.mean() - (fall - 0.5) * iv) < iv * 0.35


def test_process_crash_without_health_check_never_moves_the_vip():
    cfg = scenario(
        duration="200s",
        ha={"nodes": NODES},
        faults=[{"kind": "process_crash", "node": "a", "at": "40s", "repair_after": "60s"}],
    )
    res = simulate(cfg)
    assert res.faults["vip_move_time"].isna().iloc[0]  # nobody else ever serves
    ts = res.timeseries.set_index("time")
    assert ts.loc[41.0:99.0, "reachable"].max() == 0  # registrar dead, VIP stuck on it
    # after the restart (memory lost) phones come back at their next refresh (R = 30 s)
    assert ts.loc[135.0:, "reachable"].min() == 100


@pytest.mark.parametrize("kind,detected", [("socket", False), ("sip", True)])
def test_hang_is_only_seen_by_a_sip_check(kind, detected):
    cfg = scenario(
        duration="120s",
        ha={"nodes": NODES, "health_check": {"kind": kind, "interval": "1s", "fall": 2, "timeout": "1s"}},
        faults=[{"kind": "process_hang", "node": "a", "at": "40s"}],
    )
    res = simulate(cfg)
    moved = not res.faults["vip_move_time"].isna().iloc[0]
    assert moved is detected
    if detected:
        det = res.faults["detection_time"].iloc[0]
        assert 1.0 + 1.0 < det <= 2.0 + 1.0 + 1e-9  # fall·interval + the check's timeout


def test_link_down_faults_at_once_and_peer_waits_its_down_timer():
    cfg = scenario(duration="100s", replications=6, ha={"nodes": NODES}, faults=[{"kind": "link_down", "node": "a", "at": "40s"}])
    res = simulate(cfg)
    f = res.faults
    assert np.allclose(f["detection_time"], 0.0)  # keepalived tracks the interface
    mdi = 3 + _skew(100)
    assert ((f["vip_move_time"] > mdi - 1 - 1e-9) & (f["vip_move_time"] <= mdi + 1e-9)).all()


@pytest.mark.parametrize("send_delay,lag", [("500ms", {"dist": "constant", "mean": "1ms"}),
                                            ("300ms", {"dist": "exponential", "mean": "2s"})])
def test_async_replication_loses_lambda_times_send_delay(send_delay, lag):
    """Only the updates still held on the sender die with it: λ·D of them, however long the updates
    already on their way take to be applied (a 2 s lag loses nothing more: negative control of the
    old rule, which lost λ·(D + L))."""
    n, R = 3000, 30.0
    cfg = scenario(
        duration="80s",
        replications=12,
        fleets=[{"name": "f", "count": n, "phone": {"expires": "60s", "refresh": {"mode": "percent", "percent": 50}}}],
        registrar={"data": "replicated", "replication": {"lag": lag, "send_delay": send_delay}, "min_expires": "10s",
                   "workers": 8},
        ha={"nodes": NODES},
        faults=[{"node": "a", "at": "50s"}],
    )
    res = simulate(cfg)
    lost = res.per_replication["n_replicas_lost_b"].tolist()  # updates from a that never reached b
    expected = n / R * cfg.registrar.replication.send_delay
    ci = ci95(lost)
    assert ci["ci_low"] <= expected <= ci["ci_high"], (expected, ci)
    # a lost update leaves the peer with the phone's previous binding, which still routes calls
    # until the next refresh (refresh at 50 % of the expiry): the takeover costs only the VIP move
    per = res.per_replication
    assert np.allclose(per["unreachable_phone_seconds"], n * per["vip_move_time"], rtol=2e-3)


def test_replicated_restart_syncs_and_failback_costs_only_the_vip_move():
    cfg = scenario(
        duration="200s",
        registrar={"data": "replicated", "replication": {"sync_rate": "1000/s"}, "min_expires": "10s"},
        ha={"nodes": NODES},
        faults=[{"node": "a", "at": "50s", "repair_after": "60s"}],
    )
    m = Model(cfg)
    log = m.run()
    assert log.syncs and log.syncs[0][2] == 100  # a pulled every valid binding from b
    res = simulate(cfg)
    rec = res.recovery
    fb = rec[rec["cause"] == "repair"]["recovery_time"]
    back = res.faults[res.faults["cause"] == "repair"]["vip_move_time"].iloc[0]
    # the preempting node already holds everyone: the failback costs each phone ~nothing
    assert len(fb) == 0 or fb.max() <= back + 1e-6


def test_split_brain_conflicts_only_during_and_after_partition():
    base = dict(
        duration="240s",
        fleets=[{"name": "f", "count": 200, "phone": {"expires": "60s", "refresh": {"mode": "percent", "percent": 50}}}],
        registrar={"min_expires": "10s"},
        ha={"nodes": NODES},
        faults=[{"kind": "partition", "at": "60s", "repair_after": "40s"}],
    )
    res = simulate(scenario(**base))
    ts = res.timeseries.set_index("time")
    assert ts.loc[:59.0, "conflicts"].max() == 0
    masters = ts["vrrp_masters"]
    assert masters.loc[65.0:99.0].min() == 2  # split brain while partitioned
    assert masters.loc[105.0:].max() == 1
    assert ts.loc[65.0:99.0, "conflicts"].max() > 0
    # after the heal, conflicts end within one refresh interval (+ ARP re-resolution slack)
    assert ts.loc[100.0 + 30 + 60:, "conflicts"].max() == 0
    assert res.summary["figures"]["split_brain_seconds"]["mean"] == pytest.approx(40 - 3.6, abs=1.6)
    shared = simulate(scenario(**{**base, "registrar": {"data": "shared", "min_expires": "10s"}}))
    assert shared.timeseries["conflicts"].max() == 0


def test_phones_cut_from_the_master_keep_the_vip_there():
    """A partition between the phones and the master (the nodes still hear each other): VRRP sees
    nothing wrong, the VIP stays, and every phone is unreachable until the link returns."""
    cfg = scenario(
        duration="200s",
        ha={"nodes": NODES},
        faults=[{"kind": "phone_link_down", "node": "master", "at": "50s", "repair_after": "40s"}],
    )
    res = simulate(cfg)
    ts = res.timeseries.set_index("time")
    assert ts.loc[51.0:89.0, "reachable"].max() == 0
    assert ts["vrrp_masters"].max() == 1 and set(res.vip["node"]) <= {"a", ""}
    assert res.faults["vip_move_time"].isna().iloc[0]
    # the master kept its bindings: those still unexpired route again at once; the phones whose
    # binding lapsed during the cut (their refreshes timed out) are back after their 30 s retry
    assert ts.loc[91.0, "reachable"] > 0
    assert ts.loc[90.0 + 32 + 30 + 2:, "reachable"].min() == 100
