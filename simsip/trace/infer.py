"""From a capture to a scenario: infer fleets, timers, the registrar and the HA setup.

:func:`infer_scenario` reads one or more pcap/pcapng files (or lab run directories) in one streamed
pass — packets are decoded and folded into per-phone and per-fleet accumulators as they come, the
event table of :func:`~simsip.trace.import_trace` is never built — and returns an
:class:`Inference`: every inferred value is an :class:`Estimate` with the number of observations
behind it, a 95 % interval (order statistics around the median) or "not observed", and the
evidence in words. :meth:`Inference.scenario_yaml` writes a scenario that ``simsip run`` accepts,
each value commented with its evidence, or with the profile it falls back to; each ``Estimate``
keeps a bounded sample of its observations, from which :mod:`simsip.report.infer_page` draws the
distributions (``simsip trace infer --out X.yaml`` writes that page as ``X.html``).

What is read from the wire:

* **phones** (fleets = ``User-Agent`` × transport): distinct AORs, requested and granted expiry,
  the refresh point (time from a 2xx to the phone's next REGISTER ÷ the expiry that 2xx granted),
  Timer E (gaps between retransmissions of one transaction), the number of retransmissions before
  a timeout, the wait after a timeout and after each error code, backoff across consecutive
  failures, Retry-After honoured or not, digest auth (401 then REGISTER with credentials) and
  keep-alives (UDP CRLF, OPTIONS from a phone's address) with their intervals;
* **registrar**: latency from the last copy of a request to its final response (service, queueing
  and the network round trip at the observed load), ``Min-Expires`` in 423s, the granted-expiry
  rule, which node answered (source address, the VRRP master for replies from the VIP, ``Server``),
  SIP-level replication (KDMQ requests between the nodes);
* **HA**: VRRP version, VRID, advert interval, priorities, the virtual address, each master and
  every change of master; gratuitous ARP bursts (size, and the second burst's delay) after a
  change; heartbeat (UDP 694) or corosync (UDP 5404/5405) traffic;
* a **weighted health check** (keepalived ``track_script``/``track_process`` with ``weight``, RFC 5798
  §6.4 through keepalived's ``vrrp_track.c``): the check does not put the master in FAULT, it changes
  the priority the master advertises — a step (say 200 → 150) between two adverts of a node that stays
  master. Its size is |w|; whether the lowered priority falls under the backup's (the weight covers
  the gap: the backup takes over one Master_Down_Interval after the last advert it accepted) or not
  (the VIP never moves) is read off the next master change. The sign is not on the wire (weight +w on
  base p−w advertises as weight −w on base p): the priority a node advertised most is taken as the
  healthy one, a step below it a failing check, a step above it ``reverse``;
* **preempt or nopreempt** from a failback: a node with a higher priority than the master's comes
  back (a restart recorded in the run's ``faults.json``) and takes the VIP back one Master_Down_Interval
  later (preempt; anything beyond that is the ``preempt_delay``), or never advertises again (nopreempt).
* **persistence** from a restart: a crashed registrar starts with what its storage holds. A node that
  after the repair answers OPTIONS for an AOR as registered although the AOR sent it no REGISTER since
  the fault had the binding from its table (``persistence: write_through``; usrloc db_mode 1 and 2
  look alike on the wire); memory-only, every such answer is 404. Not read where the nodes replicate.

Failover metrics (takeover, recovery) are those of ``simsip trace import``
(:func:`~simsip.trace.measure_trace`): they need the event table, so they are computed only when
the captures are small enough (``measure_limit`` bytes) and the result says when they were not.
"""

from __future__ import annotations

import heapq
import math
import os
import random
import re
import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simsip.protocols import transactions

from .importer import _RST, _SYN, _inputs, _TcpDirection, deduplicate
from .pcap import Datagram, Record, TraceError, decode_record, parse_vrrp, read_capture
from .sip import SipMessage, datagram_sip, parse_sip, unreadable_notes

__all__ = ["Estimate", "FleetInference", "HaInference", "Inference", "RegistrarInference", "infer_scenario",
           "write_inference"]

#: reservoir size per sampled quantity: memory stays bounded however long the capture
MAX_SAMPLES = 50_000
#: captures larger than this (bytes, all files) are not measured for failover metrics by default
MEASURE_LIMIT = 50 * 1024 * 1024
#: observations an :class:`Estimate` keeps for drawing its distribution (evenly spaced order statistics)
FIGURE_SAMPLES = 2_000

#: User-Agent substrings -> phone profile in models/phones (first match wins)
UA_PROFILES: tuple[tuple[str, str], ...] = (
    ("yealink", "yealink"),
    ("polycom", "polycom"),
    ("poly ", "polycom"),
    ("cisco", "cisco-mpp"),
    ("grandstream", "grandstream"),
    ("snom", "snom"),
    ("bria", "bria"),
    ("counterpath", "bria"),
    ("linphone", "linphone"),
    ("microsip", "microsip"),
    ("baresip", "baresip"),
    ("pjsua", "pjsua"),
    ("pjsip", "pjsua"),
)

#: Server header substrings -> registrar profile in models/registrars
SERVER_PROFILES: tuple[tuple[str, str], ...] = (
    ("kamailio", "kamailio"),
    ("opensips", "opensips"),
    ("asterisk", "asterisk-pjsip"),
    ("freeswitch", "freeswitch"),
)


# ---------------------------------------------------------------------------------------------
# Estimates
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """One inferred value: the median of ``n`` observations with a 95 % interval, or not observed.

    ``value`` is ``None`` when nothing in the capture shows it; ``lo``/``hi`` are ``None`` with
    fewer than 3 observations. ``unit`` is ``"s"`` for durations, ``""`` for pure numbers.
    ``quantiles`` holds p5, p25, p50, p75, p95 of the observations (empty when not observed);
    ``samples`` up to :data:`FIGURE_SAMPLES` of them, sorted (evenly spaced order statistics of the
    observations, or of their bounded reservoir), for drawing the distribution.
    """

    name: str
    value: float | None
    n: int
    lo: float | None = None
    hi: float | None = None
    unit: str = ""
    evidence: str = ""
    quantiles: tuple[float, ...] = ()
    samples: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @property
    def observed(self) -> bool:
        return self.value is not None

    def comment(self) -> str:
        if self.value is None:
            return f"not observed ({self.evidence})" if self.evidence else "not observed"
        if self.lo is None or self.hi is None:
            ci = "no interval"
        else:
            ci = f"95% CI {_fmt(self.lo, self.unit)}–{_fmt(self.hi, self.unit)}"
        extra = f"; {self.evidence}" if self.evidence else ""
        return f"n={self.n}, median {_fmt(self.value, self.unit)}, {ci}{extra}"


def _fmt(x: float, unit: str) -> str:
    if unit == "s":
        return duration_text(x)
    if unit == "%":
        return f"{x:.3g}%"
    return f"{x:.4g}"


def duration_text(seconds: float) -> str:
    """A duration with its unit, as the scenario YAML takes it (``250ms``, ``30s``; no exponent)."""
    if not math.isfinite(seconds):
        return "0s"
    if seconds != 0 and abs(seconds) < 1:
        ms = seconds * 1000
        if abs(ms) >= 0.01:
            return f"{ms:.4g}ms"
        us = seconds * 1e6
        return f"{us:.3g}us" if abs(us) >= 0.001 else "0s"
    if abs(seconds) >= 1e5:
        return f"{seconds:.0f}s"
    return f"{seconds:.6g}s"


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if not math.isfinite(x) else min(hi, max(lo, x))


