"""keepalived VRRP: who owns the virtual IP, and how long a takeover takes.

The master sends an advertisement every ``advert_int``. A backup restarts its Master_Down_Timer
(``3·advert_int + Skew_Time``) on each advert; when it expires the backup becomes master, sends an
advert at once and announces the VIP with gratuitous ARPs. Skew_Time is ``(256−prio)/256`` s in
VRRPv2 (RFC 3768, keepalived's default) and ``(256−prio)·advert_int/256`` in VRRPv3 (RFC 5798):
a higher priority takes over sooner. A crash sends nothing, so the takeover comes Master_Down_Interval
after the master's *last* advert — between MDI − advert_int and MDI after the crash.

Preemption: a backup with a higher priority ignores adverts from a lower-priority master and so
takes over after its own down timer; with ``preempt_delay`` it accepts them for that long after
start-up first. The displaced master sees a higher-priority advert and steps down; a master that
hears a *lower*-priority master (a healed split brain) re-announces the VIP with GARPs.
keepalived starts every instance as BACKUP (unless priority 255) — a repaired node therefore waits
one Master_Down_Interval before it preempts, which is the second outage of a failback.

FAULT: a failed ``track_script`` (health check) or a downed interface puts the instance in FAULT.
A master entering FAULT sends a priority-0 advert (if its link is up), so the backup takes over
after only its Skew_Time; leaving FAULT the instance starts again as BACKUP.

Each instance is a SimPy process; a node crash interrupts it (``simpy.Interrupt``). Instances see
each other (their *group*) and the nodes through the topology; they announce the VIP through the
network's GARP port; every timer they set runs on the control clock.
"""

from __future__ import annotations

from typing import Callable

import simpy

from simsip.config.schema import Vrrp
from simsip.engine.dists import sampler
from simsip.engine.topology import BACKUP, DOWN, FAULT, MASTER

__all__ = ["BACKUP", "DOWN", "FAULT", "MASTER", "HaInstance", "VrrpInstance", "HealthCheck", "start_group"]


class HaInstance:
    """What every HA stack's per-node instance shares: identity, state and its transitions.

    ``state`` is master (holds the VIP), backup, fault or down; every change is written to the
    topology, logged, and reported through ``on_change(node, old, new, t)`` — wired by the model to
    move ARP entries, stop or start cold-standby registrars and recompute the serving node.
    ``group`` is the list of every node's instance (set when wired); ``garp`` the network's
    announcement port.
    """

    def __init__(self, index: int, name: str, priority: int, *, topo, clock, log, garp, on_change: Callable):
        self.topo = topo
        self.clock = clock
        self.env = clock.env
        self.log = log
        self.garp = garp
        self.on_change = on_change
        self.group: list[HaInstance] = []
        self.index = index
        self.name = name
        self.priority = priority
        self.state = DOWN
        self.fault_reasons: set[str] = set()

    def _set(self, state: str) -> None:
        if state != self.state:
            old = self.state
            self.state = state
            self.topo.ha_state[self.index] = state
            self.log.vrrp.append((self.env.now, self.name, state))
            self.on_change(self.index, old, state, self.env.now)

    def _epoch(self) -> int:
        return self.topo.epoch[self.index]


