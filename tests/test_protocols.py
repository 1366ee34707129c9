"""simsip.protocols against independent truth: RFC numbers, product documentation, textbook
queueing values, and — for the rules the engine still implements itself — today's engine code.

The last sections check that the config methods, the closed forms and the lab bridge return
exactly the protocol functions' values, so the rules exist once.
"""

from __future__ import annotations

import math
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simsip import analytic as A
from simsip.config.schema import Corosync, Heartbeat, RefreshRule, Registrar, RetryRule, SipTimers, Vrrp
from simsip.protocols import cluster, queueing, registration, transactions, vrrp
from simsip.protocols.registration import failure_draws, failure_wait, retry_wait, retry_wait_draws

FAST = settings(max_examples=200, deadline=None)


# =========================================================================== VRRP
def test_vrrp_rfc_values():
    # RFC 3768 §6.1 (v2): Skew_Time = (256 − 100)/256 = 0.609375 s; MDI = 3·1 + skew
    assert vrrp.skew_time(2, 100, 1.0) == 0.609375
    assert vrrp.master_down_interval(2, 100, 1.0) == 3.609375
    # RFC 5798 §6.1 (v3): the skew scales with the advert interval
    assert vrrp.skew_time(3, 100, 0.5) == 0.3046875
    assert vrrp.master_down_interval(3, 100, 0.5) == 1.8046875
    # v2 adverts are whole seconds and its skew does not scale: 2 s adverts, priority 50
    assert vrrp.skew_time(2, 50, 2.0) == 206 / 256
    assert vrrp.master_down_interval(2, 50, 2.0) == pytest.approx(6.8046875, abs=0)
    # the address owner (255) and the lowest priority (1)
    assert vrrp.skew_time(2, 255, 1.0) == 1 / 256
    assert vrrp.skew_time(2, 1, 1.0) == 255 / 256
    # keepalived's down_timer_adverts replaces the RFC's 3
    assert vrrp.master_down_interval(2, 100, 1.0, down_timer_adverts=5) == 5.609375


@pytest.mark.parametrize("version,priority", [(1, 100), (4, 100), (2, 0), (3, 256)])
def test_vrrp_rejects_what_the_rfcs_do_not_define(version, priority):
    with pytest.raises(ValueError):
        vrrp.skew_time(version, priority, 1.0)


@FAST
@given(st.sampled_from([2, 3]), st.integers(1, 254), st.integers(1, 4000))
def test_higher_priority_takes_over_sooner(version, p, cs):
    a = cs if version == 2 else cs / 100.0
    assert vrrp.master_down_interval(version, p + 1, a) < vrrp.master_down_interval(version, p, a)
    # the skew is always under one advert interval, so the backup never beats 3·A
    assert 3 * a < vrrp.master_down_interval(version, p, a) <= 3 * a + (a if version == 3 else 1.0)


def test_takeover_window_after_a_silent_crash():
    mdi, a = 3.609375, 1.0
    assert vrrp.takeover_window(mdi, a) == (2.609375, 3.609375)
    assert vrrp.takeover_after_crash(mdi, a, 0.0) == mdi  # the last advert left at the crash
    assert vrrp.takeover_after_crash(mdi, a, 0.999999) == pytest.approx(mdi - a, abs=1e-5)
    assert vrrp.takeover_window(mdi, a, advert_delay=0.25) == (2.859375, 3.859375)
    assert vrrp.takeover_after_crash(mdi, a, 0.5, advert_delay=0.25) == 3.359375  # adverts δ late: δ later
    assert vrrp.expected_takeover(mdi, a, advert_delay=0.25) == 3.359375
    # the mean over a uniform advert phase (midpoint rule, independent of the closed form)
    k = 10_000
    mean = sum(vrrp.takeover_after_crash(mdi, a, (i + 0.5) / k) for i in range(k)) / k
    assert mean == pytest.approx(3.109375, abs=1e-9)
    assert vrrp.expected_takeover(mdi, a) == 3.109375


