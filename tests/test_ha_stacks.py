"""Heartbeat, corosync/pacemaker, standby modes and persistence against their formulas.

* heartbeat: the survivor declares the peer dead ``deadtime`` after the peer's last heartbeat,
  so detection ∈ (deadtime − keepalive, deadtime]; takeover adds the resource scripts.
* corosync/pacemaker: token loss + consensus + join (token + (n−2)·coefficient for n > 2), then
  the fence, then the IP resource: all constant here, so the VIP moves at exactly their sum.
* write-back with flush interval F: the bindings lost with the process are the saves since the
  last flush; refreshes arrive at λ = N/R and the crash falls at a uniform phase of the flush
  timer, so E[lost] = λ·F/2 (F ≤ R), a fraction F/(2R) of the phones.
* cold standby on shared storage (write-through): nothing is lost, but every phone waits for
  detection + fence + registrar start + loading N bindings at ``load_rate``.
"""

from __future__ import annotations

import numpy as np
import pytest

from simsip.api import simulate
from simsip.metrics import ci95
from tests.conftest import scenario

NODES = [{"name": "a", "priority": 150}, {"name": "b", "priority": 100}]


@pytest.mark.parametrize("keepalive,deadtime", [("1s", "30s"), ("2s", "10s")])
def test_heartbeat_deadtime(keepalive, deadtime):
    cfg = scenario(
        duration="200s", replications=6,
        ha={"kind": "heartbeat", "nodes": NODES, "heartbeat": {"keepalive": keepalive, "deadtime": deadtime, "takeover_time": "500ms"}},
        faults=[{"node": "a", "at": "60s"}],
    )
    res = simulate(cfg)
    k, d = cfg.ha.heartbeat.keepalive, cfg.ha.heartbeat.deadtime
    det = res.faults["vip_move_time"].to_numpy() - 0.5
    assert ((det > d - k - 1e-9) & (det <= d + 1e-9)).all(), det


def test_heartbeat_auto_failback_and_split_brain():
    base = dict(duration="300s", ha={"kind": "heartbeat", "nodes": NODES, "heartbeat": {"deadtime": "10s"}},
                faults=[{"node": "a", "at": "60s", "repair_after": "60s"}])
    res = simulate(scenario(**base))
    vip = res.vip
    assert list(vip["node"])[-1] == "a"  # resources came back to the preferred node
    nofb = simulate(scenario(**{**base, "ha": {**base["ha"], "heartbeat": {"deadtime": "10s", "auto_failback": False}}}))
    assert list(nofb.vip["node"])[-1] == "b"
    sb = simulate(scenario(duration="200s", ha={"kind": "heartbeat", "nodes": NODES, "heartbeat": {"deadtime": "10s"}},
                           faults=[{"kind": "partition", "at": "60s", "repair_after": "40s"}]))
    ts = sb.timeseries.set_index("time")
    assert ts.loc[75.0:99.0, "vrrp_masters"].min() == 2  # no fencing: both active
    assert ts.loc[110.0:, "vrrp_masters"].max() == 1


@pytest.mark.parametrize("token,nodes", [("3s", 2), ("1s", 3)])
def test_corosync_pacemaker_takeover_is_token_consensus_fence_start(token, nodes):
    ns = [{"name": f"n{i}", "priority": 200 - i} for i in range(nodes)]
    cfg = scenario(
        duration="120s",
        ha={"kind": "pacemaker", "nodes": ns, "corosync": {"token": token},
            "pacemaker": {"fence_time": "4s", "ip_start_time": "200ms"}},
        faults=[{"node": "master", "at": "40s"}],
    )
    res = simulate(cfg)
    tok = cfg.ha.corosync.token + max(0, nodes - 2) * 0.65
    expected = tok + 1.2 * tok + 0.05 + 4.0 + 0.2
    assert res.faults["vip_move_time"].iloc[0] == pytest.approx(expected, abs=1e-9)