class VrrpInstance(HaInstance):
    def __init__(self, index: int, name: str, priority: int, cfg: Vrrp, *, streams, **ports):
        super().__init__(index, name, priority, **ports)
        self.cfg = cfg
        self.down_deadline = float("inf")
        self.started_at = 0.0
        self.proc: simpy.Process | None = None
        self.wake: simpy.Event | None = None
        self.advert_delay = sampler(cfg.advert_delay, streams(f"vrrp.{name}.delay"))
        self.mdi = cfg.master_down_interval(priority)
        self.skew = cfg.skew(priority)

    # ------------------------------------------------------------------ life cycle
    def start(self, as_master: bool = False, last_advert: float | None = None) -> None:
        """Start keepalived on this node (``as_master``: already elected at t=0)."""
        now = self.env.now
        self.started_at = now
        self.fault_reasons.clear()
        if as_master:
            self._set(MASTER)
            self.garp(self.index, now, self.cfg.garp_master_repeat, initial=True)
            first = (last_advert + self.cfg.advert_int) if last_advert is not None else now
            self.proc = self.clock.process(self._master_loop(first))
        else:
            self._enter_backup(now)

    def _enter_backup(self, now: float) -> None:
        self._stop_proc()
        self._set(BACKUP)
        self.down_deadline = now if self.priority == 255 else now + self.mdi
        self.proc = self.clock.process(self._backup_loop())

    def _stop_proc(self) -> None:
        if self.proc is not None and self.proc.is_alive and self.proc is not self.env.active_process:
            self.proc.interrupt("stop")
        self.proc = None
        self.wake = None

    def crash(self) -> None:
        self._stop_proc()
        self._set(DOWN)

    # ------------------------------------------------------------------ FAULT
    def fault(self, reason: str) -> None:
        """Enter FAULT (failed track_script, interface down)."""
        if self.state == DOWN:
            return
        self.fault_reasons.add(reason)
        if self.state == FAULT:
            return
        was_master = self.state == MASTER
        self._stop_proc()
        if was_master:
            self._send_advert(0)  # release: the backup takes over after its Skew_Time
        self._set(FAULT)

    def clear_fault(self, reason: str) -> None:
        if self.state != FAULT:
            self.fault_reasons.discard(reason)
            return
        self.fault_reasons.discard(reason)
        if not self.fault_reasons:
            self.started_at = self.env.now
            self._enter_backup(self.env.now)

    # ------------------------------------------------------------------ processes
    def _backup_loop(self):
        try:
            while True:
                wait = self.down_deadline - self.env.now
                if wait <= 0:
                    break
                self.wake = self.clock.event()
                yield self.clock.timeout(wait) | self.wake
            self.wake = None
        except simpy.Interrupt:
            return
        self.proc = None
        self._become_master()

    def _become_master(self) -> None:
        now = self.env.now
        self._set(MASTER)
        self._announce(now)
        self.proc = self.clock.process(self._master_loop(now))

    def _announce(self, now: float) -> None:
        """A burst of GARPs now and another ``garp_master_delay`` later."""
        self.garp(self.index, now, self.cfg.garp_master_repeat)
        if self.cfg.garp_master_delay > 0:
            self.clock.call_at(now + self.cfg.garp_master_delay, self._second_garp, self._epoch())

    def _second_garp(self, epoch: int) -> None:
        if self.state == MASTER and self._epoch() == epoch:
            self.garp(self.index, self.env.now, self.cfg.garp_master_repeat)

    def _master_loop(self, first_advert: float):
        try:
            delay = first_advert - self.env.now
            if delay > 0:
                yield self.clock.timeout(delay)
            while self.state == MASTER:
                self._send_advert(self.priority)
                yield self.clock.timeout(self.cfg.advert_int)
        except simpy.Interrupt:
            return

    def _send_advert(self, priority: int) -> None:
        now = self.env.now
        self.log.adverts.append((now, self.index))
        for peer in self.group:
            if peer is not self and peer.state != DOWN and self.topo.path_up(self.index, peer.index):
                self.clock.call_at(now + self.advert_delay(), peer.on_advert, self.index, priority)

    # ------------------------------------------------------------------ receiving adverts
    def _higher(self, priority: int, src: int) -> bool:
        """Does an advert with this priority from ``src`` beat us (ties: the higher name wins)?"""
        return priority > self.priority or (priority == self.priority and self.topo.names[src] > self.name)

    def on_advert(self, src: int, priority: int) -> None:
        if self.state in (DOWN, FAULT) or not self.topo.path_up(src, self.index):
            return
        now = self.env.now
        if self.state == BACKUP:
            if priority == 0:
                self._reset(now + self.skew)
            elif not self.cfg.preempt or self._higher(priority, src) or now < self.started_at + self.cfg.preempt_delay:
                self._reset(now + self.mdi)
            # else: a lower-priority master and we preempt: ignore it, our timer runs out
        elif self.state == MASTER:
            if priority == 0:
                return
            if self._higher(priority, src):
                self._enter_backup(now)  # step down
            elif self.cfg.garp_lower_prio:
                # two masters (healed split brain): assert ourselves with an advert and GARPs
                self._send_advert(self.priority)
                self.garp(self.index, now, self.cfg.garp_master_repeat)

    def _reset(self, deadline: float) -> None:
        earlier = deadline < self.down_deadline
        self.down_deadline = deadline
        if earlier and self.wake is not None and not self.wake.triggered:
            self.wake.succeed()  # the sleeping backup must re-arm for the earlier deadline


