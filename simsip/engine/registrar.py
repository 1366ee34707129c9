"""Registrar nodes: workers, a FIFO queue, overload replies and the binding store.

A registrar (Kamailio, Asterisk, OpenSIPS) answers REGISTER with 200 after saving a *binding*
(AOR → contact, valid until the granted expiry) in its location store. It has a fixed pool of
workers; requests that find every worker busy wait in a queue, and when the queue is full the
registrar either drops the request (the phone retransmits) or answers 503, optionally with a
Retry-After. The granted expiry is the requested one clamped to ``[min_expires, max_expires]``,
optionally randomised down by ``expires_range`` (Kamailio) to spread refreshes.

Queueing is exact first-come-first-served on ``c`` workers (the Kiefer–Wolfowitz recursion: each
arrival takes the worker that frees first), so a request's start and finish are known on arrival
and only the completion is an event. A node crash bumps the node's *epoch*: completions of the old
epoch find the node changed and produce no reply.

The binding store is a per-phone array of "valid until" times. With ``data: none`` each node has
its own store, lost when the node crashes; with ``data: shared`` all nodes read and write one
store that survives crashes (the two bounding cases; replication comes later through the same
:class:`Store` seam).
"""

from __future__ import annotations

from collections import deque

import numpy as np
from heapq import heappop, heappush
from typing import TYPE_CHECKING

from simsip.config.schema import Registrar as RegistrarCfg
from simsip.engine.dists import sampler
from simsip.engine.records import RunLog, StoreLog

if TYPE_CHECKING:  # pragma: no cover
    from simsip.engine.model import Model


class Store:
    """One binding store: ``until[p]`` is the time phone p's binding stops routing calls."""

    def __init__(self, index: int, phones: int, log: StoreLog):
        self.index = index
        self.until = [float("-inf")] * phones
        self.log = log

    def save(self, t: float, phone: int, until: float) -> None:
        self.until[phone] = until
        log = self.log
        log.t.append(t)
        log.phone.append(phone)
        log.until.append(until)

    def bulk_save(self, t, phones, until) -> None:
        """Many saves at once (numpy arrays): the initial bindings of an equilibrium start."""
        u = self.until
        ids = phones.tolist()
        if ids and ids == list(range(ids[0], ids[0] + len(ids))):
            u[ids[0] : ids[-1] + 1] = until.tolist()  # a fleet's phones are contiguous
        else:
            for p, x in zip(ids, until.tolist()):
                u[p] = x
        self.log.t.frombytes(np.asarray(t, dtype=np.float64).tobytes())
        self.log.phone.frombytes(np.asarray(phones, dtype=np.int64).tobytes())
        self.log.until.frombytes(np.asarray(until, dtype=np.float64).tobytes())

    def bulk_copy_from(self, other: "Store") -> None:
        """Start as a full replica of ``other`` (a replicated standby at equilibrium)."""
        self.until = list(other.until)
        self.log.t.extend(other.log.t)
        self.log.phone.extend(other.log.phone)
        self.log.until.extend(other.log.until)

    def clear(self, t: float) -> None:
        self.until = [float("-inf")] * len(self.until)
        self.log.clears.append(t)


class Storage:
    """Persistent binding storage (a DB table, astdb, a DRBD volume): what survives a restart."""

    def __init__(self, phones: int):
        self.until = [float("-inf")] * phones
        self.writes = 0


