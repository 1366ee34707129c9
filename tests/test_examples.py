"""Every shipped example loads and runs, and the contrast each one claims holds."""

from __future__ import annotations

import pytest

from simsip.api import load_config, simulate
from tests.conftest import EXAMPLES

ALL = sorted(EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_example_runs(path, tmp_path):
    cfg = load_config(path)
    res = simulate(cfg, replications=min(cfg.replications, 2), out=tmp_path)
    assert res.status == "ok"
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "report.html").is_file()
    ts = res.timeseries
    assert ts["reachable"].between(0, cfg.phones).all()


def test_shared_data_loses_far_less_than_no_replication():
    none = simulate(load_config(EXAMPLES / "quickstart.yaml"), replications=2)
    shared = simulate(load_config(EXAMPLES / "shared-data.yaml"), replications=2)
    a = none.summary["figures"]["unreachable_phone_seconds"]["mean"]
    b = shared.summary["figures"]["unreachable_phone_seconds"]["mean"]
    vip = shared.summary["figures"]["vip_move_time"]["mean"]
    assert b == pytest.approx(1000 * vip, rel=1e-6)  # shared: only the VIP move
    assert a > 20 * b


def test_long_expiry_trades_load_for_loss():
    short = simulate(load_config(EXAMPLES / "quickstart.yaml"), replications=1).summary["figures"]
    long = simulate(load_config(EXAMPLES / "long-expiry.yaml"), replications=1).summary["figures"]
    # steady REGISTER load is N / refresh interval: 1000/108 vs 1000/3240 per second
    assert short["steady_register_rate"]["mean"] == pytest.approx(1000 / 108, rel=0.15)
    assert long["steady_register_rate"]["mean"] == pytest.approx(1000 / 3240, rel=0.35)
    assert long["recovery_median"]["mean"] > 10 * short["recovery_median"]["mean"]


def test_weighted_check_example_contrast():
    """examples/README.md: weight 0 < weighted (backup's own down timer) < never (below the gap or
    nopreempt: until the repair); track_process the fastest."""
    from simsip.compare import simulate_variants

    res = simulate_variants(load_config(EXAMPLES / "weighted-check.yaml"), replications=2)
    fig = {name: r.summary["figures"] for name, r in res.items()}
    vip = {n: f["vip_move_time"]["mean"] for n, f in fig.items()}
    skew = (256 - 100) / 256
    assert vip["track-process"] == pytest.approx(0.02 + skew, abs=1e-6)
    assert skew < vip["fault"] <= 1.0 + skew + 1e-9  # next check (interval 1 s) + skew
    # weighted: MDI after the last accepted advert, which left at most one advert interval before the
    # detection, itself at most one check interval after the crash: (MDI - 1, MDI + 1]
    assert vip["weighted"] > vip["fault"] + 1.5
    assert 3 + skew - 1.0 - 1e-9 <= vip["weighted"] <= 1.0 + 3 + skew + 1e-9
    for never in ("below-gap", "nopreempt"):
        assert vip[never] != vip[never]  # NaN: the VIP never moved
        assert fig[never]["recovery_median"]["mean"] >= 120.0  # until the repair


def test_planned_maintenance_example_contrast():
    from simsip.compare import simulate_variants

    res = simulate_variants(load_config(EXAMPLES / "planned-maintenance.yaml"), replications=2)
    fig = {name: r.summary["figures"] for name, r in res.items()}
    skew = (256 - 100) / 256
    assert fig["ha-stop"]["vip_move_time"]["mean"] == pytest.approx(skew, abs=1e-9)
    assert 3 + skew - 1.0 <= fig["crash"]["vip_move_time"]["mean"] <= 3 + skew
    assert fig["pacemaker"]["failback_vip_move_time"]["mean"] != fig["pacemaker"]["failback_vip_move_time"]["mean"]


