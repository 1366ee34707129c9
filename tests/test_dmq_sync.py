"""The dmq full sync as a mechanism (:mod:`simsip.protocols.sync`), against independent truths:
the kernel's receive-buffer arithmetic (a burst of N datagrams into a buffer of floor(R/truesize)+1),
dmq's peer-discovery rule (at start if a peer answers, else at the first ping that finds one), the
partial_sync fault (the receiver holds exactly the share sent, and after the failover exactly the
rest is unreachable), and the recorded lab run examples/lab/dmq-sync-burst (its RcvbufErrors row,
which the model with the burst disabled must fail)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from simsip.config.loader import load_config_text
from simsip.engine.model import Model
from simsip.protocols import sync as rules
from simsip.protocols.overload import udp_queue_capacity

ROOT = Path(__file__).resolve().parents[1]


def _scenario(n: int = 300, extra: str = "", faults: str | None = None, duration: str = "30s", rep: str = ""):
    faults = faults or "  - {kind: node_crash, node: master, at: 5s, repair_after: 5s}\n"
    text = f"""
name: sync
seed: 3
duration: {duration}
fleets:
  - name: udp
    count: {n}
    phases: even
    phone: {{expires: 3600s, refresh: {{mode: percent, percent: 50}}}}
registrar:
  profile: kamailio-dmq
  workers: 2
  min_expires: 10s
  udp_buffer: {{sizing: rmem_default, rmem_default: 212992}}
  replication: {{{rep}}}
{extra}
ha:
  profile: keepalived
  vrrp: {{version: 2, advert_int: 1s}}
  nodes: [{{name: a, priority: 200}}, {{name: b, priority: 100}}]
