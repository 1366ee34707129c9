"""Every reference deployment in models/deployments runs, and its headline figure matches the
closed form of its own mechanism (see simsip.analytic for the derivations)."""

from __future__ import annotations

import numpy as np
import pytest

from simsip.analytic import expected_recovery_none, timer_e_schedule
from simsip.api import simulate
from simsip.config.loader import load_config, models_dir
from simsip.metrics import ci95

DEPLOY = models_dir() / "deployments"


def _cfg(name: str, **over):
    cfg = load_config(DEPLOY / f"{name}.yaml")
    return cfg.model_copy(update=over) if over else cfg


def test_keepalived_no_replication_matches_the_refresh_window():
    cfg = _cfg("keepalived-no-replication").model_copy(update={"replications": 8})
    res = simulate(cfg)
    v = cfg.ha.vrrp
    backup = min(n.priority for n in cfg.ha.nodes)
    mdi = v.master_down_interval(backup)
    rec = res.recovery[res.recovery["cause"] == "fault"]
    per_rep = []
    expected = 0.0
    for f in cfg.fleets:
        R = f.phone.refresh.interval(cfg.registrar.grant(f.phone.expires))
        sched = timer_e_schedule(f.phone.timers.t1, f.phone.timers.t2, f.phone.timers.timeout)
        expected += f.count * expected_recovery_none(R, mdi, v.advert_int, delay=cfg.network.delay.expected,
                                                     schedule=sched, timeout=f.phone.timers.timeout)
    expected /= cfg.phones
    per_rep = rec.groupby("replication")["recovery_time"].mean().tolist()
    ci = ci95(per_rep)
    slack = 0.02 * expected  # 0.1 % packet loss adds a retransmission for a few phones
    assert ci["ci_low"] - slack <= expected <= ci["ci_high"] + slack, (expected, ci)


@pytest.mark.parametrize("name", ["keepalived-shared-db", "keepalived-dmq"])
def test_shared_and_replicated_lose_only_the_vip_move(name):
    res = simulate(_cfg(name))
    per = res.per_replication
    f = res.faults
    moves = f[f["cause"] == "fault"].set_index("replication")["vip_move_time"]
    n = res.config.phones
    # the crash costs each phone the VIP move; the failback (preemption) costs nothing more
    assert np.allclose(per["unreachable_phone_seconds"], n * moves.loc[per["replication"]].to_numpy(), rtol=0.01)


def test_pacemaker_cold_standby_waits_detection_fence_start_and_load():
    cfg = _cfg("pacemaker-cold-standby-shared-storage")
    res = simulate(cfg)
    cs, pm, reg = cfg.ha.corosync, cfg.ha.pacemaker, cfg.registrar
    expected = cs.detection(2) + pm.fence_time.mean + pm.ip_start_time + reg.start_time.mean + cfg.phones / reg.load_rate
    rec = res.recovery[res.recovery["cause"] == "fault"]["recovery_time"]
    assert len(rec) == cfg.phones * cfg.replications
    assert np.allclose(rec, expected, atol=1e-6)


def test_heartbeat_30s_deadtime():
    cfg = _cfg("heartbeat-30s-deadtime").model_copy(update={"replications": 6})
    res = simulate(cfg)
    hb = cfg.ha.heartbeat
    mv = res.faults["vip_move_time"].to_numpy()
    take = hb.takeover_time.mean
    assert ((mv > hb.deadtime - hb.keepalive + take - 1e-9) & (mv <= hb.deadtime + take + 1e-9)).all()
    f = cfg.fleets[0]
    R = f.phone.refresh.interval(cfg.registrar.grant(f.phone.expires))
    expected = expected_recovery_none(R, hb.deadtime + take, hb.keepalive, delay=cfg.network.delay.expected,
                                      timeout=f.phone.timers.timeout, retry_wait=f.phone.retry.interval)
    ci = ci95(res.recovery.groupby("replication")["recovery_time"].mean().tolist())
    assert ci["ci_low"] - 0.3 <= expected <= ci["ci_high"] + 0.3, (expected, ci)


def test_keepalived_shared_db_async_loses_the_failover_window():
    cfg = _cfg("keepalived-shared-db-async")
    res = simulate(cfg)
    n = cfg.phones
    per = res.per_replication
    # nobody can be looked up until the replica is promoted; afterwards the replica holds every
    # binding but the writes of the last lag (whose previous version is still valid)
    assert np.allclose(per["unreachable_phone_seconds"], n * cfg.database.failover_time, rtol=0.01)
    R = cfg.fleets[0].phone.refresh.interval(cfg.registrar.grant(cfg.fleets[0].phone.expires))
    lam_l = n / R * cfg.database.lag.expected
    assert per["db_writes_lost"].mean() < 10 * lam_l + 5
