"""``simsip trace infer``: values read off synthetic captures with known ground truth, and off the lab.

The synthetic captures are written by a tiny phone simulator below (:func:`fleet_frames`): each phone
refreshes at a configured fraction of the granted expiry (with a configured jitter), retransmits on
the RFC 3261 Timer E schedule when the registrar is silent, waits a configured time after a timeout
and after each error code, honours Retry-After or not, answers digest challenges, sends CRLF
keep-alives; a VRRP pair advertises with configured interval and priorities, the master goes silent
and the backup takes over with two GARP bursts. The inferred values must be within stated tolerances
of the configured ones, and a capture built with another refresh point must be told apart.
"""

from __future__ import annotations

import math
import random
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import pytest
import yaml
from typer.testing import CliRunner

from simsip.cli import app
from simsip.config.loader import load_config, load_config_text
from simsip.protocols import transactions
from simsip.trace import TraceError, infer_scenario

from tests.conftest import EXAMPLES
from trace_builders import MAC_A, MAC_B, NODE_A, NODE_B, T0, VIP, ether, ipv4, udp, vrrp, write_pcap, write_pcapng

LAB = EXAMPLES / "lab"
LAB_RUNS = sorted(p.name for p in LAB.iterdir() if (p / "run.tar.xz").is_file())


# --------------------------------------------------------------------------- a small phone simulator
def sip_register(aor: str, ip: str, cid: str, cseq: int, branch: str, expires: int, ua: str,
                 auth: bool = False, transport: str = "UDP") -> bytes:
    lines = [
        f"REGISTER sip:{VIP} SIP/2.0",
        f"Via: SIP/2.0/{transport} {ip}:5060;branch={branch}",
        f"From: <sip:{aor}@{VIP}>;tag=f{aor}",
        f"To: <sip:{aor}@{VIP}>",
        f"Call-ID: {cid}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{aor}@{ip}:5060>",
        f"Expires: {expires}",
        f"User-Agent: {ua}",
    ]
    if auth:
        lines.append(f'Authorization: Digest username="{aor}", realm="lab", nonce="n1", uri="sip:{VIP}", response="x"')
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def sip_response(aor: str, ip: str, cid: str, cseq: int, branch: str, status: int, expires: int = 0,
                 retry_after: float | None = None, min_expires: int | None = None, transport: str = "UDP") -> bytes:
    reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 423: "Interval Too Brief",
              503: "Service Unavailable"}.get(status, "X")
    lines = [
        f"SIP/2.0 {status} {reason}",
        f"Via: SIP/2.0/{transport} {ip}:5060;branch={branch}",
        f"From: <sip:{aor}@{VIP}>;tag=f{aor}",
        f"To: <sip:{aor}@{VIP}>;tag=srv",
        f"Call-ID: {cid}",
        f"CSeq: {cseq} REGISTER",
        "Server: kamailio (5.8.2 (x86_64/linux))",
    ]
    if status == 200:
        lines.append(f"Contact: <sip:{aor}@{ip}:5060>;expires={expires}")
    if status == 401:
        lines.append('WWW-Authenticate: Digest realm="lab", nonce="n1"')
    if retry_after is not None:
        lines.append(f"Retry-After: {retry_after:g}")
    if min_expires is not None:
        lines.append(f"Min-Expires: {min_expires}")
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


@dataclass
class FleetSpec:
    """The ground truth of one synthetic fleet."""

    ua: str = "Yealink SIP-T46S 66.86.0.15"
    phones: int = 30
    subnet: str = "10.0.1."
    expires: int = 120
    granted: int = 120
    fraction: float = 0.8
    jitter: float = 0.02  # refresh at (fraction ± jitter·U) of the grant
    t1: float = 0.5
    t2: float = 4.0
    wait_timeout: float = 20.0  # after a timeout
    wait_error: dict[int, float] = field(default_factory=lambda: {403: 12.0})
    backoff: float | None = None  # waits base·2^(k-1) for the k-th consecutive failure instead
    honour_retry_after: bool = True
    auth: bool = False  # every REGISTER challenged first
    keepalive: float | None = 15.0  # CRLF interval
    latency: float = 0.002
    seed: int = 1


@dataclass
class RegistrarSpec:
    """When the registrar is silent or answers errors: (start, end, status or None for silence, Retry-After)."""

    windows: list[tuple[float, float, int | None, float | None]] = field(default_factory=list)

    def answer(self, t: float) -> tuple[int | None, float | None] | None:
        for start, end, status, ra in self.windows:
            if start <= t < end:
                return status, ra
        return None  # normal service


def fleet_frames(spec: FleetSpec, reg: RegistrarSpec, duration: float, link=ether, ipv6: bool = False) -> list:
    rng = random.Random(spec.seed)
    frames: list[tuple[float, bytes]] = []

    def ip_of(k: int) -> str:
        return f"fd00::1:{k + 1:x}" if ipv6 else f"{spec.subnet}{k + 1}"

    def packet(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
        if not ipv6:
            return udp(src, sport, dst, dport, payload)
        seg = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        seg.ulen = 8 + len(payload)
        ip6 = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src), dst=socket.inet_pton(socket.AF_INET6, dst),
                           nxt=17, hlim=64, data=bytes(seg))
        ip6.plen = len(bytes(seg))
        return bytes(ip6)

    vip = "fd00::100" if ipv6 else VIP

    def send(t: float, src: str, dst: str, payload: bytes) -> None:
        frames.append((T0 + t, link6(packet(src, 5060, dst, 5060, payload)) if ipv6 else link(packet(src, 5060, dst, 5060, payload))))

    def link6(p: bytes) -> bytes:
        return bytes(dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, type=dpkt.ethernet.ETH_TYPE_IP6, data=p))

    for k in range(spec.phones):
        aor, ip = f"u{spec.subnet.replace('.', '')}{k}", ip_of(k)
        cid = f"{aor}-call"
        cseq = 0
        t = spec.fraction * spec.granted * k / spec.phones  # even phases
        streak = 0
        if spec.keepalive:
            ka = t + 1.0
            while ka < duration:
                send(ka, ip, vip, b"\r\n\r\n")
                ka += spec.keepalive
        while t < duration:
            cseq += 1
            branch = f"z9hG4bK-{aor}-{cseq}"
            credentials = False
            if spec.auth:  # challenged first, answered 10 ms later with credentials
                send(t, ip, vip, sip_register(aor, ip, cid, cseq, branch, spec.expires, spec.ua))
                if reg.answer(t) is None:
                    send(t + spec.latency, vip, ip, sip_response(aor, ip, cid, cseq, branch, 401))
                    t += spec.latency + 0.010
                    cseq += 1
                    branch = f"z9hG4bK-{aor}-{cseq}"
                    credentials = True
                else:
                    pass  # an outage: the unchallenged REGISTER is the one that fails below
            outcome = reg.answer(t)
            if not (spec.auth and not credentials):
                send(t, ip, vip, sip_register(aor, ip, cid, cseq, branch, spec.expires, spec.ua, auth=credentials))
            if outcome is None:
                send(t + spec.latency, vip, ip, sip_response(aor, ip, cid, cseq, branch, 200, spec.granted))
                streak = 0
                u = rng.uniform(-1, 1)
                t = t + spec.latency + spec.granted * (spec.fraction + spec.jitter * u)
                continue
            status, ra = outcome
            streak += 1
            if status is None:  # silence: Timer E retransmissions until Timer F
                offsets = transactions.timer_e_schedule(spec.t1, spec.t2)
                for off in offsets[1:]:
                    if t + off < duration:
                        send(t + off, ip, vip, sip_register(aor, ip, cid, cseq, branch, spec.expires, spec.ua,
                                                            auth=credentials))
                failed_at = t + transactions.timer_f(spec.t1)
                wait = spec.wait_timeout
            else:
                send(t + spec.latency, vip, ip, sip_response(aor, ip, cid, cseq, branch, status, retry_after=ra))
                failed_at = t + spec.latency
                wait = spec.wait_error.get(status, spec.wait_timeout)
                if ra is not None and spec.honour_retry_after:
                    wait = max(wait, ra)
            if spec.backoff is not None:
                wait = spec.backoff * 2 ** (streak - 1)
            t = failed_at + wait
    return frames


