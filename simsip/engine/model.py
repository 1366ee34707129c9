"""One place wires the components of a scenario and runs one replication.

Components own structure (a registrar node has workers and a store, a VRRP instance has a
priority), processes own behaviour, and this module connects them: phones send through the
network to whichever node the VIP's MAC leads to; the node accepts only while its registrar runs,
its link is up and it holds the VIP; faults crash, hang, disconnect and repair; every change of
who serves the VIP is logged so that reachability can be computed after the run.
"""

from __future__ import annotations

import bisect

from simsip.config.schema import Scenario
from simsip.config.schema import Fault
from simsip.engine.cluster import HeartbeatInstance, PacemakerInstance
from simsip.engine.core import Sim
from simsip.engine.database import Database
from simsip.engine.network import Network
from simsip.engine.phones import PhoneBank
from simsip.engine.records import FaultRecord, RunLog, StoreLog
from simsip.engine.registrar import RegistrarNode, Storage, Store
from simsip.engine.vrrp import DOWN, MASTER, HealthCheck, VrrpInstance
from simsip.rng import Streams


class Model:
    """A built scenario for one replication (``run`` it once)."""

    def __init__(self, cfg: Scenario, replication: int = 0, seed: int | None = None):
        self.cfg = cfg
        self.replication = replication
        self.seed = cfg.seed if seed is None else seed
        self.streams = Streams(self.seed, replication)
        self.sim = Sim()
        nodes = cfg.ha.nodes
        self.log = RunLog(horizon=cfg.duration, res=cfg.output.resolution, node_names=[n.name for n in nodes])
        n_phones = cfg.phones
        # binding stores: one per node, or one shared by all
        if cfg.registrar.data == "shared":
            self.log.stores = [StoreLog()]
            shared = Store(0, n_phones, self.log.stores[0])
            stores = [shared] * len(nodes)
            self.log.store_of_node = [0] * len(nodes)
        else:
            self.log.stores = [StoreLog() for _ in nodes]
            stores = [Store(i, n_phones, self.log.stores[i]) for i in range(len(nodes))]
            self.log.store_of_node = list(range(len(nodes)))
        self.node_up = [True] * len(nodes)
        # (time, node, available) whenever a registrar starts or stops answering (node, link,
        # process, hang): which nodes an incoming call can be looked up on (calls.lookup)
        self.log.availability = []
        self._avail = [None] * len(nodes)
        self._partitions: set[tuple[int, int]] = set()
        self.network = Network(self, cfg.network, n_phones)
        self.registrars = [RegistrarNode(self, i, n.name, cfg.registrar, stores[i], self.log) for i, n in enumerate(nodes)]
        ha = cfg.ha
        if ha.kind == "heartbeat":
            self.vrrp = [HeartbeatInstance(self, i, n.name, n.priority, ha.heartbeat) for i, n in enumerate(nodes)]
        elif ha.kind == "pacemaker":
            self.vrrp = [PacemakerInstance(self, i, n.name, n.priority, ha.corosync, ha.pacemaker) for i, n in enumerate(nodes)]
        else:
            self.vrrp = [VrrpInstance(self, i, n.name, n.priority, ha.vrrp) for i, n in enumerate(nodes)]
        self._fenced: set[int] = set()
        for reg, v in zip(self.registrars, self.vrrp):
            reg.vrrp = v
        # persistent storage (what a restarted or cold-started registrar loads)
        reg_cfg = cfg.registrar
        if reg_cfg.persistence != "memory" and reg_cfg.data != "shared":
            if reg_cfg.storage == "shared":
                shared_storage = Storage(n_phones)
                for r in self.registrars:
                    r.storage = shared_storage
            else:
                for r in self.registrars:
                    r.storage = Storage(n_phones)
            if reg_cfg.persistence == "db_only" and reg_cfg.storage == "shared":
                # every node reads and writes the one database: a single live store
                for r in self.registrars:
                    r.store = stores[0]
                self.log.store_of_node = [0] * len(nodes)
                self.log.stores = [self.log.stores[0]]
        # the database under a shared store (its own replication and failover)
        self.database = None
        if self.log.store_of_node and len(self.log.stores) == 1:
            self.database = Database(self, cfg.database, self.registrars[0].store)
        hc = cfg.ha.health_check
        self.checks = [HealthCheck(self, i, hc) for i in range(len(nodes))] if hc is not None else []
        self.phones = PhoneBank(self, cfg.fleets, self.log)
        self._serving = None
        self._node_epoch = [0] * len(nodes)
        self.faults = list(cfg.faults) + self._draw_random_faults()
        # times at which a registrar may die, hang or restart (scheduled faults and repairs);
        # before the next of them a REGISTER's completion cannot be disturbed and is applied at once
        self._disruptions = sorted(
            [f.at for f in self.faults] + [f.at + (f.repair_after or 0.0) for f in self.faults]
        )
        self._disruptions.append(cfg.duration)  # nothing is applied ahead past the end of the run
        self.calm_until = self._disruptions[0]
        self.disturbed = False  # set at the first fault: from then on every arrival is an event

    def _draw_random_faults(self) -> list[Fault]:
        """MTBF/MTTR faults, drawn up front so their times are known like scheduled ones."""
        out: list[Fault] = []
        names = [n.name for n in self.cfg.ha.nodes]
        for k, rf in enumerate(self.cfg.random_faults):
            gen = self.streams.generator(f"faults.random.{k}")
            t = 0.0
            while True:
                t += float(gen.exponential(rf.mtbf))
                if t >= self.cfg.duration:
                    break
                repair = float(gen.exponential(rf.mttr))
                node = names[int(gen.integers(len(names)))] if rf.node == "any" else rf.node
                out.append(Fault(kind=rf.kind, node=node, at=t, repair_after=repair))
                t += repair  # the next failure of this kind starts counting after the repair
        return out

    # ------------------------------------------------------------------ topology queries
    def node_index(self, name: str) -> int:
        for i, r in enumerate(self.registrars):
            if r.name == name:
                return i
        raise KeyError(name)

    def epoch_of(self, node: int) -> int:
        return self._node_epoch[node]

    def link_ok(self, node: int) -> bool:
        return self.node_up[node] and self.registrars[node].link

    def link_up(self, a: int, b: int) -> bool:
        """Can VRRP adverts pass between nodes a and b?"""
        return self.link_ok(a) and self.link_ok(b) and (min(a, b), max(a, b)) not in self._partitions

    path_up = link_up

    def vip_owner(self) -> int:
        """The node that answers ARP for the VIP: an up master (the highest priority if several)."""
        best, prio = -1, -1
        for v in self.vrrp:
            if v.state == MASTER and v.priority > prio and self.link_ok(v.index):
                best, prio = v.index, v.priority
        return best

    def serving_node(self) -> int:
        """The node that answers calls routed to the VIP (the ingress's ARP entry): -1 = none."""
        n = self.network.ingress_mac
        if n >= 0 and self.vrrp[n].state == MASTER and self.registrars[n].up and self.link_ok(n) and self.registrars[n].phone_link:
            return n
        return -1

    def note_availability(self, t: float) -> None:
        """Log every registrar whose availability (up, link up, process answering) changed."""
        for i, r in enumerate(self.registrars):
            a = bool(self.node_up[i] and r.link and r.up and not r.hung)
            if a != self._avail[i]:
                self._avail[i] = a
                self.log.availability.append((t, i, a))

    def update_serving(self, t: float) -> None:
        self.note_availability(t)
        if self.phones.watchers:  # something changed: phones with keep-alives check their flows
            self.phones.changed(t)
        s = self.serving_node()
        if s != self._serving:
            self._serving = s
            self.log.serving.append((t, s))

    def vrrp_changed(self, node: int, old: str, new: str, t: float) -> None:
        if old == MASTER and new != MASTER:
            self.network.vip_released(node, t)
            if self.cfg.ha.standby == "cold" and self.registrars[node].up:
                self.registrars[node].crash(t)  # the resource is stopped where it no longer runs
        if new == MASTER and self.cfg.ha.standby == "cold" and self.node_up[node]:
            self.registrars[node].start_process(t)
        self.update_serving(t)

    def restart_registrar(self, node: int, t_start: float) -> None:
        """Stop the registrar (if running) and start it again at ``t_start`` (pacemaker recovery)."""
        reg = self.registrars[node]
        if reg.up:
            reg.crash(self.sim.now)
        self.sim.call_at(max(t_start, self.sim.now), reg.start_process, max(t_start, self.sim.now))

    def fence_node(self, node: int, t: float) -> None:
        """A fence (STONITH) powers ``node`` off; it comes back when its fault is repaired."""
        if self.node_up[node]:
            self._fenced.add(node)
            self.crash_node(node, t)

    def _corosync_lost(self, node: int, t: float, others: list[int] | None = None) -> None:
        """Pacemaker: the others notice ``node`` left the membership after token + consensus."""
        if self.cfg.ha.kind != "pacemaker":
            return
        det = self.cfg.ha.corosync.detection(len(self.vrrp))
        for o in (others if others is not None else range(len(self.vrrp))):
            if o != node:
                self.sim.call_at(t + det, self.vrrp[o].lost_contact, node)

    # ------------------------------------------------------------------ faults
    def _advance_calm(self, t: float) -> None:
        k = bisect.bisect_right(self._disruptions, t)
        self.calm_until = self._disruptions[k] if k < len(self._disruptions) else float("inf")

    def _resolve(self, target: str) -> int:
        if target == "master":
            return self.vip_owner()
        if target == "backup":
            return next((v.index for v in self.vrrp if v.state not in (MASTER, DOWN)), -1)
        return self.node_index(target)

    def crash_node(self, node: int, t: float) -> None:
        self._node_epoch[node] += 1
        self.node_up[node] = False
        self.registrars[node].crash(t)
        self.vrrp[node].crash()
        if self.checks:
            self.checks[node].stop()
        self.network.vip_released(node, t)
        if node not in self._fenced:
            self._corosync_lost(node, t)
        self.update_serving(t)

    def repair_node(self, node: int, t: float) -> None:
        self._node_epoch[node] += 1
        self.node_up[node] = True
        self.registrars[node].link = True
        self._fenced.discard(node)
        if self.cfg.ha.standby != "cold":
            self.registrars[node].start_process(t)
        self.vrrp[node].start(as_master=False)
        if self.checks:
            self.checks[node].start()
        self.update_serving(t)

    def _apply(self, kind: str, node: int, t: float) -> None:
        reg = self.registrars[node] if node >= 0 else None
        if kind == "node_crash":
            self.crash_node(node, t)
        elif kind in ("process_crash", "process_restart"):
            reg.crash(t)
        elif kind == "process_hang":
            reg.hung = True
        elif kind == "link_down":
            reg.link = False
            if self.cfg.ha.kind == "keepalived":
                self.vrrp[node].fault("interface")  # keepalived tracks its interface
            self.network.vip_released(node, t)
            self._corosync_lost(node, t)
        elif kind == "phone_link_down":
            reg.phone_link = False
        elif kind == "db_crash":
            if self.database is not None:
                self.database.crash_primary(t)
        elif kind == "db_replica_down":
            if self.database is not None:
                self.database.replica_down(t)
        elif kind == "partition":
            n = len(self.vrrp)
            self._partitions |= {(a, b) for a in range(n) for b in range(a + 1, n)}
            for a in range(n):  # every side loses every other
                self._corosync_lost(a, t, others=[b for b in range(n) if b != a and self.node_up[b]])
        self.update_serving(t)

    def _repair(self, kind: str, node: int, t: float) -> None:
        reg = self.registrars[node] if node >= 0 else None
        if kind == "node_crash":
            self.repair_node(node, t)
        elif kind in ("process_crash", "process_restart", "process_hang"):
            if self.node_up[node] and (self.cfg.ha.standby != "cold" or self.vrrp[node].state == MASTER):
                if reg.up:
                    reg.crash(t)  # a hung registrar is repaired by restarting it
                reg.start_process(t)
        elif kind == "link_down":
            reg.link = True
            if node in self._fenced:
                self.repair_node(node, t)
            elif self.cfg.ha.kind == "keepalived":
                self.vrrp[node].clear_fault("interface")
        elif kind == "phone_link_down":
            reg.phone_link = True
        elif kind == "db_crash":
            if self.database is not None:
                self.database.repair_primary(t)
        elif kind == "db_replica_down":
            if self.database is not None:
                self.database.replica_repaired(t)
        elif kind == "partition":
            self._partitions.clear()
            for f in sorted(self._fenced):
                self.repair_node(f, t)  # the fenced side reboots and rejoins
        self.log.repairs.append((t, reg.name if reg is not None else "", kind))
        self.update_serving(t)

    def _fault_process(self, index: int, fault):
        env = self.sim.env
        if fault.at > env.now:
            yield env.timeout(fault.at - env.now)
        cluster_wide = fault.kind in ("partition", "db_crash", "db_replica_down")
        node = -1 if cluster_wide else self._resolve(fault.node)
        name = self.registrars[node].name if node >= 0 else ("*" if cluster_wide else "")
        rec = FaultRecord(index=index, kind=fault.kind, node=name, time=env.now)
        self.log.faults.append(rec)
        self.disturbed = True
        self._advance_calm(env.now)
        if not cluster_wide and (node < 0 or not self.node_up[node]):
            return  # nothing to break (no such node up): recorded, no effect
        self._apply(fault.kind, node, env.now)
        repair = fault.repair_after
        if repair is None and fault.kind == "process_restart":
            repair = 0.0
        if repair is not None:
            if repair > 0:
                yield env.timeout(repair)
            self._advance_calm(env.now)
            rec.repair_time = env.now
            self._repair(fault.kind, node, env.now)

    # ------------------------------------------------------------------ run
    def run(self) -> RunLog:
        cfg = self.cfg
        env = self.sim.env
        vcfg = cfg.ha.vrrp
        # VRRP at equilibrium: the highest priority node is master, adverts at a random phase
        order = sorted(range(len(self.vrrp)), key=lambda i: -self.vrrp[i].priority)
        master = order[0]
        period = cfg.ha.heartbeat.keepalive if cfg.ha.kind == "heartbeat" else vcfg.advert_int
        if vcfg.first_advert is not None and cfg.ha.kind == "keepalived":
            first = vcfg.first_advert % period
        else:
            first = self.streams("vrrp.phase").random() * period
        last_advert = first - period
        self.vrrp[master].start(as_master=True, last_advert=last_advert)
        for i in order[1:]:
            v = self.vrrp[i]
            if cfg.ha.kind == "keepalived":
                v.start(as_master=False)
                v.down_deadline = last_advert + v.mdi
            else:  # already a member of the running cluster
                v.start(as_master=False, last_advert=last_advert)
        first_check = cfg.ha.health_check.first_check if cfg.ha.health_check is not None else None
        for hc in self.checks:
            hc.start(None if first_check is None else first_check % cfg.ha.health_check.interval)
        if cfg.ha.standby == "cold":
            for i in order[1:]:
                self.registrars[i].up = False  # not running until its node takes over
        for r in self.registrars:
            r.start_timers()
        initial_store = self.registrars[master].store
        import gc

        gc_on = gc.isenabled()
        gc.disable()  # placing a million phones allocates millions of acyclic objects
        try:
            self.phones.start(cfg.registrar.grant, initial_store)
        finally:
            if gc_on:
                gc.enable()
        self._initial_persistence(master)
        if self.database is not None:
            self.database.sync_initial()
        if cfg.registrar.data == "replicated":
            for r in self.registrars:
                if r is not self.registrars[master]:
                    r.store.bulk_copy_from(initial_store)
        for i, f in enumerate(self.faults):
            env.process(self._fault_process(i, f))
        self.update_serving(0.0)
        try:
            self.sim.run(until=cfg.duration)
        except Exception as exc:  # recorded; the caller writes what exists
            self.log.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._finish()
        return self.log

    def _initial_persistence(self, master: int) -> None:
        """At equilibrium the storage holds what the master persisted: everything (write-through,
        db_only) or, with write-back, each phone's binding as of the last flush before t=0."""
        reg = self.registrars[master]
        if reg.storage is None or reg.persist == "db_only":
            return
        import numpy as np

        log = reg.store.log
        t0 = np.frombuffer(log.t, dtype=np.float64)
        ph = np.frombuffer(log.phone, dtype=np.int64)
        until = np.frombuffer(log.until, dtype=np.float64)
        if reg.persist == "write_back":
            # the last flush before t=0 came at a uniform phase of the timer; a phone refreshed
            # after it is stored with its previous binding (one refresh interval older)
            last_flush = -self.streams("registrar.initial_flush").random() * self.cfg.registrar.flush_interval
            fleet_of = self.phones.fleet_of
            r_of = np.array([fp.refresh.interval(self.cfg.registrar.grant(fp.expires)) for fp in self.phones.params])[fleet_of[ph]]
            until = np.where(t0 <= last_flush, until, until - r_of)
        st = reg.storage.until
        for p, u in zip(ph.tolist(), until.tolist()):
            st[p] = u

    def _finish(self) -> None:
        ph = self.phones
        c = self.log.counters
        c["transactions_started"] = ph.started
        c["transactions_succeeded"] = ph.succeeded
        c["transactions_failed"] = ph.failed
        c["transactions_timed_out"] = ph.timed_out
        c["transactions_open"] = sum(1 for x in ph.tx if x >= 0)
        c["phones_gave_up"] = ph.gave_up
        c["stray_responses"] = ph.stray
        if self.database is not None:
            c["db_writes_lost"] = self.database.lost_writes
            c["db_writes_failed"] = self.database.failed_writes
        for r in self.registrars:
            c[f"served_{r.name}"] = r.served
            c[f"rejected_{r.name}"] = r.rejected
            c[f"loaded_{r.name}"] = r.loaded
            c[f"unflushed_lost_{r.name}"] = r.unflushed_lost
            if r.replicated:
                c[f"replicas_sent_{r.name}"] = r.replicas_sent
                c[f"replicas_lost_{r.name}"] = r.replicas_lost


def run_replication(cfg: Scenario, replication: int, seed: int | None = None) -> RunLog:
    return Model(cfg, replication, seed).run()
