"""The network between phones and registrar nodes: delay, loss, and where the VIP's packets go.

Phones send to the virtual IP. Which *node* receives a packet is decided at layer 2: the sender's
ARP entry for the VIP holds the MAC of the node that last announced it with a gratuitous ARP
(keepalived sends ``garp_master_repeat`` GARPs on becoming master and another burst
``garp_master_delay`` later). A node that is down, or up but no longer holding the VIP, drops what
it gets.

Hosts that miss every GARP — or whose entry points at a node that gave the VIP up without anyone
announcing it again (a split brain healed the wrong way round, keepalived#893) — keep the old MAC.
Linux updates an existing entry on a GARP but never learns one it missed; the entry stays REACHABLE
for up to 1.5 × ``base_reachable_time`` after its last confirmation; the first packet after that
starts DELAY (``delay_first_probe_time``), then ``ucast_solicit`` unicast probes ``retrans_time``
apart go to the old MAC; unanswered, the entry fails and the next packet re-resolves by broadcast,
reaching the node that holds the VIP. In ``gateway`` mode the phones sit behind one router whose
single ARP entry (Cisco IOS timeout 4 h, no probing) carries everyone.

The *ingress* — the proxy or SBC that sends incoming calls to the VIP — is one more host with its
own ARP entry; it decides which node's bindings a call is looked up in.

While every host follows every GARP (the common case) no per-phone state exists: all traffic goes
to the last announcer. Per-phone neighbour entries are created only when some host can diverge.

Requests and replies draw their delay and loss from separate streams (``network.delay``/``loss``
for what phones send, ``network.reply.*`` for what registrars answer): the registrar draws its
reply's path when the request arrives, so neither stream's order depends on when completions are
processed. The network reads node facts from the topology and writes the ingress's ARP entry
there; its own ARP timers run on the control clock.
"""

from __future__ import annotations

import math

import numpy as np

from simsip.config.schema import Network as NetworkCfg
from simsip.engine.dists import sampler

LOST = -1.0  # reply paths at or below this lose the packet (see Network.reply_path)