def vrrp_pair(duration: float, *, advert: float = 1.0, version: int = 2, prio_a: int = 150, prio_b: int = 90,
              crash: float | None = 500.3, garp_repeat: int = 5, garp_delay: float = 3.0) -> list:
    """Node A advertises until ``crash``; B takes over after Master_Down_Interval with two GARP bursts."""
    frames = []
    t = 0.05
    last_a = t
    while t < duration and (crash is None or t < crash):
        frames.append((T0 + t, ether(vrrp(NODE_A, version, 51, prio_a, advert))))
        last_a = t
        t += advert
    if crash is None:
        return frames
    skew = (256 - prio_b) / 256 * (1 if version == 2 else advert)
    takeover = last_a + 3 * advert + skew
    t = takeover
    while t < duration:
        frames.append((T0 + t, ether(vrrp(NODE_B, version, 51, prio_b, advert))))
        t += advert
    for burst in (takeover, takeover + garp_delay):
        for _ in range(garp_repeat):
            frames.append((T0 + burst, garp(VIP, MAC_B)))
    return frames


def garp(ip: str, mac: bytes) -> bytes:
    a = dpkt.arp.ARP(sha=mac, spa=socket.inet_aton(ip), tha=b"\xff" * 6, tpa=socket.inet_aton(ip), op=dpkt.arp.ARP_OP_REQUEST)
    return bytes(dpkt.ethernet.Ethernet(src=mac, dst=b"\xff" * 6, type=dpkt.ethernet.ETH_TYPE_ARP, data=bytes(a)))


DURATION = 900.0
OUTAGES = RegistrarSpec(windows=[(300.0, 330.0, None, None),  # silent: timeouts
                                 (600.0, 640.0, 503, 25.0),  # 503 with Retry-After 25 s
                                 (700.0, 800.0, 403, None)])  # 403


def write(tmp: Path, name: str, frames: list, fmt: str = "pcap") -> Path:
    frames = sorted(frames, key=lambda f: f[0])
    return (write_pcap if fmt == "pcap" else write_pcapng)(tmp / f"{name}.{fmt}", frames)


@pytest.fixture(scope="module")
def main_capture(tmp_path_factory) -> tuple[Path, FleetSpec, FleetSpec]:
    tmp = tmp_path_factory.mktemp("infer")
    yea = FleetSpec()
    bare = FleetSpec(ua="baresip v3.10.1 (x86_64/Linux)", phones=12, subnet="10.0.2.", expires=60, granted=60,
                     fraction=0.9, jitter=0.0, backoff=4.0, auth=True, keepalive=None, seed=2,
                     wait_error={})
    # baresip's outage: 503 without Retry-After for 100 s, so several failures in a row
    bare_reg = RegistrarSpec(windows=[(400.0, 500.0, 503, None)])
    frames = fleet_frames(yea, OUTAGES, DURATION) + fleet_frames(bare, bare_reg, DURATION) + vrrp_pair(DURATION)
    return write(tmp, "main", frames, "pcapng"), yea, bare


@pytest.fixture(scope="module")
def inferred(main_capture):
    return infer_scenario(main_capture[0])


def fleet(inf, ua_start: str):
    return next(f for f in inf.fleets if f.user_agent.startswith(ua_start))


# --------------------------------------------------------------------------- ground truth: phones
def test_fleets_grouped_by_user_agent_and_mapped_to_profiles(inferred, main_capture):
    _, yea, bare = main_capture
    assert len(inferred.fleets) == 2
    y, b = fleet(inferred, "Yealink"), fleet(inferred, "baresip")
    assert (y.phones, y.profile, y.transport, y.user_agent) == (yea.phones, "yealink", "udp", yea.ua)
    assert (b.phones, b.profile) == (bare.phones, "baresip")
    assert y.addresses == yea.phones


def test_refresh_point_expiry_and_jitter_within_tolerance(inferred, main_capture):
    _, yea, bare = main_capture
    y, b = fleet(inferred, "Yealink"), fleet(inferred, "baresip")
    assert y.requested_expires.value == yea.expires and y.granted_expires.value == yea.granted
    # tolerance: 0.01 of the expiry on the median refresh point; its CI holds the configured value
    assert abs(y.refresh_fraction.value - yea.fraction) < 0.01
    assert y.refresh_fraction.lo <= yea.fraction + 0.002 and y.refresh_fraction.hi >= yea.fraction - 0.002
    assert y.refresh_fraction.n > 100
    # jitter: the p5–p95 spread of a uniform ±2 % is ≈ 3.6 % of the expiry
    p5, p95 = y.refresh_fraction.quantiles[0], y.refresh_fraction.quantiles[4]
    assert 0.03 < p95 - p5 < 0.042
    assert abs(b.refresh_fraction.value - bare.fraction) < 0.005 and b.refresh_fraction.quantiles[4] - b.refresh_fraction.quantiles[0] < 0.005


def test_negative_control_another_refresh_point_is_told_apart(tmp_path, inferred):
    other = FleetSpec(fraction=0.65)
    path = write(tmp_path, "other", fleet_frames(other, RegistrarSpec(), 600.0))
    got = fleet(infer_scenario(path), "Yealink").refresh_fraction
    mine = fleet(inferred, "Yealink").refresh_fraction
    assert abs(got.value - 0.65) < 0.01
    assert got.hi < mine.lo  # the intervals do not overlap: 65 % and 80 % are told apart


