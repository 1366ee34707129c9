"""Cluster managers that move the VIP as a resource: Linux-HA heartbeat and corosync/pacemaker.

Unlike VRRP, where the backup simply claims the address, these stacks agree on membership first
and then *start resources* (the IP address, and in a cold standby the registrar) on a survivor.

* **heartbeat** (``ha.cf``): every node sends a heartbeat each ``keepalive``; a peer silent for
  ``deadtime`` is declared dead, and the best surviving node takes the resources over (running the
  resource scripts takes ``takeover_time``). Detection is ``deadtime`` after the peer's *last*
  heartbeat. At start-up ``initdead`` applies. With ``auto_failback`` the resources go back to the
  preferred node when it returns. There is no fencing: a partition gives two active nodes.
* **pacemaker on corosync**: a node that stops passing the totem token is noticed after
  ``token`` (+ ``token_coefficient`` per node beyond two) and ``consensus``, plus forming the new
  membership. The survivors then **fence** the lost node (``fence_time``, failing past
  ``stonith_timeout`` and retried), and only then start the resources. A partition in a two-node
  cluster becomes a fence race that one side wins — the other is powered off. A failed registrar
  *process* is found by the resource monitor (every ``monitor_interval``) and restarted in place,
  or moved after ``migration_threshold`` failures. Without ``resource_stickiness`` the resources
  return to the preferred node when it rejoins (stop, then start: the failback outage).

Instances expose the same interface as :class:`~simsip.engine.vrrp.VrrpInstance` (``state``,
``start``, ``crash``, ``fault``, ``clear_fault``) so the rest of the model is stack-agnostic.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import simpy

from simsip.engine.dists import sampler
from simsip.engine.vrrp import BACKUP, DOWN, FAULT, MASTER, HaInstance

if TYPE_CHECKING:  # pragma: no cover
    from simsip.engine.model import Model

IPADDR2_ARPS = 5  # IPaddr2 arp_count (5 ARPs 200 ms apart)


class _ClusterInstance(HaInstance):
    """Common life cycle of a cluster-managed node."""

    stack = "cluster"

    def __init__(self, model: "Model", index: int, name: str, priority: int):
        super().__init__(model, index, name, priority)
        self.pending = False  # a takeover is under way on this node

    # -- shared helpers ---------------------------------------------------------------
    def _begin(self, as_master: bool) -> float:
        """Join the cluster now: holding the resources (already elected) or standing by."""
        now = self.env.now
        self.fault_reasons.clear()
        self._set(MASTER if as_master else BACKUP)
        if as_master:
            self.model.network.garp(self.index, now, IPADDR2_ARPS, initial=True)
        return now

    def _peers(self):
        return [p for p in self.model.vrrp if p is not self]

    def _acquire(self, delay: float) -> None:
        """Start the resources here after ``delay``: the IP comes up with its ARP burst."""
        if self.pending or self.state == MASTER:
            return
        self.pending = True
        epoch = self.model.epoch_of(self.index)

        def done() -> None:
            self.pending = False
            if self.model.epoch_of(self.index) != epoch or self.state in (DOWN, FAULT):
                return
            self._set(MASTER)
            self.model.network.garp(self.index, self.env.now, IPADDR2_ARPS)

        self.model.sim.call_at(self.env.now + delay, done)

    def _release(self) -> None:
        if self.state == MASTER:
            self._set(BACKUP)

    def crash(self) -> None:
        self._stop()
        self.pending = False
        self._set(DOWN)

    def _stop(self) -> None:  # pragma: no cover - overridden
        pass

    def fault(self, reason: str) -> None:
        if self.state == DOWN:
            return
        self.fault_reasons.add(reason)
        if self.state != FAULT:
            was = self.state == MASTER
            self._set(FAULT)
            if was:
                self._resources_freed()

    def clear_fault(self, reason: str) -> None:
        self.fault_reasons.discard(reason)
        if self.state == FAULT and not self.fault_reasons:
            self._set(BACKUP)
            self._rejoined()

    def _resources_freed(self) -> None:  # pragma: no cover - overridden
        pass

    def _rejoined(self) -> None:  # pragma: no cover - overridden
        pass

    def best_candidate(self, alive: list["_ClusterInstance"]) -> "_ClusterInstance | None":
        ok = [n for n in alive if n.state in (BACKUP, MASTER) and self.model.registrars[n.index].link]
        return max(ok, key=lambda n: n.priority) if ok else None


class HeartbeatInstance(_ClusterInstance):
    """One node running Linux-HA heartbeat."""

    stack = "heartbeat"

    def __init__(self, model: "Model", index: int, name: str, priority: int, cfg):
        super().__init__(model, index, name, priority)
        self.cfg = cfg
        self.heard: dict[int, float] = {}
        self.deadline: dict[int, float] = {}
        self.procs: list[simpy.Process] = []
        self.takeover = sampler(cfg.takeover_time, model.streams(f"heartbeat.{name}.takeover"))
        self.rnd = model.streams(f"heartbeat.{name}.phase")

    def start(self, as_master: bool = False, last_advert: float | None = None) -> None:
        now = self._begin(as_master)
        wait = self.cfg.deadtime if (as_master or last_advert is not None) else self.cfg.initial_dead
        for p in self._peers():
            self.heard[p.index] = now
            self.deadline[p.index] = now + wait
        phase = self.rnd.random() * self.cfg.keepalive if last_advert is None else (last_advert % self.cfg.keepalive)
        self.procs = [self.env.process(self._beat(phase)), self.env.process(self._watch())]

    def _stop(self) -> None:
        for pr in self.procs:
            if pr.is_alive and pr is not self.env.active_process:
                pr.interrupt("stop")
        self.procs = []

    def _beat(self, phase: float):
        try:
            yield self.env.timeout(phase)
            while True:
                now = self.env.now
                for p in self._peers():
                    if p.state != DOWN and self.model.link_up(self.index, p.index):
                        self.model.sim.call_at(now, p.on_heartbeat, self.index)
                yield self.env.timeout(self.cfg.keepalive)
        except simpy.Interrupt:
            return

    def _watch(self):
        try:
            while True:
                nxt = min(self.deadline.values(), default=math.inf)
                if nxt == math.inf:
                    yield self.env.timeout(self.cfg.keepalive)
                    continue
                if nxt > self.env.now:
                    yield self.env.timeout(nxt - self.env.now)
                now = self.env.now
                for peer, dl in list(self.deadline.items()):
                    if dl <= now:
                        self.deadline[peer] = math.inf
                        self._peer_dead(peer)
        except simpy.Interrupt:
            return

    def on_heartbeat(self, src: int) -> None:
        if self.state == DOWN:
            return
        now = self.env.now
        was_dead = self.deadline.get(src, math.inf) == math.inf
        self.heard[src] = now
        self.deadline[src] = now + self.cfg.deadtime
        peer = self.model.vrrp[src]
        if self.state == MASTER and peer.state == MASTER and peer.priority > self.priority:
            self._release()  # two active nodes meet again: the less preferred gives up
        elif (
            was_dead
            and self.state == MASTER
            and self.cfg.auto_failback
            and peer.state == BACKUP
            and peer.priority > self.priority
        ):
            self._release()  # auto_failback: hand the resources back to the preferred node
            peer._acquire(peer.takeover())

    def _alive_view(self) -> list["HeartbeatInstance"]:
        out = [self] if self.state != DOWN else []
        for p in self._peers():
            if self.deadline.get(p.index, math.inf) != math.inf:
                out.append(p)
        return out

    def _peer_dead(self, peer: int) -> None:
        if self.state in (DOWN, FAULT):
            return
        self.model.log.checks.append((self.env.now, self.name, f"peer {self.model.vrrp[peer].name} dead"))
        alive = self._alive_view()
        holder = any(p.state == MASTER for p in alive if p is not self)
        if self.state != MASTER and not holder and self.best_candidate(alive) is self:
            self._acquire(self.takeover())

    def _resources_freed(self) -> None:
        # hb_standby: the peers take over at once
        for p in self._peers():
            if p.state == BACKUP and self.model.link_up(self.index, p.index):
                alive = p._alive_view()
                if p.best_candidate([n for n in alive if n is not self]) is p:
                    p._acquire(p.takeover())

    def _rejoined(self) -> None:
        pass


class PacemakerInstance(_ClusterInstance):
    """One node of a corosync/pacemaker cluster (the registrar and the VIP are resources)."""

    stack = "pacemaker"

    def __init__(self, model: "Model", index: int, name: str, priority: int, cfg_cs, cfg_pm):
        super().__init__(model, index, name, priority)
        self.cs = cfg_cs
        self.pm = cfg_pm
        self.fence = sampler(cfg_pm.fence_time, model.streams(f"pacemaker.{name}.fence"))
        self.stop_time = sampler(cfg_pm.stop_time, model.streams(f"pacemaker.{name}.stop"))
        self.rnd = model.streams(f"pacemaker.{name}.monitor")
        self.monitor: simpy.Process | None = None
        self.failcount = 0

    def start(self, as_master: bool = False, last_advert: float | None = None) -> None:
        now = self._begin(as_master)
        self.monitor = self.env.process(self._monitor(self.rnd.random() * self.pm.monitor_interval))
        if last_advert is None:  # a (re)joining node: membership forms, the cluster may move resources back
            self.model.sim.call_at(now + self.cs.token + self.cs.join, self._joined)

    def _stop(self) -> None:
        if self.monitor is not None and self.monitor.is_alive and self.monitor is not self.env.active_process:
            self.monitor.interrupt("stop")
        self.monitor = None

    # -- membership -------------------------------------------------------------------
    def lost_contact(self, other: int) -> None:
        """Corosync noticed that ``other`` left the membership (token loss + consensus)."""
        if self.state in (DOWN,):
            return
        o = self.model.vrrp[other]
        if self.pm.stonith_enabled:
            self._fence(other, attempt=0)
        else:
            self._recover_resources(exclude=other)
        del o

    def _fence(self, other: int, attempt: int) -> None:
        t = self.fence()
        ok = t <= self.pm.stonith_timeout
        t = min(t, self.pm.stonith_timeout)
        epoch = self.model.epoch_of(self.index)

        def done() -> None:
            if self.model.epoch_of(self.index) != epoch or self.state == DOWN:
                return
            if not ok:
                self.model.log.checks.append((self.env.now, self.name, f"fence {self.model.vrrp[other].name} failed"))
                self._fence(other, attempt + 1)
                return
            self.model.log.checks.append((self.env.now, self.name, f"fenced {self.model.vrrp[other].name}"))
            self.model.fence_node(other, self.env.now)
            self._recover_resources(exclude=other)

        self.model.sim.call_at(self.env.now + t, done)

    def _recover_resources(self, exclude: int) -> None:
        alive = [n for n in self.model.vrrp if n.index != exclude and n.state != DOWN and self.model.link_up(self.index, n.index)]
        alive.append(self) if self not in alive else None
        if any(n.state == MASTER for n in alive):
            return
        best = self.best_candidate(alive)
        if best is self:
            self._acquire(self.pm.ip_start_time)

    def _joined(self) -> None:
        """After (re)joining: without stickiness, resources move back to the preferred node."""
        if self.state != BACKUP or self.pm.resource_stickiness:
            return
        holder = next((n for n in self.model.vrrp if n.state == MASTER and self.model.link_up(self.index, n.index)), None)
        if holder is None or holder.priority >= self.priority:
            return
        stop = self.stop_time()
        holder_epoch = self.model.epoch_of(holder.index)

        def stopped() -> None:
            if self.model.epoch_of(holder.index) == holder_epoch:
                holder._release()
            self._acquire(self.pm.ip_start_time)

        self.model.sim.call_at(self.env.now + stop, stopped)

    # -- resource monitor ---------------------------------------------------------------
    def _monitor(self, first: float):
        try:
            yield self.env.timeout(first)
            while True:
                reg = self.model.registrars[self.index]
                if self.state == MASTER and not reg.check_ok("sip"):
                    self.failcount += 1
                    self.model.log.checks.append((self.env.now, self.name, "monitor failed"))
                    if self.failcount >= self.pm.migration_threshold:
                        self.fault("migration-threshold")
                    else:
                        self.model.restart_registrar(self.index, self.env.now + self.stop_time())
                yield self.env.timeout(self.pm.monitor_interval)
        except simpy.Interrupt:
            return

    def _resources_freed(self) -> None:
        for p in self.model.vrrp:
            if p is not self and p.state == BACKUP and self.model.link_up(self.index, p.index):
                p._recover_resources(exclude=self.index)
                break