# =========================================================================== Timer E / F
def test_timer_e_f_rfc3261_schedule():
    # RFC 3261 §17.1.2.2 at T1 = 500 ms, T2 = 4 s: intervals 0.5, 1, 2, 4, 4, ... until Timer F = 64·T1
    assert transactions.timer_f(0.5) == 32.0
    assert transactions.timer_f(0.5, 16.0) == 16.0
    assert [transactions.retransmit_interval(k) for k in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert transactions.timer_e_schedule() == (0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5)
    assert [transactions.send_time(n) for n in range(6)] == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5]
    # Cisco SPA/MPP: Timer F 16 s
    assert transactions.timer_e_schedule(timer_f=16.0) == (0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5)
    # a faster network estimate: T1 = 100 ms, Timer F 6.4 s
    assert transactions.timer_e_schedule(0.1, 4.0) == pytest.approx((0.0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3))
    assert transactions.transaction_timeout() == 32.0


def test_sipp_max_retrans():
    # SIPp -max_retrans K: the transaction ends when retransmission K+1 would be due
    assert transactions.sipp_timeout(0.5, 4.0, 9) == 31.5  # the lab's K = 9
    assert transactions.sipp_timeout(0.5, 4.0, 7) == 23.5  # SIPp's default for non-INVITE
    assert transactions.sipp_timeout(0.5, 4.0, 0) == 0.5
    assert transactions.timer_e_schedule(max_retransmissions=2) == (0.0, 0.5, 1.5)
    assert transactions.transaction_timeout(0.5, 4.0, max_retransmissions=9) == 31.5
    assert transactions.transaction_timeout(0.5, 4.0, timer_f=16.0, max_retransmissions=4) == 11.5
    assert transactions.transaction_timeout(0.5, 4.0, timer_f=16.0, max_retransmissions=20) == 16.0


@FAST
@given(st.integers(1, 2000), st.integers(1, 16), st.one_of(st.none(), st.integers(0, 30)),
       st.one_of(st.none(), st.integers(1, 120)))
def test_schedule_steps_and_timeout_are_consistent(t1_ms, t2_mult, k, f_s):
    t1, t2 = t1_ms / 1000.0, t1_ms * t2_mult / 1000.0
    f = None if f_s is None else float(f_s)
    s = transactions.timer_e_schedule(t1, t2, f, k)
    end = transactions.transaction_timeout(t1, t2, f, k)
    assert s[0] == 0.0 and all(x < end for x in s)
    for i in range(1, len(s)):
        assert s[i] - s[i - 1] == pytest.approx(min(t1 * 2.0 ** min(i - 1, 60), t2))
    if k is not None:
        assert len(s) <= k + 1
    # the next copy would be due at or after the timeout
    assert s[-1] + transactions.retransmit_interval(len(s) - 1, t1, t2) >= end - 1e-9


def test_engine_sends_and_times_out_on_the_protocol_schedule():
    """Today's engine (phones.py Timer E/F) against the protocol schedule, at two phone settings."""
    from simsip.engine.model import Model
    from tests.conftest import scenario

    for phone, timers in (({}, {}), ({"timers": {"timer_f": "16s", "max_retransmissions": 4}}, {"timer_f": 16.0, "max_retransmissions": 4})):
        cfg = scenario(duration="60s", fleets=[{"name": "f", "count": 1, "start": "boot_storm", "boot_window": "0s",
                                               "phone": {"retry": {"interval": "100s"}, **phone}}],
                       faults=[{"node": "a", "at": "0s"}, {"node": "b", "at": "0s"}])
        m = Model(cfg)
        sends, outs = [], []
        orig_send, orig_timeout = m.phones._send, m.phones._timeout
        m.phones._send = lambda p, tx, now, fp: (sends.append(now), orig_send(p, tx, now, fp))
        m.phones._timeout = lambda p, tx, now, fp: (outs.append(now), orig_timeout(p, tx, now, fp))
        m.run()
        assert sends == pytest.approx(list(transactions.timer_e_schedule(0.5, 4.0, **timers)), abs=1e-9)
        assert outs == pytest.approx([transactions.transaction_timeout(0.5, 4.0, **timers)], abs=1e-9)


