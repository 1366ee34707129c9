"""LabSpec: everything one real-lab run needs (all times are float seconds)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from simsip import faults as fault_table
from simsip.protocols import vrrp

VARIANTS = ("memory", "dmq", "shared_db")
#: Kamailio usrloc db_mode the lab can generate: 0 (memory, dmq), 3 (shared_db: one table); 1
#: (write-through) and 2 (write-back), each node with a database of its own on the lab's PostgreSQL
#: and a start-up preload of its `location` table (:func:`simsip.lab.configs.db_name`; the preload
#: itself is timed by :mod:`simsip.lab.preload`)
DB_MODES = (0, 1, 2, 3)
FAULT_KINDS = tuple(fault_table.LAB_KINDS.values())  # the lab's names of the kinds it can realise
FAULT_NODES = ("a", "b", "master", "backup")
#: at most this many real baresip user agents next to the SIPp phones (one process each)
MAX_BARESIP = 10
TRANSPORTS = ("udp", "tcp")
#: Kamailio children per listen socket the lab allows (the lab machine has 2 cores)
MAX_WORKERS = 32
#: 5060: probes share the registrar's socket; 5061: a probe socket of its own
PROBE_PORTS = (5060, 5061)


@dataclass(frozen=True)
class Fault:
    """One fault: ``kind`` on ``node`` at scenario time ``at``; repaired ``repair_after`` s later.

    kinds: node_crash (link down + SIGKILL of kamailio and keepalived; repair = reboot as an
    operator restarts the node: VIP flushed, link up, Kamailio started and listening, then
    keepalived, which comes up as BACKUP and preempts — or, with nopreempt, stays backup),
    process_crash (SIGKILL of kamailio; repair = start it, empty), link_down (node's switch port
    down; repair = up), partition (the two nodes drop each other's traffic, node given is
    ignored; repair = heal), restart (SIGTERM kamailio and start it again after ``repair_after``
    or at once), ha_stop (SIGTERM keepalived: a priority-0 advert; repair = start it again).
    """

    kind: str
    node: str
    at: float
    repair_after: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {self.kind!r} not in {FAULT_KINDS}")
        if self.node not in FAULT_NODES:
            raise ValueError(f"fault node {self.node!r} not in {FAULT_NODES}")
        if self.at < 0:
            raise ValueError("fault time must be >= 0 (scenario time)")
        if self.repair_after is not None and self.repair_after < 0:
            raise ValueError("repair_after must be >= 0")


def _as_fault(f: Any) -> Fault:
    if isinstance(f, Fault):
        return f
    if isinstance(f, dict):
        return Fault(**f)
    return Fault(*f)


@dataclass(frozen=True)
class LabSpec:
    """One lab run, as :func:`simsip.lab.bridge.spec_from_scenario` maps a scenario onto it.

    Phones: one SIPp process (``transport`` udp: one socket, Timer E retransmissions from ``t1``
    capped at ``t2``, ``max_retrans`` K; tcp: one connection per phone, each REGISTER sent once and
    ``timeout`` waited for). Registrar: two Kamailio nodes with ``workers`` children, an optional
    constant ``service_time`` (usleep per REGISTER) and ``maxbuffer``; ``rmem_default``/``rmem_max``
    are what the node namespaces must see (checked, not set: not per netns on the lab's kernel).
    keepalived: VRRP ``vrrp_version``/``advert_int``/priorities/preempt, an optional track_script
    (``track_interval``, fall/rise, ``track_weight`` [``track_reverse``]). The runner waits a random
    U[0, advert_int) after the first MASTER before phones and prober start (meta ``phase_delay``).
    """

    # phones
    phones: int = 20
    expires: float = 60.0                 # requested Expires
    refresh_fraction: float | None = 0.5  # refresh after fraction*expires ...
    refresh_margin: float | None = None   # ... or expires - margin (exactly one of the two)
    t1: float = 0.5
    t2: float = 4.0
    max_retrans: int = 9                  # SIPp K: K=9 -> timeout after 31.5 s at T1 0.5/T2 4
    retry_interval: float = 10.0          # fixed wait after a timeout/error before a new REGISTER
    transport: str = "udp"                # udp (SIPp -t u1: one socket, Timer E retransmissions) or
                                          # tcp (SIPp -t tn: one connection per phone, no SIP
                                          # retransmissions; reconnects after a reset, see configs)
    tcp_timeout: float | None = None      # tcp: how long a phone waits for the 200 (Timer F;
                                          # None: 64·t1, RFC 3261)
    baresip_transport: str = "udp"        # udp or tcp: how the baresip UAs register
    baresip: int = 0                      # real baresip UAs (AORs baresip001..), regint = expires;
                                          # they refresh at 90 % of the grant and back off per
                                          # RFC 5626 (libre failwait) on their own
    # registrar
    variant: str = "memory"               # memory | dmq | shared_db
    db_mode: int | None = None            # usrloc db_mode; None: the variant's (0, or 3 for shared_db);
                                          # 1 or 2 (variant memory only): PostgreSQL in the db namespace,
                                          # `preload` of location at start (simsip.lab.preload)
    min_expires: float = 10.0
    max_expires: float = 3600.0
    workers: int = 2                      # Kamailio `children` (UDP workers per listen socket; TCP
                                          # workers too when transport is tcp)
    service_time: float = 0.0             # s of usleep() (cfgutils) per REGISTER, before save();
                                          # 0: none, Kamailio at its own speed
    replication_delay: float = 0.0        # dmq: s of usleep() on the receiving node before it
                                          # applies a KDMQ update (a slow or loaded peer); 0: none
    rmem_default: int | None = None       # net.core.rmem_default inside each node's namespace
    rmem_max: int | None = None           # net.core.rmem_max there (None: the kernel's default)
    maxbuffer: int | None = None          # Kamailio core maxbuffer (largest SO_RCVBUF it probes for)
    probe_port: int = 5060                # the registrar port the OPTIONS prober asks; 5061 is a
                                          # socket of its own (two workers, own receive buffer) so
                                          # that probes do not queue with REGISTERs
    # keepalived
    vrrp_version: int = 2
    advert_int: float = 1.0
    priority_a: int = 200
    priority_b: int = 100
    preempt: bool = True
    preempt_delay: float = 0.0
    garp_master_delay: float = 5.0
    garp_master_repeat: int = 5
    vrrp_unicast: bool = True
    track_interval: float | None = None   # track_script (UDP 5060 socket of kamailio) if set
    track_fall: int = 1
    track_rise: int = 1
    track_weight: int = 0                 # 0: FAULT on failure; else the priority adjustment
    track_reverse: bool = False           # keepalived `weight W reverse`
    # prober
    probe_interval: float = 1.0           # seconds between OPTIONS rounds over all AORs
    # scenario
    faults: tuple[Fault, ...] = ()
    duration: float = 90.0                # scenario length after t=0
    warmup: float | None = None           # before t=0; default refresh_interval + 5 s
    run_id: str | None = None             # namespace infix; default random
    refresh_interval: float = field(init=False)

    def __post_init__(self) -> None:
        faults = tuple(_as_fault(f) for f in (self.faults or ()))
        object.__setattr__(self, "faults", faults)
        if (self.refresh_fraction is None) == (self.refresh_margin is None):
            raise ValueError("give exactly one of refresh_fraction and refresh_margin")
        if self.refresh_fraction is not None:
            if not 0 < self.refresh_fraction <= 1:
                raise ValueError("refresh_fraction must be in (0, 1]")
            ri = self.expires * self.refresh_fraction
        else:
            ri = self.expires - float(self.refresh_margin)  # type: ignore[arg-type]
        if ri <= 0:
            raise ValueError("refresh interval must be > 0")
        object.__setattr__(self, "refresh_interval", float(ri))
        if self.warmup is None:
            object.__setattr__(self, "warmup", float(ri) + 5.0)
        if self.phones < 1:
            raise ValueError("phones must be >= 1")
        if not 0 <= self.baresip <= MAX_BARESIP:
            raise ValueError(f"baresip must be in 0..{MAX_BARESIP}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant {self.variant!r} not in {VARIANTS}")
        if self.db_mode is not None:
            if self.db_mode not in DB_MODES:
                raise ValueError(f"db_mode {self.db_mode!r} not in {DB_MODES}")
            want = 3 if self.variant == "shared_db" else 0
            if self.db_mode in (1, 2) and self.variant != "memory":
                raise ValueError(f"db_mode {self.db_mode} (a local table preloaded at start) needs variant 'memory', "
                                 f"not {self.variant!r}")
            if self.db_mode in (0, 3) and self.db_mode != want:
                raise ValueError(f"db_mode {self.db_mode} does not fit variant {self.variant!r} (it runs db_mode {want})")
        if self.vrrp_version not in (2, 3):
            raise ValueError("vrrp_version must be 2 or 3")
        if self.vrrp_version == 2 and (self.advert_int < 1 or self.advert_int != int(self.advert_int)):
            raise ValueError("VRRPv2 takes whole-second advert_int >= 1; use vrrp_version=3")
        if self.vrrp_version == 3 and self.advert_int < 0.01:
            raise ValueError("VRRPv3 advert_int must be >= 0.01 s")
        for p in (self.priority_a, self.priority_b):
            if not 1 <= p <= 254:
                raise ValueError("priorities must be in 1..254")
        if self.priority_a == self.priority_b:
            raise ValueError("priority_a and priority_b must differ")
        if self.t1 <= 0 or self.t2 < self.t1 or self.max_retrans < 0:
            raise ValueError("need 0 < t1 <= t2 and max_retrans >= 0")
        if self.probe_interval <= 0 or self.duration <= 0 or self.retry_interval < 0:
            raise ValueError("probe_interval, duration must be > 0, retry_interval >= 0")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport {self.transport!r} not in {TRANSPORTS}")
        if self.baresip_transport not in TRANSPORTS:
            raise ValueError(f"baresip_transport {self.baresip_transport!r} not in {TRANSPORTS}")
        if self.tcp_timeout is not None and self.tcp_timeout <= 0:
            raise ValueError("tcp_timeout must be > 0")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be in 1..{MAX_WORKERS}")
        if not 0 <= self.service_time <= 1.0:
            raise ValueError("service_time must be in [0, 1] s")
        for name in ("rmem_default", "rmem_max", "maxbuffer"):
            val = getattr(self, name)
            if val is not None and not 256 <= val <= 1 << 30:
                raise ValueError(f"{name} must be in 256..2^30 bytes")
        if self.probe_port not in PROBE_PORTS:
            raise ValueError(f"probe_port must be one of {PROBE_PORTS}")
        if not -253 <= self.track_weight <= 253:
            raise ValueError("track_weight must be in -253..253 (keepalived)")
        if self.track_reverse and self.track_weight == 0:
            raise ValueError("track_reverse needs a non-zero track_weight")
        if not 0 < self.min_expires <= self.max_expires:
            raise ValueError("need 0 < min_expires <= max_expires")
        for f in faults:
            if f.at > self.duration:
                raise ValueError(f"fault at {f.at} s is after the end of the run ({self.duration} s)")

    # --- derived -----------------------------------------------------------------
    def skew_time(self, prio: int) -> float:
        """VRRP Skew_Time: v2 (RFC 3768) (256-p)/256 s; v3 (RFC 5798) (256-p)*advert/256."""
        return vrrp.skew_time(self.vrrp_version, prio, self.advert_int)

    def master_down_interval(self, prio: int) -> float:
        """3·advert_int + Skew_Time (the lab's keepalived has down_timer_adverts 3)."""
        return vrrp.master_down_interval(self.vrrp_version, prio, self.advert_int)

    @property
    def timeout(self) -> float:
        """TCP: how long a SIPp phone waits for the 200 (``tcp_timeout`` or 64·T1)."""
        return float(self.tcp_timeout) if self.tcp_timeout is not None else 64.0 * self.t1

    @property
    def tcp(self) -> bool:
        """Kamailio listens on TCP too: the SIPp phones or the baresip UAs register over TCP."""
        return self.transport == "tcp" or (self.baresip > 0 and self.baresip_transport == "tcp")

    @property
    def usrloc_db_mode(self) -> int:
        """The usrloc db_mode Kamailio runs: ``db_mode``, else 3 for shared_db and 0 otherwise."""
        if self.db_mode is not None:
            return int(self.db_mode)
        return 3 if self.variant == "shared_db" else 0

    @property
    def uses_db(self) -> bool:
        """Kamailio needs the lab's PostgreSQL (db namespace): db_mode 1, 2 or 3."""
        return self.usrloc_db_mode != 0

    @property
    def priorities(self) -> tuple[int, int]:
        return (self.priority_a, self.priority_b)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["faults"] = [asdict(f) for f in self.faults]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LabSpec":
        d = dict(d)
        d.pop("refresh_interval", None)
        d["faults"] = tuple(_as_fault(f) for f in d.get("faults", ()))
        return cls(**d)


def faults_from(items: Iterable[Any]) -> tuple[Fault, ...]:
    return tuple(_as_fault(f) for f in items)
