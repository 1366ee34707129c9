"""Trace import: a lab capture turned into the tidy SIP/VRRP event table.

The lab (see ``docs/design.md`` and the lab notes) captures with tshark while SIPp phones REGISTER
to a virtual IP (VIP) held by one of two Kamailio registrars under keepalived/VRRP, and a prober
sends ``OPTIONS sip:<aor>@VIP`` to learn whether each phone is reachable. The capture therefore
holds three kinds of traffic the metrics need:

* SIP requests and responses (over UDP, or TCP streams split by ``Content-Length``),
* VRRP advertisements (only the current VRRP master sends them),
* everything else, which is counted by reason in :attr:`TraceImport.skipped` and dropped (SIP
  that cannot be read — HEP-encapsulated, TLS-encrypted — under ``hep`` and ``tls``).

:func:`import_trace` returns one row per SIP message / VRRP advertisement with the columns declared
in :data:`simsip.tables.EVENTS` (:data:`EVENT_COLUMNS`; ``docs/design.md`` is generated from it),
times in seconds since the first packet.

Two capture artefacts are handled before SIP semantics:

* *duplicate captures*: ``-i any`` sees a bridged packet once per interface it crosses; identical
  payloads between the same endpoints within ``dedup_window`` seconds are counted as
  ``duplicate`` and dropped (SIP retransmissions are at least T1 = 500 ms apart);
* *TCP*: each direction of a connection is reassembled by sequence number; segments that never
  fill a gap are skipped over (``tcp_gap``) and the stream re-synchronises on the next SIP start
  line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simsip.io import unpacked_run
from simsip.tables import EVENTS

from .metrics import TraceFault
from .pcap import Datagram, TraceError, decode_record, parse_vrrp, read_capture
from .sip import SipMessage, datagram_sip, looks_like_sip, parse_sip, unreadable

__all__ = ["EVENT_COLUMNS", "EVENT_DTYPES", "TraceImport", "import_trace"]

#: Column -> dtype of the event table (declared in :data:`simsip.tables.EVENTS`, in order).
EVENT_DTYPES: dict[str, str] = {c.name: c.dtype for c in EVENTS.columns}
EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_DTYPES)

_CAPTURE_SUFFIXES = (".pcapng", ".pcap")
_META_FILES = ("faults.json", "meta.json")
_FAULT_TIME_KEYS = ("time_epoch", "epoch", "t_epoch", "time", "t", "at")  # preference order
_EPOCH_THRESHOLD = 1e8  # fault times above this are epoch seconds, below are trace-relative


@dataclass(frozen=True)
class TraceImport:
    """Result of :func:`import_trace`."""

    events: pd.DataFrame
    skipped: dict[str, int]
    packets: int
    t0_epoch: float
    files: tuple[Path, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Seconds from the first to the last event (0 for an empty table)."""
        return float(self.events["time"].max()) if len(self.events) else 0.0

    def fault_times(self) -> list[float]:
        """Fault injection times (trace-relative seconds) found in ``faults.json``/``meta.json``.

        Accepted shapes: a list of numbers, a list of objects with ``time_epoch``/``epoch``/
        ``t_epoch``/``time``/``t``/``at`` (first present wins), or an object holding such a list
        under ``faults``. Values above
        1e8 are taken as epoch seconds and shifted by :attr:`t0_epoch`.
        """
        times: list[float] = []
        for name in _META_FILES:
            times.extend(_fault_times(self.meta.get(name), self.t0_epoch))
        return sorted(set(times))

    def faults(self) -> tuple[TraceFault, ...]:
        """The disturbances recorded with the capture, for :func:`~simsip.trace.trace_metrics`.

        The same entries as :meth:`fault_times`, as :class:`~simsip.trace.TraceFault` records: an
        entry with ``"action": "repair"`` is a repair, ``kind`` and ``node`` are kept when given.
        Entries at the same time are kept once (the first one found).
        """
        out: dict[float, TraceFault] = {}
        for name in _META_FILES:
            value = self.meta.get(name)
            items = value.get("faults", []) if isinstance(value, dict) else value
            if not isinstance(items, list):
                continue
            for item in items:
                times = _fault_times([item], self.t0_epoch)
                if not times:
                    continue
                info = item if isinstance(item, dict) else {}
                cause = "repair" if info.get("action") == "repair" else "fault"
                out.setdefault(times[0], TraceFault(times[0], cause, str(info.get("kind") or ""),
                                                     str(info.get("node") or "")))
        return tuple(out[t] for t in sorted(out))


