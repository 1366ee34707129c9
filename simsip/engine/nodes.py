"""What happens to a node: the actions faults, repairs and cluster managers take on it.

A node is a machine with a registrar process, an HA daemon (keepalived, heartbeat or a pacemaker
member), maybe a health check, and a network link. Crashing it stops all of them at once and
bumps its boot epoch (every timer and connection of the old boot is void); the VIP it held is
released, so hosts that never hear the new master's GARPs are orphaned; a pacemaker cluster
notices the lost member after the corosync detection time. Repairing it boots everything again —
the HA daemon as a backup, the registrar unless it is a cold standby. A fence (STONITH) is a crash
the cluster orders. A process fault touches the registrar only; a link fault the node's link (and
keepalived's interface tracking); a partition every pair of nodes. Stopping the HA daemon alone
(``stop_ha``) leaves the node and its registrar running.

:class:`NodeActions` is the one place these effects are spelled out; the fault table
(:mod:`simsip.faults`) maps each fault kind's apply and repair onto them, cluster managers fence
and restart through them, and HA state changes reach the node's resources through
:meth:`NodeActions.on_ha_change` (where the VIP is released and a cold standby's registrar stops
or starts). :class:`FaultInjector` is the SimPy process per fault: it waits for the fault's time,
resolves ``master``/``backup``, records it, applies it and, after ``repair_after``, repairs it.
"""

from __future__ import annotations

from simsip import faults as fault_table
from simsip.config.schema import Fault
from simsip.engine.records import FaultRecord
from simsip.engine.topology import DOWN, MASTER


class NodeActions:
    def __init__(self, *, topo, clock, registrars, ha, checks, network, database, ha_cfg, log):
        self.topo = topo
        self.clock = clock
        self.registrars = registrars
        self.ha = ha
        self.checks = checks
        self.network = network
        self.database = database
        self.ha_cfg = ha_cfg
        self.log = log
        self.cold = ha_cfg.standby == "cold"

    # ------------------------------------------------------------------ HA state → resources
    def on_ha_change(self, node: int, old: str, new: str, t: float) -> None:
        """The HA daemon on ``node`` went from ``old`` to ``new``."""
        if old == MASTER and new != MASTER:
            self.network.vip_released(node, t)
            if self.cold:
                self.registrars[node].stop_for_standby(t)  # the resource is stopped where it no longer runs
        if new == MASTER and self.cold and self.topo.node_up[node]:
            self.registrars[node].start_process(t)
        self.topo.changed(t)

    # ------------------------------------------------------------------ power
    def crash_node(self, node: int, t: float) -> None:
        topo = self.topo
        topo.epoch[node] += 1
        topo.node_up[node] = False
        self.registrars[node].crash(t)
        self.ha[node].crash()
        if self.checks:
            self.checks[node].stop()
        self.network.vip_released(node, t)
        if node not in topo.fenced:
            self._corosync_lost(node, t)
        topo.changed(t)

    def repair_node(self, node: int, t: float) -> None:
        topo = self.topo
        topo.epoch[node] += 1
        topo.node_up[node] = True
        topo.link[node] = True
        topo.fenced.discard(node)
        if not self.cold:
            self.registrars[node].start_process(t)
        self.ha[node].start(as_master=False)
        if self.checks:
            self.checks[node].start()
        topo.changed(t)

    def fence_node(self, node: int, t: float) -> None:
        """A fence (STONITH) powers ``node`` off; it comes back when its fault is repaired."""
        if self.topo.node_up[node]:
            self.topo.fenced.add(node)
            self.crash_node(node, t)

    # ------------------------------------------------------------------ the HA daemon alone
    def stop_ha(self, node: int, t: float) -> None:
        """The HA daemon is stopped cleanly (SIGTERM); the node and its registrar keep running.
        keepalived's track scripts stop with it."""
        if self.checks:
            self.checks[node].stop()
        self.ha[node].stop()
        self.topo.changed(t)

    def start_ha(self, node: int, t: float) -> None:
        """The HA daemon is started again on a running node: as a backup, like after a boot."""
        inst = self.ha[node]
        if getattr(inst, "leaving", False):
            inst.rejoin = True  # pacemaker is still stopping the resources: rejoin when it is done
            return
        if not self.topo.node_up[node] or inst.state != DOWN:
            return
        self.ha[node].start(as_master=False)
        if self.checks:
            self.checks[node].start()
        self.topo.changed(t)

    # ------------------------------------------------------------------ the registrar process
    def stop_registrar(self, node: int, t: float) -> None:
        self.registrars[node].crash(t)
        self.topo.changed(t)

    def hang_registrar(self, node: int, t: float) -> None:
        self.registrars[node].hang(t)
        self.topo.changed(t)

    def restart_registrar_now(self, node: int, t: float) -> None:
        """An operator (or systemd) restarts the registrar; a hung one is killed first. A cold
        standby's registrar is started only where the HA stack holds the resources."""
        reg = self.registrars[node]
        if self.topo.node_up[node] and (not self.cold or self.ha[node].state == MASTER):
            if reg.up:
                reg.crash(t)
            reg.start_process(t)
        self.topo.changed(t)

    def restart_registrar(self, node: int, t_start: float) -> None:
        """Stop the registrar (if running) and start it again at ``t_start`` (pacemaker recovery)."""
        reg = self.registrars[node]
        now = self.clock.now
        if reg.up:
            reg.crash(now)
        at = max(t_start, now)
        self.clock.call_at(at, reg.start_process, at)

    # ------------------------------------------------------------------ links
    def link_down(self, node: int, t: float) -> None:
        self.topo.link[node] = False
        if self.ha_cfg.kind == "keepalived":
            self.ha[node].fault("interface")  # keepalived tracks its interface
        self.network.vip_released(node, t)
        self._corosync_lost(node, t)
        self.topo.changed(t)

    def link_up(self, node: int, t: float) -> None:
        self.topo.link[node] = True
        if node in self.topo.fenced:
            self.repair_node(node, t)
        elif self.ha_cfg.kind == "keepalived":
            self.ha[node].clear_fault("interface")
        self.topo.changed(t)

    def phone_link(self, node: int, up: bool, t: float) -> None:
        self.topo.phone_link[node] = up
        self.topo.changed(t)

    def partition(self, t: float) -> None:
        topo = self.topo
        n = topo.n
        topo.partitions |= {(a, b) for a in range(n) for b in range(a + 1, n)}
        for a in range(n):  # every side loses every other
            self._corosync_lost(a, t, others=[b for b in range(n) if b != a and topo.node_up[b]])
        topo.changed(t)

    def heal(self, t: float) -> None:
        self.topo.partitions.clear()
        for f in sorted(self.topo.fenced):
            self.repair_node(f, t)  # the fenced side reboots and rejoins
        self.topo.changed(t)

    def _corosync_lost(self, node: int, t: float, others: list[int] | None = None) -> None:
        """Pacemaker: the others notice ``node`` left the membership after token + consensus."""
        if self.ha_cfg.kind != "pacemaker":
            return
        det = self.ha_cfg.corosync.detection(len(self.ha))
        for o in (others if others is not None else range(len(self.ha))):
            if o != node:
                self.clock.call_at(t + det, self.ha[o].lost_contact, node)

    def cut_sync(self, node: int, t: float, fraction: float | None) -> None:
        """A partial_sync fault: ``node``'s full sync is cut after ``fraction`` of it (None: lifted)."""
        self.registrars[node].cut_sync(t, fraction)

    # ------------------------------------------------------------------ the database
    def db_crash(self, t: float) -> None:
        if self.database is not None:
            self.database.crash_primary(t)
        self.topo.changed(t)

    def db_repair(self, t: float) -> None:
        if self.database is not None:
            self.database.repair_primary(t)
        self.topo.changed(t)

    def db_replica_down(self, t: float) -> None:
        if self.database is not None:
            self.database.replica_down(t)
        self.topo.changed(t)

    def db_replica_up(self, t: float) -> None:
        if self.database is not None:
            self.database.replica_repaired(t)
        self.topo.changed(t)

    # ------------------------------------------------------------------ resolving a fault's target
    def resolve(self, target: str) -> int:
        if target == "master":
            return self.topo.vip_owner()
        if target == "backup":
            return next((v.index for v in self.ha if v.state not in (MASTER, DOWN)), -1)
        return self.topo.index(target)


