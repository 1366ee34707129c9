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

Beyond that plain case (UDP to the VIP), each fleet may use:

* **TCP/TLS** (``transport``): a connection per phone to the node its address leads to. Without
  one, the request waits for a SYN/SYN-ACK (SYN retransmitted from ``syn_rto`` doubling) and, for
  TLS, ``tls_rtts`` more round trips; the first request on a new TLS connection costs the
  registrar ``tls_handshake_cost`` extra service times. A segment reaching a node that holds the
  address but not the connection (the new master after a VIP move, a restarted node) is answered
  with a reset: a *transport error*, handled by ``retry.transport_error_interval``. Silence (a
  dead node) is retransmitted by TCP (``rto_min`` doubling, not Timer E) until Timer F. A
  registrar process that stops on a live node closes its connections (FIN): those phones
  re-register per the same rule. With ``transport_reset: unnoticed`` (libre) a reset or close of
  an *established* connection drops the connection but tells no one: a REGISTER sent on it ends
  at Timer F as a timeout, an idle phone waits for its next refresh (a refused SYN is still a
  transport error at once).
* **Connection-bound bindings** (``Scenario.connection_bound``: TCP/TLS behind NAT, or a rewritten
  contact): every connection gets an id; the run log's ``conns`` keeps where and when each opened
  and ended and over which one each binding was registered (the ``contact`` hook), and the
  metrics let a binding reach its phone only while its node holds that connection.
* **Keep-alives** (:mod:`simsip.engine.keepalive`): a failed flow makes the phone re-register
  (``keepalive_tcp`` over TCP/TLS where the product has its own).
* **DNS** (``server: dns_srv``/``dns_a``, :mod:`simsip.engine.dns`): phones address nodes
  directly, in their own RFC 2782 order, moving to the next target after ``retry_counts`` failed
  attempts and returning per the failback mode.
* **A load balancer** (``server: lb``, :mod:`simsip.engine.lb`), or a registration-caching SBC
  (``server: sbc``, :mod:`simsip.engine.sbc`; UDP) that answers refreshes itself.
* **Dual registration** (``failover.dual_registration``, DNS fleets): each phone also keeps a
  second registration, one target further along its list, as a "virtual phone" slot numbered
  after all real phones (own transactions, refresh, retries, failover; same fleet parameters).
  Its bindings are saved under the slot; the metrics count them for the phone (``slot_owner``).
* **Digest auth** (``auth.enabled``): the registrar's :meth:`PhoneBank.authorized` hook decides
  whether a REGISTER carries a nonce the node accepts; otherwise it answers 401 and the phone sends
  the REGISTER again at once with credentials. A nonce belongs to the node (and process) that
  issued it; with ``nonce_reuse`` the phone sends credentials for its last nonce proactively.

The bank is the registrars' *replies* port: a registrar tells it a copy is lost (:meth:`lost`),
that it holds a request until a worker finishes (:meth:`hold` — the phone arms its own timer if
it must), and sends a final response over a path drawn on arrival (:meth:`path`, :meth:`reply`);
the phone-side hooks ``authorized``, ``extra_work``, ``stopped`` and ``contact`` are None where unused. The
bank reads node facts from the topology, sends through the network port and hands REGISTERs to
the registrars' ``receive`` functions (``receivers``). Retry waits draw from per-phone streams,
so a phone's numbers do not depend on the order in which the engine processes other phones.

