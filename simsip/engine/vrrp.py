"""keepalived VRRP: who owns the virtual IP, and how long a takeover takes.

The master sends an advertisement every ``advert_int``. A backup restarts its Master_Down_Timer
(``3·advert_int + Skew_Time``) on each advert; when it expires the backup becomes master, sends an
advert at once and announces the VIP with gratuitous ARPs. Skew_Time is ``(256−prio)/256`` s in
VRRPv2 (RFC 3768, keepalived's default) and ``(256−prio)·advert_int/256`` in VRRPv3 (RFC 5798):
a higher priority takes over sooner. A crash sends nothing, so the takeover comes Master_Down_Interval
after the master's *last* advert — between MDI − advert_int and MDI after the crash.

Preemption: a backup with a higher priority ignores adverts from a lower-priority master and so
takes over after its own down timer; with ``preempt_delay`` it accepts them for that long first,
counted from the first lower-priority advert it sees in BACKUP (keepalived ``vrrp_state_backup``:
the preempt timer starts there, stops on a higher advert and is cleared on entering BACKUP). The displaced master sees a higher-priority advert and steps down; a master that
hears a *lower*-priority master (a healed split brain) re-announces the VIP with GARPs.
keepalived starts every instance as BACKUP (unless priority 255) — a repaired node therefore waits
one Master_Down_Interval before it preempts, which is the second outage of a failback.

FAULT: a failed ``track_script`` (health check) or a downed interface puts the instance in FAULT.
A master entering FAULT sends a priority-0 advert (if its link is up), so the backup takes over
after only its Skew_Time; leaving FAULT the instance starts again as BACKUP. A clean stop of
keepalived (SIGTERM: ``vrrp_terminate_phase1`` → ``restore_vrrp_interfaces`` in keepalived's
``vrrp/vrrp_daemon.c``/``vrrp.c``) also sends priority 0 and removes the VIP.

Weighted checks (``weight`` ≠ 0) change the *effective* priority instead (``track``; the rules in
:mod:`simsip.protocols.vrrp`): the master keeps advertising at the new priority; a backup accepts
an advert of at least its own priority (RFC 3768 §6.4.2, keepalived ``vrrp_state_backup``) and
discards a lower one, so its timer runs on from the last advert it accepted. In BACKUP a change
of our own priority moves the down timer by the change of Master_Down_Interval (the skew
depends on it: ``vrrp_set_effective_priority``).

Announcing the VIP: GARP bursts on becoming master (and ``garp_master_refresh``); with
``use_vmac`` the address keeps one virtual MAC, so every host follows the new master at once and a
missed GARP costs nothing; with ``vip_move: api`` a notify script asks a cloud API to move the
address, which takes ``api_latency`` and ignores GARPs.

Each instance is a SimPy process; a node crash interrupts it (``simpy.Interrupt``). Instances see
each other (their *group*) and the nodes through the topology; they announce the VIP through the
network's GARP port; every timer they set runs on the control clock.
"""

from __future__ import annotations

import math

from typing import Callable

import simpy