class FaultInjector:
    """Scheduled and random faults, each a SimPy process on the control clock."""

    def __init__(self, cfg, *, actions: NodeActions, clock, topo, streams, log):
        self.cfg = cfg
        self.actions = actions
        self.clock = clock
        self.topo = topo
        self.log = log
        self.faults = list(cfg.faults) + self._draw_random_faults(streams)

    def _draw_random_faults(self, streams) -> list[Fault]:
        """MTBF/MTTR faults, drawn up front so their times are known like scheduled ones."""
        out: list[Fault] = []
        names = self.topo.names
        for k, rf in enumerate(self.cfg.random_faults):
            gen = streams.generator(f"faults.random.{k}")
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

    def start(self) -> None:
        for i, f in enumerate(self.faults):
            self.clock.process(self._run(i, f))

    def _run(self, index: int, fault: Fault):
        clock = self.clock
        if fault.at > clock.now:
            yield clock.timeout(fault.at - clock.now)
        kind = fault_table.kind(fault.kind)
        now = clock.now
        node = -1 if kind.cluster_wide else self.actions.resolve(fault.node)
        name = self.topo.names[node] if node >= 0 else ("*" if kind.cluster_wide else "")
        rec = FaultRecord(index=index, kind=fault.kind, node=name, time=now)
        self.log.faults.append(rec)
        if not kind.cluster_wide and (node < 0 or (not self.topo.node_up[node] and not kind.arms)):
            return  # nothing to break (no such node up): recorded, no effect
        kind.apply(self.actions, node, now, **{p: getattr(fault, p) for p in kind.params})
        repair = fault.repair_after if fault.repair_after is not None else kind.default_repair
        if repair is not None:
            if repair > 0:
                yield clock.timeout(repair)
            now = clock.now
            rec.repair_time = now
            kind.repair(self.actions, node, now)
            self.log.repairs.append((now, self.topo.names[node] if node >= 0 else "", fault.kind))
            self.topo.changed(now)
