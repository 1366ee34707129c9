"""What sits around the registrar: the PBX's trunk registration and a registration-caching SBC.

Against the product rules (Asterisk res_pjsip_outbound_registration.c, OpenSIPS mid_registrar
save.c) and closed forms, each with a negative control.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import simsip
from simsip import simulate
from simsip.config.loader import ConfigError, load_config_text
from simsip.config.schema import Scenario
from simsip.engine.model import Model
from simsip.metrics import trunk_down_intervals
from simsip.protocols import trunk as tr

BASE = {
    "name": "t", "seed": 5, "duration": "300s",
    "fleets": [{"name": "desk", "count": 50, "phone": {"expires": "60s", "refresh": {"mode": "percent", "percent": 50}}}],
    "registrar": {"min_expires": "10s"},
    "ha": {"vrrp": {"advert_int": "1s"}, "nodes": [{"name": "a", "priority": 150}, {"name": "b", "priority": 100}]},
    "faults": [{"kind": "node_crash", "node": "master", "at": "100s"}],
}


def scenario(**over) -> Scenario:
    doc = copy.deepcopy(BASE)
    doc.update(over)
    return Scenario.model_validate(doc)


# --------------------------------------------------------------------------- Asterisk's rules
def test_initial_delay_is_whole_seconds_one_to_max():
    u = np.linspace(0, 0.999999, 1000)
    d = {tr.initial_delay(10, x) for x in u}
    assert d == {float(k) for k in range(1, 11)}  # (ast_random() % 10) + 1
    assert tr.initial_delay(0, 0.7) == 1.0  # "n mod 0 is undefined": max 0 gives 1 s
    assert tr.initial_delay(10, 0.0) != 0.0  # negative control: never immediately


def test_response_handling_follows_handle_registration_response():
    kw = dict(retry_interval=60, forbidden_retry_interval=0, fatal_retry_interval=0, max_retries=10,
              auth_rejection_permanent=True)
    assert tr.after_failure(408, 0, **kw) == (60, 1)  # temporal: retry_interval
    assert tr.after_failure(503, 9, **kw) == (60, 10)
    assert tr.after_failure(503, 10, **kw) == (None, 10)  # retries == max_retries: permanent
    assert tr.after_failure(403, 0, **kw) == (None, 0)  # forbidden_retry_interval 0: stop
    assert tr.after_failure(403, 0, **{**kw, "forbidden_retry_interval": 30}) == (30, 1)
    assert tr.after_failure(401, 0, **kw) == (None, 0)  # auth_rejection_permanent yes
    assert tr.after_failure(401, 0, **{**kw, "auth_rejection_permanent": False}) == (60, 1)
    assert tr.after_failure(404, 0, **{**kw, "fatal_retry_interval": 90}) == (90, 1)
    assert tr.after_failure(404, 0, **kw) == (None, 0)
    assert tr.after_failure(403, 3, **kw, retry_after=120) == (120, 3)  # Retry-After first, whatever the code
    assert tr.after_failure(408, 0, **{**kw, "retry_interval": 0}) == (None, 0)  # retry_interval 0: no retry
    assert tr.refresh_after(3600) == 3590 and tr.refresh_after(5) == 0


def _trunk_run(trunk: dict, **over):
    cfg = scenario(trunks=[{"name": "itsp", **trunk}], **over)
    m = Model(cfg)
    log = m.run()
    return cfg, log


def test_after_a_failover_the_trunk_is_down_until_the_new_node_registers():
    """No answer from nobody, then the old node's binding leads nowhere until the new node's first
    REGISTER (start_delay + 1 s with max_random_initial_delay 0) is saved half a round trip later."""
    cfg, log = _trunk_run({"max_random_initial_delay": "0s", "start_delay": "2s", "provider_rtt": "100ms"})
    moved = next(t for t, n in log.serving if t > 100 and n >= 0)
    down = trunk_down_intervals([(s, u, n) for _, s, u, n in log.trunk_regs], [(t, n) for t, _, n in log.trunk_nodes],
                                cfg.duration, "node")
    assert [c for _, _, c in down] == ["no_node", "wrong_node"]
    assert down[0][0] == pytest.approx(100.0) and down[0][1] == pytest.approx(moved)
    assert down[1][1] - moved == pytest.approx(2.0 + 1.0 + 0.05)
    # negative control: with the VIP in the Contact the provider's live binding works on the new node
    cfg2, log2 = _trunk_run({"max_random_initial_delay": "0s", "start_delay": "2s", "contact": "vip"})
    down2 = trunk_down_intervals([(s, u, n) for _, s, u, n in log2.trunk_regs],
                                 [(t, n) for t, _, n in log2.trunk_nodes], cfg2.duration, "vip")
    assert [c for _, _, c in down2] == ["no_node"]


def test_mean_trunk_gap_matches_the_closed_form():
    """Over many failovers the trunk is down for the VIP move + start_delay + (max + 1) / 2 (the mean of
    1..max whole seconds) + half the provider round trip; and every single gap is such a whole number
    plus 50 ms (negative control: a continuous delay, or one that can be 0, fails this)."""
    cfg = scenario(fleets=[{"name": "desk", "count": 5}], duration="150s",
                   trunks=[{"name": "itsp", "max_random_initial_delay": "10s", "provider_rtt": "100ms"}])
    res = simulate(cfg, replications=120)
    per = res.per_replication
    gap = per["trunk_unregistered_seconds"] - per["vip_move_time"]
    expected = tr.mean_initial_delay(10) + 0.05
    se = gap.std(ddof=1) / len(gap) ** 0.5
    assert abs(gap.mean() - expected) < 3 * se, (gap.mean(), expected, se)
    assert set(gap.round(6)) <= {round(k + 0.05, 6) for k in range(1, 11)}  # whole seconds 1..10


def test_a_provider_that_never_answers_makes_asterisk_give_up_after_max_retries():
    """Every REGISTER times out: max_retries + 1 attempts, then REJECTED_PERMANENT, at the closed form."""
    trunk = {"max_random_initial_delay": "0s", "retry_interval": "20s", "max_retries": 3, "timeout": "32s",
             "outages": [{"at": "99s", "duration": "200s"}]}
    cfg, log = _trunk_run(trunk, duration="600s")
    start = next(t for t, _, n in log.trunk_nodes if t > 100 and n >= 0)
    resp = [(t, c) for _, t, c in log.trunk_responses if t > 100]
    assert [c for _, c in resp] == [408] * 4 + [-1]
    first = start + 1.0
    assert resp[-1][0] - first == pytest.approx(tr.give_up_time(20, 3, 32))
    res = simsip.simulate(cfg)
    f = res.summary["figures"]
    assert f["trunk_registrations_given_up"]["mean"] == 1
    # it never comes back: down from the fault to the end of the run
    assert f["trunk_unregistered_seconds"]["mean"] == pytest.approx(cfg.duration - 100.0)
    # negative control: unlimited-looking retries recover once the provider answers again
    cfg2, log2 = _trunk_run({**trunk, "max_retries": 100}, duration="600s")
    assert not any(c < 0 for _, _, c in log2.trunk_responses)
    assert log2.trunk_responses[-1][2] == 200


def test_failed_inbound_calls_are_rate_times_down_time():
    cfg, _ = _trunk_run({"calls_per_hour": "360/h", "max_random_initial_delay": "0s"})
    res = simsip.simulate(cfg)
    f = res.summary["figures"]
    down = res.trunk_outages["duration"].sum()
    assert f["trunk_unregistered_seconds"]["mean"] == pytest.approx(down)
    assert f["trunk_calls_failed_expected"]["mean"] == pytest.approx(0.1 * down)
    assert set(res.trunk_outages.columns) >= {"trunk", "start", "end", "duration", "cause"}


def test_trunk_config_errors_are_located():
    text = """