class RegistrarNode:
    """The registrar process on one HA node."""

    def __init__(self, model: "Model", index: int, name: str, cfg: RegistrarCfg, store: Store, log: RunLog):
        self.model = model
        self.sim = model.sim
        self.index = index
        self.name = name
        self.cfg = cfg
        self.store = store
        self.log = log
        self.up = True  # the registrar process runs (on a node that is up)
        self.hung = False  # takes requests, never answers
        self.link = True  # the node's network link
        self.phone_link = True  # the phones' side can reach the node
        self.epoch = 0
        self.workers = cfg.workers
        self.free_at = [0.0] * cfg.workers  # heap of worker free times
        self.waiting: deque[float] = deque()  # start times of queued requests (non-decreasing)
        self.queue_limit = cfg.queue_limit
        self.service = sampler(cfg.service_time, model.streams(f"registrar.{name}.service"))
        self.rnd = model.streams(f"registrar.{name}.grant")
        self.replicated = cfg.data == "replicated"
        if self.replicated:
            self.lag = sampler(cfg.replication.lag, model.streams(f"registrar.{name}.replication"))
        self.rx_bins = log.bin(f"register_rx_{name}")
        self.queue_bins = log.bin(f"queue_{name}")
        self.reject_bins = log.bin(f"rejected_{name}")
        self.served = 0
        self.rejected = 0
        self.replicas_sent = 0
        self.replicas_lost = 0
        self.record_waits = False
        self.waits: list[float] = []
        self.vrrp = None  # set by the model
        # phone-side hooks (simsip.engine.phones): digest auth check, extra work per request (TLS
        # handshake on a new connection), notice of the process stopping (closes TCP connections)
        self.auth_check = None
        self.extra_work = None
        self.on_stop = None
        self.storage: Storage | None = None  # set by the model when bindings persist
        self.persist = cfg.persistence if cfg.data != "shared" else "memory"
        self.dirty: set[int] = set()
        self.start_delay = sampler(cfg.start_time, model.streams(f"registrar.{name}.start"))
        self.loaded = 0
        self.unflushed_lost = 0
        self.starting = False

    # ------------------------------------------------------------------ life cycle
    def crash(self, t: float) -> None:
        """The registrar process stops: in-flight work is lost, and memory unless the store is shared
        (or is the database itself, usrloc db_mode 3)."""
        self.up = False
        self.hung = False
        self.starting = False
        self.epoch += 1
        self.waiting.clear()
        self.unflushed_lost += len(self.dirty)
        self.dirty.clear()  # write-back rows not yet flushed die with the process
        if self.on_stop is not None:
            self.on_stop(self.index, t)
        if self.cfg.data != "shared" and self.persist != "db_only":
            self.store.clear(t)
        self.model.note_availability(t)

    def start_process(self, t: float) -> None:
        """Start the registrar: ``start_time``, then loading persisted bindings, then it answers."""
        if self.up or self.starting:
            return
        self.starting = True
        self.epoch += 1
        epoch = self.epoch
        delay = self.start_delay()
        n_load = 0
        if self.storage is not None and self.persist in ("write_through", "write_back"):
            n_load = sum(1 for u in self.storage.until if u > t + delay)
        ready = t + delay + n_load / self.cfg.load_rate
        self.sim.call_at(ready, self._started, epoch)

    def _started(self, epoch: int) -> None:
        if epoch != self.epoch or not self.starting or not self.model.node_up[self.index]:
            return
        t = self.sim.env._now
        self.starting = False
        self.restart(t)

    def restart(self, t: float) -> None:
        """The process answers from now on (after loading what persisted, syncing if replicated)."""
        self.up = True
        self.hung = False
        self.epoch += 1
        self.free_at = [t] * self.workers
        self.waiting.clear()
        if self.storage is not None and self.persist in ("write_through", "write_back"):
            mine = self.store.until
            for p, u in enumerate(self.storage.until):
                if u > t and u > mine[p]:
                    self.store.save(t, p, u)
                    self.loaded += 1
        if self.replicated and self.cfg.replication.sync_on_start:
            self._full_sync(t)
        self.model.update_serving(t)

    def start_timers(self) -> None:
        """The usrloc timer that flushes write-back rows to storage."""
        if self.storage is not None and self.persist == "write_back":
            phase = self.model.streams(f"registrar.{self.name}.timer").random() * self.cfg.flush_interval
            self.sim.env.process(self._flusher(phase))

    def _flusher(self, phase: float):
        env = self.sim.env
        yield env.timeout(phase)
        while True:
            if self.up and self.dirty:
                st, mine = self.storage.until, self.store.until
                for p in self.dirty:
                    st[p] = mine[p]
                self.storage.writes += len(self.dirty)
                self.dirty.clear()
            yield env.timeout(self.cfg.flush_interval)

    def check_ok(self, kind: str) -> bool:
        """What keepalived's track_script sees: the socket is bound (socket) / OPTIONS answered (sip)."""
        if not self.up:
            return False
        return not (kind == "sip" and self.hung)

    # ------------------------------------------------------------------ requests
    def receive(self, phone: int, tx: int, requested: float, at: float | None = None, direct: bool = False) -> None:
        """A REGISTER (first copy or retransmission) reaches this node at layer 2 (now, or at ``at``).

        It is processed only if the node is up and holds the VIP; otherwise it is dropped.
        """
        if not self.up or not self.link or not self.phone_link or (self.vrrp.state != "master" and not direct):
            self.model.phones.lost(phone, tx)
            return
        now = self.sim.env._now if at is None else at
        rb = self.rx_bins
        i = int(now * rb.inv)  # bins cover [0, horizon]; events run only before the horizon
        rb.v[i] += 1
        if self.hung:
            self.model.phones.lost(phone, tx)
            return
        waiting = self.waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        qlen = len(waiting)
        if qlen:
            qv = self.queue_bins.v
            if qlen > qv[i]:
                qv[i] = qlen
        if qlen >= self.queue_limit:
            self.rejected += 1
            self.reject_bins.add(now)
            if self.cfg.when_full == "reply_503":
                ra = self.cfg.retry_after
                if self.cfg.retry_after_max is not None:
                    ra = self.rnd.uniform(self.cfg.retry_after, self.cfg.retry_after_max)
                self.model.phones.reply(phone, tx, now, 503, 0.0, ra)
            else:
                self.model.phones.lost(phone, tx)
            return
        free = heappop(self.free_at)
        start = now if free < now else free
        finish = start + self.service()
        if self.extra_work is not None:
            finish += self.extra_work(phone, self.service)
        heappush(self.free_at, finish)
        if start > now:
            waiting.append(start)
        if self.record_waits:
            self.waits.append(start - now)
        phones = self.model.phones
        if finish > phones.deadline[phone]:
            phones.ensure_timer(phone, tx)
        if finish < self.model.calm_until:
            # No crash or restart can happen before the worker finishes (faults are the only
            # source of those, and the next one is later): complete now, stamped at ``finish``.
            self.complete(phone, tx, requested, self.epoch, finish)
        else:
            self.sim.call_at(finish, self._complete_event, phone, tx, requested, self.epoch)

    def _complete_event(self, phone: int, tx: int, requested: float, epoch: int) -> None:
        self.complete(phone, tx, requested, epoch, self.sim.env._now)

    def complete(self, phone: int, tx: int, requested: float, epoch: int, now: float) -> None:
        """A worker finishes a REGISTER at ``now``: save the binding and answer 200."""
        if epoch != self.epoch or self.hung:  # the process died or hung meanwhile: no reply
            self.model.phones.lost(phone, tx)
            return
        if self.auth_check is not None and not self.auth_check(phone, self.index, self.epoch, now):
            self.model.phones.reply(phone, tx, now, 401, 0.0, 0.0)  # digest challenge, no binding
            return
        cfg = self.cfg
        db = self.model.database
        t_ack = now
        if db is not None:
            t_ack = db.admit(now)
            if t_ack is None:  # the database refuses the write: 500 Server Internal Error
                self.model.phones.reply(phone, tx, now, 500, 0.0, 0.0)
                return
        granted = requested if requested >= cfg.min_expires else cfg.min_expires
        if cfg.max_expires and granted > cfg.max_expires:
            granted = cfg.max_expires
        if cfg.expires_range:
            granted = granted * (1.0 - cfg.expires_range / 100.0 * self.rnd.random())
        until = now + granted + cfg.lookup_grace
        self.store.save(now, phone, until)
        persist = self.persist
        if persist != "memory":
            if persist == "write_back":
                self.dirty.add(phone)
            elif self.storage is not None:
                self.storage.until[phone] = until
                self.storage.writes += 1
        self.served += 1
        if self.replicated:
            self._replicate(now, phone, until)
        if db is not None:
            db.replicate(now, phone, until)
        self.model.phones.reply(phone, tx, t_ack, 200, granted, 0.0)

    # ------------------------------------------------------------------ replication (DMQ-like)
    def _replicate(self, now: float, phone: int, until: float) -> None:
        """Send the save to every peer; each applies it one lag later (asynchronous, after the reply)."""
        for peer in self.model.registrars:
            if peer is not self:
                self.replicas_sent += 1
                self.sim.call_at(now + self.lag(), peer.apply_replica, self.index, self.epoch, phone, until)

    def apply_replica(self, src: int, src_epoch: int, phone: int, until: float) -> None:
        source = self.model.registrars[src]
        if (
            source.epoch != src_epoch  # the sender died before the update left it
            or not self.up
            or not self.model.path_up(src, self.index)
        ):
            self.replicas_lost += 1
            return
        self.store.save(self.sim.env._now, phone, until)

    def _full_sync(self, t: float) -> None:
        """Pull every binding from a live peer at ``sync_rate`` (dmq_usrloc sync on start-up)."""
        donor = next(
            (r for r in self.model.registrars if r is not self and r.up and self.model.path_up(r.index, self.index)), None
        )
        if donor is None:
            return
        phones = [p for p, u in enumerate(donor.store.until) if u > t]
        self.log.syncs.append((t, self.index, len(phones)))
        if not phones:
            return
        rate = self.cfg.replication.sync_rate
        chunks = min(50, len(phones))
        size = -(-len(phones) // chunks)
        for k in range(0, len(phones), size):
            part = phones[k : k + size]
            self.sim.call_at(t + (k + len(part)) / rate, self._apply_sync, donor.index, donor.epoch, self.epoch, part)

    def _apply_sync(self, donor: int, donor_epoch: int, my_epoch: int, part: list[int]) -> None:
        d = self.model.registrars[donor]
        if d.epoch != donor_epoch or my_epoch != self.epoch or not self.model.path_up(donor, self.index):
            return
        now = self.sim.env._now
        mine, theirs = self.store.until, d.store.until
        for p in part:
            u = theirs[p]
            if u > now and u > mine[p]:
                self.store.save(now, p, u)
