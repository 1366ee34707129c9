"""Typed records that processes append to while the model runs.

Statistics are computed after the run (``simsip.metrics``) from these records, never inside the
processes. To stay affordable for million-phone fleets the records are compact: binding saves and
phone outcomes are columns of machine numbers (``array.array``), and per-interval counts
(REGISTER arrivals, responses by class, retransmissions, queue length) are aggregated on the fly
into one bin per output resolution step.

*Record compaction* (``engine.compact_records``, on by default) keeps a day of a million phones
in memory: the metrics read a store's saves and a phone's outcomes only as intervals (a save
covers [t, until) until the next save, clear or the end; a 200 OK registers the phone until its
expiry or its next outcome), so a save that starts where the one before still covers is folded
into it: the record keeps its start and takes the new end. A phone that refreshes on time is one
record however many refreshes it made, and the union of the intervals, every count over time
and every outage are exactly those of the unfolded records. A save that arrives out of order
(stamped before one already folded) is folded only where that provably changes no interval;
where it might, the log marks itself ``inexact`` and the model runs the replication again
without compaction (``summary.json``'s engine section says so), never approximating.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field

import numpy as np


class Bins:
    """Counts per time bin of width ``res`` over ``[0, horizon]``."""

    __slots__ = ("res", "inv", "n", "v")

    def __init__(self, res: float, horizon: float):
        self.res = res
        self.inv = 1.0 / res
        self.n = int(horizon * self.inv) + 2
        self.v = [0] * self.n

    def add(self, t: float, k: int = 1) -> None:
        i = int(t * self.inv)
        if 0 <= i < self.n:
            self.v[i] += k

    def max(self, t: float, value: int) -> None:
        i = int(t * self.inv)
        if 0 <= i < self.n and value > self.v[i]:
            self.v[i] = value


class _Folding:
    """Per-slot state of record compaction: the row of each slot's newest record (-1: none), the
    time of the last event folded into it, of the one before (-inf: the row holds one), and of the
    latest event in the slot's earlier rows (``before``: a late save sorting before the row is a
    row of its own only if it also sorts after all of those)."""

    __slots__ = ("row", "last", "prev", "before")

    def __init__(self, slots: int) -> None:
        self.row = array("q", [-1]) * slots
        self.last = array("d", [-math.inf]) * slots
        self.prev = array("d", [-math.inf]) * slots
        self.before = array("d", [-math.inf]) * slots

    def grow(self, extra: int) -> None:
        self.row.extend(array("q", [-1]) * extra)
        self.last.extend(array("d", [-math.inf]) * extra)
        self.prev.extend(array("d", [-math.inf]) * extra)
        self.before.extend(array("d", [-math.inf]) * extra)


class StoreLog:
    """Every binding save of one binding store, and the times the store lost its content.

    ``add``/``add_many``/``clear`` are how the store appends; with :meth:`fold` enabled they fold
    a save into the phone's newest record when it starts before that record's binding ends (see
    the module docstring). Without it every save is a row.
    """

    __slots__ = ("t", "phone", "until", "clears", "sorted_cache", "folding", "last_clear", "inexact", "folded",
                 "newest")

    def __init__(self) -> None:
        self.t = array("d")
        self.phone = array("q")
        self.until = array("d")
        self.clears: list[float] = []
        self.sorted_cache = None  # (phone, t, until) sorted by phone then time, built after the run
        self.folding: _Folding | None = None
        self.last_clear = -math.inf
        self.inexact = 0  # out-of-order saves folding could not represent (the run is redone unfolded)
        self.folded = 0  # saves folded into an earlier row
        self.newest = -math.inf  # the latest save time seen (a clear before it could cut a folded row)

    def fold(self, slots: int) -> None:
        """Fold saves from now on (``slots``: registration slots the store holds)."""
        if len(self.t):
            raise RuntimeError("record folding must be enabled before the first save")
        self.folding = _Folding(slots)

    def grow(self, extra: int) -> None:
        if self.folding is not None:
            self.folding.grow(extra)

    def _row(self, t: float, phone: int, until: float) -> int:
        self.t.append(t)
        self.phone.append(phone)
        self.until.append(until)
        return len(self.t) - 1

    def _rows(self, t: np.ndarray, phones: np.ndarray, until: np.ndarray) -> None:
        self.t.frombytes(np.ascontiguousarray(t, dtype=np.float64).tobytes())
        self.phone.frombytes(np.ascontiguousarray(phones, dtype=np.int64).tobytes())
        self.until.frombytes(np.ascontiguousarray(until, dtype=np.float64).tobytes())

    def add(self, t: float, phone: int, until: float) -> None:
        f = self.folding
        if f is None:
            self._row(t, phone, until)
            return
        if t > self.newest:
            self.newest = t
        i = f.row[phone]
        if i < 0:
            f.row[phone] = self._row(t, phone, until)
            f.last[phone] = t
            f.prev[phone] = -math.inf
            return
        last = f.last[phone]
        if t >= last:
            # still covered, no clear within the row, and the new binding lasts at least until it starts
            if t <= self.until[i] and until >= t and self.last_clear <= self.t[i]:
                self.until[i] = until
                f.prev[phone] = last
                f.last[phone] = t
                self.folded += 1
                return
            f.row[phone] = self._row(t, phone, until)
            f.before[phone] = last
            f.last[phone] = t
            f.prev[phone] = -math.inf
            return
        self._late(t, phone, until, i, last)

    def _late(self, t: float, phone: int, until: float, i: int, last: float) -> None:
        """A save stamped before the last one folded into row ``i`` (a fast path applied a later
        one ahead). Sorted by time, the unfolded rows would hold it between two of row i's saves."""
        f = self.folding
        first = self.t[i]
        if t < first:
            self._row(t, phone, until)
            if t >= f.before[phone]:  # between the earlier rows and this one: a row of its own sorts exactly
                f.before[phone] = t
            else:  # inside an earlier row, whose later saves are folded away
                self.inexact += 1
        elif until >= last:  # its binding lasts past every later save of the row: no interval changes
            self.folded += 1
        elif t >= f.prev[phone] and until >= t:
            # only the row's last save comes after it: the row ends with it, the last save restarts
            end = self.until[i]
            self.until[i] = until
            f.row[phone] = self._row(last, phone, end)
            f.before[phone] = t
            f.prev[phone] = -math.inf
        else:
            self._row(t, phone, until)
            self.inexact += 1

    def add_many(self, t, phones, until) -> None:
        """Many saves at once (numpy arrays, each phone at most once)."""
        ids = np.asarray(phones, dtype=np.int64)
        tt = np.asarray(t, dtype=np.float64)
        if tt.shape != ids.shape:
            tt = np.broadcast_to(tt, ids.shape)
        uu = np.asarray(until, dtype=np.float64)
        f = self.folding
        if f is None or ids.size == 0:
            self._rows(tt, ids, uu)
            return
        top = float(tt.max())
        if top > self.newest:
            self.newest = top
        row = np.frombuffer(f.row, dtype=np.int64)
        last = np.frombuffer(f.last, dtype=np.float64)
        prev = np.frombuffer(f.prev, dtype=np.float64)
        i = row[ids]
        has = i >= 0
        every = bool(has.all())  # the steady state: every phone has a row (no masking needed)
        lt = last[ids]
        if len(self.until):
            uview = np.frombuffer(self.until, dtype=np.float64)
            at = i if every else np.maximum(i, 0)
            ru = uview[at] if every else np.where(has, uview[at], -math.inf)
            clear_ok = True if self.last_clear == -math.inf else (
                np.frombuffer(self.t, dtype=np.float64)[at] >= self.last_clear)
        else:
            uview, ru, clear_ok = None, np.full(ids.size, -math.inf), True
        in_order = tt >= lt
        fold = in_order & (tt <= ru) & (uu >= tt) & clear_ok
        if not every:
            fold &= has
        if fold.all():  # the steady state: every save extends its phone's row
            uview[i] = uu
            prev[ids] = lt
            last[ids] = tt
            self.folded += int(ids.size)
            return
        late = has & ~in_order
        new = ~fold & ~late
        if fold.any():
            uview[i[fold]] = uu[fold]
            prev[ids[fold]] = lt[fold]
            last[ids[fold]] = tt[fold]
            self.folded += int(fold.sum())
        n0 = len(self.t)
        k = np.flatnonzero(new)
        if k.size:
            row[ids[k]] = n0 + np.arange(k.size)
            np.frombuffer(f.before, dtype=np.float64)[ids[k]] = lt[k]
            last[ids[k]] = tt[k]
            prev[ids[k]] = -math.inf
        del row, last, prev, uview  # release the buffers before the arrays grow
        if k.size:
            self._rows(tt[k], ids[k], uu[k])
        for j in np.flatnonzero(late).tolist():
            p = int(ids[j])
            self._late(float(tt[j]), p, float(uu[j]), f.row[p], f.last[p])

    def clear(self, t: float) -> None:
        self.clears.append(t)
        if t > self.last_clear:
            self.last_clear = t
        if self.folding is not None and t <= self.newest:  # a row folded across it may be cut short
            self.inexact += 1