Fast paths (declared optimisations of the event-by-event engine, off with
``engine.fast_paths: false``): an arrival is applied when its packet leaves (constant delay, every
fleet sends UDP to the VIP, before the control horizon); a response is applied when it is sent
(no timer armed, no keep-alive watch, before the horizon) — stamped with its true time.
"""

from __future__ import annotations

from array import array

import numpy as np

from simsip.config.schema import Fleet
from simsip.engine.dns import target_orders
from simsip.engine.keepalive import Keepalives
from simsip.engine.lb import Balancer
from simsip.engine.network import LOST
from simsip.engine.records import ConnLog, RunLog
from simsip.protocols.registration import (binding_until, failure_draws, failure_wait, keepalive_timeout, retry_wait,
                                           retry_wait_draws, spread_expiry)
from simsip.rng import PerPhoneStream, wall_clock_phase

NO_TX = -1
OUT_TIMEOUT = -2.0
OUT_FAILURE = -1.0
LB = -5  # the "node" a phone behind a load balancer talks to
# reliable transports: where the current request is
T_IDLE, T_SYN, T_SEG, T_DONE = 0, 1, 2, 3
# why the last failure happened (besides a timeout)
CAUSE_NONE, CAUSE_503, CAUSE_TRANSPORT = 0, 1, 2


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
        self.transport = ph.transport
        self.reliable = ph.transport != "udp"
        self.tls = ph.transport == "tls"
        self.server = fleet.server
        self.direct = fleet.server != "vip"
        self.dns = fleet.server in ("dns_srv", "dns_a")
        self.plain = not self.reliable and not self.direct  # UDP to the VIP: the fast path
        self.ka = ph.flow_keepalive  # keepalive_tcp over tcp/tls where the product has its own
        # a reset/close of the established connection ends a pending REGISTER at once (else: Timer F)
        self.reset_notifies = ph.transport_reset == "error"
        self.ka_detects = self.ka.kind != "none" and (self.reliable or self.ka.kind == "options")
        self.ka_timeout = keepalive_timeout(self.ka.kind, self.ka.timeout, self.timer_f)
        self.failover = ph.failover
        self.nonce_reuse = ph.auth.nonce_reuse
        self.startup_delay = ph.startup_delay
        self.nat_group = ph.nat_group
        self.bound = False  # connection-bound bindings (Scenario.connection_bound), set by the bank
        self.rto_min = self.rto_max = self.syn_rto = 0.0
        self.tls_rtts = 0
        # dual registration: a second registration per phone, held by a "virtual phone" slot
        # numbered after all real phones (``second``..``second+count``), sharing the fleet's params
        self.dual = self.dns and ph.failover.dual_registration
        self.second = -1
        self.slots = [(first, first + fleet.count)]


class PhoneBank:
    """State and behaviour of every phone in the scenario."""

    def __init__(self, cfg, fleets: tuple[Fleet, ...], log: RunLog, *, sim, clock, topo, net, streams, horizon,
                 fast_paths: bool = True, grow=()):
        self.cfg = cfg
        self.sim = sim
        self.clock = clock  # the load balancer's probes are control events
        self.topo = topo
        self.net = net
        self.streams = streams
        self.horizon = horizon
        self.fast_paths = fast_paths
        self.receivers: list = []  # each node's REGISTER entry point (set when wired)
        self.log = log
        self.params: list[FleetParams] = []
        first = 0
        for i, f in enumerate(fleets):
            self.params.append(FleetParams(i, f, first))
            self.params[-1].bound = cfg.connection_bound(f)
            first += f.count
        self.n_phones = first
        fleet_of = [np.repeat(np.arange(len(fleets), dtype=np.int16), [f.count for f in fleets])]
        owner = [np.arange(first, dtype=np.int64)]
        for fp in self.params:
            if fp.dual:  # the second registration's slots
                fp.second = first
                fp.slots.append((first, first + fp.count))
                fleet_of.append(np.full(fp.count, fp.index, dtype=np.int16))
                owner.append(np.arange(fp.first, fp.first + fp.count, dtype=np.int64))
                first += fp.count
        self.n = n = first
        self.fleet_of = np.concatenate(fleet_of) if len(fleet_of) > 1 else fleet_of[0]
        # slot -> phone (None without dual registration): bindings and outcomes of a second
        # registration are recorded under its slot and counted for its phone after the run
        self.slot_owner = np.concatenate(owner) if len(owner) > 1 else None
        log.slot_owner = self.slot_owner
        if self.slot_owner is not None:
            for g in grow:  # room for the second registrations' slots in stores, storages, replicas
                g(n - self.n_phones)
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
        self.calendar = None  # the refresh calendar (core.Calendar) when bulk refreshes apply
        self.bulk_servers: list = []  # each node's bulk entry points (set when wired)
        self.bulk_done = 0  # refreshes applied in bulk
        self._mark = np.zeros(n, dtype=np.int64)  # scratch: a batch's position of each phone
        # numpy views of the per-phone columns (fixed size for the whole run)
        self._v = {name: np.frombuffer(getattr(self, name), dtype=np.dtype(getattr(self, name).typecode))
                   for name in ("tx", "gen", "tx_start", "interval", "deadline", "sends", "failures")}
        self.bulk_fallbacks: dict[str, int] = {}  # refreshes the bulk step handed to the event path, by reason
        self.retry_rnd = PerPhoneStream(streams.seed, streams.replication, "phones.retry", n)
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
        self._init_features()

    def _init_features(self) -> None:
        """State for transports, DNS, the balancer, auth and keep-alives (only what is used)."""
        cfg = self.cfg
        n = self.n
        self.counters = self.log.counters
        self._cause = CAUSE_NONE
        self.restart_timer = cfg.restart_timer
        tcp = cfg.network.tcp
        for fp in self.params:
            fp.rto_min, fp.rto_max, fp.syn_rto = tcp.rto_min, tcp.rto_max, tcp.syn_rto
            fp.tls_rtts = tcp.tls_rtts if fp.tls else 0
        self.any_reliable = any(fp.reliable for fp in self.params)
        if self.any_reliable:
            self.conn = array("q", [-1]) * n  # node of the phone's connection (-1: none; LB)
            self.conn_nep = array("q", [0]) * n  # the node's boot epoch when connected
            self.conn_rep = array("q", [0]) * n  # the registrar process epoch when connected
            self.tstate = array("b", [T_IDLE]) * n
            self.newconn = array("b", [0]) * n  # the next request opens a TLS connection
            self.te_bins = self.log.bin("transport_errors")
            self.counters["transport_errors"] = 0
            self.counters["tcp_retransmissions"] = 0
            self.counters["connections_opened"] = 0
            self.counters["connections_closed_by_peer"] = 0
        self.tls_cost = tcp.tls_handshake_cost
        # connection-bound bindings: each connection gets an id, and the log keeps when it opened,
        # where, and when it ended, and over which one every binding was registered
        self.conns: ConnLog | None = None
        if any(fp.bound for fp in self.params):
            self.conns = self.log.conns = ConnLog()
            self.conns.bound = np.array([fp.bound for fp in self.params])[self.fleet_of]
            self.conn_id = array("q", [-1]) * n
        self.contact = self._contact if self.conns is not None else None
        # DNS: each phone's ordered target list and where it is in it
        self.any_dns = any(fp.dns for fp in self.params)
        if self.any_dns:
            self.orders: list[tuple[int, ...]] = []
            self.order_id = array("l", [0]) * n
            self.dns_pos = array("l", [0]) * n
            self.tfail = array("l", [0]) * n  # failed attempts on the current target
            self.moved_at = array("d", [0.0]) * n  # when the phone left its first target
            self.fo_cont = array("b", [0]) * n  # the next begin continues a failover
            self.fb_reset = array("b", [0]) * n  # failback_mode registration: next refresh starts over
            self.counters["dns_failovers"] = 0
            ttl = cfg.dns.ttl
            self.dns_ttl = ttl
        self.lb = Balancer(self, cfg.load_balancer, self.clock) if any(fp.server == "lb" for fp in self.params) else None
        self.sbc = None  # the registration-caching SBC (:mod:`simsip.engine.sbc`), set when wired
        # digest auth
        self.auth_on = cfg.auth.enabled
        if self.auth_on:
            self.nonce_life = cfg.auth.nonce_lifetime
            self.shared_secret = cfg.auth.shared_secret
            self.nonce_node = array("q", [-1]) * n
            self.nonce_ep = array("q", [0]) * n
            self.nonce_t = array("d", [0.0]) * n
            self.cred_node = array("q", [-1]) * n
            self.cred_ep = array("q", [0]) * n
            self.cred_t = array("d", [0.0]) * n
            # the credentials each copy carries are those attached when its transaction began: the
            # current transaction's and the one before (a copy still on its way when the phone moved on)
            self.cred_tx = array("q", [NO_TX]) * n
            self.prev_cred: dict[int, tuple[int, int, int, float]] = {}  # phone -> (tx, node, epoch, t)
            self.auth_retry = array("b", [0]) * n
            self.pending: dict[tuple[int, int], tuple[int, int, float]] = {}  # (phone, tx) -> nonce of its 401
            self.r401_bins = self.log.bin("resp_401")
            self.counters["auth_challenges"] = 0
        self.keepalives = Keepalives(self) if any(fp.ka_detects for fp in self.params) else None
        self.watchers = self.keepalives is not None
        # the replies port's phone-side hooks (None where unused)
        self.authorized = self._authorized if self.auth_on else None
        self.extra_work = self._extra_work if any(fp.tls for fp in self.params) and self.tls_cost > 0 else None
        self.stopped = self.process_stopped if self.any_reliable else None

    def fleet(self, p: int) -> FleetParams:
        return self._only or self.params[self._fleet_idx[p]]

    # ------------------------------------------------------------------ start-up
    def start(self, registrar_grant, initial_store, node_stores) -> None:
        """Place every phone at t=0: equilibrium (registered, uniform phase) or boot storm.

        ``initial_store`` holds the equilibrium bindings (the master's); ``node_stores`` are each
        node's stores (a second registration's bindings go to the node it registers with)."""
        # Arrivals are applied when they leave only if every sender to the registrars does so
        # (UDP to the VIP with a constant delay): then they reach each registrar in send order.
        self.fold_arrivals = self.folds()
        self.unfolded_until = float("-inf")  # the last arrival sent as an event instead
        self.node_stores = node_stores
        topo = self.topo
        if self.any_dns:
            self._dns_start()
        if self.lb is not None:
            self.lb.start()
        equilibrium: list[np.ndarray] = []
        self._eq_bound: list[tuple[int, np.ndarray, np.ndarray]] = []

        times_all, phones_all = [], []
        for fp, fleet in zip(self.params, self.cfg.fleets):
            gen = self.streams.generator(f"phones.start.{fleet.name}")
            t_boot = None
            for k, (lo, hi) in enumerate(fp.slots):
                if k:  # the second registration: its own phases (the first slot's draws unchanged)
                    gen = self.streams.generator(f"phones.start.{fleet.name}.dual")
                if fleet.start == "boot_storm":
                    if t_boot is None:
                        t_boot = gen.random(fp.count) * fleet.boot_window
                        if fp.startup_delay > 0:  # Yealink reg_surge_prevention: a random wait after boot
                            sgen = self.streams.generator(f"phones.startup.{fleet.name}")
                            t_boot = t_boot + sgen.random(fp.count) * fp.startup_delay
                    times_all.append(t_boot)  # both registrations start when the phone boots
                    phones_all.append(np.arange(lo, hi))
                    continue
                self._start_registered(fp, fleet, lo, hi, k, gen, initial_store, equilibrium, registrar_grant,
                                       times_all, phones_all)
        for ids in equilibrium:  # registered phones hold a connection and a nonce from their node
            for p in ids.tolist():
                fp = self.fleet(p)
                node = self.node_for(p, 0.0, fp)
                if fp.server == "lb":
                    node = self.lb.choose(p)
                if node < 0:
                    continue
                if fp.reliable:
                    self.conn[p] = LB if fp.server == "lb" else node
                    self.conn_nep[p] = topo.epoch[node]
                    self.conn_rep[p] = topo.proc_epoch[node]
                    if fp.bound:
                        self.conn_id[p] = self.conns.open(p, node, 0.0)
                if self.auth_on:
                    self.nonce_node[p] = node
                    self.nonce_ep[p] = topo.proc_epoch[node]
        if self.conns is not None:
            self._bound_bindings(initial_store, node_stores)
        if self.keepalives is not None:
            self.keepalives.start()
        # every phone's first action, placed on SimPy's heap in one heapify (not 1 M pushes)
        if self.calendar is not None:
            self.calendar.add_many(np.concatenate(times_all), np.concatenate(phones_all), 0)
        else:
            self.sim.bulk_call_at(np.concatenate(times_all).tolist(), self.begin, np.concatenate(phones_all).tolist(), 0)

    def _start_registered(self, fp, fleet, lo, hi, k, gen, initial_store, equilibrium, registrar_grant,
                          times_all, phones_all) -> None:
        """Slots lo..hi registered at t=0 (equilibrium): bindings, phases, first refreshes."""
        if fp.reliable or self.auth_on:
            equilibrium.append(np.arange(lo, hi))
        granted = registrar_grant(fp.expires)
        rng_cfg = self.cfg.registrar.expires_range
        if rng_cfg:
            grants = spread_expiry(granted, rng_cfg, gen.random(fp.count))
            intervals = np.array([fp.refresh.interval(g) for g in grants.tolist()])
        else:
            grants = np.full(fp.count, granted)
            intervals = np.full(fp.count, fp.refresh.interval(granted))
        if fleet.phases == "even":  # phone k at k·R/N, as a SIPp lab starts its calls
            u = (np.arange(fp.count) + 0.5) / fp.count
            if k:
                u = (u + 0.25 / fp.count) % 1.0  # interleaved with the first registrations
        else:
            u = gen.random(fp.count)
        last = -u * intervals  # last successful refresh, uniform in its interval
        reg = self.cfg.registrar
        # the registrar's expiry of each binding (whole seconds on a usrloc time_t clock)
        phase = (wall_clock_phase(self.streams.seed, self.streams.replication)
                 if reg.expiry_clock == "whole_seconds" else None)
        ids = np.arange(lo, hi, dtype=np.int64)
        if initial_store is not None and fp.server != "sbc":  # the SBC places its phones' bindings
            held = binding_until(last, grants, reg.lookup_grace, phase)
            self._initial_bindings(fp, k, ids, last, held, initial_store)
            if fp.bound:  # over which connection (opened below) each of them was registered
                self._eq_bound.append((k, ids, held))
        log = self.log
        log.outcomes(last, ids, last + grants)
        times_all.append(last + intervals)
        phones_all.append(ids)
        if self.auth_on:  # the nonce of the challenge before the last registration
            self.nonce_t[lo:hi] = array("d", last.tolist())

    def _bound_bindings(self, initial_store, node_stores) -> None:
        """The equilibrium bindings of connection-bound phones were registered over the
        connections they hold at t=0: log that, and count them as contacts where max_contacts is."""
        conns = self.conns
        per_node = len({id(st) for st in node_stores}) > 1 and self.cfg.registrar.data == "none"
        for k, ids, until in self._eq_bound:
            for p, u in zip(ids.tolist(), until.tolist()):
                cid = self.conn_id[p]
                conns.saved(p, u, cid)
                st = node_stores[self.conn[p]] if (k and per_node and self.conn[p] >= 0) else initial_store
                if st.contacts is not None:
                    st.contacts.seed(p, cid, u)
        self._eq_bound = []

    def _initial_bindings(self, fp, k, ids, last, until, initial_store) -> None:
        """Equilibrium bindings: in the master's store, or — for a second registration whose nodes
        keep their own stores — in the store of the node the slot registers with."""
        stores = self.node_stores
        per_node = len({id(st) for st in stores}) > 1 and self.cfg.registrar.data == "none"
        if not (k and per_node):
            initial_store.bulk_save(last, ids, until)
            return
        first = np.array([self.orders[o][0] for o in range(len(self.orders))], dtype=np.int64)
        node = first[np.frombuffer(self.order_id, dtype=f"i{self.order_id.itemsize}")[ids]]
        for i, st in enumerate(stores):
            sel = node == i
            if sel.any():
                st.bulk_save(last[sel], ids[sel], until[sel])

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
        if self.auth_on:
            self._attach_credentials(p, fp)
        if fp.plain:
            self._send(p, tx, now, fp)
        else:
            self._begin_adv(p, tx, now, fp, end)

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
        if self.fold_arrivals:
            if t_a < self.horizon.until and self.unfolded_until < now:
                # Constant delay keeps arrivals in send order, every sender folds, no arrival sent
                # as an event is still on its way, and no control event can change a node before
                # the arrival: process it now, stamped t_a.
                self.receivers[node](p, tx, fp.expires, t_a)
                return
            self.unfolded_until = t_a
        self.sim.phone_at(t_a, self.receivers[node], p, tx, fp.expires)

    # ------------------------------------------------------------------ bulk refreshes
    def folds(self) -> bool:
        """Arrivals are applied when they leave only if every sender to the registrars does so
        (UDP to the VIP with a constant delay): then they reach each registrar in send order."""
        return (self.fast_paths and self.net.constant_delay and self.lb is None
                and all(fp.plain for fp in self.params))

    def bulk_problem(self) -> str | None:
        """Why this scenario's refreshes cannot be applied in bulk (None: they can, where undisturbed).

        The bulk step is the fast engine's plain REGISTER (fold arrival, complete at arrival, apply
        the 200 when sent) done for many phones at once, so it needs every fast path and nothing
        per phone that draws from a shared stream in an order the batch cannot reproduce."""
        if not self.cfg.engine.bulk:
            return "engine.bulk: false"
        if not self.folds():
            return "fast paths off" if not self.fast_paths else "arrivals not folded (non-plain fleet or random delay)"
        if self.auth_on:
            return "digest auth"
        if self.keepalives is not None:
            return "keep-alives"
        if self.net.loss > 0:
            return "network loss"
        if self.slot_owner is not None:
            return "dual registration"
        if getattr(self.cfg, "trunks", None):
            return "trunks"
        for srv in self.bulk_servers:
            why = srv.bulk_problem()
            if why:
                return why
        return None

    def refresh_width(self) -> float:
        """Bucket width of the refresh calendar: well below the shortest refresh interval."""
        g = self.cfg.registrar.grant
        ri = min(fp.refresh.interval(g(fp.expires)) for fp in self.params)
        return max(0.01, min(60.0, ri / 8.0))

    def _fallback(self, why: str, k: int) -> None:
        self.bulk_fallbacks[why] = self.bulk_fallbacks.get(why, 0) + k

    def bulk_step(self, t, p, g, reach: float | None) -> int:
        """Refreshes due at times ``t`` (sorted, phone order within a time; all before the heap's
        next event that is not inert), applied as the fast engine would apply them one by one,
        vectorised; effects are applied ahead up to ``reach`` (None: the horizon).

        Each one is the plain chain: begin, the REGISTER folded into the VIP owner's arrival, served
        first come, first served (its queue below the limit), the completion and its 200 applied ahead,
        the next refresh placed in the calendar — exact only while no timer can fire (arrival,
        completion and reply within Timer E's first interval), no control event intervenes (all
        before the horizon), the phone is idle and no arrival sent as an event is on its way.
        Returns how many entries from the front were handled (applied, or no-ops of a superseded
        generation); -1: none of them can be (a batch-wide reason, counted), the caller turns
        them all into events. The first entry it cannot apply, at the returned index, becomes an
        event, counted by reason."""
        net = self.net
        n = len(t)
        hz = self.horizon.until if reach is None else reach
        node = net.vip_mac
        why = None
        if net.lossy_arp:
            why = "per-host ARP entries"
        elif node < 0:
            why = "no VIP owner"
        elif self.unfolded_until >= t[0]:
            self._fallback("arrival in flight as an event", 1)
            return 0
        if why is None:
            srv = self.bulk_servers[node]
            why = srv.bulk_ready(t[0] + net.delay())
        if why is not None:
            self._fallback(why, n)
            return -1
        v = self._v
        live = g == v["gen"][p]
        if not live.all():
            pos = np.flatnonzero(live)
            t, p = t[pos], p[pos]
        else:
            pos = None
        m = len(t)
        if m == 0:
            return n
        fleet = self.fleet_of[p] if self._only is None else None
        if fleet is None:
            fp = self._only
            t1, tf, req = fp.t1, fp.timer_f, fp.expires
        else:
            par = self.params
            t1 = np.array([f.t1 for f in par])[fleet]
            tf = np.array([f.timer_f for f in par])[fleet]
            req = np.array([f.expires for f in par])[fleet]
        dl = np.minimum(t + t1, t + tf)  # Timer E's first firing (or F)
        ta = t + net.delay()
        finish, granted, ok = srv.bulk_peek(p, ta, dl, hz, req)
        back = net.reply_path()  # constant (constant delay, no loss): draws nothing
        tr = finish + back
        # (ta <= dl and ta < hz hold wherever the peek said ok: ta <= finish <= dl, finish < hz)
        ok &= (v["tx"][p] == NO_TX) & (tr <= dl) & (tr < hz)
        if m > 1:  # a phone twice in the batch (never in practice): stop before its first entry
            mark = self._mark
            order = np.arange(m)
            mark[p] = order
            ok &= mark[p] == order
        cut = m if ok.all() else int(np.argmin(ok))
        if cut < m:
            self._fallback(self._why_not(cut, p, ta, dl, finish, tr, hz, ok), 1)
        k = cut if pos is None else (n if cut == m else int(pos[cut]))
        if cut == 0:
            return k
        if cut < m:
            t, p, ta, dl, finish, tr, granted = (x[:cut] for x in (t, p, ta, dl, finish, tr, granted))
            if fleet is not None:
                fleet = fleet[:cut]
                t1 = t1[:cut]
        self._bulk_apply(t, p, ta, dl, finish, tr, granted, t1, fleet, srv)
        return k

    def _why_not(self, i, p, ta, dl, finish, tr, hz, ok) -> str:
        tx = self.tx[int(p[i])]
        if tx != NO_TX:
            return "phone in a transaction"
        if max(ta[i], finish[i], tr[i]) >= hz:
            return "control event before the 200"
        if finish[i] > dl[i] or tr[i] > dl[i]:
            return "200 later than Timer E"
        return "registrar queue full" if ok[:i].all() else "phone twice in a batch"

    def _bulk_apply(self, t, p, ta, dl, finish, tr, granted, t1, fleet, srv) -> None:
        """Commit a clean prefix: the same state, records and counts as the one-by-one fast path."""
        m = len(t)
        txs = np.arange(self.next_tx, self.next_tx + m, dtype=np.int64)
        self.next_tx += m
        self.started += m
        reported = srv.bulk_commit(p, txs, ta, finish, granted)
        v = self._v
        v["tx_start"][p] = t
        v["interval"][p] = t1
        v["deadline"][p] = dl
        v["sends"][p] = 1
        v["failures"][p] = 0
        if self.bulk_bins:  # (a figures-only run: no figure reads them)
            bins_add(self.tx_bins, t)
            bins_add(self.ok_bins, tr)
        self.succeeded += m
        log = self.log
        log.outcomes(tr, p, tr + reported)
        ri = self._refresh_intervals(reported, fleet)
        self.calendar.add_many(tr + ri, p, v["gen"][p])
        self.bulk_done += m

    def _refresh_intervals(self, granted, fleet):
        """Each phone's refresh interval for its granted expiry (the fleets' rule, cached)."""
        if fleet is None:
            fp = self._only
            g = float(granted[0])
            if (granted == g).all():
                ri = fp.refresh_cache.get(g)
                if ri is None:
                    ri = fp.refresh_cache[g] = fp.refresh.interval(g)
                return np.full(len(granted), ri)
            fleet = np.zeros(len(granted), dtype=np.int16)
        out = np.empty(len(granted))
        for i, (f, g) in enumerate(zip(fleet.tolist(), granted.tolist())):
            fp = self.params[f]
            ri = fp.refresh_cache.get(g)
            if ri is None:
                ri = fp.refresh_cache[g] = fp.refresh.interval(g)
            out[i] = ri
        return out

    def bulk_report(self) -> dict:
        """How the refreshes were simulated (for ``summary.json``'s ``engine``)."""
        cal = self.calendar
        return {"bulk": cal is not None, "bulk_disabled": self.bulk_off, "bulk_registrations": self.bulk_done,
                "bulk_fallbacks": dict(sorted(self.bulk_fallbacks.items())),
                "calendar_to_events": cal.released if cal is not None else 0,
                "bulk_seconds": round(cal.seconds, 6) if cal is not None else 0.0}

    bulk_off: str | None = None  # why the scenario runs without bulk refreshes
    bulk_bins = True  # bulk steps count REGISTERs sent and 200 OKs in the bins (False: a figures-only run)

    def ensure_timer(self, p: int, tx: int) -> None:
        """Make sure Timer E/F is pending for transaction ``tx`` of phone ``p``."""
        if self.tx[p] == tx and self.timer_tx[p] != tx:
            self.timer_tx[p] = tx
            self.sim.phone_at(self.deadline[p], self._timer, p, tx)

    def lost(self, p: int, tx: int) -> None:
        """Replies port: a copy of the request or its reply is gone; only the timer can move on."""
        self.ensure_timer(p, tx)

    def hold(self, p: int, tx: int, finish: float) -> bool:
        """Replies port: a worker holds the request until ``finish``. Arms the phone's timer if it
        fires before then; True if nothing of the phone's that the completion reads or writes (its
        digest credentials and challenge) can change before ``finish``."""
        if finish > self.deadline[p]:
            self.ensure_timer(p, tx)
            return not self.auth_on
        # with digest auth, a completion records the nonce it challenges with: only one copy of the
        # request may be in flight (no timer armed) for that to be order-independent
        return not (self.auth_on and self.timer_tx[p] == tx)

    def path(self) -> float:
        """Replies port: the trip of one reply back to a phone (its delay, or LOST), drawn now."""
        return self.net.reply_path()

    def source(self, p: int) -> int:
        """Replies port: phone ``p``'s public source address, as a number (``nat_group`` phones of
        a fleet share one)."""
        fp = self.fleet(p)
        q = p - fp.first if p < fp.first + fp.count else p - fp.second
        return (fp.index << 40) | (q // fp.nat_group)

    def reliable(self, p: int) -> bool:
        """Replies port: does phone ``p`` send over TCP/TLS (not UDP)?"""
        return self.any_reliable and self.fleet(p).reliable

    def _timer(self, p: int, tx: int) -> None:
        if self.tx[p] != tx:
            return  # transaction already ended
        now = self.sim.env._now
        fp = self.fleet(p)
        if fp.reliable:
            self._rel_timer(p, tx, now, fp)
            return
        end = self.tx_start[p] + fp.timer_f
        rtx_done = self.sends[p] - 1
        if now >= end - 1e-9 or (fp.max_rtx is not None and rtx_done >= fp.max_rtx):
            self._timeout(p, tx, now, fp)
            return
        self.rtx_bins.add(now)
        self._rearm(p, tx, now, fp.t2, end)  # Timer E: double up to T2; the timer stays armed
        if fp.plain:
            self._send(p, tx, now, fp)
        else:
            self._send_direct(p, tx, now, fp)

    def _rearm(self, p: int, tx: int, now: float, cap: float, end: float) -> None:
        """Double the retransmission interval (at most ``cap``) and fire again then, or at ``end``."""
        iv = self.interval[p] * 2.0
        if iv > cap:
            iv = cap
        self.interval[p] = iv
        d = now + iv
        self.deadline[p] = d if d < end else end
        self.sim.phone_at(self.deadline[p], self._timer, p, tx)

    def reply(self, p: int, tx: int, t_sent: float, status: int, granted: float, retry_after: float,
              back: float, ahead: bool = True) -> None:
        """Replies port: a registrar sends a final response at ``t_sent`` over the path ``back``
        (see :meth:`path`); it reaches the phone that much later. ``ahead=False``: never apply it
        before its time (replies that land at the same instant as others)."""
        if back <= LOST:
            if not (self.any_reliable and self.fleet(p).reliable):
                self.ensure_timer(p, tx)
                return
            t_sent += self.fleet(p).rto_min  # TCP retransmits the lost segment
            back = LOST - back
        t_r = t_sent + back
        if (ahead and self.timer_tx[p] != tx and t_r <= self.deadline[p] and t_r < self.horizon.until
                and (self.keepalives is None or not self.keepalives.watch[p])):
            # Nothing can happen to this phone before the reply lands (no timer armed, no other
            # copy in flight, no keep-alive watching it, no control event): apply it now,
            # stamped with its arrival time.
            self._response(p, tx, t_r, status, granted, retry_after)
            return
        if t_r > self.deadline[p]:
            self.ensure_timer(p, tx)
        self.sim.phone_at(t_r, self._response_now, p, tx, status, granted, retry_after)

    def _response_now(self, p: int, tx: int, status: int, granted: float, retry_after: float) -> None:
        self._response(p, tx, self.sim.env._now, status, granted, retry_after)

    def _response(self, p: int, tx: int, t: float, status: int, granted: float, retry_after: float) -> None:
        if self.tx[p] != tx:
            self.stray += 1  # a late reply to a copy of a transaction that already ended
            if self.auth_on and status == 401:
                self.pending.pop((p, tx), None)
            return
        self.tx[p] = NO_TX
        fp = self.fleet(p)
        log = self.log
        if status < 300:
            b = self.ok_bins
            b.v[int(t * b.inv)] += 1
            self.succeeded += 1
            self.failures[p] = 0
            log.outcome(t, p, t + granted)
            ri = fp.refresh_cache.get(granted)
            if ri is None:
                ri = fp.refresh_cache[granted] = fp.refresh.interval(granted)
            cal = self.calendar
            if cal is not None:
                cal.add(t + ri, p, self.gen[p])
            else:
                self.sim.phone_at(t + ri, self.begin, p, self.gen[p])
            if not fp.plain or self.auth_on:
                self._succeeded_adv(p, fp)
            return
        (self.r503_bins if status == 503 else self.r4_bins).add(t)
        self.failed += 1
        if status == 401 and self.auth_on:
            self._challenged(p, tx, t, fp)
            return
        if status == 503:
            self._cause = CAUSE_503
        self._fail(p, t, fp, OUT_FAILURE, retry_after, status=status)

    def _timeout(self, p: int, tx: int, now: float, fp: FleetParams) -> None:
        self.tx[p] = NO_TX
        if fp.reliable:
            self._close(p, now)  # the flow is considered dead
        self.to_bins.add(now)
        self.timed_out += 1
        self._fail(p, now, fp, OUT_TIMEOUT, 0.0, timeout=True)

    # ------------------------------------------------------------------ retry rules
    def _fail(self, p: int, t: float, fp: FleetParams, outcome: float, retry_after: float, timeout: bool = False,
              status: int = 0) -> None:
        log = self.log
        log.outcome(t, p, outcome)
        cause = self._cause
        self._cause = CAUSE_NONE
        transport = cause == CAUSE_TRANSPORT
        if self.auth_on:
            self.auth_retry[p] = 0
        if fp.dns and (timeout or transport or (cause == CAUSE_503 and fp.failover.on_503)):
            if self._dns_failed(p, t, fp, timeout, transport):
                return  # the request goes again (same or next target) at once or per the rule
        n = self.failures[p]
        self.failures[p] = n + 1
        kw = dict(timeout=timeout, transport=transport, server_failure=cause == CAUSE_503,
                  restart_timer=self.restart_timer, status=status)
        need_u, need_r = failure_draws(fp.retry, n, **kw)
        rnd = self.retry_rnd.random
        u = rnd(p) if need_u else 0.0
        ur = rnd(p) if need_r else 0.0
        wait = failure_wait(fp.retry, n, retry_after=retry_after, u=u, u_restart=ur, **kw)
        if wait is None:
            self.gave_up += 1
            return
        self.sim.phone_at(t + wait, self.begin, p, self.gen[p])

    def retry_wait(self, fp: FleetParams, n: int, timeout: bool, transport: bool = False, p: int = 0) -> float | None:
        """Seconds phone ``p`` waits after its (n+1)-th consecutive failure; None = give up
        (:func:`simsip.protocols.retry_wait`, drawing from the phone's own stream when the rule needs it)."""
        r = fp.retry
        u = self.retry_rnd.random(p) if retry_wait_draws(r, n, timeout=timeout, transport=transport) else 0.0
        return retry_wait(r, n, timeout=timeout, transport=transport, u=u)

    # ------------------------------------------------------------------ where packets go
    LB = LB

    def node_for(self, p: int, now: float, fp: FleetParams) -> int:
        """The node a packet from phone ``p`` is addressed to / reaches at layer 2 (-1: none; LB)."""
        if fp.server == "vip":
            net = self.net
            return net.target(p, now) if net.lossy_arp else net.vip_mac
        if fp.server == "lb" or fp.server == "sbc":
            return LB
        return self.orders[self.order_id[p]][self.dns_pos[p]]

    def host_ok(self, node: int, direct: bool) -> bool:
        """Does ``node``'s kernel take a packet (up, link up, and holding the VIP unless addressed directly)?"""
        if node < 0:
            return node == LB
        topo = self.topo
        if not topo.node_up[node] or not topo.link[node]:
            return False
        return direct or topo.ha_state[node] == "master"

    def conn_valid(self, p: int, node: int) -> bool:
        """Does ``node`` hold phone p's TCP connection (same boot, same registrar process)?"""
        if node == LB:
            return self.conn[p] == LB
        return (
            self.conn[p] == node
            and self.conn_nep[p] == self.topo.epoch[node]
            and self.conn_rep[p] == self.topo.proc_epoch[node]
        )

    def has_flow(self, p: int, fp: FleetParams) -> bool:
        return self.conn[p] != -1 if fp.reliable else True

    def _close(self, p: int, t: float) -> None:
        """The phone drops its connection at ``t`` (true time, also when applied ahead)."""
        if self.conns is not None and self.conn_id[p] >= 0:
            self.conns.close(self.conn_id[p], t)
            self.conn_id[p] = -1
        self.conn[p] = -1
        self.tstate[p] = T_IDLE

    def _contact(self, p: int) -> int:
        """Replies port: the connection a REGISTER of phone ``p`` arrives over when its binding is
        bound to it (``Scenario.connection_bound``), else -1."""
        return self.conn_id[p] if self.fleet(p).bound else -1

    # ------------------------------------------------------------------ non-plain transactions
    def _begin_adv(self, p: int, tx: int, now: float, fp: FleetParams, end: float) -> None:
        if fp.dns:
            self._dns_begin(p, now, fp)
        if fp.reliable:
            iv = fp.syn_rto if self.conn[p] == -1 else fp.rto_min
            self.interval[p] = iv
            d = now + iv
            self.deadline[p] = d if d < end else end
            self._rel_xmit(p, tx, now, fp)
        else:
            self._send_direct(p, tx, now, fp)

    def _send_direct(self, p: int, tx: int, now: float, fp: FleetParams) -> None:
        """UDP to a DNS target or the balancer (one copy; retransmissions come here too)."""
        self.sends[p] += 1
        node = self.node_for(p, now, fp)
        t_a = self._depart(p, tx, now, node)
        if t_a is None:
            return
        if node == LB:
            self.sim.phone_at(t_a, self.sbc.arrive if fp.server == "sbc" else self.lb.arrive, p, tx, fp.expires)
        else:
            self.sim.phone_at(t_a, self._direct_arrive, p, tx, node, fp.expires)

    def _depart(self, p: int, tx: int, now: float, node: int) -> float | None:
        """A packet of phone ``p`` leaves now for ``node``: its arrival time, or None if it is lost
        (no route, or network loss). Arms Timer E when the packet cannot be answered before it."""
        net = self.net
        if node == -1 or (net.loss and net.lost()):
            self.ensure_timer(p, tx)
            return None
        t_a = now + net.delay()
        if t_a > self.deadline[p]:
            self.ensure_timer(p, tx)
        return t_a

    def _direct_arrive(self, p: int, tx: int, node: int, expires: float) -> None:
        if not self.host_ok(node, True):
            self.lost(p, tx)
            return
        self.receivers[node](p, tx, expires, None, True)

    # ------------------------------------------------------------------ TCP / TLS
    def _rel_xmit(self, p: int, tx: int, now: float, fp: FleetParams) -> None:
        """Send (or resend) the current request: a SYN without a connection, else the segment."""
        self.sends[p] += 1
        node = self.node_for(p, now, fp)
        syn = self.conn[p] == -1
        self.tstate[p] = T_SYN if syn else T_SEG
        t_a = self._depart(p, tx, now, node)
        if t_a is None:
            return
        self.sim.phone_at(t_a, self._syn_arrive if syn else self._seg_arrive, p, tx, node)

    def _syn_arrive(self, p: int, tx: int, node: int) -> None:
        if self.tx[p] != tx or self.tstate[p] != T_SYN:
            return  # the transaction ended, or an earlier SYN already connected
        fp = self.fleet(p)
        if not self.host_ok(node, fp.direct):
            self.ensure_timer(p, tx)  # silence: the SYN is retransmitted
            return
        now = self.sim.env._now
        net = self.net
        if node != LB and not self.topo.proc_up[node]:
            self.tstate[p] = T_IDLE  # nothing listens: reset, connection refused
            self.sim.phone_at(now + net.delay(), self._transport_error, p, tx)
            return
        self.conn[p] = node
        if node != LB:
            self.conn_nep[p] = self.topo.epoch[node]
            self.conn_rep[p] = self.topo.proc_epoch[node]
            if fp.bound:
                self.conn_id[p] = self.conns.open(p, node, now)
        self.counters["connections_opened"] += 1
        t_req = now + net.delay()  # SYN-ACK back; ACK and request leave together
        for _ in range(fp.tls_rtts):
            t_req += net.delay() + net.delay()
        self.newconn[p] = 1 if fp.tls else 0
        self.tstate[p] = T_SEG
        self.interval[p] = fp.rto_min
        end = self.tx_start[p] + fp.timer_f
        d = t_req + fp.rto_min
        self.deadline[p] = d if d < end else end
        self.ensure_timer(p, tx)
        self.sends[p] += 1
        self.sim.phone_at(t_req + net.delay(), self._seg_arrive, p, tx, node)

    def _seg_arrive(self, p: int, tx: int, node: int) -> None:
        if self.tx[p] != tx or self.tstate[p] != T_SEG:
            return
        fp = self.fleet(p)
        if node == LB:
            self.tstate[p] = T_DONE
            self.deadline[p] = self.tx_start[p] + fp.timer_f
            self.lb.arrive(p, tx, fp.expires)
            return
        if not self.host_ok(node, fp.direct):
            self.ensure_timer(p, tx)  # silence: TCP retransmits
            return
        if self.conn_valid(p, node):
            self.tstate[p] = T_DONE  # delivered: only Timer F is left
            self.deadline[p] = self.tx_start[p] + fp.timer_f
            self.receivers[node](p, tx, fp.expires, None, True)
            return
        # the host holds the address but not this connection: reset
        self.tstate[p] = T_IDLE
        self.sim.phone_at(self.sim.env._now + self.net.delay(),
                          self._transport_error if fp.reset_notifies else self._reset_unnoticed, p, tx)

    def _rel_timer(self, p: int, tx: int, now: float, fp: FleetParams) -> None:
        end = self.tx_start[p] + fp.timer_f
        if now >= end - 1e-9:
            self._timeout(p, tx, now, fp)
            return
        st = self.tstate[p]
        if st == T_DONE or st == T_IDLE or now < self.deadline[p] - 1e-9:
            nd = self.deadline[p] if st == T_SYN or st == T_SEG else end
            self.sim.phone_at(nd if nd > now else end, self._timer, p, tx)
            return
        self._rearm(p, tx, now, fp.rto_max, end)  # TCP RTO: double up to its maximum
        self.counters["tcp_retransmissions"] += 1
        self._rel_xmit(p, tx, now, fp)

    def _transport_error(self, p: int, tx: int) -> None:
        if self.tx[p] != tx:
            return
        now = self.sim.env._now
        fp = self.fleet(p)
        self.tx[p] = NO_TX
        self._close(p, now)
        self.te_bins.add(now)
        self.counters["transport_errors"] += 1
        self.failed += 1
        self._cause = CAUSE_TRANSPORT
        self._fail(p, now, fp, OUT_FAILURE, 0.0)

    def _reset_unnoticed(self, p: int, tx: int) -> None:
        """``transport_reset: unnoticed``: the reset closes the connection, but the transaction is not
        told (libre's conn_close notifies only requests queued for a connection being set up): it
        ends at Timer F, and the retry opens a new connection."""
        if self.tx[p] != tx:
            return
        self._close(p, self.sim.env._now)
        self._wait_timer_f(p, tx)

    def _wait_timer_f(self, p: int, tx: int) -> None:
        """Nothing is left for transaction ``tx`` but its Timer F."""
        self.tstate[p] = T_IDLE
        self.deadline[p] = self.tx_start[p] + self.fleet(p).timer_f
        self.ensure_timer(p, tx)

    def _extra_work(self, p: int, service) -> float:
        """Registrar hook: the TLS handshake's work on the first request of a new connection."""
        if self.any_reliable and self.newconn[p]:
            self.newconn[p] = 0
            return self.tls_cost * service()
        return 0.0

    def process_stopped(self, node: int, t: float) -> None:
        """Registrar hook: the process on ``node`` stopped. On a live node the kernel closes its
        connections (FIN); on a dead one nobody is told. Either way its sockets are gone."""
        if self.conns is not None:
            self.conns.stops.append((t, node))
        if not self.topo.link_ok(node):
            return
        conn = np.frombuffer(self.conn, dtype=np.int64)
        for p in np.flatnonzero(conn == node).tolist():
            if self.fleet(p).server == "lb":
                continue
            self._close(p, t)
            self.counters["connections_closed_by_peer"] += 1
            self.sim.phone_at(t + self.net.delay(), self._closed_by_peer, p, self.tx[p], self.gen[p])

    def _closed_by_peer(self, p: int, tx: int, gen: int) -> None:
        fp = self.fleet(p)
        if tx != NO_TX:
            if self.tx[p] == tx:
                if fp.reset_notifies:
                    self._transport_error(p, tx)
                else:
                    self._wait_timer_f(p, tx)
            return
        if self.tx[p] != NO_TX or self.gen[p] != gen or not fp.reset_notifies:
            return  # unnoticed: the next refresh opens a new connection
        wait = self.retry_wait(fp, self.failures[p], False, True, p)
        if wait is None:
            return
        self.gen[p] += 1
        self.sim.phone_at(self.sim.env._now + wait, self.begin, p, self.gen[p])

    def flow_failed(self, p: int, now: float) -> None:
        """A keep-alive found the flow dead: drop the connection and re-register, at once or
        (``keepalive.on_failure: backoff``, libre) after the retry rule's wait for one more failure."""
        fp = self.fleet(p)
        if fp.reliable:
            self._close(p, now)
        if self.tx[p] != NO_TX:
            return  # a REGISTER is under way and finds out by itself
        wait = 0.0
        if fp.ka.on_failure == "backoff":
            n = self.failures[p]
            self.failures[p] = n + 1
            w = self.retry_wait(fp, n, False, False, p)
            if w is None:
                self.gave_up += 1
                self.gen[p] += 1  # the refresh is cancelled too: the phone stopped registering
                return
            wait = w
        self.gen[p] += 1
        self.sim.phone_at(now + wait, self.begin, p, self.gen[p])

    def changed(self, t: float) -> None:
        """Topology subscriber: something changed at ``t`` (keep-alives start watching flows)."""
        if self.keepalives is not None:
            self.keepalives.changed(t)

    def report(self, counters: dict) -> None:
        """The phones' counters for the run summary."""
        c = counters
        c["transactions_started"] = self.started
        c["transactions_succeeded"] = self.succeeded
        c["transactions_failed"] = self.failed
        c["transactions_timed_out"] = self.timed_out
        c["transactions_open"] = sum(1 for x in self.tx if x >= 0)
        c["phones_gave_up"] = self.gave_up
        c["stray_responses"] = self.stray

    # ------------------------------------------------------------------ digest auth
    def _attach_credentials(self, p: int, fp: FleetParams) -> None:
        if self.cred_tx[p] != NO_TX:
            self.prev_cred[p] = (self.cred_tx[p], self.cred_node[p], self.cred_ep[p], self.cred_t[p])
        self.cred_tx[p] = self.tx[p]
        if self.auth_retry[p] or (fp.nonce_reuse and self.nonce_node[p] >= 0):
            self.cred_node[p] = self.nonce_node[p]
            self.cred_ep[p] = self.nonce_ep[p]
            self.cred_t[p] = self.nonce_t[p]
        else:
            self.cred_node[p] = -1

    def carried(self, p: int, tx: int) -> tuple[int, int, float] | None:
        """Replies port: the credentials (nonce node, its process epoch, issue time) a copy of
        transaction ``tx`` carries, read when it reaches the registrar; None: none."""
        if self.cred_tx[p] == tx:
            return (self.cred_node[p], self.cred_ep[p], self.cred_t[p]) if self.cred_node[p] >= 0 else None
        prev = self.prev_cred.get(p)
        if prev is not None and prev[0] == tx and prev[1] >= 0:
            return prev[1:]
        return None

    def _authorized(self, p: int, tx: int, cred, node: int, epoch: int, now: float) -> bool:
        """Registrar hook: do the credentials the copy carried (:meth:`carried`) answer a nonce
        ``node`` accepts?"""
        if cred is not None:
            cn, cep, ct = cred
            if self.shared_secret or (cn == node and cep == epoch):
                if not self.nonce_life or now - ct < self.nonce_life:
                    return True
        self.pending[(p, tx)] = (node, epoch, now)  # the nonce this 401 carries
        return False

    def _challenged(self, p: int, tx: int, t: float, fp: FleetParams) -> None:
        self.r401_bins.add(t)
        self.counters["auth_challenges"] += 1
        nonce = self.pending.pop((p, tx), None)
        if self.auth_retry[p]:  # fresh credentials refused again: a failure
            self._fail(p, t, fp, OUT_FAILURE, 0.0, status=401)
            return
        if nonce is not None:
            self.nonce_node[p], self.nonce_ep[p], self.nonce_t[p] = nonce
        self.auth_retry[p] = 1
        if fp.dns:
            self.fo_cont[p] = 1  # the authenticated REGISTER goes to the same target
        self.sim.phone_at(t, self.begin, p, self.gen[p])

    def _succeeded_adv(self, p: int, fp: FleetParams) -> None:
        if self.auth_on:
            self.auth_retry[p] = 0
        if fp.dns:
            self.tfail[p] = 0
            if fp.failover.failback_mode == "registration":
                self.fb_reset[p] = 1

    # ------------------------------------------------------------------ DNS failover
    def _dns_start(self) -> None:
        cfg = self.cfg
        names = [n.name for n in cfg.ha.nodes]
        entries_srv = [(names.index(r.target), r.priority, r.weight) for r in cfg.dns.srv]
        entries_a = [(names.index(a), 0, 1) for a in cfg.dns.a]
        orders: list[tuple[int, ...]] = []
        for fp, fleet in zip(self.params, cfg.fleets):
            if not fp.dns:
                continue
            gen = self.streams.generator(f"dns.order.{fleet.name}")
            entries = entries_srv if fp.server == "dns_srv" else entries_a
            uniq, inv = target_orders(entries, fp.count, gen)
            base = []
            for o in uniq:
                if o not in orders:
                    orders.append(o)
                base.append(orders.index(o))
            self.order_id[fp.first : fp.first + fp.count] = array("l", np.asarray(base)[inv].tolist())
            if fp.dual:  # the second registration starts at the phone's next target
                rot = []
                for o in uniq:
                    r = o[1:] + o[:1]
                    if r not in orders:
                        orders.append(r)
                    rot.append(orders.index(r))
                self.order_id[fp.second : fp.second + fp.count] = array("l", np.asarray(rot)[inv].tolist())
        self.orders = orders

    def _dns_begin(self, p: int, now: float, fp: FleetParams) -> None:
        """Failback: does this new transaction start again at the first target?"""
        if self.fo_cont[p]:
            self.fo_cont[p] = 0
            return
        reset = self.fb_reset[p]
        self.fb_reset[p] = 0
        if self.dns_pos[p] == 0:
            return
        mode = fp.failover.failback_mode
        if (
            mode == "newRequests"
            or (mode == "registration" and reset)
            or (mode == "DNSTTL" and now - self.moved_at[p] >= self.dns_ttl)
            or (mode == "duration" and now - self.moved_at[p] >= fp.failover.failback_timeout)
        ):
            self.dns_pos[p] = 0
            self.tfail[p] = 0

    def _dns_failed(self, p: int, t: float, fp: FleetParams, timeout: bool, transport: bool) -> bool:
        """An attempt on the current target failed. True: the request goes again now (same target
        below retry_counts, else the next one); False: every target failed, the retry rule applies."""
        fo = fp.failover
        k = self.tfail[p] + 1
        if k < fo.retry_counts:
            self.tfail[p] = k
            wait = 0.0
            if fo.retry_wait == "rule":
                w = self.retry_wait(fp, self.failures[p], timeout, transport, p)
                wait = 0.0 if w is None else w
            self.fo_cont[p] = 1
            self.sim.phone_at(t + wait, self.begin, p, self.gen[p])
            return True
        self.tfail[p] = 0
        pos = self.dns_pos[p] + 1
        if pos < len(self.orders[self.order_id[p]]):
            if self.dns_pos[p] == 0:
                self.moved_at[p] = t
            self.dns_pos[p] = pos
            self.counters["dns_failovers"] += 1
            if fp.reliable:
                self._close(p, t)
            self.fo_cont[p] = 1
            self.sim.phone_at(t, self.begin, p, self.gen[p])
            return True
        self.dns_pos[p] = 0  # the whole list failed: start over after the retry rule's wait
        if fp.reliable:
            self._close(p, t)
        return False


def bins_add(b, times) -> None:
    """``b.add(t)`` for every time in an array (times inside the run)."""
    idx = (times * b.inv).astype(np.int64)
    v = b.v
    if not len(idx):
        return
    lo = int(idx.min())
    if lo == int(idx.max()):
        i = lo
        if 0 <= i < b.n:
            v[i] += len(idx)
        return
    counts = np.bincount(idx - lo)
    a, z = max(lo, 0), min(lo + counts.size, b.n)  # the bins inside the run
    if z - a <= 4 * len(idx):  # a dense span (a batch's times): one slice of the bins, added as an array
        if a < z:
            v[a:z] = (np.array(v[a:z], dtype=np.int64) + counts[a - lo:z - lo]).tolist()
        return
    for k in np.flatnonzero(counts).tolist():
        i = lo + k
        if 0 <= i < b.n:
            v[i] += int(counts[k])


__all__ = ["PhoneBank", "FleetParams", "NO_TX", "bins_add"]