def import_trace(path: str | Path, *, dedup_window: float = 0.005) -> TraceImport:
    """Import a capture file (pcap/pcapng) or a lab run directory into a :class:`TraceImport`.

    A directory contributes every ``*.pcapng``/``*.pcap`` in it (merged on time) and, when present,
    ``faults.json``/``meta.json`` as :attr:`TraceImport.meta`. Damaged packets are counted in
    :attr:`TraceImport.skipped`; a file that is not a capture raises :class:`TraceError`.
    """
    root = unpacked_run(path)
    files, meta = _inputs(root)
    skipped: dict[str, int] = {}
    datagrams: list[Datagram] = []
    packets = 0
    times: list[float] = []
    for file in files:
        for record in read_capture(file, skipped):
            packets += 1
            if not math.isfinite(record.time):
                _bump(skipped, "bad_timestamp")
                continue
            times.append(record.time)
            decoded = decode_record(record)
            if isinstance(decoded, str):
                _bump(skipped, decoded)
            else:
                datagrams.append(decoded)
    datagrams, times = _drop_bogus_times(datagrams, times, skipped)
    t0 = min(times) if times else 0.0
    datagrams.sort(key=lambda d: d.time)  # stable: file order kept for equal times
    rows = _events(deduplicate(datagrams, dedup_window, skipped), skipped)
    events = _frame(rows, t0)
    return TraceImport(
        events=events,
        skipped=dict(sorted(skipped.items())),
        packets=packets,
        t0_epoch=float(t0),
        files=tuple(files),
        meta=meta,
    )


#: a packet further than this from the capture's median time has a bogus timestamp (a clock
#: reset to 1970, a corrupted record header): it is counted as ``bad_timestamp`` and dropped
MAX_TIME_FROM_MEDIAN = 30 * 86400.0


def _drop_bogus_times(datagrams: list[Datagram], times: list[float], skipped: dict[str, int]
                      ) -> tuple[list[Datagram], list[float]]:
    if not times:
        return datagrams, times
    mid = sorted(times)[len(times) // 2]
    lo, hi = mid - MAX_TIME_FROM_MEDIAN, mid + MAX_TIME_FROM_MEDIAN
    kept = [d for d in datagrams if lo <= d.time <= hi]
    good = [t for t in times if lo <= t <= hi]
    if len(good) < len(times):
        _bump(skipped, "bad_timestamp", len(times) - len(good))
    return kept, good


# ---------------------------------------------------------------------------------------------
def _bump(skipped: dict[str, int], reason: str, n: int = 1) -> None:
    skipped[reason] = skipped.get(reason, 0) + n


def _inputs(root: Path) -> tuple[list[Path], dict[str, Any]]:
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in _CAPTURE_SUFFIXES)
        if not files:
            raise TraceError(f"{root}: no *.pcapng or *.pcap capture in this directory")
        meta: dict[str, Any] = {}
        for name in _META_FILES:
            file = root / name
            if file.is_file():
                try:
                    meta[name] = json.loads(file.read_text())
                except (OSError, ValueError) as exc:
                    raise TraceError(f"{file}: unreadable JSON: {exc}") from None
        return files, meta
    if not root.exists():
        raise TraceError(f"{root}: no such file or directory")
    return [root], {}


def _fault_times(value: Any, t0_epoch: float) -> list[float]:
    if isinstance(value, dict):
        value = value.get("faults", [])
    if not isinstance(value, list):
        return []
    out: list[float] = []
    for item in value:
        number: Any = item
        if isinstance(item, dict):
            number = next(
                (item[k] for k in _FAULT_TIME_KEYS if k in item), None
            )
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            t = float(number)
            if math.isfinite(t):
                out.append(t - t0_epoch if t > _EPOCH_THRESHOLD else t)
    return out


