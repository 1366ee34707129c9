"""SIP the trace tools cannot read — HEP-encapsulated (a HOMER feed) or TLS-encrypted — is counted
under its own reason and explained, never a traceback; plain garbage is still ``not_sip`` and clear
SIP next to it is still read (negative controls)."""

from __future__ import annotations

import struct

import pytest
from typer.testing import CliRunner

from simsip.cli import app
from simsip.trace import import_trace, infer_scenario, measure_trace
from simsip.trace.sip import unreadable, unreadable_notes
from trace_builders import PHONE_IP, T0, VIP, ether, register, register_ok, tcp, udp, write_pcap

HOMER = "10.0.0.200"


def hep3(sip: bytes) -> bytes:
    """A HEPv3 packet carrying ``sip`` (chunk header only as far as the detector needs it)."""
    chunk = struct.pack("!HHH", 0, 0x000F, 6 + len(sip)) + sip  # vendor 0, type 15: the captured payload
    return b"HEP3" + struct.pack("!H", 6 + len(chunk)) + chunk


def tls_record(content_type: int, body: bytes, version: bytes = b"\x03\x03") -> bytes:
    return bytes([content_type]) + version + struct.pack("!H", len(body)) + body


def _frames() -> list:
    frames = []
    for k in range(4):  # a HOMER feed: HEP3 over UDP to port 9060
        frames.append((T0 + k, ether(udp(PHONE_IP, 9060, HOMER, 9060, hep3(register(f"p{k}", PHONE_IP, f"c{k}", 1, f"b{k}"))))))
    seq = 1000  # SIP over TLS: a handshake record, then application data, on port 5061
    for k, payload in enumerate([tls_record(22, b"\x01" + b"\x00" * 60), tls_record(23, b"\x8a" * 300),
                                 tls_record(23, b"\x17" * 200)]):
        frames.append((T0 + 5 + k, ether(tcp(PHONE_IP, 40000, VIP, 5061, seq, payload))))
        seq += len(payload)
    frames.append((T0 + 9, ether(udp(PHONE_IP, 5062, VIP, 5061, tls_record(23, b"\x00" * 40, b"\xfe\xfd")))))  # DTLS
    frames.append((T0 + 10, ether(udp(PHONE_IP, 5060, VIP, 5060, b"\x07garbage that is not SIP"))))  # control
    # clear SIP next to it, still read
    frames.append((T0 + 11, ether(udp(PHONE_IP, 5060, VIP, 5060, register("clear", PHONE_IP, "cc", 1, "bb")))))
    frames.append((T0 + 11.01, ether(udp(VIP, 5060, PHONE_IP, 5060, register_ok("clear", PHONE_IP, "cc", 1, "bb")))))
    return frames


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return write_pcap(tmp_path_factory.mktemp("unreadable") / "mixed.pcap", _frames())


def test_detector_tells_hep_and_tls_from_sip_and_garbage():
    assert unreadable(hep3(b"REGISTER sip:x SIP/2.0\r\n")) == "hep"
    assert unreadable(tls_record(22, b"\x01" * 10)) == "tls"
    assert unreadable(tls_record(23, b"x" * 10, b"\xfe\xfd")) == "tls"
    assert unreadable(b"\x8a\x01\x02" * 10, (40000, 5061)) == "tls"  # mid-connection on 5061: not text
    for clear in (register("a", PHONE_IP, "c", 1, "b"), b"hello", b"\x07garbage"):
        assert unreadable(clear) is None, clear
    assert unreadable(register("a", PHONE_IP, "c", 1, "b"), (5061, 40000)) is None  # clear SIP on 5061


def test_infer_counts_and_explains(capture):
    inf = infer_scenario(capture)
    assert inf.skipped.get("hep") == 4
    assert inf.skipped.get("tls") == 4  # 3 TCP segments of one TLS connection + 1 DTLS datagram
    assert inf.skipped.get("not_sip") == 1  # the garbage datagram stays garbage
    assert "tcp_unsynced" not in inf.skipped and "bad_sip" not in inf.skipped
    (fleet,) = inf.fleets  # the clear REGISTER is still read
    assert fleet.phones == 1
    text = "\n".join(inf.notes)
    assert "HEP-encapsulated" in text and "HOMER" in text and "4 packet(s)" in text
    assert "TLS/DTLS-encrypted" in text and "keylog" in text
    assert "HEP-encapsulated" in inf.scenario_yaml() and "HEP-encapsulated" in inf.summary()


def test_import_counts_and_warns(capture):
    imp = import_trace(capture)
    assert imp.skipped.get("hep") == 4 and imp.skipped.get("tls") == 4 and imp.skipped.get("not_sip") == 1
    assert len(imp.events[imp.events["method"] == "REGISTER"]) == 2
    met = measure_trace(capture).metrics
    assert any("HEP-encapsulated" in w for w in met.warnings) and any("TLS" in w for w in met.warnings)
    assert unreadable_notes({"not_sip": 3}) == []  # negative control: no note without HEP or TLS


@pytest.mark.parametrize("command", ["infer", "import"])
def test_cli_says_so_without_a_traceback(capture, command, tmp_path):
    r = CliRunner().invoke(app, ["trace", command, str(capture)])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    assert "hep=4" in r.output and "tls=4" in r.output
    assert "HEP-encapsulated" in r.output and "TLS/DTLS-encrypted" in r.output


def test_only_hep_gives_no_fleet_and_says_why(tmp_path):
    frames = [(T0 + k, ether(udp(PHONE_IP, 9060, HOMER, 9060, hep3(register(f"p{k}", PHONE_IP, f"c{k}", 1, "b")))))
              for k in range(3)]
    inf = infer_scenario(write_pcap(tmp_path / "homer.pcap", frames))
    assert not inf.fleets and inf.skipped == {"hep": 3}
    assert any("HEP" in n for n in inf.notes) and any("no REGISTER seen" in n for n in inf.notes)
