"""A load balancer / SBC in front of the registrar nodes (Kamailio dispatcher, Acme-like SBC).

Phones send to the balancer (it never fails); it forwards each REGISTER statelessly to a node it
believes active. It learns about nodes only through its own OPTIONS probes: every
``probe_interval`` it probes each node; an answered probe comes back one round trip later, an
unanswered one counts as failed ``probe_timeout`` later; ``probe_threshold`` failures in a row mark
the node inactive. Until then it keeps forwarding to the dead node (the phones' retransmissions are
what carry the REGISTERs over once it has noticed). ``max_register_forward`` caps the forward rate
with a token bucket (1 s burst); the excess gets the balancer's own 503.

The probes are control events (they change where REGISTERs go), on the control clock; forwarding
is part of the phones' data path and hands each REGISTER to the chosen node's ``receive``.
"""

from __future__ import annotations

from simsip.config.schema import LoadBalancer as LbCfg



class Balancer:
    def __init__(self, bank, cfg: LbCfg, clock):  # bank: the PhoneBank that owns the balancer
        self.bank = bank
        self.topo = bank.topo
        self.sim = bank.sim
        self.clock = clock
        self.cfg = cfg
        names = list(cfg.targets) or list(self.topo.names)
        self.targets = [self.topo.index(x) for x in names]
        self.active = [True] * len(self.targets)
        self.fails = [0] * len(self.targets)
        self.oks = [0] * len(self.targets)
        self.rr = 0
        self.rate = cfg.max_register_forward
        self.tokens = self.rate
        self.t_tokens = 0.0
        self.rnd = bank.streams("lb.probe")
        self.forwarded = 0
        self.limited = 0
        self.no_target = 0
        self.events: list[tuple[float, str, str]] = []  # (time, node, "inactive"/"active")
        self.reject_bins = bank.log.bin("lb_rejected")

    def start(self) -> None:
        self.clock.call_at(self.rnd.random() * self.cfg.probe_interval, self._probe_round)

    # ------------------------------------------------------------------ health probes
    def _probe_round(self) -> None:
        now = self.sim.env._now
        net = self.bank.net
        topo = self.topo
        for i, node in enumerate(self.targets):
            ok = self.bank.host_ok(node, True) and topo.proc_up[node] and not topo.proc_hung[node]
            t = now + net.delay() + net.delay() if ok else now + self.cfg.probe_timeout
            self.clock.call_at(t, self._probe_result, i, ok)
        self.clock.call_at(now + self.cfg.probe_interval, self._probe_round)

    def _probe_result(self, i: int, ok: bool) -> None:
        now = self.sim.env._now
        name = self.topo.names[self.targets[i]]
        if ok:
            self.fails[i] = 0
            self.oks[i] += 1
            if not self.active[i] and self.oks[i] >= self.cfg.recover_threshold:
                self.active[i] = True
                self.events.append((now, name, "active"))
        else:
            self.oks[i] = 0
            self.fails[i] += 1
            if self.active[i] and self.fails[i] >= self.cfg.probe_threshold:
                self.active[i] = False
                self.events.append((now, name, "inactive"))

    # ------------------------------------------------------------------ forwarding
    def choose(self, p: int) -> int:
        act = [n for n, a in zip(self.targets, self.active) if a]
        if not act:
            return -1
        alg = self.cfg.algorithm
        if alg == "priority":
            return act[0]
        if alg == "hash":
            k = p % len(self.targets)  # the phone's own node; if inactive the next active one
            for j in range(len(self.targets)):
                i = (k + j) % len(self.targets)
                if self.active[i]:
                    return self.targets[i]
        self.rr += 1
        return act[self.rr % len(act)]

    def arrive(self, p: int, tx: int, expires: float) -> None:
        """A REGISTER (or a retransmission) reaches the balancer."""
        now = self.sim.env._now
        bank = self.bank
        if self.rate:
            self.tokens = min(self.rate if self.rate >= 1 else 1.0, self.tokens + (now - self.t_tokens) * self.rate)
            self.t_tokens = now
            if self.tokens < 1.0:
                self.limited += 1
                self.reject_bins.add(now)
                bank.reply(p, tx, now, 503, 0.0, self.cfg.retry_after, bank.path())
                return
            self.tokens -= 1.0
        node = self.choose(p)
        if node < 0:
            self.no_target += 1
            bank.reply(p, tx, now, 503, 0.0, 0.0, bank.path())
            return
        self.forwarded += 1
        if not bank.host_ok(node, True):
            bank.lost(p, tx)
            return
        bank.receivers[node](p, tx, expires, None, True)