# =========================================================================== the grant
def test_grant_kamailio_rules():
    # Kamailio registrar defaults: min_expires 60, max_expires 0 (= no limit)
    assert registration.clamp_expiry(30.0, 60.0, 0.0) == 60.0
    assert registration.clamp_expiry(86400.0, 60.0, 0.0) == 86400.0
    assert registration.clamp_expiry(7200.0, 60.0, 3600.0) == 3600.0
    assert registration.clamp_expiry(120.0, 60.0, 3600.0) == 120.0
    # expires_range 20 %: uniform in [0.8·E, E]
    assert registration.spread_expiry(3600.0, 0.0, 0.7) == 3600.0
    assert registration.spread_expiry(3600.0, 20.0, 0.0) == 3600.0
    assert registration.spread_expiry(3600.0, 20.0, 0.5) == 3240.0
    assert registration.spread_expiry(3600.0, 20.0, 0.999999) == pytest.approx(2880.0, abs=1e-2)
    assert registration.grant_expiry(30.0, 60.0, 0.0, 50.0, 0.5) == 45.0


def test_the_registrar_grants_the_protocol_grant():
    """A real RegistrarNode, on its ports (a topology, a clock, a stand-in replies port and a
    stream that hands out ``u``), grants what grant_expiry computes with the same draw."""
    from simsip.engine.core import ControlClock, Horizon, Sim
    from simsip.engine.records import RunLog, StoreLog
    from simsip.engine.registrar import RegistrarNode, Store
    from simsip.engine.topology import Topology

    cases = [(30.0, 60.0, 0.0, 0.0), (7200.0, 60.0, 3600.0, 0.0), (3600.0, 60.0, 0.0, 20.0), (10.0, 0.0, 0.0, 35.5),
             (5000.0, 100.0, 4000.0, 99.0)]
    for requested, lo, hi, rng in cases:
        for u in (0.0, 0.123456789, 0.5, 0.987654321):
            granted, draws = [], []

            class Stream:
                def __init__(self, name):
                    self.name = name

                def random(self, u=u):
                    if self.name.endswith(".grant"):
                        draws.append(u)
                    return u

            log = RunLog(horizon=10.0, res=1.0, node_names=["a"])
            topo = Topology(["a"], [100], log)
            topo.ha_state[0] = "master"
            sim = Sim()
            hz = Horizon(10.0)
            cfg = Registrar(min_expires=lo, max_expires=hi, expires_range=rng, service_time="1ms")
            node = RegistrarNode(0, "a", cfg, Store(0, 1, StoreLog()), log, sim=sim, clock=ControlClock(sim, hz),
                                 topo=topo, streams=Stream, horizon=hz)
            node.replies = types.SimpleNamespace(
                hold=lambda p, tx, finish: True, path=lambda: 0.001, lost=lambda p, tx: None, extra_work=None,
                authorized=None, stopped=None, contact=None,
                reply=lambda p, tx, t, status, g, ra, back, ahead=True: granted.append(g))
            node.receive(0, 0, requested, 0.0)
            sim.run(until=10.0)
            assert granted == [registration.grant_expiry(requested, lo, hi, rng, u)]
            assert len(draws) == (1 if rng else 0)  # the engine draws only with expires_range


def test_retry_after_header_matches_the_registrars_draw():
    from simsip.rng import Stream

    assert registration.retry_after_header(0.0, None, 0.9) == 0.0  # header absent
    assert registration.retry_after_header(5.0, None, 0.9) == 5.0
    assert registration.retry_after_header(5.0, 20.0, 0.5) == 12.5
    # the registrar draws it with Stream.uniform(retry_after, retry_after_max)
    for lo, hi, u in ((5.0, 20.0, 0.123), (0.0, 3600.0, 0.999), (1.5, 1.5, 0.3)):
        stream = types.SimpleNamespace(random=lambda u=u: u)
        assert Stream.uniform(stream, lo, hi) == registration.retry_after_header(lo, hi, u)