from simsip.config.schema import Vrrp
from simsip.engine.dists import sampler
from simsip.engine.topology import BACKUP, DOWN, FAULT, MASTER
from simsip.protocols import vrrp as rules

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
        self.base = priority  # the configured priority; ``priority`` is the effective one
        self.contribution = 0  # what weighted trackers add now
        self.down_deadline = float("inf")
        self.preempt_time: float | None = None  # preempt_delay runs out then (None: not started)
        self.proc: simpy.Process | None = None
        self.wake: simpy.Event | None = None
        self.term = 0  # counts this instance's periods as master (timers of an old one are void)
        self.advert_delay = sampler(cfg.advert_delay, streams(f"vrrp.{name}.delay"))
        d = cfg.advert_delay
        # a constant advert delay makes every future advert's arrival known (steady_until)
        self.advert_d = float(d.mean) if d.dist == "constant" or (d.dist in ("normal", "lognormal") and d.sd == 0) else None
        self.next_advert = float("inf")  # when the master loop sends its next advert
        self.api_latency = sampler(cfg.api_latency, streams(f"vrrp.{name}.api")) if cfg.vip_move == "api" else None
        self.mdi = cfg.master_down_interval(priority)
        self.skew = cfg.skew(priority)

    # ------------------------------------------------------------------ weighted tracking
    def track(self, contribution: int) -> None:
        """A weighted tracker now adds ``contribution`` to the base priority."""
        self.contribution = contribution
        new = rules.effective_priority(self.base, self.base + contribution)
        if new == self.priority:
            return
        old_mdi = self.mdi
        self.priority = new
        self.topo.priority[self.index] = new
        self.mdi = self.cfg.master_down_interval(new)
        self.skew = self.cfg.skew(new)
        self.log.checks.append((self.env.now, self.name, f"priority {new}"))
        if self.state == BACKUP and self.down_deadline != float("inf"):
            self._reset(self.down_deadline + (self.mdi - old_mdi))

    # ------------------------------------------------------------------ life cycle
    def start(self, as_master: bool = False, last_advert: float | None = None) -> None:
        """Start keepalived on this node (``as_master``: already elected at t=0)."""
        now = self.env.now
        self.fault_reasons.clear()
        if as_master:
            self.term += 1
            self._set(MASTER)
            self.garp(self.index, now, self.cfg.garp_master_repeat, initial=True)
            self._refresh_garps(now)
            first = (last_advert + self.cfg.advert_int) if last_advert is not None else now
            self.proc = self.clock.process(self._master_loop(first))
        else:
            self._enter_backup(now)

    def _enter_backup(self, now: float) -> None:
        self._stop_proc()
        self._set(BACKUP)
        self.preempt_time = None
        self.down_deadline = now if self.base == rules.PRIORITY_OWNER else now + self.mdi
        self.proc = self.clock.process(self._backup_loop())

    def _stop_proc(self) -> None:
        if self.proc is not None and self.proc.is_alive and self.proc is not self.env.active_process:
            self.proc.interrupt("stop")
        self.proc = None
        self.wake = None

    def crash(self) -> None:
        self._stop_proc()
        self._set(DOWN)

    def stop(self) -> None:
        """keepalived is stopped cleanly (SIGTERM): a master sends a priority-0 advert and removes
        the VIP (``restore_vrrp_interfaces``), then the daemon is gone."""
        if self.state == DOWN:
            return
        was_master = self.state == MASTER
        self._stop_proc()
        if was_master:
            self._send_advert(0)
        self.fault_reasons.clear()
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
            self._enter_backup(self.env.now)

    # ------------------------------------------------------------------ processes
    def _backup_loop(self):
        try:
            while True:
                wait = self.down_deadline - self.env.now
                if wait <= 0:
                    break
                self.wake = self.clock.event()
                # inert while the group is steady: an advert moves the deadline on before it fires
                # (steady_until keeps the bulk path before every backup's deadline)
                yield self.clock.timeout(wait, inert=True) | self.wake
            self.wake = None
        except simpy.Interrupt:
            return
        self.proc = None
        self._become_master()

    def _become_master(self) -> None:
        now = self.env.now
        self.term += 1
        self._set(MASTER)
        self._announce(now)
        self.proc = self.clock.process(self._master_loop(now))

    def _announce(self, now: float) -> None:
        """A burst of GARPs now and another ``garp_master_delay`` later (then every
        ``garp_master_refresh``); with ``vip_move: api`` the cloud API call instead."""
        if self.api_latency is not None:
            self.clock.call_at(now + self.api_latency(), self._api_moved, self._epoch(), self.term)
            return
        self._garp(now, self.cfg.garp_master_repeat)
        if self.cfg.garp_master_delay > 0:
            self.clock.call_at(now + self.cfg.garp_master_delay, self._second_garp, self._epoch(), self.term)
        self._refresh_garps(now)

    def _garp(self, now: float, repeat: int) -> None:
        """One burst. With ``use_vmac`` the hosts' entries hold the virtual MAC, which the switch
        now learns on this node: everyone follows, whatever GARPs are lost."""
        if self.cfg.use_vmac:
            if self.topo.link_ok(self.index):
                self.garp(self.index, now, repeat, initial=True)  # initial: no GARP can be missed
        else:
            self.garp(self.index, now, repeat)

    def _mine(self, epoch: int, term: int) -> bool:
        return self.state == MASTER and self._epoch() == epoch and self.term == term

    def _second_garp(self, epoch: int, term: int) -> None:
        if self._mine(epoch, term):
            self._garp(self.env.now, self.cfg.garp_master_repeat)

    def _refresh_garps(self, now: float) -> None:
        """keepalived's first refresh comes ``garp_master_delay + garp_master_refresh`` after
        becoming master (``vrrp_state_become_master``), then every ``garp_master_refresh``."""
        if self.cfg.garp_master_refresh > 0 and self.api_latency is None:
            first = now + self.cfg.garp_master_delay + self.cfg.garp_master_refresh
            self.clock.call_at(first, self._refresh_garp, self._epoch(), self.term)

    def _refresh_garp(self, epoch: int, term: int) -> None:
        if self._mine(epoch, term):
            now = self.env.now
            self._garp(now, self.cfg.garp_master_refresh_repeat)
            self.clock.call_at(now + self.cfg.garp_master_refresh, self._refresh_garp, epoch, term)

    def _api_moved(self, epoch: int, term: int) -> None:
        """The cloud API has moved the VIP here: every host's packets now reach this node."""
        if self._mine(epoch, term) and self.topo.link_ok(self.index):
            self.log.checks.append((self.env.now, self.name, "api moved the vip"))
            self.garp(self.index, self.env.now, 1, initial=True)

    def _master_loop(self, first_advert: float):
        try:
            delay = first_advert - self.env.now
            self.next_advert = max(first_advert, self.env.now)
            if delay > 0:
                yield self.clock.timeout(delay, inert=True)  # sending an advert changes no fact
            while self.state == MASTER:
                self._send_advert(self.priority)
                self.next_advert = self.env.now + self.cfg.advert_int
                yield self.clock.timeout(self.cfg.advert_int, inert=True)
        except simpy.Interrupt:
            return

    def _send_advert(self, priority: int) -> None:
        now = self.env.now
        self.log.adverts.append((now, self.index))
        for peer in self.group:
            if peer is not self and peer.state != DOWN and self.topo.path_up(self.index, peer.index):
                if priority > 0 and peer.state != MASTER:  # a backup resets its timer: no fact changes
                    self.clock.call_at_inert(now + self.advert_delay(), peer.on_advert, self.index, priority)
                else:
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
            else:
                delay = self.cfg.preempt_delay if self.cfg.preempt else 0.0
                holding = delay > 0 and (self.preempt_time is None or self.preempt_time > now)
                if rules.backup_accepts(priority, self.priority, self.cfg.preempt) or holding:
                    self._reset(now + self.mdi)
                    if delay > 0:
                        if priority >= self.priority:
                            self.preempt_time = None  # "stop preempt delay"
                        elif self.preempt_time is None:
                            self.preempt_time = now + delay  # "start preempt delay"
                # else: a lower-priority master and we preempt: discard it, our timer runs on from
                # the last advert we accepted (vrrp_state_backup: "received lower priority advert")
        elif self.state == MASTER:
            if priority == 0:
                return
            if self._higher(priority, src):
                self._enter_backup(now)  # step down
            elif self.api_latency is not None:
                # a cloud VIP: the notify_master_rx_lower_pri script takes the address back
                self._send_advert(self.priority)
                self.clock.call_at(now + self.api_latency(), self._api_moved, self._epoch(), self.term)
            elif self.cfg.garp_lower_prio:
                # two masters (healed split brain): assert ourselves with an advert and GARPs
                self._send_advert(self.priority)
                self._garp(now, self.cfg.garp_master_repeat)

    def _reset(self, deadline: float) -> None:
        earlier = deadline < self.down_deadline
        self.down_deadline = deadline
        if earlier and self.wake is not None and not self.wake.triggered:
            self.wake.succeed()  # the sleeping backup must re-arm for the earlier deadline


