"""Invariants on every run, reproducibility, and an independent recount of reachability."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from simsip.api import simulate
from simsip.engine.model import Model
from simsip.metrics import compute
from tests.conftest import scenario

SCENARIOS = {
    "none-crash-repair": dict(faults=[{"node": "master", "at": "60s", "repair_after": "60s"}]),
    "shared-lossy": dict(registrar={"data": "shared", "workers": 2, "service_time": "1ms"}, network={"delay": {"dist": "uniform", "low": "1ms", "high": "400ms"}, "loss": 0.2},
                         faults=[{"node": "master", "at": "100s"}]),
    "overload-503": dict(registrar={"workers": 1, "queue_limit": 3, "when_full": "reply_503", "retry_after": "5s", "service_time": "50ms"},
                         fleets=[{"name": "f", "count": 300, "start": "boot_storm", "boot_window": "5s", "phone": {"expires": "60s"}}]),
    "expires-range-grace": dict(registrar={"expires_range": 30, "lookup_grace": "10s", "min_expires": "30s"},
                                faults=[{"node": "a", "at": "30s", "repair_after": "20s"}, {"node": "b", "at": "150s"}]),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_invariants(name):
    # the invariants are about each save and each outcome, so every one is a row (record folding's
    # exactness has its own tests: tests/test_record_folding.py)
    cfg = scenario(engine={"compact_records": False}, **SCENARIOS[name])
    m = Model(cfg, replication=1)
    log = m.run()
    c = log.counters
    # each transaction ends in exactly one outcome (or is still open at the end)
    assert c["transactions_started"] == (
        c["transactions_succeeded"] + c["transactions_failed"] + c["transactions_timed_out"] + c["transactions_open"]
    )
    assert c["transactions_open"] <= cfg.phones
    met = compute(cfg, log, 0, np.random.default_rng(0))
    ts = met.timeseries
    n = cfg.phones
    assert ts["reachable"].between(0, n).all() and ts["registered"].between(0, n).all()
    # no binding routes calls beyond its granted expiry plus the lookup grace
    reg = cfg.registrar
    max_grant = max(reg.grant(f.phone.expires) for f in cfg.fleets)
    for s in log.stores:
        t = np.frombuffer(s.t) if len(s.t) else np.zeros(0)
        u = np.frombuffer(s.until) if len(s.until) else np.zeros(0)
        assert (u - t <= max_grant + reg.lookup_grace + 1e-9).all()
        if reg.expires_range:
            assert (u - t >= max_grant * (1 - reg.expires_range / 100) + reg.lookup_grace - 1e-9).all()
    # outages never overlap per phone and lie within the run
    o = met.outages.sort_values(["phone", "start"])
    end = o["end"].fillna(cfg.duration)
    assert (o["start"] >= 0).all() and (end <= cfg.duration + 1e-9).all() and (end > o["start"]).all()
    prev_end = end.groupby(o["phone"]).shift()
    assert ((o["start"] >= prev_end) | prev_end.isna()).all()
    # reachable phone-seconds + unreachable phone-seconds = N · duration (to the sample grid)
    assert met.figures["unreachable_phone_seconds"] <= n * cfg.duration + 1e-6


def _brute_force_reachable(cfg, log, times):
    """Reachable count recomputed naively from the raw saves and the serving timeline."""
    serving = sorted(log.serving)
    out = []
    for t in times:
        node = -1
        for ts, n in serving:
            if ts <= t:
                node = n
        if node < 0:
            out.append(0)
            continue
        st = log.stores[log.store_of_node[node]]
        last_clear = max([c for c in st.clears if c <= t], default=-math.inf)
        latest = {}
        for ts, p, u in zip(st.t, st.phone, st.until):
            if last_clear < ts <= t:
                latest[p] = u
        out.append(sum(1 for u in latest.values() if u > t))
    return out


def test_reachable_series_matches_brute_force():
    cfg = scenario(
        duration="200s",
        fleets=[{"name": "f", "count": 60, "phone": {"expires": "30s", "refresh": {"mode": "percent", "percent": 90}}}],
        registrar={"min_expires": "10s", "expires_range": 20, "workers": 1, "service_time": "5ms"},
        network={"loss": 0.3},
        faults=[{"node": "master", "at": "50s", "repair_after": "40s"}, {"node": "master", "at": "150s"}],
    )
    log = Model(cfg, replication=3).run()
    met = compute(cfg, log, 0, np.random.default_rng(0))
    times = met.timeseries["time"].to_numpy()[::7]
    expect = _brute_force_reachable(cfg, log, times)
    got = met.timeseries.set_index("time").loc[times, "reachable"].tolist()
    assert got == expect


def test_same_seed_same_results_different_seed_differs():
    cfg = scenario(replications=2, network={"loss": 0.05, "delay": {"dist": "exponential", "mean": "20ms"}},
                   faults=[{"node": "master", "at": "100s"}])
    a = simulate(cfg)
    b = simulate(cfg)
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries)
    pd.testing.assert_frame_equal(a.outages, b.outages)
    pd.testing.assert_frame_equal(a.recovery, b.recovery)
    sa, sb = a.summary, b.summary
    sa.pop("runtime_s"), sb.pop("runtime_s")
    assert sa == sb
    c = simulate(cfg, seed=8)
    assert not a.recovery["recovery_time"].equals(c.recovery["recovery_time"])
    # replications are independent samples
    r0 = a.recovery[a.recovery.replication == 0]["recovery_time"].to_numpy()
    r1 = a.recovery[a.recovery.replication == 1]["recovery_time"].to_numpy()
    assert not np.array_equal(np.sort(r0), np.sort(r1))


def test_replication_results_do_not_depend_on_how_many_are_run():
    cfg = scenario(replications=3, faults=[{"node": "master", "at": "100s"}])
    three = simulate(cfg)
    one = simulate(cfg, replications=1)
    pd.testing.assert_frame_equal(one.recovery, three.recovery[three.recovery.replication == 0].reset_index(drop=True))


def test_boot_storm_registers_everyone():
    cfg = scenario(fleets=[{"name": "f", "count": 500, "start": "boot_storm", "boot_window": "10s", "phone": {"expires": "60s"}}],
                   duration="60s")
    res = simulate(cfg)
    ts = res.timeseries
    assert ts["reachable"].iloc[0] == 0
    assert ts[ts.time >= 12]["reachable"].min() == 500
    assert ts[ts.time >= 12]["registered"].min() == 500
    assert res.per_replication["peak_register_rate"].iloc[0] >= 500 / 10 * 0.5


def test_bindings_held_until_purge_timer():
    """A binding stays in memory until the first purge tick at or after its expiry (usrloc timer)."""
    cfg = scenario(
        duration="200s",
        fleets=[{"name": "f", "count": 50, "phone": {"expires": "30s", "refresh": {"mode": "percent", "percent": 50}}}],
        registrar={"min_expires": "10s", "removal_interval": "60s"},
        faults=[{"node": "a", "at": "20s", "repair_after": "10s"}],
        ha={"vrrp": {"preempt": False}, "nodes": [{"name": "a", "priority": 150}, {"name": "b", "priority": 100}]},
    )
    log = Model(cfg).run()
    met = compute(cfg, log, 0, np.random.default_rng(0))
    ts = met.timeseries.set_index("time")
    # a crashed at 20 s (memory lost); b holds everyone from ~35 s; a never gets traffic again
    assert ts.loc[10.0, "bindings_a"] == 50 and ts.loc[25.0, "bindings_a"] == 0
    assert ts.loc[100.0, "bindings_b"] == 50
    # on b, each phone refreshes every 15 s: one binding per phone, never more
    assert ts["bindings_b"].max() == 50


def test_missed_garp_delays_recovery_by_neighbour_timers():
    """Phones that miss every GARP keep the dead node's MAC until their ARP entry fails."""
    base = dict(
        duration="300s",
        fleets=[{"name": "f", "count": 200, "phone": {"expires": "60s", "refresh": {"mode": "percent", "percent": 50}}}],
        registrar={"min_expires": "10s"},
        faults=[{"node": "master", "at": "50s"}],
    )
    ok = simulate(scenario(**base))
    lost = simulate(scenario(**base, network={"delay": "1ms", "arp": {"garp_loss": 1.0}}))
    a = ok.recovery.set_index("phone")["recovery_time"]
    b = lost.recovery.set_index("phone")["recovery_time"].loc[a.index]
    d = ok.faults["vip_move_time"].iloc[0]  # the VRRP takeover (same VRRP phase in both runs)
    # the ingress (which routes calls) missed the GARP too: it serves again only after its own entry failed
    assert lost.faults["vip_move_time"].iloc[0] >= d + 8 - 1e-9
    # same phases (named streams): missing the GARP can only delay a phone
    assert (b >= a - 1e-9).all()
    # the entry must go STALE (at or after the move), a packet starts DELAY (5 s), 3 probes 1 s apart
    assert b.min() >= d + 8 - 1e-9
    assert b.mean() > a.mean() + 10
    assert b.max() <= d + 45 + 30 + 8 + 32 + 30
    assert lost.per_replication["phones_not_recovered"].iloc[0] == 0
