"""Record compaction (``engine.compact_records``): folding a save or a 200 OK into the phone's
previous record while its binding still holds must change no metric.

The truth is the unfolded run: the same scenario and seed with ``compact_records: false`` gives
every save and outcome a row, and every table and headline figure must come out identical. A
property test drives a store log directly with saves in any order (late ones included) and clears,
against the segments of the same saves unfolded. Negative controls fold where it is not allowed
(across a gap, across a clear) and must make the comparison fail.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simsip import metrics
from simsip.config.schema import Scenario
from simsip.engine.model import Model
from simsip.engine.records import StoreLog
from tests.conftest import scenario
from twin_matrix import matrix

TABLES = ("timeseries", "outages", "recovery", "faults", "vip")


def _with(cfg: Scenario, fold: bool) -> Scenario:
    doc = cfg.model_dump()
    doc["engine"]["compact_records"] = fold
    return Scenario.model_validate(doc)


def _metrics(cfg: Scenario):
    m = Model(cfg)
    log = m.run()
    return log, metrics.compute(cfg, log, 0, np.random.default_rng(5))


def _differences(a, b) -> list[str]:
    out = [t for t in TABLES if not getattr(a, t).equals(getattr(b, t))]
    for k in sorted(set(a.figures) | set(b.figures)):
        x, y = a.figures.get(k), b.figures.get(k)
        if not (x == y or (x != x and y != y)):
            out.append(f"figure {k}: {x} vs {y}")
    return out


# every HA stack × fault × mix with the fast paths on: the rows a bulk step or a fast path folds
# (the twin runs compare the unfolded records of the two engines; this closes the loop)
CELLS = [(cid, cfg) for cid, cfg in matrix(True)]


@pytest.mark.parametrize("cid,cfg", CELLS[::3], ids=[c for c, _ in CELLS[::3]])
def test_folded_records_give_the_unfolded_metrics(cid, cfg):
    log, folded = _metrics(_with(cfg, True))
    _, plain = _metrics(_with(cfg, False))
    assert not _differences(folded, plain), cid
    assert "records_refolded" not in log.engine  # the matrix never needs the unfolded rerun


def _long_plain():
    return scenario(duration="1h", fleets=[{"name": "f", "count": 200, "phone": {"expires": "120s"}}],
                    faults=[{"node": "master", "at": "20min", "repair_after": "10min"}])


def test_folding_folds_and_keeps_the_metrics():
    """A phone that refreshes on time is one row per uninterrupted registration, not one per
    refresh (or the comparison above proves nothing about memory)."""
    cfg = _long_plain()
    log, folded = _metrics(_with(cfg, True))
    raw_log, plain = _metrics(_with(cfg, False))
    assert not _differences(folded, plain)
    rows = sum(len(s.t) for s in log.stores) + len(log.ph_t)
    raw_rows = sum(len(s.t) for s in raw_log.stores) + len(raw_log.ph_t)
    assert rows < raw_rows / 5, (rows, raw_rows)
    assert log.engine["records_folded"] == raw_rows - rows


@pytest.mark.parametrize("wrong", ["across a gap", "across a clear"])
def test_negative_control_folding_where_not_allowed_changes_the_metrics(monkeypatch, wrong):
    """Fold a save into a row whose binding had already expired, or across the store's clear: the
    metrics must then differ from the unfolded run's (the comparison can fail)."""
    cfg = scenario(duration="10min",
                   fleets=[{"name": "f", "count": 100, "phone": {"expires": "60s"}}],
                   faults=[{"node": "master", "at": "3min", "repair_after": "5s"}])  # back before expiry
    _, plain = _metrics(_with(cfg, False))
    orig = StoreLog.add

    def sloppy(self, t, phone, until):
        f = self.folding
        if f is not None and f.row[phone] >= 0 and t >= f.last[phone]:
            i = f.row[phone]
            if wrong == "across a gap" or self.until[i] >= t:  # ignores the gap / the clear
                self.until[i] = until
                f.last[phone] = t
                return
        orig(self, t, phone, until)

    monkeypatch.setattr(StoreLog, "add", sloppy)
    monkeypatch.setattr(StoreLog, "add_many", lambda self, t, p, u: [
        sloppy(self, float(a), int(b), float(c)) for a, b, c in zip(np.broadcast_to(t, np.shape(p)), p, u)])
    _, bad = _metrics(_with(cfg, True))
    assert _differences(bad, plain)


def _segments(log: StoreLog, horizon: float, purge: float | None):
    log.sorted_cache = None
    p, s, e = metrics._merge_touching(*metrics._store_segments(log, horizon, purge))
    return list(zip(p.tolist(), s.tolist(), e.tolist()))