def test_timer_e_and_wait_after_timeout(inferred, main_capture):
    _, yea, _ = main_capture
    y = fleet(inferred, "Yealink")
    assert abs(y.t1.value - yea.t1) < 0.005 and abs(y.t2.value - yea.t2) < 0.005
    # RFC Timer F = 64·T1: 10 retransmissions fit before it
    assert y.max_retransmissions.value == len(transactions.timer_e_schedule(yea.t1, yea.t2)) - 1
    assert y.timeout_wait.observed and abs(y.timeout_wait.value - yea.wait_timeout) < 0.1
    assert y.timeout_wait.n >= 10


def test_waits_after_error_codes_and_retry_after(inferred, main_capture):
    _, yea, _ = main_capture
    y = fleet(inferred, "Yealink")
    assert set(y.error_waits) == {403, 503}
    assert abs(y.error_waits[403].value - yea.wait_error[403]) < 0.05
    assert abs(y.error_waits[503].value - 25.0) < 0.05  # honoured Retry-After 25 s > the 20 s rule
    assert y.retry_after_honoured.value == 1.0 and y.retry_after_honoured.n >= 5
    assert y.backoff is False


def test_retry_after_ignored_is_seen(tmp_path):
    spec = FleetSpec(honour_retry_after=False, wait_error={503: 5.0}, keepalive=None, phones=10)
    reg = RegistrarSpec(windows=[(200.0, 260.0, 503, 30.0)])
    f = fleet(infer_scenario(write(tmp_path, "ra", fleet_frames(spec, reg, 400.0))), "Yealink")
    assert f.retry_after_honoured.value == 0.0 and abs(f.error_waits[503].value - 5.0) < 0.05
    text = infer_scenario(tmp_path / "ra.pcap").scenario_yaml()
    assert "honour_retry_after: false" in text
    load_config_text(text)


def test_backoff_and_digest_auth(inferred, main_capture):
    b = fleet(inferred, "baresip")
    assert b.backoff is True
    # configured waits 4, 8, 16, 32 s for failure 1, 2, 3, 4 in a row
    for k in (1, 2, 3, 4):
        assert abs(b.streak_waits[k].value - 4.0 * 2 ** (k - 1)) < 0.05, k
    # the scenario lists each wait with its n and interval, the backoff read off them
    block = inferred.scenario_yaml().split(f"- name: {chr(34)}{b.name}{chr(34)}", 1)[1].split("\n  - name:", 1)[0]
    for k in (1, 2, 3, 4):
        line = next(ln for ln in block.splitlines() if f"failure number {k} in a row" in ln)
        assert f"n={b.streak_waits[k].n}," in line and "95% CI" in line, line
    assert b.auth_challenges > 100 and b.proactive_auth == 0
    assert abs(b.auth_wait.value - 0.010) < 0.001


def test_keepalives(inferred, main_capture):
    _, yea, bare = main_capture
    y, b = fleet(inferred, "Yealink"), fleet(inferred, "baresip")
    assert y.keepalive_kind == "crlf" and abs(y.keepalive_interval.value - yea.keepalive) < 0.01
    assert b.keepalive_kind == "none" and not b.keepalive_interval.observed


def test_not_observed_is_said(tmp_path):
    spec = FleetSpec(keepalive=None, phones=5)
    inf = infer_scenario(write(tmp_path, "calm", fleet_frames(spec, RegistrarSpec(), 400.0)))
    f = inf.fleets[0]
    for e in (f.t1, f.t2, f.max_retransmissions, f.timeout_wait, f.keepalive_interval, f.retry_after_honoured):
        assert not e.observed and e.n == 0 and e.comment().startswith("not observed")
    assert f.error_waits == {}
    text = inf.scenario_yaml()
    assert "# retry: from profile yealink because not observed" in text
    assert "# timers: from profile yealink because not observed" in text
    assert not inf.ha.stack and "no VRRP advert" in text


# --------------------------------------------------------------------------- ground truth: registrar and HA
def test_registrar_side(inferred):
    r = inferred.registrar
    assert abs(r.latency.value - 0.002) < 1e-4
    assert r.profile == "kamailio" and r.servers
    assert r.grant_rule.startswith("granted = requested")
    # replies come from the VIP: the VRRP master of the moment answered them (the VIP itself
    # only for the replies before the first advert)
    assert {NODE_A, NODE_B} <= set(r.answered_by) <= {NODE_A, NODE_B, VIP}
    assert r.answered_by.get(VIP, 0) == 3  # before 50 ms: each fleet's phase-0 phone (baresip: 401, 200)


def test_vrrp_and_garp(inferred):
    h = inferred.ha
    assert (h.stack, h.version, h.vrid) == ("keepalived", 2, 51)
    assert h.advert_int.value == 1.0 and abs(h.advert_gap.value - 1.0) < 1e-6
    assert h.priorities == {NODE_A: 150, NODE_B: 90}
    assert h.virtual_ips == (VIP,)
    assert [m for _, m in h.masters] == [NODE_A, NODE_B]
    (change,) = h.master_changes
    assert abs(change["silence"] - (3 + (256 - 90) / 256)) < 1e-3  # Master_Down_Interval of priority 90
    assert h.garp_repeat.value == 5 and abs(h.garp_second_delay.value - 3.0) < 1e-3
    (fault,) = inferred.faults
    assert fault["kind"] == "node_crash" and 499.5 < fault["at"] < 500.6  # between the last advert and the next


def test_vrrp3_centiseconds(tmp_path):
    frames = vrrp_pair(60.0, advert=0.35, version=3, crash=None)
    h = infer_scenario(write(tmp_path, "v3", frames)).ha
    assert h.version == 3 and abs(h.advert_int.value - 0.35) < 1e-9 and not h.master_changes


# --------------------------------------------------------------------------- weighted checks and preemption
def _mdi(version: int, prio: int, advert: float) -> float:
    from simsip.protocols.vrrp import master_down_interval

    return master_down_interval(version, prio, advert)


