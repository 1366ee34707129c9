"""The one place that builds a scenario's components, hands each its ports, and runs a replication.

Nothing here decides behaviour; each question has one home:

* what happens on fault X — :mod:`simsip.faults` (the table) and :class:`~simsip.engine.nodes.NodeActions`;
* when the VIP moves — the HA stack (:mod:`~simsip.engine.vrrp`, :mod:`~simsip.engine.cluster`) and
  the ARP entries of :mod:`~simsip.engine.network`; who serves it — :class:`~simsip.engine.topology.Topology`;
* where a binding is lost — :class:`~simsip.engine.registrar.RegistrarNode` (``crash``, stores,
  replication, persistence) and :mod:`~simsip.engine.database`;
* what a phone does — :mod:`~simsip.engine.phones`; the protocol rules — :mod:`simsip.protocols`
  where present, else the config methods;
* which fast paths exist and why they are exact — :class:`~simsip.engine.core.Horizon`.

The ports: the **topology** (node facts, partitions, epochs, VIP owner, serving node,
availability log, change subscribers), the **replies** port (the phone bank, for registrars), the
**network** (phones' access path and GARP announcements), the **clocks** (``Sim`` for the data
path, ``ControlClock`` for everything that can stop or reroute something), the named random
**streams** and the **log**. No component imports this module.
"""

from __future__ import annotations

import gc

import numpy as np

from simsip.config.schema import Scenario
from simsip.engine import cluster, vrrp
from simsip.engine.cluster import HeartbeatInstance, PacemakerInstance
from simsip.engine.core import Calendar, ControlClock, Horizon, Sim
from simsip.engine.database import Database
from simsip.engine.network import Network
from simsip.engine.nodes import FaultInjector, NodeActions
from simsip.engine.phones import PhoneBank
from simsip.engine.records import RunLog, StoreLog
from simsip.engine.registrar import Contacts, RegistrarNode, Storage, Store
from simsip.engine.sbc import CachingSbc, Upstream
from simsip.engine.topology import Topology
from simsip.engine.trunks import TrunkRegistration
from simsip.engine.vrrp import HealthCheck, VrrpInstance
from simsip.rng import Streams