# =========================================================================== the refresh
def test_refresh_product_rules():
    ri = registration.refresh_interval
    assert ri(3600.0, "percent", percent=90.0) == 3240.0  # Linphone, baresip
    assert ri(300.0, "margin", margin=5.0) == 295.0  # pjsua reg_delay_before_refresh
    assert ri(4.0, "margin", margin=5.0) == 2.0  # pjsua: half the expiry when shorter
    assert ri(3600.0, "margin", margin=60.0) == 3540.0  # Polycom expires.overlap
    assert ri(60.0, "margin", margin=60.0) == 30.0  # E ≤ margin: half
    assert ri(60.0, "half_or_margin", margin=15.0) == 45.0  # Aastra: E − 15 s beats E/2
    assert ri(20.0, "half_or_margin", margin=15.0) == 10.0  # ... unless that is before half-way
    assert ri(1.0, "percent", percent=50.0, min_interval=1.0) == 1.0  # never sooner than min_interval
    with pytest.raises(ValueError):
        ri(60.0, "fraction")


@FAST
@given(st.floats(0.5, 30 * 86400), st.sampled_from(registration.REFRESH_MODES), st.floats(1, 100),
       st.floats(0, 600), st.floats(0.01, 30))
def test_refresh_is_before_expiry(e, mode, pct, margin, mi):
    r = registration.refresh_interval(e, mode, percent=pct, margin=margin, min_interval=mi)
    assert r >= mi
    if mi <= e / 2:
        assert r <= e  # the phone refreshes before the binding runs out


# =========================================================================== the retry wait
def rule(**kw) -> RetryRule:
    return RetryRule(**kw)


def test_retry_rfc5626_backoff():
    r = rule(mode="backoff", base=30.0, max=1800.0)  # RFC 5626 §4.5: base-time 30 s, max-time 1800 s
    assert registration.backoff_window(0, 30.0, 1800.0) == 30.0
    assert registration.backoff_window(5, 30.0, 1800.0) == 960.0
    assert registration.backoff_window(6, 30.0, 1800.0) == 1800.0  # 1920 capped
    assert retry_wait(r, 0, u=0.0) == 15.0 and retry_wait(r, 0, u=0.5) == 22.5
    assert retry_wait(r, 6, u=0.0) == 900.0
    assert retry_wait(r, 6, u=0.999999) == pytest.approx(1800.0, abs=1e-2)
    # baresip counts the first failure as 1: first wait 30–60 s
    b = rule(mode="backoff", base=30.0, max=1800.0, exponent_offset=1)
    assert (retry_wait(b, 0, u=0.0), retry_wait(b, 0, u=0.999999)) == (30.0, pytest.approx(60.0, abs=1e-4))
    # Polycom base = max = 60: a flat 30–60 s
    p = rule(mode="backoff", base=60.0, max=60.0)
    assert {retry_wait(p, n, u=0.0) for n in range(8)} == {30.0}
    assert retry_wait_draws(r, 0) and retry_wait_draws(r, 7, timeout=True)


def test_retry_fixed_product_rules():
    pjsua = rule(interval=300.0, first_interval=0.0, spread=10.0)
    assert retry_wait(pjsua, 0, u=0.3) == 3.0  # first retry 0 s "± 10 s": uniform in [0, 10)
    assert retry_wait(pjsua, 1, u=0.0) == 290.0
    assert retry_wait(pjsua, 1, u=0.5) == 300.0
    snom = rule(interval=300.0, spread=30.0)
    assert retry_wait(snom, 0, u=0.25) == 285.0
    cisco = rule(interval=30.0)
    assert [retry_wait(cisco, n, u=0.9) for n in range(3)] == [30.0, 30.0, 30.0]
    assert not retry_wait_draws(cisco, 0) and retry_wait_draws(snom, 0)
    linphone = rule(interval=60.0, timeout_interval=2.0, transport_error_interval=0.0)
    assert retry_wait(linphone, 3, timeout=True) == 2.0  # "retry in 2 seconds" after a local timeout
    assert retry_wait(linphone, 0, transport=True) == 0.0  # first transport error: at once
    assert retry_wait(linphone, 1, transport=True) == 60.0  # the next ones: the rule
    assert retry_wait(linphone, 0) == 60.0


