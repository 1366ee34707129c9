"""Registrar nodes: workers, a FIFO queue, overload replies and the binding store.

A registrar (Kamailio, Asterisk, OpenSIPS) answers REGISTER with 200 after saving a *binding*
(AOR → contact, valid until the granted expiry) in its location store. It has a fixed pool of
workers; requests that find every worker busy wait in a queue, and when the queue is full the
registrar either drops the request (the phone retransmits) or answers 503, optionally with a
Retry-After. The granted expiry is the requested one clamped to ``[min_expires, max_expires]``,
optionally randomised down by ``expires_range`` (Kamailio) to spread refreshes.

Queueing is exact first-come-first-served on ``c`` workers (the Kiefer–Wolfowitz recursion: each
arrival takes the worker that frees first), so a request's start and finish are known on arrival
and only the completion is an event. Everything random about the request — its service time, the
granted expiry, the reply's trip back, the replication lags — is drawn on arrival, so the order in
which completions are processed never changes a number. A process stop bumps the process *epoch*:
completions of the old epoch find the process changed and produce no reply.

The binding store is a per-phone array of "valid until" times. With ``data: none`` each node has
its own store, lost when the process stops; with ``data: shared`` all nodes read and write one
store that survives crashes; with ``data: replicated`` every save is sent to the peers (DMQ-like),
and a node that (re)starts pulls a full sync from a live peer once it has found one (dmq peer
discovery); with ``replication.sync_burst`` the sync is a burst of messages through this node's UDP
socket — the REGISTERs' or one of its own — that the kernel drops when the buffer is full and the
donor's tm retransmits (:mod:`simsip.protocols.sync`). Sync messages are control events (they
lower the fast paths' horizon), so the REGISTERs they compete with are never applied past them.
Every copy of a binding (store, persistent storage, database replica) keeps the save with the
latest time stamp, whatever order saves are applied in. With ``max_contacts`` a store also counts
each connection-bound phone's contacts (:class:`Contacts`; a new connection is a new contact):
one too many is refused with ``contacts_full_status`` unless ``remove_existing``; the count is
replicated with the save, cleared with the store, and not rebuilt from storage or a database
failover (those bindings count as no contact until the phone registers again).

The node talks to the phones only through its *replies* port (lost, held until, reply, and the
phone-side hooks for digest auth, TLS handshake work and closed connections), to its siblings
through the *topology* and the peer list handed to it, and to time through the simulator (data
path) and the control clock (its own start-up and flush timers).
"""

from __future__ import annotations

import math
from array import array
from collections import deque

import numpy as np
from heapq import heapify, heappop, heappush, heapreplace

from simsip.config.schema import Registrar as RegistrarCfg
from simsip.engine.dists import sampler, vector_draws
from simsip.engine.records import RunLog, StoreLog
from simsip.protocols import sync as sync_rules
from simsip.protocols.overload import (pike_hit, taskprocessor_alert, threadpool_growth, threadpool_idle_expired, udp_admits,
                                       udp_read)
from simsip.protocols.registration import binding_until, contacts_after, grant_expiry, reported_expiry, retry_after_header
from simsip.rng import counter_key, phone_hash, wall_clock_phase

NEVER = float("-inf")


#: 0, 1, 2, ... for the free-run test's windows (RUN_CHUNK at most)
_ARANGE = np.arange(4096)


def _start_on_arrival(free_at, finish, arrive) -> np.ndarray:
    """Whether each arrival (``arrive`` sorted), with every one before it started on arrival, finds
    a worker free: fewer than c of the workers' free times and of the earlier finishes lie after
    it, i.e. i < #(free_at ∪ finish ≤ a_i) (a later arrival never finishes before a_i). For a
    long batch that count is taken from one stable sort of the union and the arrivals together
    (the arrivals keep their order and sort after equal values: arrival i at sorted position j_i
    has j_i − i of the union at or before it); otherwise by a search of the sorted union."""
    n = len(arrive)
    k = _ARANGE[:n] if n <= _ARANGE.size else np.arange(n)
    if n >= 1024:
        m = len(free_at) + n
        o = np.concatenate((free_at, finish, arrive)).argsort(kind="stable")
        return k < np.flatnonzero(o >= m) - k
    both = np.concatenate((free_at, finish))
    both.sort()
    return k < both.searchsorted(arrive, side="right")


class ReceiveQueue:
    """What waits in a registrar socket's receive queue: the requests no worker has read yet, in
    arrival order (each one's read time ``start``, non-decreasing, its arrival and its truesize),
    and — with a byte-bounded UDP buffer (``rcvbuf`` > 0) — the kernel's charge for them.

    The charge is the truesize of every unread datagram plus the *forward deficit* of read ones
    (Linux ``udp_rmem_release``, :func:`~simsip.protocols.overload.udp_read`): a read adds its
    datagram to the deficit, which is given back once it reaches ``rcvbuf >> 2`` or the reader-side
    queue is empty. The reader queue holds what had arrived when it was last refilled (at a release,
    or by a read that found it empty), so it is empty after a read when the next unread request
    arrived after that refill. Reads are applied as they are passed (:meth:`popleft`, called for
    every request whose read time is not after the arrival being admitted). Without a byte bound
    the queue holds ``limit`` requests (``queue_limit``)."""

    __slots__ = ("start", "arrive", "size", "limit", "truesize", "rcvbuf", "admission", "charged", "deficit",
                 "refill", "tags", "tps", "cleared_at")

    def __init__(self, limit: int, truesize: int = 0, rcvbuf: int = 0, admission: str = "not_over",
                 tagged: bool = False):
        self.tags: deque[int] | None = deque() if tagged else None  # each request's taskprocessor
        self.tps: Taskprocessors | None = None  # counts the tagged requests (Asterisk's alert)
        self.cleared_at: float | None = None  # a pop cleared the node's alert then (not yet applied)
        self.start: deque[float] = deque()
        self.arrive: deque[float] = deque()
        self.size: deque[int] = deque()
        self.limit = int(limit)
        self.truesize = int(truesize) if rcvbuf else 0
        self.rcvbuf = int(rcvbuf)
        self.admission = admission  # the kernel's test (simsip.protocols.overload.UDP_ADMISSION)
        self.charged = 0  # truesize of the unread requests
        self.deficit = 0  # read, not yet given back
        self.refill = -np.inf  # when the reader queue was last refilled

    def __len__(self) -> int:
        return len(self.start)

    def __bool__(self) -> bool:
        return bool(self.start)

    def __getitem__(self, k: int) -> float:
        return self.start[k]

    def append(self, start: float, arrival: float, size: int | None = None, tag: int = -1) -> bool:
        """A request arriving at ``arrival`` that a worker reads at ``start`` (> arrival) waits (in
        taskprocessor ``tag`` of a tagged queue; -1: none). True if that raised the node's alert."""
        self.start.append(start)
        self.arrive.append(arrival)
        raised = False
        if self.tags is not None:
            self.tags.append(tag)
            if tag >= 0 and self.tps is not None:
                raised = self.tps.pushed(tag)
        if self.rcvbuf:
            z = self.truesize if size is None else int(size)
            self.size.append(z)
            self.charged += z
        return raised

    def popleft(self) -> float:
        """The oldest request is read (at the time returned); in a counted queue a pop that clears
        the node's alert leaves its time in ``cleared_at``."""
        r = self.start.popleft()
        a = self.arrive.popleft()
        if self.tags is not None:
            k = self.tags.popleft()
            if k >= 0 and self.tps is not None and self.tps.popped(k):
                self.cleared_at = r
        if self.rcvbuf:
            z = self.size.popleft()
            self.charged -= z
            if a > self.refill:  # the reader queue was empty: the read refills it
                self.refill = r
            nxt = self.arrive[0] if self.arrive else np.inf
            self.deficit, released = udp_read(self.deficit, z, self.rcvbuf, nxt > self.refill)
            if released:
                self.refill = r  # the release moves what arrived meanwhile to the reader queue
        return r

    def full(self, size: int | None = None) -> bool:
        """Would the kernel drop a request (of ``size`` bytes; default ``truesize``) arriving now?"""
        if self.rcvbuf:
            return not udp_admits(self.charged + self.deficit, self.rcvbuf,
                                  self.truesize if size is None else int(size), self.admission)
        return len(self.start) >= self.limit

    def clear(self) -> None:
        self.start.clear()
        self.arrive.clear()
        self.size.clear()
        if self.tags is not None:
            self.tags.clear()
        if self.tps is not None:
            self.tps.clear()
        self.cleared_at = None
        self.charged = self.deficit = 0
        self.refill = -np.inf

    def copy(self) -> "ReceiveQueue":
        q = ReceiveQueue(self.limit, self.truesize, self.rcvbuf, self.admission, self.tags is not None)
        q.start, q.arrive, q.size = deque(self.start), deque(self.arrive), deque(self.size)
        if self.tags is not None:
            q.tags = deque(self.tags)
        q.charged, q.deficit, q.refill = self.charged, self.deficit, self.refill
        return q


