"""The topology: what every component may know about the nodes, and who serves the VIP.

A registrar pair is a few machines. Each has power (up or down, bumped *boot epoch* on every
change), a network link, a path from the phones (``phone_link``), an HA daemon in some state
(master, backup, fault, down) with a priority, and a registrar process (running, hung, or stopped,
with its own process epoch). Node pairs can be partitioned from each other (a split brain). From
these facts follow the two answers most questions about a failover come down to:

* the **VIP owner** — the node that answers ARP for the virtual IP: an up master, the highest
  priority if several claim it;
* the **serving node** — the node that calls routed to the VIP actually reach: the one the call
  ingress's ARP entry points at, if it is an up master whose registrar runs and which the phones
  can reach (-1 when nobody serves).

This object is the port through which components share those facts: each component writes the
facts it owns (the HA daemon its state, the registrar its process state, the fault table the
power and the links) and calls :meth:`changed`; every change of the serving node and of each
registrar's availability is logged, and subscribers (the phones' keep-alives) are told. No
component reaches a sibling through the model; they meet here.
"""

from __future__ import annotations

from typing import Callable

MASTER, BACKUP, FAULT, DOWN = "master", "backup", "fault", "down"


class Topology:
    def __init__(self, names: list[str], priorities: list[int], log):
        n = len(names)
        self.names = list(names)
        self.n = n
        self.log = log
        self.node_up = [True] * n
        self.epoch = [0] * n  # boot epoch: bumped when the node stops and when it comes back
        self.link = [True] * n  # the node's network link
        self.phone_link = [True] * n  # the phones' side reaches the node
        self.partitions: set[tuple[int, int]] = set()
        self.ha_state = [DOWN] * n
        self.priority = list(priorities)
        self.proc_up = [True] * n  # the registrar process runs
        self.proc_hung = [False] * n  # it takes requests and never answers
        self.proc_epoch = [0] * n  # bumped on every stop and start of the process
        self.ingress = -1  # the node the call ingress's ARP entry for the VIP points at
        self.fenced: set[int] = set()
        self._avail: list[bool | None] = [None] * n
        self._serving: int | None = None
        self.subscribers: list[Callable[[float], None]] = []
        log.availability = []

    # ------------------------------------------------------------------ queries
    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(name) from None

    def link_ok(self, node: int) -> bool:
        """The node is up and its link is up."""
        return self.node_up[node] and self.link[node]

    def path_up(self, a: int, b: int) -> bool:
        """Can packets (VRRP adverts, heartbeats, replication) pass between nodes a and b?"""
        return self.link_ok(a) and self.link_ok(b) and (min(a, b), max(a, b)) not in self.partitions

    def vip_owner(self) -> int:
        """The node that answers ARP for the VIP: an up master (the highest priority if several)."""
        best, prio = -1, -1
        for i in range(self.n):
            if self.ha_state[i] == MASTER and self.priority[i] > prio and self.link_ok(i):
                best, prio = i, self.priority[i]
        return best

    def takes_vip_packets(self, node: int) -> bool:
        """Does the node's kernel take packets addressed to the VIP (up, link up, master)?"""
        return self.link_ok(node) and self.ha_state[node] == MASTER

    def answering(self, node: int) -> bool:
        """Is the node's registrar answering (node and link up, process running, not hung)?"""
        return self.link_ok(node) and self.proc_up[node] and not self.proc_hung[node]

    def serving_node(self) -> int:
        """The node that answers calls routed to the VIP (the ingress's ARP entry): -1 = none."""
        n = self.ingress
        if (n >= 0 and self.ha_state[n] == MASTER and self.proc_up[n] and self.link_ok(n)
                and self.phone_link[n]):
            return n
        return -1

    # ------------------------------------------------------------------ change notification
    def note_availability(self, t: float) -> None:
        """Log every registrar whose availability (up, link up, process answering) changed."""
        for i in range(self.n):
            a = self.answering(i)
            if a != self._avail[i]:
                self._avail[i] = a
                self.log.availability.append((t, i, a))

    def changed(self, t: float) -> None:
        """Something in the topology changed at ``t``: log, and tell the subscribers."""
        self.note_availability(t)
        for fn in self.subscribers:
            fn(t)
        s = self.serving_node()
        if s != self._serving:
            self._serving = s
            self.log.serving.append((t, s))
