"""The event loop: SimPy's own environment, with cheap callbacks for the mass of phone events.

simsip is a SimPy model: one ``simpy.Environment`` holds the clock and the event queue, the few
long-lived actors (VRRP instances, fault injectors) are SimPy processes that fail with
``Interrupt`` when their node crashes. A fleet of a million phones, though, cannot afford a
generator per phone: most phones are idle, waiting for their next refresh. Their timers are
scheduled as :class:`Call` events — plain callbacks placed on the *same* SimPy heap with SimPy's
own ordering (time, priority, insertion id), so they interleave deterministically with the
processes, but cost a tuple and a small object instead of a generator, a ``Timeout`` and a resume.
"""

from __future__ import annotations

import gc
import math

import numpy as np
from heapq import heapify, heappop, heappush
from time import perf_counter
from typing import Any, Callable

import simpy
from simpy.events import NORMAL


def _dispatch(ev: "Call") -> None:
    ev.fn(*ev.args)


_CALLBACKS = (_dispatch,)
_PHONE_KEY = 1 << 100  # phones' events sort after every other event at the same instant


class Call:
    """A SimPy-compatible event that just calls ``fn(*args)`` when it is processed."""

    __slots__ = ("callbacks", "_ok", "_value", "fn", "args")

    def __init__(self, fn: Callable[..., Any], args: tuple):
        self.callbacks = _CALLBACKS
        self._ok = True
        self._value = None
        self.fn = fn
        self.args = args


class InertCall(Call):
    """A control event that changes no fact and reads no data-plane state while the control plane
    is steady (a VRRP advert, a backup's timer re-arming): see :meth:`Calendar.advance`."""

    __slots__ = ()