saves = st.lists(
    st.tuples(st.integers(0, 2),  # phone
              st.integers(0, 40),  # time, in 0.5 s steps (ties happen)
              st.integers(-2, 30),  # binding length, in 0.5 s steps (some end before they start)
              st.integers(0, 12)),  # a clear before this save, when 0
    min_size=1, max_size=40)


@settings(max_examples=400, deadline=None)
@given(saves, st.booleans(), st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=4))
def test_store_folding_property(rows, purge_on, moves):
    """Saves with late ones (a later save applied before earlier ones, as a fast path may, by a few
    places or by many) and clears: the folded log's binding segments are the unfolded log's, unless
    it said ``inexact``."""
    horizon = 25.0
    purge = 3.0 if purge_on else None
    events = []
    for k, (p, t, length, c) in enumerate(rows):
        events.append((t * 0.5, p, t * 0.5 + length * 0.5, c == 0))
    # deliver out of time order: each move delivers the save at place b before the one at place a
    order = list(range(len(events)))
    for a, b in moves:
        if a < b < len(order):
            order.insert(a, order.pop(b))
    events = sorted(events, key=lambda e: e[0])  # clears are control events: never applied late
    folded, plain = StoreLog(), StoreLog()
    folded.fold(3)
    pending = [events[i] for i in order]
    for k, (t, p, u, clear_first) in enumerate(pending):
        # a clear at t is a control event: the engine reaches it only after every save earlier than
        # t was applied (a fast path applies saves ahead of time, never behind a control event)
        behind = any(e[0] < t for e in pending[k + 1:])
        if (clear_first and not behind and t >= max((c for c in plain.clears), default=-math.inf)
                and t >= plain_newest(plain)):
            folded.clear(t)
            plain.clear(t)
        folded.add(t, p, u)
        plain.add(t, p, u)
    if folded.inexact:
        return  # the model would rerun this replication unfolded
    assert _segments(folded, horizon, purge) == _segments(plain, horizon, purge)


def plain_newest(log: StoreLog) -> float:
    return max(log.t, default=-math.inf)


def test_an_inexact_fold_reruns_the_replication_unfolded(monkeypatch):
    """When folding cannot represent an out-of-order save, the replication runs again without it:
    the engine section says so and the metrics are the unfolded ones."""
    cfg = _long_plain()
    _, plain = _metrics(_with(cfg, False))
    orig = StoreLog.add

    def flagging(self, t, phone, until):
        orig(self, t, phone, until)
        if self.folding is not None and t > 600:
            self.inexact += 1

    monkeypatch.setattr(StoreLog, "add", flagging)
    log, folded = _metrics(_with(cfg, True))
    assert "records_refolded" in log.engine
    assert not _differences(folded, plain)
    assert "records_folded" not in log.engine  # the rerun's log: nothing folded


outcomes = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 6), st.integers(-3, 20)),  # phone, gap to the next, outcome
    min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(outcomes)
def test_outcome_folding_property(rows):
    """A phone's outcomes in time order (200 OKs with their expiry, failures, timeouts): the folded
    log's registered intervals are the unfolded log's."""
    from simsip.engine.records import RunLog

    folded, plain = RunLog(horizon=100.0, res=1.0, node_names=["a"]), RunLog(horizon=100.0, res=1.0, node_names=["a"])
    folded.fold_outcomes(3)
    clock = [0.0, 0.0, 0.0]
    for p, gap, v in rows:
        t = clock[p] = clock[p] + gap * 0.5
        value = t + v * 0.5 if v >= 0 else float(max(v, -2))
        folded.outcome(t, p, value)
        plain.outcome(t, p, value)
    a, b = metrics.registered_intervals(folded), metrics.registered_intervals(plain)
    # the same union per phone (registered_intervals returns starts and ends; compare the coverage)
    grid = np.arange(0.0, 100.0, 0.25)
    assert np.array_equal(metrics.count_at(a[0], a[1], grid), metrics.count_at(b[0], b[1], grid))
    assert folded.outcomes_inexact == 0


# ------------------------------------------------------------------ the metrics' cheaper paths are exact
def _count_at_by_sorting(starts, ends, grid):
    s, e = np.sort(starts), np.sort(ends)
    return np.searchsorted(s, grid, side="right") - np.searchsorted(e, grid, side="right")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-10, 120), st.integers(0, 40)), max_size=60),
       st.sampled_from([1.0, 0.25, 0.1, 3.0]), st.integers(1, 100), st.booleans())