class Taskprocessors:
    """The taskprocessors a REGISTER waits in before a thread runs it, for Asterisk's overload alert.

    res_pjsip's distributor pushes an out-of-dialog request to one of ``n`` serializers
    (``DISTRIBUTOR_POOL_SIZE`` 31), chosen by a hash of its Call-ID and From tag
    (``ast_sip_get_distributor_serializer``, res/res_pjsip/pjsip_distributor.c). Each serializer is
    a taskprocessor that counts its own queued tasks: it goes into alert on the push that brings it
    to ``high`` (500) and out on the pop that brings it to ``low`` (450)
    (:func:`~simsip.protocols.overload.taskprocessor_alert`), and the process-wide alert that makes
    the distributor ignore UDP requests is raised while *any* taskprocessor is in alert
    (``tps_alert_count`` > 0, main/taskprocessor.c ``tps_alert_add``). So with 31 serializers the
    alert needs about 500 queued in one of them — around 31 × 500 in all when the phones hash
    evenly — not 500 in all. A phone keeps its Call-ID across refreshes (RFC 3261 §10.2), so each
    phone's requests go to one serializer, fixed for the run: a counter-based hash of the phone
    (order independent). ``n`` = 1 is one queue for the node (a registrar without serializers).
    Which requests wait is the FCFS pool's (the threads take requests in arrival order, an
    approximation of per-serializer FIFO that keeps the same throughput while every serializer is
    busy)."""

    __slots__ = ("n", "key", "count", "in_alert", "alerted", "high", "low")

    def __init__(self, n: int, high: int, low: int, key: int = 0):
        self.n = max(1, int(n))
        self.key = int(key)
        self.high, self.low = int(high), int(low)
        self.count = [0] * self.n
        self.in_alert = [False] * self.n
        self.alerted = 0  # taskprocessors in alert

    def of(self, phone: int) -> int:
        """The serializer phone ``phone``'s requests go to."""
        if self.n == 1:
            return 0
        return phone_hash(self.key, phone) % self.n

    def pushed(self, k: int) -> bool:
        """A request queued in taskprocessor ``k``: True if that raised the node's alert."""
        c = self.count[k] = self.count[k] + 1
        if not self.in_alert[k] and taskprocessor_alert(False, c, self.high, self.low):
            self.in_alert[k] = True
            self.alerted += 1
            return self.alerted == 1
        return False

    def popped(self, k: int) -> bool:
        """A request of taskprocessor ``k`` started: True if that cleared the node's alert."""
        c = self.count[k] = self.count[k] - 1
        if self.in_alert[k] and not taskprocessor_alert(True, c, self.high, self.low):
            self.in_alert[k] = False
            self.alerted -= 1
            return self.alerted == 0
        return False

    def clear(self) -> None:
        self.count = [0] * self.n
        self.in_alert = [False] * self.n
        self.alerted = 0


class Contacts:
    """The contacts each connection-bound phone holds in one binding store, for ``max_contacts``.

    A connection-bound phone's contact is the source address of the connection it registered over,
    so every new connection makes a new contact; the old one stays until it expires or is removed.
    ``held[p]`` maps each of phone p's contacts (its connection id) to the time it expires. Other
    phones keep one contact whatever their connection (their Contact is their own address).
    """

    def __init__(self) -> None:
        self.held: dict[int, dict[int, float]] = {}
        self.at: dict[int, float] = {}

    def seed(self, phone: int, cid: int, until: float) -> None:
        self.held[phone] = {cid: until}
        self.at[phone] = NEVER

    def admit(self, t: float, phone: int, cid: int, until: float, limit: int, remove_existing: bool) -> bool:
        """A REGISTER over connection ``cid`` asks to bind until ``until`` at ``t``: False if it
        would exceed ``limit`` unexpired contacts and ``remove_existing`` is off (the caller refuses
        it); else saved, after removing the contacts that expire soonest if needed
        (:func:`~simsip.protocols.registration.contacts_after`)."""
        held = self.held.get(phone, {})
        kept = contacts_after(held, t, cid, limit, remove_existing)
        if kept is None:
            return False
        kept[cid] = until
        self.held[phone] = kept
        self.at[phone] = t
        return True

    def apply(self, t_origin: float, phone: int, snapshot: dict[int, float]) -> None:
        """A replica of a peer's contacts after its save at ``t_origin`` (the latest save wins)."""
        if t_origin >= self.at.get(phone, NEVER):
            self.held[phone] = dict(snapshot)
            self.at[phone] = t_origin

    def clear(self) -> None:
        self.held = {}
        self.at = {}


class Store:
    """One binding store: ``until[p]`` is the time phone p's binding stops routing calls.

    ``at[p]`` is the time stamp of the save that ``until[p]`` holds: a save stamped earlier than
    the one already applied (a fast path applied the later one ahead) is logged but does not
    overwrite it.
    """

    def __init__(self, index: int, phones: int, log: StoreLog):
        self.index = index
        # compact columns (8 bytes a phone each); scalar access yields Python floats
        self.until = array("d", [NEVER]) * phones
        self.at = array("d", [NEVER]) * phones
        self.log = log
        self.contacts: Contacts | None = None  # with max_contacts and connection-bound phones

    def save(self, t: float, phone: int, until: float) -> None:
        if t >= self.at[phone]:
            self.until[phone] = until
            self.at[phone] = t
        self.log.add(t, phone, until)

    def grow(self, extra: int) -> None:
        self.until.extend(array("d", [NEVER]) * extra)
        self.at.extend(array("d", [NEVER]) * extra)
        self.log.grow(extra)

    def bulk_save(self, t, phones, until) -> None:
        """Many saves at once (numpy arrays): the initial bindings of an equilibrium start, and
        the refreshes a bulk step applies (``t`` non-decreasing, each phone at most once); a save
        stamped before the one held is logged but not applied, as in :meth:`save`."""
        u = np.frombuffer(self.until, dtype=np.float64)
        a = np.frombuffer(self.at, dtype=np.float64)
        ids = np.asarray(phones, dtype=np.int64)
        tt = np.asarray(t, dtype=np.float64)
        if tt.shape != ids.shape:
            tt = np.broadcast_to(tt, ids.shape)
        keep = tt >= a[ids]
        if not keep.all():
            ids, tt, uu = ids[keep], tt[keep], np.asarray(until)[keep]
        else:
            uu = until
        u[ids] = uu
        a[ids] = tt
        del u, a  # release the buffers (an array exporting them cannot grow)
        self.log.add_many(t, phones, until)

    def bulk_copy_from(self, other: "Store") -> None:
        """Start as a full replica of ``other`` (a replicated standby at equilibrium)."""
        self.until = array("d", other.until)
        self.at = array("d", other.at)
        if self.contacts is not None and other.contacts is not None:
            self.contacts.held = {p: dict(h) for p, h in other.contacts.held.items()}
            self.contacts.at = dict(other.contacts.at)
        if self.log.folding is not None:
            raise RuntimeError("a replica's store log is never folded (its saves are compared binding by binding)")
        self.log.t.extend(other.log.t)
        self.log.phone.extend(other.log.phone)
        self.log.until.extend(other.log.until)

    def clear(self, t: float) -> None:
        self.until = array("d", [NEVER]) * len(self.until)
        if self.contacts is not None:
            self.contacts.clear()
        self.log.clear(t)


class Storage:
    """Persistent binding storage (a DB table, astdb, a DRBD volume): what survives a restart."""

    def __init__(self, phones: int):
        self.until = [NEVER] * phones
        self.at = [NEVER] * phones
        self.writes = 0

    def write(self, t: float, phone: int, until: float) -> None:
        if t >= self.at[phone]:
            self.until[phone] = until
            self.at[phone] = t
        self.writes += 1

    def grow(self, extra: int) -> None:
        self.until.extend([NEVER] * extra)
        self.at.extend([NEVER] * extra)


def load_time(n: int, rate: float, doubling: float | None = None) -> float:
    """Seconds a start-up load of ``n`` stored bindings takes: ``n / rate``, times ``1 + n / doubling``
    when the cost per binding grows with the table (Kamailio usrloc's slot walk)."""
    t = n / rate
    return t * (1.0 + n / doubling) if doubling else t