class Sim:
    """The model's clock: a SimPy environment plus :meth:`call_at` for lightweight timers."""

    def __init__(self, env: simpy.Environment | None = None):
        self.env = env or simpy.Environment()
        self._queue = self.env._queue  # SimPy's heap: (time, priority, eid, event)
        self._eid = self.env._eid

    @property
    def now(self) -> float:
        return self.env.now

    def call_at(self, t: float, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` at absolute time ``t`` (not before now); equal times run in the order
        they were scheduled (SimPy's rule), before any phone's event at that time."""
        heappush(self._queue, (t, NORMAL, next(self._eid), Call(fn, args)))

    def phone_at(self, t: float, fn: Callable[..., Any], p: int, *rest: Any) -> None:
        """Run ``fn(p, *rest)``, an event of phone ``p``, at ``t``.

        Events of different phones at the same instant run in phone order, whatever order they
        were scheduled in, and after the control events of that instant; one phone's run in the
        order scheduled. Ties are rare but real (a semi-sync release, a boot storm at one
        instant), and this rule makes their order the same whether a fast path scheduled an
        event early or the plain engine scheduled it on time."""
        heappush(self._queue, (t, NORMAL, _PHONE_KEY + (p << 40) + next(self._eid), Call(fn, (p, *rest))))

    def bulk_call_at(self, times: list[float], fn: Callable[..., Any], firsts: list, rest: Any) -> None:
        """``phone_at(t, fn, p, rest)`` for many (t, p) pairs at once."""
        q = self._queue
        eid = self._eid
        q.extend((t, NORMAL, _PHONE_KEY + (a << 40) + next(eid), Call(fn, (a, rest))) for t, a in zip(times, firsts))
        heapify(q)

    def process(self, gen):
        return self.env.process(gen)

    bulk = None  # a Calendar of refreshes kept off the heap (set by the model when it applies)

    def run(self, until: float) -> None:
        """Process events with time < ``until`` (SimPy's ``run(until=...)`` semantics).

        :class:`Call` events are dispatched directly; every other event is processed exactly as
        ``simpy.Environment.step`` does (callbacks, then the failure check), so SimPy processes,
        timeouts, conditions and interrupts behave as under ``env.run``.
        """
        env = self.env
        q = self._queue
        call = Call
        # The event loop allocates millions of short-lived tuples and Call objects but creates no
        # reference cycles; the cyclic collector would rescan the whole heap of pending events over
        # and over (measured: a quarter of the run time at 1 M phones). Reference counting frees
        # everything; the collector is back on as soon as the run ends.
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            self._loop(env, q, call, until, self.bulk or _NO_CALENDAR)
        finally:
            if gc_was_on:
                gc.enable()
        env._now = until

    @staticmethod
    def _loop(env, q, call, until: float, cal: "Calendar") -> None:
        """SimPy's heap, merged in time order with a :class:`Calendar`: heap events strictly
        before the calendar's next time run as usual; then the calendar advances (in bulk, or by
        handing its next entries to the heap as ordinary phone events). Without a calendar
        (``_NO_CALENDAR``, never due) it is the plain loop."""
        now = env._now
        inf = math.inf
        while True:
            tc = cal.next_t
            stop = tc if tc < until else until
            while q and q[0][0] < stop:
                t, _, _, ev = heappop(q)
                if t < now:
                    raise RuntimeError(f"an event was scheduled in the past ({t!r} < now {now!r}): {ev!r}")
                env._now = now = t
                if ev.__class__ is call:
                    ev.fn(*ev.args)
                    continue
                callbacks, ev.callbacks = ev.callbacks, None
                for cb in callbacks:
                    cb(ev)
                if not ev._ok and not hasattr(ev, "_defused"):
                    exc = type(ev._value)(*ev._value.args)
                    exc.__cause__ = ev._value
                    raise exc
            if tc >= until:
                return
            env._now = now = tc  # nothing on the heap is earlier
            cal.advance(q[0][0] if q else inf, until)


class _NoCalendar:
    next_t = math.inf


_NO_CALENDAR = _NoCalendar()


class Calendar:
    """Pending refreshes of phones, kept off SimPy's heap: (time, phone, generation) in buckets of
    ``width`` seconds.

    A million idle phones each wait for one thing, their next REGISTER. On the heap that is a
    million entries and a log-depth push and pop per refresh. Here a refresh goes to its time's
    bucket (a few list appends); a bucket is sorted once when the clock reaches it, in the order
    the heap would pop its entries (time, then phone: :meth:`Sim.phone_at`'s rule). The loop
    (:meth:`Sim._loop`) hands the entries before the heap's next event to ``step`` (the phones'
    bulk refresh), which applies those it can prove undisturbed and returns where it stopped; an
    entry it cannot apply, or one at the same instant as a heap event, becomes an ordinary
    ``phone_at`` event of ``begin``, so the heap's order decides. A refresh due in the bucket already
    being worked through goes to the heap directly. ``next_t`` never goes back: new entries land
    in later buckets, at or after the next bucket's start.
    """

    MIN_BATCH = 4  # fewer entries before the next heap event: plain events are cheaper
    MAX_BATCH = 1 << 16

    SCAN = 64  # look past inert control events only in a heap this small (steady state)
    RADIX_MIN = 20_000  # add_many: more entries than this are ordered by a radix sort of 16-bit bucket offsets

    def __init__(self, sim: "Sim", width: float, begin: Callable[..., Any], step, horizon: "Horizon" = None,
                 steady=None):
        self.sim = sim
        self.horizon = horizon
        # steady() -> until when the control plane's inert events change nothing (-inf: not steady)
        self.steady = steady
        self.width = width
        self.inv = 1.0 / width
        self.begin = begin  # begin(p, gen): the event a released entry becomes
        self.step = step  # step(t, p, g, limit) -> entries applied from the front (a prefix)
        self.buckets: dict[int, list] = {}  # bucket -> [times, phones, gens, numpy chunks]
        self.keys: list[int] = []  # heap of bucket numbers with entries
        self.cur = -1  # the bucket being worked through
        self.t = self.p = self.g = None  # its sorted entries
        self.i = 0
        self.n = 0
        self.next_t = 0.0
        self.batch = 1024  # entries offered to the next step: doubles while steps take all, shrinks on a cut
        self.released = 0  # entries handed to the heap as events
        self.seconds = 0.0  # wall time spent in bulk steps (benchmarks: cost per bulk registration)

    def _bucket(self, b: int) -> list:
        bk = self.buckets.get(b)
        if bk is None:
            bk = self.buckets[b] = [[], [], [], []]
            heappush(self.keys, b)
        return bk

    def add(self, t: float, p: int, g: int) -> None:
        """Phone ``p`` (generation ``g``) begins a REGISTER at ``t``."""
        b = int(t * self.inv)
        if b <= self.cur:
            self.sim.phone_at(t, self.begin, p, g)
            self.released += 1
            return
        bk = self._bucket(b)
        bk[0].append(t)
        bk[1].append(p)
        bk[2].append(g)

    def add_many(self, t, p, g) -> None:
        """:meth:`add` for arrays of entries."""
        t = np.asarray(t, dtype=np.float64)
        p = np.asarray(p, dtype=np.int64)
        g = np.asarray(g, dtype=np.int64)
        if g.shape != p.shape:
            g = np.broadcast_to(g, p.shape)
        b = (t * self.inv).astype(np.int64)
        early = b <= self.cur
        if early.any():
            for ti, pi, gi in zip(t[early].tolist(), p[early].tolist(), g[early].tolist()):
                self.sim.phone_at(ti, self.begin, pi, gi)
            self.released += int(early.sum())
            keep = ~early
            t, p, g, b = t[keep], p[keep], g[keep], b[keep]
        if not len(b):
            return
        if b.min() == b.max():
            self._bucket(int(b[0]))[3].append((t, p, g))
            return
        lo = int(b.min())
        if len(b) > self.RADIX_MIN and int(b.max()) - lo < 1 << 16:
            # many entries over few buckets (the equilibrium start): the same stable order by
            # bucket from a radix sort of the 16-bit offsets
            order = np.argsort((b - lo).astype(np.uint16), kind="stable")
        else:
            order = np.argsort(b, kind="stable")
        b, t, p, g = b[order], t[order], p[order], g[order]
        cuts = np.flatnonzero(np.diff(b)) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [len(b)]))
        for s0, e0 in zip(starts.tolist(), ends.tolist()):
            self._bucket(int(b[s0]))[3].append((t[s0:e0], p[s0:e0], g[s0:e0]))

    def _load(self) -> None:
        """Move to the next bucket with entries and sort them (time, then phone)."""
        if not self.keys:  # nothing yet: look again at the next bucket's start
            self.cur += 1
            self.t = None
            self.i = self.n = 0
            self.next_t = (self.cur + 1) * self.width
            return
        b = heappop(self.keys)
        ts, ps, gs, chunks = self.buckets.pop(b)
        parts_t = [c[0] for c in chunks] + ([np.array(ts, dtype=np.float64)] if ts else [])
        parts_p = [c[1] for c in chunks] + ([np.array(ps, dtype=np.int64)] if ps else [])
        parts_g = [c[2] for c in chunks] + ([np.array(gs, dtype=np.int64)] if gs else [])
        t = np.concatenate(parts_t)
        p = np.concatenate(parts_p)
        g = np.concatenate(parts_g)
        order = np.argsort(t, kind="stable")  # by time; equal times (rare) then by phone, as the heap pops
        ts = t[order]
        if ts.size > 1 and (ts[1:] == ts[:-1]).any():
            order = np.lexsort((p, t))
        self.cur = b
        self.t, self.p, self.g = t[order], p[order], g[order]
        self.i = 0
        self.n = len(t)
        self.next_t = float(self.t[0])

    def _first_hard(self, th: float) -> float:
        """The time of the heap's first event that is not an inert control event (``th`` when the
        heap is too large to look through)."""
        q = self.sim._queue
        if len(q) > self.SCAN:
            return th
        first = math.inf
        for t, _, _, ev in q:
            if t < first and not (ev.__class__ is InertCall or getattr(ev, "_inert", False)):
                first = t
        return first

    def _release(self, i: int, j: int) -> None:
        """Entries i..j become ordinary phone events."""
        phone_at, begin = self.sim.phone_at, self.begin
        for ti, pi, gi in zip(self.t[i:j].tolist(), self.p[i:j].tolist(), self.g[i:j].tolist()):
            phone_at(ti, begin, pi, gi)
        self.released += j - i

    def _moved(self, i: int) -> None:
        self.i = i
        if i < self.n:
            self.next_t = float(self.t[i])
        else:
            self.next_t = (self.cur + 1) * self.width  # new entries land at or after it

    def advance(self, th: float, until: float) -> None:
        """The clock is at ``next_t`` and the heap's next event is at ``th`` (>= it)."""
        i = self.i
        if i >= self.n:
            self._load()
            return
        t = self.t
        lim = th if th < until else until
        reach = None  # how far effects may be applied ahead (None: the horizon, the fast paths' rule)
        if self.steady is not None and th < until:
            quiet = self.steady()
            if quiet > th:
                hard = self.horizon.hard_until
                reach = quiet if quiet < hard else hard
                lim = min(self._first_hard(th), reach, until)
        if t[i] >= lim:  # same instant as the heap's next event: let the heap order them
            j = int(np.searchsorted(t, t[i], side="right"))
            self._release(i, j)
            self._moved(j)
            return
        j = int(np.searchsorted(t, lim, side="left"))
        if j - i > self.batch:  # look no further than recent batches got: a cut early in a long
            j = i + self.batch  # batch would redo the rest at every entry (quadratic under load)
        if j - i < self.MIN_BATCH:
            self._release(i, j)
            self._moved(j)
            return
        c0 = perf_counter()
        k = self.step(t[i:j], self.p[i:j], self.g[i:j], reach)
        self.seconds += perf_counter() - c0
        if k < 0:  # none of them now (a batch-wide reason): all become events
            self._release(i, j)
            self._moved(j)
            return
        k += i
        self.batch = min(2 * self.batch, self.MAX_BATCH) if k >= j else max(4 * self.MIN_BATCH, 2 * (k - i))
        if k < j:
            self._release(k, k + 1)  # the first entry it could not apply runs as an event
            k += 1
        self._moved(k)


class Horizon:
    """The earliest time at which anything but the phones' own transactions may change state.

    The engine is exact event by event. Its fast paths apply an effect *ahead* of its time (a
    registrar's completion when the request arrives, a phone's response when it is sent, an arrival
    when its packet leaves), stamped with the time it really happens. That is exact only if nothing
    that the effect reads or that reads it runs in between. Everything that can stop, start, fence,
    restart, promote or reroute anything — faults and repairs, HA daemons, health checks, resource
    monitors, cluster membership, ARP timers, database promotion, the write-back flusher, the load
    balancer's probes — is a *control* event, scheduled through a :class:`ControlClock` that first
    lowers this horizon to the event's time. A fast path may act ahead only for an effect stamped
    strictly before :attr:`until`; otherwise it schedules the effect as an event.

    With ``enabled=False`` (``engine.fast_paths: false``) :attr:`until` stays at −∞ and every
    effect is an event: the plain engine that the twin-run tests hold the fast one to.
    """

    __slots__ = ("until", "_heap", "_hard", "enabled")

    def __init__(self, end: float, enabled: bool = True):
        self.enabled = enabled
        self._heap: list[float] = [end]  # nothing is applied ahead past the end of the run
        self._hard: list[float] = [end]  # the control events that are not inert
        self.until = end if enabled else -math.inf

    def lower(self, t: float) -> None:
        """A control event will happen at ``t``."""
        heappush(self._heap, t)
        heappush(self._hard, t)
        if self.enabled and t < self.until:
            self.until = t

    def lower_inert(self, t: float) -> None:
        """An inert control event (:class:`InertCall`) will happen at ``t``: it bounds the fast
        paths like any other, but not the bulk path while the control plane is steady."""
        heappush(self._heap, t)
        if self.enabled and t < self.until:
            self.until = t

    @staticmethod
    def _pop(h: list[float], t: float) -> None:
        while h and h[0] < t:  # safety net: nothing before now is still pending
            heappop(h)
        if h and h[0] == t:
            heappop(h)

    def passed(self, t: float, inert: bool = False) -> None:
        """The control event registered for ``t`` is being processed now (``t`` is the clock)."""
        h = self._heap
        self._pop(h, t)
        if not inert:
            self._pop(self._hard, t)
        if self.enabled:
            self.until = h[0] if h else math.inf

    @property
    def hard_until(self) -> float:
        """The earliest pending control event that is not inert."""
        if not self.enabled:
            return -math.inf
        return self._hard[0] if self._hard else math.inf


class ControlClock:
    """The clock as the control plane sees it: every timer it sets lowers the :class:`Horizon`.

    Control components (HA daemons, health checks, fault injectors, ARP timers, database
    promotion, storage flushers, probes) schedule through this port only; the phones' and the
    registrar's data path use :class:`Sim` directly.
    """

    def __init__(self, sim: "Sim", horizon: Horizon):
        self.sim = sim
        self.env = sim.env
        self.horizon = horizon

    @property
    def now(self) -> float:
        return self.env.now

    def call_at(self, t: float, fn: Callable[..., Any], *args: Any) -> None:
        self.horizon.lower(t)
        self.sim.call_at(t, self._fire, t, fn, args)

    def _fire(self, t: float, fn: Callable[..., Any], args: tuple) -> None:
        self.horizon.passed(t)
        fn(*args)

    def call_at_inert(self, t: float, fn: Callable[..., Any], *args: Any) -> None:
        """:meth:`call_at` for an event that is inert while the control plane is steady
        (:class:`InertCall`; its component's ``steady_until`` says until when)."""
        self.horizon.lower_inert(t)
        sim = self.sim
        heappush(sim._queue, (t, NORMAL, next(sim._eid), InertCall(self._fire_inert, (t, fn, args))))

    def _fire_inert(self, t: float, fn: Callable[..., Any], args: tuple) -> None:
        self.horizon.passed(t, True)
        fn(*args)

    def timeout(self, delay: float, inert: bool = False):
        """A SimPy timeout for a control process (``yield clock.timeout(d)``); ``inert`` as
        :meth:`call_at_inert`."""
        env = self.env
        t = env._now + delay
        if inert:
            self.horizon.lower_inert(t)
        else:
            self.horizon.lower(t)
        ev = env.timeout(delay)
        hz = self.horizon
        ev.callbacks.append(lambda _ev: hz.passed(t, inert))
        if inert:
            ev._inert = True
        return ev

    def event(self):
        return self.env.event()

    def process(self, gen):
        return self.env.process(gen)

    @property
    def active_process(self):
        return self.env.active_process