def test_count_at_is_the_sorted_count(rows, res, length, irregular):
    """count_at places intervals on the grid without sorting them: the counts are those of the
    sort-and-search definition, on regular grids (interval ends on grid times included) and not."""
    grid = np.arange(0.0, length * res - 1e-9, res)
    if irregular and grid.size > 2:
        grid = np.sort(np.r_[grid[::2], grid[1::2] + 0.3 * res])
    s = np.array([a * res / 4 for a, _ in rows], dtype=float)
    e = s + np.array([b * res / 4 for _, b in rows], dtype=float)
    assert np.array_equal(metrics.count_at(s, e, grid), _count_at_by_sorting(s, e, grid))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.floats(-1e3, 1e3, allow_nan=False)), max_size=80))
def test_group_running_maximum_is_pandas_cummax(rows):
    import pandas as pd

    rows = sorted(rows, key=lambda r: r[0])
    g = np.array([a for a, _ in rows], dtype=np.int64)
    v = np.array([b for _, b in rows], dtype=float)
    want = pd.Series(v).groupby(g, sort=False).cummax().to_numpy() if v.size else np.zeros(0)
    assert np.array_equal(metrics._group_cummax(g, v), want)


@pytest.mark.parametrize("cid", ["keepalived-node_crash-plain", "pacemaker-partition-dual", "weighted-db_crash-storm",
                                 "cold-process_restart-random_faults", "heartbeat-link_down-tcp_nat"])
def test_figures_without_per_phone_tables_are_the_same(cid):
    """A sweep point keeps only figures (``per_phone=False``): they are those of the full metrics."""
    cfg = dict(CELLS)[cid]
    m = Model(cfg)
    log = m.run()
    full = metrics.compute(cfg, log, 0, np.random.default_rng(2))
    lean = metrics.compute(cfg, log, 0, np.random.default_rng(2), per_phone=False)
    assert not len(lean.recovery) and not len(lean.outages)
    assert len(full.recovery) or cid != "keepalived-node_crash-plain"  # there are tables to leave out
    assert full.figures.keys() == lean.figures.keys()
    assert all(full.figures[k] == lean.figures[k] or (full.figures[k] != full.figures[k]
                                                      and lean.figures[k] != lean.figures[k]) for k in full.figures)


@pytest.mark.parametrize("case", ["before the row, after the earlier rows", "inside an earlier row",
                                  "outlasts the row", "before the row's last save", "deep inside the row"])
def test_each_kind_of_late_save(case):
    """The late-save rules one by one, each against the unfolded segments: a late save is exact as
    a row of its own, dropped, or a split of the row; else the log says inexact."""
    saves = {  # delivery order; the late one last
        "before the row, after the earlier rows": [(0, 2), (5, 8), (3, 4)],
        "inside an earlier row": [(0, 2), (1, 3), (5, 8), (0.5, 0.7)],
        "outlasts the row": [(0, 2), (1, 3), (2, 9), (1.5, 10)],
        "before the row's last save": [(0, 2), (1, 3), (2, 9), (1.5, 1.8)],
        "deep inside the row": [(0, 2), (1, 3), (2, 9), (0.5, 0.7)],
    }[case]
    folded, plain = StoreLog(), StoreLog()
    folded.fold(1)
    for t, u in saves:
        folded.add(t, 0, u)
        plain.add(t, 0, u)
    expect_inexact = case in ("inside an earlier row", "deep inside the row")
    assert bool(folded.inexact) == expect_inexact
    if not expect_inexact:
        assert _segments(folded, 20.0, None) == _segments(plain, 20.0, None)
        assert _segments(folded, 20.0, 3.0) == _segments(plain, 20.0, 3.0)
    else:  # what folding it anyway would get wrong
        assert _segments(folded, 20.0, None) != _segments(plain, 20.0, None) or case == "deep inside the row"


LEAN_CELLS = ["keepalived-node_crash-plain", "pacemaker-partition-dual", "weighted-db_crash-storm",
              "cold-process_restart-random_faults", "heartbeat-link_down-tcp_nat", "keepalived-node_crash-sbc_trunks",
              "keepalived-partition-plain"]


def _same_figures(a: dict, b: dict) -> list[str]:
    """The figures that differ (exactly; NaN equals NaN), and a difference in their order."""
    out = [k for k in a if not (a[k] == b.get(k) or (a[k] != a[k] and b.get(k) != b.get(k)))]
    return out + (["<order>"] if list(a) != list(b) else [])


