"""Capture files and packet decoding: from pcap/pcapng bytes to transport payloads.

A capture is a sequence of *records*, each a timestamp plus the bytes seen on a link. Two file
formats exist: classic libpcap (one global header with one link type, then record headers) and
pcapng (blocks: a Section Header, Interface Description Blocks with each interface's link type and
timestamp resolution, then Enhanced Packet Blocks naming their interface). ``tshark -i any`` writes
pcapng with the Linux "cooked" SLL2 link type (20-byte pseudo header), ``tcpdump -i any`` SLL
(16 bytes); a capture on one interface is usually Ethernet.

Under the link header sit IPv4/IPv6 and then the payloads the importer cares about: UDP and TCP
(SIP) and IP protocol 112 (VRRP advertisements, RFC 3768 v2 / RFC 5798 v3).

Real captures are messy (snap-length cuts, a file cut short by killing the capture, fragments,
checksum offload), so nothing here raises for bad packets: decoding returns a skip *reason* that the
importer counts. Only a file that is not a capture at all raises :class:`TraceError`.

The file framing is parsed here rather than with ``dpkt.pcap.Reader``/``dpkt.pcapng.Reader``:
those readers keep only the first interface of a pcapng file (tshark writes one per interface),
and raise assorted exceptions on a truncated tail instead of reporting it.
"""

from __future__ import annotations

import mmap
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "Datagram",
    "Record",
    "TraceError",
    "VrrpAdvert",
    "decode_record",
    "parse_vrrp",
    "read_capture",
]


class TraceError(ValueError):
    """The file is not a readable packet capture (message names the path and the reason)."""


LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in host byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4/IPv6 (DLT_RAW); 12 and 14 on some BSDs
LINKTYPE_LOOP = 108  # OpenBSD loopback: 4-byte address family, network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

_RAW_LINKTYPES = frozenset({LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6})
_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = frozenset({0x8100, 0x88A8, 0x9100})
_AF_INET6 = frozenset({10, 24, 28, 30})  # Linux, BSDs, macOS

IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_VRRP = 112
_IPV6_EXT_HEADERS = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options
_IPV6_FRAGMENT = 44

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_BT_IDB = 1
_BT_PB = 2
_BT_SPB = 3
_BT_EPB = 6
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14
_MAX_BLOCK = 1 << 26  # 64 MiB: anything larger is corruption, not a packet


@dataclass(frozen=True, slots=True)
class Record:
    """One captured frame: epoch timestamp, link type and the captured bytes."""

    time: float
    linktype: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Datagram:
    """A decoded transport payload: UDP datagram, TCP segment or VRRP packet."""

    time: float
    proto: str  # "udp", "tcp" or "vrrp"
    src_ip: str
    dst_ip: str
    sport: int
    dport: int
    payload: bytes
    tcp_seq: int = 0
    tcp_flags: int = 0

    @property
    def src(self) -> str:
        return _endpoint(self.src_ip, self.sport, self.proto)

    @property
    def dst(self) -> str:
        return _endpoint(self.dst_ip, self.dport, self.proto)


@dataclass(frozen=True, slots=True)
class VrrpAdvert:
    """A VRRP advertisement: only the current master of a virtual router sends them."""

    version: int
    vrid: int
    priority: int  # 0 = the master is giving up; 255 = the address owner
    advert_int: float  # seconds (v2: whole seconds; v3: 12-bit centiseconds)


def _endpoint(ip: str, port: int, proto: str) -> str:
    if proto == "vrrp":
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


# ---------------------------------------------------------------------------------------------
# File framing
# ---------------------------------------------------------------------------------------------
def read_capture(path: Path, skipped: dict[str, int]) -> Iterator[Record]:
    """Yield the records of a pcap or pcapng file, counting damaged ones into ``skipped``.

    Raises :class:`TraceError` if the file cannot be read or is not a capture (unknown magic,
    incomplete file header). A truncated tail is counted as ``truncated`` and ends the file.
    """
    try:
        data = _map(Path(path))
    except OSError as exc:
        raise TraceError(f"{path}: cannot read capture: {exc.strerror or exc}") from None
    if not data:
        raise TraceError(f"{path}: not a packet capture: the file is empty")
    magic = data[:4]
    if magic in _PCAP_MAGIC:
        return _read_pcap(path, data, skipped)
    if magic == _PCAPNG_SHB:
        return _read_pcapng(path, data, skipped)
    raise TraceError(
        f"{path}: not a packet capture: unknown magic {magic.hex()} (expected pcap or pcapng)"
    )