def deduplicate(
    datagrams: Iterable[Datagram], window: float, skipped: dict[str, int], *, hashed: bool = False,
    keep: int = 50_000,
) -> Iterator[Datagram]:
    """Drop copies of the same packet captured on several interfaces within ``window`` s.

    ``hashed``: key on the payload's length and hash instead of the payload itself, so the state
    stays small on a long capture (``simsip trace infer``); ``keep`` bounds the remembered keys
    (older than the window are forgotten once there are more)."""
    if window <= 0:
        yield from datagrams
        return
    last_seen: dict[tuple[Any, ...], float] = {}
    for d in datagrams:
        payload = (len(d.payload), hash(d.payload)) if hashed else d.payload
        key = (d.proto, d.src_ip, d.dst_ip, d.sport, d.dport, d.tcp_seq, d.tcp_flags, payload)
        previous = last_seen.get(key)
        last_seen[key] = d.time
        if previous is not None and d.time - previous <= window:
            _bump(skipped, "duplicate")
            continue
        if len(last_seen) > keep:
            horizon = d.time - window
            last_seen = {k: t for k, t in last_seen.items() if t >= horizon}
        yield d


# ---------------------------------------------------------------------------------------------
# TCP stream reassembly
# ---------------------------------------------------------------------------------------------
_SYN = 0x02
_RST = 0x04
_MAX_PENDING = 32  # out-of-order segments held before a gap is declared
_MAX_BUFFER = 1 << 20  # bytes of unframed stream kept before giving up on a message
_MAX_START_LINE = 8192  # a SIP start line longer than this is garbage
_START_LINE = re.compile(rb"(?m)^(?:SIP/2\.0 \d{3}[ \r\n]|[A-Za-z]+ \S+ SIP/2\.0\r?$)")
_CONTENT_LENGTH = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)")


