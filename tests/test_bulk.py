"""Bulk refreshes are an exact optimisation of the fast engine, held to the plain event-by-event
engine: scaled twin cells where the bulk path carries most registrations must give identical
records with ``engine.fast_paths: false``, and negative controls that break one of its conditions
(the horizon, the free-worker test) must make the twins differ. The pieces it rests on — batched
draws equal to the scalar ones, and the calendar's order equal to the heap's — are tested alone."""

from __future__ import annotations

import numpy as np
import pytest

from simsip.config.types import Dist
from simsip.engine import phones as phones_mod
from simsip.engine import registrar as registrar_mod
from simsip.engine.core import Calendar, Sim
from simsip.engine.dists import sampler, vector_draws
from simsip.engine.model import Model
from simsip.rng import Stream
from simsip.config.schema import Scenario
from twin_matrix import canonical, matrix_doc, scenario_of

# plain-fleet cells at 20x the phones (1 200): the bulk path applies most refreshes; faults, VIP
# moves, queueing and restarts push the rest to events. Busy ones (slow) add REGISTERs in flight
# at almost every control event.
BULK_CELLS = [("keepalived-process_hang-plain", False), ("heartbeat-process_crash-plain", False),
              ("heartbeat-process_restart-plain", False), ("cold-process_crash-plain", False),
              ("weighted-node_crash-plain", False), ("pacemaker-ha_stop-plain", False),
              ("keepalived-node_crash-random_faults", False), ("keepalived-link_down-plain", True),
              ("pacemaker-node_crash-plain", True)]


def _scenario(cid, fast_paths, scale, slow, queue=False, nocheck=False):
    if not (queue or nocheck):
        return scenario_of(cid, fast_paths, scale, slow=slow)
    stack, rest = cid.split("-", 1)
    mix = "plain"
    doc = matrix_doc(stack, rest[: -len(mix) - 1], mix, scale)
    if queue:  # one slow worker: a queue forms at almost every refresh burst
        doc["registrar"].update({"workers": 1, "service_time": {"dist": "exponential", "mean": "20ms"}})
    if nocheck:  # keepalived alone: its adverts are the only periodic control events (inert when steady)
        doc["ha"].pop("health_check", None)
        doc.pop("auth", None)
        doc["network"].pop("loss", None)
        doc["network"].pop("arp", None)
        if doc["registrar"].get("data") == "replicated":
            if doc["registrar"]["replication"].get("sync_burst"):  # the sync-burst cells' buffer and cut go too
                doc["registrar"].pop("udp_buffer")
                doc["faults"] = [f for f in doc["faults"] if f["kind"] != "partial_sync"]
            doc["registrar"]["data"] = "none"
            doc["registrar"].pop("replication")
    if slow:
        doc["registrar"].update({"workers": 8, "service_time": "20ms"})
        doc["network"]["delay"] = "10ms"
    doc["engine"] = {"fast_paths": fast_paths}
    return Scenario.model_validate(doc, context={"strict_units": True})


def _twin(cid, slow, scale=20, queue=False, nocheck=False):
    fast_model = Model(_scenario(cid, True, scale, slow, queue, nocheck))
    fast = canonical(fast_model.run())
    exact = canonical(Model(_scenario(cid, False, scale, slow, queue, nocheck)).run())
    return fast, exact, fast_model.log


NOCHECK = [(f, slow) for f in ("node_crash", "process_crash", "process_hang", "link_down", "partition",
                               "phone_link_down", "ha_stop", "process_restart") for slow in (False, True)]


@pytest.mark.parametrize("fault,slow", NOCHECK, ids=[f + ("-slow" if s else "") for f, s in NOCHECK])
def test_bulk_across_inert_adverts_gives_identical_records(fault, slow):
    """keepalived without a track_script: between faults the only control events are adverts and
    backups' timers, and the bulk path runs across them while the group is steady."""
    fast, exact, log = _twin(f"keepalived-{fault}-plain", slow, nocheck=True)
    assert log.engine["bulk_registrations"] > 0.4 * log.counters["transactions_succeeded"], log.engine
    assert [k for k in fast if fast[k] != exact[k]] == []