def test_retry_max_attempts_long_interval_and_give_up():
    # Cisco-like: 3 failures, then Reg Retry Long Intvl, then the count starts over
    r = rule(interval=30.0, max_attempts=3, long_interval=1200.0)
    assert [retry_wait(r, n) for n in range(7)] == [30.0, 30.0, 1200.0, 30.0, 30.0, 1200.0, 30.0]
    g = rule(interval=30.0, max_attempts=2, after_max="give_up")
    assert retry_wait(g, 0) == 30.0 and retry_wait(g, 1) is None
    assert failure_draws(g, 1, timeout=True, restart_timer=10.0) == (False, False)
    assert not retry_wait_draws(rule(mode="backoff", max_attempts=1), 0)  # the long wait is not random


def test_failure_wait_restart_timer_and_retry_after():
    r = rule(interval=7.0, honour_restart_timer=True)
    # draft-shen Restart-Timer: the first failure of a server waits uniform in [0, Restart-Timer]
    assert failure_wait(r, 0, timeout=True, restart_timer=120.0, u_restart=0.25) == 30.0
    assert failure_wait(r, 0, transport=True, restart_timer=120.0, u_restart=0.75) == 90.0
    assert failure_wait(r, 0, server_failure=True, restart_timer=120.0, u_restart=0.5) == 60.0
    assert failure_wait(r, 1, timeout=True, restart_timer=120.0, u_restart=0.5) == 7.0  # only the first
    assert failure_wait(r, 0, restart_timer=120.0, u_restart=0.5) == 7.0  # a 4xx is not a server failure
    assert failure_wait(r, 0, timeout=True, restart_timer=0.0, u_restart=0.5) == 7.0  # none advertised
    assert failure_wait(rule(interval=7.0), 0, timeout=True, restart_timer=120.0, u_restart=0.5) == 7.0
    assert failure_draws(r, 0, timeout=True, restart_timer=120.0) == (False, True)
    # Retry-After is a lower bound when honoured
    assert failure_wait(rule(interval=5.0), 0, server_failure=True, retry_after=20.0) == 20.0
    assert failure_wait(rule(interval=30.0), 0, server_failure=True, retry_after=20.0) == 30.0
    assert failure_wait(rule(interval=5.0, honour_retry_after=False), 0, retry_after=20.0) == 5.0


retry_rules = st.builds(
    RetryRule,
    mode=st.sampled_from(["fixed", "backoff"]),
    interval=st.sampled_from([0.0, 2.0, 7.5, 30.0, 300.0]),
    first_interval=st.sampled_from([None, 0.0, 1.0, 60.0]),
    spread=st.sampled_from([0.0, 5.0, 10.0, 30.0]),
    timeout_interval=st.sampled_from([None, 0.0, 2.0]),
    base=st.sampled_from([1.0, 5.0, 30.0]),
    max=st.sampled_from([30.0, 60.0, 1800.0]),
    exponent_offset=st.integers(-2, 3),
    max_attempts=st.integers(0, 4),
    after_max=st.sampled_from(["long_interval", "give_up"]),
    long_interval=st.sampled_from([0.0, 100.0, 1200.0]),
    honour_retry_after=st.booleans(),
    transport_error_interval=st.sampled_from([None, 0.0, 3.0]),
    honour_restart_timer=st.booleans(),
)


class _Draws:
    """A stand-in for a (per-phone) random stream: hands out the given values in order and counts them."""

    def __init__(self, values):
        self.values = list(values)
        self.taken = 0

    def random(self, phone=None):
        v = self.values[self.taken]
        self.taken += 1
        return v


@FAST
@given(retry_rules, st.integers(0, 9), st.booleans(), st.booleans(),
       st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True))
def test_retry_wait_matches_todays_phonebank(r, n, timeout, transport, u, u2):
    """PhoneBank.retry_wait (engine) = retry_wait with the same draw, and draws exactly when told."""
    from simsip.engine.phones import PhoneBank

    bank = types.SimpleNamespace(retry_rnd=_Draws([u, u2]))
    fp = types.SimpleNamespace(retry=r)
    got = PhoneBank.retry_wait(bank, fp, n, timeout, transport)
    assert got == retry_wait(r, n, timeout=timeout, transport=transport, u=u)
    assert bank.retry_rnd.taken == int(retry_wait_draws(r, n, timeout=timeout, transport=transport))


@FAST
@given(retry_rules, st.integers(0, 9), st.sampled_from(["timeout", "transport", "503", "other"]),
       st.sampled_from([0.0, 20.0]), st.sampled_from([0.0, 5.0, 45.0]),
       st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True))