def _printable(text: str) -> str:
    """Text safe on one YAML line (captures carry any byte: NEL, U+2028 or NUL would break it)."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


class _Samples:
    """A bounded uniform sample of a stream of numbers (reservoir), and the count of all."""

    __slots__ = ("n", "values", "_rng")

    def __init__(self) -> None:
        self.n = 0
        self.values: list[float] = []
        self._rng: random.Random | None = None  # made when the reservoir first overflows

    def add(self, x: float) -> None:
        if not math.isfinite(x):
            return
        self.n += 1
        if len(self.values) < MAX_SAMPLES:
            self.values.append(x)
        else:
            if self._rng is None:
                self._rng = random.Random(0x5153)
            j = self._rng.randrange(self.n)
            if j < MAX_SAMPLES:
                self.values[j] = x

    def extend(self, other: "_Samples") -> None:
        for x in other.values:
            self.add(x)
        self.n += other.n - len(other.values)

    def estimate(self, name: str, unit: str = "", evidence: str = "", missing: str = "") -> Estimate:
        return estimate(name, self.values, unit=unit, evidence=evidence, missing=missing, n=self.n)


def estimate(name: str, values: Iterable[float], *, unit: str = "", evidence: str = "", missing: str = "",
             n: int | None = None) -> Estimate:
    """Median of ``values`` with a distribution-free 95 % interval (binomial order statistics)."""
    xs = sorted(float(v) for v in values if math.isfinite(v))
    if not xs:
        return Estimate(name, None, 0, unit=unit, evidence=missing)
    k = len(xs)
    med = _quantile(xs, 0.5)
    lo = hi = None
    if k >= 3:
        half = 1.96 * math.sqrt(k) / 2
        lo = xs[max(0, int(math.floor(k / 2 - half)))]
        hi = xs[min(k - 1, int(math.ceil(k / 2 + half)) - 1)]
        lo, hi = min(lo, med), max(hi, med)
    qs = tuple(_quantile(xs, q) for q in (0.05, 0.25, 0.5, 0.75, 0.95))
    if k > FIGURE_SAMPLES:
        kept = tuple(xs[round(i * (k - 1) / (FIGURE_SAMPLES - 1))] for i in range(FIGURE_SAMPLES))
    else:
        kept = tuple(xs)
    return Estimate(name, med, n if n is not None else k, lo, hi, unit, evidence, qs, kept)


def _quantile(xs: list[float], q: float) -> float:
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    i = int(math.floor(pos))
    j = min(i + 1, len(xs) - 1)
    return xs[i] + (xs[j] - xs[i]) * (pos - i)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FleetInference:
    """A fleet: phones with the same ``User-Agent`` and transport."""

    name: str
    user_agent: str
    transport: str
    profile: str  # the phone profile in models/phones the values fall back to
    profile_reason: str
    phones: int  # distinct AORs
    addresses: int  # distinct source addresses (many AORs behind one: NAT or a simulator)
    transactions: int
    requested_expires: Estimate
    granted_expires: Estimate
    refresh_fraction: Estimate  # refresh time ÷ granted expiry, per refresh
    refresh_margin: Estimate  # granted expiry − refresh time
    refresh_mode: str  # "percent" or "margin"
    t1: Estimate
    t2: Estimate
    max_retransmissions: Estimate
    timeout_wait: Estimate  # from the transaction timeout to the next REGISTER
    error_waits: dict[int, Estimate]  # status code -> wait from the response to the next REGISTER
    streak_waits: dict[int, Estimate]  # consecutive failure number (1 = first) -> wait
    retry_after_honoured: Estimate  # fraction of waits after a Retry-After that were at least it
    backoff: bool | None  # None: fewer than two consecutive failures seen
    auth_challenges: int  # 401/407 answered by a REGISTER with credentials
    auth_wait: Estimate  # from the challenge to the REGISTER with credentials
    proactive_auth: int  # REGISTERs with credentials not preceded by a challenge
    keepalive_kind: str  # "none", "crlf" or "options"
    keepalive_interval: Estimate
    call_id_reuse: Estimate  # fraction of a phone's REGISTERs that reuse its previous Call-ID
    cseq_step: Estimate  # CSeq increment between a phone's consecutive REGISTERs
    phases: str  # "even" or "random": refresh phases spread evenly, or not
    statuses: dict[int, int]
    #: each phone's mean refresh point (refresh time ÷ granted expiry), one observation per phone
    refresh_per_phone: Estimate = Estimate("refresh_per_phone", None, 0)


@dataclass(frozen=True)
class RegistrarInference:
    latency: Estimate
    latency_by_node: dict[str, Estimate]
    answered_by: dict[str, int]  # node address -> final responses to REGISTER
    servers: dict[str, int]  # Server header -> responses
    profile: str
    profile_reason: str
    min_expires: Estimate  # from 423 Min-Expires
    grants: dict[tuple[float, float], int]  # (requested, granted) -> count
    grant_rule: str
    max_expires: float | None
    min_granted_above_request: float | None
    expires_range: float  # percent
    replication: int  # KDMQ requests between nodes
    statuses: dict[int, int]
    # bindings a restarted node answered for without a REGISTER since its fault: {"kept", "lost",
    # "node", "restarted", "verdict"} (None: no restart with probes after it in the capture)
    persistence: dict[str, Any] | None = None


@dataclass(frozen=True)
class HaInference:
    stack: str  # "keepalived", "heartbeat", "pacemaker" or "" (nothing seen)
    version: int | None
    vrid: int | None
    advert_int: Estimate  # the advertised field
    advert_gap: Estimate  # measured gaps between one master's adverts
    priorities: dict[str, int]  # node address -> advertised priority
    virtual_ips: tuple[str, ...]
    masters: tuple[tuple[float, str], ...]  # (time, address) of each new master
    master_changes: tuple[dict[str, Any], ...]  # time, old, new, silence (last advert of old -> first of new)
    garp_bursts: tuple[dict[str, Any], ...]  # time, ip, mac, count
    garp_repeat: Estimate
    garp_second_delay: Estimate
    priority_zero: int
    priority_zero_times: tuple[tuple[float, str], ...]  # (time, address): a master releasing the VIP
    dual_masters: tuple[dict[str, Any], ...]  # start, end, nodes: two masters advertising at once
    other: dict[str, int]  # heartbeat / corosync packets
    priority_counts: dict[str, dict[int, int]] = field(default_factory=dict)  # node -> priority -> adverts
    #: each change of one node's advertised (non-zero) priority: node, time, old, new, continuous (the node
    #: kept advertising: a weighted check, not a return after a silence), adverts at the old and new priority
    priority_steps: tuple[dict[str, Any], ...] = ()
    #: the weighted check's magnitude |w| from the continuous steps ("not observed": constant priorities)
    weight: Estimate = Estimate("weight", None, 0, evidence="no node's advertised priority changed while it advertised")
    weight_reverse: bool | None = None  # True: the priority rose away from the usual one (track_script ... reverse)
    weight_evidence: tuple[str, ...] = ()  # per drop: did it cover the gap to the backup, and did the VIP move
    #: preempt or not, read from a failback: {"preempt": bool | None, "evidence": str}
    preempt: dict[str, Any] = field(default_factory=lambda: {"preempt": None, "evidence": "no failback in the capture"})
    preempt_delay: Estimate = Estimate("preempt_delay", None, 0, unit="s",
                                       evidence="no recorded restart of a node that then took the VIP back")
    #: each node's runs of adverts at one priority: (priority, first, last, adverts), capture clock
    priority_runs: dict[str, tuple[tuple[int, float, float, int], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Inference:
    """What :func:`infer_scenario` read from the captures."""

    files: tuple[Path, ...]
    packets: int
    skipped: dict[str, int]
    duration: float
    fleets: tuple[FleetInference, ...]
    registrar: RegistrarInference
    ha: HaInference
    vip: str
    faults: tuple[dict[str, Any], ...]  # recorded (faults.json) or inferred from the VRRP master change
    measured: Any = None  # MeasuredTrace of the first capture when measured, else None
    measured_note: str = ""
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """A few lines for a terminal."""
        out = [f"{len(self.files)} file(s), {self.packets} packets, {self.duration:.1f}s; "
               f"{len(self.fleets)} fleet(s), VIP {self.vip or '?'}"]
        for f in self.fleets:
            out.append(f"fleet {f.name}: {f.phones} phones ({f.transport}, UA {f.user_agent!r} -> profile {f.profile})")
            out.append(f"  refresh point {f.refresh_fraction.comment()}")
            out.append(f"  granted expiry {f.granted_expires.comment()}")
            if f.timeout_wait.observed:
                out.append(f"  wait after timeout {f.timeout_wait.comment()}")
            for code, e in sorted(f.error_waits.items()):
                out.append(f"  wait after {code} {e.comment()}")
        out.append(f"registrar: latency {self.registrar.latency.comment()}; answered by {dict(self.registrar.answered_by)}")
        h = self.ha
        if h.stack == "keepalived":
            out.append(f"VRRP v{h.version} VRID {h.vrid}, advert {h.advert_int.comment()}; priorities {h.priorities}; "
                       f"{len(h.master_changes)} master change(s)")
        elif h.stack:
            out.append(f"HA: {h.stack}")
        if self.skipped:
            out.append("skipped: " + ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())))
        out.extend(self.notes)
        return "\n".join(out)

    def scenario_yaml(self, name: str = "inferred") -> str:
        """A runnable scenario, every inferred value commented with its evidence."""
        return _scenario_yaml(self, name)


# ---------------------------------------------------------------------------------------------
# Streaming input
# ---------------------------------------------------------------------------------------------
_ARP = 0x0806
_VLAN = frozenset({0x8100, 0x88A8, 0x9100})


def _arp(record: Record) -> tuple[str, str] | None:
    """(sender IP, sender MAC) of a gratuitous ARP (sender IP = target IP), else None."""
    data = record.data
    if record.linktype == 1:
        if len(data) < 14:
            return None
        etype, pos = int.from_bytes(data[12:14], "big"), 14
        while etype in _VLAN and len(data) >= pos + 4:
            etype, pos = int.from_bytes(data[pos + 2 : pos + 4], "big"), pos + 4
    elif record.linktype == 113:
        if len(data) < 16:
            return None
        etype, pos = int.from_bytes(data[14:16], "big"), 16
    elif record.linktype == 276:
        if len(data) < 20:
            return None
        etype, pos = int.from_bytes(data[0:2], "big"), 20
    else:
        return None
    if etype != _ARP:
        return None
    arp = data[pos:]
    if len(arp) < 28 or arp[4] != 6 or arp[5] != 4:
        return None
    spa, tpa = arp[14:18], arp[24:28]
    if spa != tpa:
        return None
    return socket.inet_ntoa(spa), arp[8:14].hex(":")


def _records(files: list[Path], skipped: dict[str, int], progress: Callable[[int], None] | None,
             garp: list[tuple[float, str, str]], counter: list[int]) -> Iterator[Datagram]:
    """Decoded datagrams of all files merged on time, streamed (a file is read through mmap)."""

    def one(path: Path) -> Iterator[Datagram]:
        for record in read_capture(path, skipped):
            counter[0] += 1
            if progress is not None and counter[0] % 100_000 == 0:
                progress(counter[0])
            if not math.isfinite(record.time):
                _bump(skipped, "bad_timestamp")
                continue
            decoded = decode_record(record)
            if isinstance(decoded, str):
                if decoded == "not_ip":
                    hit = _arp(record)
                    if hit is not None:
                        if len(garp) < MAX_SAMPLES:
                            garp.append((record.time, hit[0], hit[1]))
                        continue
                _bump(skipped, decoded)
                continue
            yield decoded

    streams = [one(p) for p in files]
    yield from streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda d: d.time)


def _bump(skipped: dict[str, int], reason: str, n: int = 1) -> None:
    skipped[reason] = skipped.get(reason, 0) + n


def _dedup(datagrams: Iterable[Datagram], window: float, skipped: dict[str, int]) -> Iterator[Datagram]:
    """Drop copies of one packet captured on several interfaces within ``window`` s, as the importer
    does, keyed on a hash of the payload so the state stays small on a long capture."""
    return deduplicate(datagrams, window, skipped, hashed=True, keep=20_000)


# ---------------------------------------------------------------------------------------------
# Accumulators
# ---------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Tx:
    phone: str
    fleet: tuple[str, str]
    first: float
    last: float
    sends: list[float]
    requested: float
    authorized: bool
    call_id: str
    cseq: int
    branch: str


@dataclass(slots=True)
class _Phone:
    fleet: tuple[str, str]
    open: _Tx | None = None
    outcome: tuple[str, float, float, float, float] | None = None  # kind, time, value, retry_after, tx first
    streak: int = 0
    call_id: str = ""
    cseq: int = -1
    first_seen: float = math.nan
    refresh_sum: float = 0.0  # sum of this phone's refresh points (refresh time ÷ granted expiry)
    refresh_n: int = 0


@dataclass
class _Fleet:
    ua: str
    transport: str
    aors: set[str] = field(default_factory=set)
    addresses: set[str] = field(default_factory=set)
    transactions: int = 0
    requested: _Samples = field(default_factory=_Samples)
    granted: _Samples = field(default_factory=_Samples)
    fraction: _Samples = field(default_factory=_Samples)
    margin: _Samples = field(default_factory=_Samples)
    grant_values: Counter = field(default_factory=Counter)
    gaps: dict[int, _Samples] = field(default_factory=dict)
    retrans_at_timeout: _Samples = field(default_factory=_Samples)
    timeouts: list[tuple[float, float, int, float, int]] = field(default_factory=list)  # first, last send, sends, next start, streak
    timeouts_n: int = 0
    error_waits: dict[int, _Samples] = field(default_factory=dict)
    streak_waits: dict[int, _Samples] = field(default_factory=dict)
    retry_after: _Samples = field(default_factory=_Samples)  # 1 honoured, 0 not
    auth_challenges: int = 0
    auth_wait: _Samples = field(default_factory=_Samples)
    proactive_auth: int = 0
    call_id_reuse: _Samples = field(default_factory=_Samples)
    cseq_step: _Samples = field(default_factory=_Samples)
    first_times: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)


_AUTH_CODES = (401, 407)


class _Inferer:
    def __init__(self) -> None:
        self.fleets: dict[tuple[str, str], _Fleet] = {}
        self.phones: dict[str, _Phone] = {}
        self.txs: dict[tuple[str, int, str], _Tx] = {}
        self.endpoint_fleet: dict[str, tuple[str, str]] = {}
        self.keepalive: dict[str, tuple[str, float, _Samples]] = {}  # src endpoint -> kind, last, intervals
        self.latency = _Samples()
        self.latency_node: dict[str, _Samples] = {}
        self.answered: Counter = Counter()
        self.servers: Counter = Counter()
        self.min_expires = _Samples()
        self.grants: Counter = Counter()
        self.reg_statuses: Counter = Counter()
        self.kdmq = 0
        self.vip_candidates: Counter = Counter()
        # the last REGISTER 2xx each node sent each AOR, and the answers to OPTIONS for an AOR
        # (a prober asking whether the node holds the AOR's binding): (t, node, aor, status, last 2xx)
        self.reg_ok_last: dict[tuple[str, str], float] = {}
        self.probes: list[tuple[float, str, str, int, float]] = []
        # VRRP
        self.vrrp_versions: Counter = Counter()
        self.vrids: Counter = Counter()
        self.advert_ints = _Samples()
        self.advert_gap = _Samples()
        self.priorities: dict[str, Counter] = {}
        self.prio_runs: dict[str, list[list[Any]]] = {}  # node -> [priority, first, last, adverts] runs
        self.last_prio: dict[str, int] = {}  # node -> its last advertised non-zero priority
        self.vips: Counter = Counter()
        self.master = ""
        self.master_last: dict[str, float] = {}
        self.masters: list[tuple[float, str]] = []
        self.changes: list[dict[str, Any]] = []
        self.prio_zero = 0
        self.prio_zero_times: list[tuple[float, str]] = []
        self.dual: list[list[Any]] = []  # [first, last, master, other]: both advertising
        self.other: Counter = Counter()
        self.first = math.nan
        self.last = math.nan

    # -- dispatch -----------------------------------------------------------------------------
    def datagram(self, d: Datagram, skipped: dict[str, int], streams: dict, last_tcp: dict) -> None:
        t = d.time
        if math.isnan(self.first):
            self.first = t
        self.last = t
        if d.proto == "vrrp":
            advert = parse_vrrp(d.payload)
            if advert is None:
                _bump(skipped, "bad_vrrp")
                return
            self.vrrp(t, d, advert)
            return
        if d.proto == "udp":
            if d.dport == 694 or d.sport == 694:
                self.other["heartbeat"] += 1
                return
            if d.dport in (5404, 5405) or d.sport in (5404, 5405):
                self.other["corosync"] += 1
                return
            if d.payload and not d.payload.strip(b"\r\n\x00 "):
                self.ping(t, d.src, "crlf")
                return
            msg = datagram_sip(d.payload, skipped, (d.sport, d.dport))
            if msg is None:
                return
            self.sip(t, d, msg)
            return
        key = (d.src_ip, d.sport, d.dst_ip, d.dport)
        if d.tcp_flags & _RST and key in streams:
            frames = streams.pop(key).flush(skipped)
            last_tcp.pop(key, None)
        elif not d.payload and not d.tcp_flags & _SYN:
            if d.tcp_flags & 0x01 and key in streams:  # FIN: the direction is done
                frames = streams.pop(key).flush(skipped)
                last_tcp.pop(key, None)
            else:
                return
        else:
            if d.payload and not d.payload.strip(b"\r\n"):  # RFC 5626 CRLF ping on a TCP/TLS flow
                self.ping(t, d.src, "crlf")
            frames = streams.setdefault(key, _TcpDirection()).feed(d, skipped)
            last_tcp[key] = d
        for frame in frames:
            msg = parse_sip(frame)
            if msg is None:
                _bump(skipped, "bad_sip")
            else:
                self.sip(t, d, msg)

    def ping(self, t: float, src: str, kind: str) -> None:
        entry = self.keepalive.get(src)
        if entry is None:
            if len(self.keepalive) < 2_000_000:
                self.keepalive[src] = (kind, t, _Samples())
            return
        old_kind, last, samples = entry
        if t - last > 1e-3:
            samples.add(t - last)
        self.keepalive[src] = (kind, t, samples)

    # -- SIP ----------------------------------------------------------------------------------
    def sip(self, t: float, d: Datagram, msg: SipMessage) -> None:
        if msg.method == "KDMQ":
            self.kdmq += msg.kind == "request"
            return
        if msg.method == "OPTIONS" and msg.kind == "request":
            self.ping(t, d.src, "options")
            return
        if msg.method == "OPTIONS":
            self.probe_answer(t, d, msg)
            return
        if msg.method != "REGISTER":
            return
        if msg.kind == "request":
            self.register(t, d, msg)
        else:
            self.response(t, d, msg)

    def register(self, t: float, d: Datagram, msg: SipMessage) -> None:
        key = (msg.call_id, msg.cseq, msg.branch)
        tx = self.txs.get(key)
        if tx is not None:  # a retransmission
            if len(tx.sends) < 64:
                tx.sends.append(t)
            tx.last = t
            return
        aor = msg.to_user or msg.from_user or msg.call_id
        phone = self.phones.get(aor)
        transport = d.proto
        if transport == "tcp" and 5061 in (d.dport,):
            transport = "tls"
        ua = (msg.header("user-agent") or "").strip()[:200]
        fkey = (ua, transport)
        fleet = self.fleets.get(fkey)
        if fleet is None:
            fleet = self.fleets[fkey] = _Fleet(ua, transport)
        if phone is None:
            phone = self.phones[aor] = _Phone(fkey, first_seen=t)
            fleet.first_times.append(t) if len(fleet.first_times) < MAX_SAMPLES else None
        fleet.aors.add(aor)
        if len(fleet.addresses) < 1_000_000:
            fleet.addresses.add(d.src_ip)
        self.endpoint_fleet[d.src] = fkey
        self.vip_candidates[d.dst_ip] += 1
        fleet.transactions += 1
        requested = msg.expires
        fleet.requested.add(requested)
        authorized = msg.header("authorization") is not None or msg.header("proxy-authorization") is not None
        # Call-ID / CSeq behaviour
        if phone.call_id:
            fleet.call_id_reuse.add(1.0 if msg.call_id == phone.call_id else 0.0)
            if msg.call_id == phone.call_id:
                fleet.cseq_step.add(msg.cseq - phone.cseq)
        phone.call_id, phone.cseq = msg.call_id, msg.cseq
        # the previous transaction of this phone ended without a final response: it timed out
        if phone.open is not None:
            self._timeout(phone, phone.open, t)
        # what came before this REGISTER
        if phone.outcome is not None:
            kind, tp, value, retry_after, _first = phone.outcome
            wait = t - tp
            if kind == "ok" and value > 0:
                fleet.fraction.add(wait / value)
                fleet.margin.add(value - wait)
                if math.isfinite(wait / value):
                    phone.refresh_sum += wait / value
                    phone.refresh_n += 1
            elif kind == "error":
                code = int(value)
                if code in _AUTH_CODES:
                    if authorized:
                        fleet.auth_challenges += 1
                        fleet.auth_wait.add(wait)
                elif code != 423:
                    fleet.error_waits.setdefault(code, _Samples()).add(wait)
                    fleet.streak_waits.setdefault(phone.streak, _Samples()).add(wait)
                    if math.isfinite(retry_after) and retry_after > 0:
                        fleet.retry_after.add(1.0 if wait >= retry_after - 0.05 else 0.0)
            if authorized and not (kind == "error" and int(value) in _AUTH_CODES):
                fleet.proactive_auth += 1
        elif authorized:
            fleet.proactive_auth += 1
        phone.outcome = None
        tx = _Tx(aor, fkey, t, t, [t], requested, authorized, msg.call_id, msg.cseq, msg.branch)
        self.txs[key] = tx
        phone.open = tx
        if len(self.txs) > 200_000:
            self._purge(t)

    def _timeout(self, phone: _Phone, tx: _Tx, next_start: float) -> None:
        fleet = self.fleets[tx.fleet]
        self._gaps(fleet, tx)
        fleet.retrans_at_timeout.add(len(tx.sends) - 1)
        fleet.timeouts_n += 1
        phone.streak += 1
        if math.isfinite(next_start) and len(fleet.timeouts) < MAX_SAMPLES:
            fleet.timeouts.append((tx.first, tx.last, len(tx.sends), next_start, phone.streak))
        self.txs.pop((tx.call_id, tx.cseq, tx.branch), None)
        phone.open = None

    def _gaps(self, fleet: _Fleet, tx: _Tx) -> None:
        for k in range(1, len(tx.sends)):
            fleet.gaps.setdefault(k - 1, _Samples()).add(tx.sends[k] - tx.sends[k - 1])

    def _purge(self, t: float) -> None:
        stale = [k for k, tx in self.txs.items() if t - tx.last > 120.0]
        for k in stale:
            self.txs.pop(k, None)

    def response(self, t: float, d: Datagram, msg: SipMessage) -> None:
        if msg.status < 200:
            return
        tx = self.txs.pop((msg.call_id, msg.cseq, msg.branch), None)
        self.reg_statuses[msg.status] += 1
        server = (msg.header("server") or "").strip()[:200]
        if server:
            self.servers[server] += 1
        node = self._node(d)
        self.answered[node] += 1
        if tx is None:
            return
        phone = self.phones.get(tx.phone)
        fleet = self.fleets[tx.fleet]
        fleet.statuses[msg.status] += 1
        self._gaps(fleet, tx)
        if len(tx.sends) == 1:  # only an unambiguous one: no retransmission
            lat = t - tx.last
            self.latency.add(lat)
            self.latency_node.setdefault(node, _Samples()).add(lat)
        retry_after = msg.retry_after
        if 200 <= msg.status < 300:
            if len(self.reg_ok_last) < 2_000_000 or (tx.phone, node) in self.reg_ok_last:
                self.reg_ok_last[(tx.phone, node)] = t
            granted = msg.expires
            if math.isfinite(granted):
                fleet.granted.add(granted)
                if len(fleet.grant_values) < 1000 or granted in fleet.grant_values:
                    fleet.grant_values[granted] += 1
                if math.isfinite(tx.requested) and (len(self.grants) < 1000 or (tx.requested, granted) in self.grants):
                    self.grants[(tx.requested, granted)] += 1
            outcome = ("ok", t, granted if math.isfinite(granted) else math.nan, math.nan, tx.first)
        else:
            if msg.status == 423:
                self.min_expires.add(_number(msg.header("min-expires")))
            outcome = ("error", t, float(msg.status), retry_after, tx.first)
        if phone is not None and phone.open is tx:
            phone.open = None
            if outcome[0] == "ok":
                phone.streak = 0
            elif msg.status not in _AUTH_CODES and msg.status != 423:
                phone.streak += 1
            phone.outcome = outcome if (outcome[0] != "ok" or math.isfinite(outcome[2])) else None

    def _node(self, d: Datagram) -> str:
        """The node that sent a reply: its address, or the VRRP master for a reply from the VIP."""
        node = d.src_ip
        if node not in self.priorities and (node in self.vips or node in self.vip_candidates) and self.master:
            node = self.master
        return node

    def probe_answer(self, t: float, d: Datagram, msg: SipMessage) -> None:
        """A final answer to an OPTIONS for a known AOR: whether that node held the AOR's binding."""
        if msg.status < 200 or msg.to_user not in self.phones or len(self.probes) >= 1_000_000:
            return
        node = self._node(d)
        self.probes.append((t, node, msg.to_user, msg.status, self.reg_ok_last.get((msg.to_user, node), -math.inf)))

    # -- VRRP ---------------------------------------------------------------------------------
    def vrrp(self, t: float, d: Datagram, advert: Any) -> None:
        self.vrrp_versions[advert.version] += 1
        self.vrids[advert.vrid] += 1
        self.advert_ints.add(advert.advert_int)
        for ip in _vrrp_addresses(d.payload, advert.version, ":" in d.src_ip):
            self.vips[ip] += 1
        src = d.src_ip
        if advert.priority == 0:
            self.prio_zero += 1
            if len(self.prio_zero_times) < 1000:
                self.prio_zero_times.append((t, src))
            if src == self.master:
                self.master = ""
            self.master_last[src] = t
            return
        self.priorities.setdefault(src, Counter())[advert.priority] += 1
        adv = max(advert.advert_int, 0.01)
        runs = self.prio_runs.setdefault(src, [])
        if runs and runs[-1][0] == advert.priority and t - runs[-1][2] <= 3 * adv:
            runs[-1][2] = t
            runs[-1][3] += 1
        elif len(runs) < 10_000:  # a new priority, or the node advertises again after a silence
            runs.append([advert.priority, t, t, 1])
        last = self.master_last.get(src)
        if last is not None and src == self.master and t - last < 3 * adv:
            self.advert_gap.add(t - last)
        preempting = self.master and advert.priority > self.last_prio.get(self.master, 255)
        self.last_prio[src] = advert.priority
        if (src != self.master and self.master and not preempting
                and t - self.master_last.get(self.master, -math.inf) <= 1.5 * adv):
            # the current master is still advertising: two masters at once (split brain)
            if not self.dual or t - self.dual[-1][1] > 1.5 * adv:
                if len(self.dual) < 1000:
                    self.dual.append([t, t, self.master, src])
            else:
                self.dual[-1][1] = t
            self.master_last[src] = t
            return
        if src != self.master:
            old = self.master
            silence = t - self.master_last[old] if old and old in self.master_last else math.nan
            if not old and self.masters:
                prev = self.masters[-1][1]
                silence = t - self.master_last.get(prev, math.nan)
                old = prev if prev != src else ""
            if len(self.masters) < 10_000:
                self.masters.append((t, src))
            if len(self.masters) > 1 and old != src and len(self.changes) < 10_000:
                self.changes.append({"time": t, "old": old, "new": src, "silence": silence,
                                     "old_last_advert": self.master_last.get(old, math.nan)})
            self.master = src
        self.master_last[src] = t

    # -- end of capture -----------------------------------------------------------------------
    def finish(self) -> None:
        for phone in self.phones.values():
            if phone.open is not None:
                tx = phone.open
                fleet = self.fleets[tx.fleet]
                # censored: the capture may have ended before the transaction did
                if self.last - tx.first > 64 * 0.5 + 1:
                    fleet.retrans_at_timeout.add(len(tx.sends) - 1)
                    fleet.timeouts_n += 1
                self._gaps(fleet, tx)
                phone.open = None