name: t
duration: 300s
fleets: [{name: desk, count: 5}]
trunks:
  - name: itsp
    profile: asterisk-pjsip
    retry_interval: -5s
"""
    with pytest.raises(ConfigError, match=r"<config>:8: trunks\[0\]\.retry_interval"):
        load_config_text(text)
    with pytest.raises(ConfigError, match=r"unknown trunk profile 'nope'"):
        load_config_text(text.replace("asterisk-pjsip", "nope").replace("    retry_interval: -5s\n", ""))
    # a profile fills in what the trunk leaves out, and its own keys win
    cfg = load_config_text(text.replace("-5s", "30s"))
    assert cfg.trunks[0].retry_interval == 30 and cfg.trunks[0].name == "itsp" and cfg.trunks[0].max_retries == 10
    doc = copy.deepcopy(BASE)
    doc["trunks"] = [{"name": "a"}, {"name": "a"}]
    with pytest.raises(Exception, match="trunk names must be unique"):
        Scenario.model_validate(doc)
    doc["trunks"] = [{"name": "a", "outages": [{"at": "400s", "duration": "1s"}]}]
    with pytest.raises(Exception, match="not before the end of the run"):
        Scenario.model_validate(doc)


# --------------------------------------------------------------------------- the caching SBC
def test_mid_registrar_forwarding_rule():
    assert tr.sbc_forwards(False, 0.0, 3600, 300)  # unknown contact: forwarded
    assert not tr.sbc_forwards(True, 3299.0, 3600, 300)  # absorbed
    assert tr.sbc_forwards(True, 3300.0, 3600, 300)  # now - last_reg_ts >= expires_out - e
    assert tr.sbc_upstream_expires(300, 3600) == 3600 and tr.sbc_upstream_expires(7200, 3600) == 7200
    assert tr.sbc_expires_out(1800, 3600) == 1800  # a shorter grant upstream is kept
    assert tr.sbc_cycle(3600, 300, 270) == 13 * 270 and tr.sbc_cycle(300, 300, 270) == 270


def _sbc(server: str, outgoing="600s", **over):
    doc = copy.deepcopy(BASE)
    doc["fleets"][0]["server"] = server
    doc["fleets"][0]["count"] = 400
    doc["sbc"] = {"outgoing_expires": outgoing}
    doc["duration"] = "900s"
    doc.update(over)
    return Scenario.model_validate(doc)


def test_sbc_absorbs_refreshes_and_forwards_once_per_cycle():
    """Phones refresh every 30 s (50 % of 60 s); the SBC forwards when 600 − 60 s have passed since
    its last forward: every 18th refresh, a forward cycle of 540 s."""
    cfg = _sbc("sbc", faults=[])
    log = Model(cfg).run()
    c = log.counters
    refreshes = c["sbc_absorbed"] + c["sbc_forwarded"]
    assert refreshes == pytest.approx(400 * 900 / 30, rel=0.02)
    assert c["sbc_forwarded"] == pytest.approx(400 * 900 / tr.sbc_cycle(600, 60, 30), rel=0.1)
    # negative control: without the SBC every refresh reaches the registrar
    log2 = Model(_sbc("vip", faults=[])).run()
    assert sum(log2.bins["register_rx_a"].v) == pytest.approx(refreshes, rel=0.02)


def test_after_a_failover_recovery_is_set_by_the_sbc_cycle_not_the_phones():
    """Memory-only registrars: the new master holds nothing. Behind the SBC a phone is reachable again
    at its next forward, uniform over the 540 s cycle (median ≈ 270 s); without it at its next refresh
    (uniform over 30 s: median ≈ 15 s)."""
    sbc = simsip.simulate(_sbc("sbc"))
    vip = simsip.simulate(_sbc("vip"))
    m_sbc = sbc.summary["figures"]["recovery_median"]["mean"]
    m_vip = vip.summary["figures"]["recovery_median"]["mean"]
    move = sbc.summary["figures"]["vip_move_time"]["mean"]
    assert m_vip == pytest.approx(15 + move, abs=4)
    assert m_sbc == pytest.approx(270 + move, abs=40)
    assert m_sbc > 10 * m_vip


def test_sbc_config_errors_are_located():
    doc = copy.deepcopy(BASE)
    doc["fleets"][0]["server"] = "sbc"
    with pytest.raises(Exception, match="sbc needs an sbc section"):
        Scenario.model_validate(doc)
    doc["sbc"] = {}
    doc["fleets"][0]["phone"]["transport"] = "tcp"
    with pytest.raises(Exception, match="must use udp"):
        Scenario.model_validate(doc)


def test_what_a_reply_teaches_the_sbc_counts_only_from_the_reply_s_time():
    """A registrar may hand a 2xx over ahead of its time (a fast path): the SBC keeps it pending and a
    REGISTER of that phone arriving before the reply's time still sees the old state (the rule that
    keeps both engines equal when a phone starts a new transaction before a late reply)."""
    cfg = _sbc("sbc", faults=[], duration="60s")
    m = Model(cfg)
    s = m.sbc
    p = 3
    s.last_fwd[p], s.e_out[p], s.known_until[p] = -500.0, 600.0, 50.0
    s.pending[p] = [(10.0, 9.5, 600.0)]
    s._settle(p, 9.0)
    assert s.last_fwd[p] == -500.0 and p in s.pending  # not yet
    s._settle(p, 10.0)
    assert s.last_fwd[p] == 9.5 and p not in s.pending
    assert s.known_until[p] == 10.0 + 60.0  # min(e, expires_out) from the reply's time
