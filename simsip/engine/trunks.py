"""The PBX's own registrations to its SIP providers (Asterisk ``res_pjsip_outbound_registration``).

One :class:`TrunkRegistration` per configured trunk. The registration runs on the node that holds
the VIP with its PBX process answering (the topology's ``vip_owner`` and ``answering``); the
component is a topology subscriber: when that node changes — a failover, a failback, the PBX
process restarting — the new registration starts from scratch (retries 0), its first REGISTER
``start_delay`` plus 1..``max_random_initial_delay`` whole seconds later
(:func:`simsip.protocols.trunk.initial_delay`). After a 2xx it refreshes ``expiration − 10`` s
later; failures follow :func:`simsip.protocols.trunk.after_failure`. The provider answers after
``provider_rtt`` (its binding saved half-way), or — inside one of the trunk's ``outages`` — with the
outage's code, or not at all (408 after ``timeout``).

Ports: the **topology** (read only), the **clock** (its own timers: they change nothing any phone
or control component reads, so they do not lower the fast-path horizon), a named random **stream**
per trunk and the **log**. It appends typed records — ``trunk_nodes`` (time, trunk, node running
the registration or −1), ``trunk_regs`` (trunk, provider save time, binding expiry, node) and
``trunk_responses`` (trunk, time, code; −1 when Asterisk gives up) — and :mod:`simsip.metrics`
computes the trunk's unreachable intervals after the run.
"""

from __future__ import annotations

from simsip.config.schema import Trunk
from simsip.protocols.trunk import after_failure, initial_delay, refresh_after

GAVE_UP = -1


class TrunkRegistration:
    def __init__(self, index: int, cfg: Trunk, *, topo, sim, streams, log):
        self.index = index
        self.cfg = cfg
        self.topo = topo
        self.sim = sim
        self.log = log
        self.rnd = streams(f"trunk.{cfg.name}")
        self.node = -1
        self.epoch = -1
        self.gen = 0
        self.retries = 0
        self.started = False  # topology changes before the equilibrium start (the HA stack's own) are not failovers
        self.granted = cfg.provider_expires if cfg.provider_expires is not None else cfg.expiration

    def _candidate(self) -> tuple[int, int]:
        topo = self.topo
        n = topo.vip_owner()
        if n < 0 or not topo.answering(n):
            return -1, -1
        return n, topo.proc_epoch[n]

    def start(self) -> None:
        """Equilibrium at t=0: the VIP's node has been registered for a while (phase uniform over
        one refresh cycle), its next refresh pending."""
        self.started = True
        n, ep = self._candidate()
        self.node, self.epoch = n, ep
        self.log.trunk_nodes.append((0.0, self.index, n))
        if n < 0:
            return
        c = self.cfg
        cycle = c.provider_rtt + refresh_after(self.granted)
        t_sent = -self.rnd.random() * cycle
        saved = t_sent + c.provider_rtt / 2
        self.log.trunk_regs.append((self.index, saved, saved + self.granted, n))
        self.sim.call_at(t_sent + cycle, self._register, self.gen)

    def changed(self, t: float) -> None:
        """Topology subscriber: a new node (or a restarted PBX) registers from scratch."""
        n, ep = self._candidate()
        if not self.started or (n == self.node and ep == self.epoch):
            return
        self.node, self.epoch = n, ep
        self.gen += 1
        self.log.trunk_nodes.append((t, self.index, n))
        if n < 0:
            return
        self.retries = 0
        c = self.cfg
        self.sim.call_at(t + c.start_delay + initial_delay(c.max_random_initial_delay, self.rnd.random()),
                         self._register, self.gen)

    def _outage(self, t: float):
        for o in self.cfg.outages:
            if o.at <= t < o.at + o.duration:
                return o
        return None

    def _register(self, gen: int) -> None:
        if gen != self.gen:
            return
        now = self.sim.env._now
        c = self.cfg
        o = self._outage(now)
        if o is None:
            saved = now + c.provider_rtt / 2
            self.log.trunk_regs.append((self.index, saved, saved + self.granted, self.node))
            self.sim.call_at(now + c.provider_rtt, self._response, gen, 200, 0.0)
        elif o.code == 408:
            self.sim.call_at(now + c.timeout, self._response, gen, 408, 0.0)
        else:
            # a 401/407 costs the authenticated retry's round trip before it counts as refused
            rtts = 2 if o.code in (401, 407) else 1
            self.sim.call_at(now + rtts * c.provider_rtt, self._response, gen, o.code, o.retry_after)

    def _response(self, gen: int, code: int, retry_after: float) -> None:
        if gen != self.gen:
            return
        now = self.sim.env._now
        self.log.trunk_responses.append((self.index, now, code))
        c = self.cfg
        if code < 300:
            self.retries = 0
            self.sim.call_at(now + refresh_after(self.granted), self._register, gen)
            return
        wait, self.retries = after_failure(
            code, self.retries, retry_interval=c.retry_interval, forbidden_retry_interval=c.forbidden_retry_interval,
            fatal_retry_interval=c.fatal_retry_interval, max_retries=c.max_retries,
            auth_rejection_permanent=c.auth_rejection_permanent, retry_after=retry_after)
        if wait is None:
            self.log.trunk_responses.append((self.index, now, GAVE_UP))
            return
        self.sim.call_at(now + wait, self._register, gen)


__all__ = ["TrunkRegistration", "GAVE_UP"]