@dataclass
class _TcpDirection:
    """Reassembly state of one direction of one TCP connection."""

    next_seq: int | None = None
    buffer: bytearray = field(default_factory=bytearray)
    pending: dict[int, bytes] = field(default_factory=dict)
    resync: bool = False
    #: "hep" or "tls" once the direction's first payload shows SIP that cannot be read; every later
    #: segment is counted under it (:func:`~simsip.trace.sip.unreadable`), none is reassembled
    unreadable: str = ""
    checked: bool = False

    def feed(self, seg: Datagram, skipped: dict[str, int]) -> list[bytes]:
        """Add a segment; return the SIP messages it completed."""
        if seg.payload and not self.checked:
            self.checked = True
            self.unreadable = unreadable(seg.payload, (seg.sport, seg.dport)) or ""
        if self.unreadable:
            if seg.payload:
                _bump(skipped, self.unreadable)
            return []
        if seg.tcp_flags & _SYN:
            self.next_seq = (seg.tcp_seq + 1) & 0xFFFFFFFF
            self.buffer.clear()
            self.pending.clear()
            self.resync = False
            return []
        if not seg.payload:
            return []
        if self.next_seq is None:  # joined mid-connection: the first message may be partial
            self.next_seq = seg.tcp_seq
            self.resync = True
        diff = _seq_diff(seg.tcp_seq, self.next_seq)
        if diff > 0:
            self.pending[seg.tcp_seq] = seg.payload
            if len(self.pending) <= _MAX_PENDING:
                return []
            self._skip_gap(skipped)
        else:
            self._append(seg.tcp_seq, seg.payload)
        self._drain()
        return self._frames(skipped)

    def flush(self, skipped: dict[str, int]) -> list[bytes]:
        """End of capture: skip over remaining gaps and frame what can still be framed."""
        out: list[bytes] = []
        if self.unreadable:
            return out
        while self.pending:
            self._skip_gap(skipped)
            self._drain()
            out.extend(self._frames(skipped))
        if self.buffer.strip(b"\r\n"):
            _bump(skipped, "tcp_incomplete")
        return out

    def _append(self, seq: int, payload: bytes) -> None:
        assert self.next_seq is not None
        overlap = -_seq_diff(seq, self.next_seq)
        if overlap >= len(payload):
            return  # pure retransmission of bytes already taken
        self.buffer += payload[overlap:]
        self.next_seq = (self.next_seq + len(payload) - overlap) & 0xFFFFFFFF

    def _drain(self) -> None:
        assert self.next_seq is not None
        progressed = True
        while progressed and self.pending:
            progressed = False
            for seq in list(self.pending):
                if _seq_diff(seq, self.next_seq) <= 0:
                    self._append(seq, self.pending.pop(seq))
                    progressed = True

    def _skip_gap(self, skipped: dict[str, int]) -> None:
        """Give up on missing bytes: jump to the earliest held segment and re-synchronise."""
        assert self.next_seq is not None
        base = self.next_seq
        first = min(self.pending, key=lambda s: _seq_diff(s, base))
        _bump(skipped, "tcp_gap")
        self.buffer.clear()
        self.next_seq = first
        self.resync = True

    def _frames(self, skipped: dict[str, int]) -> list[bytes]:
        out: list[bytes] = []
        buf = self.buffer
        while True:
            if self.resync:
                match = _START_LINE.search(buf)
                if match is None:
                    keep = buf.rfind(b"\n")
                    drop = keep + 1 if keep >= 0 else max(0, len(buf) - 256)
                    if drop:
                        _bump(skipped, "tcp_unsynced")  # bytes dropped looking for a start line
                        del buf[:drop]
                    return out
                if match.start():
                    _bump(skipped, "tcp_unsynced")
                    del buf[: match.start()]
                self.resync = False
            stripped = len(buf) - len(buf.lstrip(b"\r\n"))  # RFC 5626 CRLF keep-alives
            if stripped:
                del buf[:stripped]
            if not buf:
                return out
            line_end = buf.find(b"\n", 0, _MAX_START_LINE)
            if line_end < 0 and len(buf) < _MAX_START_LINE:
                return out  # the start line is not complete yet
            if line_end < 0 or not looks_like_sip(bytes(buf[: line_end + 1])):
                _bump(skipped, "not_sip")  # not SIP (or garbage): look for the next start line
                del buf[: line_end + 1 if line_end >= 0 else len(buf)]
                self.resync = True
                continue
            head_end = buf.find(b"\r\n\r\n")
            sep = 4
            if head_end < 0:
                head_end = buf.find(b"\n\n")
                sep = 2
            if head_end < 0:
                if len(buf) > _MAX_BUFFER:
                    _bump(skipped, "bad_sip")
                    buf.clear()
                    self.resync = True
                return out
            match = _CONTENT_LENGTH.search(buf, 0, head_end)
            length = int(match.group(1)) if match else 0
            if length > _MAX_BUFFER:
                _bump(skipped, "bad_sip")
                del buf[: head_end + sep]
                self.resync = True
                continue
            total = head_end + sep + length
            if len(buf) < total:
                return out
            out.append(bytes(buf[:total]))
            del buf[:total]


def _seq_diff(a: int, b: int) -> int:
    """Signed difference a - b in 32-bit sequence space."""
    d = (a - b) & 0xFFFFFFFF
    return d - (1 << 32) if d >= 1 << 31 else d


