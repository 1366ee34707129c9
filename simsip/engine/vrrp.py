"""keepalived VRRP: who owns the virtual IP, and how long a takeover takes.

The master sends an advertisement every ``advert_int``. A backup restarts its Master_Down_Timer
(``3·advert_int + Skew_Time``) on each advert; when it expires the backup becomes master, sends an
advert at once and announces the VIP with gratuitous ARPs. Skew_Time is ``(256−prio)/256`` s in
VRRPv2 (RFC 3768, keepalived's default) and ``(256−prio)·advert_int/256`` in VRRPv3 (RFC 5798):
a higher priority takes over sooner. A crash sends nothing, so the takeover comes Master_Down_Interval
after the master's *last* advert — between MDI − advert_int and MDI after the crash.

Preemption: a backup with a higher priority ignores adverts from a lower-priority master and so
takes over after its own down timer; with ``preempt_delay`` it accepts them for that long after
start-up first. The displaced master sees a higher-priority advert and steps down. keepalived
starts every instance as BACKUP (unless priority 255) — a repaired node therefore waits one
Master_Down_Interval before it preempts, which is the second outage of a failback.

Each instance is a SimPy process; a node crash interrupts it (``simpy.Interrupt``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import simpy

from simsip.config.schema import Vrrp
from simsip.engine.dists import sampler

if TYPE_CHECKING:  # pragma: no cover
    from simsip.engine.model import Model

BACKUP, MASTER, DOWN = "backup", "master", "down"


class VrrpInstance:
    def __init__(self, model: "Model", index: int, name: str, priority: int, cfg: Vrrp):
        self.model = model
        self.env = model.sim.env
        self.index = index
        self.name = name
        self.priority = priority
        self.cfg = cfg
        self.state = DOWN
        self.down_deadline = float("inf")
        self.started_at = 0.0
        self.proc: simpy.Process | None = None
        self.wake: simpy.Event | None = None
        self.advert_delay = sampler(cfg.advert_delay, model.streams(f"vrrp.{name}.delay"))
        self.mdi = cfg.master_down_interval(priority)
        self.skew = cfg.skew(priority)

    # ------------------------------------------------------------------ life cycle
    def start(self, as_master: bool = False, last_advert: float | None = None) -> None:
        """Start keepalived on this node (``as_master``: already elected at t=0)."""
        now = self.env.now
        self.started_at = now
        if as_master:
            self._set(MASTER)
            self.model.network.garp(self.index, now, self.cfg.garp_master_repeat, initial=True)
            first = (last_advert + self.cfg.advert_int) if last_advert is not None else now
            self.proc = self.env.process(self._master_loop(first))
        else:
            self._set(BACKUP)
            if self.priority == 255:
                self.down_deadline = now
            else:
                self.down_deadline = now + self.mdi
            self.proc = self.env.process(self._backup_loop())

    def crash(self) -> None:
        if self.proc is not None and self.proc.is_alive:
            self.proc.interrupt("crash")
        self.proc = None
        self._set(DOWN)

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.model.log.vrrp.append((self.env.now, self.name, state))
            self.model.update_serving(self.env.now)

    # ------------------------------------------------------------------ processes
    def _backup_loop(self):
        try:
            while True:
                wait = self.down_deadline - self.env.now
                if wait <= 0:
                    break
                self.wake = self.env.event()
                yield self.env.timeout(wait) | self.wake
            self.wake = None
        except simpy.Interrupt:
            return
        self._become_master()

    def _become_master(self) -> None:
        now = self.env.now
        self._set(MASTER)
        self.model.network.garp(self.index, now, self.cfg.garp_master_repeat)
        if self.cfg.garp_master_delay > 0:
            self.model.sim.call_at(now + self.cfg.garp_master_delay, self._second_garp, self.model.epoch_of(self.index))
        self.proc = self.env.process(self._master_loop(now))

    def _second_garp(self, epoch: int) -> None:
        if self.state == MASTER and self.model.epoch_of(self.index) == epoch:
            self.model.network.garp(self.index, self.env.now, self.cfg.garp_master_repeat)

    def _master_loop(self, first_advert: float):
        try:
            delay = first_advert - self.env.now
            if delay > 0:
                yield self.env.timeout(delay)
            while self.state == MASTER:
                self._send_advert(self.priority)
                yield self.env.timeout(self.cfg.advert_int)
        except simpy.Interrupt:
            return

    def _send_advert(self, priority: int) -> None:
        now = self.env.now
        self.model.log.adverts.append((now, self.index))
        for peer in self.model.vrrp:
            if peer is not self and peer.state != DOWN and self.model.link_up(self.index, peer.index):
                self.model.sim.call_at(now + self.advert_delay(), peer.on_advert, self.index, priority)

    # ------------------------------------------------------------------ receiving adverts
    def on_advert(self, src: int, priority: int) -> None:
        if self.state == DOWN:
            return
        now = self.env.now
        src_name = self.model.vrrp[src].name
        if self.state == BACKUP:
            if priority == 0:
                self._reset(now + self.skew)
            elif (
                not self.cfg.preempt
                or priority > self.priority
                or (priority == self.priority and src_name > self.name)
                or now < self.started_at + self.cfg.preempt_delay
            ):
                self._reset(now + self.mdi)
            # else: a lower-priority master and we preempt: ignore, our timer runs out
        elif self.state == MASTER:
            if priority > self.priority or (priority == self.priority and src_name > self.name):
                # step down
                if self.proc is not None and self.proc.is_alive:
                    self.proc.interrupt("step down")
                self._set(BACKUP)
                self.down_deadline = now + self.mdi
                self.proc = self.env.process(self._backup_loop())

    def _reset(self, deadline: float) -> None:
        earlier = deadline < self.down_deadline
        self.down_deadline = deadline
        if earlier and self.wake is not None and not self.wake.triggered:
            self.wake.succeed()  # the sleeping backup must re-arm for the earlier deadline