class Model:
    """A built scenario for one replication (``run`` it once)."""

    def __init__(self, cfg: Scenario, replication: int = 0, seed: int | None = None, figures_only: bool = False):
        """``figures_only``: record only what the headline figures read (a sweep point, a plan
        candidate: :func:`simsip.metrics.compute` with ``tables=False``): no phone outcome records
        (except where the model itself reads them: a caching SBC's start), and the bulk steps add
        nothing to the time-series bins no figure reads (REGISTERs sent, 200 OKs received, served)."""
        self.cfg = cfg
        self.replication = replication
        self.figures_only = figures_only
        self.seed = cfg.seed if seed is None else seed
        self.streams = streams = Streams(self.seed, replication)
        self.sim = sim = Sim()
        self.horizon = horizon = Horizon(cfg.duration, enabled=cfg.engine.fast_paths)
        self.clock = clock = ControlClock(sim, horizon)
        nodes = cfg.ha.nodes
        names = [n.name for n in nodes]
        self.log = log = RunLog(horizon=cfg.duration, res=cfg.output.resolution, node_names=names)
        self.topo = topo = Topology(names, [n.priority for n in nodes], log)
        n_phones = cfg.phones
        reg_cfg = cfg.registrar

        # binding stores: one per node, or one shared by all (the database itself)
        if reg_cfg.data == "shared":
            log.stores = [StoreLog()]
            stores = [Store(0, n_phones, log.stores[0])] * len(nodes)
            log.store_of_node = [0] * len(nodes)
        else:
            log.stores = [StoreLog() for _ in nodes]
            stores = [Store(i, n_phones, log.stores[i]) for i in range(len(nodes))]
            log.store_of_node = list(range(len(nodes)))
        if reg_cfg.persistence == "db_only" and reg_cfg.storage == "shared" and reg_cfg.data != "shared":
            # every node reads and writes the one database: a single live store
            stores = [stores[0]] * len(nodes)
            log.store_of_node = [0] * len(nodes)
            log.stores = [log.stores[0]]

        if reg_cfg.max_contacts is not None and any(cfg.connection_bound(f) for f in cfg.fleets):
            for st in {id(st): st for st in stores}.values():  # each store counts its phones' contacts
                st.contacts = Contacts()

        self.network = net = Network(cfg.network, n_phones, topo=topo, clock=clock, streams=streams, log=log)
        self.registrars = regs = [
            RegistrarNode(i, n.name, reg_cfg, stores[i], log, sim=sim, clock=clock, topo=topo, streams=streams,
                          horizon=horizon)
            for i, n in enumerate(nodes)
        ]
        for r in regs:
            r.peers = [p for p in regs if p is not r]

        # persistent storage (what a restarted or cold-started registrar loads)
        if reg_cfg.persistence != "memory" and reg_cfg.data != "shared":
            if reg_cfg.storage == "shared":
                one = Storage(n_phones)
                for r in regs:
                    r.storage = one
            else:
                for r in regs:
                    r.storage = Storage(n_phones)

        # the database under a shared store (its own replication and failover)
        self.database = None
        if len(log.stores) == 1:
            self.database = Database(cfg.database, stores[0], sim=sim, clock=clock, topo=topo, streams=streams,
                                     log=log)
            for r in regs:
                r.database = self.database

        # the HA stack; its state changes reach the nodes' resources through the node actions
        ha = cfg.ha
        self.vrrp: list = []
        self.checks: list[HealthCheck] = []
        self.actions = NodeActions(topo=topo, clock=clock, registrars=regs, ha=self.vrrp, checks=self.checks,
                                   network=net, database=self.database, ha_cfg=ha, log=log)
        ports = dict(topo=topo, clock=clock, log=log, garp=net.garp, on_change=self.actions.on_ha_change,
                     streams=streams)
        for i, n in enumerate(nodes):
            if ha.kind == "heartbeat":
                inst = HeartbeatInstance(i, n.name, n.priority, ha.heartbeat, actions=self.actions, **ports)
            elif ha.kind == "pacemaker":
                inst = PacemakerInstance(i, n.name, n.priority, ha.corosync, ha.pacemaker, actions=self.actions,
                                         check=regs[i].check_ok, **ports)
            else:
                inst = VrrpInstance(i, n.name, n.priority, ha.vrrp, **ports)
            self.vrrp.append(inst)
        for inst in self.vrrp:
            inst.group = self.vrrp
        if ha.health_check is not None:
            self.checks.extend(
                HealthCheck(i, n.name, ha.health_check, check=regs[i].check_ok, instance=self.vrrp[i], topo=topo,
                            clock=clock, log=log, streams=streams,
                            process=lambda r=regs[i]: r.up or r.starting)  # its process exists (hung too)
                for i, n in enumerate(nodes)
            )

        # the phones: the registrars' replies port
        grow = {id(o): o.grow for o in stores + [r.storage for r in regs] if o is not None}
        if self.database is not None:
            grow[id(self.database)] = self.database.grow
        self.phones = PhoneBank(cfg, cfg.fleets, log, sim=sim, clock=clock, topo=topo, net=net, streams=streams,
                                horizon=horizon, fast_paths=cfg.engine.fast_paths, grow=list(grow.values()))
        self.phones.receivers = [r.receive for r in regs]
        replies = self.phones
        # a registration-caching SBC in front of the VIP: the phones behind it send to it, and the
        # registrars' replies to them pass through it
        self.sbc = None
        behind = np.array([f.server == "sbc" for f in cfg.fleets], dtype=bool)[self.phones.fleet_of]
        if cfg.sbc is not None and behind.any():
            self.sbc = CachingSbc(cfg.sbc, bank=self.phones, grant=reg_cfg.grant, lookup_grace=reg_cfg.lookup_grace,
                                  receivers=self.phones.receivers, net=net, streams=streams, log=log)
            self.phones.sbc = self.sbc
            replies = Upstream(self.phones, self.sbc, behind)
        for r in regs:
            r.replies = replies
        if self.phones.watchers:
            topo.subscribers.append(self.phones.changed)
        # record compaction (folding): the outcomes always; the stores' saves where the metrics
        # never compare bindings one by one (Scenario.folds_saves)
        log.keep_outcomes = not figures_only or self.sbc is not None  # the SBC's start reads the equilibrium outcomes
        if figures_only:
            log.figures_only = True
            self.phones.bulk_bins = False
            for r in regs:
                r.bulk_served_bins = False
        if cfg.engine.compact_records:
            if log.keep_outcomes:
                log.fold_outcomes(self.phones.n)
            if cfg.folds_saves():  # (never with connection-bound fleets: they are the ones with a log.conns)
                for st in log.stores:
                    st.fold(self.phones.n)
        # undisturbed refreshes: a calendar off the heap, applied in bulk where provably exact
        self.phones.bulk_servers = regs
        why = self.phones.bulk_problem()
        if why is None:
            steady = (lambda: vrrp.steady_until(self.vrrp)) if cfg.ha.kind == "keepalived" else None
            bank = self.phones  # released entries call bank.begin as it is then (tests wrap it)
            sim.bulk = Calendar(sim, bank.refresh_width(), lambda p, g: bank.begin(p, g), bank.bulk_step,
                                horizon=horizon, steady=steady)
            self.phones.calendar = sim.bulk
        else:
            self.phones.bulk_off = why

        # the PBX's own registrations to its providers: they follow the node that holds the VIP
        self.trunks = [TrunkRegistration(i, t, topo=topo, sim=sim, streams=streams, log=log)
                       for i, t in enumerate(cfg.trunks)]
        topo.subscribers.extend(t.changed for t in self.trunks)

        self.injector = FaultInjector(cfg, actions=self.actions, clock=clock, topo=topo, streams=streams, log=log)
        self.faults = self.injector.faults

    # ------------------------------------------------------------------ run
    def run(self, progress=None, steps: int = 200) -> RunLog:
        """Run the replication. ``progress(t, transactions)`` is told the simulated time and the
        transactions started so far about ``steps`` times (the loop runs in slices of simulated
        time, which changes no event's order)."""
        cfg = self.cfg
        ha = cfg.ha
        # the HA stack at equilibrium: the highest-priority node holds the VIP
        for check in self.checks:
            check.prime()  # weighted checks' share of the priority at equilibrium
        if ha.kind == "keepalived":
            master = vrrp.start_group(self.vrrp, ha.vrrp, self.streams("vrrp.phase"))
        else:
            period = ha.heartbeat.keepalive if ha.kind == "heartbeat" else ha.vrrp.advert_int
            master = cluster.start_group(self.vrrp, period, self.streams("vrrp.phase"))
        hc = ha.health_check
        for check in self.checks:
            check.start(None if hc.first_check is None else hc.first_check % hc.interval, initial=True)
        if ha.standby == "cold":
            for r in self.registrars:
                if r.index != master:
                    r.up = False  # not running until its node takes over
        for r in self.registrars:
            r.start_timers()
        initial_store = self.registrars[master].store
        gc_on = gc.isenabled()
        gc.disable()  # placing a million phones allocates millions of acyclic objects
        try:
            self.phones.start(cfg.registrar.grant, initial_store, [r.store for r in self.registrars])
        finally:
            if gc_on:
                gc.enable()
        if self.sbc is not None:
            self.sbc.start(initial_store, cfg.fleets)
        self._initial_persistence(master)
        if self.database is not None:
            self.database.sync_initial()
        if cfg.registrar.data == "replicated":
            for r in self.registrars:
                if r.index != master:
                    r.store.bulk_copy_from(initial_store)
        self.injector.start()
        for t in self.trunks:
            t.start()
        self.topo.changed(0.0)
        try:
            if progress is None:
                self.sim.run(until=cfg.duration)
            else:
                dur = float(cfg.duration)
                for k in range(1, steps + 1):
                    t = dur if k == steps else dur * k / steps
                    self.sim.run(until=t)
                    progress(t, self.phones.started)
        except Exception as exc:  # recorded; the caller writes what exists
            self.log.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._finish()
        inexact = self.log.outcomes_inexact + sum(st.inexact for st in self.log.stores)
        if inexact:
            # folding could not represent an out-of-order save or outcome: the same replication
            # again without it (the same draws, so the same run), said in the engine section
            plain = self.cfg.model_copy(update={"engine": self.cfg.engine.model_copy(update={"compact_records": False})})
            again = Model(plain, self.replication, self.seed, figures_only=self.figures_only)
            log = again.run(progress, steps)
            log.engine["records_refolded"] = f"reran without record compaction ({inexact} out-of-order records)"
            self.log = log
        return self.log

    def _initial_persistence(self, master: int) -> None:
        """The master's storage at equilibrium, from its initial bindings and the phones' refresh
        intervals (the registrar decides what its storage held at t=0)."""
        reg = self.registrars[master]
        if reg.storage is None or reg.persist == "db_only":
            return
        log = reg.store.log
        t0 = np.frombuffer(log.t, dtype=np.float64)
        ph = np.frombuffer(log.phone, dtype=np.int64)
        until = np.frombuffer(log.until, dtype=np.float64)
        grant = self.cfg.registrar.grant
        r_fleet = np.array([fp.refresh.interval(grant(fp.expires)) for fp in self.phones.params])
        reg.initial_storage(t0, ph, until, r_fleet[self.phones.fleet_of[ph]])

    def _finish(self) -> None:
        c = self.log.counters
        self.phones.report(c)
        self.log.engine = self.phones.bulk_report()
        log = self.log
        if log.outcome_folding is not None:
            self.log.engine["records_folded"] = log.outcomes_folded + sum(st.folded for st in log.stores)
            log.outcomes_ordered = log.outcomes_inexact == 0  # folding kept each slot's rows in time order
            log.outcome_folding = None  # the per-slot folding state is only needed while running
            for st in log.stores:
                st.folding = None
        if self.database is not None:
            self.database.report(c)
        for r in self.registrars:
            r.report(c)
        if self.sbc is not None:
            self.sbc.report(c)


def run_replication(cfg: Scenario, replication: int, seed: int | None = None) -> RunLog:
    return Model(cfg, replication, seed).run()