class HealthCheck:
    """keepalived ``vrrp_script`` on one node: periodic checks of the local registrar.

    ``check(kind)`` is the registrar's answer (socket bound / OPTIONS answered); ``instance`` the
    node's VRRP instance that a failed check puts in FAULT.
    """

    def __init__(self, node: int, name: str, cfg, *, check: Callable[[str], bool], instance, topo, clock, log, streams):
        self.clock = clock
        self.env = clock.env
        self.topo = topo
        self.log = log
        self.node = node
        self.check = check
        self.instance = instance
        self.cfg = cfg
        self.fails = 0
        self.oks = 0
        self.failed = False
        self.proc: simpy.Process | None = None
        self.rnd = streams(f"healthcheck.{name}")

    def start(self, phase: float | None = None) -> None:
        self.fails = self.oks = 0
        self.failed = False
        first = self.rnd.random() * self.cfg.interval if phase is None else phase
        self.proc = self.clock.process(self._loop(first))

    def stop(self) -> None:
        if self.proc is not None and self.proc.is_alive:
            self.proc.interrupt("stop")
        self.proc = None

    def _loop(self, first: float):
        try:
            yield self.clock.timeout(first)
            while True:
                ok = self.check(self.cfg.kind)
                if ok:
                    self.oks += 1
                    self.fails = 0
                    if self.failed and self.oks >= self.cfg.rise:
                        self.failed = False
                        self._report(False)
                else:
                    self.fails += 1
                    self.oks = 0
                    if not self.failed and self.fails >= self.cfg.fall:
                        self.failed = True
                        self._report(True)
                yield self.clock.timeout(self.cfg.interval)
        except simpy.Interrupt:
            return

    def _report(self, failed: bool) -> None:
        v = self.instance
        epoch = self.topo.epoch[self.node]

        def apply() -> None:
            if self.topo.epoch[self.node] != epoch:
                return
            if failed:
                self.log.checks.append((self.env.now, v.name, "fail"))
                v.fault("track_script")
            else:
                self.log.checks.append((self.env.now, v.name, "ok"))
                v.clear_fault("track_script")

        delay = self.cfg.exec_time + (self.cfg.timeout if (failed and self.cfg.kind == "sip") else 0.0)
        if delay > 0:
            self.clock.call_at(self.env.now + delay, apply)
        else:
            apply()


def start_group(instances: list[VrrpInstance], vcfg: Vrrp, rnd) -> int:
    """keepalived at equilibrium: the highest-priority node is master, its adverts at a random phase
    (or ``first_advert``), every backup's down timer counted from the master's last advert.
    Returns the master's index."""
    order = sorted(range(len(instances)), key=lambda i: -instances[i].priority)
    master = order[0]
    period = vcfg.advert_int
    first = vcfg.first_advert % period if vcfg.first_advert is not None else rnd.random() * period
    last_advert = first - period
    instances[master].start(as_master=True, last_advert=last_advert)
    for i in order[1:]:
        v = instances[i]
        v.start(as_master=False)
        v.down_deadline = last_advert + v.mdi
    return master