class ConnLog:
    """Connections of connection-bound phones (TCP/TLS behind NAT, or rewritten contacts) and the
    connection each of their bindings was registered over.

    Connection ``c`` (its id is its row) was opened by ``phone[c]`` to ``node[c]`` at ``t0[c]``; it
    ends at the first of its ``closes`` (the phone dropped it) or of the node's ``stops`` after
    ``t0`` (its registrar process stopped: every socket of the process is gone). A binding that a
    worker saved is identified by its (phone, until), which every copy of it (replica, database,
    storage) keeps: ``saved_*`` says over which connection it was registered.
    """

    __slots__ = ("phone", "node", "t0", "close_cid", "close_t", "stops", "saved_phone", "saved_until", "saved_cid",
                 "bound")

    def __init__(self) -> None:
        self.phone = array("q")
        self.node = array("q")
        self.t0 = array("d")
        self.close_cid = array("q")
        self.close_t = array("d")
        self.stops: list[tuple[float, int]] = []
        self.saved_phone = array("q")
        self.saved_until = array("d")
        self.saved_cid = array("q")
        self.bound = None  # per registration slot: is it connection-bound (numpy bool array)

    def open(self, phone: int, node: int, t: float) -> int:
        self.phone.append(phone)
        self.node.append(node)
        self.t0.append(t)
        return len(self.t0) - 1

    def close(self, cid: int, t: float) -> None:
        self.close_cid.append(cid)
        self.close_t.append(t)

    def saved(self, phone: int, until: float, cid: int) -> None:
        self.saved_phone.append(phone)
        self.saved_until.append(until)
        self.saved_cid.append(cid)