# ---------------------------------------------------------------------------------------------
# Event rows
# ---------------------------------------------------------------------------------------------
def _events(datagrams: Iterable[Datagram], skipped: dict[str, int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    streams: dict[tuple[str, int, str, int], _TcpDirection] = {}
    last_tcp: dict[tuple[str, int, str, int], Datagram] = {}
    for d in datagrams:
        if d.proto == "vrrp":
            advert = parse_vrrp(d.payload)
            if advert is None:
                _bump(skipped, "bad_vrrp")
                continue
            rows.append(_vrrp_row(d, advert))
        elif d.proto == "udp":
            if not d.payload.strip(b"\r\n\x00 "):
                _bump(skipped, "sip_keepalive" if d.payload else "not_sip")
                continue
            msg = datagram_sip(d.payload, skipped, (d.sport, d.dport))
            if msg is None:
                continue
            rows.append(_sip_row(d, msg))
        else:
            key = (d.src_ip, d.sport, d.dst_ip, d.dport)
            if d.tcp_flags & _RST and key in streams:
                rows.extend(_tcp_rows(d, streams.pop(key).flush(skipped), skipped))
                continue
            if not d.payload and not d.tcp_flags & _SYN:
                _bump(skipped, "tcp_control")
                continue
            stream = streams.setdefault(key, _TcpDirection())
            last_tcp[key] = d
            rows.extend(_tcp_rows(d, stream.feed(d, skipped), skipped))
    for key, stream in streams.items():
        rows.extend(_tcp_rows(last_tcp[key], stream.flush(skipped), skipped))
    rows.sort(key=lambda r: r["time"])
    _mark_retransmissions(rows)
    _fill_response_aors(rows)
    return rows


def _tcp_rows(d: Datagram, frames: list[bytes], skipped: dict[str, int]) -> list[dict[str, Any]]:
    rows = []
    for frame in frames:
        msg = parse_sip(frame)
        if msg is None:
            _bump(skipped, "bad_sip")
        else:
            rows.append(_sip_row(d, msg))
    return rows


def _sip_row(d: Datagram, msg: SipMessage) -> dict[str, Any]:
    if msg.kind == "request" and msg.method != "REGISTER":
        aor = msg.request_user or msg.to_user
    else:
        aor = msg.to_user
    return {
        "time": d.time,
        "src": d.src,
        "dst": d.dst,
        "proto": d.proto,
        "kind": msg.kind,
        "method": msg.method,
        "status": msg.status,
        "call_id": msg.call_id,
        "cseq": msg.cseq,
        "aor": aor,
        "expires": msg.expires,
        "branch": msg.branch,
        "retransmission": False,
        "vrrp_src": "",
        "vrrp_priority": pd.NA,
        "vrrp_version": pd.NA,
        "vrrp_advert_int": math.nan,
    }


def _vrrp_row(d: Datagram, advert: Any) -> dict[str, Any]:
    return {
        "time": d.time,
        "src": d.src,
        "dst": d.dst,
        "proto": "vrrp",
        "kind": "vrrp",
        "method": "",
        "status": 0,
        "call_id": "",
        "cseq": 0,
        "aor": "",
        "expires": math.nan,
        "branch": "",
        "retransmission": False,
        "vrrp_src": d.src_ip,
        "vrrp_priority": advert.priority,
        "vrrp_version": advert.version,
        "vrrp_advert_int": advert.advert_int,
    }


def _mark_retransmissions(rows: list[dict[str, Any]]) -> None:
    seen: set[tuple[str, int, str, str]] = set()
    for row in rows:
        if row["kind"] != "request":
            continue
        key = (row["call_id"], row["cseq"], row["method"], row["branch"])
        if key in seen:
            row["retransmission"] = True
        else:
            seen.add(key)


def _fill_response_aors(rows: list[dict[str, Any]]) -> None:
    """Give a response the AOR of its request (OPTIONS probes name the AOR in the R-URI)."""
    aor_of: dict[tuple[str, int, str], str] = {}
    for row in rows:
        key = (row["call_id"], row["cseq"], row["method"])
        if row["kind"] == "request":
            aor_of.setdefault(key, row["aor"])
        elif row["kind"] == "response" and key in aor_of:
            row["aor"] = aor_of[key]


def _frame(rows: list[dict[str, Any]], t0: float) -> pd.DataFrame:
    if not rows:
        return EVENTS.empty()
    frame = pd.DataFrame.from_records(rows, columns=list(EVENT_COLUMNS))
    frame["time"] = np.asarray(frame["time"], dtype="float64") - t0
    return EVENTS.conform(frame)