class Network:
    def __init__(self, cfg: NetworkCfg, phones: int, *, topo, clock, streams, log):
        self.topo = topo
        self.clock = clock
        self.streams = streams
        self.log = log
        self.cfg = cfg
        self.n = phones
        self.delay = sampler(cfg.delay, streams("network.delay"))
        self.reply_delay = sampler(cfg.delay, streams("network.reply.delay"))
        self.loss = cfg.loss
        self.rnd = streams("network.loss")
        self.reply_rnd = streams("network.reply.loss")
        self.arp_rnd = streams("network.arp")
        self.constant_delay = cfg.delay.dist == "constant" or (cfg.delay.dist in ("normal", "lognormal") and cfg.delay.sd == 0)
        arp = cfg.arp
        self.mode = arp.mode
        self.probe_time = arp.delay_first_probe_time + arp.ucast_solicit * arp.retrans_time
        self.vip_mac = -1  # the last announcer: where every host's traffic goes in the common case
        self.lossy_arp = False  # per-host neighbour entries in use
        self.ingress_mac = -1
        self.ingress_fail_at = math.inf
        self._garp_count = 0
        if arp.garp_loss > 0:
            self._enable_per_host(-1, 0.0, stale=False)

    @property
    def ingress_mac(self) -> int:
        return self.topo.ingress

    @ingress_mac.setter
    def ingress_mac(self, node: int) -> None:
        self.topo.ingress = node

    def reply_path(self) -> float:
        """The trip of one reply back to its phone: its delay d >= 0, or ``LOST - d`` when the
        packet is lost (a reliable transport then resends it after its RTO, taking d)."""
        d = self.reply_delay()
        if self.loss > 0 and self.reply_rnd.random() < self.loss:
            return LOST - d
        return d

    # ------------------------------------------------------------------ per-host ARP state
    def _enable_per_host(self, node: int, t: float, stale: bool) -> None:
        """Give every phone (or the gateway) its own neighbour entry, currently pointing at ``node``."""
        self.lossy_arp = True
        base = self.cfg.arp.base_reachable_time
        if self.mode == "per_phone":
            self.arp_node = [node] * self.n
            self.arp_fail_at = [math.inf] * self.n
            if stale:
                gen = self.streams.generator(f"network.arp.entries.{t!r}")
                self.arp_reach_until = (t + gen.random(self.n) * 1.5 * base).tolist()
            else:
                self.arp_reach_until = [math.inf] * self.n
        self.gw_node = node
        self.gw_switch_at = math.inf
        if stale and self.mode == "gateway":
            self.gw_switch_at = t + self.arp_rnd.random() * self.cfg.arp.gateway_timeout

    # ------------------------------------------------------------------ GARP
    def garp(self, node: int, t: float, repeat: int, initial: bool = False) -> None:
        """Node ``node`` announces the VIP with a burst of ``repeat`` GARPs at time ``t``."""
        if not initial and not self.topo.link_ok(node):
            return
        self.log.garps.append((t, node))
        self._garp_count += 1
        miss = 0.0 if initial else self.cfg.arp.garp_loss ** repeat  # every copy of the burst missed
        # the ingress
        if miss == 0.0 or self.arp_rnd.random() >= miss:
            self.ingress_mac = node
            self.ingress_fail_at = math.inf
        else:
            self._ingress_orphaned(t)
        self.vip_mac = node
        if self.lossy_arp:
            if self.mode == "per_phone":
                if miss == 0.0:
                    self.arp_node = [node] * self.n
                    self.arp_fail_at = [math.inf] * self.n
                else:
                    gen = self.streams.generator(f"network.arp.garp.{self._garp_count}")
                    got = gen.random(self.n) >= miss
                    reach = t + gen.random(self.n) * 1.5 * self.cfg.arp.base_reachable_time
                    arp_node, reach_until, fail_at = self.arp_node, self.arp_reach_until, self.arp_fail_at
                    for p in np.flatnonzero(got).tolist():
                        arp_node[p] = node
                        fail_at[p] = math.inf
                    for p in np.flatnonzero(~got).tolist():
                        if arp_node[p] != node and reach_until[p] == math.inf:
                            reach_until[p] = float(reach[p])
            else:
                if miss == 0.0 or self.arp_rnd.random() >= miss:
                    self.gw_node = node
                    self.gw_switch_at = math.inf
                elif self.gw_node != node and self.gw_switch_at == math.inf:
                    # the router keeps the stale entry until its ARP timeout ages it out
                    self.gw_switch_at = t + self.arp_rnd.random() * self.cfg.arp.gateway_timeout
        self.topo.changed(t)

    def vip_released(self, node: int, t: float) -> None:
        """``node`` stopped holding the VIP. If another node holds it without having announced it,
        hosts still pointing at ``node`` are orphaned until their neighbour entries fail."""
        owner = self.topo.vip_owner()
        if owner < 0 or owner == node:
            return
        if self.vip_mac == node and not self.lossy_arp:
            self._enable_per_host(node, t, stale=True)
        if self.ingress_mac == node:
            self._ingress_orphaned(t)

    def _ingress_orphaned(self, t: float) -> None:
        """The ingress's entry no longer leads to the VIP holder: it fails after REACHABLE + probes."""
        if self.ingress_fail_at == math.inf:
            reach = self.arp_rnd.random() * 1.5 * self.cfg.arp.base_reachable_time
            self.ingress_fail_at = t + reach + self.probe_time
            self.clock.call_at(self.ingress_fail_at, self._ingress_resolve)

    def _ingress_resolve(self) -> None:
        t = self.clock.now
        if t < self.ingress_fail_at:
            return
        owner = self.topo.vip_owner()
        self.ingress_fail_at = math.inf
        if owner >= 0 and self.ingress_mac != owner:
            self.ingress_mac = owner
            self.topo.changed(t)

    # ------------------------------------------------------------------ routing
    def target(self, phone: int, t: float) -> int:
        """The node that receives a packet a phone sends to the VIP at time ``t`` (-1: none)."""
        if not self.lossy_arp:
            return self.vip_mac
        owner = self.topo.vip_owner()
        if self.mode == "gateway":
            if self.gw_node != owner and t >= self.gw_switch_at and owner >= 0:
                self.gw_node = owner
                self.gw_switch_at = math.inf
            return self.gw_node
        n = self.arp_node[phone]
        if n == owner or owner < 0 or (n >= 0 and self.topo.ha_state[n] == "master"):
            return n
        fail_at = self.arp_fail_at[phone]
        if fail_at == math.inf:
            if t >= self.arp_reach_until[phone]:  # STALE: this packet starts DELAY, then PROBE
                self.arp_fail_at[phone] = t + self.probe_time
            return n
        if t >= fail_at:  # probes unanswered: re-resolve by broadcast
            self.arp_node[phone] = owner
            self.arp_fail_at[phone] = math.inf
            self.arp_reach_until[phone] = math.inf
            return owner
        return n

    def lost(self) -> bool:
        return self.loss > 0 and self.rnd.random() < self.loss