network: {{delay: 50us}}
faults:
{faults}
output: {{resolution: 1s, report: false}}
"""
    return load_config_text(text)


def _run(cfg):
    return Model(cfg).run()


# --------------------------------------------------------------------------- the receive buffer
def test_burst_into_a_buffer_nobody_drains_drops_all_but_what_it_holds():
    """N sync messages, readers that take one each and then stall: the kernel holds
    floor(R/truesize) + 1 unread datagrams and drops the rest (N − C − c), each once (tm's next
    copy would come after the run)."""
    n = 300
    cfg = _scenario(n, rep="sync_read_time: 100s, sync_t1: 60s, sync_timeout: 61s")
    log = _run(cfg)
    cap = udp_queue_capacity(212992, 2304)
    assert cap == 93
    assert log.syncs[0][2] == n
    assert log.counters["kdmq_dropped_a"] == n - cap - 2 == rules.burst_drops(n, cap + 2)
    assert log.counters["kdmq_dropped_b"] == 0
    assert log.counters["sync_retransmitted_a"] == 0
    assert sum(log.bins["kdmq_dropped_a"].v) == n - cap - 2
    assert sum(log.bins["rejected_a"].v) == 0  # the REGISTER socket is another socket (sync_socket: node)


@pytest.mark.parametrize("read_ms,n", [(0.7, 400), (0.3, 400), (1.5, 250), (0.05, 400)])
def test_burst_with_readers_drops_what_the_queue_bound_says(read_ms, n):
    """Readers that keep up with only part of the sender's rate: the kernel drops while the unread
    datagrams and the read ones not yet given back (forward deficit, released per quarter buffer or
    when the reader queue runs dry) exceed the buffer (:func:`burst_drops_charged`, to within one read
    per worker); at least what a buffer that frees each slot on its read would drop (:func:`burst_drops`)."""
    cfg = _scenario(n, rep=f"sync_read_time: {read_ms}ms, sync_t1: 60s, sync_timeout: 61s, "
                         "lag: {dist: constant, mean: 100us}")
    log = _run(cfg)
    cap = udp_queue_capacity(212992, 2304)
    want = rules.burst_drops_charged(n, 212992, 2304, rate=10000.0, workers=2, read_time=read_ms / 1000)
    # within a few reads: a read that ties with an arrival decides whether a release comes first
    assert abs(log.counters["kdmq_dropped_a"] - want) <= 6, (log.counters["kdmq_dropped_a"], want)
    assert log.counters["kdmq_dropped_a"] >= rules.burst_drops(n, cap, rate=10000.0, workers=2,
                                                                read_time=read_ms / 1000) - 2
    if read_ms < 0.2:
        assert log.counters["kdmq_dropped_a"] == want == 0


def test_dropped_sync_messages_are_retransmitted_on_timer_e_and_all_bindings_arrive():
    n = 400
    cfg = _scenario(n, rep="sync_read_time: 0.7ms")
    log = _run(cfg)
    dropped = log.counters["kdmq_dropped_a"]
    assert dropped > 0
    assert log.counters["sync_retransmitted_a"] == dropped  # each retransmitted copy finds the buffer drained
    assert log.counters["sync_given_up_a"] == 0
    # every phone is bound on a afterwards (a binding the sync would only repeat — a refresh already
    # replicated to a — is not counted as applied)
    st = log.stores[0]
    t_sync = log.syncs[0][0]
    held = {p: u for t, p, u in zip(st.t, st.phone, st.until) if t >= t_sync}
    assert len(held) == n and min(held.values()) > 30.0
    assert log.counters["sync_applied_a"] >= n - 2
    # the copies come T1 = 500 ms after the first: the drop bins hold them in the sync's second only
    b = log.bins["kdmq_dropped_a"]
    assert [i for i, v in enumerate(b.v) if v] == [int(t_sync)]


def test_shared_socket_sync_takes_the_register_workers_and_buffer():
    """sync_socket shared: the burst's drops are counted the same way, and the REGISTER socket's
    queue is the one the messages fill."""
    n = 300
    log = _run(_scenario(n, rep="sync_read_time: 100s, sync_t1: 60s, sync_timeout: 61s, sync_socket: shared"))
    assert log.counters["kdmq_dropped_a"] == n - udp_queue_capacity(212992, 2304) - 2


def test_no_burst_means_no_socket_and_no_drops():
    log = _run(_scenario(400, rep="sync_burst: false"))
    assert "kdmq_dropped_a" not in log.counters and log.counters["sync_applied_a"] == 400


@pytest.mark.parametrize("batch", [1, 7, 150])
def test_batched_sync_sends_ceil_n_over_b_messages(batch):
    n = 300
    log = _run(_scenario(n, rep=f"batch_msg_contacts: {batch}, sync_read_time: 100s, sync_t1: 60s, "
                                "sync_timeout: 61s"))
    m = rules.messages(n, batch)
    assert m == math.ceil(n / batch)
    cap = udp_queue_capacity(212992, 2304)
    assert log.counters["kdmq_dropped_a"] == max(0, m - cap - 2)
    fast = _run(_scenario(n, rep=f"batch_msg_contacts: {batch}, sync_read_time: 1ms"))
    if m <= cap:  # nothing dropped: every batch read, every contact applied (a refresh may have come first)
        assert fast.counters["kdmq_dropped_a"] == 0 and fast.counters["sync_applied_a"] >= n - 2


def test_group_size_follows_dmq_usrlocs_count_or_bytes_rule():
    """usrloc_dmq_send_multi_contact sends the group once it holds batch_msg_contacts contacts or its size
    estimate has reached batch_msg_size: ⌈size/bytes⌉ contacts when the bytes bind first."""
    assert rules.contacts_per_message(1, 60000, 5000) == 1  # no group at all: one KDMQ per contact
    assert rules.contacts_per_message(150, 60000, 400) == 150  # 150·400 = 60 000: both bind at once
    assert rules.contacts_per_message(150, 60000, 401) == 150  # the 150th contact crosses the size
    assert rules.contacts_per_message(150, 60000, 800) == 75
    assert rules.contacts_per_message(150, 60000, 1000) == 60
    assert rules.contacts_per_message(20, 60000, 1000) == 20
    assert rules.contacts_per_message(150, 1000, 400) == 3  # 400, 800, 1 200 ≥ 1 000: sent with three
    with pytest.raises(ValueError):
        rules.contacts_per_message(0)


@pytest.mark.parametrize("nbytes, per", [(400, 150), (800, 75), (2000, 30), (20000, 3)])
def test_a_sync_of_large_contacts_sends_more_messages(nbytes, per):
    """The same 300-binding sync in groups of 150: long contacts make the byte estimate close each group
    early, so the donor sends ⌈300/per⌉ messages, and every binding arrives."""
    n = 300
    log = _run(_scenario(n, rep=f"batch_msg_contacts: 150, sync_contact_bytes: {nbytes}, sync_read_time: 1ms"))
    assert log.counters["sync_messages_a"] == rules.messages(n, per) == math.ceil(n / per)
    assert log.counters["kdmq_dropped_a"] == 0 and log.counters["sync_applied_a"] >= n - 2


def test_batch_msg_size_beyond_dmq_usrlocs_cap_is_refused():
    from simsip.config.loader import ConfigError

    with pytest.raises(ConfigError, match="batch_msg_size"):
        _scenario(10, rep="batch_msg_size: 70000")


# --------------------------------------------------------------------------- peer discovery
def test_sync_begins_discovery_delay_after_the_process_answers():
    cfg = _scenario(100)
    log = _run(cfg)
    rep = cfg.registrar.replication
    started = 10.0 + cfg.registrar.start_time.mean  # repaired at 10 s, answers start_time later
    assert rep.discovery_delay == pytest.approx(0.004)
    assert log.syncs[0][0] == pytest.approx(rules.sync_begins(started, rep.discovery_delay, rep.ping_interval,
                                                              lambda t: True))


@pytest.mark.parametrize("ping", ["20s", None])
def test_with_no_peer_at_start_the_sync_waits_for_the_first_ping_that_finds_one(ping):
    """Both nodes crash; a comes back at 10 s, b at 40 s. dmq on a finds no peer at start: with a
    ping interval its sync begins at the first tick after b answers, else never (the callback runs
    once per process, on the first 200 of a notification)."""
    faults = ("  - {kind: node_crash, node: a, at: 5s, repair_after: 5s}\n"
              "  - {kind: node_crash, node: b, at: 5s, repair_after: 35s}\n")
    rep = f"ping_interval: {ping}" if ping else "ping_interval: null"
    cfg = _scenario(100, faults=faults, duration="80s", rep=rep)
    log = _run(cfg)
    st = cfg.registrar.start_time.mean
    dd = cfg.registrar.replication.discovery_delay
    b_up = 40.0 + st
    a_sync = [t for t, i, _ in log.syncs if i == 0]
    b_sync = [t for t, i, _ in log.syncs if i == 1]
    assert b_sync == [pytest.approx(b_up + dd)]  # a is up when b starts: at once
    want = rules.sync_begins(10.0 + st, dd, 20.0 if ping else None, lambda t: t >= b_up)
    if ping:
        assert want == pytest.approx(10.0 + st + 40.0 + dd)  # ticks at 30.06 (b down), 50.06
        assert a_sync == [pytest.approx(want)]
    else:
        assert want is None and a_sync == []


def test_next_ping_rule():
    assert rules.next_ping(10.0, 10.0, 20.0) == 30.0
    assert rules.next_ping(10.0, 30.0, 20.0) == 50.0
    assert rules.next_ping(10.0, 31.0, 20.0) == 50.0


# --------------------------------------------------------------------------- partial sync
@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.6, 1.0])
def test_partial_sync_leaves_the_receiver_exactly_the_share_sent(fraction):
    """b restarts with its sync cut at ``fraction``, then a crashes: b holds floor(f·N) bindings
    from the sync, and right after the VIP moves the rest — N − floor(f·N) phones — are unreachable
    (no phone refreshes in between: 3600 s expiry, even phases)."""
    n = 200
    # the even phases put refreshes at 4.x s + 9 s·k: none from b's restart to the check at 12 s
    faults = (f"  - {{kind: partial_sync, node: b, at: 4.6s, fraction: {fraction}}}\n"
              "  - {kind: process_restart, node: b, at: 5s, repair_after: 500ms}\n"
              "  - {kind: node_crash, node: a, at: 6s}\n")
    cfg = _scenario(n, faults=faults, duration="14s", rep="sync_read_time: 10us")  # no drops: the cut alone
    log = _run(cfg)
    assert log.counters["kdmq_dropped_b"] == 0
    kept = rules.cut_messages(n, fraction)
    assert log.counters["sync_applied_b"] == kept
    assert log.counters["sync_cut_b"] == n - kept
    ts = log.bins
    assert sum(ts["register_rx_a"].v[5:13]) == 0 and sum(ts["register_rx_b"].v[:13]) == 0  # no refresh in the window
    res = _reachable_after(cfg)
    assert res == kept


def _reachable_after(cfg) -> int:
    import simsip

    out = simsip.simulate(cfg, replications=1)
    ts = out.timeseries
    row = ts[ts["time"] >= 12].iloc[0]
    assert row["vip_node"] == "b"
    return int(row["reachable"])


def test_partial_sync_needs_a_fraction_and_a_replicated_registrar():
    with pytest.raises(Exception, match="fraction"):
        _scenario(10, faults="  - {kind: partial_sync, node: b, at: 1s}\n")
    with pytest.raises(Exception, match="fraction is for partial_sync"):
        _scenario(10, faults="  - {kind: node_crash, node: b, at: 1s, fraction: 0.5}\n")
    _scenario(10, faults="  - {kind: partial_sync, node: b, at: 1s, fraction: 0.5}\n")  # replicated: fine
    with pytest.raises(Exception, match="partial_sync needs"):
        load_config_text(_scenario_text_unreplicated())


def _scenario_text_unreplicated() -> str:
    return """
