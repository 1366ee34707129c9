"""Builders for small synthetic lab captures (pcap/pcapng written with dpkt) used by trace tests.

Frames are built layer by layer with dpkt (Ethernet/IPv4/UDP/TCP); VRRP and the SLL2 pseudo header
are packed by hand (dpkt's VRRP packer is broken for v3 and SLL2 is not written by its helpers).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from pathlib import Path

import dpkt

T0 = 1_700_000_000.0  # epoch of the first packet of every synthetic capture
VIP = "10.0.0.100"
NODE_A = "10.0.0.11"
NODE_B = "10.0.0.12"
PROBER = "10.0.0.50"
PHONE_IP = "10.0.1.1"
MAC_A = b"\x02\x00\x00\x00\x00\x01"
MAC_B = b"\x02\x00\x00\x00\x00\x02"

Frame = tuple[float, bytes]  # (epoch time, link-layer bytes)


# --- SIP text ------------------------------------------------------------------------------------
def register(aor: str, phone_ip: str, call_id: str, cseq: int, branch: str, expires: int = 60) -> bytes:
    return (
        f"REGISTER sip:{VIP} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {phone_ip}:5060;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{aor}@{VIP}>;tag=f-{aor}\r\n"
        f"To: <sip:{aor}@{VIP}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:{aor}@{phone_ip}:5060>\r\n"
        f"Expires: {expires}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def register_ok(
    aor: str, phone_ip: str, call_id: str, cseq: int, branch: str, expires: int = 60, status: int = 200
) -> bytes:
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable", 403: "Forbidden"}.get(status, "X")
    contact = f"m: <sip:{aor}@{phone_ip}:5060>;expires={expires}\r\n" if status == 200 else ""
    return (
        f"SIP/2.0 {status} {reason}\r\n"
        f"v: SIP/2.0/UDP {phone_ip}:5060;branch={branch}\r\n"
        f"f: <sip:{aor}@{VIP}>;tag=f-{aor}\r\n"
        f"t: <sip:{aor}@{VIP}>;tag=srv\r\n"
        f"i: {call_id}\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"{contact}"
        "l: 0\r\n\r\n"
    ).encode()


def options(aor: str, call_id: str, branch: str) -> bytes:
    return (
        f"OPTIONS sip:{aor}@{VIP} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {PROBER}:5070;branch={branch}\r\n"
        f"From: <sip:prober@{PROBER}>;tag=pr1\r\n"
        f"To: <sip:{aor}@{VIP}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def options_answer(status: int, call_id: str, branch: str, aor: str = "x") -> bytes:
    reason = "OK" if status == 200 else "Not Found"
    return (
        f"SIP/2.0 {status} {reason}\r\n"
        f"Via: SIP/2.0/UDP {PROBER}:5070;branch={branch}\r\n"
        f"From: <sip:prober@{PROBER}>;tag=pr1\r\n"
        f"To: <sip:prober-to@{VIP}>;tag=s\r\n"  # deliberately not the AOR: importer must use the request's
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


# --- network layers ------------------------------------------------------------------------------
def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64) -> bytes:
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=ttl, data=payload)
    return bytes(ip)


def udp(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    seg = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    seg.ulen = 8 + len(payload)
    return ipv4(src, dst, dpkt.ip.IP_PROTO_UDP, bytes(seg))


def tcp(src: str, sport: int, dst: str, dport: int, seq: int, payload: bytes, flags: int | None = None) -> bytes:
    seg = dpkt.tcp.TCP(
        sport=sport, dport=dport, seq=seq, ack=1,
        flags=dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH if flags is None else flags, data=payload,
    )
    return ipv4(src, dst, dpkt.ip.IP_PROTO_TCP, bytes(seg))


def vrrp(src: str, version: int, vrid: int, priority: int, advert: float) -> bytes:
    """VRRP advertisement to 224.0.0.18; ``advert`` in seconds (v3: centisecond field)."""
    if version == 2:
        body = struct.pack("!BBBBBBH", 0x21, vrid, priority, 1, 0, int(advert), 0)
        body += socket.inet_aton(VIP) + b"\x00" * 8  # one address + 8 bytes of (no) auth
    else:
        body = struct.pack("!BBBBHH", (version << 4) | 1, vrid, priority, 1, int(round(advert * 100)) & 0x0FFF, 0)
        body += socket.inet_aton(VIP)
    return ipv4(src, "224.0.0.18", 112, body, ttl=255)


def ether(ip_packet: bytes, src_mac: bytes = MAC_A, dst_mac: bytes = MAC_B) -> bytes:
    return bytes(dpkt.ethernet.Ethernet(src=src_mac, dst=dst_mac, type=dpkt.ethernet.ETH_TYPE_IP, data=ip_packet))


def sll(ip_packet: bytes) -> bytes:
    """Linux cooked v1 (16-byte) header, as tcpdump -i any writes."""
    return struct.pack("!HHH8sH", 0, 1, 6, MAC_A + b"\x00\x00", 0x0800) + ip_packet


def sll2(ip_packet: bytes, ifindex: int = 3) -> bytes:
    """Linux cooked v2 (20-byte) header, as tshark -i any writes."""
    return struct.pack("!HHIHBB8s", 0x0800, 0, ifindex, 1, 0, 6, MAC_A + b"\x00\x00") + ip_packet


# --- files ---------------------------------------------------------------------------------------
def write_pcap(path: Path, frames: Iterable[Frame], linktype: int = dpkt.pcap.DLT_EN10MB, nano: bool = False) -> Path:
    with open(path, "wb") as fh:
        writer = dpkt.pcap.Writer(fh, linktype=linktype, nano=nano)
        for ts, frame in frames:
            writer.writepkt(frame, ts=ts)
    return path


def write_pcapng(path: Path, frames: Iterable[Frame], linktype: int = dpkt.pcap.DLT_EN10MB) -> Path:
    with open(path, "wb") as fh:
        writer = dpkt.pcapng.Writer(fh, linktype=linktype)
        for ts, frame in frames:
            writer.writepkt(frame, ts=ts)
    return path


def pcap_bytes(frames: Iterable[Frame], linktype: int = dpkt.pcap.DLT_EN10MB) -> bytes:
    import io

    buf = io.BytesIO()
    writer = dpkt.pcap.Writer(buf, linktype=linktype)
    for ts, frame in frames:
        writer.writepkt(frame, ts=ts)
    return buf.getvalue()


def pcapng_bytes(frames: Iterable[Frame], linktype: int = dpkt.pcap.DLT_EN10MB) -> bytes:
    import io

    buf = io.BytesIO()
    writer = dpkt.pcapng.Writer(buf, linktype=linktype)
    for ts, frame in frames:
        writer.writepkt(frame, ts=ts)
    return buf.getvalue()


# --- scenarios -----------------------------------------------------------------------------------
def probe_frames(aor: str, answers: list[tuple[float, int | None]], link=ether) -> list[Frame]:
    """One OPTIONS per (relative time, answer status or None = unanswered), answered 1 ms later."""
    frames: list[Frame] = []
    for k, (t, status) in enumerate(answers):
        cid, br = f"probe-{aor}-{k}", f"z9hG4bK-pr-{aor}-{k}"
        frames.append((T0 + t, link(udp(PROBER, 5070, VIP, 5060, options(aor, cid, br)))))
        if status is not None:
            frames.append((T0 + t + 0.001, link(udp(VIP, 5060, PROBER, 5070, options_answer(status, cid, br)))))
    return frames


def vrrp_frames(src: str, start: float, stop: float, interval: float, version: int = 2, priority: int = 100) -> list[Frame]:
    frames: list[Frame] = []
    t = start
    while t < stop - 1e-9:
        frames.append((T0 + t, ether(vrrp(src, version, 51, priority, interval))))
        t += interval
    return frames
