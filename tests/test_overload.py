"""Registrar overload as the products implement it, each mechanism against its closed form or rule:
the kernel's UDP receive buffer (bytes, truesize), Kamailio's SO_RCVBUF probing, stateless vs
stateful handling of retransmissions, Asterisk's taskprocessor alert, phone retry by response
code, and the storm example that clears vs the one that does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from simsip.api import load_config, simulate
from simsip.config.schema import Registrar, RetryRule, UdpBuffer
from simsip.engine.model import Model
from simsip.metrics import storm_figures
from simsip.protocols import overload, registration
from tests.conftest import EXAMPLES, scenario

MODELS = Path(__file__).resolve().parents[1] / "models"


def _bins(log, name):
    return np.asarray(log.bins[name].v) if name in log.bins else np.zeros(1, dtype=int)


# --------------------------------------------------------------------------- the receive buffer
def test_linux_setsockopt_doubles_the_request_capped_at_rmem_max():
    assert overload.setsockopt_rcvbuf(100_000, rmem_max=212_992) == 200_000
    assert overload.setsockopt_rcvbuf(1 << 20, rmem_max=212_992) == 2 * 212_992
    assert overload.setsockopt_rcvbuf(10, rmem_max=212_992) == overload.SOCK_MIN_RCVBUF


@pytest.mark.parametrize("rmem_max", [100_000, 212_992, 250_000, 262_144, 8 << 20])
def test_kamailio_probe_ends_at_twice_its_last_request_capped_at_rmem_max(rmem_max):
    """probe_max_receive_buffer from rmem_default 212992 (more than half of maxbuffer 256 KiB):
    doubling fails at once, then +2048 B steps up to 212992 + 24·2048 = 262144 = maxbuffer; Linux
    keeps 2·min(request, rmem_max), which never reads back smaller than the request here."""
    last = 212_992 + ((262_144 - 212_992) // 2048) * 2048
    assert last == 262_144
    assert overload.kamailio_rcvbuf(212_992, rmem_max, 262_144) == 2 * min(last, rmem_max)


def test_kamailio_probe_doubles_from_a_small_default_and_stops_at_maxbuffer():
    # from 16 KiB the request doubles to 128 KiB (256 KiB would pass maxbuffer), then steps by 2 KiB
    assert overload.kamailio_rcvbuf(16_384, 8 << 20, 262_144) == 2 * 262_144
    # a default already above maxbuffer: Kamailio never calls setsockopt
    assert overload.kamailio_rcvbuf(600_000, 8 << 20, 262_144) == 600_000


def test_buffer_of_B_bytes_holds_floor_B_over_s_plus_one():
    assert overload.udp_queue_capacity(425_984, 2304) == 425_984 // 2304 + 1 == 185
    assert overload.udp_queue_capacity(23_040, 2304) == 11  # exactly 10 truesizes: one more fits
    assert UdpBuffer().capacity == 185
    assert Registrar(udp_buffer={"sizing": "rmem_default", "rmem_default": 23_040}).queue_capacity == 11
    assert Registrar(queue_limit=7).queue_capacity == 7  # no buffer: the message count


def test_local_truesize_is_the_senders_skb_as_the_lab_kernel_charges_it():
    """A UDP datagram from a local socket is charged the skb its sender allocated: kmalloc size of
    SKB_DATA_ALIGN(payload + 59) + 320, plus the 256 B sk_buff. examples/lab/storm-persists: SIPp's
    REGISTERs carry 332–344 B of UDP payload and the new master's socket showed 212 480 B charged
    (ss -uanm r) and 170 240 B unread (Recv-Q): 166 and 133 datagrams of exactly 1280 B, neither a
    multiple of the 2304 B a NIC's 2 KiB buffer costs; dmq-sync-burst's 744 B KDMQ cost 2304 B."""
    assert overload.local_truesize(332) == overload.local_truesize(344) == 1280
    assert overload.local_truesize(744) == 2304
    assert 212_480 == 166 * overload.local_truesize(344) and 170_240 == 133 * 1280
    assert overload.local_truesize(645) == 1280 and overload.local_truesize(646) == 2304  # 704 B of head room
    with pytest.raises(ValueError):
        overload.local_truesize(-1)


def test_udp_rmem_release_gives_back_a_quarter_buffer_at_once():
    """udp_rmem_release: a read adds its truesize to forward_deficit; the deficit is released when it
    reaches sk_rcvbuf >> 2 or the reader queue is empty. 212 992 B and 1280 B datagrams: the 42nd read
    of a backlog releases 42 · 1280 = 53 760 B (≥ 53 248), the 41 before release nothing."""
    d, freed = 0, []
    for _ in range(84):
        d, r = overload.udp_read(d, 1280, 212_992, reader_empty=False)
        freed.append(r)
    assert [k + 1 for k, r in enumerate(freed) if r] == [42, 84] and set(freed) - {0} == {53_760}
    assert overload.udp_read(2560, 1280, 212_992, reader_empty=True) == (0, 3840)  # the reader queue ran dry
    assert overload.udp_admits(212_992, 212_992) and not overload.udp_admits(212_993, 212_992)


@pytest.mark.parametrize("admission, held", [("not_over", 167), ("fits", 166)])
def test_receive_queue_saw_tooths_between_three_quarters_and_the_full_buffer(admission, held):
    """A deterministic backlog on one socket (212 992 B, 1280 B datagrams, one reader every 45 ms,
    an arrival every 5 ms): the unread queue fills to what the kernel admits — floor(B/s) + 1 = 167
    under Linux ≤ 6.17's test, floor(B/s) = 166 under 6.18's (``admission: fits``) — then every read
    leaves its bytes charged until the 42nd gives 42 slots back at once: the unread count falls to
    held − 42 at each release and is refilled by the next 42 arrivals. The capture of
    examples/lab/storm-persists (kernel 6.18) shows 124–157 at 50 ms resolution: the minimum is
    6.18's 166 − 42 = 124, not the older kernels' 125."""
    from simsip.engine.registrar import ReceiveQueue
    from simsip.protocols.overload import udp_queue_capacity

    B, s = 212_992, 1280
    assert udp_queue_capacity(B, s, admission) == held
    q = ReceiveQueue(held, s, B, admission)
    free, served, lengths, admitted_runs, run = 0.0, 0, [], [], 0
    for k in range(6000):
        now = k * 0.005
        while q and q[0] <= now:
            q.popleft()
        lengths.append(len(q))
        if q.full():
            # full: the unread datagrams and the read-but-charged ones fill the buffer together
            assert len(q) + q.deficit // s == held
            if run:
                admitted_runs.append(run)
            run = 0
            continue
        run += 1
        start = max(now, free)
        free = start + 0.045
        served += 1
        if start > now:
            q.append(start, now)
    steady = lengths[2000:]
    assert min(steady) == held - 42 and max(steady) > 155  # at the release, refilled after it
    assert set(admitted_runs[5:]) == {42}  # a release opens 42 slots, filled by the next 42 arrivals
    # negative control: without a byte bound (a message count of 167) the queue never drops below 166
    c = ReceiveQueue(B // s + 1)
    free, lens = 0.0, []
    for k in range(6000):
        now = k * 0.005
        while c and c[0] <= now:
            c.popleft()
        lens.append(len(c))
        if c.full():
            continue
        start = max(now, free)
        free = start + 0.045
        if start > now:
            c.append(start, now)
    assert min(lens[2000:]) >= B // s


def test_a_queue_that_empties_gives_every_byte_back():
    """A read that empties the reader queue releases the whole deficit (udp_rmem_release's
    skb_queue_empty test): a short burst leaves nothing charged once it has been read."""
    from simsip.engine.registrar import ReceiveQueue

    q = ReceiveQueue(167, 1280, 212_992)
    for k in range(5):
        q.append(1.0 + k, 0.001 * k)
    for _ in range(5):
        q.popleft()
    assert (q.charged, q.deficit, len(q)) == (0, 0, 0) and not q.full()


def _burst(n, registrar, **phone):
    """n phones whose first REGISTERs all reach node a 1 ms after t=0; one 10 s worker."""
    reg = {"workers": 1, "service_time": "10s", "min_expires": "10s"}
    reg.update(registrar)
    return scenario(duration="20s", output={"resolution": "100ms", "report": False},
                    fleets=[{"name": "f", "count": n, "start": "boot_storm", "boot_window": "0s",
                             "phone": {"expires": "60s", **phone}}],
                    registrar=reg)


def test_deterministic_burst_drops_exactly_what_the_buffer_cannot_hold():
    B, s, n = 23_040, 2304, 50
    cfg = _burst(n, {"udp_buffer": {"sizing": "rmem_default", "rmem_default": B, "truesize": s}})
    log = Model(cfg).run()
    held = B // s + 1
    rejected = _bins(log, "rejected_a")
    assert rejected[0] == n - 1 - held  # one in the worker, `held` in the buffer, the rest dropped
    assert _bins(log, "queue_a")[0] == held
    assert rejected[5] == n  # every retransmission at T1 finds the buffer still full


def test_linux_6_18_holds_one_datagram_fewer_and_always_takes_one():
    """``admission: fits`` (Linux 6.18): the same burst leaves floor(B/s) in the buffer, one fewer;
    and a buffer smaller than one datagram still takes one when nothing is charged (the kernel's
    ``if (rmem) goto drop``), as the older test does."""
    from simsip.protocols.overload import admission_for_kernel, udp_admits

    B, s, n = 23_040, 2304, 50
    cfg = _burst(n, {"udp_buffer": {"sizing": "rmem_default", "rmem_default": B, "truesize": s, "admission": "fits"}})
    log = Model(cfg).run()
    assert _bins(log, "rejected_a")[0] == n - 1 - B // s
    assert _bins(log, "queue_a")[0] == B // s
    assert udp_admits(0, 1000, 2304, "fits") and not udp_admits(1, 1000, 2304, "fits")
    assert udp_admits(1000, 1000, 2304) and not udp_admits(1001, 1000, 2304)
    assert [admission_for_kernel(r) for r in ("6.17.9", "6.18.0", "7.0.1", "4.18.0-553.el8")] == \
        ["not_over", "fits", "fits", "not_over"]
    with pytest.raises(ValueError):
        admission_for_kernel("unknown")


def test_negative_control_a_message_queue_of_2000_drops_nothing():
    log = Model(_burst(50, {"queue_limit": 2000})).run()
    assert _bins(log, "rejected_a").sum() == 0


# --------------------------------------------------------------------------- stateless vs stateful
def _slow(front, n=20, window="60s"):
    """n phones at once, one 300 ms worker: the k-th waits 0.3·k s, far beyond T1 for most. A
    retransmission waits behind every first copy, so the transaction must outlive its reply by up
    to 6 s to absorb it (``absorb_window``; Kamailio's wt_timer is 5 s)."""
    return scenario(duration="60s", fleets=[{"name": "f", "count": n, "start": "boot_storm", "boot_window": "0s",
                                             "phone": {"expires": "3600s"}}],
                    registrar={"workers": 1, "service_time": "300ms", "queue_limit": 2000, "transactions": front,
                               "absorb_window": window})


def test_stateless_registrar_serves_every_copy_that_arrives():
    log = Model(_slow("stateless")).run()
    rx, served = _bins(log, "register_rx_a").sum(), _bins(log, "served_a").sum()
    assert rx > 40  # queueing beyond T1: the phones retransmitted
    assert served == rx  # every copy saved and answered (none dropped, none still queued)
    assert _bins(log, "duplicates_a").sum() == rx - 20
    assert log.counters["stray_responses"] == rx - 20  # the duplicate 200s the phones ignore


def test_stateful_front_serves_each_transaction_once():
    log = Model(_slow("stateful")).run()
    rx = _bins(log, "register_rx_a").sum()
    assert rx > 40
    assert _bins(log, "served_a").sum() == 20  # one save per transaction
    assert _bins(log, "absorbed_a").sum() == rx - 20
    assert _bins(log, "duplicates_a").sum() == 0
    assert log.counters["transactions_succeeded"] == 20


def test_a_transaction_gone_after_absorb_window_is_processed_again():
    """With wt_timer 5 s, a copy read more than 5 s after its transaction's reply is a new request."""
    log = Model(_slow("stateful", window="5s")).run()
    served, absorbed = _bins(log, "served_a").sum(), _bins(log, "absorbed_a").sum()
    assert served > 20 and served == 20 + _bins(log, "duplicates_a").sum()
    assert served + absorbed == _bins(log, "register_rx_a").sum()


def test_stateful_front_resends_the_stored_reply_to_a_late_retransmission():
    """A copy read after the reply left gets that reply again (here: lost replies force it)."""
    cfg = _slow("stateful", n=5)
    cfg = cfg.model_copy(update={"network": cfg.network.model_copy(update={"loss": 0.3})})
    log = Model(cfg).run()
    assert _bins(log, "served_a").sum() <= log.counters["transactions_started"]
    assert log.counters["transactions_succeeded"] == 5


# --------------------------------------------------------------------------- Asterisk's alert
def _alert(transport="udp"):
    """600 phones at once into one 20 ms worker; the alert at 4 queued, cleared at 2 (scaled 500/450)."""
    return scenario(duration="20s", output={"resolution": "100ms", "report": False},
                    fleets=[{"name": "f", "count": 600, "start": "boot_storm", "boot_window": "0s",
                             "phone": {"expires": "3600s", "transport": transport,
                                       "retry": {"interval": "60s"}}}],
                    registrar={"workers": 1, "service_time": "20ms", "queue_limit": 10_000_000,
                               "overload": "taskprocessor", "overload_high": 500, "overload_low": 450})


def test_taskprocessor_alert_rises_at_high_water_and_clears_at_low_water():
    m = Model(_alert())
    log = m.run()
    node = m.registrars[0]
    ignored = _bins(log, "ignored_a")
    # 1 in the worker, 500 queued (the push that reaches 500 raises the alert), 99 ignored
    assert ignored[0] == 600 - 1 - 500
    raised, cleared = node.alerts[0]
    assert raised == pytest.approx(0.001)
    # the pop that brings the queue to 450: the 50th queued request starts at 0.001 + 50·20 ms
    assert cleared == pytest.approx(0.001 + 50 * 0.020)
    # every retransmission at T1 (sent 0.5 s, lands 0.501 s) meets the alert; phones whose 200
    # (1 ms there, 20 ms per REGISTER, 1 ms back) came before 0.5 s sent none
    answered = int((0.5 - 0.002) // 0.020)
    assert ignored[5] == 600 - answered
    assert _bins(log, "overload_a")[:10].all() and _bins(log, "overload_a")[11] == 0
    assert _bins(log, "resp_503").sum() == 0  # UDP requests are ignored, never answered


def test_taskprocessor_alert_answers_tcp_503_without_retry_after():
    m = Model(_alert("tcp"))
    log = m.run()
    assert _bins(log, "ignored_a").sum() > 0
    assert _bins(log, "resp_503").sum() == _bins(log, "ignored_a").sum()


def test_negative_control_no_alert_ignores_nothing():
    cfg = _alert()
    cfg = cfg.model_copy(update={"registrar": cfg.registrar.model_copy(update={"overload": "none"})})
    log = Model(cfg).run()
    assert "ignored_a" not in log.bins and log.counters.get("ignored_a") is None


# --------------------------------------------------------------------------- phones per response code
def _profile_retry(name):
    return RetryRule.model_validate(yaml.safe_load((MODELS / "phones" / f"{name}.yaml").read_text())["phone"]["retry"])


def test_cisco_blank_retry_reg_rsc_waits_the_long_interval_after_any_failure_response():
    rule = _profile_retry("cisco-mpp")
    for status in (403, 500, 503):
        assert registration.failure_wait(rule, 0, status=status) == 1200.0
    assert registration.failure_wait(rule, 0, timeout=True) == 30.0  # a timeout is not a response
    assert registration.failure_wait(rule, 0, status=503, retry_after=1500.0) == 1500.0  # Retry-After honoured


def test_cisco_phone_waits_1200s_after_a_503():
    phone = yaml.safe_load((MODELS / "phones" / "cisco-mpp.yaml").read_text())["phone"]
    phone.pop("description")
    cfg = scenario(duration="1500s", fleets=[{"name": "f", "count": 1, "start": "boot_storm", "boot_window": "0s",
                                              "phone": phone}],
                   registrar={"workers": 1, "queue_limit": 0, "when_full": "reply_503", "min_expires": "10s"})
    m = Model(cfg)
    starts = []
    orig = m.phones.begin

    def begin(p, gen):
        if gen == m.phones.gen[p]:
            starts.append(m.sim.now)
        orig(p, gen)

    m.phones.begin = begin
    m.run()
    # 503 after 1 ms there and 1 ms back: the next attempt 1200 s later (not 30 s)
    assert starts[:2] == [0.0, pytest.approx(0.002 + 1200.0)]


def test_grandstream_waits_1200s_after_403_only():
    rule = _profile_retry("grandstream")
    assert registration.failure_wait(rule, 0, status=403) == 1200.0
    assert registration.failure_wait(rule, 0, status=503) == 20.0
    assert registration.failure_wait(rule, 0, timeout=True) == 20.0


def test_pjsua_retries_only_temporary_failures():
    rule = _profile_retry("pjsua")
    assert registration.failure_wait(rule, 0, status=403) is None  # not retried
    assert registration.failure_wait(rule, 0, status=401) is None
    assert registration.failure_draws(rule, 0, status=403) == (False, False)  # no draw consumed
    assert registration.failure_wait(rule, 0, status=503, u=0.5) == pytest.approx(5.0)  # 0 + U[0, 10]
    assert registration.failure_wait(rule, 1, status=600, u=0.5) == pytest.approx(300.0)
    assert registration.failure_wait(rule, 1, timeout=True, u=0.0) == pytest.approx(290.0)


def test_rules_without_codes_are_unchanged():
    rule = RetryRule()
    for status in (0, 403, 503):
        assert registration.failure_wait(rule, 0, status=status) == 30.0


# --------------------------------------------------------------------------- the storm example
def _storm(path, **registrar):
    cfg = load_config(path)
    if registrar:
        cfg = cfg.model_copy(update={"registrar": cfg.registrar.model_copy(update=registrar)})
    res = simulate(cfg, replications=1)
    return storm_figures(res.timeseries)["node-a"], res.timeseries


@pytest.mark.extensive  # runs the example twice (10 min of 6000 phones)
def test_stateless_storm_collapses_and_stateful_storm_clears():
    collapse, ts_a = _storm(EXAMPLES / "register-storm.yaml")
    clears, ts_b = _storm(EXAMPLES / "register-storm-stateful.yaml")
    assert collapse["cleared"] == 0 and collapse["overload_end"] == pytest.approx(600.0)  # negative control
    assert collapse["duplicates"] > 0.3 * collapse["served_total"]
    assert clears["cleared"] == 1 and clears["overload_end"] <= 120.0
    # demand after the storm is 6000 phones / 30 s = 200 REGISTER/s: only the stateful front meets it
    late = slice(30, 60)  # the last 5 minutes (10 s steps)
    assert ts_b["resp_2xx"].iloc[late].sum() / 300.0 == pytest.approx(200.0, rel=0.02)
    assert ts_a["resp_2xx"].iloc[late].sum() / 300.0 < 0.8 * 200.0


@pytest.mark.extensive
def test_stateless_storm_clears_with_kamailios_stock_buffer():
    stock, _ = _storm(EXAMPLES / "register-storm.yaml", udp_buffer=UdpBuffer())
    assert stock["cleared"] == 1
    assert stock["queueing_delay_max"] < 185 / 250 + 0.5  # under a second of work in 185 REGISTERs


def test_taskprocessor_rule_is_a_hysteresis():
    assert overload.taskprocessor_alert(False, 499) is False
    assert overload.taskprocessor_alert(False, 500) is True  # the push that reaches high water
    assert overload.taskprocessor_alert(True, 451) is True  # between the levels: unchanged
    assert overload.taskprocessor_alert(False, 451) is False
    assert overload.taskprocessor_alert(True, 450) is False  # the pop that reaches low water


# --------------------------------------------------------------------------- pike
def test_pike_rule_blocks_at_the_density_and_unblocks_after_a_quiet_unit():
    st = [0, 0, 0, False]
    assert [overload.pike_hit(st, 0.1, 2.0, 3) for _ in range(4)] == [False, False, True, True]
    assert overload.pike_hit(st, 2.5, 2.0, 3) is True  # the previous unit had 4 hits: still red
    st2 = [0, 0, 0, False]
    overload.pike_hit(st2, 0.0, 2.0, 3)
    overload.pike_hit(st2, 0.0, 2.0, 3)
    assert overload.pike_hit(st2, 2.1, 2.0, 3) is False  # new unit: prev 2 < 3, curr 1
    st3 = [0, 0, 0, False]
    for _ in range(5):
        overload.pike_hit(st3, 0.0, 2.0, 3)
    assert overload.pike_hit(st3, 4.1, 2.0, 3) is False  # an empty unit in between unblocks


def _office(group, density=30, ban="0s", n=40):
    return scenario(duration="10s", output={"resolution": "100ms", "report": False},
                    fleets=[{"name": "office", "count": n, "start": "boot_storm", "boot_window": "0s",
                             "phone": {"expires": "3600s", "nat_group": group}}],
                    registrar={"workers": 4, "service_time": "1ms", "queue_limit": 2000,
                               "pike": {"reqs_density_per_unit": density, "ban_time": ban}})


def test_pike_blocks_a_nated_office_from_its_30th_request():
    log = Model(_office(40)).run()
    # one source: the 30th REGISTER of the unit turns it red; it and the 10 after it are dropped
    pike, ok = _bins(log, "pike_a"), _bins(log, "resp_2xx")
    assert pike[0] == 40 - 29
    # their retransmissions at 0.5 and 1.5 s find the source red; unit [0, 2 s) counted 62 hits, so
    # the swap at 2 s keeps it red and the 3.5 s copies are dropped too; unit [2, 4 s) counted 11 < 30:
    # the swap at 4 s unblocks it, and the copies sent at 7.5 s get through
    assert pike[5] == pike[15] == pike[35] == 11 and pike[36:].sum() == 0
    assert ok[:75].sum() == 29 and ok[75:].sum() == 11


def test_negative_control_phones_with_their_own_addresses_pass_pike():
    log = Model(_office(1)).run()
    assert _bins(log, "pike_a").sum() == 0
    assert log.counters["transactions_succeeded"] == 40


def test_kamailio_cfg_ipban_keeps_a_blocked_office_out_for_ban_time():
    log = Model(_office(40, ban="300s")).run()
    assert _bins(log, "resp_2xx").sum() == 29  # the 7.5 s copies meet the ban, not pike
    assert _bins(log, "pike_a")[75] == 11


# --------------------------------------------------------------------------- Asterisk's threadpool
def test_threadpool_rule_is_asterisks_grow_and_worker_idle():
    """main/threadpool.c: queued_task_pushed grows by auto_increment only when no idle thread could be
    woken, grow() cuts delta to max_size (0: no limit); worker_idle waits idle_timeout from its start,
    and each push wakes (and so restarts) every idle thread."""
    g = overload.threadpool_growth
    assert g(0, 0, 5, 50) == 5 and g(5, 1, 5, 50) == 0 and g(48, 0, 5, 50) == 2 and g(50, 0, 5, 50) == 0
    assert g(500, 0, 5, 0) == 5  # max_size 0: no limit
    e = overload.threadpool_idle_expired
    assert not e(59.9, 0.0, 0.0, 60.0) and e(60.0, 0.0, 0.0, 60.0)
    assert not e(100.0, 0.0, 50.0, 60.0) and e(110.0, 0.0, 50.0, 60.0)  # woken at 50 s: dies at 110 s
    assert not e(1e9, 0.0, 0.0, 0.0)  # idle_timeout 0: waits for ever


def _pool_cfg(count, expires, service, duration, pool=None, workers=4, window="0s", percent=50):
    return scenario(
        duration=duration,
        fleets=[{"name": "f", "count": count, "start": "boot_storm", "boot_window": window,
                 "phone": {"expires": expires, "refresh": {"mode": "percent", "percent": percent}}}],
        registrar={"workers": workers, "service_time": service, "min_expires": "10s", "queue_limit": 100000,
                   **({"threadpool": pool} if pool is not None else {})},
        engine={"compact_records": False},  # the tests compare each 200 OK's time
    )


ASTERISK_POOL = {"initial_size": 0, "auto_increment": 5, "max_size": 50, "idle_timeout": "60s", "serializers": 31}


def test_threadpool_starts_empty_and_grows_by_five_at_the_first_push_only_under_light_load():
    log = Model(_pool_cfg(3, "100s", "1ms", "400s", ASTERISK_POOL)).run()
    c = log.counters
    # the first REGISTER finds no thread: +5; the others (and every refresh, 50 s apart) find one idle,
    # and every push wakes all idle threads, so none reaches its 60 s idle timeout
    assert (c["threads_added_a"], c["threads_peak_a"], c["threads_died_a"]) == (5, 5, 0)


def test_negative_control_threadpool_per_thread_idle_timers_would_kill_the_idle_threads(monkeypatch):
    """If a push woke only the thread it hands the task to (each idle thread on its own 60 s timer), the
    threads that never serve would die between the 50 s refreshes: the wake-all rule is what keeps them."""
    from simsip.engine import registrar

    monkeypatch.setattr(registrar, "threadpool_idle_expired",
                        lambda now, since, last, t: t > 0 and now >= since + t)
    c = Model(_pool_cfg(3, "100s", "1ms", "400s", ASTERISK_POOL)).run().counters
    assert c["threads_died_a"] > 0


def test_threadpool_idle_threads_die_after_idle_timeout_and_the_pool_grows_again():
    """Boot at 0, the next REGISTERs 1800 s later (50 % of 3600 s): all 5 threads idle for > 60 s
    without a push have died; the refresh finds none and the pool grows by 5 again."""
    c = Model(_pool_cfg(3, "3600s", "1ms", "2000s", ASTERISK_POOL)).run().counters
    assert (c["threads_added_a"], c["threads_peak_a"], c["threads_died_a"]) == (10, 5, 5)


@pytest.mark.parametrize("serializers,top", [(0, 50), (31, 31)])
def test_threadpool_under_a_storm_grows_to_its_limit_and_then_serves_like_fixed_workers(serializers, top):
    """Simultaneous REGISTERs of 100 ms each: every sixth push finds no idle thread (5 per step) until
    max_size 50 — or the distributor's 31 serializers, 30 + 1. Under this storm the pool then serves
    exactly as that many fixed workers: the same outcomes."""
    pool = dict(ASTERISK_POOL, serializers=serializers)
    pooled = Model(_pool_cfg(400, "3600s", "100ms", "120s", pool)).run()
    fixed = Model(_pool_cfg(400, "3600s", "100ms", "120s", workers=top)).run()
    c = pooled.counters
    assert (c["threads_added_a"], c["threads_peak_a"]) == (top, top)
    for name in ("ph_t", "ph_p", "ph_v"):
        assert list(getattr(pooled, name)) == list(getattr(fixed, name)), name
    # and a fixed pool of Asterisk's initial threads would not keep up: later 200 OKs
    four = Model(_pool_cfg(400, "3600s", "100ms", "120s", workers=4)).run()
    assert max(four.ph_t) > max(pooled.ph_t) + 1.0


def test_threadpool_restarts_at_initial_size_with_the_process():
    """A new process has a new pool: after a restart the refresh storm grows it from 0 again, 5 at a time."""
    from simsip.config.schema import Fault

    cfg = _pool_cfg(400, "60s", "100ms", "200s", ASTERISK_POOL)  # the storm comes back every 30 s
    restart = Fault.model_validate({"kind": "process_restart", "node": "a", "at": "100s", "repair_after": "1s"})
    c = Model(cfg.model_copy(update={"faults": (restart,)})).run().counters
    plain = Model(cfg).run().counters
    assert plain["threads_added_a"] == 31 and plain["threads_died_a"] == 0  # 30 s between storms < 60 s
    assert c["threads_peak_a"] == 31 and c["threads_added_a"] == 62  # grew again from 0 after the restart


def test_asterisk_profiles_take_the_threadpool_defaults_from_the_source():
    """pjsip.conf [system] threadpool_* defaults (config_system.c before the taskpool) and the distributor's
    31 serializers: at most 31 REGISTERs at once, which the capacity figures use."""
    from simsip.config.loader import load_config_text

    for prof in ("asterisk-pjsip", "asterisk-pjsip-realtime"):
        doc = {"name": "a", "duration": "60s", "fleets": [{"name": "f", "count": 1}], "registrar": {"profile": prof}}
        reg = load_config_text(yaml.safe_dump(doc), "a.yaml").registrar
        tp = reg.threadpool
        assert (tp.initial_size, tp.auto_increment, tp.max_size, tp.idle_timeout, tp.serializers) == (0, 5, 50, 60.0, 31)
        assert reg.worker_limit == 31


# --------------------------------------------------------------------------- the alert per serializer
def _serialized(n, serializers, high=500, low=450, threads=None):
    """n phones at once into a 20 ms Asterisk pool: `threads` start at once (all serializers busy)."""
    threads = serializers if threads is None else threads
    return scenario(duration="20s", output={"resolution": "100ms", "report": False},
                    fleets=[{"name": "f", "count": n, "start": "boot_storm", "boot_window": "0s",
                             "phone": {"expires": "3600s", "retry": {"interval": "60s"}}}],
                    registrar={"service_time": "20ms", "queue_limit": 10_000_000,
                               "threadpool": {"initial_size": threads, "max_size": max(threads, 1), "auto_increment": 1,
                                              "serializers": serializers},
                               "overload": "taskprocessor", "overload_high": high, "overload_low": low})


def test_the_alert_needs_high_water_in_one_serializer_not_in_all():
    """res_pjsip queues each request in one of 31 serializers and the alert is raised by one
    taskprocessor reaching 500: 569 waiting over 31 serializers (≈ 18 each) raise nothing, where one
    queue of the node (the negative control: serializers 1) is in alert after 500 and ignores the
    other 99."""
    log = Model(_serialized(600, 31)).run()
    assert "ignored_a" in log.bins and _bins(log, "ignored_a").sum() == 0
    assert log.counters["overload_alerts_a"] == 0
    one = Model(_serialized(600, 1)).run()
    assert _bins(one, "ignored_a")[0] == 600 - 1 - 500


def test_the_serializer_alert_is_raised_by_the_push_that_brings_one_to_high():
    """4 serializers, high water 6, low 5, 4 requests in service: the arrivals (in phone order, all
    at 1 ms) fill the serializers their phones hash to; the first one to reach 6 raises the alert and
    every later arrival is ignored — counted here from the hash alone (Taskprocessors.of), not
    from the engine's queue."""
    from simsip.engine.registrar import Taskprocessors

    n, S, high = 60, 4, 6
    m = Model(_serialized(n, S, high=high, low=5))
    log = m.run()
    node = m.registrars[0]
    hash_of = Taskprocessors(S, high, 5, node.serializer_key).of
    counts, admitted = [0] * S, S  # the first S phones start at once
    for p in range(S, n):
        k = hash_of(p)
        counts[k] += 1
        admitted += 1
        if counts[k] == high:
            break
    assert max(counts) == high and sorted(counts)[-2] < high
    assert _bins(log, "ignored_a")[0] == n - admitted
    # the serializers are spread: each of the 4 got some of the 60 phones
    assert len({hash_of(p) for p in range(n)}) == S
