"""The network between phones and registrar nodes: delay, loss, and where the VIP's packets go.

Phones send to the virtual IP. Which *node* receives a packet is decided at layer 2: the sender's
ARP entry for the VIP holds the MAC of the node that last announced it with a gratuitous ARP
(keepalived sends ``garp_master_repeat`` GARPs on becoming master and another burst
``garp_master_delay`` later). A node that is down, or up but no longer holding the VIP, drops what
it gets.

Hosts that miss every GARP keep the old MAC (Linux updates an existing entry on a GARP but never
learns one it missed). Their entry stays REACHABLE for up to 1.5 × ``base_reachable_time`` after
its last confirmation; the first packet after that starts DELAY (``delay_first_probe_time``), then
``ucast_solicit`` unicast probes ``retrans_time`` apart go to the old MAC; unanswered, the entry
fails and the next packet re-resolves by broadcast, reaching the new owner. In ``gateway`` mode the
phones sit behind one router whose single ARP entry (Cisco IOS timeout 4 h) carries everyone.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simsip.config.schema import Network as NetworkCfg
from simsip.engine.dists import sampler

if TYPE_CHECKING:  # pragma: no cover
    from simsip.engine.model import Model


class Network:
    def __init__(self, model: "Model", cfg: NetworkCfg, phones: int):
        self.model = model
        self.cfg = cfg
        self.delay = sampler(cfg.delay, model.streams("network.delay"))
        self.loss = cfg.loss
        self.rnd = model.streams("network.loss")
        self.arp_rnd = model.streams("network.arp")
        self.vip_mac = -1  # node whose MAC hosts use for the VIP (reliable-GARP view)
        arp = cfg.arp
        self.lossy_arp = arp.garp_loss > 0
        self.mode = arp.mode
        self.probe_time = arp.delay_first_probe_time + arp.ucast_solicit * arp.retrans_time
        if self.lossy_arp and self.mode == "per_phone":
            self.arp_node = [-1] * phones
            self.arp_reach_until = [math.inf] * phones
            self.arp_fail_at = [math.inf] * phones
        self.gw_node = -1
        self.gw_switch_at = math.inf
        self.gw_next = -1

    # ------------------------------------------------------------------ GARP
    def garp(self, node: int, t: float, repeat: int, initial: bool = False) -> None:
        """Node ``node`` announces the VIP with a burst of ``repeat`` GARPs at time ``t``."""
        self.model.log.garps.append((t, node))
        if initial or not self.lossy_arp:
            self.vip_mac = node
            if self.lossy_arp:
                if self.mode == "per_phone":
                    self.arp_node = [node] * len(self.arp_node)
                self.gw_node = node
            self.model.update_serving(t)
            return
        miss = self.cfg.arp.garp_loss ** repeat  # all copies of the burst missed
        base = self.cfg.arp.base_reachable_time
        if self.mode == "per_phone":
            import numpy as np

            gen = self.model.streams.generator(f"network.arp.garp.{t!r}")
            n = len(self.arp_node)
            got = gen.random(n) >= miss
            reach = t + gen.random(n) * 1.5 * base
            arp_node, reach_until, fail_at = self.arp_node, self.arp_reach_until, self.arp_fail_at
            for p in np.flatnonzero(got).tolist():
                arp_node[p] = node
                fail_at[p] = math.inf
            for p in np.flatnonzero(~got).tolist():
                if arp_node[p] != node:
                    reach_until[p] = float(reach[p])
        else:
            if self.arp_rnd.random() >= miss:
                self.gw_node = node
                self.gw_switch_at = math.inf
            elif self.gw_node != node:
                # the router keeps the stale entry until its ARP timeout ages it out
                self.gw_switch_at = t + self.arp_rnd.random() * self.cfg.arp.gateway_timeout
        self.vip_mac = node
        self.model.update_serving(t)

    # ------------------------------------------------------------------ routing
    def target(self, phone: int, t: float) -> int:
        """The node that receives a packet a phone sends to the VIP at time ``t`` (-1: none)."""
        if not self.lossy_arp:
            return self.vip_mac
        owner = self.model.vip_owner()
        if self.mode == "gateway":
            if self.gw_node != owner and t >= self.gw_switch_at and owner >= 0:
                self.gw_node = owner
                self.gw_switch_at = math.inf
            return self.gw_node
        n = self.arp_node[phone]
        if n == owner or owner < 0:
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
