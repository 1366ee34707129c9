"""Phones: registration refresh, UDP REGISTER transactions, retry and backoff.

A phone registers with a requested expiry and refreshes before the *granted* expiry runs out (at
a percentage of it, or a margin before it). Each REGISTER is an RFC 3261 non-INVITE client
transaction over UDP: sent at 0, retransmitted when Timer E fires (T1, doubling, capped at T2)
until a final response arrives or Timer F (64·T1 by default) ends it with a local timeout. After a
failure — timeout, 503, other error — the phone waits per its retry rule (a fixed interval with
optional spread, or RFC 5626 exponential backoff) and starts a new transaction; a 503's
Retry-After is honoured when the profile says so.

All phones of all fleets live in one :class:`PhoneBank` as columns of per-phone state (no object
or generator per phone). A phone is idle most of the time: its only pending event is its next
refresh. Timer E is armed lazily: on the first transmission no timer is scheduled as long as the
request's path (network → queue → worker → network) is known to complete before the timer would
fire; any step that breaks the chain or runs past the deadline arms it. The result is the same
transaction timing as an eager timer, with one event fewer per registration.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

import numpy as np

from simsip.config.schema import Fleet
from simsip.engine.records import RunLog

if TYPE_CHECKING:  # pragma: no cover
    from simsip.engine.model import Model

NO_TX = -1
OUT_TIMEOUT = -2.0
OUT_FAILURE = -1.0


class FleetParams:
    """Per-fleet constants hoisted out of the config for the hot path."""

    def __init__(self, index: int, fleet: Fleet, first: int):
        ph = fleet.phone
        self.index = index
        self.name = fleet.name
        self.first = first
        self.count = fleet.count
        self.expires = ph.expires
        self.refresh = ph.refresh
        self.t1 = ph.timers.t1
        self.t2 = ph.timers.t2
        self.timer_f = ph.timers.timeout
        self.max_rtx = ph.timers.max_retransmissions
        self.retry = ph.retry
        self.calls_per_s = ph.calls_per_hour
        self.refresh_cache: dict[float, float] = {}  # granted expiry -> refresh interval


class PhoneBank:
    """State and behaviour of every phone in the scenario."""

    def __init__(self, model: "Model", fleets: tuple[Fleet, ...], log: RunLog):
        self.model = model
        self.sim = model.sim
        self.log = log
        self.params: list[FleetParams] = []
        first = 0
        for i, f in enumerate(fleets):
            self.params.append(FleetParams(i, f, first))
            first += f.count
        self.n = n = first
        self.fleet_of = np.repeat(np.arange(len(fleets), dtype=np.int16), [f.count for f in fleets])
        self._fleet_idx = array("h", self.fleet_of.tolist()) if len(fleets) > 1 else None
        self._only = self.params[0] if len(fleets) == 1 else None
        # hot per-phone state (array.array: compact, and scalar access yields Python numbers)
        self.tx = array("q", [NO_TX]) * n  # current transaction id
        self.tx_start = array("d", [0.0]) * n
        self.deadline = array("d", [0.0]) * n  # when Timer E/F next fires for the current tx
        self.interval = array("d", [0.0]) * n  # current retransmission interval
        self.timer_tx = array("q", [NO_TX]) * n  # tx whose timer event is pending
        self.sends = array("l", [0]) * n
        self.failures = array("l", [0]) * n
        self.gen = array("q", [0]) * n  # bumps invalidate a scheduled refresh/retry
        self.next_tx = 0
        self.retry_rnd = model.streams("phones.retry")
        # counters
        self.tx_bins = log.bin("register_tx")
        self.rtx_bins = log.bin("retransmissions")
        self.ok_bins = log.bin("resp_2xx")
        self.r4_bins = log.bin("resp_4xx")
        self.r503_bins = log.bin("resp_503")
        self.to_bins = log.bin("timeouts")
        self.started = 0
        self.succeeded = 0
        self.failed = 0
        self.timed_out = 0
        self.gave_up = 0
        self.stray = 0

    def fleet(self, p: int) -> FleetParams:
        return self._only or self.params[self._fleet_idx[p]]

    # ------------------------------------------------------------------ start-up
    def start(self, registrar_grant, initial_store) -> None:
        """Place every phone at t=0: equilibrium (registered, uniform phase) or boot storm."""
        self.net = self.model.network
        # a REGISTER reaching node i at layer 2 (the node checks it is up and holds the VIP)
        self.receivers = [r.receive for r in self.model.registrars]
        d = self.model.cfg.network.delay
        self.fold_arrivals = d.dist == "constant" or (d.dist in ("normal", "lognormal") and d.sd == 0)

        times_all, phones_all = [], []
        for fp, fleet in zip(self.params, self.model.cfg.fleets):
            gen = self.model.streams.generator(f"phones.start.{fleet.name}")
            lo, hi = fp.first, fp.first + fp.count
            if fleet.start == "boot_storm":
                times_all.append(gen.random(fp.count) * fleet.boot_window)
                phones_all.append(np.arange(lo, hi))
                continue
            granted = registrar_grant(fp.expires)
            rng_cfg = self.model.cfg.registrar.expires_range
            if rng_cfg:
                grants = granted * (1.0 - rng_cfg / 100.0 * gen.random(fp.count))
                intervals = np.array([fp.refresh.interval(g) for g in grants.tolist()])
            else:
                grants = np.full(fp.count, granted)
                intervals = np.full(fp.count, fp.refresh.interval(granted))
            if fleet.phases == "even":  # phone k at k·R/N, as a SIPp lab starts its calls
                u = (np.arange(fp.count) + 0.5) / fp.count
            else:
                u = gen.random(fp.count)
            last = -u * intervals  # last successful refresh, uniform in its interval
            grace = self.model.cfg.registrar.lookup_grace
            ids = np.arange(lo, hi, dtype=np.int64)
            if initial_store is not None:
                initial_store.bulk_save(last, ids, last + grants + grace)
            log = self.log
            log.ph_t.frombytes(last.astype(np.float64).tobytes())
            log.ph_p.frombytes(ids.tobytes())
            log.ph_v.frombytes((last + grants).astype(np.float64).tobytes())
            times_all.append(last + intervals)
            phones_all.append(ids)
        # every phone's first action, placed on SimPy's heap in one heapify (not 1 M pushes)
        self.sim.bulk_call_at(np.concatenate(times_all).tolist(), self.begin, np.concatenate(phones_all).tolist(), 0)

    # ------------------------------------------------------------------ transactions
    def begin(self, p: int, gen: int) -> None:
        """Start a new REGISTER transaction (refresh or retry)."""
        if gen != self.gen[p]:
            return
        now = self.sim.env._now
        fp = self.fleet(p)
        tx = self.next_tx
        self.next_tx = tx + 1
        self.tx[p] = tx
        self.tx_start[p] = now
        self.interval[p] = fp.t1
        end = now + fp.timer_f
        d = now + fp.t1
        self.deadline[p] = d if d < end else end
        self.sends[p] = 0
        self.started += 1
        b = self.tx_bins
        b.v[int(now * b.inv)] += 1
        self._send(p, tx, now, fp)

    def _send(self, p: int, tx: int, now: float, fp: FleetParams) -> None:
        self.sends[p] += 1
        net = self.net
        node = net.target(p, now) if net.lossy_arp else net.vip_mac
        if node < 0 or (net.loss and net.lost()):
            self.ensure_timer(p, tx)
            return
        t_a = now + net.delay()
        if t_a > self.deadline[p]:
            self.ensure_timer(p, tx)
        model = self.model
        if self.fold_arrivals and t_a < model.calm_until and not model.disturbed:
            # Constant delay keeps arrivals in send order, and before the first fault nothing can
            # change a node between now and the arrival: process it now, stamped t_a.
            self.receivers[node](p, tx, fp.expires, t_a)
            return
        self.sim.call_at(t_a, self.receivers[node], p, tx, fp.expires)

    def ensure_timer(self, p: int, tx: int) -> None:
        """Make sure Timer E/F is pending for transaction ``tx`` of phone ``p``."""
        if self.tx[p] == tx and self.timer_tx[p] != tx:
            self.timer_tx[p] = tx
            self.sim.call_at(self.deadline[p], self._timer, p, tx)

    def lost(self, p: int, tx: int) -> None:
        """A copy of the request or its reply is gone: only the timer can move on."""
        self.ensure_timer(p, tx)

    def _timer(self, p: int, tx: int) -> None:
        if self.tx[p] != tx:
            return  # transaction already ended
        now = self.sim.env._now
        fp = self.fleet(p)
        end = self.tx_start[p] + fp.timer_f
        rtx_done = self.sends[p] - 1
        if now >= end - 1e-9 or (fp.max_rtx is not None and rtx_done >= fp.max_rtx):
            self._timeout(p, tx, now, fp)
            return
        self.rtx_bins.add(now)
        iv = self.interval[p] * 2.0
        if iv > fp.t2:
            iv = fp.t2
        self.interval[p] = iv
        d = now + iv
        self.deadline[p] = d if d < end else end
        self.sim.call_at(self.deadline[p], self._timer, p, tx)  # timer stays armed
        self._send(p, tx, now, fp)

    def reply(self, p: int, tx: int, t_sent: float, status: int, granted: float, retry_after: float) -> None:
        """A registrar sends a final response; it reaches the phone one network delay later."""
        net = self.net
        if net.loss and net.lost():
            self.ensure_timer(p, tx)
            return
        t_r = t_sent + net.delay()
        if self.timer_tx[p] != tx and t_r <= self.deadline[p]:
            # Nothing can happen to this phone before the reply lands (no timer armed, no other
            # copy in flight): apply it now, stamped with its arrival time.
            self._response(p, tx, t_r, status, granted, retry_after)
            return
        if t_r > self.deadline[p]:
            self.ensure_timer(p, tx)
        self.sim.call_at(t_r, self._response_now, p, tx, status, granted, retry_after)

    def _response_now(self, p: int, tx: int, status: int, granted: float, retry_after: float) -> None:
        self._response(p, tx, self.sim.env._now, status, granted, retry_after)

    def _response(self, p: int, tx: int, t: float, status: int, granted: float, retry_after: float) -> None:
        if self.tx[p] != tx:
            self.stray += 1  # a late reply to a copy of a transaction that already ended
            return
        self.tx[p] = NO_TX
        fp = self.fleet(p)
        log = self.log
        if status < 300:
            b = self.ok_bins
            b.v[int(t * b.inv)] += 1
            self.succeeded += 1
            self.failures[p] = 0
            log.ph_t.append(t)
            log.ph_p.append(p)
            log.ph_v.append(t + granted)
            ri = fp.refresh_cache.get(granted)
            if ri is None:
                ri = fp.refresh_cache[granted] = fp.refresh.interval(granted)
            self.sim.call_at(t + ri, self.begin, p, self.gen[p])
            return
        (self.r503_bins if status == 503 else self.r4_bins).add(t)
        self.failed += 1
        self._fail(p, t, fp, OUT_FAILURE, retry_after)

    def _timeout(self, p: int, tx: int, now: float, fp: FleetParams) -> None:
        self.tx[p] = NO_TX
        self.to_bins.add(now)
        self.timed_out += 1
        self._fail(p, now, fp, OUT_TIMEOUT, 0.0, timeout=True)

    # ------------------------------------------------------------------ retry rules
    def _fail(self, p: int, t: float, fp: FleetParams, outcome: float, retry_after: float, timeout: bool = False) -> None:
        log = self.log
        log.ph_t.append(t)
        log.ph_p.append(p)
        log.ph_v.append(outcome)
        n = self.failures[p]
        self.failures[p] = n + 1
        wait = self.retry_wait(fp, n, timeout)
        if wait is None:
            self.gave_up += 1
            return
        r = fp.retry
        if retry_after > 0 and r.honour_retry_after and wait < retry_after:
            wait = retry_after
        self.sim.call_at(t + wait, self.begin, p, self.gen[p])

    def retry_wait(self, fp: FleetParams, n: int, timeout: bool) -> float | None:
        """Seconds to wait after the (n+1)-th consecutive failure; None = give up."""
        r = fp.retry
        if r.max_attempts and n + 1 >= r.max_attempts:
            if (n + 1) % r.max_attempts == 0:
                if r.after_max == "give_up":
                    return None
                return r.long_interval
        if timeout and r.timeout_interval is not None:
            return r.timeout_interval
        if r.mode == "backoff":
            w = r.base * 2.0 ** (n + r.exponent_offset)
            if w > r.max:
                w = r.max
            return w * (0.5 + 0.5 * self.retry_rnd.random())
        base = r.first_interval if (n == 0 and r.first_interval is not None) else r.interval
        if r.spread:
            if base < r.spread:
                return self.retry_rnd.random() * r.spread
            return base + r.spread * (2.0 * self.retry_rnd.random() - 1.0)
        return base


__all__ = ["PhoneBank", "FleetParams", "NO_TX"]