def test_negative_control_a_group_always_called_steady_is_caught(monkeypatch):
    """Running the bulk path across every VRRP event, even while the VIP moves, must change the records."""
    from simsip.engine import vrrp

    monkeypatch.setattr(vrrp, "steady_until", lambda group: float("inf"))
    fast, exact, _ = _twin("keepalived-partition-plain", True, nocheck=True)
    assert [k for k in fast if fast[k] != exact[k]], "a bulk path across a VIP move went unnoticed"


def test_bulk_with_a_queue_at_one_slow_worker_gives_identical_records():
    fast, exact, log = _twin("weighted-node_crash-plain", False, queue=True)
    eng = log.engine
    assert eng["bulk_registrations"] > 200, eng  # between the bursts
    assert max(log.bins["queue_a"].v) > 3, eng  # the queue really formed
    assert [k for k in fast if fast[k] != exact[k]] == []


@pytest.mark.parametrize("cid,slow", BULK_CELLS, ids=[c + ("-slow" if s else "") for c, s in BULK_CELLS])
def test_bulk_refreshes_give_identical_records(cid, slow):
    fast, exact, log = _twin(cid, slow)
    eng = log.engine
    assert eng["bulk"], eng
    # the bulk path must really carry the run, or this proves nothing
    assert eng["bulk_registrations"] > 0.5 * log.counters["transactions_succeeded"], eng
    differ = [k for k in fast if fast[k] != exact[k]]
    assert not differ, f"{cid}: records differ in {differ}"


def test_scenarios_the_bulk_path_cannot_reproduce_say_why():
    """Loss, auth, non-plain fleets, replication: no bulk step, and the reason is recorded."""
    for cid, why in (("keepalived-node_crash-tcp_tls", "arrivals not folded"),
                     ("keepalived-node_crash-plain", "digest auth")):
        m = Model(scenario_of(cid, True))
        m.run()
        assert not m.log.engine["bulk"] and why in m.log.engine["bulk_disabled"], m.log.engine


NEGATIVE = [("keepalived-link_down-plain", True), ("pacemaker-node_crash-plain", True)]


@pytest.mark.parametrize("cid,slow", NEGATIVE)
def test_negative_control_a_bulk_step_that_ignores_the_horizon_is_caught(cid, slow, monkeypatch):
    """Applying refreshes whose 200 lands after the next control event must change the records."""
    orig = phones_mod.PhoneBank.bulk_step

    def step(self, t, p, g, reach):
        return orig(self, t, p, g, float("inf"))

    monkeypatch.setattr(phones_mod.PhoneBank, "bulk_step", step)
    fast, exact, _ = _twin(cid, slow)
    assert [k for k in fast if fast[k] != exact[k]], f"{cid}: a bulk step past the horizon went unnoticed"


def test_negative_control_a_bulk_step_that_assumes_idle_workers_is_caught(monkeypatch):
    """Serving every bulk request at once (ignoring busy workers) must change the records."""
    orig = registrar_mod.RegistrarNode.bulk_peek

    def peek(self, phones, arrive, deadline, horizon, requested):
        c, self.workers = self.workers, 10**9
        free, self.free_at = self.free_at, [-1.0]
        try:
            return orig(self, phones, arrive, deadline, horizon, requested)
        finally:
            self.workers, self.free_at = c, free

    monkeypatch.setattr(registrar_mod.RegistrarNode, "bulk_peek", peek)
    fast, exact, _ = _twin("weighted-node_crash-plain", False, queue=True)
    assert [k for k in fast if fast[k] != exact[k]], "a bulk step that ignores busy workers went unnoticed"


@pytest.mark.parametrize("dist", [Dist(dist="exponential", mean=0.002), Dist(dist="uniform", low=0.001, high=0.003),
                                  Dist(dist="constant", mean=0.004)], ids=["exponential", "uniform", "constant"])
def test_batched_draws_are_the_scalar_draws(dist):
    a, b = Stream(5, 0, "x"), Stream(5, 0, "x")
    one = sampler(dist, a)
    vec = vector_draws(dist, b)
    scalar = [one() for _ in range(20_000)]
    got = []
    for k in (1, 7, 4095, 2, 4096, 3000, 899):  # across block boundaries, peeks longer than used
        ahead = vec.peek(k + 13)
        vec.take(k)
        got.extend(ahead[:k].tolist())
    assert got == scalar[: len(got)]