def test_asterisk_failback_example_contrast():
    """examples/README.md: N phones refreshing every R with expiry E; node-a down for T (until the
    failback). Loss from the crash until each phone refreshes on node-b (uniform phase U·R) or the
    failback, whichever is first: N·(T − T²/2R) — all chan_sip's fresh restore loses. astdb adds,
    for the T/R who refreshed on node-b, 2R − E each (stale contact on node-a expired until the next
    refresh); nopreempt costs N·R/2 (everyone waits for a refresh on node-b); memory + preempt
    costs N·R/2 + N·(T/R)·(R − T/2)."""
    from simsip.compare import simulate_variants

    res = simulate_variants(load_config(EXAMPLES / "asterisk-failback.yaml"), replications=2)
    loss = {name: r.summary["figures"]["unreachable_phone_seconds"]["mean"] for name, r in res.items()}
    n, e, r = 2000, 3600.0, 3240.0
    t = 600.0 + res["astdb-preempt"].summary["figures"]["failback_vip_move_time"]["mean"]
    fresh = n * (t - t * t / (2 * r))
    expected = {
        "fresh-preempt": fresh,
        "astdb-preempt": fresh + n * t / r * (2 * r - e),
        "astdb-nopreempt": n * r / 2,
        "memory-nopreempt": n * r / 2,
        "memory-preempt": n * r / 2 + n * t / r * (r - t / 2),
    }
    for name, x in expected.items():
        assert loss[name] == pytest.approx(x, rel=0.05), (name, loss[name], x)
    # the decision flips with persistence: preempt helps with astdb, hurts with memory
    assert loss["astdb-preempt"] < loss["astdb-nopreempt"] < loss["memory-preempt"]


def test_galera_quorum_example_contrast():
    """examples/README.md: 3 Galera members lose nobody; 2 without garbd are unreachable from the
    view change (5 s) until the member returns (120 s) or the bootstrap (30 s): N·(115 s) and
    N·(25 s) minus nothing — every binding is on the survivor's disk and comes back at once."""
    from simsip.compare import simulate_variants

    res = simulate_variants(load_config(EXAMPLES / "galera-quorum.yaml"), replications=2)
    loss = {name: r.summary["figures"]["unreachable_phone_seconds"]["mean"] for name, r in res.items()}
    n = 2000
    assert loss["galera-3"] == 0
    assert res["galera-3"].per_replication["n_db_writes_failed"].sum() == 0
    # lookups fail from 65 s; after the return, phones whose binding expired meanwhile wait for a retry
    assert n * 115 <= loss["galera-2"] <= n * 135
    assert n * 25 <= loss["galera-2-bootstrap"] <= n * 35


def test_tls_connections_example_contrast():
    """examples/README.md: the same DMQ pair and TLS fleet. On the LAN the new master reaches every
    replicated binding once the VIP moves (N·D); behind NAT each binding waits for the phone's
    reconnection: its pjsua TLS keep-alive every K = 90 s (a fixed interval: residual K/2 after the
    crash), or without keep-alives its refresh R = E − 5 s (residual R/2). Asterisk on a shared
    realtime table with max_contacts 1 refuses the reconnected phones' new contacts with 403, which
    pjsua does not retry; remove_existing brings back the keep-alive case."""
    from simsip.compare import simulate_variants

    res = simulate_variants(load_config(EXAMPLES / "tls-connections.yaml"), replications=2)
    fig = {name: r.summary["figures"] for name, r in res.items()}
    n = 2000
    d = fig["lan"]["vip_move_time"]["mean"]
    assert fig["lan"]["unreachable_phone_seconds"]["mean"] == pytest.approx(n * d, rel=0.01)
    for name in ("nat-keepalive", "realtime-remove-existing"):
        assert fig[name]["recovery_mean"]["mean"] == pytest.approx(45.0 + d / 2, abs=3.0), name
    assert fig["nat-refresh-only"]["recovery_mean"]["mean"] == pytest.approx(3595.0 / 2, rel=0.05)
    assert fig["nat-keepalive"]["unreachable_no_connection_phone_seconds"]["mean"] > 10 * n * d
    assert fig["realtime-max1"]["phones_not_recovered_share"]["mean"] > 0.9  # 403: pjsua gives up