def test_pacemaker_fence_timeout_retries():
    cfg = scenario(
        duration="300s",
        ha={"kind": "pacemaker", "nodes": NODES, "pacemaker": {"fence_time": "90s", "stonith_timeout": "60s"}},
        faults=[{"node": "a", "at": "40s"}],
    )
    res = simulate(cfg)
    # a fence slower than stonith-timeout fails and is retried forever: the resources stay down
    assert np.isnan(res.faults["vip_move_time"].iloc[0])
    assert res.timeseries.set_index("time").loc[50.0:, "reachable"].max() == 0


def test_pacemaker_monitor_restarts_crashed_registrar():
    cfg = scenario(
        duration="150s", replications=6,
        registrar={"start_time": "2s"},
        ha={"kind": "pacemaker", "nodes": NODES, "pacemaker": {"monitor_interval": "10s", "stop_time": "1s"}},
        faults=[{"kind": "process_crash", "node": "a", "at": "40s"}],
    )
    res = simulate(cfg)
    rt = res.faults["service_restored_time"].to_numpy()
    assert ((rt > 3.0 - 1e-9) & (rt <= 10.0 + 3.0 + 1e-9)).all(), rt  # next monitor, then stop + start
    assert res.faults["vip_move_time"].isna().all()  # restarted in place


@pytest.mark.parametrize("flush,refresh_pct", [("30s", 90), ("20s", 50)])
def test_write_back_loses_the_unflushed_fraction(flush, refresh_pct):
    n = 2000
    cfg = scenario(
        duration="150s", replications=15,
        fleets=[{"name": "f", "count": n, "phone": {"expires": "60s", "refresh": {"mode": "percent", "percent": refresh_pct}}}],
        registrar={"persistence": "write_back", "flush_interval": flush, "storage": "shared", "min_expires": "10s"},
        ha={"nodes": NODES, "standby": "cold"},
        faults=[{"node": "a", "at": "100s"}],
    )
    res = simulate(cfg)
    F = cfg.registrar.flush_interval
    R = 60 * refresh_pct / 100
    expected = n * F / (2 * R)
    ci = ci95(res.per_replication["unflushed_bindings_lost"].tolist())
    assert ci["ci_low"] <= expected <= ci["ci_high"], (expected, ci)


def test_cold_standby_on_shared_storage_waits_for_start_and_load():
    n = 500
    cfg = scenario(
        duration="200s",
        fleets=[{"name": "f", "count": n, "phone": {"expires": "600s", "refresh": {"mode": "percent", "percent": 90}}}],
        registrar={"persistence": "write_through", "storage": "shared", "start_time": "5s", "load_rate": "100/s"},
        ha={"kind": "pacemaker", "nodes": NODES, "standby": "cold", "pacemaker": {"fence_time": "3s"}},
        faults=[{"node": "a", "at": "60s"}],
    )
    res = simulate(cfg)
    f = res.faults.iloc[0]
    # corosync notices, the fence completes, the IP comes up, the registrar starts and loads everyone
    ready = cfg.ha.corosync.detection(2) + 3.0 + 0.0 + 5.0 + n / 100.0
    assert f["service_restored_time"] == pytest.approx(ready, abs=1e-6)
    assert f["vip_move_time"] == pytest.approx(ready, abs=1e-6)  # serving = IP and a running registrar
    rec = res.recovery["recovery_time"]
    assert len(rec) == n and np.allclose(rec, ready)  # nothing lost, everyone waits the same
    assert res.per_replication["n_loaded_b"].iloc[0] == n


def test_random_faults_rate_and_availability():
    cfg = scenario(
        duration="20d", replications=1,
        fleets=[{"name": "f", "count": 5, "phone": {"expires": "3600s"}}],
        random_faults=[{"kind": "node_crash", "node": "any", "mtbf": "12h", "mttr": "30min"}],
    )
    res = simulate(cfg)
    nf = res.per_replication["faults"].iloc[0]
    expected = 20 * 24 / 12.5
    assert abs(nf - expected) < 3 * np.sqrt(expected)
    assert res.per_replication["loss_minutes_per_phone_year"].iloc[0] > 0