class HealthCheck:
    """keepalived ``vrrp_script`` (or ``vrrp_track_process``) on one node, tracking the local registrar.

    ``check(kind)`` is the registrar's answer (socket bound / OPTIONS answered); ``process()`` says
    whether its process exists (``kind: process``, told through the topology's change
    notifications — keepalived hears the kernel's process events, it does not poll). ``instance``
    is the node's VRRP instance: weight 0 puts it in FAULT, a weight changes its priority.

    A weighted script's state after a (re)start is unknown until its first result, which counts
    at once in either direction (keepalived ``SCRIPT_INIT_STATE_INIT``: "one success is enough",
    vrrp_scheduler.c); at t=0 the cluster runs at equilibrium with every check passing.
    """

    def __init__(self, node: int, name: str, cfg, *, check: Callable[[str], bool], instance, topo, clock, log, streams,
                 process: Callable[[], bool] | None = None):
        self.clock = clock
        self.env = clock.env
        self.topo = topo
        self.log = log
        self.node = node
        self.name = name
        self.check = check
        self.process = process
        self.instance = instance
        self.cfg = cfg
        self.fails = 0
        self.oks = 0
        self.failed = False
        self.ok: bool | None = True  # a weighted check's last verdict (None: none since the start)
        self.proc: simpy.Process | None = None
        self.running = False
        self.rnd = streams(f"healthcheck.{name}")
        self.seen = True  # process kind: the process state keepalived last acted on
        self.pending: bool | None = None  # process kind: the state a delay timer is waiting to confirm
        if cfg.kind == "process":
            topo.subscribers.append(self._process_event)

    @property
    def weighted(self) -> bool:
        return self.cfg.weight != 0

    @property
    def inert(self) -> bool:
        """keepalived drops a weighted script on a priority-255 instance (vrrp.c vrrp_complete_instance)."""
        return self.cfg.weight != 0 and getattr(self.instance, "base", 0) == rules.PRIORITY_OWNER

    def prime(self) -> None:
        """Equilibrium at t=0: every check passes (a weighted one's share is in the priority)."""
        if self.weighted and not self.inert:
            self.instance.track(self.cfg.contribution(True))

    def start(self, phase: float | None = None, initial: bool = False) -> None:
        if self.inert:
            return
        self.fails = self.oks = 0
        self.failed = False
        self.running = True
        self.pending = None
        if self.cfg.kind == "process":
            self.seen = self.process()
            self.ok = self.seen
            if self.weighted:  # keepalived reads /proc at start: the state is known at once
                self.instance.track(self.cfg.contribution(self.seen))
            elif not self.seen:
                self.failed = True
                self.instance.fault("track_process")
            return
        if not initial and self.weighted:
            self.ok = None
            self.instance.track(0)
        else:
            self.ok = True
        first = self.rnd.random() * self.cfg.interval if phase is None else phase
        self.proc = self.clock.process(self._loop(first))

    def stop(self) -> None:
        self.running = False
        if self.proc is not None and self.proc.is_alive:
            self.proc.interrupt("stop")
        self.proc = None

    # ------------------------------------------------------------------ vrrp_script (polled)
    def _loop(self, first: float):
        try:
            yield self.clock.timeout(first)
            while True:
                ok = self.check(self.cfg.kind)
                if ok:
                    self.oks += 1
                    self.fails = 0
                else:
                    self.fails += 1
                    self.oks = 0
                if self.weighted:
                    if self.ok is None or (ok and not self.ok and self.oks >= self.cfg.rise) or (
                            not ok and self.ok and self.fails >= self.cfg.fall):
                        self.ok = ok
                        self._report(not ok)
                elif ok:
                    if self.failed and self.oks >= self.cfg.rise:
                        self.failed = False
                        self._report(False)
                elif not self.failed and self.fails >= self.cfg.fall:
                    self.failed = True
                    self._report(True)
                yield self.clock.timeout(self.cfg.interval)
        except simpy.Interrupt:
            return

    def _report(self, failed: bool, reason: str = "track_script", delay: float | None = None) -> None:
        v = self.instance
        epoch = self.topo.epoch[self.node]

        def apply() -> None:
            if self.topo.epoch[self.node] != epoch:
                return
            self.log.checks.append((self.env.now, v.name, "fail" if failed else "ok"))
            if self.weighted:
                v.track(self.cfg.contribution(not failed))
            elif failed:
                v.fault(reason)
            else:
                v.clear_fault(reason)

        if delay is None:
            delay = self.cfg.exec_time + (self.cfg.timeout if (failed and self.cfg.kind == "sip") else 0.0)
        if delay > 0:
            self.clock.call_at(self.env.now + delay, apply)
        else:
            apply()

    # ------------------------------------------------------------------ vrrp_track_process (events)
    def _process_event(self, t: float) -> None:
        """Told of every topology change: did the registrar's process exit or start?"""
        if not self.running:
            return
        now_up = self.process()
        if now_up == self.seen and self.pending is None:
            return
        if self.pending is not None:
            if now_up == self.pending:
                return  # already waiting to confirm this state
            if now_up == self.seen:
                self.pending = None  # back before the delay ran out (keepalived cancels the timer)
                return
        self.pending = now_up
        delay = self.cfg.event_latency + (self.cfg.fork_delay if now_up else self.cfg.terminate_delay)
        epoch = self.topo.epoch[self.node]
        self.clock.call_at(t + delay, self._process_settled, now_up, epoch)

    def _process_settled(self, now_up: bool, epoch: int) -> None:
        if not self.running or self.topo.epoch[self.node] != epoch or self.pending != now_up:
            return
        self.pending = None
        if self.process() != now_up or self.seen == now_up:
            return
        self.seen = now_up
        self.ok = now_up
        self.failed = not now_up
        self._report(not now_up, reason="track_process", delay=0.0)