def weighted_pair(duration: float, *, prio_a: int = 100, prio_b: int = 90, weight: int = -20, fail: float = 30.3,
                  recover: float | None = 60.3, advert: float = 1.0) -> list:
    """keepalived with a weighted track_script, as RFC 5798 §6.4 and keepalived's vrrp_track.c have it.

    Node A (``prio_a``) is master; its check fails at ``fail``: from its next advert it advertises
    ``prio_a + weight`` and stays master (no FAULT). If that is below B's ``prio_b`` (the weight covers
    the gap), B discards the lower adverts and takes over one Master_Down_Interval after the last one it
    accepted; A hears B and goes silent (backup). At ``recover`` A's check passes again: A advertises
    ``prio_a`` (if still master), or, back above B, preempts B one Master_Down_Interval after the last
    advert of B it accepted. A weight > 0 here means the priority *rises* while the check fails (reverse).
    """
    frames, low = [], prio_a + weight
    t, b_master_from = 0.0, None
    last_ok = None  # A's last advert at its healthy priority: B's down timer runs from it
    while t < duration:
        failing = fail <= t and (recover is None or t < recover)
        prio = low if failing else prio_a
        if b_master_from is None:
            frames.append((T0 + t, ether(vrrp(NODE_A, 2, 51, prio, advert))))
            if prio >= prio_b:
                last_ok = t
            elif last_ok is not None and t + advert > last_ok + _mdi(2, prio_b, advert):
                b_master_from = last_ok + _mdi(2, prio_b, advert)  # B takes over before A's next advert
        t += advert
    if b_master_from is None:
        return frames
    # B advertises from its takeover; once A's check passes, A (above B again) discards B's adverts and
    # takes over Master_Down_Interval after the last one it accepted; B hears it and goes silent
    frames += [(T0 + b_master_from, garp(VIP, MAC_B))] * 5
    b_times = [b_master_from + k * advert for k in range(int((duration - b_master_from) / advert) + 1)]
    back = None
    if recover is not None and prio_a > prio_b:
        accepted = [x for x in b_times if x <= recover]
        back = accepted[-1] + _mdi(2, prio_a, advert)
    frames += [(T0 + x, ether(vrrp(NODE_B, 2, 51, prio_b, advert))) for x in b_times
               if x < duration and (back is None or x < back)]
    t = back if back is not None else duration
    while t < duration:
        frames.append((T0 + t, ether(vrrp(NODE_A, 2, 51, prio_a, advert))))
        t += advert
    return frames


def test_weighted_check_covers_the_gap(tmp_path):
    """Weight -20 on priority 100 against a backup at 90: the master advertises 80 and the backup takes
    over; the weight is inferred as 20 lowering the priority, and the scenario moves the VIP too."""
    path = write(tmp_path, "moves", weighted_pair(120.0))
    inf = infer_scenario(path)
    h = inf.ha
    assert h.weight.value == 20 and h.weight.n == 1 and h.weight_reverse is False
    assert h.priorities == {NODE_A: 100, NODE_B: 90}
    (drop,) = [s for s in h.priority_steps if s["continuous"]]
    assert (drop["old"], drop["new"]) == (100, 80) and abs(drop["time"] - 31.0) < 1e-6  # the first advert after 30.3 s
    (out,) = h.weight_evidence
    assert "covers the gap: 80 below the backup's 90" in out and f"the VIP moved to {NODE_B}" in out
    scn = load_config_text(inf.scenario_yaml())
    hc = scn.ha.health_check
    assert (hc.weight, hc.reverse) == (-20, False) and [n.priority for n in scn.ha.nodes] == [100, 90]
    assert _advertised(scn, ok=False)[0] == 80 < _advertised(scn, ok=True)[1]
    assert "weight: -20" in inf.scenario_yaml() and "n=1" in inf.scenario_yaml()
    # without faults.json the fault is placed where the priority dropped: a registrar failure (the check's),
    # not a node crash, repaired where the node came back at its usual priority (one MDI before it preempted)
    (fault,) = inf.faults
    assert fault["kind"] == "process_crash" and 29.3 <= fault["at"] <= 30.3 <= fault["at"] + 1.0
    assert abs(fault["at"] + fault["repair_after"] - 60.3) < 2.0
    # A preempted back when its check passed again (no restart recorded: no delay measured)
    assert h.preempt["preempt"] is True and not h.preempt_delay.observed
    assert scn.ha.vrrp.preempt and scn.ha.vrrp.preempt_delay == 0


def test_weighted_check_misses_the_gap(tmp_path):
    """Weight -5 on 100 against a backup at 90: the master advertises 95, the VIP never moves, the
    backup never advertises; its assumed priority stays below the lowered master."""
    inf = infer_scenario(write(tmp_path, "misses", weighted_pair(120.0, weight=-5)))
    h = inf.ha
    assert h.weight.value == 5 and h.weight.n == 2 and not h.master_changes  # 100 -> 95 -> 100
    (out,) = h.weight_evidence
    assert "the backup never advertised" in out and "the VIP did not move" in out
    scn = load_config_text(inf.scenario_yaml())
    assert scn.ha.health_check.weight == -5
    assert not _advertised(scn, ok=False)[0] < _advertised(scn, ok=True)[1]  # the scenario keeps the VIP too
    assert h.preempt["preempt"] is None and "preempt not observed" in inf.scenario_yaml()
    (fault,) = inf.faults
    assert fault["kind"] == "process_crash" and 29.3 <= fault["at"] <= 30.3 <= fault["at"] + 1.0
    assert abs(fault["repair_after"] - 30.0) < 1e-6  # 100 -> 95 at 31 s, back to 100 at 61 s


def test_reverse_weight_raises_the_priority(tmp_path):
    """A priority that steps up from the one advertised most, and back, is a reverse weight."""
    inf = infer_scenario(write(tmp_path, "rev", weighted_pair(120.0, weight=+15, fail=80.3, recover=100.3)))
    assert inf.ha.weight.value == 15 and inf.ha.weight_reverse is True
    scn = load_config_text(inf.scenario_yaml())
    assert (scn.ha.health_check.weight, scn.ha.health_check.reverse) == (-15, True)
    assert _advertised(scn, ok=True)[0] == 100 and _advertised(scn, ok=False)[0] == 115


def test_constant_priorities_infer_no_weight(inferred):
    """Negative control: a master that crashes (constant priorities, a silence) shows no weight."""
    h = inferred.ha
    assert not h.weight.observed and h.weight.n == 0 and not h.weight_evidence
    assert not any(s["continuous"] for s in h.priority_steps)
    assert load_config_text(inferred.scenario_yaml()).ha.health_check is None


def failback_run(tmp: Path, name: str, *, preempt: bool, delay: float = 0.0, duration: float = 90.0,
                 crash: float = 20.3, repair: float = 40.0, prio_a: int = 150, prio_b: int = 100) -> Path:
    """A lab-like run directory: A crashes (silent), B takes over; A restarts at ``repair``
    (faults.json) as backup and, with preempt, takes over Master_Down_Interval + ``delay`` later."""
    frames = []
    t = 0.0
    while t < crash:
        frames.append((T0 + t, ether(vrrp(NODE_A, 2, 51, prio_a, 1.0))))
        last_a = t
        t += 1.0
    t = last_a + _mdi(2, prio_b, 1.0)
    back = repair + _mdi(2, prio_a, 1.0) + delay if preempt else math.inf
    while t < min(duration, back):
        frames.append((T0 + t, ether(vrrp(NODE_B, 2, 51, prio_b, 1.0))))
        t += 1.0
    t = back
    while t < duration:
        frames.append((T0 + t, ether(vrrp(NODE_A, 2, 51, prio_a, 1.0))))
        t += 1.0
    run = tmp / name
    run.mkdir()
    write(run, "capture", frames)
    events = [{"kind": "node_crash", "node": "a", "action": "fault", "epoch": T0 + crash},
              {"kind": "node_crash", "node": "a", "action": "repair", "epoch": T0 + repair}]
    (run / "faults.json").write_text(__import__("json").dumps(events))
    (run / "meta.json").write_text(__import__("json").dumps({"t0_epoch": T0}))
    return run