name: s
duration: 10s
fleets: [{name: u, count: 5}]
registrar: {profile: kamailio}
ha: {profile: keepalived, nodes: [{name: a, priority: 200}, {name: b, priority: 100}]}
faults: [{kind: partial_sync, node: b, at: 1s, fraction: 0.5}]
"""


# --------------------------------------------------------------------------- the lab run
@pytest.fixture(scope="module")
def lab_reports():
    from simsip.validate import validate

    run = ROOT / "examples" / "lab" / "dmq-sync-burst"
    return {burst: validate(run / "config.yaml", run, replications=20,
                            overrides=[f"registrar.replication.sync_burst={str(burst).lower()}"])
            for burst in (True, False)}


def _drop_row(rep):
    t = rep.table
    return t[t["key"] == "kernel_drops"].iloc[0]


def test_lab_sync_burst_rcvbuferrors_row_passes(lab_reports):
    row = _drop_row(lab_reports[True])
    assert row["lab"] == 57 and bool(row["pass"])
    assert lab_reports[True].passed


def test_negative_control_without_the_burst_the_rcvbuferrors_row_fails(lab_reports):
    row = _drop_row(lab_reports[False])
    assert row["sim"] == 0 and not bool(row["pass"])
    assert lab_reports[False].failures == [row["metric"]]


def test_a_shared_socket_makes_the_sync_compete_with_registers():
    """One socket for both: the stalled sync fills the buffer the REGISTERs need once the node has
    the VIP back (preempt), so the kernel drops REGISTERs too; on its own socket it drops none."""
    rep = "sync_read_time: 100s, sync_t1: 60s, sync_timeout: 61s"
    shared = _run(_scenario(300, rep=rep + ", sync_socket: shared", duration="60s"))
    own = _run(_scenario(300, rep=rep, duration="60s"))
    assert sum(own.bins["rejected_a"].v) == 0
    assert sum(shared.bins["rejected_a"].v) > 0
    assert shared.counters["kdmq_dropped_a"] == own.counters["kdmq_dropped_a"]


def test_partial_sync_also_cuts_a_sync_outside_the_socket():
    n = 200
    faults = ("  - {kind: partial_sync, node: b, at: 4.6s, fraction: 0.3}\n"
              "  - {kind: process_restart, node: b, at: 5s, repair_after: 500ms}\n")
    log = _run(_scenario(n, faults=faults, duration="8s", rep="sync_burst: false"))
    assert log.counters["sync_applied_b"] == rules.cut_messages(n, 0.3) == 60
    assert log.counters["sync_cut_b"] == n - 60


def test_a_partial_sync_armed_while_the_node_is_down_cuts_its_restart_sync():
    n = 200
    faults = ("  - {kind: node_crash, node: b, at: 2s, repair_after: 4s}\n"
              "  - {kind: partial_sync, node: b, at: 3s, fraction: 0.5}\n")
    log = _run(_scenario(n, faults=faults, duration="10s", rep="sync_read_time: 10us"))
    assert log.counters["sync_applied_b"] == 100 and log.counters["sync_cut_b"] == 100


def test_a_sync_message_waiting_in_the_socket_past_timer_e_is_retransmitted_and_read_again():
    """dmq answers a KDMQ only after a worker read it, and tm retransmits until a reply. Ten messages at
    once to the node's two readers taking 0.35 s each: originals are answered in pairs at 0.35, 0.7, 1.05,
    1.4 and 1.75 s. Timer E fires at 0.5 s (messages 2..9 unanswered: 8 copies) and at 1.5 s (messages 8
    and 9: 2 copies), none at 3.5 s: 10 retransmissions, none dropped, none given up."""
    log = _run(_scenario(10, rep="sync_read_time: 350ms, sync_rate: 1000000/s, sync_t1: 500ms, sync_t2: 4s"))
    reg = log.counters
    assert reg["sync_messages_a"] == 10 and reg["kdmq_dropped_a"] == 0
    assert reg["sync_retransmitted_a"] == 10, {k: v for k, v in reg.items() if "sync" in k or "kdmq" in k}
    assert reg["sync_given_up_a"] == 0 and reg["sync_applied_a"] >= 8
    # the negative side: readers fast enough to answer before Timer E see no retransmission at all
    quick = _run(_scenario(10, rep="sync_read_time: 40ms, sync_rate: 1000000/s, sync_t1: 500ms")).counters
    assert quick["sync_messages_a"] == 10 and quick["sync_retransmitted_a"] == 0