class RegistrarNode:
    """The registrar process on one HA node.

    Ports handed to it by the model: ``sim`` (the data path's clock), ``clock`` (the control
    clock for its own timers), ``topo`` (node facts it reads and the process facts it owns),
    ``streams``, ``horizon`` (how far ahead a completion may be applied), and after wiring
    ``replies`` (to the phones), ``peers`` (the other registrars, for replication and sync),
    ``database`` (under a shared store) and ``storage`` (persistent bindings).
    """

    def __init__(self, index: int, name: str, cfg: RegistrarCfg, store: Store, log: RunLog, *, sim, clock,
                 topo, streams, horizon):
        self.sim = sim
        self.clock = clock
        self.topo = topo
        self.horizon = horizon
        self.index = index
        self.name = name
        self.cfg = cfg
        self.store = store
        self.log = log
        # a growing threadpool (Asterisk) starts at its initial size; every worker is a free time in the heap
        self.pool = cfg.threadpool
        self.workers = cfg.workers if self.pool is None else self._pool_start()
        self.free_at = [0.0] * self.workers  # heap of worker free times
        self.last_push = 0.0  # the pool's last push (it wakes every idle thread)
        self.threads_peak = self.workers
        self.threads_added = 0
        self.threads_died = 0
        self.queue_limit = cfg.queue_capacity  # queue_limit, or what the UDP receive buffer holds
        ub = cfg.udp_buffer
        # the requests no worker has read yet (read times non-decreasing), and the kernel's charge for them
        tagged = cfg.overload == "taskprocessor"  # each waiting request's taskprocessor is counted
        self.waiting = (ReceiveQueue(self.queue_limit, ub.truesize, ub.rcvbuf, ub.admission, tagged) if ub is not None
                        else ReceiveQueue(self.queue_limit, tagged=tagged))
        self.sync_truesize = (ub.sync_truesize or ub.truesize) if ub is not None else None
        self.service = sampler(cfg.service_time, streams(f"registrar.{name}.service"))
        self.service_vec = vector_draws(cfg.service_time, streams(f"registrar.{name}.service"))  # the same draws, batched
        self._queued = False  # the last bulk_peek needed the one-by-one recursion
        self.bulk_served_bins = True  # bulk commits count served REGISTERs (False: a figures-only run)
        self._peeked = None  # what that recursion left after all its arrivals (for bulk_commit)
        self._look = self.RUN_LOOK  # how far the recursion looks ahead for a run of free workers
        self.rnd = streams(f"registrar.{name}.grant")
        self.timer_rnd = streams(f"registrar.{name}.timer")
        seed, rep = getattr(streams, "seed", 0), getattr(streams, "replication", 0)
        # Asterisk's Call-ID hash onto its serializers: the same on every node, so one key per run
        self.serializer_key = counter_key(seed, rep, "registrar.serializer")
        # a registrar that keeps expiries in whole seconds (usrloc time_t): the wall clock's phase
        self.expiry_phase = wall_clock_phase(seed, rep) if cfg.expiry_clock == "whole_seconds" else None
        self.replicated = cfg.data == "replicated"
        if self.replicated:
            self.lag = sampler(cfg.replication.lag, streams(f"registrar.{name}.replication"))
            self._init_sync(cfg, log, streams)
        self.send_delay = float(cfg.replication.send_delay) if self.replicated else 0.0
        self.rx_bins = log.bin(f"register_rx_{name}")
        self.queue_bins = log.bin(f"queue_{name}")
        self.reject_bins = log.bin(f"rejected_{name}")
        self.served = 0
        self.rejected = 0
        self.rejected_contacts = 0  # REGISTERs over max_contacts
        if cfg.max_contacts is not None:
            self.contact_bins = log.bin(f"contacts_full_{name}")
        self.replicas_sent = 0
        self.replicas_lost = 0
        self.record_waits = False
        self.waits: list[float] = []
        self.replies = None  # the phones (set when wired)
        self.peers: list[RegistrarNode] = []
        self.database = None
        self.storage: Storage | None = None  # set by the model when bindings persist
        self.persist = cfg.persistence if cfg.data != "shared" else "memory"
        self.dirty: set[int] = set()
        self.start_delay = sampler(cfg.start_time, streams(f"registrar.{name}.start"))
        self.loaded = 0
        self.unflushed_lost = 0
        self.starting = False
        self.stopped_at = NEVER  # when the process last stopped (chan_sip: what it had not yet expired)
        self.pruned = 0
        self.last_flush = 0.0
        self._init_overload(cfg, log)

    def _init_sync(self, cfg: RegistrarCfg, log: RunLog, streams) -> None:
        """The full sync this node pulls when it (re)starts (:mod:`simsip.protocols.sync`): its
        messages' trip from the donor and read time here (a stream of its own), the node-address
        socket they reach (``sync_socket: node``: a buffer as large as the REGISTER socket's and
        ``workers`` readers of its own), and what became of them."""
        rep = cfg.replication
        name = self.name
        self.sync_burst = rep.sync_burst
        self.sync_lag = sampler(rep.lag, streams(f"registrar.{name}.sync"))
        self.sync_read = sampler(rep.sync_read_time, streams(f"registrar.{name}.sync_read"))
        self.sync_offsets = rep.retransmit_offsets
        self.sync_own_socket = rep.sync_socket == "node"
        self.sync_free_at = [0.0] * cfg.workers
        ub = cfg.udp_buffer
        self.sync_waiting = (ReceiveQueue(cfg.queue_capacity, ub.sync_truesize or ub.truesize, ub.rcvbuf, ub.admission)
                             if ub is not None else ReceiveQueue(cfg.queue_capacity))
        self.sync_fraction: float | None = None  # a partial_sync fault: the next sync is cut after this share
        self.sync_runs: list[list] = []  # [messages, limit] of each sync started (the cut applies to the running one)
        self.sync_dropped = 0  # sync messages the kernel dropped (RcvbufErrors)
        self.sync_messages = 0  # sync messages the donor sent to this node (first copies)
        self.sync_retransmitted = 0
        self.sync_given_up = 0  # bindings in messages tm gave up on (fr_timer)
        self.sync_cut = 0  # bindings never sent because the sync was cut
        self.sync_applied = 0  # bindings a sync message saved here
        if rep.sync_burst:
            self.kdmq_bins = log.bin(f"kdmq_dropped_{name}")

    def _init_overload(self, cfg: RegistrarCfg, log: RunLog) -> None:
        """The storm mechanisms: per-phone memory of the last transaction read (duplicates; the
        stateful front's stored reply), Asterisk's taskprocessor alert, and their records."""
        name = self.name
        self.served_bins = log.bin(f"served_{name}")
        self.dup_bins = log.bin(f"duplicates_{name}")
        self.wait_bins = log.bin(f"wait_ms_{name}")
        self.duplicates = 0
        self.absorbed = 0
        self.ignored = 0
        n = len(self.store.until)
        self.last_tx = array("q", [-1]) * n  # the transaction a worker last read, per phone
        self.stateful = cfg.transactions == "stateful"
        if self.stateful:
            self.rtx_cost = cfg.retransmission_cost
            self.absorb_window = cfg.absorb_window
            self.tsx_finish = array("d", [0.0]) * n  # when the worker answers last_tx
            self.tsx_status = array("l", [0]) * n  # the reply it sent (0: none yet)
            self.tsx_granted = array("d", [0.0]) * n
            self.absorb_bins = log.bin(f"absorbed_{name}")
        self.pike = cfg.pike
        self.pike_state: dict[int, list] = {}  # source -> [unit, previous hits, current hits, red]
        self.banned: dict[int, float] = {}  # source -> banned until (kamailio.cfg ipban)
        self.pike_blocked = 0
        if self.pike is not None:
            self.pike_bins = log.bin(f"pike_{name}")
        self.alarm = cfg.overload == "taskprocessor"
        self.alert = False
        self.alert_since = 0.0
        self.alerts: list[tuple[float, float]] = []  # (raised, cleared) intervals of the alert
        if self.alarm:
            self.high = cfg.overload_high
            self.low = cfg.overload_low
            # res_pjsip's distributor serializers (one queue for the node without a threadpool); the
            # hash is Asterisk's, the same on every node: one key per run, not per node
            n_tps = cfg.threadpool.serializers if cfg.threadpool is not None and cfg.threadpool.serializers else 1
            self.tps = Taskprocessors(n_tps, self.high, self.low, self.serializer_key)
            self.waiting.tps = self.tps
            self.ignore_bins = log.bin(f"ignored_{name}")
            self.alert_bins = log.bin(f"overload_{name}")

    def _forget_transactions(self) -> None:
        self.pike_state.clear()  # pike's tree and the htable live in the process's shared memory
        self.banned.clear()
        n = len(self.last_tx)
        self.last_tx = array("q", [-1]) * n
        if self.stateful:
            self.tsx_status = array("l", [0]) * n

    def _grow_tx(self, phone: int) -> None:
        extra = phone + 1 - len(self.last_tx)
        self.last_tx.extend([-1] * extra)
        if self.stateful:
            self.tsx_finish.extend([0.0] * extra)
            self.tsx_status.extend([0] * extra)
            self.tsx_granted.extend([0.0] * extra)

    def _raise_alert(self, t: float) -> None:
        self._alert_cleared()  # a clear the pops left pending comes first
        self.alert = True
        self.alert_since = t

    def _alert_cleared(self) -> None:
        """Apply a clear of the alert that a pop of the waiting queue left pending."""
        w = self.waiting
        if w.cleared_at is not None:
            t, w.cleared_at = w.cleared_at, None
            if self.alert:
                self._clear_alert(t)

    def _clear_alert(self, t: float) -> None:
        self.alert = False
        self.alerts.append((self.alert_since, t))
        b = self.alert_bins
        for i in range(max(0, int(self.alert_since * b.inv)), min(b.n, int(t * b.inv) + 1)):
            b.v[i] = 1

    # the process facts live in the topology, where the HA stack, the phones and the metrics read them
    @property
    def up(self) -> bool:
        return self.topo.proc_up[self.index]

    @up.setter
    def up(self, v: bool) -> None:
        self.topo.proc_up[self.index] = v

    @property
    def hung(self) -> bool:
        return self.topo.proc_hung[self.index]

    @hung.setter
    def hung(self, v: bool) -> None:
        self.topo.proc_hung[self.index] = v

    @property
    def epoch(self) -> int:
        return self.topo.proc_epoch[self.index]

    def _bump(self) -> int:
        e = self.topo.proc_epoch[self.index] + 1
        self.topo.proc_epoch[self.index] = e
        return e

    # ------------------------------------------------------------------ life cycle
    def crash(self, t: float) -> None:
        """The registrar process stops: in-flight work is lost, and memory unless the store is shared
        (or is the database itself, usrloc db_mode 3)."""
        if self.up:
            self.stopped_at = t
        self.up = False
        self.hung = False
        self.starting = False
        self._bump()
        self.waiting.clear()
        self._forget_transactions()
        if self.alert:
            self._clear_alert(t)
        self.unflushed_lost += len(self.dirty)
        self.dirty.clear()  # write-back rows not yet flushed die with the process
        if self.replies is not None and self.replies.stopped is not None:
            self.replies.stopped(self.index, t)
        if self.cfg.data != "shared" and self.persist != "db_only":
            self.store.clear(t)
        self.topo.note_availability(t)

    def hang(self, t: float) -> None:
        """The process keeps its sockets (and takes requests) but answers nothing."""
        self.hung = True

    def start_process(self, t: float) -> None:
        """Start the registrar: ``start_time``, then loading persisted bindings (:func:`load_time`).

        ``preload: blocking``: it answers once the load is done. ``first_worker`` (Kamailio usrloc
        db_mode 1/2, usrloc_mod.c child_init at rank PROC_SIPINIT; main.c binds the sockets before
        it forks the workers and does not wait for the first): it answers from ``start_time`` on with
        its first worker busy for the load, and the loaded bindings are there when the load ends."""
        if self.up or self.starting:
            return
        self.starting = True
        epoch = self._bump()
        delay = self.start_delay()
        n_load = len(self._loadable(t + delay, False))
        load = load_time(n_load, self.cfg.load_rate, self.cfg.load_doubling)
        if self.cfg.preload == "first_worker":
            self.clock.call_at(t + delay, self._started, epoch, load)
        else:
            self.clock.call_at(t + delay + load, self._started, epoch)

    def _started(self, epoch: int, load: float = 0.0) -> None:
        if epoch != self.epoch or not self.starting or not self.topo.node_up[self.index]:
            return
        t = self.sim.env._now
        self.starting = False
        self.restart(t, load)

    def restart(self, t: float, load: float = 0.0) -> None:
        """The process answers from now on (after loading what persisted, syncing if replicated).

        ``load`` > 0 (``preload: first_worker``): one worker loads the stored bindings until
        ``t + load`` and they are saved then; the other workers answer meanwhile."""
        self.up = True
        self.hung = False
        self._bump()
        if self.pool is not None:  # a new process: a new pool of initial_size threads
            self.workers = self._pool_start()
            self.last_push = t
        self.free_at = [t] * self.workers
        self.waiting.clear()
        self._forget_transactions()
        if self.alert:
            self._clear_alert(t)
        if load > 0:
            if self.free_at:  # the first worker's child_init: the preload (still a heap)
                self.free_at[-1] = t + load
            self.clock.call_at(t + load, self._load_stored, self.epoch)
        else:
            self._load_stored(self.epoch, t)
        if self.replicated:
            self.sync_free_at = [t] * self.workers
            self.sync_waiting.clear()
            if self.cfg.replication.sync_on_start:
                self._discover(t, self.epoch, t)
        self.topo.changed(t)

    def _load_stored(self, epoch: int, t: float | None = None) -> None:
        """Save what storage holds into memory (a binding saved since, newer, is kept)."""
        if epoch != self.epoch:
            return  # the process died during its preload
        if t is None:
            t = self.sim.env._now
        mine = self.store.until
        for p, u in self._loadable(t, True):
            if u > mine[p]:
                self.store.save(t, p, u)
                self.loaded += 1

    def _loadable(self, t: float, prune: bool) -> list[tuple[int, float]]:
        """The bindings a start at ``t`` loads from storage, as (phone, valid until).

        ``restore_expiry: absolute`` keeps each entry's saved expiry (loaded if it is still in the
        future); ``fresh`` (chan_sip ``reg_source_db``) re-arms it for the granted expiry plus
        ``lookup_grace`` from ``t`` — the stored entry's ``until - at`` — for every entry that had
        not expired while the process last ran (those were deleted). With
        ``prune_reliable_on_boot`` the entries of TCP/TLS phones are deleted instead (``prune``:
        really delete them; False only counts, for the start-up time).
        """
        st = self.storage
        if st is None or self.persist not in ("write_through", "write_back"):
            return []
        cfg = self.cfg
        fresh = cfg.restore_expiry == "fresh"
        reliable = self.replies.reliable if cfg.prune_reliable_on_boot and self.replies is not None else None
        stopped = self.stopped_at
        out = []
        until, at = st.until, st.at
        for p, u in enumerate(until):
            if u == NEVER:
                continue
            if reliable is not None and reliable(p):
                if prune:
                    st.write(t, p, NEVER)  # ast_sip_location_prune_boot_contacts deletes it
                    self.pruned += 1
                continue
            if fresh:
                if u <= stopped:
                    continue  # expired while the process ran: expire_register deleted it from astdb
                u = t + (u - at[p])
            if u > t:
                out.append((p, u))
        return out

    def stop_for_standby(self, t: float) -> None:
        """Cold standby: the cluster stops the resource where it no longer runs."""
        if self.up:
            self.crash(t)

    def start_timers(self) -> None:
        """The usrloc timer that flushes write-back rows to storage: at equilibrium its last flush
        was at a uniform phase before t=0, and it next fires one flush interval after that."""
        if self.storage is not None and self.persist == "write_back":
            self.last_flush = -self.timer_rnd.random() * self.cfg.flush_interval
            self.clock.process(self._flusher(self.last_flush + self.cfg.flush_interval))

    def initial_storage(self, t0, phones, until, refresh_of) -> None:
        """At equilibrium the storage holds what this (master) node persisted: everything
        (write-through) or, with write-back, each phone's binding as of the timer's last flush
        before t=0 (a phone refreshed after it is stored with its previous binding, one refresh
        interval older)."""
        if self.storage is None or self.persist == "db_only":
            return
        if self.persist == "write_back":
            last_flush = self.last_flush
            until = np.where(t0 <= last_flush, until, until - refresh_of)
            t0 = np.where(t0 <= last_flush, t0, t0 - refresh_of)
        st, at = self.storage.until, self.storage.at
        for p, u, ti in zip(phones.tolist(), until.tolist(), t0.tolist()):
            st[p] = u
            at[p] = ti

    def _flusher(self, phase: float):
        yield self.clock.timeout(phase)
        while True:
            if self.up and self.dirty:
                now = self.sim.env._now
                st, mine, at = self.storage, self.store.until, self.store.at
                for p in self.dirty:
                    st.write(min(at[p], now), p, mine[p])
                self.dirty.clear()
            yield self.clock.timeout(self.cfg.flush_interval)

    def check_ok(self, kind: str) -> bool:
        """What keepalived's track_script sees: the socket is bound (socket) / OPTIONS answered (sip)."""
        if not self.up:
            return False
        return not (kind == "sip" and self.hung)

    def report(self, counters: dict) -> None:
        """This node's counters for the run summary."""
        c = counters
        c[f"served_{self.name}"] = self.served
        c[f"rejected_{self.name}"] = self.rejected
        if self.cfg.max_contacts is not None:
            c[f"contacts_full_{self.name}"] = self.rejected_contacts
        c[f"loaded_{self.name}"] = self.loaded
        if self.cfg.prune_reliable_on_boot:
            c[f"pruned_{self.name}"] = self.pruned
        c[f"unflushed_lost_{self.name}"] = self.unflushed_lost
        c[f"duplicates_{self.name}"] = self.duplicates
        if self.pike is not None:
            c[f"pike_blocked_{self.name}"] = self.pike_blocked
        if self.stateful:
            c[f"absorbed_{self.name}"] = self.absorbed
        if self.pool is not None:
            c[f"threads_peak_{self.name}"] = self.threads_peak
            c[f"threads_added_{self.name}"] = self.threads_added
            c[f"threads_died_{self.name}"] = self.threads_died
        if self.alarm:
            c[f"ignored_{self.name}"] = self.ignored
            if self.alert:  # the queue may have drained since the last arrival: pop what started
                h = self.log.horizon
                waiting = self.waiting
                while waiting and waiting[0] <= h and self.alert:
                    waiting.popleft()
                    self._alert_cleared()
                if self.alert:
                    self._clear_alert(h)
                    self.alerts[-1] = (self.alerts[-1][0], float("inf"))  # still raised at the end
            c[f"overload_alerts_{self.name}"] = len(self.alerts)
        if self.replicated:
            c[f"replicas_sent_{self.name}"] = self.replicas_sent
            c[f"replicas_lost_{self.name}"] = self.replicas_lost
            c[f"sync_applied_{self.name}"] = self.sync_applied
            c[f"sync_cut_{self.name}"] = self.sync_cut
            if self.sync_burst:
                c[f"kdmq_dropped_{self.name}"] = self.sync_dropped
                c[f"sync_messages_{self.name}"] = self.sync_messages
                c[f"sync_retransmitted_{self.name}"] = self.sync_retransmitted
                c[f"sync_given_up_{self.name}"] = self.sync_given_up

    # ------------------------------------------------------------------ requests
    def receive(self, phone: int, tx: int, requested: float, at: float | None = None, direct: bool = False) -> None:
        """A REGISTER (first copy or retransmission) reaches this node at layer 2 (now, or at ``at``).

        It is processed only if the process runs, the node's links are up and it holds the VIP
        (unless addressed directly); otherwise it is dropped.
        """
        i = self.index
        topo = self.topo
        replies = self.replies
        if (not topo.proc_up[i] or not topo.link[i] or not topo.phone_link[i]
                or (topo.ha_state[i] != "master" and not direct)):
            replies.lost(phone, tx)
            return
        now = self.sim.env._now if at is None else at
        rb = self.rx_bins
        b = int(now * rb.inv)  # bins cover [0, horizon]; events run only before the horizon
        rb.v[b] += 1
        if topo.proc_hung[i]:
            replies.lost(phone, tx)
            return
        waiting = self.waiting
        if self.alarm:
            while waiting and waiting[0] <= now:
                waiting.popleft()  # a pop that brings its taskprocessor to low water may clear the alert
            self._alert_cleared()
            if self.alert:
                # Asterisk's distributor: during the alert a new request is ignored over UDP, and
                # answered 503 without Retry-After over TCP/TLS
                self.ignored += 1
                self.ignore_bins.add(now)
                if replies.reliable(phone):
                    replies.reply(phone, tx, now, 503, 0.0, 0.0, replies.path())
                else:
                    replies.lost(phone, tx)
                return
        else:
            while waiting and waiting[0] <= now:
                waiting.popleft()
        qlen = len(waiting)
        if qlen:
            qv = self.queue_bins.v
            if qlen > qv[b]:
                qv[b] = qlen
        cfg = self.cfg
        if waiting.full():
            self.rejected += 1
            self.reject_bins.add(now)
            if cfg.when_full == "reply_503":
                ra = retry_after_header(cfg.retry_after, cfg.retry_after_max,
                                        self.rnd.random() if cfg.retry_after_max is not None else 0.0)
                replies.reply(phone, tx, now, 503, 0.0, ra, replies.path())
            else:
                replies.lost(phone, tx)
            return
        if self.pool is not None:
            self._pool_push(now)
        if self.pike is not None and self._pike_blocks(phone, tx, now):
            return
        if phone >= len(self.last_tx):
            self._grow_tx(phone)
        again = self.last_tx[phone] == tx  # a copy of a transaction a worker already read
        if again and self.stateful and self._absorb(phone, tx, now, b):
            return
        free = heappop(self.free_at)
        start = now if free < now else free
        finish = start + self.service()
        if replies.extra_work is not None:
            finish += replies.extra_work(phone, self.service)
        heappush(self.free_at, finish)
        if start > now:
            if waiting.append(start, now, tag=self.tps.of(phone) if self.alarm else -1):
                self._raise_alert(now)  # the push that brought its taskprocessor to high water
            self.wait_bins.max(now, int((start - now) * 1000.0))
        if self.record_waits:
            self.waits.append(start - now)
        self.last_tx[phone] = tx
        if again:  # stateless: the whole REGISTER is processed, and answered, once more
            self.duplicates += 1
            self.dup_bins.add(now)
        if self.stateful:
            self.tsx_finish[phone] = finish
            self.tsx_status[phone] = 0
        # everything random about the outcome is drawn now, in arrival order
        granted = grant_expiry(requested, cfg.min_expires, cfg.max_expires, cfg.expires_range,
                               self.rnd.random() if cfg.expires_range else 0.0)
        back = replies.path()
        cred = replies.carried(phone, tx) if replies.authorized is not None else None
        cid = replies.contact(phone) if replies.contact is not None else -1  # the connection it came over
        lags = [self.lag() for _ in self.peers] if self.replicated else None
        db = self.database
        db_lag = db.draw_lag() if db is not None else 0.0
        quiet = replies.hold(phone, tx, finish)  # the phone arms its timer if it must
        if (finish < self.horizon.until and quiet and (db is None or not db.holds(finish))
                and (cid < 0 or self.store.contacts is None)):
            # Nothing can stop, restart or reroute this node before the worker finishes, and the
            # phone has nothing of its own before then: complete now, stamped at ``finish``. (A
            # contact count is never read ahead: a peer's replica may change it meanwhile.)
            self.complete(phone, tx, granted, topo.proc_epoch[i], finish, back, lags, db_lag, cred, cid)
        else:
            self.sim.phone_at(finish, self._complete_event, phone, tx, granted, topo.proc_epoch[i], back, lags, db_lag,
                             cred, cid)

    def _pool_start(self) -> int:
        """Threads serving REGISTERs when the process starts: initial_size, at most the serializers."""
        pool = self.pool
        cap = pool.serving_max
        return min(pool.initial_size, cap) if cap else pool.initial_size

    def _pool_push(self, now: float) -> None:
        """A REGISTER is pushed to the threadpool at ``now``: idle threads past their idle timeout are
        gone, and if no thread is idle the pool grows (:func:`threadpool_growth`; new threads free now).
        Growth happens only while nothing waits (requests wait only at max_size, and no thread is idle
        while they do), so the start times already given to waiting requests stay first-come-first-served."""
        pool = self.pool
        fa = self.free_at
        T = pool.idle_timeout
        if T > 0 and fa and fa[0] <= now - T and threadpool_idle_expired(now, fa[0], self.last_push, T):
            keep = [f for f in fa if not threadpool_idle_expired(now, f, self.last_push, T)]
            self.threads_died += len(fa) - len(keep)
            heapify(keep)
            self.free_at = fa = keep
        idle = 1 if fa and fa[0] <= now else 0
        k = threadpool_growth(len(fa), idle, pool.auto_increment, pool.serving_max)
        for _ in range(k):
            heappush(fa, now)
        self.threads_added += k
        self.workers = len(fa)
        if self.workers > self.threads_peak:
            self.threads_peak = self.workers
        self.last_push = now

    # ------------------------------------------------------------------ bulk refreshes
    def bulk_problem(self) -> str | None:
        """Why this registrar's REGISTERs cannot be served in bulk (None: they can)."""
        cfg = self.cfg
        if self.service_vec is None:
            return f"service time {cfg.service_time.dist} (draws not batchable)"
        if self.replicated:
            return "replication"
        if self.database is not None:
            why = self.database.bulk_problem()
            if why:
                return why
        if self.alarm:
            return "taskprocessor overload alert"
        if self.pool is not None:
            return "a growing threadpool"
        if self.pike is not None:
            return "pike"
        if self.stateful:
            return "stateful transactions"
        if self.replies is not None and self.replies.extra_work is not None:
            return "TLS handshake work"
        if self.queue_limit <= 0:
            return "no queue"
        if cfg.max_contacts is not None:
            return "max_contacts"
        if self.replies is not None and getattr(self.replies, "contact", None) is not None:
            return "connection-bound phones"
        return None

    def bulk_ready(self, first: float) -> str | None:
        """Can requests arriving from ``first`` on be served in bulk now (None), or why not."""
        i = self.index
        topo = self.topo
        if (not topo.proc_up[i] or not topo.link[i] or not topo.phone_link[i] or topo.ha_state[i] != "master"
                or topo.proc_hung[i]):
            return "registrar not serving"
        if self.database is not None and not self.database.writable():
            return "database not writable"
        if self.record_waits:
            return "waits recorded"
        waiting = self.waiting
        while waiting and waiting[0] <= first:
            waiting.popleft()  # what the first arrival's receive would pop
        # a request still waiting means every worker is busy until it starts: bulk_peek finds no
        # free worker for arrivals before then
        return None

    def bulk_peek(self, phones, arrive, deadline, horizon: float, requested):
        """Finish times and grants of requests arriving at ``arrive`` (sorted), drawn as
        :meth:`receive` would draw them, without consuming the draws; and whether each one, with
        those before it, finds a worker free on arrival, finishes by its phone's ``deadline``
        and before the ``horizon``.

        With c workers and no request waiting, the one arriving at a_i starts at once exactly when
        fewer than c of the workers' free times and of the earlier requests' finish times f_j lie
        after a_i; since f_j > a_j, the earlier ones are all f_j <= a_i (a later one cannot
        finish before a_i)."""
        n = len(arrive)
        s = self.service_vec.peek(n)
        finish = arrive + s
        free = _start_on_arrival(self.free_at, finish, arrive)
        self._queued = not free.all()
        if self._queued:  # someone waits: the first-come-first-served recursion, one by one
            finish, free = self._fcfs(arrive, s, len(arrive), False, keep=True)
        ok = free & (s > 0) & (finish <= deadline) & (finish < horizon)
        cfg = self.cfg
        if cfg.expires_range:
            u = self.rnd.ahead("u", n)
            req = np.broadcast_to(requested, (n,))
            granted = np.array([grant_expiry(r, cfg.min_expires, cfg.max_expires, cfg.expires_range, x)
                                for r, x in zip(req.tolist(), u.tolist())])
        elif np.ndim(requested) == 0:
            granted = np.full(n, grant_expiry(float(requested), cfg.min_expires, cfg.max_expires))
        else:
            vals, inv = np.unique(requested, return_inverse=True)
            granted = np.array([grant_expiry(float(v), cfg.min_expires, cfg.max_expires) for v in vals])[inv]
        return finish, granted, ok

    #: a run of at least this many arrivals that each find a worker free is served vectorised
    FREE_RUN = 16
    #: arrivals served one by one after a shorter run, before looking for a run again
    COOLDOWN = 32
    #: at most this many arrivals are looked at for one run
    RUN_CHUNK = 4096
    #: at least this many (the look-ahead adapts between the two: it doubles while runs fill it)
    RUN_LOOK = 64

    @staticmethod
    def _free_run(heap, ar, fr) -> int:
        """How many of the arrivals ``ar`` (finishing at ``fr`` if they start on arrival) find a
        worker free one after another, from the first, with the workers' free times ``heap`` and
        nothing waiting (the test of :meth:`bulk_peek`, on a window)."""
        free = _start_on_arrival(heap, fr, ar)
        k = int(free.argmin())  # the first that waits
        return len(ar) if free[k] else k

    def _fcfs(self, arrive, s, m: int, apply: bool, keep: bool = False):
        """What :meth:`receive` does with the workers and the queue for the first ``m`` arrivals
        (times ``arrive``, service times ``s``): each takes the worker that frees first, and waits
        for it if it is busy. Returns finish times and whether each was admitted (its queue below
        the limit); ``apply``: on the node's own heap and queue, with the queue and wait bins.
        ``keep`` (with ``apply`` false): keep the workers, the queue and the bin updates after all
        ``m`` arrivals for :meth:`bulk_commit` to adopt instead of running the recursion again.

        Between queueing episodes the arrivals find a worker free one after another: such a run is
        served vectorised (each starts on arrival; the workers' free times afterwards are the c
        latest of the old ones and the run's finishes, since each arrival replaced the earliest,
        which is no later than any value kept), and only the episodes go one by one. How far ahead
        a run is looked for adapts to the runs seen (it doubles while a run fills the look-ahead,
        and is twice the last run otherwise): where a run ends, and so every result, does not
        depend on it, only the cost of finding the end."""
        heap = self.free_at if apply else list(self.free_at)
        waiting = self.waiting if apply else self.waiting.copy()
        finish = np.empty(m)
        admitted = np.ones(len(arrive), dtype=bool)
        qv, qinv, wb = self.queue_bins.v, self.queue_bins.inv, self.wait_bins
        record = keep and not apply
        qops: list = []  # (bin, queue length) and (arrival, wait ms) updates, when recorded
        wops: list = []
        self._peeked = None
        a_all = arrive[:m]
        s_all = s[:m]
        c = len(heap)
        free_run, cooldown, chunk, look0 = self.FREE_RUN, self.COOLDOWN, self.RUN_CHUNK, self.RUN_LOOK
        look = self._look
        reads = waiting.start  # the waiting requests' read times (what len/[0] of the queue read)
        i = 0
        single = 0  # arrivals left to serve one by one before looking for a run again
        while i < m:
            a = float(a_all[i])
            while reads and reads[0] <= a:
                waiting.popleft()
            if single <= 0 and not reads and heap[0] <= a and m - i >= free_run:
                e = min(m, i + look)
                ar = a_all[i:e]
                fr = ar + s_all[i:e]
                j = i + self._free_run(heap, ar, fr)
                if j == e:
                    look = min(chunk, 2 * look)
                else:
                    look = max(look0, min(chunk, 2 * (j - i)))
                if j - i >= free_run:
                    finish[i:j] = fr[: j - i]
                    merged = np.concatenate((np.array(heap), fr[: j - i]))
                    heap[:] = np.partition(merged, merged.size - c)[merged.size - c:].tolist()
                    heapify(heap)
                    i = j
                    continue
                single = cooldown
            single -= 1
            x = float(s_all[i])
            qlen = len(reads)
            if waiting.full():
                admitted[i:] = False
                self._look = look
                return finish, admitted
            if qlen:
                if apply:
                    b = int(a * qinv)
                    if qlen > qv[b]:
                        qv[b] = qlen
                elif record:
                    qops.append((int(a * qinv), qlen))
            f0 = heap[0]
            start = a if f0 < a else f0
            fin = start + x
            heapreplace(heap, fin)
            finish[i] = fin
            if start > a:
                waiting.append(start, a)
                if apply:
                    wb.max(a, int((start - a) * 1000.0))
                elif record:
                    wops.append((a, int((start - a) * 1000.0)))
            i += 1
        self._look = look
        if record:
            self._peeked = (m, heap, waiting, qops, wops)
        return finish, admitted

    def bulk_commit(self, phones, txs, arrive, finish, granted):
        """Serve the first ``len(phones)`` requests that :meth:`bulk_peek` looked at: consume their
        draws, count them, save their bindings; returns the expiry each 200 reports."""
        m = len(phones)
        self.service_vec.take(m)
        cfg = self.cfg
        if cfg.expires_range:
            self.rnd.skip("u", m)
        from simsip.engine.phones import bins_add

        bins_add(self.rx_bins, arrive)
        if self._queued:
            peeked, self._peeked = self._peeked, None
            if peeked is not None and peeked[0] == m:
                # all the arrivals the peek served: its workers, queue and bin updates are the ones
                # the recursion would produce again
                _, self.free_at, self.waiting, qops, wops = peeked
                qv = self.queue_bins.v
                for b, q in qops:
                    if q > qv[b]:
                        qv[b] = q
                wb = self.wait_bins
                for a, w in wops:
                    wb.max(a, w)
            else:
                self._fcfs(arrive, self.service_vec.last, m, True)
        else:
            # the workers' free times: every one after the last arrival is kept; the rest are free
            # before any later arrival, whatever their value
            last = float(arrive[-1])
            busy = [x for x in self.free_at if x > last] + finish[finish > last].tolist()
            self.free_at = busy + [last] * (self.workers - len(busy))
            heapify(self.free_at)
        if len(self.last_tx) < int(phones.max()) + 1:
            self._grow_tx(int(phones.max()))
        lt = np.frombuffer(self.last_tx, dtype=np.int64)
        lt[phones] = txs
        del lt
        until = binding_until(finish, granted, cfg.lookup_grace, self.expiry_phase)
        self.store.bulk_save(finish, phones, until)
        if self.database is not None:  # acknowledged at once (bulk_ready: writable), on the replica before the ack
            self.database.bulk_replicate(finish, phones, until)
        persist = self.persist
        if persist == "write_back":
            self.dirty.update(phones.tolist())
        elif persist != "memory" and self.storage is not None:
            w = self.storage.write
            for t, p, u in zip(finish.tolist(), phones.tolist(), until.tolist()):
                w(t, p, u)
        self.served += m
        if self.bulk_served_bins:  # (a figures-only run: only the storm figures read them)
            bins_add(self.served_bins, finish)
        if cfg.reply_expires != "granted":
            vals, inv = np.unique(granted, return_inverse=True)
            granted = np.array([reported_expiry(float(v), cfg.reply_expires) for v in vals])[inv]
        return granted

    def _pike_blocks(self, phone: int, tx: int, now: float) -> bool:
        """Kamailio's REQINIT route when a worker reads the request: a banned source is dropped, else
        pike counts the hit (:func:`~simsip.protocols.overload.pike_hit`) and a red source is dropped
        (and banned for ``ban_time``). A dropped request has waited in the queue like any other."""
        free = self.free_at[0]
        read = now if free < now else free
        pk = self.pike
        src = self.replies.source(phone)
        if pk.ban_time and self.banned.get(src, NEVER) > read:
            blocked = True
        else:
            st = self.pike_state.get(src)
            if st is None:
                st = self.pike_state[src] = [int(read // pk.sampling_time_unit), 0, 0, False]
            blocked = pike_hit(st, read, pk.sampling_time_unit, pk.reqs_density_per_unit)
            if blocked and pk.ban_time:
                self.banned[src] = read + pk.ban_time
        if not blocked:
            return False
        heappop(self.free_at)
        heappush(self.free_at, read)
        if read > now:
            self.waiting.append(read, now)
        self.pike_blocked += 1
        self.pike_bins.add(now)
        self.replies.lost(phone, tx)  # no reply: the phone's own timer goes on
        return True

    def _absorb(self, phone: int, tx: int, now: float, b: int) -> bool:
        """Stateful front: a retransmission of the transaction last read for ``phone``. It waits in
        the queue like any request; the worker that reads it matches it to the transaction (at
        ``retransmission_cost``) and drops it while the transaction is still being processed, or
        sends the stored reply again once it was sent. False: the transaction is gone (more than
        ``absorb_window`` after its reply) and the copy is processed as a new request."""
        finish = self.tsx_finish[phone]
        free = self.free_at[0]
        read = now if free < now else free
        if read > finish + self.absorb_window:
            return False
        heappop(self.free_at)
        end = read + self.rtx_cost * self.service() if self.rtx_cost else read
        heappush(self.free_at, end)
        if read > now:
            if self.waiting.append(read, now, tag=self.tps.of(phone) if self.alarm else -1):
                self._raise_alert(now)
            self.wait_bins.max(now, int((read - now) * 1000.0))
        self.absorbed += 1
        self.absorb_bins.add(now)
        replies = self.replies
        if read < finish:
            replies.lost(phone, tx)  # absorbed: the phone's own timer goes on
        else:
            self.sim.phone_at(end, self._resend, phone, tx, self.topo.proc_epoch[self.index], replies.path())
        return True

    def _resend(self, phone: int, tx: int, epoch: int, back: float) -> None:
        """The stored final reply of ``phone``'s transaction goes out again (tm's retransmission of
        the last reply; never applied ahead: it reads what the completion stored)."""
        replies = self.replies
        status = self.tsx_status[phone] if phone < len(self.tsx_status) else 0
        if epoch != self.epoch or self.hung or self.last_tx[phone] != tx or status <= 0:
            replies.lost(phone, tx)
            return
        replies.reply(phone, tx, self.sim.env._now, status, self.tsx_granted[phone], 0.0, back)

    def _store_reply(self, phone: int, tx: int, status: int, granted: float) -> None:
        if self.stateful and self.last_tx[phone] == tx:
            self.tsx_status[phone] = status
            self.tsx_granted[phone] = granted

    def _complete_event(self, phone, tx, granted, epoch, back, lags, db_lag, cred, cid=-1) -> None:
        self.complete(phone, tx, granted, epoch, self.sim.env._now, back, lags, db_lag, cred, cid)

    def complete(self, phone: int, tx: int, granted: float, epoch: int, now: float, back: float, lags, db_lag,
                 cred=None, cid: int = -1) -> None:
        """A worker finishes a REGISTER at ``now``: save the binding and answer 200 (``cred``: the
        digest credentials the copy carried, read on arrival; ``cid``: the connection a
        connection-bound phone's REGISTER came over, else -1)."""
        replies = self.replies
        if epoch != self.epoch or self.hung:  # the process died or hung meanwhile: no reply
            replies.lost(phone, tx)
            return
        if replies.authorized is not None and not replies.authorized(phone, tx, cred, self.index, epoch, now):
            if self.stateful:
                self._store_reply(phone, tx, 401, 0.0)
            replies.reply(phone, tx, now, 401, 0.0, 0.0, back)  # digest challenge, no binding
            return
        cfg = self.cfg
        db = self.database
        t_ack = now
        if db is not None:
            t_ack = db.admit(now)
            if t_ack is None:  # the database refuses the write: 500 Server Internal Error
                if self.stateful:
                    self._store_reply(phone, tx, 500, 0.0)
                replies.reply(phone, tx, now, 500, 0.0, 0.0, back)
                return
        until = binding_until(now, granted, cfg.lookup_grace, self.expiry_phase)
        snapshot = None
        if cid >= 0:
            contacts = self.store.contacts
            if contacts is not None:
                if not contacts.admit(now, phone, cid, until, cfg.max_contacts, cfg.remove_existing):
                    # one contact too many: 403 (res_pjsip_registrar) or 503 (Kamailio R_TOO_MANY)
                    self.rejected_contacts += 1
                    self.contact_bins.add(now)
                    status = cfg.contacts_full_status
                    if self.stateful:
                        self._store_reply(phone, tx, status, 0.0)
                    replies.reply(phone, tx, now, status, 0.0, 0.0, back)
                    return
                snapshot = contacts.held[phone]
            self.log.conns.saved(phone, until, cid)
        self.store.save(now, phone, until)
        persist = self.persist
        if persist != "memory":
            if persist == "write_back":
                self.dirty.add(phone)
            elif self.storage is not None:
                self.storage.write(now, phone, until)
        self.served += 1
        self.served_bins.add(now)
        if cfg.reply_expires != "granted":
            granted = reported_expiry(granted, cfg.reply_expires)  # what the 200's Contact says
        if self.stateful:
            self._store_reply(phone, tx, 200, granted)
        if lags is not None:
            self._replicate(now, phone, until, lags, snapshot)
        if db is not None:
            db.replicate(now, phone, until, db_lag)
        if t_ack > now:
            # a semi-sync write held until the timeout: every held write is acknowledged at that
            # instant, so the replies leave then, in the order the writes completed, and land
            # together (never applied ahead: equal-time responses keep their order). The phone
            # hears nothing until then: its timer runs meanwhile.
            replies.hold(phone, tx, t_ack)
            self.sim.phone_at(t_ack, replies.reply, phone, tx, t_ack, 200, granted, 0.0, back, False)
        else:
            replies.reply(phone, tx, t_ack, 200, granted, 0.0, back)

    # ------------------------------------------------------------------ replication (DMQ-like)
    def _replicate(self, now: float, phone: int, until: float, lags: list[float], snapshot=None) -> None:
        """Send the save to every peer: it leaves ``send_delay`` after the save (lost if the sender
        stops or the path is cut before then) and each peer applies it one lag after that (lost only
        if that peer is not running then: an update on its way arrives even if its sender died).
        ``snapshot``: the phone's contacts after the save (max_contacts), replicated with it."""
        if self.send_delay > 0:
            self.sim.phone_at(now + self.send_delay, self._send_replica, phone, self.epoch, until, lags,
                              None if snapshot is None else dict(snapshot), now)
            return
        self._send_replica(phone, self.epoch, until, lags, snapshot, now, now)

    def _send_replica(self, phone: int, epoch: int, until: float, lags: list[float], snapshot, t_save: float,
                      now: float | None = None) -> None:
        now = self.sim.env._now if now is None else now
        topo = self.topo
        if epoch != topo.proc_epoch[self.index]:  # the process stopped before the update left it
            for peer in self.peers:
                peer.replicas_lost += 1
            return
        for peer, lag in zip(self.peers, lags):
            self.replicas_sent += 1
            if not topo.path_up(self.index, peer.index):
                peer.replicas_lost += 1
                continue
            if snapshot is None:
                self.sim.phone_at(now + lag, peer.apply_replica, phone, self.index, epoch, until)
            else:
                self.sim.phone_at(now + lag, peer.apply_replica, phone, self.index, epoch, until, t_save, dict(snapshot))

    def apply_replica(self, phone: int, src: int, src_epoch: int, until: float, t_origin: float = 0.0,
                      snapshot=None) -> None:
        """A peer's update arrives (it left the peer ``lag`` ago): applied unless this process is not
        running."""
        if not self.up:
            self.replicas_lost += 1
            return
        self.store.save(self.sim.env._now, phone, until)
        if snapshot is not None and self.store.contacts is not None:
            self.store.contacts.apply(t_origin, phone, snapshot)

    def _donor(self) -> "RegistrarNode | None":
        topo = self.topo
        return next((r for r in self.peers if r.up and topo.path_up(r.index, self.index)), None)

    def _discover(self, t: float, epoch: int, started: float) -> None:
        """dmq peer discovery (:func:`~simsip.protocols.sync.sync_begins`): with a peer reachable the
        sync begins ``discovery_delay`` from now; otherwise at the first ping tick that finds one."""
        if epoch != self.epoch or not self.up:
            return
        rep = self.cfg.replication
        if self._donor() is not None:
            if rep.discovery_delay > 0:
                self.clock.call_at(t + rep.discovery_delay, self._sync_due, epoch, started)
            else:
                self._full_sync(t)
        elif rep.ping_interval is not None:
            tick = sync_rules.next_ping(started, t, rep.ping_interval)
            self.clock.call_at(tick, self._ping, epoch, started)

    def _ping(self, epoch: int, started: float) -> None:
        self._discover(self.sim.env._now, epoch, started)

    def _sync_due(self, epoch: int, started: float) -> None:
        if epoch != self.epoch or not self.up:
            return
        now = self.sim.env._now
        if self._donor() is None:  # the peer went away during discovery: wait for a ping
            rep = self.cfg.replication
            if rep.ping_interval is not None:
                self.clock.call_at(sync_rules.next_ping(started, now, rep.ping_interval), self._ping, epoch, started)
            return
        self._full_sync(now)

    def cut_sync(self, t: float, fraction: float | None) -> None:
        """A partial_sync fault: this node's sync (the one running, or the next) is cut after
        ``fraction`` of its messages; None lifts it for later syncs."""
        self.sync_fraction = fraction
        if fraction is not None:
            for run in self.sync_runs:
                run[1] = min(run[1], sync_rules.cut_messages(run[0], fraction))

    def _full_sync(self, t: float) -> None:
        """Pull every binding from a live peer (dmq_usrloc sync on start-up): at ``sync_rate`` outside
        any socket, or as a burst of messages through this node's socket (``sync_burst``)."""
        donor = self._donor()
        if donor is None:
            return
        phones = [p for p, u in enumerate(donor.store.until) if u > t]
        self.log.syncs.append((t, self.index, len(phones)))
        if not phones:
            return
        rep = self.cfg.replication
        rate = rep.sync_rate
        b = sync_rules.contacts_per_message(rep.batch_msg_contacts, rep.batch_msg_size,
                                            rep.sync_contact_bytes) if self.sync_burst else 1
        msgs = [phones[k : k + b] for k in range(0, len(phones), b)]
        run = [len(msgs), len(msgs)]
        if self.sync_fraction is not None:
            run[1] = sync_rules.cut_messages(len(msgs), self.sync_fraction)
        self.sync_runs.append(run)
        if self.sync_burst:
            self._kdmq_send(donor, donor.epoch, self.epoch, msgs, 0, t, run)
            return
        chunks = min(50, len(phones))
        size = -(-len(phones) // chunks)
        for k in range(0, len(phones), size):
            part = phones[k : k + size]
            self.clock.call_at(t + (k + len(part)) / rate, self._apply_sync, donor, donor.epoch, self.epoch, part, k,
                               run)

    def _apply_sync(self, donor: "RegistrarNode", donor_epoch: int, my_epoch: int, part: list[int], k: int = 0,
                    run: list | None = None) -> None:
        if donor.epoch != donor_epoch or my_epoch != self.epoch or not self.topo.path_up(donor.index, self.index):
            return
        if run is not None and k + len(part) > run[1]:  # cut: only the bindings before the limit were sent
            kept = max(0, run[1] - k)
            self.sync_cut += len(part) - kept
            part = part[:kept]
        now = self.sim.env._now
        mine, theirs = self.store.until, donor.store.until
        for p in part:
            u = theirs[p]
            if u > now and u > mine[p]:
                self.store.save(now, p, u)
                self.sync_applied += 1

    # ------------------------------------------------------------------ the sync as KDMQ messages
    def _kdmq_send(self, donor: "RegistrarNode", d_epoch: int, my_epoch: int, msgs: list, j: int, t0: float,
                   run: list) -> None:
        """The donor's sync loop sends message ``j`` (``t0 + j/sync_rate``): each message carries its
        contacts as the donor holds them now. It stops when the donor's process or this one changed,
        or at the run's limit (a partial_sync cut)."""
        if donor.epoch != d_epoch or my_epoch != self.epoch:
            if donor.epoch != d_epoch:
                self.sync_cut += sum(len(m) for m in msgs[j:])
            return
        if j >= run[1] or donor.hung:  # cut; or the donor's process hangs (its sync loop with it)
            self.sync_cut += sum(len(m) for m in msgs[j:])
            return
        theirs = donor.store.until
        content = [(p, theirs[p]) for p in msgs[j]]
        now = self.sim.env._now
        self._kdmq_copy(donor, d_epoch, my_epoch, content, 0, [now, math.inf])
        if j + 1 < len(msgs):
            nxt = t0 + (j + 1) / self.cfg.replication.sync_rate
            self.clock.call_at(nxt, self._kdmq_send, donor, d_epoch, my_epoch, msgs, j + 1, t0, run)

    def _kdmq_copy(self, donor: "RegistrarNode", d_epoch: int, my_epoch: int, content: list, n: int,
                   tx: list) -> None:
        """Transmission ``n`` of one sync message leaves the donor (tm: n = 0 the original). ``tx`` is
        the donor's transaction: [first send, when this node answered it (inf: not yet)]."""
        if donor.epoch != d_epoch or my_epoch != self.epoch:
            return  # tm's transaction died with the donor; or this process is not the one that asked
        now = self.sim.env._now
        if tx[1] <= now:
            return  # answered meanwhile: the 200 stopped tm's retransmission timer
        if n:
            self.sync_retransmitted += 1
        else:
            self.sync_messages += 1
        if not self.topo.path_up(donor.index, self.index):
            self._kdmq_again(donor, d_epoch, my_epoch, content, n, tx)
            return
        self.clock.call_at(now + self.sync_lag(), self._kdmq_arrive, donor, d_epoch, my_epoch, content, n, tx)

    def _kdmq_again(self, donor, d_epoch: int, my_epoch: int, content: list, n: int, tx: list,
                    queued: bool = False) -> None:
        """Transmission ``n`` is not answered before Timer E fires: tm sends the next copy then (it is
        skipped if the 200 came meanwhile), or gives up at fr_timer. A copy that was ``queued`` is still
        read and applied later: its contacts are not lost when tm gives up."""
        offs = self.sync_offsets
        if n + 1 < len(offs):
            self.clock.call_at(tx[0] + offs[n + 1], self._kdmq_copy, donor, d_epoch, my_epoch, content, n + 1, tx)
        elif not queued:
            self.sync_given_up += len(content)

    def _kdmq_arrive(self, donor, d_epoch: int, my_epoch: int, content: list, n: int, tx: list) -> None:
        """A sync message reaches this node's socket: the kernel queues it unless the buffer is full
        (then it is dropped and counted, like a REGISTER), and the first free reader takes it. dmq
        answers it (sl, stateless) only once a worker has read it, so a copy that waits in the socket
        past the next Timer E is retransmitted all the same: the copy is queued, read and applied again
        (dmq worker.c ``worker_loop`` → ``freply`` after the job; tm retransmits until a reply)."""
        if my_epoch != self.epoch or not self.up:
            return
        i = self.index
        topo = self.topo
        if not topo.link[i] or topo.proc_hung[i]:  # lost, or taken and never answered: tm sends it again
            self._kdmq_again(donor, d_epoch, my_epoch, content, n, tx)
            return
        now = self.sim.env._now
        if self.sync_own_socket:
            heap, waiting = self.sync_free_at, self.sync_waiting
        else:
            heap, waiting = self.free_at, self.waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        if waiting.full(self.sync_truesize):
            self.sync_dropped += 1
            self.kdmq_bins.add(now)
            self._kdmq_again(donor, d_epoch, my_epoch, content, n, tx)
            return
        free = heappop(heap)
        start = now if free < now else free
        finish = start + self.sync_read()
        heappush(heap, finish)
        if start > now:
            waiting.append(start, now, self.sync_truesize)
        self.clock.call_at(finish, self._kdmq_read, my_epoch, content, tx)
        offs = self.sync_offsets
        if n + 1 < len(offs) and finish > tx[0] + offs[n + 1]:
            self._kdmq_again(donor, d_epoch, my_epoch, content, n, tx, queued=True)

    def _kdmq_read(self, my_epoch: int, content: list, tx: list | None = None) -> None:
        """A worker read the sync message: its contacts are bindings here from now on (the latest
        save wins), and dmq's 200 ends the donor's transaction."""
        if my_epoch != self.epoch or not self.up or self.hung:
            return
        now = self.sim.env._now
        if tx is not None and now < tx[1]:
            tx[1] = now
        mine = self.store.until
        for p, u in content:
            if u > now and u > mine[p]:
                self.store.save(now, p, u)
                self.sync_applied += 1