@pytest.mark.parametrize("cid", LEAN_CELLS)
def test_figures_without_any_table_are_the_same(cid):
    """A sweep point or plan candidate keeps only figures and counters (``tables=False``): no table,
    no storm figures, and the figures (in the same order: the runs table's columns) and counters
    of the full metrics."""
    cfg = dict(CELLS)[cid]
    log = Model(cfg).run()
    full = metrics.compute(cfg, log, 0, np.random.default_rng(2))
    bare = metrics.compute(cfg, log, 0, np.random.default_rng(2), tables=False)
    assert all(not len(getattr(bare, t)) for t in (*TABLES, "trunk_outages")) and bare.storm == {}
    assert len(full.timeseries) and len(full.faults)
    assert not _same_figures(full.figures, bare.figures), _same_figures(full.figures, bare.figures)
    assert full.counters == bare.counters


@pytest.mark.parametrize("cid", LEAN_CELLS)
def test_figures_read_without_the_tables_are_those_of_the_tables(cid):
    """The figures taken from the time-series columns and the fault rows before any table is built
    are what the tables give: VIP move, detection and failback times (the faults table's means),
    REGISTER rates and counts (the timeseries' columns), split brain and conflicts."""
    cfg = dict(CELLS)[cid]
    rm = metrics.compute(cfg, Model(cfg).run(), 0, np.random.default_rng(2))
    fig, ts, faults, res = rm.figures, rm.timeseries, rm.faults, cfg.output.resolution
    want = {
        "vip_move_time": float(faults[faults["cause"] == "fault"]["vip_move_time"].mean()),
        "detection_time": float(faults[faults["cause"] == "fault"]["detection_time"].mean()),
        "failback_vip_move_time": (float(faults[faults["cause"] == "repair"]["vip_move_time"].mean())
                                   if (faults["cause"] == "repair").any() else math.nan),
        "retransmissions": float(ts.get("retransmissions", pd.Series([0])).sum()),
        "timeouts": float(ts.get("timeouts", pd.Series([0])).sum()),
        "responses_503": float(ts.get("resp_503", pd.Series([0])).sum()),
        "split_brain_seconds": float((ts["vrrp_masters"] >= 2).sum() * res),
        "conflict_phone_seconds": float(ts["conflicts"].sum() * res),
    }
    rate = ts[[c for c in ts.columns if c.startswith("register_rx_")]].to_numpy().max(axis=1) / res
    want["peak_register_rate"] = float(rate.max())
    first = faults.loc[faults["cause"] == "fault", "time"].min()
    pre = ts["time"].to_numpy() < first - res
    if pre.any():
        want["steady_register_rate"] = float(rate[pre].mean())
    assert not _same_figures(want, {k: fig[k] for k in want}), _same_figures(want, {k: fig[k] for k in want})
    if cid == "keepalived-partition-plain":  # the cell where split brain and conflicts happen
        assert fig["split_brain_seconds"] > 0 and fig["conflict_phone_seconds"] > 0


def _masters_by_walking(changes, grid):
    """The grid walk the masters column was computed with: apply the changes up to each grid time."""
    out = np.zeros(grid.size, dtype=np.int64)
    state: dict[str, str] = {}
    changes = sorted(changes, key=lambda x: x[0])
    k = 0
    for gi, t in enumerate(grid):
        while k < len(changes) and changes[k][0] <= t:
            state[changes[k][1]] = changes[k][2]
            k += 1
        out[gi] = sum(1 for v in state.values() if v == "master")
    return out


_changes = st.lists(st.tuples(st.integers(0, 40).map(lambda x: x / 4), st.sampled_from(["a", "b", "c"]),
                              st.sampled_from(["master", "backup", "fault", "init"])), max_size=30)


@settings(max_examples=300, deadline=None)
@given(_changes)
def test_vrrp_masters_is_the_grid_walk(changes):
    """The vectorised masters count (one search of the grid in the change times) is the walk over
    the grid, with several changes at one instant (the last one in the log wins) and on grid times."""
    grid = np.arange(0.0, 10.0, 0.5)
    assert np.array_equal(metrics.vrrp_masters(changes, grid), _masters_by_walking(changes, grid))


def test_negative_control_masters_that_take_the_first_change_at_an_instant_are_caught():
    """A count that keeps the first of several changes at one instant (a deliberately broken
    lookup) must differ from the walk; the real one must not."""
    def first_wins(changes, grid):
        seen, kept = set(), []
        for c in sorted(changes, key=lambda x: x[0]):
            if c[0] not in seen:
                kept.append(c)
                seen.add(c[0])
        return metrics.vrrp_masters(kept, grid)

    changes = [(1.0, "a", "master"), (2.0, "b", "master"), (2.0, "a", "backup")]
    grid = np.arange(0.0, 4.0, 0.5)
    assert not np.array_equal(first_wins(changes, grid), _masters_by_walking(changes, grid))
    assert np.array_equal(metrics.vrrp_masters(changes, grid), _masters_by_walking(changes, grid))