def test_lognormal_and_normal_service_are_not_batched():
    s = Stream(1, 0, "x")
    assert vector_draws(Dist(dist="lognormal", mean=0.002, sd=0.001), s) is None
    assert vector_draws(Dist(dist="normal", mean=0.002, sd=0.001), s) is None


@pytest.mark.parametrize("radix", [False, True], ids=["sort", "radix"])
def test_calendar_runs_entries_in_the_heap_order_with_events_interleaved(radix):
    """Entries run at their times, ties in phone order after control events, interleaved with
    heap events; entries added while running land in later buckets or on the heap (``radix``:
    add_many orders every batch by the radix sort of its bucket offsets, as it does a large one)."""
    rng = np.random.default_rng(3)
    times = np.round(rng.random(400) * 20, 1)  # many ties
    phones = rng.permutation(400)
    seen_cal, seen_heap = [], []
    for use_cal in (True, False):
        sim = Sim()
        seen = seen_cal if use_cal else seen_heap

        def begin(p, g, sim=sim, seen=seen):
            seen.append((sim.now, "phone", p))
            if p % 3 == 0 and sim.now < 30:
                again = sim.now + 0.3 + (p % 5)
                (cal.add(again, p, 0) if use_cal else sim.phone_at(again, begin, p, 0))

        def step(t, p, g, lim, seen=seen):  # apply the first half in "bulk", stop at the rest
            k = max(1, len(t) // 2)
            for ti, pi in zip(t[:k].tolist(), p[:k].tolist()):
                seen.append((ti, "phone", pi))
                if pi % 3 == 0 and ti < 30:
                    cal.add(ti + 0.3 + (pi % 5), pi, 0)
            return k

        cal = Calendar(sim, 1.0, begin, step)
        cal.MIN_BATCH = 2
        cal.RADIX_MIN = 0 if radix else 10 ** 9
        if use_cal:
            sim.bulk = cal
            cal.add_many(times, phones, 0)
        else:
            for t, p in zip(times.tolist(), phones.tolist()):
                sim.phone_at(t, begin, p, 0)
        for t in np.arange(0.0, 40.0, 0.7).tolist():
            sim.call_at(t, lambda seen=seen, sim=sim: seen.append((sim.now, "control", -1)))
        sim.run(until=50.0)
    assert seen_cal == seen_heap
    assert len(seen_cal) > 500


def test_summary_json_says_what_ran_in_bulk_and_what_fell_back(tmp_path):
    import json

    from simsip.api import simulate

    res = simulate("examples/quickstart.yaml", replications=1, out=tmp_path / "run")
    eng = json.loads((tmp_path / "run" / "summary.json").read_text())["engine"]
    assert eng["bulk"] and eng["bulk_disabled"] is None
    assert eng["bulk_registrations"] > 0
    assert eng["bulk_fallbacks"], eng  # the crash sends refreshes to the event path, with reasons
    assert eng == res.summary["engine"]


def test_a_run_in_slices_for_progress_gives_identical_records():
    """simsip run's progress display runs the loop in slices of simulated time: same records."""
    for cid, nocheck in (("keepalived-node_crash-plain", True), ("keepalived-node_crash-tcp_tls", False)):
        seen = []
        whole = canonical(Model(_scenario(cid, True, 5, False, nocheck=nocheck)).run())
        sliced = canonical(Model(_scenario(cid, True, 5, False, nocheck=nocheck)).run(
            progress=lambda t, n: seen.append((t, n)), steps=37))
        assert len(seen) == 37 and seen[-1][0] == 240.0 and seen[-1][1] > seen[0][1]
        assert [k for k in whole if whole[k] != sliced[k]] == []


def test_progress_line_names_simulated_time_rate_and_eta():
    import io

    from simsip.cli.run import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    cfg = _scenario("keepalived-node_crash-plain", True, 1, False)
    out = Tty()
    meter = Progress(cfg, stream=out)
    meter.t0 -= 10  # the run has been going for a while
    meter.tick(0, 60.0, 1000)
    meter.last = 0
    meter.tick(0, 120.0, 2000)
    text = out.getvalue()
    assert "replication 1/" in text and "0:02:00 of 0:04:00 (50%)" in text and "ETA" in text
    meter.clear()
    assert out.getvalue().endswith("\r\033[K")


@pytest.mark.parametrize("cid", ["keepalived-node_crash-plain", "pacemaker-partition-plain", "heartbeat-process_crash-dual",
                                 "cold-process_restart-storm", "weighted-link_down-random_faults"])
def test_merging_touching_segments_keeps_every_metric(cid, monkeypatch):
    """Metrics join a phone's back-to-back binding segments before intersecting them with who
    serves the VIP: the tables must be exactly those computed from the unjoined segments."""
    from simsip import metrics

    cfg = scenario_of(cid, True, 3)
    log = Model(cfg).run()
    joined = metrics.compute(cfg, log, 0, np.random.default_rng(1))
    monkeypatch.setattr(metrics, "_merge_touching", lambda p, s, e: (p, s, e))
    for st in log.stores:
        st.sorted_cache = None
    plain = metrics.compute(cfg, log, 0, np.random.default_rng(1))
    for name in ("timeseries", "outages", "recovery", "faults", "vip"):
        a, b = getattr(joined, name), getattr(plain, name)
        assert a.equals(b), name
    assert joined.figures.keys() == plain.figures.keys()
    assert all((joined.figures[k] == plain.figures[k]) or (joined.figures[k] != joined.figures[k]
               and plain.figures[k] != plain.figures[k]) for k in joined.figures)


DB_CELLS = [(mode, fault, slow) for mode in ("none", "sync", "galera") for fault in ("db_crash", "db_replica_down")
            for slow in (False, True)]


@pytest.mark.parametrize("mode,fault,slow", DB_CELLS, ids=[f"{m}-{f}" + ("-slow" if s else "") for m, f, s in DB_CELLS])
def test_bulk_with_a_shared_database_gives_identical_records(mode, fault, slow):
    """A shared database whose writes are acknowledged at once (no replica, or a sync/galera one)
    is served in bulk while it is writable; its crash, its replica's loss and the promotion push
    the writes back to events ("database not writable"). The records equal the exact engine's."""
    docs = []
    for fast in (True, False):
        doc = matrix_doc("keepalived", "node_crash", "plain", 20)
        doc["ha"].pop("health_check", None)
        doc.pop("auth", None)
        doc["network"].pop("loss", None)
        doc["network"].pop("arp", None)
        doc["registrar"] = {**{k: v for k, v in doc["registrar"].items() if k not in ("replication", "udp_buffer")},
                            "data": "shared"}
        doc["database"] = {"replication": mode, **({"nodes": 3} if mode == "galera" else {})}
        if mode == "none" and fault == "db_replica_down":
            fault = "db_crash"
        doc["faults"] = [{"kind": fault, "at": "100s", "repair_after": "40s"}]
        if slow:
            doc["registrar"].update({"workers": 8, "service_time": "20ms"})
            doc["network"]["delay"] = "10ms"
        doc["engine"] = {"fast_paths": fast}
        docs.append(Scenario.model_validate(doc, context={"strict_units": True}))
    fast_model = Model(docs[0])
    fast = canonical(fast_model.run())
    exact = canonical(Model(docs[1]).run())
    eng = fast_model.log.engine
    assert eng["bulk_registrations"] > 0.5 * fast_model.log.counters["transactions_succeeded"], eng
    assert eng["bulk_fallbacks"].get("database not writable", 0) > 0 or fault != "db_crash", eng
    differ = [k for k in fast if fast[k] != exact[k]]
    assert not differ, f"{mode}-{fault}: records differ in {differ}"


def test_a_lagged_database_replica_stays_on_the_event_path():
    doc = matrix_doc("keepalived", "node_crash", "plain", 5)
    doc.pop("auth", None)
    doc["ha"].pop("health_check", None)
    doc["network"].pop("loss", None)
    doc["network"].pop("arp", None)
    doc["registrar"] = {**{k: v for k, v in doc["registrar"].items() if k not in ("replication", "udp_buffer")},
                        "data": "shared"}
    doc["database"] = {"replication": "async"}
    m = Model(Scenario.model_validate(doc, context={"strict_units": True}))
    m.run()
    assert not m.log.engine["bulk"] and "async replication" in m.log.engine["bulk_disabled"], m.log.engine


@pytest.mark.parametrize("workers,load", [(1, 0.1), (4, 0.6), (8, 0.95), (16, 0.5)])
def test_fcfs_runs_served_vectorised_are_the_one_by_one_recursion(workers, load, monkeypatch):
    """The registrar's first-come-first-served recursion serves runs of arrivals that find a worker
    free vectorised: finishes, admissions, the workers' free times, the queue and its bins must be
    those of the recursion one arrival at a time (FREE_RUN beyond any batch)."""
    rng = np.random.default_rng(workers * 10 + int(load * 10))
    doc = matrix_doc("keepalived", "node_crash", "plain", 1)
    doc["registrar"].update({"workers": workers, "queue_limit": 40, "service_time": "10ms"})
    cfg = Scenario.model_validate(doc, context={"strict_units": True})
    n = min(4_000, int(200 / (0.010 / workers / load * 1.9)))  # all within the run's 4 min (the bins' horizon)
    gaps = rng.exponential(0.010 / workers / load, n) * (1 + 30 * (rng.random(n) < 0.03))  # lulls between episodes
    arrive = np.cumsum(gaps) + 1.0
    s = rng.exponential(0.010, n)
    out = []
    for vectorised in (True, False):
        reg = Model(cfg).registrars[0]
        reg.free_at = [0.0] * workers
        if not vectorised:
            monkeypatch.setattr(type(reg), "FREE_RUN", 10 ** 9)
        runs = []
        orig = np.partition

        def counting(a, k, _o=orig):
            runs.append(len(a))
            return _o(a, k)

        monkeypatch.setattr(np, "partition", counting)
        peek = reg._fcfs(arrive, s, n, False)
        applied = reg._fcfs(arrive, s, n, True)
        monkeypatch.setattr(np, "partition", orig)
        out.append((peek, applied, sorted(reg.free_at), list(reg.waiting), list(reg.queue_bins.v),
                    list(reg.wait_bins.v), runs))
        monkeypatch.undo()
    (pv, av, hv, wv, qv, bv, runs), (pp, ap, hp, wp, qp, bp, _) = out
    assert runs, "no run was served vectorised: the comparison proves nothing"
    for x, y in ((pv, pp), (av, ap)):
        assert np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
    assert hv == hp and wv == wp and qv == qp and bv == bp


def _fcfs_case(workers, load, lulls=0.03):
    """A registrar of ``workers`` workers (10 ms exponential service, queue limit 40) and arrivals
    at ``load``, with lulls between the queueing episodes (all within the bins' horizon)."""
    rng = np.random.default_rng(workers * 10 + int(load * 10))
    doc = matrix_doc("keepalived", "node_crash", "plain", 1)
    doc["registrar"].update({"workers": workers, "queue_limit": 40,
                             "service_time": {"dist": "exponential", "mean": "10ms"}})
    cfg = Scenario.model_validate(doc, context={"strict_units": True})
    n = min(4_000, int(200 / (0.010 / workers / load * 1.9)))
    gaps = rng.exponential(0.010 / workers / load, n) * (1 + 30 * (rng.random(n) < lulls))
    return cfg, np.cumsum(gaps) + 1.0, rng.exponential(0.010, n)


def _fcfs_outcome(cfg, arrive, s, workers, monkeypatch, **attrs):
    """Peek and apply the recursion over all arrivals on a fresh registrar: finishes, admissions,
    the workers' free times, the queue and its bins."""
    reg = Model(cfg).registrars[0]
    reg.free_at = [0.0] * workers
    for k, v in attrs.items():
        monkeypatch.setattr(type(reg), k, v)
    n = len(arrive)
    peek = reg._fcfs(arrive, s, n, False)
    applied = reg._fcfs(arrive, s, n, True)
    monkeypatch.undo()
    return (peek[0].tolist(), peek[1].tolist(), applied[0].tolist(), applied[1].tolist(), sorted(reg.free_at),
            list(reg.waiting), list(reg.queue_bins.v), list(reg.wait_bins.v))


@pytest.mark.parametrize("workers,load", [(1, 0.1), (4, 0.3), (8, 0.95)])
def test_fcfs_results_do_not_depend_on_how_far_it_looks_for_a_run(workers, load, monkeypatch):
    """The recursion looks for a run of free workers over an adaptive window (RUN_LOOK doubling to
    RUN_CHUNK while runs fill it): every window gives the one-by-one recursion's results, and runs
    that fill the window (its edge inside a run) do occur."""
    cfg, arrive, s = _fcfs_case(workers, load)
    ref = _fcfs_outcome(cfg, arrive, s, workers, monkeypatch, FREE_RUN=10 ** 9)
    filled = []
    orig = registrar_mod.RegistrarNode._free_run

    def watching(heap, ar, fr, _o=orig):
        k = _o(heap, ar, fr)
        filled.append(k == len(ar))
        return k

    for look, chunk in ((16, 16), (16, 4096), (64, 4096), (4096, 4096), (10 ** 6, 10 ** 6)):
        got = _fcfs_outcome(cfg, arrive, s, workers, monkeypatch, RUN_LOOK=look, RUN_CHUNK=chunk,
                            _free_run=staticmethod(watching))
        assert got == ref, f"look-ahead {look}..{chunk}: the recursion's results changed"
    assert any(filled) and not all(filled), "no window edge inside a run and outside one: nothing was tested"


def test_negative_control_a_run_test_wrong_at_the_window_edge_is_caught(monkeypatch):
    """A free-run test that counts the last arrivals of its window as free (an off-by-one at the
    edge of the look-ahead) must make the recursion's results differ from the one-by-one ones."""
    cfg, arrive, s = _fcfs_case(4, 0.6)
    ref = _fcfs_outcome(cfg, arrive, s, 4, monkeypatch, FREE_RUN=10 ** 9)
    orig = registrar_mod.RegistrarNode._free_run

    def edge_blind(heap, ar, fr, _o=orig):
        k = _o(heap, ar, fr)
        return len(ar) if k >= len(ar) - 2 else k

    got = _fcfs_outcome(cfg, arrive, s, 4, monkeypatch, RUN_LOOK=16, RUN_CHUNK=16,
                        _free_run=staticmethod(edge_blind))
    assert got != ref


def _peek_commit(cfg, arrive, s_unused, workers, m, tamper=None):
    """bulk_peek over all arrivals, then bulk_commit of the first ``m``: the registrar's workers,
    queue, bins and served count afterwards. ``tamper(reg)`` runs between the two."""
    model = Model(cfg)
    reg = model.registrars[0]
    reg.free_at = [0.0] * workers
    n = len(arrive)
    phones = np.arange(n, dtype=np.int64)
    if n > cfg.phones:
        reg.store.grow(n - cfg.phones)
    finish, granted, ok = reg.bulk_peek(phones, arrive, arrive + 100.0, 1e9, 3600.0)
    assert reg._queued, "no queue in the peek: the comparison proves nothing"
    if tamper is not None:
        tamper(reg)
    reg.bulk_commit(phones[:m], np.arange(m, dtype=np.int64), arrive[:m], finish[:m], granted[:m])
    return (sorted(reg.free_at), list(reg.waiting), list(reg.queue_bins.v), list(reg.wait_bins.v), reg.served,
            reg.service_vec.stream._ei)


@pytest.mark.parametrize("part", [1.0, 0.5])
def test_bulk_commit_adopting_its_peek_is_the_recursion_applied_again(part):
    """bulk_commit keeps what its peek's recursion left (workers, queue, bin updates) when it serves
    every arrival the peek looked at, and runs the recursion again for a prefix: both give what
    running it again gives."""
    cfg, arrive, s = _fcfs_case(4, 0.6)
    m = int(len(arrive) * part)
    adopted = _peek_commit(cfg, arrive, s, 4, m)
    again = _peek_commit(cfg, arrive, s, 4, m, tamper=lambda reg: setattr(reg, "_peeked", None))
    assert adopted == again


def test_negative_control_adopting_a_longer_peek_or_losing_its_bins_is_caught():
    """Adopting the peek's state for a shorter commit, or without the peek's bin updates, must differ."""
    cfg, arrive, s = _fcfs_case(4, 0.6)
    n = len(arrive)
    again = _peek_commit(cfg, arrive, s, 4, n // 2, tamper=lambda reg: setattr(reg, "_peeked", None))

    def longer(reg):
        reg._peeked = (n // 2, *reg._peeked[1:])

    assert _peek_commit(cfg, arrive, s, 4, n // 2, tamper=longer) != again
    again = _peek_commit(cfg, arrive, s, 4, n, tamper=lambda reg: setattr(reg, "_peeked", None))

    def no_bins(reg):
        reg._peeked = (*reg._peeked[:3], [], [])

    got = _peek_commit(cfg, arrive, s, 4, n, tamper=no_bins)
    assert got[:2] == again[:2] and got != again


def _interleaved(stream, kind):
    """Scalar draws and peeks/skips of one stream, interleaved as the engine does (event-path
    draws between bulk steps), across block boundaries: the numbers in the order they are used."""
    draw = stream.random if kind == "u" else (lambda: stream.exponential(1.0))
    got = []
    for k, scalars in ((1, 3), (7, 4090), (4095, 1), (2, 0), (4096, 5000), (3000, 2), (899, 4096)):
        ahead = stream.ahead(kind, k + 13)
        got.extend(ahead[:k].tolist())
        stream.skip(kind, k)
        got.extend(draw() for _ in range(scalars))
    return got


@pytest.mark.parametrize("kind", ["u", "e"])
def test_draws_ahead_interleaved_with_scalar_draws_are_the_scalar_draws(kind):
    """A stream's peeks (array views of its buffer) and its scalar draws, interleaved, hand out
    the numbers of the scalar draws alone, in order; a peek cannot be written into."""
    ref = Stream(9, 1, "svc")
    draw = ref.random if kind == "u" else (lambda: ref.exponential(1.0))
    got = _interleaved(Stream(9, 1, "svc"), kind)
    assert got == [draw() for _ in range(len(got))]
    view = Stream(9, 1, "svc").ahead(kind, 10)
    with pytest.raises(ValueError):
        view[0] = 0.5


def test_negative_control_a_peek_that_loses_its_place_at_a_refill_is_caught(monkeypatch):
    """Peeks that, when they refill the buffer, start the new block at the old index (a buffer and
    its view out of step) must hand out other numbers than the scalar draws."""
    orig = Stream.ahead

    def stale(self, kind, n, _o=orig):
        i = self._ui if kind == "u" else self._ei
        out = _o(self, kind, n)
        if kind == "u" and self._ui == 0 and i:  # refilled: serve from where the old block was
            return np.concatenate((out, np.zeros(i)))[i:i + n]
        return out

    monkeypatch.setattr(Stream, "ahead", stale)
    ref = Stream(9, 1, "svc")
    got = _interleaved(Stream(9, 1, "svc"), "u")
    assert got != [ref.random() for _ in range(len(got))]


@pytest.mark.parametrize("spread", [0.5, 3.0, 400.0])
def test_bins_add_is_one_add_per_time(spread):
    """Adding a batch's times to the bins at once (a slice of the span, or bin by bin when the
    times are sparse) is ``add`` once per time, bins outside the run left alone."""
    from simsip.engine.records import Bins

    rng = np.random.default_rng(int(spread * 10))
    for n in (1, 5, 300, 5000):
        times = np.sort(rng.random(n) * spread + rng.random() * 100.0 - 2.0)
        one, many = Bins(0.25, 100.0), Bins(0.25, 100.0)
        for t in times.tolist():
            one.add(t)
        phones_mod.bins_add(many, times)
        assert one.v == many.v and all(type(x) is int for x in many.v)


@pytest.mark.parametrize("n", [5, 300, 1023, 1024, 5000])
def test_start_on_arrival_test_is_the_count_of_busy_workers(n):
    """The free-worker test of a bulk step (by a search of the sorted union, or for long batches
    from one stable sort of the union with the arrivals) is the direct count: arrival i starts on
    arrival when fewer than c of the workers' free times and earlier finishes lie after it —
    with ties between arrivals, finishes and free times (service times > 0: an arrival served in
    no time is never applied in bulk)."""
    rng = np.random.default_rng(n)
    seen = set()
    for c in (1, 4, 16):
        arrive = np.sort(np.round(rng.random(n) * n * 0.002, 3))  # rounded: ties
        finish = arrive + np.round(rng.exponential(0.004, n), 3) + 0.001  # service > 0, as a bulk step needs
        free_at = np.round(rng.random(c) * 0.01, 3).tolist()
        want = np.array([sum(x > a for x in free_at) + int((finish[:i] > a).sum()) < c
                         for i, a in enumerate(arrive.tolist())])
        got = registrar_mod._start_on_arrival(free_at, finish, arrive)
        assert np.array_equal(got, want[: len(got)]) and len(got) == n
        seen.update(want.tolist())
    assert seen == {True, False} or n < 50  # arrivals that wait and arrivals that do not