def test_failure_wait_matches_todays_phonebank_fail(r, n, cause, restart_timer, retry_after, u, u2):
    """PhoneBank._fail (engine): the wait it schedules and the draws it takes, against failure_wait."""
    from simsip.engine import phones as P

    scheduled = []
    bank = types.SimpleNamespace(
        log=types.SimpleNamespace(outcome=lambda t, p, v: None), auth_on=False, failures=[n], gave_up=0, gen=[0],
        _cause={"transport": P.CAUSE_TRANSPORT, "503": P.CAUSE_503}.get(cause, P.CAUSE_NONE),
        restart_timer=restart_timer, retry_rnd=_Draws([u, u2]), begin=None,
        sim=types.SimpleNamespace(phone_at=lambda t, *a: scheduled.append(t)))
    bank.retry_wait = types.MethodType(P.PhoneBank.retry_wait, bank)
    fp = types.SimpleNamespace(retry=r, dns=False)
    timeout = cause == "timeout"
    P.PhoneBank._fail(bank, 0, 0.0, fp, P.OUT_FAILURE, retry_after, timeout=timeout)
    kw = dict(timeout=timeout, transport=cause == "transport", server_failure=cause == "503", restart_timer=restart_timer)
    need_u, need_r = failure_draws(r, n, **kw)
    draws = iter([u, u2])
    want = failure_wait(r, n, retry_after=retry_after, u=next(draws) if need_u else 0.0,
                        u_restart=next(draws) if need_r else 0.0, **kw)
    assert scheduled == ([] if want is None else [want])
    assert bank.gave_up == (1 if want is None else 0)
    assert bank.retry_rnd.taken == need_u + need_r


# =========================================================================== keep-alives
def test_keepalive_rfc5626():
    assert registration.keepalive_interval(30.0, 0.8, 0.0) == 24.0  # 80–100 % of the interval
    assert registration.keepalive_interval(30.0, 0.8, 0.5) == 27.0
    assert registration.keepalive_interval(15.0, 1.0, 0.7) == 15.0  # pjsua: no randomisation
    assert registration.keepalive_timeout("crlf", None, 32.0) == 10.0  # RFC 5626 §4.4.1 pong wait
    assert registration.keepalive_timeout("options", None, 32.0) == 32.0  # an OPTIONS transaction: Timer F
    assert registration.keepalive_timeout("crlf", 5.0, 32.0) == 5.0


# =========================================================================== cluster stacks
def test_corosync_detection_documented_defaults():
    # corosync.conf(5), corosync >= 3.1: token 3000 ms, token_coefficient 650 ms, consensus 1.2·token
    assert cluster.corosync_token_timeout(3.0, 2) == 3.0
    assert cluster.corosync_token_timeout(3.0, 5) == pytest.approx(4.95)
    assert cluster.corosync_detection(2) == pytest.approx(3.0 + 3.6 + 0.05)
    assert cluster.corosync_detection(3) == pytest.approx(3.65 + 1.2 * 3.65 + 0.05)
    assert cluster.corosync_detection(2, token=1.0, consensus=5.0, join=0.0) == 6.0  # corosync 2.x token 1 s
    assert cluster.corosync_detection(1, token=1.0, join=0.0) == pytest.approx(2.2)


def test_heartbeat_rules():
    # heartbeat config.c: initdead = deadtime above 10 s, else 12 s below 6 s, else 2·deadtime
    assert cluster.heartbeat_initdead(30.0) == 30.0
    assert cluster.heartbeat_initdead(5.0) == 12.0
    assert cluster.heartbeat_initdead(8.0) == 16.0
    assert cluster.heartbeat_initdead(30.0, 120.0) == 120.0
    assert cluster.heartbeat_detection_window(30.0, 1.0) == (29.0, 30.0)
    assert cluster.heartbeat_detection(30.0, 2.0, 0.0) == 30.0
    assert cluster.heartbeat_detection(30.0, 2.0, 0.5) == 29.0


