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
from heapq import heapify, heappop, heappush
from typing import Any, Callable

import simpy
from simpy.events import NORMAL


def _dispatch(ev: "Call") -> None:
    ev.fn(*ev.args)


_CALLBACKS = (_dispatch,)


class Call:
    """A SimPy-compatible event that just calls ``fn(*args)`` when it is processed."""

    __slots__ = ("callbacks", "_ok", "_value", "fn", "args")

    def __init__(self, fn: Callable[..., Any], args: tuple):
        self.callbacks = _CALLBACKS
        self._ok = True
        self._value = None
        self.fn = fn
        self.args = args


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
        """Run ``fn(*args)`` at absolute time ``t`` (not before now)."""
        heappush(self._queue, (t, NORMAL, next(self._eid), Call(fn, args)))

    def bulk_call_at(self, times: list[float], fn: Callable[..., Any], firsts: list, rest: Any) -> None:
        """``call_at(t, fn, a, rest)`` for many (t, a) pairs at once, in list order for equal times."""
        q = self._queue
        eid = self._eid
        q.extend((t, NORMAL, next(eid), Call(fn, (a, rest))) for t, a in zip(times, firsts))
        heapify(q)

    def process(self, gen):
        return self.env.process(gen)

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
            self._loop(env, q, call, until)
        finally:
            if gc_was_on:
                gc.enable()
        env._now = until

    @staticmethod
    def _loop(env, q, call, until: float) -> None:
        while q and q[0][0] < until:
            env._now, _, _, ev = heappop(q)
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
