"""Keep-alives: CRLF pings (RFC 5626 §4.4) and SIP OPTIONS, and what a failed one triggers.

A ping changes nothing while the phone's flow is healthy, so pings are simulated only while a flow
may be broken. Each phone's pings form a renewal process (intervals uniform in
[randomize·K, K]); its next ping time is kept in an array without an event. Whenever the topology
changes (a fault, a repair, a VRRP transition, a GARP — the model calls :meth:`changed`), every
phone not already being watched gets an event at its next ping time. Pings then run one by one
until one succeeds, which ends the watch (the next ping time is remembered, no event). The result
is the same ping sequence as one event per phone per interval, at the cost of a few events per
phone per disturbance.

A ping over TCP/TLS travels on the phone's connection to wherever its address leads now: the
node it is connected to answers (CRLF pong / 200 OK); a node that holds the address but has no
socket for the connection answers with a reset; silence (a dead node, nobody holding the VIP, a
hung registrar) is retransmitted by TCP (``rto_min`` doubling) until ``timeout``. Over UDP an
OPTIONS ping is a Timer E/F transaction that any live registrar answers — including a new master
that holds no binding. A reset fails the flow at once; ``failures`` timeouts in a row fail it;
a failed flow makes the phone re-register at once.
"""

from __future__ import annotations

import math
import numpy as np

from simsip.protocols.registration import keepalive_interval
from simsip.protocols.transactions import retransmit_interval


OK, RESET, TIMEOUT = 0, 1, 2


class Keepalives:
    def __init__(self, bank):  # bank: the PhoneBank that owns this part (simsip.engine.phones)
        self.bank = bank
        self.sim = bank.sim
        n = bank.n
        ids = [np.arange(lo, hi) for fp in bank.params if fp.ka_detects for lo, hi in fp.slots]
        self.ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        self.next = np.full(n, math.inf)
        self.watch = np.zeros(n, dtype=np.int8)
        self.gen = [0] * n
        self.fails = [0] * n
        self.ping_t0 = [-1.0] * n  # start of the outstanding ping (-1: none)
        self.rnd = bank.streams("phones.keepalive")
        self.gen_np = bank.streams.generator("phones.keepalive.phase")
        self.started = False
        log = bank.log
        self.fail_bins = log.bin("keepalive_failures")
        self.pings = 0
        self.failed = 0
        self.resets = 0

    def _interval(self, fp) -> float:
        ka = fp.ka
        return keepalive_interval(ka.interval, ka.randomize, self.rnd.random())

    def start(self) -> None:
        """Equilibrium phases: the time to the next ping of a stationary renewal process."""
        for fp in self.bank.params:
            if not fp.ka_detects:
                continue
            ka = fp.ka
            a, b = ka.interval * ka.randomize, ka.interval
            for lo, hi in fp.slots:  # a second registration (dual) has its own flow and pings
                u = self.gen_np.random((2, fp.count))
                length = np.sqrt(a * a + u[0] * (b * b - a * a))  # length-biased interval
                self.next[lo:hi] = u[1] * length
        self.started = True

    # ------------------------------------------------------------------ watching
    def changed(self, t: float) -> None:
        if not self.started or not self.ids.size:
            return
        idle = self.ids[self.watch[self.ids] == 0]
        if not idle.size:
            return
        nxt = self.next[idle]
        late = nxt < t
        while late.any():  # the unobserved pings since the last watch
            k = np.flatnonzero(late)
            for fp in self.bank.params:
                if not fp.ka_detects:
                    continue
                for lo, hi in fp.slots:
                    sel = k[(idle[k] >= lo) & (idle[k] < hi)]
                    if sel.size:
                        ka = fp.ka
                        nxt[sel] += keepalive_interval(ka.interval, ka.randomize, self.gen_np.random(sel.size))
            late = nxt < t
        self.next[idle] = nxt
        self.watch[idle] = 1
        gen = self.gen
        fire = self.fire
        call_at = self.sim.phone_at
        for p, tn in zip(idle.tolist(), nxt.tolist()):
            g = gen[p] + 1
            gen[p] = g
            call_at(tn, fire, p, g)

    def fire(self, p: int, g: int) -> None:
        if g != self.gen[p]:
            return
        bank = self.bank
        now = self.sim.env._now
        fp = bank.fleet(p)
        nxt = now + self._interval(fp)
        self.next[p] = nxt
        self.sim.phone_at(nxt, self.fire, p, g)
        if self.ping_t0[p] >= 0 or bank.tx[p] >= 0 or not bank.has_flow(p, fp):
            return  # a ping or a REGISTER is under way, or there is no flow to test
        self.pings += 1
        self.ping_t0[p] = now
        self._send(p, g, now, now, 0, fp)

    def _send(self, p: int, g: int, t0: float, now: float, k: int, fp) -> None:
        bank = self.bank
        net = bank.net
        node = bank.node_for(p, now, fp)
        if node != -1 and not (net.loss and net.lost()):
            self.sim.phone_at(now + net.delay(), self._arrive, p, g, t0, node)
        # next retransmission: TCP (rto_min doubling) or Timer E (T1 doubling, capped at T2)
        if fp.reliable:
            iv = retransmit_interval(k, fp.rto_min, fp.rto_max)
        else:
            iv = retransmit_interval(k, fp.t1, fp.t2)
        t_next = now + iv
        end = t0 + fp.ka_timeout
        if t_next < end:
            self.sim.phone_at(t_next, self._retransmit, p, g, t0, k + 1)
        else:
            self.sim.phone_at(end, self._result, p, g, t0, TIMEOUT)

    def _retransmit(self, p: int, g: int, t0: float, k: int) -> None:
        if g != self.gen[p] or self.ping_t0[p] != t0:
            return
        self._send(p, g, t0, self.sim.env._now, k, self.bank.fleet(p))

    def _arrive(self, p: int, g: int, t0: float, node: int) -> None:
        if g != self.gen[p] or self.ping_t0[p] != t0:
            return
        bank = self.bank
        fp = bank.fleet(p)
        now = self.sim.env._now
        back = now + bank.net.delay()
        if node == bank.LB:
            self.sim.phone_at(back, self._result, p, g, t0, OK)  # the balancer answers itself
            return
        if not bank.host_ok(node, fp.direct):
            return  # silence
        topo = bank.topo
        if fp.reliable and not bank.conn_valid(p, node):
            self.sim.phone_at(back, self._result, p, g, t0, RESET)
        elif topo.proc_up[node] and not topo.proc_hung[node]:
            self.sim.phone_at(back, self._result, p, g, t0, OK)

    def _result(self, p: int, g: int, t0: float, outcome: int) -> None:
        if g != self.gen[p] or self.ping_t0[p] != t0:
            return
        self.ping_t0[p] = -1.0
        now = self.sim.env._now
        if outcome == OK:
            self.fails[p] = 0
            self.watch[p] = 0
            self.gen[p] += 1  # end the watch; self.next[p] keeps the next ping time
            return
        self.failed += 1
        self.fail_bins.add(now)
        if outcome == RESET:
            self.resets += 1
            self.fails[p] = 0
            self.bank.flow_failed(p, now)
            return
        self.fails[p] += 1
        fp = self.bank.fleet(p)
        if self.fails[p] >= fp.ka.failures:
            self.fails[p] = 0
            self.bank.flow_failed(p, now)