# =========================================================================== queueing
def _erlang_c_direct(c: int, a: float) -> float:
    """The textbook closed form with factorials (independent of the recursion)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_erlang_hand_values():
    assert queueing.erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: P(wait) = ρ
    assert queueing.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert queueing.erlang_b(1, 2.0) == pytest.approx(2 / 3)
    assert queueing.erlang_b(5, 2.0) == pytest.approx(0.0367, abs=1e-4)  # Erlang B table
    assert queueing.erlang_c(10, 8.0) == pytest.approx(0.4092, abs=1e-4)  # Erlang C table
    assert queueing.erlang_c(3, 3.0) == 1.0 and queueing.erlang_c(3, 0.0) == 0.0
    assert queueing.erlang_c_wait(1, 0.002, 350.0) == pytest.approx(0.7 / (500 - 350))  # ρ/(μ − λ)
    assert queueing.erlang_c_wait(2, 1.0, 3.0) == math.inf
    assert queueing.steady_register_rate(1000, 54.0) == pytest.approx(18.518518, rel=1e-6)
    with pytest.raises(ValueError):
        queueing.steady_register_rate(10, 0.0)


@FAST
@given(st.integers(1, 40), st.floats(0.01, 0.99))
def test_erlang_c_recursion_equals_closed_form(c, rho):
    assert queueing.erlang_c(c, rho * c) == pytest.approx(_erlang_c_direct(c, rho * c), rel=1e-9)


# =========================================================================== one rule, one place
@FAST
@given(st.sampled_from([2, 3]), st.integers(1, 255), st.integers(1, 25500), st.integers(1, 10))
def test_config_vrrp_delegates(version, p, cs, k):
    a = float(max(1, cs // 100)) if version == 2 else cs / 100.0
    cfg = Vrrp(version=version, advert_int=a, down_timer_adverts=k)
    assert cfg.skew(p) == vrrp.skew_time(version, p, a)
    assert cfg.master_down_interval(p) == vrrp.master_down_interval(version, p, a, k)
    if k == 3:
        assert A.master_down_interval(version, p, a) == cfg.master_down_interval(p)


@FAST
@given(st.floats(0.001, 30 * 86400), st.sampled_from(registration.REFRESH_MODES), st.floats(0.01, 100),
       st.floats(0, 3600), st.floats(0.001, 3600))
def test_config_refresh_delegates(e, mode, pct, margin, mi):
    cfg = RefreshRule(mode=mode, percent=pct, margin=margin, min_interval=mi)
    assert cfg.interval(e) == registration.refresh_interval(e, mode, percent=pct, margin=margin, min_interval=mi)


@FAST
@given(st.floats(0.001, 30 * 86400), st.floats(0, 86400), st.floats(0, 86400))
def test_config_grant_delegates(req, lo, hi):
    hi = 0.0 if hi < lo else hi
    assert Registrar(min_expires=lo, max_expires=hi).grant(req) == registration.clamp_expiry(req, lo, hi)


@FAST
@given(st.integers(1, 60000), st.integers(1, 600), st.one_of(st.none(), st.integers(1, 300)))
def test_config_sip_timers_delegate(t1_ms, t2_mult, f):
    t1 = t1_ms / 1000.0
    cfg = SipTimers(t1=t1, t2=min(600.0, t1 * t2_mult), timer_f=None if f is None else float(f))
    assert cfg.timeout == transactions.timer_f(t1, cfg.timer_f)
    assert cfg.timeout == (64 * t1 if f is None else f)


@FAST
@given(st.floats(0.01, 60), st.floats(0, 5), st.one_of(st.none(), st.floats(0.01, 60)), st.floats(0, 1),
       st.integers(1, 8))
def test_config_corosync_delegates(token, coef, consensus, join, nodes):
    cfg = Corosync(token=token, token_coefficient=coef, consensus=consensus, join=join)
    assert cfg.detection(nodes) == cluster.corosync_detection(nodes, token, coef, consensus, join)


@FAST
@given(st.floats(0.01, 10), st.floats(0, 100), st.one_of(st.none(), st.floats(0.01, 600)))
def test_config_heartbeat_delegates(keepalive, extra, initdead):
    deadtime = 2 * keepalive + 0.01 + extra
    cfg = Heartbeat(keepalive=keepalive, deadtime=deadtime, initdead=initdead)
    assert cfg.initial_dead == cluster.heartbeat_initdead(deadtime, initdead)


def test_analytic_reexports_the_protocol_functions():
    assert A.vrrp_skew is vrrp.skew_time
    assert A.master_down_interval is vrrp.master_down_interval
    assert A.expected_takeover is vrrp.expected_takeover
    assert A.timer_e_schedule is transactions.timer_e_schedule
    assert A.steady_register_rate is queueing.steady_register_rate
    assert A.erlang_c is queueing.erlang_c
    assert A.erlang_c_wait is queueing.erlang_c_wait


@FAST
@given(st.sampled_from([2, 3]), st.integers(1, 254), st.integers(1, 25500))
def test_lab_spec_vrrp_delegates(version, p, cs):
    from simsip.lab.spec import LabSpec

    a = float(max(1, cs // 100)) if version == 2 else max(0.01, cs / 100.0)
    spec = LabSpec(vrrp_version=version, advert_int=a)
    assert spec.skew_time(p) == vrrp.skew_time(version, p, a)
    assert spec.master_down_interval(p) == vrrp.master_down_interval(version, p, a)


def test_screen_uses_the_protocol_rules():
    """analytic.screen: R from the grant (mean expires_range spread) and the refresh rule."""
    from tests.conftest import scenario

    cfg = scenario(
        fleets=[{"name": "f", "count": 1000, "phone": {"expires": "30s", "refresh": {"mode": "margin", "margin": "20s"}}}],
        registrar={"workers": 4, "service_time": {"dist": "constant", "mean": "1ms"}, "min_expires": "100s",
                   "expires_range": 30},
        faults=[{"node": "master", "at": "60s"}],
    )
    R = registration.refresh_interval(registration.grant_expiry(30.0, 100.0, 0.0, 30.0, 0.5), "margin", margin=20.0)
    assert R == 65.0  # 100 s granted, 85 s on average after the spread, refreshed 20 s early
    out = A.screen(cfg)
    assert out["steady_register_rate"] == pytest.approx(1000 / 65.0, rel=1e-12)
    assert out["master_down_interval"] == vrrp.master_down_interval(2, 100, 1.0)


def test_lab_bridge_speaks_sipp_with_the_protocol_rules():
    """The lab bridge: SIPp's -max_retrans timeout and the refresh rule, both from simsip.protocols."""
    from simsip.api import load_config
    from simsip.lab.bridge import LabUnsupported, spec_from_scenario
    from tests.conftest import EXAMPLES

    path = EXAMPLES / "lab" / "udp-none" / "config.yaml"
    short_f = ["fleets.0.phone.timers.timer_f=20s", "fleets.0.phone.timers.max_retransmissions=9"]
    with pytest.raises(LabUnsupported, match=r"before max_retransmissions 9 do \(31\.5 s\)"):
        spec_from_scenario(load_config(path, short_f))
    spec_from_scenario(load_config(path, ["fleets.0.phone.timers.timer_f=32s", "fleets.0.phone.timers.max_retransmissions=9"]))
    # percent 90 of 60 s: SIPp pauses 0.9·E; a min_interval above 54 s raises it, and LabSpec gets that share
    pct = ["fleets.0.phone.refresh.mode=percent", "fleets.0.phone.refresh.percent=90"]
    assert spec_from_scenario(load_config(path, pct)).refresh_fraction == 0.9
    spec = spec_from_scenario(load_config(path, pct + ["fleets.0.phone.refresh.min_interval=57s"]))
    assert spec.refresh_fraction == 57.0 / 60.0 and spec.refresh_interval == pytest.approx(57.0)
    # margin 7 s: E − 7 s as a margin; pjsua's half-the-expiry fallback as a share
    mg = ["fleets.0.phone.refresh.mode=margin", "fleets.0.phone.refresh.margin=7s"]
    assert spec_from_scenario(load_config(path, mg)).refresh_margin == 7.0
    spec = spec_from_scenario(load_config(path, ["fleets.0.phone.refresh.mode=margin", "fleets.0.phone.refresh.margin=60s"]))
    assert spec.refresh_fraction == 0.5
