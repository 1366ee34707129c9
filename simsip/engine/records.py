"""Typed records that processes append to while the model runs.

Statistics are computed after the run (``simsip.metrics``) from these records, never inside the
processes. To stay affordable for million-phone fleets the records are compact: binding saves and
phone outcomes are columns of machine numbers (``array.array``), and per-interval counts
(REGISTER arrivals, responses by class, retransmissions, queue length) are aggregated on the fly
into one bin per output resolution step.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field


class Bins:
    """Counts per time bin of width ``res`` over ``[0, horizon]``."""

    __slots__ = ("res", "inv", "n", "v")

    def __init__(self, res: float, horizon: float):
        self.res = res
        self.inv = 1.0 / res
        self.n = int(horizon * self.inv) + 2
        self.v = [0] * self.n

    def add(self, t: float, k: int = 1) -> None:
        i = int(t * self.inv)
        if 0 <= i < self.n:
            self.v[i] += k

    def max(self, t: float, value: int) -> None:
        i = int(t * self.inv)
        if 0 <= i < self.n and value > self.v[i]:
            self.v[i] = value


class StoreLog:
    """Every binding save of one binding store, and the times the store lost its content."""

    __slots__ = ("t", "phone", "until", "clears", "sorted_cache")

    def __init__(self) -> None:
        self.t = array("d")
        self.phone = array("q")
        self.until = array("d")
        self.clears: list[float] = []
        self.sorted_cache = None  # (phone, t, until) sorted by phone then time, built after the run


class ConnLog:
    """Connections of connection-bound phones (TCP/TLS behind NAT, or rewritten contacts) and the
    connection each of their bindings was registered over.

    Connection ``c`` (its id is its row) was opened by ``phone[c]`` to ``node[c]`` at ``t0[c]``; it
    ends at the first of its ``closes`` (the phone dropped it) or of the node's ``stops`` after
    ``t0`` (its registrar process stopped: every socket of the process is gone). A binding that a
    worker saved is identified by its (phone, until), which every copy of it (replica, database,
    storage) keeps: ``saved_*`` says over which connection it was registered.
    """

    __slots__ = ("phone", "node", "t0", "close_cid", "close_t", "stops", "saved_phone", "saved_until", "saved_cid",
                 "bound")

    def __init__(self) -> None:
        self.phone = array("q")
        self.node = array("q")
        self.t0 = array("d")
        self.close_cid = array("q")
        self.close_t = array("d")
        self.stops: list[tuple[float, int]] = []
        self.saved_phone = array("q")
        self.saved_until = array("d")
        self.saved_cid = array("q")
        self.bound = None  # per registration slot: is it connection-bound (numpy bool array)

    def open(self, phone: int, node: int, t: float) -> int:
        self.phone.append(phone)
        self.node.append(node)
        self.t0.append(t)
        return len(self.t0) - 1

    def close(self, cid: int, t: float) -> None:
        self.close_cid.append(cid)
        self.close_t.append(t)

    def saved(self, phone: int, until: float, cid: int) -> None:
        self.saved_phone.append(phone)
        self.saved_until.append(until)
        self.saved_cid.append(cid)


@dataclass
class FaultRecord:
    index: int
    kind: str
    node: str
    time: float
    repair_time: float | None = None


@dataclass
class RunLog:
    """Everything one replication recorded."""

    horizon: float
    res: float
    node_names: list[str]
    # phone outcomes: time, phone, value (> 0: registered until; -1: failure; -2: timeout)
    ph_t: array = field(default_factory=lambda: array("d"))
    ph_p: array = field(default_factory=lambda: array("q"))
    ph_v: array = field(default_factory=lambda: array("d"))
    stores: list[StoreLog] = field(default_factory=list)
    store_of_node: list[int] = field(default_factory=list)
    # (time, node index or -1): who serves calls to the VIP from then on
    serving: list[tuple[float, int]] = field(default_factory=list)
    # (time, node, state) VRRP transitions
    vrrp: list[tuple[float, str, str]] = field(default_factory=list)
    # (time, node) adverts sent (kept only around faults would be enough; they are few)
    adverts: list[tuple[float, int]] = field(default_factory=list)
    garps: list[tuple[float, int]] = field(default_factory=list)
    # (time, node, "fail"/"ok") health-check verdicts that changed keepalived's state
    checks: list[tuple[float, str, str]] = field(default_factory=list)
    # (time, store, phone count) full syncs of a restarted node, and replication messages lost
    syncs: list[tuple[float, int, int]] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    repairs: list[tuple[float, str]] = field(default_factory=list)
    # trunk registrations (:mod:`simsip.engine.trunks`): (time, trunk, node running it or -1),
    # (trunk, provider save time, binding expiry, node), (trunk, time, response code or -1 = gave up)
    trunk_nodes: list[tuple[float, int, int]] = field(default_factory=list)
    trunk_regs: list[tuple[int, float, float, int]] = field(default_factory=list)
    trunk_responses: list[tuple[int, float, int]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    bins: dict[str, Bins] = field(default_factory=dict)
    # connection-bound phones' connections and bindings (None: no such fleet)
    conns: ConnLog | None = None
    # how the run was simulated (bulk refreshes, fallbacks to events): never part of the results
    engine: dict = field(default_factory=dict)
    error: str | None = None

    def bin(self, name: str) -> Bins:
        b = self.bins.get(name)
        if b is None:
            b = self.bins[name] = Bins(self.res, self.horizon)
        return b
