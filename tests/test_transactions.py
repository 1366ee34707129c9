"""UDP REGISTER transactions: Timer E/F per RFC 3261 §17.1.2, retry rules per profile."""

from __future__ import annotations

import pytest

from simsip.engine.model import Model
from tests.conftest import scenario


def _trace_sends(cfg):
    """Run with both nodes dead from t=0 and record when phone 0 transmits and times out."""
    m = Model(cfg)
    sends, timeouts, begins = [], [], []
    orig_send, orig_timeout, orig_begin = m.phones._send, m.phones._timeout, m.phones.begin

    def send(p, tx, now, fp):
        sends.append(now)
        orig_send(p, tx, now, fp)

    def timeout(p, tx, now, fp):
        timeouts.append(now)
        orig_timeout(p, tx, now, fp)

    def begin(p, gen):
        if gen == m.phones.gen[p]:
            begins.append(m.sim.now)
        orig_begin(p, gen)

    m.phones._send, m.phones._timeout, m.phones.begin = send, timeout, begin
    m.run()
    return sends, timeouts, begins


def _dead_registrar(**phone):
    return scenario(
        duration="100s",
        fleets=[{"name": "f", "count": 1, "start": "boot_storm", "boot_window": "0s", "phone": phone}],
        faults=[{"node": "a", "at": "0s"}, {"node": "b", "at": "0s"}],
    )


def test_rfc3261_retransmissions_and_timer_f():
    sends, timeouts, begins = _trace_sends(_dead_registrar(retry={"interval": "1000s"}))
    assert sends == pytest.approx([0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    assert timeouts == pytest.approx([32.0])  # 64·T1


def test_sipp_max_retrans_times_out_when_next_retransmission_is_due():
    sends, timeouts, _ = _trace_sends(_dead_registrar(timers={"max_retransmissions": 9}, retry={"interval": "1000s"}))
    assert sends == pytest.approx([0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5])
    assert timeouts == pytest.approx([31.5])  # lab notes: SIPp K=9 times out at 31.5 s
    sends, timeouts, _ = _trace_sends(_dead_registrar(timers={"max_retransmissions": 2}, retry={"interval": "1000s"}))
    assert sends == pytest.approx([0, 0.5, 1.5]) and timeouts == pytest.approx([3.5])


def test_cisco_timer_f_16s_and_custom_t1_t2():
    sends, timeouts, _ = _trace_sends(_dead_registrar(timers={"timer_f": "16s"}, retry={"interval": "1000s"}))
    assert sends == pytest.approx([0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5]) and timeouts == pytest.approx([16.0])
    sends, timeouts, _ = _trace_sends(_dead_registrar(timers={"t1": "1s", "t2": "2s"}, retry={"interval": "1000s"}))
    # T1=1, T2=2: 0, 1, 3, 5, ... every 2 s until Timer F = 64 s
    assert sends[:5] == pytest.approx([0, 1, 3, 5, 7]) and timeouts == pytest.approx([64.0])


def test_fixed_retry_after_timeout():
    _, timeouts, begins = _trace_sends(_dead_registrar(retry={"interval": "20s"}))
    # begin at 0, timeout at 32, next transaction at 52, timeout at 84
    assert begins == pytest.approx([0, 52])
    assert timeouts == pytest.approx([32, 84])


def test_timeout_interval_overrides_rule():
    _, timeouts, begins = _trace_sends(_dead_registrar(retry={"interval": "60s", "timeout_interval": "2s"}))
    assert begins[:3] == pytest.approx([0, 34, 68])  # Linphone: "retry in 2 seconds" after a timeout


def test_rfc5626_backoff_bounds():
    cfg = _dead_registrar(retry={"mode": "backoff", "base": "30s", "max": "1800s", "exponent_offset": 1})
    cfg = cfg.model_copy(update={"duration": 3000.0})
    _, timeouts, begins = _trace_sends(cfg)
    waits = [b - t for t, b in zip(timeouts, begins[1:])]
    # baresip: W = min(1800, 30·2^(n+1)); wait uniform in [W/2, W]
    for n, w in enumerate(waits):
        W = min(1800.0, 30.0 * 2 ** (n + 1))
        assert W / 2 - 1e-9 <= w <= W + 1e-9


def test_max_attempts_give_up():
    _, timeouts, begins = _trace_sends(_dead_registrar(retry={"interval": "1s", "max_attempts": 2, "after_max": "give_up"}))
    assert len(begins) == 2 and len(timeouts) == 2


def test_503_retry_after_honoured():
    cfg = scenario(
        duration="200s",
        fleets=[{"name": "f", "count": 50, "start": "boot_storm", "boot_window": "0s", "phone": {"retry": {"interval": "1s"}}}],
        registrar={"workers": 1, "queue_limit": 0, "when_full": "reply_503", "retry_after": "30s", "retry_after_max": "60s",
                   "service_time": "100ms"},
    )
    m = Model(cfg)
    fails = []
    orig = m.phones._fail

    def fail(p, t, fp, outcome, retry_after, timeout=False, status=0):
        fails.append((p, t, retry_after))
        orig(p, t, fp, outcome, retry_after, timeout, status=status)

    m.phones._fail = fail
    starts = []
    ob = m.phones.begin

    def begin(p, gen):
        if gen == m.phones.gen[p]:
            starts.append((p, m.sim.now))
        ob(p, gen)

    m.phones.begin = begin
    m.run()
    assert fails, "the registrar must have rejected some REGISTERs"
    ras = [ra for _, _, ra in fails]
    assert min(ras) >= 30 and max(ras) <= 60 and max(ras) - min(ras) > 10  # spread over the range
    checked = 0
    for p, t, ra in fails:
        if t + ra >= 199:
            continue  # the retry falls after the end of the run
        checked += 1
        nxt = [s for q, s in starts if q == p and s > t]
        assert nxt and nxt[0] - t >= ra - 1e-9  # no phone retries before Retry-After
    assert checked > 10