def _map(path: Path) -> bytes | mmap.mmap:
    """The file's bytes: read whole when small, memory-mapped when large (a capture of gigabytes is
    paged in as it is read, not loaded)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < _MAP_THRESHOLD:
            return fh.read()
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


_MAP_THRESHOLD = 1 << 24  # 16 MiB
_RELEASE_STEP = 1 << 25  # give back the pages of a mapped capture every 32 MiB read


def _release(data: bytes | mmap.mmap, released: int, pos: int) -> int:
    """Drop the already-read pages of a memory-mapped capture from this process (they stay in the
    page cache), so reading a capture of gigabytes keeps a bounded resident set. Returns the new
    released offset."""
    if pos - released < _RELEASE_STEP or not isinstance(data, mmap.mmap) or not hasattr(data, "madvise"):
        return released
    upto = (pos // mmap.PAGESIZE) * mmap.PAGESIZE
    try:
        data.madvise(mmap.MADV_DONTNEED, released, upto - released)
    except (OSError, ValueError, AttributeError):  # not on this platform: the pages stay until the end
        return pos
    return upto


def _bump(skipped: dict[str, int], reason: str, n: int = 1) -> None:
    skipped[reason] = skipped.get(reason, 0) + n


def _read_pcap(path: Path, data: bytes, skipped: dict[str, int]) -> Iterator[Record]:
    endian, tick = _PCAP_MAGIC[data[:4]]
    if len(data) < 24:
        raise TraceError(f"{path}: not a packet capture: pcap file header truncated")
    network = struct.unpack_from(endian + "I", data, 20)[0]
    linktype = network & 0x0FFFFFFF  # upper bits may carry FCS information
    rec_hdr = struct.Struct(endian + "IIII")

    def records() -> Iterator[Record]:
        pos = 24
        end = len(data)
        released = 0
        while pos < end:
            if pos + 16 > end:
                _bump(skipped, "truncated")
                return
            sec, frac, caplen, _origlen = rec_hdr.unpack_from(data, pos)
            pos += 16
            if caplen > _MAX_BLOCK:
                _bump(skipped, "malformed_record")
                return
            if pos + caplen > end:
                _bump(skipped, "truncated")
                return
            yield Record(sec + frac * tick, linktype, data[pos : pos + caplen])
            pos += caplen
            released = _release(data, released, pos)

    return records()


@dataclass(slots=True)
class _Interface:
    linktype: int
    tick: float = 1e-6
    offset: float = 0.0


def _read_pcapng(path: Path, data: bytes, skipped: dict[str, int]) -> Iterator[Record]:
    if len(data) < 12:
        raise TraceError(f"{path}: not a packet capture: pcapng section header truncated")
    bom = data[8:12]
    if bom == b"\x4d\x3c\x2b\x1a":
        first_endian = "<"
    elif bom == b"\x1a\x2b\x3c\x4d":
        first_endian = ">"
    else:
        raise TraceError(f"{path}: not a packet capture: pcapng byte-order magic missing")

    def records() -> Iterator[Record]:
        endian = first_endian
        interfaces: list[_Interface] = []
        pos = 0
        end = len(data)
        released = 0
        while pos < end:
            if pos + 12 > end:
                _bump(skipped, "truncated")
                return
            block_type = data[pos : pos + 4]
            if block_type == _PCAPNG_SHB:
                bom = data[pos + 8 : pos + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    endian = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    endian = ">"
                else:
                    _bump(skipped, "malformed_block")
                    return
                interfaces = []  # interface ids are per section
            btype, blen = struct.unpack_from(endian + "II", data, pos)
            if blen < 12 or blen > _MAX_BLOCK:
                _bump(skipped, "malformed_block")
                return
            if pos + blen > end:
                _bump(skipped, "truncated")
                return
            body = data[pos + 8 : pos + blen - 4]
            pos += (blen + 3) & ~3
            if btype == _BT_IDB:
                iface = _parse_idb(body, endian)
                if iface is None:
                    _bump(skipped, "malformed_block")
                    interfaces.append(_Interface(linktype=-1))
                else:
                    interfaces.append(iface)
            elif btype in (_BT_EPB, _BT_PB):
                record = _parse_packet_block(btype, body, endian, interfaces, skipped)
                if record is not None:
                    yield record
                released = _release(data, released, pos)
            elif btype == _BT_SPB:
                # Simple Packet Blocks carry no timestamp: they cannot be placed on the time axis.
                _bump(skipped, "no_timestamp")
            # other blocks (name resolution, statistics, custom, ...) are ignored

    return records()


def _parse_idb(body: bytes, endian: str) -> _Interface | None:
    if len(body) < 8:
        return None
    linktype, _reserved, _snaplen = struct.unpack_from(endian + "HHI", body, 0)
    iface = _Interface(linktype=linktype)
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, pos)
        value = body[pos + 4 : pos + 4 + length]
        if code == 0:  # opt_endofopt
            break
        if len(value) < length:
            return None
        if code == _OPT_IF_TSRESOL and length >= 1:
            res = value[0]
            iface.tick = 2.0 ** -(res & 0x7F) if res & 0x80 else 10.0 ** -(res & 0x7F)
        elif code == _OPT_IF_TSOFFSET and length >= 8:
            iface.offset = float(struct.unpack_from(endian + "q", value, 0)[0])
        pos += 4 + ((length + 3) & ~3)
    return iface


def _parse_packet_block(
    btype: int,
    body: bytes,
    endian: str,
    interfaces: list[_Interface],
    skipped: dict[str, int],
) -> Record | None:
    if len(body) < 20:
        _bump(skipped, "malformed_block")
        return None
    if btype == _BT_EPB:
        iface_id, ts_high, ts_low, caplen, _origlen = struct.unpack_from(endian + "IIIII", body, 0)
    else:  # obsolete Packet Block: 16-bit interface id and drops count
        iface_id, _drops, ts_high, ts_low, caplen, _origlen = struct.unpack_from(
            endian + "HHIIII", body, 0
        )
    if iface_id >= len(interfaces) or interfaces[iface_id].linktype < 0:
        _bump(skipped, "bad_interface")
        return None
    if 20 + caplen > len(body):
        _bump(skipped, "truncated")
        return None
    iface = interfaces[iface_id]
    ts = ((ts_high << 32) | ts_low) * iface.tick + iface.offset
    return Record(ts, iface.linktype, body[20 : 20 + caplen])


# ---------------------------------------------------------------------------------------------
# Packet decoding
# ---------------------------------------------------------------------------------------------
def decode_record(record: Record) -> Datagram | str:
    """Decode one record down to its transport payload; a skip reason string if impossible."""
    net = _strip_link(record.linktype, record.data)
    if isinstance(net, str):
        return net
    version, packet = net
    if version == 4:
        return _decode_ipv4(record.time, packet)
    return _decode_ipv6(record.time, packet)


def _strip_link(linktype: int, data: bytes) -> tuple[int, bytes] | str:
    """Remove the link-layer header; returns (IP version, IP packet) or a skip reason."""
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return "truncated"
        ethertype = int.from_bytes(data[12:14], "big")
        pos = 14
        while ethertype in _ETH_VLAN:
            if len(data) < pos + 4:
                return "truncated"
            ethertype = int.from_bytes(data[pos + 2 : pos + 4], "big")
            pos += 4
        return _by_ethertype(ethertype, data[pos:])
    if linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            return "truncated"
        return _by_ethertype(int.from_bytes(data[14:16], "big"), data[16:])
    if linktype == LINKTYPE_LINUX_SLL2:
        # protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) address(8)
        if len(data) < 20:
            return "truncated"
        return _by_ethertype(int.from_bytes(data[0:2], "big"), data[20:])
    if linktype in _RAW_LINKTYPES:
        return _by_version(data)
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < 4:
            return "truncated"
        family = data[0] or data[3]  # host byte order for NULL: accept either end
        if family == 2:
            return 4, data[4:]
        if family in _AF_INET6:
            return 6, data[4:]
        return "not_ip"
    return "unsupported_linktype"


def _by_ethertype(ethertype: int, payload: bytes) -> tuple[int, bytes] | str:
    if ethertype == _ETH_IPV4:
        return 4, payload
    if ethertype == _ETH_IPV6:
        return 6, payload
    return "not_ip"


def _by_version(packet: bytes) -> tuple[int, bytes] | str:
    if not packet:
        return "truncated"
    version = packet[0] >> 4
    if version in (4, 6):
        return version, packet
    return "malformed_ip"


def _decode_ipv4(time: float, packet: bytes) -> Datagram | str:
    if len(packet) < 20:
        return "truncated"
    if packet[0] >> 4 != 4:
        return "malformed_ip"
    ihl = (packet[0] & 0x0F) * 4
    total = int.from_bytes(packet[2:4], "big")
    if ihl < 20 or total < ihl:
        return "malformed_ip"
    if len(packet) < total:
        return "truncated"
    frag = int.from_bytes(packet[6:8], "big")
    if frag & 0x3FFF:  # more-fragments flag or non-zero offset
        return "ip_fragment"
    src = socket.inet_ntop(socket.AF_INET, packet[12:16])
    dst = socket.inet_ntop(socket.AF_INET, packet[16:20])
    return _decode_transport(time, packet[9], src, dst, packet[ihl:total])


def _decode_ipv6(time: float, packet: bytes) -> Datagram | str:
    if len(packet) < 40:
        return "truncated"
    if packet[0] >> 4 != 6:
        return "malformed_ip"
    plen = int.from_bytes(packet[4:6], "big")
    if plen == 0:
        return "malformed_ip"  # jumbograms are out of scope
    if len(packet) < 40 + plen:
        return "truncated"
    next_header = packet[6]
    src = socket.inet_ntop(socket.AF_INET6, packet[8:24])
    dst = socket.inet_ntop(socket.AF_INET6, packet[24:40])
    payload = packet[40 : 40 + plen]
    while next_header in _IPV6_EXT_HEADERS or next_header == _IPV6_FRAGMENT:
        if len(payload) < 8:
            return "malformed_ip"
        if next_header == _IPV6_FRAGMENT:
            return "ip_fragment"
        ext_len = (payload[1] + 1) * 8
        if len(payload) < ext_len:
            return "malformed_ip"
        next_header = payload[0]
        payload = payload[ext_len:]
    return _decode_transport(time, next_header, src, dst, payload)


def _decode_transport(time: float, proto: int, src: str, dst: str, seg: bytes) -> Datagram | str:
    if proto == IPPROTO_UDP:
        if len(seg) < 8:
            return "malformed_udp"
        sport, dport, length = struct.unpack_from("!HHH", seg, 0)
        if length < 8 or length > len(seg):
            return "malformed_udp"
        return Datagram(time, "udp", src, dst, sport, dport, seg[8:length])
    if proto == IPPROTO_TCP:
        if len(seg) < 20:
            return "malformed_tcp"
        sport, dport, seq = struct.unpack_from("!HHI", seg, 0)
        offset = (seg[12] >> 4) * 4
        if offset < 20 or offset > len(seg):
            return "malformed_tcp"
        flags = seg[13]
        return Datagram(time, "tcp", src, dst, sport, dport, seg[offset:], seq, flags)
    if proto == IPPROTO_VRRP:
        return Datagram(time, "vrrp", src, dst, 0, 0, seg)
    return "other_ip_proto"


def parse_vrrp(payload: bytes) -> VrrpAdvert | None:
    """Parse a VRRP v2/v3 advertisement; ``None`` if it is not one.

    v2 (RFC 3768): ver/type, vrid, priority, count, auth type, advert_int (whole seconds), checksum.
    v3 (RFC 5798): ver/type, vrid, priority, count, 4 reserved bits + 12-bit max advert interval in
    centiseconds, checksum.
    """
    if len(payload) < 8:
        return None
    version = payload[0] >> 4
    vtype = payload[0] & 0x0F
    if vtype != 1:
        return None
    vrid, priority = payload[1], payload[2]
    if version == 2:
        advert_int = float(payload[5])
    elif version == 3:
        advert_int = (int.from_bytes(payload[4:6], "big") & 0x0FFF) / 100.0
    else:
        return None
    return VrrpAdvert(version=version, vrid=vrid, priority=priority, advert_int=advert_int)