def test_trunk_failover_example_contrast():
    """examples/README.md: the trunk is down for the VIP move plus Asterisk's 1..10 s initial delay;
    with the VIP as Contact only for the move; a 403 at the failover stops it for good
    (forbidden_retry_interval 0) unless forbidden_retry_interval retries it after the 403s end."""
    from simsip.compare import simulate_variants

    res = simulate_variants(load_config(EXAMPLES / "trunk-failover.yaml"), replications=3)
    f = {n: r.summary["figures"] for n, r in res.items()}
    down = {n: x["trunk_unregistered_seconds"]["mean"] for n, x in f.items()}
    vip = f["contact-vip"]["vip_move_time"]["mean"]
    assert down["contact-vip"] == pytest.approx(vip)
    assert vip + 1.0 <= down["asterisk-defaults"] <= vip + 10.05
    assert down["provider-403"] == pytest.approx(900.0 - 120.0)
    assert f["provider-403"]["trunk_calls_failed_expected"]["mean"] == pytest.approx(780.0 / 6)
    assert 170.0 - 120.0 < down["forbidden-retry"] <= 170.0 + 30.0 + 10.05 - 120.0
    # the VIP as Contact: the old binding (refreshed every 590 s, granted 600 s) lasts 10..600 s more
    per_rep = res["contact-vip-403"].per_replication["trunk_unregistered_seconds"]
    assert ((per_rep >= 900 - 720) & (per_rep <= 900 - 130 + 10)).all()


def test_sbc_caching_example_contrast():
    """examples/README.md: behind the SBC the recovery follows its forward cycle (3510 s or 540 s:
    median ≈ half of it), not the phones' 270 s refresh; a shared store loses only the VIP move."""
    from simsip.compare import simulate_variants
    from simsip.protocols.trunk import sbc_cycle

    res = simulate_variants(load_config(EXAMPLES / "sbc-caching.yaml"), replications=2)
    f = {n: r.summary["figures"] for n, r in res.items()}
    med = {n: x["recovery_median"]["mean"] for n, x in f.items()}
    move = f["no-sbc"]["vip_move_time"]["mean"]
    assert med["no-sbc"] == pytest.approx(135 + move, rel=0.1)
    assert med["sbc-600"] == pytest.approx(sbc_cycle(600, 300, 270) / 2 + move, rel=0.1)
    assert med["sbc-3600"] == pytest.approx(sbc_cycle(3600, 300, 270) / 2 + move, rel=0.1)
    assert f["sbc-shared"]["unreachable_phone_seconds"]["mean"] == pytest.approx(1000 * move, rel=1e-6)


def test_dmq_resync_example_contrast():
    """examples/README.md: with the full sync the failback costs nothing beyond the first VIP move
    (N·move); a sync cut at fraction f leaves N·(1 − f) phones without a binding on the node that
    takes the VIP back, each unreachable until its next refresh reaches it (uniform phase: R/2 on
    average), N·(1 − f)·R/2 more phone·s."""
    from simsip.compare import simulate_variants

    res = simulate_variants(load_config(EXAMPLES / "dmq-resync.yaml"), replications=2)
    fig = {name: r.summary["figures"] for name, r in res.items()}
    loss = {name: f["unreachable_phone_seconds"]["mean"] for name, f in fig.items()}
    n, r, f = 2000, 300.0, 0.4
    assert loss["full-sync"] == pytest.approx(n * fig["full-sync"]["vip_move_time"]["mean"], rel=0.1)
    assert loss["cut-40"] - loss["full-sync"] == pytest.approx(n * (1 - f) * r / 2, rel=0.05)
    # the cut arms the restart's sync: no disturbance of its own in the VIP figures
    assert fig["cut-40"]["vip_move_time"]["mean"] == pytest.approx(fig["full-sync"]["vip_move_time"]["mean"])