@pytest.mark.parametrize("preempt,delay", [(True, 0.0), (True, 8.0), (False, 0.0)])
def test_preempt_and_its_delay_from_a_failback(tmp_path, preempt, delay):
    inf = infer_scenario(failback_run(tmp_path, "fb", preempt=preempt, delay=delay))
    h = inf.ha
    assert h.preempt["preempt"] is preempt
    scn = load_config_text(inf.scenario_yaml())
    assert scn.ha.vrrp.preempt is preempt
    if preempt:
        assert h.preempt_delay.n == 1 and abs(h.preempt_delay.value - delay) < 1e-3
        assert scn.ha.vrrp.preempt_delay == pytest.approx(delay)
    else:
        assert not h.preempt_delay.observed and "never advertised" in h.preempt["evidence"]
        assert "preempt: false" in inf.scenario_yaml()


# --------------------------------------------------------------------------- the scenario runs
def test_scenario_yaml_is_runnable_and_commented(inferred, main_capture, tmp_path):
    _, yea, bare = main_capture
    text = inferred.scenario_yaml("synthetic")
    scn = load_config_text(text)
    by = {f.profile: f for f in scn.fleets}
    y, b = by["yealink"], by["baresip"]
    assert y.count == yea.phones and b.count == bare.phones
    assert y.phone.expires == yea.expires and abs(y.phone.refresh.percent - 80) < 1
    assert y.phone.retry.mode == "fixed" and y.phone.keepalive.kind == "crlf"
    assert b.phone.retry.mode == "backoff" and b.phone.auth.nonce_reuse is False
    assert scn.ha.vrrp.advert_int == 1.0 and [n.priority for n in scn.ha.nodes] == [150, 90]
    assert scn.ha.vrrp.garp_master_repeat == 5 and scn.ha.vrrp.garp_master_delay == 3.0
    # every emitted value line carries its evidence (a comment)
    body = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    valued = [ln for ln in body if ":" in ln and not ln.rstrip().endswith(":")
              and ln.split(":")[0].strip("- ").strip() not in ("name", "description", "seed", "replications", "node", "at")]
    assert all("#" in ln for ln in valued), [ln for ln in valued if "#" not in ln]
    # `simsip run` takes it unchanged
    cfg = tmp_path / "scenario.yaml"
    r = CliRunner().invoke(app, ["trace", "infer", str(main_capture[0]), "--out", str(cfg)])
    assert r.exit_code == 0, r.output
    doc = yaml.safe_load(cfg.read_text())
    doc["duration"], doc["replications"] = "60s", 1  # shorter run, the same scenario otherwise
    doc["faults"] = []
    short = tmp_path / "short.yaml"
    short.write_text(yaml.safe_dump(doc))
    r = CliRunner().invoke(app, ["run", str(short), "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "summary.json").is_file()


# --------------------------------------------------------------------------- real captures: VLAN, IPv6, several files
def vlan(ip_packet: bytes) -> bytes:
    return MAC_B + MAC_A + struct.pack("!HH", 0x8100, 42) + struct.pack("!H", 0x0800) + ip_packet


def test_vlan_tags_ipv6_and_several_files(tmp_path):
    spec = FleetSpec(phones=8, keepalive=None, fraction=0.7)
    a = write(tmp_path, "vlan", fleet_frames(spec, RegistrarSpec(), 500.0, link=vlan))
    six = FleetSpec(ua="Linphone/5.2.0 (belle-sip/5.2.0)", phones=6, subnet="10.0.9.", keepalive=None, fraction=0.9, seed=3)
    b = write(tmp_path, "six", fleet_frames(six, RegistrarSpec(), 500.0, ipv6=True), "pcapng")
    inf = infer_scenario([a, b])
    v, l6 = fleet(inf, "Yealink"), fleet(inf, "Linphone")
    assert v.phones == 8 and abs(v.refresh_fraction.value - 0.7) < 0.01
    assert l6.phones == 6 and l6.profile == "linphone" and abs(l6.refresh_fraction.value - 0.9) < 0.01
    load_config_text(inf.scenario_yaml())


def test_tcp_fleet_reassembled(tmp_path):
    from trace_builders import tcp

    frames = []
    seq_phone, seq_srv = 1000, 5000
    t = 0.0
    for k in range(6):
        reg = sip_register("tcp1", "10.0.3.1", "tcp-call", k + 1, f"z9hG4bK-t{k}", 60, "MicroSIP/3.21.3", transport="TCP")
        ok = sip_response("tcp1", "10.0.3.1", "tcp-call", k + 1, f"z9hG4bK-t{k}", 200, 60, transport="TCP")
        frames.append((T0 + t, ether(tcp("10.0.3.1", 40000, VIP, 5060, seq_phone, reg[:70]))))
        frames.append((T0 + t + 0.0001, ether(tcp("10.0.3.1", 40000, VIP, 5060, seq_phone + 70, reg[70:]))))
        frames.append((T0 + t + 0.003, ether(tcp(VIP, 5060, "10.0.3.1", 40000, seq_srv, ok))))
        seq_phone += len(reg)
        seq_srv += len(ok)
        for j in (1, 2):  # CRLF keep-alives on the connection every 12 s
            frames.append((T0 + t + 12.0 * j, ether(tcp("10.0.3.1", 40000, VIP, 5060, seq_phone, b"\r\n\r\n"))))
            seq_phone += 4
        t += 0.003 + 60 * 0.5
    (f,) = infer_scenario(write(tmp_path, "tcp", frames)).fleets
    assert (f.transport, f.profile, f.phones) == ("tcp", "microsip", 1)
    assert f.refresh_fraction.n == 5 and abs(f.refresh_fraction.value - 0.5) < 1e-3
    assert f.keepalive_kind == "crlf" and f.keepalive_interval.quantiles[0] == pytest.approx(12.0, abs=1e-3)


def test_heartbeat_and_corosync_are_recognised(tmp_path):
    hb = [(T0 + k, ether(udp(NODE_A, 694, NODE_B, 694, b"t=status"))) for k in range(5)]
    inf = infer_scenario(write(tmp_path, "hb", hb))
    assert inf.ha.stack == "heartbeat" and "(heartbeat traffic seen)" in inf.scenario_yaml()
    cs = [(T0 + k, ether(udp(NODE_A, 5405, NODE_B, 5405, b"\x00" * 40))) for k in range(5)]
    assert infer_scenario(write(tmp_path, "cs", cs)).ha.stack == "pacemaker"


# --------------------------------------------------------------------------- the recorded lab runs
def _lab_truth(run: str):
    return load_config(LAB / run / "config.yaml")


def _advertised(cfg, ok: bool) -> list[int]:
    """The priorities a scenario's nodes advertise with their check passing (``ok``) or failing
    (keepalived vrrp_track.c through simsip.protocols.vrrp): what a capture can show of them."""
    from simsip.protocols.vrrp import effective_priority

    hc = cfg.ha.health_check
    add = hc.contribution(ok) if hc is not None else 0
    return [effective_priority(n.priority, n.priority + add) for n in cfg.ha.nodes]


@pytest.mark.parametrize("run", LAB_RUNS)
def test_lab_runs_match_their_config(run):
    truth = _lab_truth(run)
    inf = infer_scenario(LAB / run, measure=False)
    scn = load_config_text(inf.scenario_yaml(run))
    f = next(x for x in inf.fleets if x.user_agent == "simsip-lab")  # the SIPp fleet (baresip UAs are their own)
    assert len(inf.fleets) == len(truth.fleets)
    tf = truth.fleets[0]
    # a phone is seen by its REGISTERs: a capture shorter than one refresh interval R misses the phones
    # that do not refresh inside it (the lab's capture starts 3 s before t=0 and ends with the run)
    R = tf.phone.refresh.interval(tf.phone.expires)
    span = inf.duration  # seconds of capture
    missing = max(0.0, tf.count * (R - span) / R)
    assert tf.count - math.ceil(missing) - 1 <= f.phones <= tf.count
    if missing == 0:
        assert f.phones == tf.count
    assert f.requested_expires.value == tf.phone.expires == f.granted_expires.value
    if f.refresh_fraction.observed:  # refresh point within 0.5 % of the expiry
        assert abs(f.refresh_fraction.value * tf.phone.expires - tf.phone.refresh.interval(tf.phone.expires)) \
            < 0.005 * tf.phone.expires
    else:  # a run shorter than two refreshes says so, and the profile's value is used
        assert "not observed" in inf.scenario_yaml() and "refresh: from profile generic-udp" in inf.scenario_yaml()
    if f.t1.observed:
        assert abs(f.t1.value - tf.phone.timers.t1) < 0.01
    assert inf.ha.version == truth.ha.vrrp.version and inf.ha.advert_int.value == truth.ha.vrrp.advert_int
    # what the wire shows is the advertised priority: the configured one plus a passing check's weight
    seen = sorted(inf.ha.priorities.values(), reverse=True)
    truth_prios = _advertised(truth, ok=True)
    if len(seen) == len(truth_prios):
        assert seen == truth_prios
        assert _advertised(scn, ok=True) == truth_prios
    else:  # the backup's adverts never reach the capture; its priority is an assumption, said so
        assert seen == truth_prios[:1] and "the backup never advertised" in inf.scenario_yaml()
        assert _advertised(scn, ok=True)[0] == truth_prios[0]
    assert scn.registrar.data == ("replicated" if truth.registrar.data == "replicated" else "none")
    assert [x.kind for x in scn.faults] == [x.kind for x in truth.faults]
    assert all(abs(x.at - y.at) < 0.1 for x, y in zip(scn.faults, truth.faults))  # applied a few ms late
    assert scn.fleets[0].phases == tf.phases
    # a master that releases the VIP itself (priority-0 advert), or changes its advertised priority, had a
    # track_script
    assert (scn.ha.health_check is not None) == (truth.ha.health_check is not None)
    hc, th = scn.ha.health_check, truth.ha.health_check
    if th is not None and th.weight == 0:
        assert (hc.kind, hc.interval, hc.fall, hc.rise) == (th.kind, th.interval, th.fall, th.rise)
    if th is not None and th.weight != 0:
        # a weighted check: the master's priority with its check failing is the truth's, and so is whether
        # it falls below the backup's (the weight covers the gap) — the check's timing is one detection on
        # the wire, not identifiable (interval, fall and rise are keepalived's defaults, said so)
        assert hc.weight != 0 and inf.ha.weight.n >= 1
        assert _advertised(scn, ok=False)[0] == _advertised(truth, ok=False)[0]
        # the backup takes over when the weight covers the gap and it preempts; a capture in which the VIP
        # stays shows one of the two failed, not which (nopreempt-weight: covers, nopreempt)
        def moves(cfg) -> bool:
            return _advertised(cfg, ok=False)[0] < _advertised(cfg, ok=True)[1] and cfg.ha.vrrp.preempt

        assert moves(scn) == moves(truth)
        if moves(truth):
            assert any("covers the gap" in e and "the VIP moved" in e for e in inf.ha.weight_evidence)
        assert "from the keepalived defaults because not observed" in inf.scenario_yaml()
    else:
        assert not inf.ha.weight.observed  # negative control: constant priorities infer no weight
    # preempt or not, where a failback shows it (a node with a higher priority than the master's restarts)
    pre = inf.ha.preempt["preempt"]
    if pre is not None:
        assert scn.ha.vrrp.preempt == truth.ha.vrrp.preempt == pre
    if pre is None or pre is True:
        assert scn.ha.vrrp.preempt_delay == truth.ha.vrrp.preempt_delay == 0
    assert next(x for x in scn.fleets if x.count == f.phones)


_HC_EDGE = pytest.mark.xfail(strict=True, reason=(
    "the health check's exec_time is not on the wire (inferred 0): the lab's VIP moved 1.61 s after the crash, "
    "a full 1 s check interval plus the script's run time plus Skew_Time, just above the forecast's 90 % interval "
    "(0.67-1.57 s) — the same miss as the configured scenario's (simsip.validate.EXPLAINED_MISSES)"))


_NO_REFRESH = pytest.mark.xfail(strict=True, reason=(
    "the shipped capture starts 3 s before the fault window and no phone refreshes twice in it: the refresh "
    "point is not observed, the inferred scenario takes generic-udp's, and the forecast's first 200 OK "
    "times follow that wrong rule"))
_NO_DB = pytest.mark.xfail(strict=True, reason=(
    "the lab's capture keeps SIP, VRRP and ARP only: the PostgreSQL traffic of the shared location table is not "
    "in it, so the inferred scenario is memory-only and forecasts every binding lost at the failover"))
#: runs whose capture lacks what the forecast needs (or that the forecast misses with the true scenario too)
_ROUND_TRIP_XFAIL = {"process-crash-healthcheck": _HC_EDGE, "dmq": _NO_REFRESH, "shared-db-crash": _NO_DB}


_INFERRED_LOSS = pytest.mark.xfail(strict=True, reason=(
    "the lab's second outage (4 538 phone·s) lies in the tail of the predictive distribution: with the inferred "
    "file's seed 1 the 100 replications' interval ends at 4 526 (the lab at its 97th percentile); the same inferred "
    "scenario with the configured file's seed 31 gives the configured forecast exactly (median 4 502, interval "
    "4 488-4 539) and passes. What infer reads (preempt, no preempt_delay: the node took the VIP back 0.13 s beyond "
    "its Master_Down_Interval) is right; the miss is the seed's, not the inference's"))
#: runs the configured scenario's forecast misses but the inferred one does not, and why
#: (tcp-baresip-crash was one until the baresip profile got libre's reset handling, transport_reset)
_INFERENCE_HELPS = {
    "weighted-check-moves": "not a better model but the phase: the inferred check is keepalived's defaults (fall 1; "
                            "the lab's fall 2 at 1 s is one detection on the wire, not identifiable), one check "
                            "interval sooner than the configured one, and this run's VIP move (3.74 s after the "
                            "kill) came early in the configured model's spread, so the inferred median lands "
                            "within ±0.5 s of it; the weight (200 -> 150 under the backup's 170) is read right",
}
_ROUND_TRIP_XFAIL["failback-preempt"] = _INFERRED_LOSS
_ROUND_TRIP_XFAIL["dmq-sync-burst"] = pytest.mark.xfail(strict=True, reason=(
    "the capture holds REGISTERs of only 192 of the 400 phones (a 100 s refresh interval, a 48 s capture), so the "
    "inferred fleet is 192 phones and phone·s, peak REGISTER rate and retransmissions come out at half the lab's; "
    "and the inferred registrar's sync does not go through the receiver's socket (0 RcvbufErrors against 57). "
    "The configured scenario's forecast passes"))


def _round_trip_params():
    from simsip.validate import EXPLAINED_MISSES

    out = []
    for r in LAB_RUNS:
        if r in EXPLAINED_MISSES and r not in _INFERENCE_HELPS:
            out.append(pytest.param(r, marks=pytest.mark.xfail(strict=True, reason=f"the forecast misses it with the "
                                                                 f"configured scenario too: {EXPLAINED_MISSES[r]}")))
        elif r in _ROUND_TRIP_XFAIL:
            out.append(pytest.param(r, marks=_ROUND_TRIP_XFAIL[r]))
        else:
            out.append(r)
    return out


def test_reliable_timeout_wait_counts_from_timer_f():
    """Over TCP/TLS no copy of a REGISTER is ever due (Timer E is for unreliable transports): an unanswered
    one ends at Timer F, and the wait to the next REGISTER counts from there. The baresip UAs of
    tcp-baresip-crash (reset, unnoticed by libre) then waited libre's failwait(1), 30-60 s, not 62-88 s."""
    inf = infer_scenario(LAB / "tcp-baresip-crash", measure=False)
    b = next(f for f in inf.fleets if f.transport == "tcp")
    w = b.timeout_wait
    assert w.n == 8
    assert 30.0 <= w.quantiles[0] and w.quantiles[-1] <= 60.0, w


@pytest.mark.slow
@pytest.mark.parametrize("run", _round_trip_params())
def test_round_trip_infer_simulate_validate(run, tmp_path):
    from simsip.validate import validate

    cfg = tmp_path / "inferred.yaml"
    cfg.write_text(infer_scenario(LAB / run, measure=False).scenario_yaml(run))
    report = validate(cfg, LAB / run)  # the forecast of the same run, 100 replications
    gated = report.table[report.table["pass"].notna()]
    assert gated["pass"].all(), report.table.to_string()


# --------------------------------------------------------------------------- errors
def test_not_a_capture_is_a_located_error(tmp_path):
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"hello world, not a capture")
    with pytest.raises(TraceError, match="not a packet capture"):
        infer_scenario(bad)
    r = CliRunner().invoke(app, ["trace", "infer", str(bad)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["trace", "infer", str(tmp_path / "missing.pcap")])
    assert r.exit_code == 2 and "no such file" in r.output


# --------------------------------------------------------------------------- large captures: streamed, pages released
def test_memory_mapped_reading_gives_the_same_answers(main_capture, inferred, monkeypatch, tmp_path):
    """A capture above the mapping threshold is read through mmap and its read pages are released
    as it goes (benchmarks/infer_memory.py measures the resident set); the answers do not change."""
    import simsip.trace.pcap as pcap
    from simsip.trace import import_trace

    released = []
    real = pcap._release

    def spy(data, done, pos):
        out = real(data, done, pos)
        if out != done:
            released.append(out)
        return out

    monkeypatch.setattr(pcap, "_MAP_THRESHOLD", 1)
    monkeypatch.setattr(pcap, "_RELEASE_STEP", 4096)
    monkeypatch.setattr(pcap, "_release", spy)
    again = infer_scenario(main_capture[0])
    assert released, "no page was released"
    assert again.scenario_yaml("x") == inferred.scenario_yaml("x")
    pcap_file = write(tmp_path, "small", vrrp_pair(30.0, crash=None))
    assert len(import_trace(pcap_file).events) == 30


# --------------------------------------------------------------------------- registrar rules, NAT, OPTIONS keep-alives
def test_min_expires_423_grant_cap_nat_and_options_keepalives(tmp_path):
    """Ten AORs behind one NAT address (distinct ports); each first asks for 30 s and gets 423 with
    Min-Expires 90, then asks for 3600 s and is granted 600 s (max_expires); OPTIONS pings every 25 s."""
    nat, frames = "192.0.2.7", []

    def pkt(t, src, sport, dst, dport, payload):
        frames.append((T0 + t, ether(udp(src, sport, dst, dport, payload))))

    for k in range(10):
        aor, port, cid = f"nat{k}", 20000 + k, f"nat{k}-c"
        t = 3.0 * k
        pkt(t, nat, port, VIP, 5060, sip_register(aor, nat, cid, 1, f"z9hG4bK-n{k}-1", 30, "Grandstream GXP2170 1.0.11.23"))
        pkt(t + 0.001, VIP, 5060, nat, port, sip_response(aor, nat, cid, 1, f"z9hG4bK-n{k}-1", 423, min_expires=90))
        cseq = 2
        t += 0.05
        while t < 3000:
            br = f"z9hG4bK-n{k}-{cseq}"
            pkt(t, nat, port, VIP, 5060, sip_register(aor, nat, cid, cseq, br, 3600, "Grandstream GXP2170 1.0.11.23"))
            pkt(t + 0.001, VIP, 5060, nat, port, sip_response(aor, nat, cid, cseq, br, 200, 600))
            for j in range(1, 20):
                if 25.0 * j < 0.9 * 600:
                    ping = (f"OPTIONS sip:{VIP} SIP/2.0\r\nVia: SIP/2.0/UDP {nat}:{port};branch=z9hG4bK-o{k}-{cseq}-{j}\r\n"
                            f"From: <sip:{aor}@{VIP}>;tag=o\r\nTo: <sip:{VIP}>\r\nCall-ID: o{k}-{cseq}-{j}\r\n"
                            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
                    pkt(t + 25.0 * j, nat, port, VIP, 5060, ping)
            cseq += 1
            t += 0.001 + 0.9 * 600
    inf = infer_scenario(write(tmp_path, "nat", frames))
    (f,) = inf.fleets
    assert (f.phones, f.addresses, f.profile) == (10, 1, "grandstream")
    assert inf.registrar.min_expires.value == 90 and inf.registrar.min_expires.n == 10
    assert inf.registrar.max_expires == 600
    assert abs(f.refresh_fraction.value - 0.9) < 1e-3
    assert f.error_waits == {}  # a 423 is answered at once with a longer expiry: not a failure
    assert f.keepalive_kind == "options" and abs(f.keepalive_interval.value - 25.0) < 0.01
    scn = load_config_text(inf.scenario_yaml())
    assert scn.registrar.min_expires == 90 and scn.registrar.max_expires == 600
    assert scn.fleets[0].phone.keepalive.kind == "options"


def test_split_brain_and_priority_zero_release(tmp_path):
    """Both nodes advertise from 100 s to 130 s (split brain: no change of master is counted); at
    200 s the master sends a priority-0 advert and the backup takes over after its Skew_Time."""
    frames = []
    for k in range(300):
        t = 0.2 + k
        if t < 200:
            frames.append((T0 + t, ether(vrrp(NODE_A, 2, 51, 150, 1))))
        if 100 <= t < 130:
            frames.append((T0 + t + 0.3, ether(vrrp(NODE_B, 2, 51, 90, 1))))
    frames.append((T0 + 200.0, ether(vrrp(NODE_A, 2, 51, 0, 1))))
    skew = (256 - 90) / 256
    for k in range(90):
        frames.append((T0 + 200.0 + skew + k, ether(vrrp(NODE_B, 2, 51, 90, 1))))
    inf = infer_scenario(write(tmp_path, "sb", frames))
    h = inf.ha
    (dual,) = h.dual_masters
    assert abs(dual["start"] - 100.3) < 0.01 and abs(dual["end"] - 129.3) < 0.01  # B: 100.5–129.5 s, less the first packet's 0.2 s
    (change,) = h.master_changes
    assert change["old"] == NODE_A and change["new"] == NODE_B and abs(change["silence"] - skew) < 1e-3
    assert h.priority_zero == 1
    (fault,) = inf.faults
    assert fault["kind"] == "process_crash" and abs(fault["at"] - 199.3) < 0.01  # capture clock: first packet at 0.2 s
    scn = load_config_text(inf.scenario_yaml())
    assert scn.ha.health_check is not None and scn.faults[0].kind == "process_crash"


@pytest.mark.parametrize("rule", ["margin", "percent"])
def test_margin_or_percent_told_apart_when_grants_differ(rule, tmp_path):
    """The registrar grants 300, 450 or 600 s (three groups of phones, one User-Agent): phones that
    refresh 30 s before expiry (margin) and phones that refresh at 80 % (percent) are told apart."""
    frames = []
    for i, granted in enumerate((300, 450, 600)):
        fraction = 1 - 30 / granted if rule == "margin" else 0.8
        spec = FleetSpec(phones=6, subnet=f"10.0.{20 + i}.", expires=600, granted=granted, fraction=fraction,
                         jitter=0.0, keepalive=None, seed=i)
        frames += fleet_frames(spec, RegistrarSpec(), 3000.0)
    (f,) = infer_scenario(write(tmp_path, rule, frames)).fleets
    assert f.refresh_mode == rule
    if rule == "margin":
        assert abs(f.refresh_margin.value - 30.0) < 0.01
    else:
        assert abs(f.refresh_fraction.value - 0.8) < 1e-3
    assert inf_rule_line(f, tmp_path, frames) == rule


def inf_rule_line(f, tmp_path, frames) -> str:
    scn = load_config_text(infer_scenario(write(tmp_path, "again", frames)).scenario_yaml())
    return scn.fleets[0].phone.refresh.mode


def test_report_page_draws_the_weight_and_the_failback(tmp_path):
    from simsip.report.infer_page import inference_panels, render_inference_report

    inf = infer_scenario(write(tmp_path, "moves", weighted_pair(120.0)))
    panel = {p.name: p for p in inference_panels(inf)}["vrrp_timeline"]
    assert panel.figure is not None and "|w| = 20" in panel.caption and "Failback: preempt" in panel.caption
    assert {t.name for t in panel.figure.data} == {NODE_A, NODE_B}
    text = render_inference_report(inf, "moves")
    assert 'id="fig-vrrp_timeline"' in text and "wait_streak" not in text  # no failure retried here
    calm = infer_scenario(write(tmp_path, "calm", vrrp_pair(30.0, crash=None)))
    panel = {p.name: p for p in inference_panels(calm)}["vrrp_timeline"]
    assert "No weighted check" in panel.caption and "preempt not observed" in panel.caption


# --------------------------------------------------------------------------- persistence across a restart
@pytest.mark.parametrize("run, verdict", [
    ("failback-write-through", "write_through"),  # usrloc db_mode 1 on both nodes
    ("failback-preempt", "memory"),  # the negative control: memory-only, the same shape of fault
    ("weighted-check-misses", "memory"),  # a registrar process restarted, memory-only
])
def test_bindings_that_survive_a_restart_are_read_as_persistence(run, verdict):
    """After a recorded restart the node answers the prober's OPTIONS: 200 for AORs that sent it no
    REGISTER since the fault means their bindings came from its table. The lab's configured db_mode
    is the truth; a replicating pair is not read (a DMQ sync fills the restarted node too)."""
    inf = infer_scenario(LAB / run, measure=False)
    pe = inf.registrar.persistence
    assert pe is not None and pe["verdict"] == verdict, pe
    if verdict == "memory":
        assert pe["kept"] == 0 and pe["lost"] > 50
        assert "persistence: write_through" not in inf.scenario_yaml(run)
    else:
        assert pe["aors"] > 100 and "persistence: write_through" in inf.scenario_yaml(run)
    dmq = infer_scenario(LAB / "dmq-failback", measure=False).registrar.persistence
    assert dmq is not None and dmq["kept"] > 0 and dmq["verdict"].startswith("not read")