@pytest.mark.parametrize("cid", LEAN_CELLS)
def test_a_figures_only_run_gives_the_same_figures(cid):
    """A sweep point or plan candidate records only what the figures read
    (``Model(figures_only=True)``: no phone outcomes, no bulk counts in the bins no figure reads):
    its figures and counters are those of the full run, and its log holds no outcome (but where a
    caching SBC's start reads them); the tables are refused."""
    cfg = dict(CELLS)[cid]
    full = metrics.compute(cfg, Model(cfg).run(), 0, np.random.default_rng(2))
    model = Model(cfg, figures_only=True)
    log = model.run()
    bare = metrics.compute(cfg, log, 0, np.random.default_rng(2), tables=False)
    assert not _same_figures(full.figures, bare.figures), _same_figures(full.figures, bare.figures)
    assert full.counters == bare.counters
    assert (len(log.ph_t) > 0) == (model.sbc is not None)
    if model.sbc is None:  # the tables need the outcomes: refused, not computed from nothing
        with pytest.raises(ValueError, match="only what the figures read"):
            metrics.compute(cfg, log, 0, np.random.default_rng(2))


def test_negative_control_dropping_the_outcomes_a_caching_sbc_reads_is_caught():
    """A run that drops the outcome records although a caching SBC's start reads them (the
    equilibrium refreshes it forwarded) must give other figures than the full run."""
    cfg = dict(CELLS)["keepalived-node_crash-sbc_trunks"]
    full = metrics.compute(cfg, Model(cfg).run(), 0, np.random.default_rng(2))
    model = Model(cfg, figures_only=True)
    assert model.sbc is not None and model.log.keep_outcomes
    model.log.keep_outcomes = False  # the broken rule: no exception for the SBC
    bare = metrics.compute(cfg, model.run(), 0, np.random.default_rng(2), tables=False)
    assert _same_figures(full.figures, bare.figures)


def test_negative_control_a_figures_only_run_without_the_bins_a_figure_reads_is_caught(monkeypatch):
    """A figures-only run whose bulk steps also leave out the bins a figure reads (REGISTERs
    received: the peak and steady REGISTER rates) must give other figures than the full run."""
    from simsip.engine import phones as phones_mod

    cfg = Scenario.model_validate({  # a plan candidate's kind of scenario: the bulk path carries it
        "name": "lean", "seed": 3, "duration": "20min", "output": {"report": False, "per_phone": False},
        "fleets": [{"name": "desk", "count": 2000, "profile": "generic-udp", "phone": {"expires": "600s"}}],
        "registrar": {"profile": "kamailio", "data": "none"}, "ha": {"profile": "keepalived"},
        "faults": [{"kind": "node_crash", "node": "master", "at": "5min"}]})
    full = metrics.compute(cfg, Model(cfg).run(), 0, np.random.default_rng(2))
    lean = metrics.compute(cfg, Model(cfg, figures_only=True).run(), 0, np.random.default_rng(2), tables=False)
    assert not _same_figures(full.figures, lean.figures)  # the real figures-only run
    model = Model(cfg, figures_only=True)
    monkeypatch.setattr(phones_mod, "bins_add", lambda b, times: None)
    bare = metrics.compute(cfg, model.run(), 0, np.random.default_rng(2), tables=False)
    assert model.log.engine["bulk_registrations"] > 0
    assert {"peak_register_rate", "steady_register_rate"} & set(_same_figures(full.figures, bare.figures))


@pytest.mark.parametrize("shape", ["random", "sorted runs", "few slots", "wide"])
def test_stable_order_of_phone_numbers_is_numpys_stable_argsort(shape):
    """The metrics' stable order by phone (radix passes over 16-bit halves, or timsort) is
    numpy's stable argsort, permutation for permutation (ties keep their order)."""
    rng = np.random.default_rng(len(shape))
    n = 60_000
    keys = {"random": rng.integers(0, 150_000, n), "sorted runs": np.r_[np.arange(n // 2), np.arange(n // 2)],
            "few slots": rng.integers(0, 40, n), "wide": rng.integers(0, 1 << 33, n)}[shape].astype(np.int64)
    assert np.array_equal(metrics._stable_order(keys), np.argsort(keys, kind="stable"))
