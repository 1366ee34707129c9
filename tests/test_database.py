"""The database under a shared store: replication modes and the primary's failover.

* async with mean lag L, refreshes at λ = N/R: the writes in flight when the primary dies are
  those of the last L seconds: E[lost] = λ·L.
* Until the replica is promoted (``failover_time``) nothing can be looked up: every phone is
  unreachable for the failover time (their bindings are on the replica, refresh at 50 %, so a
  lost last write leaves the previous, still valid binding): loss ≈ N·failover_time.
* semi-sync with a dead replica blocks writes for the timeout, then silently goes async.
* sync with a dead replica fails every write (500) while the replica is down.
"""

from __future__ import annotations

import numpy as np

from simsip.api import simulate
from simsip.metrics import ci95
from tests.conftest import scenario

NODES = [{"name": "a", "priority": 150}, {"name": "b", "priority": 100}]


def _db(mode: str, faults, n=3000, reps=10, **db):
    return scenario(
        duration="150s", replications=reps,
        fleets=[{"name": "f", "count": n, "phone": {"expires": "60s", "refresh": {"mode": "percent", "percent": 50}}}],
        registrar={"data": "shared", "min_expires": "10s", "workers": 8},
        database={"replication": mode, **db},
        ha={"nodes": NODES},
        faults=faults,
    )


def test_async_primary_crash_loses_lambda_lag_and_waits_failover():
    cfg = _db("async", [{"kind": "db_crash", "at": "60s"}], lag={"dist": "constant", "mean": "400ms"}, failover_time="20s")
    res = simulate(cfg)
    n, R, L = 3000, 30.0, 0.4
    ci = ci95(res.per_replication["db_writes_lost"].tolist())
    assert ci["ci_low"] <= n / R * L <= ci["ci_high"], ci
    loss = res.per_replication["unreachable_phone_seconds"].to_numpy()
    assert np.allclose(loss, n * 20.0, rtol=0.01)


def test_no_replication_database_down_until_repaired():
    cfg = _db("none", [{"kind": "db_crash", "at": "60s", "repair_after": "30s"}], reps=1)
    res = simulate(cfg)
    ts = res.timeseries.set_index("time")
    assert ts.loc[61.0:89.0, "reachable"].max() == 0
    # the same primary returns with its data; phones whose refresh got a 500 retry 30 s later, just
    # as their binding expires, so a few are briefly out
    assert ts.loc[91.0:, "reachable"].min() >= 0.99 * 3000 and ts.loc[91.0, "reachable"] >= 0.99 * 3000
    assert res.per_replication["n_db_writes_failed"].iloc[0] > 0  # REGISTERs during the outage got 500


def test_semisync_blocks_for_timeout_then_async_and_sync_fails_writes():
    semi = simulate(_db("semisync", [{"kind": "db_replica_down", "at": "60s", "repair_after": "40s"}], reps=1,
                        semisync_timeout="10s"))
    assert semi.per_replication["timeouts"].iloc[0] == 0  # replies delayed ≤ 10 s: no transaction times out
    assert semi.per_replication["unreachable_phone_seconds"].iloc[0] == 0
    sync = simulate(_db("sync", [{"kind": "db_replica_down", "at": "60s", "repair_after": "40s"}], reps=1))
    assert sync.per_replication["n_db_writes_failed"].iloc[0] > 0
    # the binding stays valid for a refresh interval: failed refreshes for 40 s lose nobody yet
    assert semi.per_replication["n_db_writes_failed"].iloc[0] == 0


# Galera (percona/pxc-docs crash-recovery.md): λ = N/R = 100 writes/s here.
def _galera(nodes, faults, **db):
    return _db("galera", faults, reps=1, nodes=nodes, suspect_timeout="5s", **db)


def test_galera_three_nodes_stall_writes_for_suspect_timeout_then_continue():
    res = simulate(_galera(3, [{"kind": "db_replica_down", "at": "60s", "repair_after": "40s"}]))
    pr = res.per_replication.iloc[0]
    assert pr["n_db_writes_failed"] == 0 and pr["timeouts"] == 0
    assert pr["unreachable_phone_seconds"] == 0  # lookups never stop: a majority remains
    ts = res.timeseries.set_index("time")
    assert ts.loc[61.0:64.0, "resp_2xx"].max() == 0  # every write waits for the eviction at 65 s
    assert ts.loc[65.0, "resp_2xx"] >= 0.8 * 100 * 5  # then the stalled ones are acknowledged at once
    assert ts.loc[70.0:99.0, "resp_2xx"].mean() > 50  # and writes go on without the member
    # negative control: plain synchronous replication fails every write for the 40 s
    sync = simulate(_db("sync", [{"kind": "db_replica_down", "at": "60s", "repair_after": "40s"}], reps=1))
    assert sync.per_replication["n_db_writes_failed"].iloc[0] >= 0.9 * 100 * 40


def test_galera_two_nodes_lose_quorum_until_the_peer_returns():
    res = simulate(_galera(2, [{"kind": "db_replica_down", "at": "60s", "repair_after": "40s"}]))
    ts = res.timeseries.set_index("time")
    assert ts.loc[61.0:64.0, "reachable"].min() == 3000  # reads still served until the view change
    assert ts.loc[66.0:99.0, "reachable"].max() == 0  # non-primary: no query at all
    # re-formed with the data it had: the bindings not yet expired (last success s uniform in (30, 60)
    # s, valid until s + 60 > 101: 19/30 of them) are found again at once, the rest on their retry
    assert ts.loc[101.0, "reachable"] >= 3000 * 19 / 30 - 100
    assert ts.loc[140.0:, "reachable"].min() == 3000
    assert res.per_replication["n_db_writes_failed"].iloc[0] >= 0.9 * 100 * 40
    # an operator's pc.bootstrap 20 s after the loss ends it there
    boot = simulate(_galera(2, [{"kind": "db_replica_down", "at": "60s", "repair_after": "40s"}], bootstrap_after="20s"))
    tb = boot.timeseries.set_index("time")
    assert tb.loc[66.0:79.0, "reachable"].max() == 0 and tb.loc[81.0:, "reachable"].min() >= 0.99 * 3000


def test_galera_two_nodes_never_replace_a_dead_primary_without_bootstrap():
    two = simulate(_galera(2, [{"kind": "db_crash", "at": "60s"}]))
    assert two.timeseries.set_index("time").loc[61.0:, "reachable"].max() == 0
    three = simulate(_galera(3, [{"kind": "db_crash", "at": "60s"}], failover_time="15s"))
    t3 = three.timeseries.set_index("time")
    assert t3.loc[61.0:74.0, "reachable"].max() == 0 and t3.loc[76.0:, "reachable"].min() >= 0.99 * 3000
