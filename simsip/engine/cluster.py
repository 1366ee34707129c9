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
  or moved after ``migration_threshold`` failures. When the preferred node rejoins the resources
  return to it (stop, then start: the failback outage) only if its ``location_score`` beats the
  ``resource_stickiness`` (pacemaker's default 0 with a preference: they return; new RHEL 9
  clusters' 1 without one: they stay).

Instances expose the same interface as :class:`~simsip.engine.vrrp.VrrpInstance` (``state``,
``start``, ``crash``, ``fault``, ``clear_fault``) so the rest of the model is stack-agnostic. What
a cluster does *to* nodes — fencing one, restarting a registrar resource — goes through the
``actions`` port (the model's node actions); every timer runs on the control clock.
"""

from __future__ import annotations

import math

import simpy

from simsip.engine.dists import sampler
from simsip.engine.vrrp import BACKUP, DOWN, FAULT, MASTER, HaInstance

IPADDR2_ARPS = 5  # IPaddr2 arp_count (5 ARPs 200 ms apart)


class _ClusterInstance(HaInstance):
    """Common life cycle of a cluster-managed node."""

    stack = "cluster"

    def __init__(self, index: int, name: str, priority: int, *, actions=None, **ports):
        super().__init__(index, name, priority, **ports)
        self.actions = actions  # fence a node, restart a registrar resource (the model's node actions)
        self.pending = False  # a takeover is under way on this node

    # -- shared helpers ---------------------------------------------------------------
    def _begin(self, as_master: bool) -> float:
        """Join the cluster now: holding the resources (already elected) or standing by."""
        now = self.env.now
        self.fault_reasons.clear()
        self._set(MASTER if as_master else BACKUP)
        if as_master:
            self.garp(self.index, now, IPADDR2_ARPS, initial=True)
        return now

    def _peers(self):
        return [p for p in self.group if p is not self]

    def _acquire(self, delay: float) -> None:
        """Start the resources here after ``delay``: the IP comes up with its ARP burst."""
        if self.pending or self.state == MASTER:
            return
        self.pending = True
        epoch = self._epoch()

        def done() -> None:
            self.pending = False
            if self._epoch() != epoch or self.state in (DOWN, FAULT):
                return
            self._set(MASTER)
            self.garp(self.index, self.env.now, IPADDR2_ARPS)

        self.clock.call_at(self.env.now + delay, done)

    def _release(self) -> None:
        if self.state == MASTER:
            self._set(BACKUP)

    def crash(self) -> None:
        self._stop()
        self.pending = False
        self._set(DOWN)

    def _stop(self) -> None:  # pragma: no cover - overridden
        pass

    def stop(self) -> None:
        """The cluster daemon is stopped cleanly (planned): see each stack's ``_leave``."""
        if self.state == DOWN:
            return
        self._leave()

    def _leave(self) -> None:  # pragma: no cover - overridden
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
        ok = [n for n in alive if n.state in (BACKUP, MASTER) and self.topo.link[n.index]]
        return max(ok, key=lambda n: n.priority) if ok else None


class HeartbeatInstance(_ClusterInstance):
    """One node running Linux-HA heartbeat."""

    stack = "heartbeat"

    def __init__(self, index: int, name: str, priority: int, cfg, *, streams, **ports):
        super().__init__(index, name, priority, **ports)
        self.cfg = cfg
        self.heard: dict[int, float] = {}
        self.deadline: dict[int, float] = {}
        self.procs: list[simpy.Process] = []
        self.takeover = sampler(cfg.takeover_time, streams(f"heartbeat.{name}.takeover"))
        self.rnd = streams(f"heartbeat.{name}.phase")

    def start(self, as_master: bool = False, last_advert: float | None = None) -> None:
        now = self._begin(as_master)
        wait = self.cfg.deadtime if (as_master or last_advert is not None) else self.cfg.initial_dead
        for p in self._peers():
            self.heard[p.index] = now
            self.deadline[p.index] = now + wait
        phase = self.rnd.random() * self.cfg.keepalive if last_advert is None else (last_advert % self.cfg.keepalive)
        self.procs = [self.clock.process(self._beat(phase)), self.clock.process(self._watch())]

    def _stop(self) -> None:
        for pr in self.procs:
            if pr.is_alive and pr is not self.env.active_process:
                pr.interrupt("stop")
        self.procs = []

    def _beat(self, phase: float):
        try:
            yield self.clock.timeout(phase)
            while True:
                now = self.env.now
                for p in self._peers():
                    if p.state != DOWN and self.topo.path_up(self.index, p.index):
                        self.clock.call_at(now, p.on_heartbeat, self.index)
                yield self.clock.timeout(self.cfg.keepalive)
        except simpy.Interrupt:
            return

    def _watch(self):
        try:
            while True:
                nxt = min(self.deadline.values(), default=math.inf)
                if nxt == math.inf:
                    yield self.clock.timeout(self.cfg.keepalive)
                    continue
                if nxt > self.env.now:
                    yield self.clock.timeout(nxt - self.env.now)
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
        peer = self.group[src]
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
        self.log.checks.append((self.env.now, self.name, f"peer {self.group[peer].name} dead"))
        alive = self._alive_view()
        holder = any(p.state == MASTER for p in alive if p is not self)
        if self.state != MASTER and not holder and self.best_candidate(alive) is self:
            self._acquire(self.takeover())

    def _resources_freed(self) -> None:
        # hb_standby: the peers take over at once
        for p in self._peers():
            if p.state == BACKUP and self.topo.path_up(self.index, p.index):
                alive = p._alive_view()
                if p.best_candidate([n for n in alive if n is not self]) is p:
                    p._acquire(p.takeover())

    def _rejoined(self) -> None:
        pass

    def _leave(self) -> None:
        """``service heartbeat stop``: the node gives its resources up and tells its peers it is
        leaving, so they take over at once (their takeover scripts) instead of after deadtime."""
        was = self.state == MASTER
        self._stop()
        self.pending = False
        self.fault_reasons.clear()
        self._set(DOWN)
        for p in self._peers():
            if p.state != DOWN and self.topo.path_up(self.index, p.index):
                p.deadline[self.index] = math.inf  # the shutdown message: no "peer dead" later
        if was:
            self._resources_freed()


class PacemakerInstance(_ClusterInstance):
    """One node of a corosync/pacemaker cluster (the registrar and the VIP are resources)."""

    stack = "pacemaker"

    def __init__(self, index: int, name: str, priority: int, cfg_cs, cfg_pm, *, streams, check=None, **ports):
        super().__init__(index, name, priority, **ports)
        self.cs = cfg_cs
        self.pm = cfg_pm
        self.check = check  # the registrar resource's monitor action (OPTIONS answered)
        self.fence = sampler(cfg_pm.fence_time, streams(f"pacemaker.{name}.fence"))
        self.stop_time = sampler(cfg_pm.stop_time, streams(f"pacemaker.{name}.stop"))
        self.rnd = streams(f"pacemaker.{name}.monitor")
        self.monitor: simpy.Process | None = None
        self.failcount = 0
        self.leaving = False  # a clean stop is stopping the resources here
        self.rejoin = False  # started again before that stop finished: rejoin right after it

    def start(self, as_master: bool = False, last_advert: float | None = None) -> None:
        self.leaving = self.rejoin = False
        now = self._begin(as_master)
        self.monitor = self.clock.process(self._monitor(self.rnd.random() * self.pm.monitor_interval))
        if last_advert is None:  # a (re)joining node: membership forms, the cluster may move resources back
            self.clock.call_at(now + self.cs.token + self.cs.join, self._joined)

    def _stop(self) -> None:
        if self.monitor is not None and self.monitor.is_alive and self.monitor is not self.env.active_process:
            self.monitor.interrupt("stop")
        self.monitor = None

    # -- membership -------------------------------------------------------------------
    def lost_contact(self, other: int) -> None:
        """Corosync noticed that ``other`` left the membership (token loss + consensus)."""
        if self.state in (DOWN,):
            return
        if self.pm.stonith_enabled:
            self._fence(other, attempt=0)
        else:
            self._recover_resources(exclude=other)

    def _fence(self, other: int, attempt: int) -> None:
        t = self.fence()
        ok = t <= self.pm.stonith_timeout
        t = min(t, self.pm.stonith_timeout)
        epoch = self._epoch()

        def done() -> None:
            if self._epoch() != epoch or self.state == DOWN:
                return
            if not ok:
                self.log.checks.append((self.env.now, self.name, f"fence {self.group[other].name} failed"))
                self._fence(other, attempt + 1)
                return
            self.log.checks.append((self.env.now, self.name, f"fenced {self.group[other].name}"))
            self.actions.fence_node(other, self.env.now)
            self._recover_resources(exclude=other)

        self.clock.call_at(self.env.now + t, done)

    def _recover_resources(self, exclude: int) -> None:
        alive = [n for n in self.group if n.index != exclude and n.state != DOWN and self.topo.path_up(self.index, n.index)]
        alive.append(self) if self not in alive else None
        if any(n.state == MASTER for n in alive):
            return
        best = self.best_candidate(alive)
        if best is self:
            self._acquire(self.pm.ip_start_time)

    def _joined(self) -> None:
        """After (re)joining: without stickiness, resources move back to the preferred node."""
        if self.state != BACKUP or not self.pm.fails_back:
            return
        holder = next((n for n in self.group if n.state == MASTER and self.topo.path_up(self.index, n.index)), None)
        if holder is None or holder.priority >= self.priority:
            return
        stop = self.stop_time()
        holder_epoch = self.topo.epoch[holder.index]

        def stopped() -> None:
            if self.topo.epoch[holder.index] == holder_epoch:
                holder._release()
            self._acquire(self.pm.ip_start_time)

        self.clock.call_at(self.env.now + stop, stopped)

    # -- resource monitor ---------------------------------------------------------------
    def _monitor(self, first: float):
        try:
            yield self.clock.timeout(first)
            while True:
                if self.state == MASTER and not self.check("sip"):
                    self.failcount += 1
                    self.log.checks.append((self.env.now, self.name, "monitor failed"))
                    if self.failcount >= self.pm.migration_threshold:
                        self.fault("migration-threshold")
                    else:
                        self.actions.restart_registrar(self.index, self.env.now + self.stop_time())
                yield self.clock.timeout(self.pm.monitor_interval)
        except simpy.Interrupt:
            return

    def _resources_freed(self) -> None:
        for p in self.group:
            if p is not self and p.state == BACKUP and self.topo.path_up(self.index, p.index):
                p._recover_resources(exclude=self.index)
                break

    def _leave(self) -> None:
        """``pcs cluster stop``: pacemaker stops the resources here (``stop_time``), then the node
        leaves the membership cleanly — no fencing — and a peer starts them (``ip_start_time``)."""
        self._stop()
        if self.state != MASTER:
            self.pending = False
            self.fault_reasons.clear()
            self._set(DOWN)
            return
        epoch = self._epoch()
        self.leaving = True

        def stopped() -> None:
            self.leaving = False
            if self._epoch() != epoch or self.state == DOWN:
                return
            self.pending = False
            self.fault_reasons.clear()
            self._set(DOWN)
            self._resources_freed()
            if self.rejoin:  # the operator started it again meanwhile
                self.start(as_master=False)

        self.clock.call_at(self.env.now + self.stop_time(), stopped)


def start_group(instances: list[_ClusterInstance], period: float, rnd) -> int:
    """A running cluster at t=0: the highest-priority node holds the resources; every node is
    already a member, heartbeats at a random phase of ``period``. Returns the holder's index."""
    order = sorted(range(len(instances)), key=lambda i: -instances[i].priority)
    master = order[0]
    last_advert = rnd.random() * period - period
    instances[master].start(as_master=True, last_advert=last_advert)
    for i in order[1:]:
        instances[i].start(as_master=False, last_advert=last_advert)
    return master
