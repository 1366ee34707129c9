"""Trace import and trace metrics on small synthetic captures with independently known answers."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import dpkt
import numpy as np
import pandas as pd
import pytest

from simsip.tables import FAULTS, OUTAGES, RECOVERY
from simsip.trace import EVENT_COLUMNS, TraceError, TraceFault, TraceImport, import_trace, trace_metrics
from simsip.trace.sip import parse_sip, uri_user

from trace_builders import (
    NODE_A,
    NODE_B,
    PROBER,
    T0,
    VIP,
    ether,
    options,
    probe_frames,
    register,
    register_ok,
    sll,
    sll2,
    tcp,
    udp,
    vrrp,
    vrrp_frames,
    write_pcap,
    write_pcapng,
)

DESIGN = Path(__file__).resolve().parents[1] / "docs" / "design.md"
PHONE = "10.0.1.1"


def _register_exchange(t: float, aor: str, cseq: int, expires: int = 60, link=ether, status: int = 200):
    cid, br = f"cid-{aor}", f"z9hG4bK-{aor}-{cseq}"
    return [
        (T0 + t, link(udp(PHONE, 5060, VIP, 5060, register(aor, PHONE, cid, cseq, br, expires)))),
        (T0 + t + 0.002, link(udp(VIP, 5060, PHONE, 5060, register_ok(aor, PHONE, cid, cseq, br, expires, status)))),
    ]


# --- SIP parser ----------------------------------------------------------------------------------
def test_sip_parser_full_and_compact_forms():
    raw = (
        b"SIP/2.0 200 OK\r\n"
        b"v: SIP/2.0/UDP 10.0.1.1:5060;rport;branch=z9hG4bK-abc, SIP/2.0/UDP 10.9.9.9;branch=z9hG4bK-2\r\n"
        b"f: \"Alice, A\" <sip:alice@lab;transport=udp>;tag=123\r\n"
        b"t: sip:alice@lab;tag=srv\r\n"
        b"i: call-1@host\r\n"
        b"CSeq: 7 REGISTER\r\n"
        b"m: <sip:alice@10.0.1.1:5060;ob>;expires=55;+sip.instance=\"<urn:x>\",\r\n"
        b" <sip:alice@10.0.1.2>;expires=12\r\n"
        b"Expires: 3600\r\n"
        b"Retry-After: 18 (maintenance);duration=60\r\n"
        b"l: 4\r\n\r\nbodyEXTRA"
    )
    msg = parse_sip(raw)
    assert msg is not None
    assert (msg.kind, msg.status, msg.method, msg.call_id, msg.cseq) == ("response", 200, "REGISTER", "call-1@host", 7)
    assert msg.branch == "z9hG4bK-abc"
    assert msg.to_user == "alice" and msg.from_user == "alice"
    assert msg.from_tag == "123" and msg.to_tag == "srv"
    assert msg.contact_expires == 55 and msg.expires_header == 3600 and msg.expires == 55
    assert msg.retry_after == 18
    assert msg.body == b"body"


def test_sip_parser_request_and_expires_header_only():
    msg = parse_sip(register("ph7", PHONE, "c", 3, "z9hG4bK-x", expires=90))
    assert msg is not None
    assert (msg.kind, msg.method, msg.status, msg.cseq) == ("request", "REGISTER", 0, 3)
    assert math.isnan(msg.contact_expires) and msg.expires == 90
    assert msg.request_uri == f"sip:{VIP}" and msg.request_user == ""
    assert parse_sip(options("ph3", "c", "b")).request_user == "ph3"


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00\xff" * 40,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n",  # no CSeq
        b"SIP/2.0 999 Bad\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\n\r\n",
        b"REGISTER sip:x SIP/2.0\r\nCall-ID: x\r\nCSeq: one REGISTER\r\n\r\n",
        b"REGISTER sip:x SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
        b"REGISTER sip:x SIP/2.0\r\nno colon here\r\n\r\n",
    ],
)
def test_sip_parser_returns_none_on_garbage(garbage):
    assert parse_sip(garbage) is None


def test_uri_user():
    assert uri_user("sip:bob:secret@host;x=1") == "bob"
    assert uri_user("sips:carol@h") == "carol"
    assert uri_user("tel:+4930123;phone-context=x") == "+4930123"
    assert uri_user("sip:host.only") == ""
    assert uri_user("garbage") == ""


# --- event table ---------------------------------------------------------------------------------
def _design_columns() -> list[str]:
    """Columns of the trace event table as written in docs/design.md (parsed independently)."""
    text = DESIGN.read_text()
    section = text.split("## Trace event table", 1)[1].split("\n## ", 1)[0]
    cols: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            cols += re.findall(r"`([a-z_0-9]+)`", line.split("|")[1])
    return cols


def test_event_columns_match_design_contract(tmp_path):
    assert list(EVENT_COLUMNS) == _design_columns()
    empty = write_pcap(tmp_path / "empty.pcap", [])
    result = import_trace(empty)
    assert list(result.events.columns) == _design_columns()
    assert len(result.events) == 0 and result.packets == 0


def _register_capture() -> list:
    frames = _register_exchange(0.0, "ph1", 1, expires=60)
    # a retransmission of the next REGISTER: same Call-ID, CSeq and branch 0.5 s later, then the 200
    cid, br = "cid-ph1", "z9hG4bK-ph1-2"
    req = register("ph1", PHONE, cid, 2, br, 60)
    frames += [
        (T0 + 30.0, ether(udp(PHONE, 5060, VIP, 5060, req))),
        (T0 + 30.5, ether(udp(PHONE, 5060, VIP, 5060, req))),
        (T0 + 30.502, ether(udp(VIP, 5060, PHONE, 5060, register_ok("ph1", PHONE, cid, 2, br, 45)))),
    ]
    frames += [(T0 + 31.0, ether(vrrp(NODE_A, 2, 51, 200, 1)))]
    return frames


def _check_register_events(result: TraceImport) -> None:
    ev = result.events
    assert list(ev.columns) == list(EVENT_COLUMNS)
    assert result.t0_epoch == pytest.approx(T0)
    assert result.packets == 6
    assert ev["time"].tolist() == pytest.approx([0.0, 0.002, 30.0, 30.5, 30.502, 31.0], abs=2e-6)
    assert ev["kind"].tolist() == ["request", "response", "request", "request", "response", "vrrp"]
    assert ev["method"].tolist()[:5] == ["REGISTER"] * 5
    assert ev["status"].tolist() == [0, 200, 0, 0, 200, 0]
    assert ev["cseq"].tolist() == [1, 1, 2, 2, 2, 0]
    assert ev["aor"].tolist()[:5] == ["ph1"] * 5
    assert ev["retransmission"].tolist() == [False, False, False, True, False, False]
    assert ev["expires"].tolist()[:5] == [60, 60, 60, 60, 45]
    assert ev["branch"].tolist()[:2] == ["z9hG4bK-ph1-1", "z9hG4bK-ph1-1"]
    assert ev["src"].iloc[0] == f"{PHONE}:5060" and ev["dst"].iloc[0] == f"{VIP}:5060"
    assert set(ev["proto"]) == {"udp", "vrrp"}
    vr = ev.iloc[5]
    assert (vr["vrrp_src"], vr["vrrp_priority"], vr["vrrp_version"], vr["vrrp_advert_int"]) == (NODE_A, 200, 2, 1.0)
    assert pd.isna(ev["vrrp_priority"].iloc[0]) and math.isnan(ev["vrrp_advert_int"].iloc[0])


@pytest.mark.parametrize(
    "fmt,link,linktype",
    [
        ("pcap", ether, dpkt.pcap.DLT_EN10MB),
        ("pcapng", ether, dpkt.pcap.DLT_EN10MB),
        ("pcap", sll, 113),
        ("pcapng", sll2, 276),
        ("pcap", lambda ip: ip, 101),  # raw IP
    ],
)
def test_register_events_for_every_format_and_link_type(tmp_path, fmt, link, linktype):
    frames = _register_capture()
    # re-wrap the Ethernet frames into the link type under test
    frames = [(t, link(f[14:])) for t, f in frames]
    writer = write_pcap if fmt == "pcap" else write_pcapng
    result = import_trace(writer(tmp_path / f"c.{fmt}", frames, linktype=linktype))
    _check_register_events(result)
    assert result.skipped == {}


def test_nanosecond_pcap(tmp_path):
    frames = _register_exchange(0.0, "ph1", 1) + _register_exchange(1.000000123, "ph2", 1)
    result = import_trace(write_pcap(tmp_path / "n.pcap", frames, nano=True))
    assert result.events["time"].iloc[2] == pytest.approx(1.000000123, abs=1e-6)


def test_vrrp_v2_and_v3_adverts(tmp_path):
    frames = [
        (T0, ether(vrrp(NODE_A, 2, 51, 200, 3))),
        (T0 + 0.5, ether(vrrp(NODE_B, 3, 52, 100, 0.35))),
        (T0 + 0.6, ether(vrrp(NODE_B, 3, 52, 0, 40.95))),
    ]
    ev = import_trace(write_pcapng(tmp_path / "v.pcapng", frames)).events
    assert ev["kind"].tolist() == ["vrrp"] * 3
    assert ev["proto"].tolist() == ["vrrp"] * 3
    assert ev["vrrp_version"].tolist() == [2, 3, 3]
    assert ev["vrrp_priority"].tolist() == [200, 100, 0]
    assert ev["vrrp_advert_int"].tolist() == pytest.approx([3.0, 0.35, 40.95])
    assert ev["vrrp_src"].tolist() == [NODE_A, NODE_B, NODE_B]


def test_tcp_stream_split_across_segments(tmp_path):
    cid = "tcp-call"
    m1 = register("ph9", PHONE, cid, 1, "z9hG4bK-t1")
    body_msg = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 10.0.1.1;branch=z9hG4bK-t1\r\nTo: <sip:ph9@lab>;tag=a\r\n"
        b"From: <sip:ph9@lab>;tag=b\r\nCall-ID: tcp-call\r\nCSeq: 1 REGISTER\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 10\r\n\r\n0123456789"
    )
    m2 = register("ph9", PHONE, cid, 2, "z9hG4bK-t2")
    m3 = register("ph9", PHONE, cid, 3, "z9hG4bK-t3")
    up = b"\r\n\r\n" + m1 + m2  # a CRLF keep-alive, then two requests in one byte stream
    isn = 1000
    cuts = [0, 7, 120, len(up) - 5, len(up)]
    frames = [(T0, ether(tcp(PHONE, 40000, VIP, 5060, isn, b"", flags=dpkt.tcp.TH_SYN)))]
    seq = isn + 1
    pieces = [up[a:b] for a, b in zip(cuts, cuts[1:])]
    offsets = [seq + a for a in cuts[:-1]]
    # deliver pieces out of order: 0, 2, 1 (fills the hole), 3, then a retransmission of piece 1
    order = [0, 2, 1, 3, 1]
    for k, i in enumerate(order):
        frames.append((T0 + 0.1 * (k + 1), ether(tcp(PHONE, 40000, VIP, 5060, offsets[i], pieces[i]))))
    # the response direction: body split in the middle of the body
    frames.append((T0 + 1.0, ether(tcp(VIP, 5060, PHONE, 40000, 5000, body_msg[:-4]))))
    frames.append((T0 + 1.1, ether(tcp(VIP, 5060, PHONE, 40000, 5000 + len(body_msg) - 4, body_msg[-4:]))))
    # a gap: the segment after m3's first bytes is lost; the stream must resynchronise on m3 later
    end_seq = seq + len(up)
    frames.append((T0 + 2.0, ether(tcp(PHONE, 40000, VIP, 5060, end_seq, m3[:30]))))
    frames.append((T0 + 2.2, ether(tcp(PHONE, 40000, VIP, 5060, end_seq + 60, m3[60:] + m3))))
    result = import_trace(write_pcap(tmp_path / "t.pcap", frames))
    ev = result.events
    assert ev["proto"].unique().tolist() == ["tcp"]
    assert ev["kind"].tolist() == ["request", "request", "response", "request"]
    assert ev["cseq"].tolist() == [1, 2, 1, 3]
    # m1 completes with piece 1 (k=2 -> 0.3 s); m2 with piece 3 (k=3 -> 0.4 s); response at 1.1 s
    assert ev["time"].tolist() == pytest.approx([0.3, 0.4, 1.1, 2.2], abs=1e-6)
    assert ev["retransmission"].tolist() == [False] * 4
    assert ev["src"].iloc[0] == f"{PHONE}:40000"
    assert result.skipped.get("tcp_gap") == 1
    assert result.skipped.get("tcp_control") is None or result.skipped["tcp_control"] >= 0


def test_damaged_packets_are_counted_not_raised(tmp_path):
    good = _register_exchange(0.0, "ph1", 1)
    arp = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\xff" * 6, type=dpkt.ethernet.ETH_TYPE_ARP, data=b"\x00" * 28)
    ip_ok = udp(PHONE, 5060, VIP, 5060, register("ph2", PHONE, "c2", 1, "b2"))
    icmp = ip_ok[:9] + b"\x01" + ip_ok[10:]  # IP protocol 1: neither UDP, TCP nor VRRP
    frames = good + [
        (T0 + 1, bytes(arp)),  # not IP
        (T0 + 2, ether(ip_ok)[:30]),  # truncated by snaplen
        (T0 + 3, ether(b"\x45\x00\x00\x05" + ip_ok[4:])),  # total length < header length
        (T0 + 4, ether(udp(PHONE, 1234, VIP, 5060, b"\x01\x02 not sip at all"))),
        (T0 + 5, ether(udp(PHONE, 5060, VIP, 5060, b"REGISTER sip:x SIP/2.0\r\nbroken\r\n\r\n"))),
        (T0 + 6, ether(udp(PHONE, 5060, VIP, 5060, b"\r\n\r\n"))),  # RFC 5626 keep-alive
        (T0 + 7, ether(icmp)),
        (T0 + 8, ether(vrrp(NODE_A, 5, 1, 1, 1))),  # unknown VRRP version
    ]
    result = import_trace(write_pcap(tmp_path / "d.pcap", frames))
    assert result.packets == len(frames)
    assert len(result.events) == 2
    assert result.skipped == {
        "not_ip": 1,
        "truncated": 1,
        "malformed_ip": 1,
        "not_sip": 1,
        "bad_sip": 1,
        "sip_keepalive": 1,
        "other_ip_proto": 1,
        "bad_vrrp": 1,
    }


def test_unsupported_linktype_counted(tmp_path):
    path = write_pcap(tmp_path / "w.pcap", [(T0, b"\x00" * 40), (T0 + 1, b"\x01" * 40)], linktype=105)
    result = import_trace(path)
    assert result.skipped == {"unsupported_linktype": 2} and result.packets == 2


def test_truncated_file_keeps_leading_packets(tmp_path):
    frames = _register_capture()
    data = (write_pcapng(tmp_path / "full.pcapng", frames)).read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[:-10])
    result = import_trace(cut)
    assert result.skipped == {"truncated": 1}
    assert len(result.events) == 5 and result.packets == 5


def test_duplicate_capture_on_two_interfaces_is_dropped(tmp_path):
    frames = []
    for t, frame in _register_exchange(0.0, "ph1", 1):
        frames += [(t, frame), (t + 0.00002, frame)]
    result = import_trace(write_pcap(tmp_path / "dup.pcap", frames))
    assert len(result.events) == 2 and result.skipped == {"duplicate": 2}
    assert not result.events["retransmission"].any()
    kept = import_trace(write_pcap(tmp_path / "dup2.pcap", frames), dedup_window=0)
    assert len(kept.events) == 4 and kept.events["retransmission"].sum() == 1


@pytest.mark.parametrize(
    "content,reason",
    [(b"", "empty"), (b"hello, I am a text file\n", "unknown magic"), (b"\xd4\xc3\xb2\xa1\x02\x00", "header truncated")],
)
def test_non_capture_raises_trace_error(tmp_path, content, reason):
    path = tmp_path / "x.pcap"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=reason) as info:
        import_trace(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_path_and_empty_directory_raise_trace_error(tmp_path):
    with pytest.raises(TraceError, match="no such file"):
        import_trace(tmp_path / "nope.pcap")
    with pytest.raises(TraceError, match="no \\*.pcapng"):
        import_trace(tmp_path)


def test_lab_run_directory_merges_captures_and_keeps_meta(tmp_path):
    run = tmp_path / "run-1"
    run.mkdir()
    a = _register_exchange(0.0, "ph1", 1)
    b = _register_exchange(5.0, "ph2", 1) + [a[0]]  # the same REGISTER also seen on a 2nd interface
    write_pcapng(run / "bridge.pcapng", a)
    write_pcap(run / "vip.pcap", b)
    (run / "faults.json").write_text(json.dumps([{"kind": "node_crash", "time_epoch": T0 + 3.5, "node": "a"},
                                                 {"at": 7, "action": "repair"}]))
    (run / "meta.json").write_text(json.dumps({"phones": 2}))
    result = import_trace(run)
    assert [p.name for p in result.files] == ["bridge.pcapng", "vip.pcap"]
    assert result.meta["meta.json"] == {"phones": 2}
    assert result.fault_times() == pytest.approx([3.5, 7.0])
    f, r = result.faults()
    assert (f.cause, f.kind, f.node, r.cause, r.kind) == ("fault", "node_crash", "a", "repair", "")
    assert (f.time, r.time) == pytest.approx((3.5, 7.0))
    assert result.packets == 5
    assert result.skipped == {"duplicate": 1}
    assert result.events["aor"].tolist() == ["ph1", "ph1", "ph2", "ph2"]


# --- metrics -------------------------------------------------------------------------------------
def test_probe_reachability_outage_and_recovery(tmp_path):
    # ph1 answers 200,200,404,404,200 at t=1..5 -> one outage [3, 5); ph2 always 200;
    # ph3: 200 at 1, unanswered at 2 -> outage [2, 4) (200 at 4); ph4 starts 404 (pre-registration).
    frames = probe_frames("ph1", [(1, 200), (2, 200), (3, 404), (4, 404), (5, 200)])
    frames += probe_frames("ph2", [(t, 200) for t in (1, 2, 3, 4, 5)])
    frames += probe_frames("ph3", [(1, 200), (2, None), (3, 404), (4, 200), (5, 200)])
    frames += probe_frames("ph4", [(1, 404), (2, 404), (3, 200), (4, 200), (5, 404)])
    frames += [(T0 + t, ether(vrrp(NODE_A, 2, 51, 200, 1))) for t in (0.0, 6.0)]
    result = import_trace(write_pcap(tmp_path / "p.pcap", sorted(frames)))
    m = trace_metrics(result.events, vip=VIP, faults=[1.5, 4.5], resolution=1.0)
    assert m.reachability_source == "probe"
    out = m.outages.sort_values(["phone", "start"]).reset_index(drop=True)
    assert out["phone"].tolist() == ["ph1", "ph3", "ph4"]
    assert out["start"].tolist() == pytest.approx([3.0, 2.0, 5.0], abs=1e-5)
    assert out["end"].tolist()[:2] == pytest.approx([5.0, 4.0], abs=1e-5)
    assert math.isnan(out["end"].iloc[2])
    # the open outage lasts until the end of the observation (the last event, at 6)
    assert out["duration"].tolist() == pytest.approx([2.0, 2.0, 1.0], abs=1e-5)
    OUTAGES.check(m.outages)
    # fault 0 at 1.5: ph1 (3 -> 5) and ph3 (2 -> 4) recover 3.5 and 2.5 s after; fault 1 at 4.5: ph4 never
    rec = m.recovery.sort_values(["fault", "phone"])
    RECOVERY.check(m.recovery)
    assert rec["phone"].tolist() == ["ph1", "ph3", "ph4"]
    assert rec["fault"].tolist() == [0, 0, 1] and rec["disturbance"].tolist() == [0, 0, 1]
    assert rec["cause"].tolist() == ["fault"] * 3 and rec["time"].tolist() == pytest.approx([1.5, 1.5, 4.5])
    assert rec["recovery_time"].tolist()[:2] == pytest.approx([3.5, 2.5], abs=1e-5)
    assert math.isnan(rec["recovery_time"].iloc[2])
    # open outage of ph4 runs from 5 to the last event at 6: 2 + 2 + 1 phone-seconds
    assert m.unreachable_phone_seconds == pytest.approx(5.0, abs=1e-4)
    ts = m.timeseries.set_index("time")
    # states sampled at t: probes go out exactly at whole seconds, so t=k sees probe k
    expected = {0: 0, 1: 3, 2: 2, 3: 2, 4: 3, 5: 3, 6: 3}
    assert {int(k): int(v) for k, v in ts["reachable"].items()} == expected
    for col in ["time", "reachable", "register_tx", "resp_2xx", "resp_4xx", "resp_503", "retransmissions"]:
        assert col in m.timeseries.columns
    assert m.responses == {"2xx": 0, "4xx": 0, "503": 0, "other": 0}  # probes are not REGISTER traffic


def test_vip_move_from_vrrp_adverts():
    # A advertises every 1 s from 0 to 10, the crash is at 10.4, B's first advert follows A's last
    # by the VRRPv2 master-down interval 3 + (256-100)/256 = 3.609375 s.
    events = _events_from_frames(
        vrrp_frames(NODE_A, 0.0, 10.5, 1.0, priority=200)
        + vrrp_frames(NODE_B, 10.0 + 3.609375, 30.0, 1.0, priority=100)
    )
    m = trace_metrics(events, faults=[10.4], registrar_nodes={"a": NODE_A, "b": NODE_B})
    assert m.vip["node"].tolist() == ["a", "", "b"]
    assert m.vip["time"].tolist() == pytest.approx([0.0, 10.4, 13.609375], abs=1e-5)
    assert m.faults["vip_move_time"].tolist() == pytest.approx([13.609375 - 10.4], abs=1e-5)
    assert m.faults["node"].tolist() == ["a"]
    FAULTS.check(m.faults)
    row = m.faults.iloc[0]
    # B becoming master is both the detection and the move; nobody else served in between
    assert row["detection_time"] == pytest.approx(13.609375 - 10.4, abs=1e-5)
    assert row["service_restored_time"] == pytest.approx(13.609375 - 10.4, abs=1e-5)
    assert (row["cause"], row["disturbance"], row["new_vip_node"], row["kind"]) == ("fault", 0, "b", "")
    assert math.isnan(row["repair_time"])
    # one master, none from the crash to B's first advert, then one again; who serves, per step
    ts = m.timeseries.set_index("time")
    assert ts.loc[10.0, "vrrp_masters"] == 1 and ts.loc[11.0, "vrrp_masters"] == 0 and ts.loc[14.0, "vrrp_masters"] == 1
    assert (ts.loc[10.0, "vip_node"], ts.loc[11.0, "vip_node"], ts.loc[14.0, "vip_node"]) == ("a", "", "b")
    # without fault times: the vip table still shows the move; {ip: name} accepted too
    m2 = trace_metrics(events, registrar_nodes={NODE_A: "a", NODE_B: "b"})
    assert m2.vip["node"].tolist() == ["a", "b"] and len(m2.faults) == 0


def test_repairs_priority_zero_release_and_split_brain():
    # A (prio 200) advertises 0..10, a health check puts it in FAULT at 10.2 (priority-0 advert),
    # B takes over at 10.2; A is repaired at 20 and preempts at 20.5 (B releases with priority 0);
    # from 30 a partition: A and B both advertise (split brain) until the end
    events = _events_from_frames(
        vrrp_frames(NODE_A, 0.0, 10.5, 1.0, priority=200) + [(T0 + 10.2, ether(vrrp(NODE_A, 2, 51, 0, 1)))]
        + vrrp_frames(NODE_B, 10.25, 20.5, 1.0, priority=100) + [(T0 + 20.5, ether(vrrp(NODE_B, 2, 51, 0, 1)))]
        + vrrp_frames(NODE_A, 20.55, 40.0, 1.0, priority=200) + vrrp_frames(NODE_B, 30.1, 40.0, 1.0, priority=100)
    )
    faults = [TraceFault(10.1, "fault", "process_crash", "a"), TraceFault(20.0, "repair", "process_crash", "a")]
    m = trace_metrics(events, faults=faults, registrar_nodes={"a": NODE_A, "b": NODE_B})
    f = m.faults
    FAULTS.check(f)
    assert f["cause"].tolist() == ["fault", "repair"] and f["fault"].tolist() == [0, -1]
    assert f["kind"].tolist() == ["process_crash"] * 2 and f["node"].tolist() == ["a", "a"]
    assert f["repair_time"].iloc[0] == pytest.approx(9.9) and math.isnan(f["repair_time"].iloc[1])
    # A's priority-0 advert (10.2) comes before B's first (10.25): that is the detection
    assert f["detection_time"].iloc[0] == pytest.approx(0.1, abs=1e-5)
    assert f["vip_move_time"].tolist() == pytest.approx([0.15, 0.55], abs=1e-5)
    assert f["new_vip_node"].tolist() == ["b", "a"] and math.isnan(f["detection_time"].iloc[1])
    assert m.vip_move_times == pytest.approx([0.15], abs=1e-5)
    ts = m.timeseries.set_index("time")
    assert ts.loc[5.0, "vrrp_masters"] == 1 and ts.loc[25.0, "vrrp_masters"] == 1
    assert ts.loc[31.0, "vrrp_masters"] == 2 and ts.loc[35.0, "vrrp_masters"] == 2


def _events_from_frames(frames, tmp=None) -> pd.DataFrame:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return import_trace(write_pcap(Path(d) / "f.pcap", sorted(frames))).events


def _failover_frames():
    """ph1 registers at 0, 30, 60; ph2 at 10, 40, 70; A serves until the crash at 45; B from 48.6."""
    frames = []
    for aor, starts in (("ph1", (0, 30, 60)), ("ph2", (10, 40, 70))):
        for k, t in enumerate(starts):
            if 45 <= t < 48.6:
                continue
            frames += _register_exchange(float(t), aor, k + 1, expires=60)
    frames += vrrp_frames(NODE_A, 0.0, 45.0, 1.0, priority=200)
    frames += vrrp_frames(NODE_B, 48.6, 80.0, 1.0, priority=100)
    return frames


def test_inferred_reachability_without_replication():
    events = _events_from_frames(_failover_frames())
    m = trace_metrics(events, vip=VIP, faults=[45.0], registrar_nodes={"a": NODE_A, "b": NODE_B})
    assert m.reachability_source == "register"
    out = m.outages.sort_values("phone")
    # both lose the VIP at the crash (45); each is back at its next 200 after the move at 48.6
    assert out["phone"].tolist() == ["ph1", "ph2"]
    assert out["start"].tolist() == pytest.approx([45.0, 45.0])
    assert out["end"].tolist() == pytest.approx([60.002, 70.002], abs=1e-5)
    assert m.recovery["recovery_time"].tolist() == pytest.approx([15.002, 25.002], abs=1e-5)
    assert m.faults["vip_move_time"].tolist() == pytest.approx([3.6], abs=1e-5)
    assert m.unreachable_phone_seconds == pytest.approx(15.002 + 25.002, abs=1e-4)
    ts = m.timeseries.set_index("time")
    assert ts.loc[5.0, "reachable"] == 1 and ts.loc[20.0, "reachable"] == 2
    assert ts.loc[50.0, "reachable"] == 0 and ts.loc[65.0, "reachable"] == 1 and ts.loc[75.0, "reachable"] == 2
    assert ts.loc[50.0, "registered"] == 2  # the phones' own bindings have not expired
    assert ts["register_tx"].sum() == 6 and ts["resp_2xx"].sum() == 6
    # REGISTERs to the VIP are received by the VRRP master of the moment
    assert ts["register_rx_a"].sum() == 4 and ts["register_rx_b"].sum() == 2


def test_inferred_reachability_with_replication():
    events = _events_from_frames(_failover_frames())
    m = trace_metrics(events, vip=VIP, faults=[45.0], replicated=True)
    out = m.outages.sort_values("phone")
    # bindings survive: only the time without a VIP master (45 -> 48.6) is lost
    assert out["start"].tolist() == pytest.approx([45.0, 45.0])
    assert out["end"].tolist() == pytest.approx([48.6, 48.6], abs=1e-5)
    assert m.unreachable_phone_seconds == pytest.approx(7.2, abs=1e-4)


def test_register_traffic_rate_responses_retransmissions_timeouts():
    frames = [(T0, ether(vrrp(NODE_A, 2, 51, 200, 1)))]  # t = 0
    frames += _register_exchange(0.2, "ph1", 1)  # 200
    frames += _register_exchange(1.2, "ph2", 1, status=503)
    frames += _register_exchange(1.7, "ph3", 1, status=403)
    # ph4: a REGISTER retransmitted at +0.5, +1.5 and never answered -> one timeout at 2.0 + 32
    cid, br = "cid-ph4", "z9hG4bK-ph4-1"
    req = register("ph4", PHONE, cid, 1, br)
    frames += [(T0 + t, ether(udp(PHONE, 5060, VIP, 5060, req))) for t in (2.0, 2.5, 3.5)]
    # ph5: unanswered too, but sent 10 s before the end: undecided, not a timeout
    frames += [(T0 + 30.0, ether(udp(PHONE, 5060, VIP, 5060, register("ph5", PHONE, "c5", 1, "b5"))))]
    frames += [(T0 + 40.0, ether(vrrp(NODE_A, 2, 51, 200, 1)))]
    m = trace_metrics(_events_from_frames(frames), vip=VIP, resolution=0.5)
    assert m.responses == {"2xx": 1, "4xx": 1, "503": 1, "other": 0}
    assert m.retransmissions == 2
    assert m.timeouts == 1
    rate = m.register_rate.set_index("time")
    assert rate.loc[0.0, "register_rx"] == 1 and rate.loc[1.0, "register_rx"] == 2
    assert rate.loc[2.0, "register_rx"] == 1 and rate.loc[2.0, "register_retrans"] == 1
    assert rate.loc[3.0, "register_retrans"] == 1 and rate["register_rx"].sum() == 5
    ts = m.timeseries.set_index("time")
    assert ts.loc[34.0, "timeouts"] == 1 and ts["timeouts"].sum() == 1
    assert ts.loc[1.0, "resp_503"] == 1 and ts.loc[1.5, "resp_4xx"] == 1 and ts.loc[0.0, "resp_2xx"] == 1
    assert ts.loc[2.5, "retransmissions"] == 1 and ts.loc[3.5, "retransmissions"] == 1
    assert np.allclose(np.diff(m.timeseries["time"]), 0.5)


def test_metrics_on_empty_events():
    m = trace_metrics(pd.DataFrame({c: [] for c in EVENT_COLUMNS}))
    assert m.reachability_source == "none" and m.unreachable_phone_seconds == 0
    assert len(m.outages) == 0 and len(m.timeseries) == 1
    with pytest.raises(ValueError):
        trace_metrics(pd.DataFrame({c: [] for c in EVENT_COLUMNS}), resolution=0)


def _ipv6(src: str, dst: str, nxt: int, payload: bytes) -> bytes:
    import socket
    import struct

    header = struct.pack("!IHBB", 6 << 28, len(payload), nxt, 64)
    return header + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + payload


def test_ipv6_udp_sip_and_vrrp3(tmp_path):
    import struct

    sip = register("ph6", "2001:db8::1", "c6", 1, "z9hG4bK-6")
    seg = struct.pack("!HHHH", 5060, 5060, 8 + len(sip), 0) + sip
    # a hop-by-hop extension header (8 bytes) in front of the UDP header must be skipped
    hop = bytes([17, 0]) + b"\x01\x04\x00\x00\x00\x00"
    adv = struct.pack("!BBBBHH", 0x31, 7, 150, 0, 100, 0)
    frames = [
        (T0, _eth6(_ipv6("2001:db8::1", "2001:db8::100", 0, hop + seg))),
        (T0 + 1, _eth6(_ipv6("fe80::a", "ff02::12", 112, adv))),
    ]
    ev = import_trace(write_pcapng(tmp_path / "v6.pcapng", frames)).events
    assert ev["src"].tolist() == ["[2001:db8::1]:5060", "fe80::a"]
    assert ev["aor"].iloc[0] == "ph6" and ev["method"].iloc[0] == "REGISTER"
    assert (ev["vrrp_version"].iloc[1], ev["vrrp_priority"].iloc[1], ev["vrrp_advert_int"].iloc[1]) == (3, 150, 1.0)


def _eth6(ip_packet: bytes) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + b"\x86\xdd" + ip_packet


def test_pcapng_with_two_interfaces_of_different_link_types(tmp_path):
    """tshark on several interfaces writes one IDB each; packets name their interface."""
    from dpkt.pcapng import EnhancedPacketBlockLE, InterfaceDescriptionBlockLE, Writer

    (req_t, req), (ok_t, ok) = _register_exchange(0.0, "ph1", 1)
    idbs = [InterfaceDescriptionBlockLE(linktype=1), InterfaceDescriptionBlockLE(linktype=276)]
    path = tmp_path / "two.pcapng"
    with open(path, "wb") as fh:
        writer = Writer(fh, idb=idbs)
        writer.writepkt(EnhancedPacketBlockLE(iface_id=0, pkt_data=req), ts=req_t)
        writer.writepkt(EnhancedPacketBlockLE(iface_id=1, pkt_data=sll2(ok[14:])), ts=ok_t)
        writer.writepkt(EnhancedPacketBlockLE(iface_id=5, pkt_data=req), ts=ok_t + 1)  # no such IDB
    result = import_trace(path)
    assert result.events["kind"].tolist() == ["request", "response"]
    assert result.skipped == {"bad_interface": 1}


def test_non_sip_tcp_stream_is_skipped(tmp_path):
    junk = bytes(range(256)) * 4 + b"\r\n\r\n" + bytes(range(200))
    frames = [(T0 + 0.1 * k, ether(tcp("10.0.0.11", 5432, "10.0.0.12", 40000, 1 + 300 * k, junk[300 * k : 300 * (k + 1)]))) for k in range(5)]
    frames += [(T0 + 1, ether(tcp(PHONE, 40001, VIP, 5060, 77, register("ph1", PHONE, "c", 1, "b"))))]
    result = import_trace(write_pcap(tmp_path / "pg.pcap", frames))
    assert result.events["aor"].tolist() == ["ph1"]
    # joined mid-connection: bytes are dropped while looking for a SIP start line
    assert result.skipped.get("tcp_unsynced", 0) >= 1


def test_metrics_refuse_absurd_time_span():
    ev = pd.DataFrame({c: [] for c in EVENT_COLUMNS})
    ev = pd.concat([ev, pd.DataFrame({"time": [0.0, 4e9], "kind": ["vrrp", "vrrp"], "vrrp_src": ["a", "a"]})])
    with pytest.raises(ValueError, match="coarser resolution"):
        trace_metrics(ev)
    assert len(trace_metrics(ev, end=10.0).timeseries) == 11