def _number(text: str | None) -> float:
    if text is None:
        return math.nan
    m = re.match(r"\s*(\d+(?:\.\d*)?)", text)
    return float(m.group(1)) if m else math.nan


def _vrrp_addresses(payload: bytes, version: int, v6: bool) -> list[str]:
    if len(payload) < 8:
        return []
    count = payload[3]
    size = 16 if v6 else 4
    family = socket.AF_INET6 if v6 else socket.AF_INET
    out = []
    for i in range(min(count, 32)):
        a = payload[8 + i * size : 8 + (i + 1) * size]
        if len(a) < size:
            break
        out.append(socket.inet_ntop(family, a))
    return out


# ---------------------------------------------------------------------------------------------
# The public function
# ---------------------------------------------------------------------------------------------
def infer_scenario(
    captures: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    vip: str | None = None,
    measure: bool | None = None,
    measure_limit: int = MEASURE_LIMIT,
    dedup_window: float = 0.005,
    progress: Callable[[int], None] | None = None,
) -> Inference:
    """Infer fleets, timers, the registrar and the HA setup from one or more captures.

    ``captures``: pcap/pcapng files or lab run directories (their ``faults.json`` is read).
    ``vip``: the virtual address (default: from the VRRP adverts, else where REGISTERs go).
    ``measure``: also compute ``simsip trace import``'s failover metrics (None: when the captures
    total at most ``measure_limit`` bytes). ``progress`` is called every 100 000 packets.
    Raises :class:`~simsip.trace.TraceError` for a path that is not a capture or run directory.
    """
    if isinstance(captures, (str, os.PathLike)):
        captures = [captures]
    from simsip.io import unpacked_run

    paths = [unpacked_run(c) for c in captures]
    if not paths:
        raise TraceError("no capture given")
    files: list[Path] = []
    metas: list[tuple[Path, dict[str, Any]]] = []
    for p in paths:
        fs, meta = _inputs(p)
        files.extend(fs)
        if meta:
            metas.append((p, meta))
    skipped: dict[str, int] = {}
    garp: list[tuple[float, str, str]] = []
    inf = _Inferer()
    streams: dict = {}
    last_tcp: dict = {}
    counter = [0]
    gen = _records(files, skipped, progress, garp, counter)
    for d in _dedup(gen, dedup_window, skipped):
        inf.datagram(d, skipped, streams, last_tcp)
        if len(streams) > 100_000:  # bound the reassembly state: drop the oldest directions
            for key in list(streams)[: len(streams) // 2]:
                streams.pop(key, None)
                last_tcp.pop(key, None)
    for key, stream in streams.items():
        d = last_tcp.get(key)
        for frame in stream.flush(skipped):
            msg = parse_sip(frame)
            if msg is None:
                _bump(skipped, "bad_sip")
            elif d is not None:
                inf.sip(d.time, d, msg)
    inf.finish()
    packets = counter[0]
    t0 = inf.first if math.isfinite(inf.first) else 0.0
    if garp:
        t0 = min(t0, min(g[0] for g in garp)) if math.isfinite(inf.first) else min(g[0] for g in garp)
    origin = _origin(metas[0][1], t0) if metas else t0
    duration = (inf.last - origin) if math.isfinite(inf.last) else 0.0
    if vip is None:
        if inf.vips:
            vip = inf.vips.most_common(1)[0][0]
        elif inf.vip_candidates:
            vip = inf.vip_candidates.most_common(1)[0][0]
        else:
            vip = ""
    ha = _ha(inf, garp, t0)
    fleets = _fleets(inf, t0)
    registrar = _registrar(inf)
    notes: list[str] = []
    if origin != t0:
        notes.append(f"scenario clock: the run's t0_epoch (meta.json), {origin - t0:.3f}s after the first packet")
    notes.extend(unreadable_notes(skipped))
    if not inf.phones:
        notes.append("no REGISTER seen: fleet values fall back to the generic-udp profile")
    faults = _faults(metas, ha, t0, origin - t0)
    ha = _preempt(ha, faults, origin - t0, (inf.last - t0) if math.isfinite(inf.last) else 0.0)
    registrar = _persistence(inf, registrar, ha, faults, origin - t0, t0)
    measured = None
    measured_note = ""
    total = sum(f.stat().st_size for f in files)
    if measure is None:
        measure = total <= measure_limit
        if not measure:
            measured_note = (f"failover metrics not computed: {total / 1e6:.0f} MB of captures is over the "
                             f"{measure_limit / 1e6:.0f} MB limit (run simsip trace import, or pass measure=True)")
    if measure and (inf.phones or inf.masters):
        from .measure import measure_trace

        target = paths[0]
        try:
            measured = measure_trace(target, vip=vip or None)
            measured_note = f"failover metrics of {target} from simsip trace import"
        except TraceError as exc:  # pragma: no cover - the same inputs were just read
            measured_note = f"failover metrics not computed: {exc}"
    return Inference(
        files=tuple(files), packets=packets, skipped=dict(sorted(skipped.items())), duration=duration,
        fleets=fleets, registrar=registrar, ha=ha, vip=vip, faults=faults, measured=measured,
        measured_note=measured_note, notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------
def _profile_for(ua: str) -> tuple[str, str]:
    low = ua.lower()
    for needle, profile in UA_PROFILES:
        if needle in low:
            return profile, f"User-Agent {ua!r} contains {needle.strip()!r}"
    if not ua:
        return "generic-udp", "no User-Agent header: no phone profile matches"
    return "generic-udp", f"no phone profile matches User-Agent {ua!r}"


def _fleet_name(ua: str, transport: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", ua.split("/")[0].split(" ")[0]).strip("-").lower() or "phones"
    base = base[:40]
    name = f"{base}-{transport}" if transport != "udp" else base
    k, out = 2, name
    while out in used:
        out, k = f"{name}-{k}", k + 1
    used.add(out)
    return out


def _fleets(inf: _Inferer, t0: float) -> tuple[FleetInference, ...]:
    out = []
    used: set[str] = set()
    per_phone: dict[tuple[str, str], _Samples] = {}
    for phone in inf.phones.values():
        if phone.refresh_n:
            per_phone.setdefault(phone.fleet, _Samples()).add(phone.refresh_sum / phone.refresh_n)
    for (ua, transport), f in sorted(inf.fleets.items(), key=lambda kv: -len(kv[1].aors)):
        profile, reason = _profile_for(ua)
        t1 = f.gaps.get(0, _Samples()).estimate("t1", "s", "first retransmission gap (Timer E)",
                                                "no REGISTER retransmission in the capture")
        # T2: the plateau of the gaps (gap index k >= 3: 8·T1 = 4 s > T2 for RFC values)
        plateau = _Samples()
        for k, s in f.gaps.items():
            if k >= 3:
                plateau.extend(s)
        t2 = plateau.estimate("t2", "s", "retransmission gaps from the 4th on (their cap)",
                              "no transaction with 4 or more retransmissions")
        maxr = f.retrans_at_timeout.estimate("max_retransmissions", "", "retransmissions in transactions that got no answer",
                                             "no transaction timed out")
        # wait after a timeout: from when the next copy would have been due (the timeout) to the next REGISTER
        t1v = t1.value if t1.value is not None else transactions.T1
        t2v = t2.value if t2.value is not None else transactions.T2
        tw = _Samples()
        streaks: dict[int, _Samples] = {k: _Samples() for k in f.streak_waits}
        for k, s in f.streak_waits.items():
            streaks[k].extend(s)
        for first, last, sends, nxt, streak in f.timeouts:
            # the timeout: Timer F (64·T1), or earlier when the next copy was due and did not come; over
            # TCP/TLS no copy is ever due (Timer E is for unreliable transports, RFC 3261 §17.1.2.2), so
            # only Timer F ends the transaction (a reset ends it earlier only where the stack notices it)
            due = first + transactions.timer_f(t1v)
            if transport == "udp":
                due = min(due, last + transactions.retransmit_interval(sends - 1, t1v, t2v))
            due = max(due, last)
            w = max(0.0, nxt - due)
            tw.add(w)
            streaks.setdefault(streak, _Samples()).add(w)
        timeout_wait = tw.estimate("timeout_wait", "s",
                                   "from the transaction timeout (Timer F = 64·T1, or over UDP when the next copy was due if sooner) to the next REGISTER",
                                   "no REGISTER timed out and was retried in the capture")
        error_waits = {code: s.estimate(f"wait_{code}", "s", f"from the {code} to the next REGISTER")
                       for code, s in sorted(f.error_waits.items())}
        streak_waits = {k: s.estimate(f"wait_streak_{k}", "s", f"failure number {k} in a row")
                        for k, s in sorted(streaks.items()) if s.n}
        backoff = None
        if 1 in streak_waits and 2 in streak_waits:
            w1, w2 = streak_waits[1].value or 0.0, streak_waits[2].value or 0.0
            backoff = w2 > 1.5 * w1 + 0.5
        fraction = f.fraction.estimate("refresh_fraction", "", "refresh time ÷ granted expiry, per refresh",
                                       "no phone refreshed twice after a 2xx in the capture")
        margin = f.margin.estimate("refresh_margin", "s", "granted expiry − refresh time, per refresh",
                                   "no phone refreshed after a 2xx in the capture")
        mode = "percent"
        if len([g for g in f.grant_values if g > 0]) >= 2 and fraction.observed and margin.observed:
            # several granted expiries: a constant margin or a constant fraction explains them better
            fr = _spread(f.fraction.values)
            mr = _spread(f.margin.values) / max(1e-9, _median(list(f.grant_values.elements())))
            mode = "margin" if mr < fr else "percent"
        ka_kind, ka = "none", _Samples()
        kinds: Counter = Counter()
        for src, (kind, _last, samples) in inf.keepalive.items():
            if inf.endpoint_fleet.get(src) == (ua, transport):
                kinds[kind] += 1
                ka.extend(samples)
        if kinds:
            ka_kind = kinds.most_common(1)[0][0]
        keepalive = ka.estimate("keepalive_interval", "s", f"{ka_kind} pings from the phones' addresses",
                                "no CRLF or OPTIONS keep-alive from a phone address")
        out.append(FleetInference(
            name=_fleet_name(ua, transport, used), user_agent=ua, transport=transport, profile=profile,
            profile_reason=reason, phones=len(f.aors), addresses=len(f.addresses), transactions=f.transactions,
            requested_expires=f.requested.estimate("requested_expires", "s", "Expires in the REGISTERs",
                                                   "no REGISTER carried an expiry"),
            granted_expires=f.granted.estimate("granted_expires", "s", "expiry in the 2xx",
                                               "no 2xx with an expiry"),
            refresh_fraction=fraction, refresh_margin=margin, refresh_mode=mode,
            t1=t1, t2=t2, max_retransmissions=maxr, timeout_wait=timeout_wait, error_waits=error_waits,
            streak_waits=streak_waits,
            retry_after_honoured=f.retry_after.estimate("retry_after_honoured", "",
                                                        "1 = waited at least the Retry-After",
                                                        "no error response with Retry-After was retried"),
            backoff=backoff, auth_challenges=f.auth_challenges,
            auth_wait=f.auth_wait.estimate("auth_wait", "s", "from the 401/407 to the REGISTER with credentials",
                                           "no digest challenge"),
            proactive_auth=f.proactive_auth, keepalive_kind=ka_kind, keepalive_interval=keepalive,
            call_id_reuse=f.call_id_reuse.estimate("call_id_reuse", "", "1 = same Call-ID as the phone's previous REGISTER",
                                                   "no phone sent two REGISTERs"),
            cseq_step=f.cseq_step.estimate("cseq_step", "", "CSeq increment within one Call-ID",
                                           "no Call-ID reused"),
            phases=_phases(f, fraction, f.granted), statuses=dict(sorted(f.statuses.items())),
            refresh_per_phone=per_phone.get((ua, transport), _Samples()).estimate(
                "refresh_per_phone", "", "each phone's mean refresh point (refresh time ÷ granted expiry), one per phone",
                "no phone refreshed after a 2xx in the capture"),
        ))
    return tuple(out)


def _median(xs: list[float]) -> float:
    return _quantile(sorted(xs), 0.5) if xs else math.nan


def _spread(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    s = sorted(xs)
    med = _quantile(s, 0.5)
    return (_quantile(s, 0.75) - _quantile(s, 0.25)) / max(abs(med), 1e-9)


def _phases(f: _Fleet, fraction: Estimate, granted: _Samples) -> str:
    """even: the phones' first REGISTERs in the capture are evenly spread (over one refresh interval
    when it is known; else over the span they cover, for a capture shorter than two refreshes)."""
    if len(f.first_times) < 5:
        return "random"
    first = sorted(f.first_times)
    g = _median(granted.values)
    period = (fraction.value or 0.0) * g if fraction.observed and math.isfinite(g) else 0.0
    if period > 0:
        phases = sorted((t - first[0]) % period for t in first)
        gaps = [b - a for a, b in zip(phases, phases[1:])] + [period - phases[-1] + phases[0]]
    else:
        gaps = [b - a for a, b in zip(first, first[1:])]
    mean = sum(gaps) / len(gaps)
    if mean <= 0:
        return "random"
    sd = math.sqrt(sum((x - mean) ** 2 for x in gaps) / len(gaps))
    # independent uniform phases give exponential-like gaps (coefficient of variation ≈ 1)
    return "even" if sd / mean < 0.35 else "random"


def _registrar(inf: _Inferer) -> RegistrarInference:
    profile, reason = "kamailio", "no Server header: the kamailio profile (assumption)"
    if inf.servers:
        top = inf.servers.most_common(1)[0][0]
        low = top.lower()
        for needle, prof in SERVER_PROFILES:
            if needle in low:
                profile, reason = prof, f"Server {top!r}"
                break
        else:
            reason = f"no registrar profile matches Server {top!r}: kamailio (assumption)"
    pairs = {k: v for k, v in inf.grants.items() if k[0] > 0}
    rule, max_exp, min_above, rng = "not observed (no 2xx with an expiry)", None, None, 0.0
    if pairs:
        equal = sum(v for (r, g), v in pairs.items() if abs(r - g) < 0.5)
        lower = [(r, g) for (r, g) in pairs if g < r - 0.5]
        higher = [(r, g) for (r, g) in pairs if g > r + 0.5]
        total = sum(pairs.values())
        if equal == total:
            rule = f"granted = requested ({total} grants, {len(pairs)} distinct requests)"
        else:
            parts = []
            if lower:
                gs = sorted({g for _, g in lower})
                if len(gs) == 1:
                    max_exp = gs[0]
                    parts.append(f"requests above {duration_text(gs[0])} lowered to it (max_expires)")
                else:
                    lo_r = min(g / r for r, g in lower)
                    rng = round((1 - lo_r) * 100, 1)
                    parts.append(f"granted spread below the request down to {lo_r:.0%} (expires_range ≈ {rng}%)")
            if higher:
                min_above = max(g for _, g in higher)
                parts.append(f"requests below {duration_text(min_above)} raised to it (min_expires)")
            rule = "; ".join(parts) + f" ({total} grants)"
    mins = inf.min_expires.estimate("min_expires", "s", "Min-Expires in 423 responses", "no 423 Interval Too Brief")
    return RegistrarInference(
        latency=inf.latency.estimate("latency", "s", "last copy of a REGISTER to its final response, unretransmitted only",
                                     "no answered REGISTER"),
        latency_by_node={n: s.estimate(f"latency_{n}", "s") for n, s in sorted(inf.latency_node.items())},
        answered_by=dict(inf.answered.most_common()), servers=dict(inf.servers.most_common()),
        profile=profile, profile_reason=reason, min_expires=mins, grants=dict(pairs), grant_rule=rule,
        max_expires=max_exp, min_granted_above_request=min_above, expires_range=rng, replication=inf.kdmq,
        statuses=dict(sorted(inf.reg_statuses.items())),
    )


def _ha(inf: _Inferer, garp: list[tuple[float, str, str]], t0: float) -> HaInference:
    stack = ""
    if inf.vrrp_versions:
        stack = "keepalived"
    elif inf.other.get("corosync"):
        stack = "pacemaker"
    elif inf.other.get("heartbeat"):
        stack = "heartbeat"
    vips = tuple(ip for ip, _ in inf.vips.most_common())
    # GARP bursts: gratuitous ARPs for a virtual address within 1 s of each other
    bursts: list[dict[str, Any]] = []
    for t, ip, mac in sorted(garp):
        if vips and ip not in vips:
            continue
        if bursts and bursts[-1]["ip"] == ip and bursts[-1]["mac"] == mac and t - bursts[-1]["last"] <= 1.0:
            bursts[-1]["count"] += 1
            bursts[-1]["last"] = t
        else:
            bursts.append({"time": t - t0, "last": t, "ip": ip, "mac": mac, "count": 1})
    for b in bursts:
        b["last"] = b["last"] - t0
    repeat = estimate("garp_repeat", [b["count"] for b in bursts], evidence="GARPs per burst",
                      missing="no gratuitous ARP in the capture")
    second = [b2["time"] - b1["time"] for b1, b2 in zip(bursts, bursts[1:])
              if b1["ip"] == b2["ip"] and b1["mac"] == b2["mac"] and b2["time"] - b1["time"] < 60]
    second_delay = estimate("garp_second_delay", second, unit="s", evidence="first to second burst of one master",
                            missing="no second GARP burst")
    version = inf.vrrp_versions.most_common(1)[0][0] if inf.vrrp_versions else None
    vrid = inf.vrids.most_common(1)[0][0] if inf.vrids else None
    changes = tuple({**c, "time": c["time"] - t0, "old_last_advert": c["old_last_advert"] - t0} for c in inf.changes)
    advert_int = inf.advert_ints.estimate("advert_int", "s", "the adverts' interval field", "no VRRP advert")
    priorities = {ip: c.most_common(1)[0][0] for ip, c in inf.priorities.items()}
    steps = _priority_steps(inf.prio_runs, advert_int.value or 1.0, t0)
    weight, reverse, outcomes = _weight(steps, priorities, changes, version, advert_int.value or 1.0)
    return HaInference(
        stack=stack, version=version, vrid=vrid,
        advert_int=advert_int,
        advert_gap=inf.advert_gap.estimate("advert_gap", "s", "gaps between one master's adverts", "no VRRP advert"),
        priorities=priorities,
        virtual_ips=vips, masters=tuple((t - t0, ip) for t, ip in inf.masters), master_changes=changes,
        garp_bursts=tuple(bursts), garp_repeat=repeat, garp_second_delay=second_delay,
        priority_zero=inf.prio_zero, priority_zero_times=tuple((t - t0, ip) for t, ip in inf.prio_zero_times),
        dual_masters=tuple({"start": a - t0, "end": b - t0, "nodes": (m, o)} for a, b, m, o in inf.dual),
        other=dict(inf.other),
        priority_counts={ip: dict(sorted(c.items(), reverse=True)) for ip, c in inf.priorities.items()},
        priority_steps=steps, weight=weight, weight_reverse=reverse, weight_evidence=outcomes,
        priority_runs={ip: tuple((int(r[0]), r[1] - t0, r[2] - t0, int(r[3])) for r in runs)
                       for ip, runs in inf.prio_runs.items()},
    )


def _priority_steps(prio_runs: dict[str, list[list[Any]]], advert: float, t0: float) -> tuple[dict[str, Any], ...]:
    """Each change of a node's advertised priority between two of its runs of adverts. ``continuous``:
    the new priority came at the next advert (the node stayed master and changed what it advertises:
    a weighted track_script or track_process); otherwise the node was silent in between (it was backup,
    down or in FAULT) and came back with another priority."""
    out: list[dict[str, Any]] = []
    for ip, runs in prio_runs.items():
        for r0, r1 in zip(runs, runs[1:]):
            if r1[0] == r0[0]:
                continue
            out.append({"node": ip, "time": r1[1] - t0, "old": r0[0], "new": r1[0],
                        "continuous": r1[1] - r0[2] <= 1.5 * advert + 0.05,
                        "old_adverts": r0[3], "new_adverts": r1[3], "old_first": r0[1] - t0})
    out.sort(key=lambda x: x["time"])
    return tuple(out[:10_000])


def _weight(steps: tuple[dict[str, Any], ...], usual: dict[str, int], changes: tuple[dict[str, Any], ...],
            version: int | None, advert: float) -> tuple[Estimate, bool | None, tuple[str, ...]]:
    """A weighted check read off the advertised priority (keepalived ``vrrp_track.c``: a tracker with
    weight w ≠ 0 changes the priority by |w| instead of putting the instance in FAULT).

    The magnitude |w| is each continuous step's size. Which priority is the healthy one is not on the
    wire; the one a node advertised most (checks pass most of the time) is taken as it. A step below it is
    a failing check lowering the priority (written ``weight: -|w|`` on that base: a weight +|w| on a base
    |w| lower is the same on the wire); a step above it is ``reverse``. For each drop: whether it covers
    the gap (the lowered priority under a backup's) and whether a backup took the VIP after it.
    """
    from simsip.protocols import vrrp as rules

    cont = [s for s in steps if s["continuous"] and s["old"] != 255 and s["new"] != 255]
    if not cont:
        return Estimate("weight", None, 0, evidence="no node's advertised priority changed while it kept advertising "
                                                     "(constant priorities: no weighted check)"), None, ()
    sizes = [abs(s["new"] - s["old"]) for s in cont]
    away = [s for s in cont if s["old"] == usual.get(s["node"])]
    ups = sum(1 for s in away if s["new"] > s["old"])
    reverse = bool(away) and ups > len(away) - ups
    times = ", ".join(f"{s['node']} {s['old']}->{s['new']} at {s['time']:.3f}s" for s in cont[:6])
    more = f" and {len(cont) - 6} more" if len(cont) > 6 else ""
    distinct = sorted(set(sizes))
    mixed = f"; sizes {distinct} (several trackers?)" if len(distinct) > 1 else ""
    w = estimate("weight", sizes, evidence=f"{len(cont)} change(s) of the advertised priority while the node kept "
                                           f"advertising: {times}{more}{mixed}")
    outcomes: list[str] = []
    for s in away:
        node, low = s["node"], s["new"]
        if (s["new"] > s["old"]) != reverse:
            continue
        others = {ip: p for ip, p in usual.items() if ip != node}
        moved = next((c for c in changes if c["old"] == node and s["time"] <= c["time"]
                      <= s["time"] + rules.master_down_interval(version or 2, 1, advert) + 2 * advert), None)
        if others:
            top = max(others.values())
            gap = (f"covers the gap: {low} below the backup's {top}" if low < top else
                   f"misses the gap: {low} still at or above the backup's {top}")
        else:
            gap = "the backup never advertised (its priority is below the master's, not seen)"
        if moved is not None:
            what = f"the VIP moved to {moved['new']} {moved['time'] - s['time']:.3f}s later"
        else:
            what = "the VIP did not move"
        outcomes.append(f"{node} {s['old']}->{low} at {s['time']:.3f}s ({s['new_adverts']} adverts at {low}): {gap}; {what}")
    return w, reverse, tuple(outcomes[:100])


def _master_at(ha: HaInference, t: float) -> str:
    """The VRRP master at time ``t`` (capture clock, relative): the last new master at or before it."""
    m = ""
    for tm, ip in ha.masters:
        if tm <= t:
            m = ip
    return m


#: kinds of fault after which the registrar process starts again with what its storage holds
_RESTARTS = ("node_crash", "process_crash")
#: answers for bindings the restarted node had no REGISTER for since its fault, before persistence is read
_MIN_KEPT = 5


def _persistence(inf: _Inferer, registrar: RegistrarInference, ha: HaInference,
                 faults: tuple[dict[str, Any], ...], shift: float, t0: float) -> RegistrarInference:
    """Did the registrar's bindings survive its restart? After a crash the process starts with what its
    storage holds (nothing when memory-only). A node that, after the repair, answers OPTIONS for an AOR
    as registered (200) although that AOR sent it no REGISTER since the fault, had the binding from
    disk: persistence (usrloc db_mode 1 or 2: write-through and write-back cannot be told apart on the
    wire). Only where the nodes do not replicate (a DMQ peer's sync would fill it too) and the fault
    restarted the process (``faults.json``, or inferred). Memory-only: every such answer is 404."""
    import dataclasses

    restarts = []
    for f in faults:
        rep = f.get("repair_after")
        if f.get("kind") not in _RESTARTS or not isinstance(rep, float) or not math.isfinite(rep):
            continue
        at = f["at"] + shift
        node = _master_at(ha, at - 1e-6)
        if node:
            restarts.append((node, at, at + rep))
    if not restarts or not inf.probes:
        return registrar
    kept = lost = 0
    aors: set[str] = set()
    for node, at, repaired in restarts:
        for t, n, aor, status, last_ok in inf.probes:
            if n != node or t - t0 <= repaired or last_ok - t0 >= at:
                continue
            kept += status == 200
            lost += status != 200
            if status == 200:
                aors.add(aor)
    if kept + lost == 0:
        return registrar
    node, at, repaired = restarts[0]
    where = f"{node} after its restart at {repaired:.1f}s (capture clock)"
    if registrar.replication:
        verdict = "not read: the nodes replicate (DMQ), whose sync fills a restarted node too"
    elif kept >= _MIN_KEPT:
        verdict = "write_through"
    else:
        verdict = "memory"
    ev = {"kept": kept, "lost": lost, "aors": len(aors), "node": node, "restarted": repaired, "verdict": verdict,
          "evidence": f"{where}: {kept} OPTIONS answered 200 for {len(aors)} AORs that had sent it no REGISTER "
                      f"since the fault, {lost} not"}
    return dataclasses.replace(registrar, persistence=ev)


def _preempt(ha: HaInference, faults: tuple[dict[str, Any], ...], shift: float, end: float) -> HaInference:
    """Preempt or not, from a failback: a node with a higher priority than the master's comes back.

    keepalived starts an instance as BACKUP; with ``preempt`` (the default) a backup discards the adverts
    of a lower-priority master and takes over one Master_Down_Interval after it started (``preempt_delay``
    later still); with ``nopreempt`` it accepts them and stays backup. Seen on the wire: the returned
    node's adverts reappear and the old master's stop (preempt), or they never come (nopreempt, or a
    preempt_delay longer than the rest of the capture). The restart itself is not on the wire: the
    delay is measured from a repair recorded in the run's ``faults.json`` (a node crash: keepalived
    restarts with the node), as the time to the first advert minus the node's Master_Down_Interval.
    ``shift``: the run's clock minus the capture's; ``end``: the capture's last packet (capture clock).
    """
    import dataclasses

    from simsip.protocols import vrrp as rules

    if ha.stack != "keepalived" or not ha.masters:
        return ha
    version, advert = ha.version or 2, ha.advert_int.value or 1.0
    prio = ha.priorities

    def mdi(ip: str) -> float:
        return rules.master_down_interval(version, int(_clamp(prio.get(ip, 100), 1, 254)), advert)

    verdicts: list[tuple[bool, str]] = []
    delays: list[float] = []
    notes: list[str] = []
    # failbacks with a recorded repair: who was master when the fault hit, and what it did after the repair
    for f in faults:
        rep = f.get("repair_after")
        if not isinstance(rep, float) or not math.isfinite(rep):
            continue
        at = f["at"] + shift
        repaired = at + rep
        node = _master_at(ha, at - 1e-6) or _master_at(ha, at)
        holder = _master_at(ha, repaired)
        if not node or holder == node or prio.get(holder, 0) >= prio.get(node, 0):
            continue  # the node kept the VIP, or comes back below the master: no failback to read
        back = next((c for c in ha.master_changes if c["new"] == node and c["time"] >= repaired), None)
        if back is not None:
            took = back["time"] - repaired
            if f.get("kind") == "node_crash":
                excess = took - mdi(node)
                delays.append(excess)
                notes.append(f"{node} (priority {prio.get(node)}) took the VIP back from {holder} {took:.3f}s after its "
                             f"recorded restart at {repaired:.3f}s on the capture clock (Master_Down_Interval {mdi(node):.3f}s, "
                             f"{excess:+.3f}s beyond it)")
            else:
                notes.append(f"{node} took the VIP back from {holder} {took:.3f}s after the repair at {repaired:.3f}s on the capture clock")
            verdicts.append((True, notes[-1]))
        elif end - repaired > mdi(node) + 2 * advert:
            notes.append(f"{node} (priority {prio.get(node)}) restarted at {repaired:.3f}s on the capture clock (faults.json) and never "
                         f"advertised in the {end - repaired:.1f}s to the capture's end, while {holder} (priority "
                         f"{prio.get(holder)}) stayed master: nopreempt (or a preempt_delay over "
                         f"{end - repaired - mdi(node):.0f}s)")
            verdicts.append((False, notes[-1]))
    # without a recorded repair: a higher-priority node that lost the VIP and took it back preempted
    if not verdicts:
        for c0, c1 in zip(ha.master_changes, ha.master_changes[1:]):
            if c1["new"] == c0["old"] and c1["old"] == c0["new"] and prio.get(c1["new"], 0) > prio.get(c1["old"], 0):
                notes.append(f"{c1['new']} (priority {prio.get(c1['new'])}) took the VIP back from {c1['old']} "
                             f"(priority {prio.get(c1['old'])}) at {c1['time']:.3f}s; its restart is not in the "
                             "capture, so a preempt_delay is not measured")
                verdicts.append((True, notes[-1]))
    if not verdicts:
        return ha
    yes = sum(1 for v, _ in verdicts if v)
    value = yes * 2 >= len(verdicts)
    conflict = f" ({yes} of {len(verdicts)} failbacks preempted)" if 0 < yes < len(verdicts) else ""
    delay = estimate("preempt_delay", delays, unit="s",
                     evidence="time from the recorded restart to the first advert, minus Master_Down_Interval",
                     missing="no recorded node restart followed by a takeover")
    return dataclasses.replace(ha, preempt={"preempt": value, "evidence": "; ".join(notes[:10]) + conflict},
                               preempt_delay=delay)


def _origin(meta: dict[str, Any], t0: float) -> float:
    """The time origin of a lab run directory: its meta.json ``t0_epoch`` (the scenario's t=0), if
    within the capture's first minutes; else the capture's first packet."""
    info = meta.get("meta.json")
    value = info.get("t0_epoch") if isinstance(info, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value - t0 < 3600:
        return float(value)
    return t0


def _faults(metas: list[tuple[Path, dict[str, Any]]], ha: HaInference, t0: float,
            shift: float = 0.0) -> tuple[dict[str, Any], ...]:
    """The run directory's recorded faults (trace-relative), else a master crash where the master went silent."""
    from .importer import TraceImport

    import pandas as pd

    for _path, meta in metas[:1]:
        origin = _origin(meta, t0)
        imp = TraceImport(events=pd.DataFrame(), skipped={}, packets=0, t0_epoch=origin, meta=meta)
        out = []
        recorded = imp.faults()
        for k, f in enumerate(recorded):
            if f.cause != "fault":
                continue
            repair = next((r.time for r in recorded[k + 1:] if r.cause == "repair"), None)
            clock = "the run's clock (meta.json t0_epoch)" if origin != t0 else "capture clock"
            entry = {"kind": f.kind or "node_crash", "node": "master", "at": f.time,
                     "evidence": f"recorded in faults.json (node {f.node or '?'}), on {clock}"}
            if repair is not None:
                entry["repair_after"] = repair - f.time
            out.append(entry)
        if out:
            return tuple(out)
    out = []
    adv = ha.advert_int.value or 1.0
    explained: set[int] = set()  # master changes a weighted check's drop explains
    if ha.weight.observed:
        from simsip.protocols import vrrp as rules

        for st in ha.priority_steps:
            usual = ha.priorities.get(st["node"])
            if not st["continuous"] or st["old"] != usual or (st["new"] > st["old"]) != bool(ha.weight_reverse):
                continue
            # the check failed: its verdict goes out with the next advert, so the registrar died about half a
            # (default 1 s) check interval and half an advert interval before the first changed advert
            at = max(0.0, st["time"] - 0.5 - adv / 2 - shift)
            entry: dict[str, Any] = {
                "kind": "process_crash", "node": "master", "at": at,
                "evidence": f"inferred: master {st['node']} advertised {st['new']} instead of {st['old']} from "
                            f"{st['time']:.3f}s (a weighted check failed; half a 1 s check interval and half an "
                            "advert interval before it)"}
            back = next((r for r in ha.priority_steps if r["node"] == st["node"] and r["time"] > st["time"]
                         and r["new"] == usual), None)
            if back is not None:
                # the check passes again: at the next advert, or (the node was backup meanwhile) one
                # Master_Down_Interval before it preempted
                lag = 0.0 if back["continuous"] else rules.master_down_interval(ha.version or 2, usual, adv)
                rep = back["time"] - lag - st["time"]
                if rep > 0:
                    entry["repair_after"] = rep
                    entry["evidence"] += f"; back at {usual} at {back['time']:.3f}s"
            out.append(entry)
            mdi = rules.master_down_interval(ha.version or 2, 1, adv)
            explained.update(i for i, c in enumerate(ha.master_changes)
                             if c["old"] == st["node"] and st["time"] <= c["time"] <= st["time"] + mdi + 2 * adv)
    released = {ip: t for t, ip in reversed(ha.priority_zero_times)}  # first priority-0 advert per node
    for i, c in enumerate(ha.master_changes):
        if i in explained:
            continue
        t_zero = released.get(c["old"])
        if t_zero is not None and t_zero <= c["time"]:
            out.append({"kind": "process_crash", "node": "master", "at": max(0.0, t_zero - 0.5 - shift),
                        "evidence": f"inferred: master {c['old']} released the VIP (priority-0 advert at {t_zero:.3f}s; "
                                    f"half a 1 s check interval before it), {c['new']} advertised at {c['time']:.3f}s"})
        elif c["old"] and math.isfinite(c["silence"]) and c["silence"] < 1.5 * adv:
            continue  # the old master advertised until the new one appeared: a preemption, not a failure
        elif c["old"] and math.isfinite(c["old_last_advert"]):
            # the old master's last advert, plus half an advert interval: the fault is somewhere in between
            out.append({"kind": "node_crash", "node": "master", "at": c["old_last_advert"] + adv / 2 - shift,
                        "evidence": f"inferred: master {c['old']} silent after {c['old_last_advert']:.3f}s, "
                                    f"{c['new']} advertised at {c['time']:.3f}s"})
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Scenario YAML
# ---------------------------------------------------------------------------------------------
def _q(text: str) -> str:
    return '"' + _printable(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _c(text: str) -> str:
    return "  # " + _printable(text)


#: the ranges the scenario schema accepts, so whatever a capture holds the YAML validates
_MAX_DURATION = 400 * 86400.0
_MAX_EXPIRES = 30 * 86400.0


def _scenario_yaml(inf: Inference, name: str) -> str:
    from simsip.faults import NAMES as FAULT_KINDS

    lines: list[str] = []
    add = lines.append
    files = ", ".join(str(f) for f in inf.files)
    add(f"# Inferred by simsip trace infer from {files}")
    add(f"# ({inf.packets} packets, {inf.duration:.1f}s). Every value says what it rests on: n observations and the")
    add("# median's 95% interval, or the profile it falls back to because the capture does not show it.")
    if inf.skipped:
        add("# skipped packets: " + ", ".join(f"{k}={v}" for k, v in inf.skipped.items()))
    for note in inf.notes:
        add(f"# note: {note}")
    add(f"name: {_q(name)}")
    add(f"description: {_q('inferred from ' + ', '.join(f.name for f in inf.files))}")
    add("seed: 1")
    add("replications: 5")
    duration = _clamp(float(math.ceil(inf.duration)) if math.isfinite(inf.duration) else 10.0, 10.0, _MAX_DURATION)
    add(f"duration: {duration_text(duration)}{_c('the capture duration (at least 10 s)')}")
    add("fleets:")
    if not inf.fleets:
        add("  - name: phones")
        add("    count: 1" + _c("no REGISTER in the capture: one placeholder phone"))
        add("    profile: generic-udp")
    for f in inf.fleets[:1000]:
        _fleet_yaml(f, add)
    _registrar_yaml(inf, add)
    _ha_yaml(inf, add)
    faults = []
    for x in inf.faults:
        at = x["at"]
        if not (math.isfinite(at) and 0 <= at < duration):
            add(f"# fault not placed (outside the run): {x['kind']} at {at:.3f}s ({x['evidence']})")
        elif x["kind"] not in FAULT_KINDS:
            add(f"# fault not placed (unknown kind {x['kind']!r}) at {at:.3f}s ({x['evidence']})")
        else:
            faults.append(x)
    if faults:
        add("faults:")
        for x in faults[:10_000]:
            add(f"  - kind: {x['kind']}{_c(x['evidence'])}")
            add("    node: master")
            add(f"    at: {duration_text(round(x['at'], 3))}")
            rep = x.get("repair_after")
            if isinstance(rep, float) and math.isfinite(rep) and rep > 0:
                add(f"    repair_after: {duration_text(round(rep, 3))}")
    if inf.measured_note:
        add(f"# {inf.measured_note}")
    return "\n".join(_printable(line) for line in lines) + "\n"


def _fleet_yaml(f: FleetInference, add: Callable[[str], None]) -> None:
    prof = f"from profile {f.profile} because not observed"
    add(f"  - name: {_q(f.name)}{_c(f'User-Agent {f.user_agent!r}, {f.transport}; {f.transactions} REGISTER transactions')}")
    add(f"    count: {min(20_000_000, max(1, f.phones))}{_c(f'distinct AORs, from {f.addresses} source address(es)')}")
    add(f"    profile: {f.profile}{_c(f.profile_reason)}")
    add(f"    phases: {f.phases}{_c('first REGISTERs spread evenly' if f.phases == 'even' else 'refresh phases not evenly spread (or too few phones)')}")
    add("    phone:")
    add(f"      transport: {f.transport}{_c('seen on the wire')}")
    req = f.requested_expires
    if req.observed and (req.value or 0) >= 1:
        add(f"      expires: {duration_text(_clamp(round(req.value, 3), 1.0, _MAX_EXPIRES))}{_c(req.comment())}")
    else:
        add(f"      # expires: {prof} ({req.comment()})")
    fr = f.refresh_fraction
    if fr.observed and (fr.value or 0) > 0:
        if f.refresh_mode == "margin" and f.refresh_margin.observed:
            margin = _clamp(f.refresh_margin.value or 0.0, 0.0, _MAX_EXPIRES)
            add(f"      refresh: {{mode: margin, margin: {duration_text(round(margin, 3))}}}"
                f"{_c('margin ' + f.refresh_margin.comment() + '; a constant margin fits the grants better than a constant fraction')}")
        else:
            pct = _clamp(round((fr.value or 0.0) * 100, 2), 0.1, 100.0)
            q = fr.quantiles
            jitter = f"; jitter p5–p95 {q[0] * 100:.3g}–{q[4] * 100:.3g}% (not modelled)" if q else ""
            add(f"      refresh: {{mode: percent, percent: {pct:g}}}{_c('refresh point ' + fr.comment() + jitter)}")
    else:
        add(f"      # refresh: {prof} ({fr.comment()})")
    timers, tcom = [], []
    t1 = None
    if f.t1.observed:
        t1 = _clamp(round(f.t1.value or 0.0, 4), 0.001, 60.0)
        timers.append(f"t1: {duration_text(t1)}")
        tcom.append("t1 " + f.t1.comment())
    if f.t2.observed and t1 is not None:
        timers.append(f"t2: {duration_text(_clamp(round(f.t2.value or 0.0, 4), t1, 600.0))}")
        tcom.append("t2 " + f.t2.comment())
    if f.max_retransmissions.observed:
        timers.append(f"max_retransmissions: {int(_clamp(round(f.max_retransmissions.value or 0), 0, 100))}")
        tcom.append("max_retransmissions " + f.max_retransmissions.comment())
    if timers:
        add(f"      timers: {{{', '.join(timers)}}}{_c('; '.join(tcom))}")
    else:
        add(f"      # timers: {prof} (no REGISTER retransmission in the capture)")
    # retry rule
    waits = [e for e in f.error_waits.values() if e.observed]
    retry: list[str] = []
    rcom: list[str] = []
    if f.backoff:
        w1 = f.streak_waits[1].value or 0.0
        wmax = max((e.value or 0.0) for e in f.streak_waits.values())
        base = _clamp(w1 / 0.75, 0.001, _MAX_DURATION)
        retry += ["mode: backoff", f"base: {duration_text(round(base, 3))}",
                  f"max: {duration_text(round(_clamp(wmax / 0.75, base, _MAX_DURATION), 3))}"]
        rcom.append("waits grow across consecutive failures: " + ", ".join(
            f"#{k} {duration_text(e.value or 0)} (n={e.n})" for k, e in f.streak_waits.items())
            + "; base = first wait / 0.75 (RFC 5626 uniform [W/2, W])")
    elif waits or f.timeout_wait.observed:
        main = max(waits, key=lambda e: e.n) if waits else f.timeout_wait
        retry += ["mode: fixed", f"interval: {duration_text(round(_clamp(main.value or 0.0, 0.0, _MAX_DURATION), 3))}"]
        rcom.append(f"{main.name} {main.comment()}")
        if waits and f.timeout_wait.observed and abs((f.timeout_wait.value or 0) - (main.value or 0)) > 1.0:
            retry.append(f"timeout_interval: {duration_text(round(_clamp(f.timeout_wait.value or 0.0, 0.0, _MAX_DURATION), 3))}")
            rcom.append("timeout " + f.timeout_wait.comment())
    if f.retry_after_honoured.observed:
        retry.append(f"honour_retry_after: {'true' if (f.retry_after_honoured.value or 0) >= 0.5 else 'false'}")
        rcom.append("Retry-After honoured " + f.retry_after_honoured.comment())
    if retry:
        add(f"      retry: {{{', '.join(retry)}}}{_c('; '.join(rcom))}")
    else:
        add(f"      # retry: {prof} (no failed REGISTER was retried in the capture)")
    for code, e in f.error_waits.items():
        add(f"      # wait after {code}: {e.comment()}")
    for k, e in f.streak_waits.items():
        add(f"      # wait before the retry: {e.comment()}")
    if f.timeout_wait.observed:
        add(f"      # wait after a timeout: {f.timeout_wait.comment()}")
    ka = f.keepalive_interval
    if f.keepalive_kind != "none" and ka.observed:
        hi = ka.quantiles[4] if ka.quantiles else (ka.value or 0.0)
        lo = ka.quantiles[0] if ka.quantiles else (ka.value or 0.0)
        hi_c = _clamp(round(hi, 3), 0.01, 86400.0)
        randomize = round(_clamp(lo / hi if hi > 0 else 1.0, 0.0, 1.0), 2)
        add(f"      keepalive: {{kind: {f.keepalive_kind}, interval: {duration_text(hi_c)}, randomize: {randomize:g}}}"
            f"{_c('interval = p95, randomize = p5/p95; ' + ka.comment())}")
    else:
        add(f"      # keepalive: {prof} (no CRLF or OPTIONS ping from the phones)")
    if f.auth_challenges or f.proactive_auth:
        reuse = f.proactive_auth > 0
        add(f"      auth: {{nonce_reuse: {'true' if reuse else 'false'}}}"
            f"{_c(f'{f.auth_challenges} challenges answered, {f.proactive_auth} REGISTERs with credentials unchallenged')}")
    add(f"      # Call-ID reuse {f.call_id_reuse.comment()}; CSeq step {f.cseq_step.comment()}")


def _registrar_yaml(inf: Inference, add: Callable[[str], None]) -> None:
    r = inf.registrar
    add("registrar:")
    add(f"  profile: {r.profile}{_c(r.profile_reason)}")
    if r.replication:
        add(f"  data: replicated{_c(f'{r.replication} KDMQ requests between the nodes')}")
    else:
        add(f"  data: none{_c('no KDMQ replication seen (shared storage cannot be seen on the wire)')}")
    pe = r.persistence
    if pe is not None and pe["verdict"] == "write_through":
        add(f"  persistence: write_through{_c('bindings survived the restart: ' + pe['evidence'] + '; db_mode 1 (write-through) and 2 (write-back) look alike on the wire')}")
        add(f"  storage: local{_c('a table of the node its own (a shared one would answer on the backup too)')}")
        if r.profile.startswith("kamailio"):
            add(f"  preload: first_worker{_c('Kamailio usrloc: the first UDP worker preloads the table while the others answer')}")
    elif pe is not None:
        add(f"  # persistence: {pe['verdict']} ({pe['evidence']})")
    if r.latency.observed:
        mean = _clamp(round(r.latency.value or 0.0, 6), 1e-6, 3600.0)
        add(f"  service_time: {{dist: exponential, mean: {duration_text(mean)}}}"
            f"{_c('latency ' + r.latency.comment() + ' (includes the network round trip and queueing at the observed load)')}")
    else:
        add(f"  # service_time: from profile {r.profile} because not observed")
    lowest = min((g for _q, g in r.grants), default=None)
    min_exp: tuple[float, str] | None = None
    if r.min_expires.observed:
        min_exp = (r.min_expires.value or 0.0, "423 " + r.min_expires.comment())
    elif r.min_granted_above_request is not None:
        min_exp = (r.min_granted_above_request, r.grant_rule)
    elif lowest is not None and lowest < 60:
        min_exp = (lowest, f"granted {duration_text(lowest)}, so min_expires is at most that; {r.grant_rule}")
    max_exp = r.max_expires
    if max_exp is not None and max_exp > 0:
        if min_exp is None or min_exp[0] > max_exp:
            min_exp = (min(max_exp, lowest if lowest is not None else max_exp),
                       "at most max_expires (the schema requires it)")
    if min_exp is not None:
        add(f"  min_expires: {duration_text(_clamp(min_exp[0], 0.0, _MAX_EXPIRES))}{_c(min_exp[1])}")
    else:
        add(f"  # min_expires: from profile {r.profile} ({r.grant_rule})")
    if max_exp is not None and max_exp > 0:
        add(f"  max_expires: {duration_text(_clamp(max_exp, min_exp[0] if min_exp else 0.0, _MAX_EXPIRES))}{_c(r.grant_rule)}")
    if r.expires_range:
        add(f"  expires_range: {_clamp(r.expires_range, 0.0, 100.0):g}{_c(r.grant_rule)}")
    for node, n in list(r.answered_by.items())[:20]:
        lat = r.latency_by_node.get(node)
        add(f"  # answered by {node}: {n} final responses" + (f"; latency {lat.comment()}" if lat else ""))


def _ha_yaml(inf: Inference, add: Callable[[str], None]) -> None:
    h = inf.ha
    add("ha:")
    if h.stack != "keepalived":
        seen = f" ({h.stack} traffic seen)" if h.stack else ""
        add(f"  profile: keepalived{_c('no VRRP advert in the capture: the keepalived profile' + seen)}")
        return
    add(f"  profile: keepalived{_c(f'VRRP adverts seen, VIP {inf.vip}')}")
    version = h.version if h.version in (2, 3) else 2
    vrrp = [f"version: {version}"]
    com = [f"VRID {h.vrid}"]
    if h.advert_int.observed:
        adv = h.advert_int.value or 1.0
        adv = _clamp(round(adv), 1, 255) if version == 2 else _clamp(round(adv * 100) / 100, 0.01, 40.95)
        vrrp.append(f"advert_int: {duration_text(adv)}")
        com.append(f"advert field {h.advert_int.comment()}; measured gap {h.advert_gap.comment()}")
    if h.garp_repeat.observed:
        vrrp.append(f"garp_master_repeat: {int(_clamp(round(h.garp_repeat.value or 1), 1, 100))}")
        com.append(f"GARPs per burst {h.garp_repeat.comment()}")
    if h.garp_second_delay.observed:
        vrrp.append(f"garp_master_delay: {duration_text(round(_clamp(h.garp_second_delay.value or 0.0, 0.0, 3600.0), 1))}")
        com.append(f"second burst after {h.garp_second_delay.comment()}")
    pre = h.preempt.get("preempt")
    if pre is False:
        vrrp.append("preempt: false")
        com.append("nopreempt: " + h.preempt["evidence"])
    elif pre is True:
        d = h.preempt_delay
        if d.observed and (d.value or 0.0) > adv_or(h):
            vrrp.append(f"preempt_delay: {duration_text(round(_clamp(d.value or 0.0, 0.0, 1000.0), 1))}")
            com.append(f"preempt with preempt_delay {d.comment()}: {h.preempt['evidence']}")
        else:
            why = (f"; {duration_text(d.value or 0.0)} beyond Master_Down_Interval is within one advert interval "
                   "(keepalived's start-up and the advert phase), so no preempt_delay") if d.observed else ""
            com.append(f"preempt: {h.preempt['evidence']}{why}")
    else:
        com.append(f"preempt not observed ({h.preempt.get('evidence', 'no failback')}): keepalived's default preempt")
    add(f"  vrrp: {{{', '.join(vrrp)}}}{_c('; '.join(com))}")
    stopped = [f for f in inf.faults if f.get("kind") == "ha_stop"]
    if h.weight.observed:
        w = int(_clamp(round(h.weight.value or 0), 1, 253))
        rev = ", reverse: true" if h.weight_reverse else ""
        side = ("the priority rose away from the one advertised most: reverse" if h.weight_reverse else
                "the priority dropped from the one advertised most while the master kept advertising (no FAULT)")
        add(f"  health_check: {{kind: socket, interval: 1s, fall: 1, rise: 1, weight: -{w}{rev}}}"
            + _c(f"weight |w| {h.weight.comment()}; {side}; written as -{w} on the usual priority (a weight "
                 f"+{w} on a base {w} lower advertises the same); "
                 + "; ".join(h.weight_evidence[:4])
                 + "; kind, interval, fall, rise from the keepalived defaults because not observed"))
    elif h.priority_zero_times and stopped:
        add(f"  # {h.priority_zero} priority-0 advert(s): keepalived stopped ({len(stopped)} ha_stop fault(s) "
            "recorded in faults.json), not a failed track_script: no health check inferred")
    elif h.priority_zero_times:
        t, ip = h.priority_zero_times[0]
        add("  health_check: {kind: socket, interval: 1s, fall: 1, rise: 1}"
            + _c(f"{h.priority_zero} priority-0 advert(s), first from {ip} at {t:.3f}s: the master released the VIP "
                 "itself (a track_script put it in FAULT, or keepalived was stopped); kind, interval, fall, rise "
                 "from the keepalived defaults because not observed"))
    add("  nodes:")
    ordered = sorted(h.priorities.items(), key=lambda kv: -kv[1])[:10]
    entries: list[tuple[int, str]] = []  # (priority, evidence)
    for ip, prio in ordered:
        first = next((t for t, m in h.masters if m == ip), None)
        since = f", master from {first:.3f}s" if first is not None else ""
        others = {p: n for p, n in h.priority_counts.get(ip, {}).items() if p != prio}
        also = ""
        if others:
            steps = [st for st in h.priority_steps if st["node"] == ip and st["continuous"]]
            when = ", ".join(f"{st['old']}->{st['new']} at {st['time']:.3f}s" for st in steps[:4])
            also = (f" in {h.priority_counts[ip].get(prio, 0)} adverts; also "
                    + ", ".join(f"{p} in {n}" for p, n in others.items()) + (f" ({when})" if when else ""))
        entries.append((int(_clamp(prio, 1, 255)), f"{ip}: advertised priority {prio}{also}{since}"))
    if not entries:
        entries.append((100, "assumption: no advert with a non-zero priority"))
    if len(entries) < 2:
        base = entries[0][0]
        guess = base - 100 if base > 100 else base - 1
        lowered = [st["new"] for st in h.priority_steps if st["continuous"] and st["new"] < st["old"]]
        why = ""
        if lowered and h.weight.observed and not h.weight_reverse and min(lowered) <= guess:
            # the master kept the VIP at its lowered priority: the backup was below it (or nopreempt)
            guess, why = min(lowered) - 1, f", and below the master's lowered {min(lowered)} that kept the VIP"
        entries.append((int(_clamp(guess, 1, 254)),
                        "assumption: the backup never advertised, so its priority is not observed" + why))
    # the schema wants distinct priorities (VRRP would tie-break on the addresses)
    prios: list[int] = []
    for p, _ in entries:
        prios.append(min(p, prios[-1] - 1) if prios else p)
    if prios[-1] < 1:
        prios = [255 - i for i in range(len(prios))]
    for i, ((p, evidence), q) in enumerate(zip(entries, prios)):
        note = "" if p == q else f"; made {q} to differ from the node above (VRRP tie-breaks on the address)"
        add(f"    - {{name: {'abcdefghijk'[i]}, priority: {q}}}{_c(evidence + note)}")
    for d in h.dual_masters[:100]:
        add(f"  # two masters advertising from {d['start']:.3f}s to {d['end']:.3f}s: {d['nodes'][0]} and {d['nodes'][1]} (split brain)")
    for c in h.master_changes[:100]:
        silence = f", {c['silence']:.3f}s after the old master's last advert" if math.isfinite(c["silence"]) else ""
        add(f"  # master change at {c['time']:.3f}s: {c['old'] or '?'} -> {c['new']}{silence}")


def adv_or(h: HaInference) -> float:
    """The advert interval read from the adverts (1 s, keepalived's default, when none was seen)."""
    return h.advert_int.value or 1.0


# ---------------------------------------------------------------------------------------------
def write_inference(inference: Inference, out: str | os.PathLike, name: str | None = None) -> Path:
    """Write the scenario YAML (:meth:`Inference.scenario_yaml`) atomically."""
    from simsip.io import atomic_text

    out = Path(out)
    atomic_text(out, inference.scenario_yaml(name or out.stem))
    return out
