"""Property tests: trace import never crashes on damaged input and accounts for every packet.

Damage kinds: a valid capture cut at any byte (the capture was killed), random bytes (not a
capture), random bytes after a valid file header, and random mutations of valid frames (bit flips,
cuts, inserted bytes). The only exception allowed is :class:`TraceError`, and only when the file is
not a capture (header missing or wrong); everything else is counted in ``skipped``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import dpkt
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simsip.trace import EVENT_COLUMNS, TraceError, import_trace, trace_metrics
from simsip.trace.pcap import Datagram, Record, decode_record
from simsip.trace.sip import parse_sip

from trace_builders import (
    NODE_A,
    NODE_B,
    PHONE_IP,
    T0,
    VIP,
    ether,
    options,
    options_answer,
    pcap_bytes,
    pcapng_bytes,
    register,
    register_ok,
    tcp,
    udp,
    vrrp,
)

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _valid_frames() -> list[tuple[float, bytes]]:
    cid, br = "c1", "z9hG4bK-1"
    reg = register("ph1", PHONE_IP, cid, 1, br)
    frames = [
        (T0 + 0.0, ether(vrrp(NODE_A, 2, 51, 200, 1))),
        (T0 + 0.1, ether(udp(PHONE_IP, 5060, VIP, 5060, reg))),
        (T0 + 0.11, ether(udp(VIP, 5060, PHONE_IP, 5060, register_ok("ph1", PHONE_IP, cid, 1, br)))),
        (T0 + 0.2, ether(udp("10.0.0.50", 5070, VIP, 5060, options("ph1", "p1", "z9hG4bK-p1")))),
        (T0 + 0.21, ether(udp(VIP, 5060, "10.0.0.50", 5070, options_answer(404, "p1", "z9hG4bK-p1")))),
        (T0 + 0.3, ether(tcp(PHONE_IP, 40000, VIP, 5060, 100, reg[:50]))),
        (T0 + 0.4, ether(tcp(PHONE_IP, 40000, VIP, 5060, 150, reg[50:]))),
        (T0 + 1.0, ether(vrrp(NODE_B, 3, 51, 100, 0.5))),
    ]
    return frames


VALID = _valid_frames()
VALID_FILES = {"pcap": pcap_bytes(VALID), "pcapng": pcapng_bytes(VALID)}
# where the first record starts: cutting before it leaves a header-only (or broken-header) file
HEADER_LEN = {"pcap": 24, "pcapng": len(pcapng_bytes([]))}


def _import_bytes(data: bytes, suffix: str = ".pcap"):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz{suffix}"
        path.write_bytes(data)
        return import_trace(path)


COMPLETE = {fmt: _import_bytes(data, "." + fmt).events for fmt, data in VALID_FILES.items()}


def _check_result(result) -> None:
    assert list(result.events.columns) == list(EVENT_COLUMNS)
    assert result.packets >= 0
    assert all(isinstance(k, str) and v > 0 for k, v in result.skipped.items())
    if len(result.events):
        assert result.events["time"].is_monotonic_increasing
    # the metrics must digest whatever the importer produced
    trace_metrics(result.events, vip=VIP, faults=[0.5], resolution=0.5, end=min(result.duration, 100.0))


@FUZZ
@given(fmt=st.sampled_from(["pcap", "pcapng"]), data=st.data())
def test_truncated_capture(fmt, data):
    full = VALID_FILES[fmt]
    cut = data.draw(st.integers(min_value=0, max_value=len(full) - 1), label="cut")
    try:
        result = _import_bytes(full[:cut], "." + fmt)
    except TraceError:
        assert cut < HEADER_LEN[fmt]  # only an incomplete file header makes it "not a capture"
        return
    _check_result(result)
    assert result.packets < len(VALID)
    # the only damage is the cut: a truncated record/block, maybe a TCP message left incomplete
    assert set(result.skipped) <= {"truncated", "tcp_incomplete"}
    assert result.skipped.get("truncated", 0) <= 1
    # the events found are exactly the first events of the complete capture
    complete = COMPLETE[fmt]
    n = len(result.events)
    cols = ["time", "kind", "method", "status", "cseq", "aor", "proto"]
    assert result.events[cols].reset_index(drop=True).equals(complete[cols].iloc[:n].reset_index(drop=True))


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(blob):
    try:
        result = _import_bytes(blob)
    except TraceError as exc:
        assert "fuzz.pcap" in str(exc)
        return
    _check_result(result)


@FUZZ
@given(fmt=st.sampled_from(["pcap", "pcapng"]), blob=st.binary(max_size=800))
def test_random_bytes_after_valid_header(fmt, blob):
    result = _import_bytes(VALID_FILES[fmt][: HEADER_LEN[fmt]] + blob, "." + fmt)
    _check_result(result)


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2000), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 2000), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 2000), st.integers(0, 255)),
)


def _mutate(frame: bytes, op: str, pos: int, value: int) -> bytes:
    if not frame:
        return frame
    pos %= len(frame) + (op == "insert")
    if op == "flip":
        return frame[:pos] + bytes([frame[pos] ^ value]) + frame[pos + 1 :]
    if op == "cut":
        return frame[:pos]
    return frame[:pos] + bytes([value]) + frame[pos:]


@FUZZ
@given(
    mutations=st.lists(
        st.tuples(st.integers(0, len(VALID) - 1), _mutation), min_size=1, max_size=6
    ),
    linktype=st.sampled_from([dpkt.pcap.DLT_EN10MB, 113, 276, 101, 0]),
    fmt=st.sampled_from(["pcap", "pcapng"]),
)
def test_mutated_packets_are_accounted_for(mutations, linktype, fmt):
    frames = [list(f) for f in VALID]
    for index, (op, pos, value) in mutations:
        frames[index][1] = _mutate(frames[index][1], op, pos, value)
    if linktype != dpkt.pcap.DLT_EN10MB:  # re-wrap the (possibly damaged) IP part
        frames = [[t, _relink(f[14:], linktype)] for t, f in frames]
    writer = pcap_bytes if fmt == "pcap" else pcapng_bytes
    result = _import_bytes(writer([tuple(f) for f in frames], linktype=linktype), "." + fmt)
    _check_result(result)
    assert result.packets == len(VALID)
    # every packet that is not a TCP segment ends as one event or one skip reason
    records = [Record(t, linktype, f) for t, f in frames]
    n_tcp = sum(1 for r in records if isinstance(d := decode_record(r), Datagram) and d.proto == "tcp")
    not_tcp = len(result.events[result.events["proto"] != "tcp"])
    assert not_tcp <= result.packets - n_tcp
    assert not_tcp + sum(result.skipped.values()) >= result.packets - n_tcp


def _relink(ip_packet: bytes, linktype: int) -> bytes:
    import struct

    if linktype == 113:
        return struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800) + ip_packet
    if linktype == 276:
        return struct.pack("!HHIHBB8s", 0x0800, 0, 1, 1, 0, 6, b"\x02" * 8) + ip_packet
    if linktype == 0:
        return struct.pack("<I", 2) + ip_packet
    return ip_packet


def test_mutation_accounting_is_exact_without_tcp():
    """Without TCP, each packet is exactly one event or one skip (spot check of the invariant)."""
    frames = [f for f in VALID if b"\x06" != f[1][14 + 9 : 14 + 10]]
    frames.append((T0 + 2, b"\x00" * 10))  # too short for Ethernet
    result = _import_bytes(pcap_bytes(frames))
    assert len(result.events) + sum(result.skipped.values()) == result.packets == len(frames)


@FUZZ
@given(st.binary(max_size=400))
def test_sip_parser_never_raises_on_bytes(blob):
    parse_sip(blob)
    parse_sip(b"SIP/2.0 200 OK\r\n" + blob)
    parse_sip(b"REGISTER sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: 1 REGISTER\r\n" + blob)


@FUZZ
@given(st.text(max_size=300))
def test_sip_parser_never_raises_on_mutated_text(text):
    base = register("ph1", PHONE_IP, "c", 1, "b").decode()
    for k in (0, len(base) // 3, len(base) // 2, len(base) - 4):
        msg = parse_sip((base[:k] + text + base[k:]).encode("utf-8", "surrogatepass"))
        if msg is not None:
            assert msg.kind in ("request", "response")
            _ = (msg.branch, msg.to_user, msg.expires, msg.retry_after, msg.contact_expires)


def test_metrics_accept_minimal_foreign_table():
    """trace_metrics needs only the core columns (e.g. a table assembled by hand or from CSV)."""
    ev = pd.DataFrame(
        {
            "time": [0.0, 0.1],
            "src": ["1.1.1.1:5070", f"{VIP}:5060"],
            "dst": [f"{VIP}:5060", "1.1.1.1:5070"],
            "kind": ["request", "response"],
            "method": ["OPTIONS", "OPTIONS"],
            "status": [0, 200],
            "call_id": ["a", "a"],
            "cseq": [1, 1],
            "aor": ["ph1", ""],
        }
    )
    m = trace_metrics(ev, vip=VIP)
    assert m.reachability_source == "probe" and m.timeseries["reachable"].iloc[0] == 1


# --------------------------------------------------------------------------- simsip trace infer on the same damage
INFER_FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _infer_bytes(data: bytes, suffix: str = ".pcap"):
    """infer_scenario on the bytes; the only exception allowed is TraceError, and the scenario it
    writes must validate (``simsip run`` would take it)."""
    from simsip.config.loader import load_config_text
    from simsip.trace import infer_scenario

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            inf = infer_scenario(path, measure=False)
        except TraceError as exc:
            assert "fuzz" in str(exc)
            return None
    assert all(isinstance(k, str) and v > 0 for k, v in inf.skipped.items())
    load_config_text(inf.scenario_yaml("fuzz"))
    return inf


@INFER_FUZZ
@given(fmt=st.sampled_from(["pcap", "pcapng"]), data=st.data())
def test_infer_truncated_capture(fmt, data):
    full = VALID_FILES[fmt]
    cut = data.draw(st.integers(min_value=0, max_value=len(full) - 1), label="cut")
    inf = _infer_bytes(full[:cut], "." + fmt)
    if inf is None:
        assert cut < HEADER_LEN[fmt]


@INFER_FUZZ
@given(blob=st.binary(max_size=600))
def test_infer_random_bytes(blob):
    _infer_bytes(blob)


@INFER_FUZZ
@given(fmt=st.sampled_from(["pcap", "pcapng"]), blob=st.binary(max_size=800))
def test_infer_random_bytes_after_valid_header(fmt, blob):
    assert _infer_bytes(VALID_FILES[fmt][: HEADER_LEN[fmt]] + blob, "." + fmt) is not None


@INFER_FUZZ
@given(
    mutations=st.lists(st.tuples(st.integers(0, len(VALID) - 1), _mutation), min_size=1, max_size=6),
    linktype=st.sampled_from([dpkt.pcap.DLT_EN10MB, 113, 276, 101, 0]),
    fmt=st.sampled_from(["pcap", "pcapng"]),
)
def test_infer_mutated_packets(mutations, linktype, fmt):
    frames = [list(f) for f in VALID]
    for index, (op, pos, value) in mutations:
        frames[index][1] = _mutate(frames[index][1], op, pos, value)
    if linktype != dpkt.pcap.DLT_EN10MB:
        frames = [[t, _relink(f[14:], linktype)] for t, f in frames]
    writer = pcap_bytes if fmt == "pcap" else pcapng_bytes
    inf = _infer_bytes(writer([tuple(f) for f in frames], linktype=linktype), "." + fmt)
    assert inf is not None and inf.packets == len(VALID)


_HOSTILE_VALUES = st.sampled_from(["0", "-5", "1e300", "99999999999999", "nan", "abc", "4294967296", "", "60"])


@INFER_FUZZ
@given(expires=_HOSTILE_VALUES, granted=_HOSTILE_VALUES, retry_after=_HOSTILE_VALUES,
       ua=st.text(max_size=40), advert=st.integers(0, 255), prio=st.integers(0, 255),
       status=st.sampled_from([200, 401, 423, 503, 600]), gap=st.floats(0, 1e6))
def test_infer_hostile_sip_and_vrrp_values(expires, granted, retry_after, ua, advert, prio, status, gap):
    """Absurd header values, any User-Agent text (NUL, NEL, U+2028), odd VRRP fields: the scenario
    still validates."""
    ua_bytes = ua.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")
    frames = []
    for k in range(3):
        cid, br = "hostile", f"z9hG4bK-h{k}"
        reg = register("ph1", PHONE_IP, cid, k + 1, br).replace(b"Expires: 60", b"Expires: " + expires.encode())
        reg = reg.replace(b"Content-Length", b"User-Agent: " + ua_bytes + b"\r\nContent-Length")
        ok = register_ok("ph1", PHONE_IP, cid, k + 1, br, status=status).replace(b"expires=60", b"expires=" + granted.encode())
        ok = ok.replace(b"l: 0", b"Retry-After: " + retry_after.encode() + b"\r\nMin-Expires: " + granted.encode() + b"\r\nl: 0")
        t = T0 + k * min(gap, 1e6)
        frames.append((t, ether(udp(PHONE_IP, 5060, VIP, 5060, reg))))
        frames.append((t + 0.001, ether(udp(VIP, 5060, PHONE_IP, 5060, ok))))
        frames.append((t + 0.002, ether(vrrp(NODE_A if k % 2 else NODE_B, 2 + k % 2, 51, prio, advert / (1 if k % 2 == 0 else 100)))))
        frames.append((t + 0.003, ether(udp(PHONE_IP, 5060, VIP, 5060, b"\r\n\r\n"))))
    frames.sort(key=lambda f: f[0])
    assert _infer_bytes(pcap_bytes(frames)) is not None