@dataclass
class FaultRecord:
    index: int
    kind: str
    node: str
    time: float
    repair_time: float | None = None


@dataclass
class RunLog:
    """Everything one replication recorded."""

    horizon: float
    res: float
    node_names: list[str]
    # phone outcomes: time, phone, value (> 0: registered until; -1: failure; -2: timeout)
    ph_t: array = field(default_factory=lambda: array("d"))
    ph_p: array = field(default_factory=lambda: array("q"))
    ph_v: array = field(default_factory=lambda: array("d"))
    stores: list[StoreLog] = field(default_factory=list)
    store_of_node: list[int] = field(default_factory=list)
    # (time, node index or -1): who serves calls to the VIP from then on
    serving: list[tuple[float, int]] = field(default_factory=list)
    # (time, node, state) VRRP transitions
    vrrp: list[tuple[float, str, str]] = field(default_factory=list)
    # (time, node) adverts sent (kept only around faults would be enough; they are few)
    adverts: list[tuple[float, int]] = field(default_factory=list)
    garps: list[tuple[float, int]] = field(default_factory=list)
    # (time, node, "fail"/"ok") health-check verdicts that changed keepalived's state
    checks: list[tuple[float, str, str]] = field(default_factory=list)
    # (time, store, phone count) full syncs of a restarted node, and replication messages lost
    syncs: list[tuple[float, int, int]] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    repairs: list[tuple[float, str]] = field(default_factory=list)
    # trunk registrations (:mod:`simsip.engine.trunks`): (time, trunk, node running it or -1),
    # (trunk, provider save time, binding expiry, node), (trunk, time, response code or -1 = gave up)
    trunk_nodes: list[tuple[float, int, int]] = field(default_factory=list)
    trunk_regs: list[tuple[int, float, float, int]] = field(default_factory=list)
    trunk_responses: list[tuple[int, float, int]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    bins: dict[str, Bins] = field(default_factory=dict)
    # connection-bound phones' connections and bindings (None: no such fleet)
    conns: ConnLog | None = None
    # how the run was simulated (bulk refreshes, fallbacks to events): never part of the results
    engine: dict = field(default_factory=dict)
    error: str | None = None
    # record compaction of the phone outcomes (None: every outcome is a row)
    outcome_folding: _Folding | None = None
    # False: the phones' outcomes are not recorded at all (a caller that needs only the headline
    # figures, none of which reads them: ``Model(..., figures_only=True)``)
    keep_outcomes: bool = True
    # True: only what the headline figures read was recorded (``Model(..., figures_only=True)``)
    figures_only: bool = False
    outcomes_folded: int = 0
    outcomes_inexact: int = 0
    # each slot's outcome rows are in time order (a folded log that needed no rerun)
    outcomes_ordered: bool = False

    def fold_outcomes(self, slots: int) -> None:
        if len(self.ph_t):
            raise RuntimeError("record folding must be enabled before the first outcome")
        self.outcome_folding = _Folding(slots)

    def outcome(self, t: float, p: int, v: float) -> None:
        """Phone (slot) ``p``'s transaction ended at ``t``: ``v`` > 0 registered until ``v``, else
        a failure code (-1 failure, -2 timeout). With folding, a 200 OK that comes while the
        phone's last one still holds extends it (the phone is registered throughout)."""
        if not self.keep_outcomes:
            return
        f = self.outcome_folding
        if f is not None:
            i = f.row[p]
            if i >= 0:
                last = f.last[p]
                if t < last:  # out of order: never folded (the metrics sort rows by time)
                    self.outcomes_inexact += 1
                elif v >= t and v > 0 and self.ph_v[i] > 0 and t <= self.ph_v[i]:  # the row's 200 still holds
                    self.ph_v[i] = v
                    f.last[p] = t
                    self.outcomes_folded += 1
                    return
            f.row[p] = len(self.ph_t)
            f.last[p] = t
        self.ph_t.append(t)
        self.ph_p.append(p)
        self.ph_v.append(v)

    def outcomes(self, t, p, v) -> None:
        """Many outcomes at once (numpy arrays, each slot at most once)."""
        if not self.keep_outcomes:
            return
        ids = np.asarray(p, dtype=np.int64)
        tt = np.ascontiguousarray(t, dtype=np.float64)
        vv = np.ascontiguousarray(v, dtype=np.float64)
        f = self.outcome_folding
        if f is None or ids.size == 0:
            self._outcome_rows(tt, ids, vv)
            return
        row = np.frombuffer(f.row, dtype=np.int64)
        last = np.frombuffer(f.last, dtype=np.float64)
        i = row[ids]
        has = i >= 0
        every = bool(has.all())  # the steady state: every slot has a row (no masking needed)
        lt = last[ids]
        late = tt < lt if every else has & (tt < lt)
        self.outcomes_inexact += int(late.sum())
        if len(self.ph_v):
            pv = np.frombuffer(self.ph_v, dtype=np.float64)
            rv = pv[i] if every else np.where(has, pv[np.maximum(i, 0)], -math.inf)
        else:
            pv, rv = None, np.full(ids.size, -math.inf)
        fold = ~late & (vv > 0) & (vv >= tt) & (rv > 0) & (tt <= rv)
        if not every:
            fold &= has
        if fold.all():  # the steady state: every 200 extends its phone's row
            pv[i] = vv
            last[ids] = tt
            self.outcomes_folded += int(ids.size)
            return
        if fold.any():
            pv[i[fold]] = vv[fold]
            last[ids[fold]] = tt[fold]
            self.outcomes_folded += int(fold.sum())
        k = np.flatnonzero(~fold)
        row[ids[k]] = len(self.ph_t) + np.arange(k.size)
        last[ids[k]] = tt[k]
        del row, last, pv
        if k.size:
            self._outcome_rows(tt[k], ids[k], vv[k])

    def _outcome_rows(self, t: np.ndarray, p: np.ndarray, v: np.ndarray) -> None:
        self.ph_t.frombytes(t.tobytes())
        self.ph_p.frombytes(p.tobytes())
        self.ph_v.frombytes(v.tobytes())

    def bin(self, name: str) -> Bins:
        b = self.bins.get(name)
        if b is None:
            b = self.bins[name] = Bins(self.res, self.horizon)
        return b