def steady_until(group: list[VrrpInstance]) -> float:
    """Until when the group's inert events (adverts sent and received, backups' timers re-arming)
    change no fact, if no other control event happens first; −∞ when the group is not steady.

    Steady: one master, advertising with a priority above 0, every other instance a backup that
    is not being woken (or down, or in FAULT: those ignore adverts). A backup only resets its
    deadline on an advert (later and later: arrivals run in time order), so the first change a
    steady group can make on its own is a backup's timer running out: at its current deadline —
    or never, for a backup that accepts the master's adverts (no preempt_delay), reached by them,
    when the delay is constant, the master's next advert lands before that deadline and each
    later one within Master_Down_Interval of the one before."""
    master = None
    until = math.inf
    for v in group:
        if v.state == MASTER:
            if master is not None:
                return -math.inf
            master = v
    if master is None or master.priority <= 0 or master.proc is None or not master.proc.is_alive:
        return -math.inf
    d = master.advert_d
    topo = master.topo
    for v in group:
        if v.state != BACKUP:
            continue
        if v.wake is not None and v.wake.triggered:
            return -math.inf
        if (d is not None and v.cfg.preempt_delay == 0 and rules.backup_accepts(master.priority, v.priority, v.cfg.preempt)
                and topo.path_up(master.index, v.index) and topo.path_up(v.index, master.index)
                and master.cfg.advert_int + d < v.mdi and master.next_advert + d < v.down_deadline):
            continue  # kept alive by the adverts for as long as nothing else happens
        if v.down_deadline < until:
            until = v.down_deadline
    return until


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
