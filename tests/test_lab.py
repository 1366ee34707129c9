"""Real-lab tests: Kamailio + keepalived + SIPp + tshark in network namespaces (root only)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces)"
    try:
        from simsip.lab import check_requirements
    except Exception as e:  # pragma: no cover - package import problem
        return f"simsip.lab not importable: {e}"
    problems = check_requirements()
    if problems:
        return "lab packages missing (run lab/install.sh): " + "; ".join(problems)
    return None


_reason = _skip_reason()
if _reason:
    pytestmark = [pytest.mark.lab, pytest.mark.skip(reason=_reason)]


# --------------------------------------------------------------------------- capture parsing
def read_capture(path: Path) -> list[dict]:
    """SIP, VRRP and ARP packets of a pcapng as dicts (time = epoch seconds)."""
    import dpkt

    rows: list[dict] = []
    with open(path, "rb") as fh:
        for ts, buf in dpkt.pcapng.Reader(fh):
            eth = dpkt.ethernet.Ethernet(buf)
            src_mac = ":".join(f"{b:02x}" for b in eth.src)
            if isinstance(eth.data, dpkt.arp.ARP):
                a = eth.data
                rows.append({"time": ts, "kind": "arp", "mac": src_mac, "op": a.op,
                             "spa": socket.inet_ntoa(a.spa), "tpa": socket.inet_ntoa(a.tpa)})
                continue
            if not isinstance(eth.data, dpkt.ip.IP):
                continue
            ip = eth.data
            src, dst = socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst)
            if ip.p == 112:
                raw = bytes(ip.data)
                rows.append({"time": ts, "kind": "vrrp", "mac": src_mac, "src": src, "dst": dst,
                             "version": raw[0] >> 4, "priority": raw[2]})
                continue
            if not isinstance(ip.data, dpkt.udp.UDP):
                continue
            text = bytes(ip.data.data).decode("latin-1")
            head, _, _ = text.partition("\r\n\r\n")
            lines = head.split("\r\n")
            first = lines[0]
            hdr: dict[str, str] = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                hdr.setdefault(k.strip().lower(), v.strip())
            cseq_n, _, cseq_m = hdr.get("cseq", "0 ?").partition(" ")
            row = {"time": ts, "kind": "sip", "mac": src_mac, "src": src, "dst": dst,
                   "call_id": hdr.get("call-id", ""), "cseq": int(cseq_n or 0), "method": cseq_m.strip(),
                   "to": hdr.get("to", ""), "branch": hdr.get("via", "").partition("branch=")[2]}
            if first.startswith("SIP/2.0"):
                row["status"] = int(first.split()[1])
            else:
                row["status"] = 0
                row["ruri"] = first.split()[1]
            row["aor"] = row["to"].split("sip:", 1)[-1].split("@", 1)[0]
            rows.append(row)
    return rows


def read_prober(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines()[1:]:
        rnd, aor, sent, status, recv = line.split(",")
        out.append({"round": int(rnd), "aor": aor, "sent": float(sent), "status": int(status),
                    "recv": float(recv) if recv else None})
    return out


def analyse(out: Path) -> dict:
    """Fault-centric numbers from one run: VIP move, first VRRP adverts, per-phone recovery."""
    meta = json.loads((out / "meta.json").read_text())
    faults = json.loads((out / "faults.json").read_text())
    pk = read_capture(out / "capture.pcapng")
    crash = next(f for f in faults if f["action"] == "fault")
    old = crash["node"]
    new = "b" if old == "a" else "a"
    old_ip, new_ip = meta["addresses"][old], meta["addresses"][new]
    new_mac = meta["macs"][new]
    tc = crash["epoch"]
    vrrp = [p for p in pk if p["kind"] == "vrrp"]
    last_old = max(p["time"] for p in vrrp if p["src"] == old_ip and p["time"] <= tc + 0.01)
    first_new = min(p["time"] for p in vrrp if p["src"] == new_ip and p["time"] > tc)
    garp_new = min(p["time"] for p in pk if p["kind"] == "arp" and p["mac"] == new_mac
                   and p["spa"] == meta["vip"] and p["time"] > tc)
    master_new = min(t for t, state, _ in meta["transitions"][new] if state == "MASTER" and t > tc)
    # per phone: first 200 to a REGISTER sent by the new master after the crash
    first_ok: dict[str, float] = {}
    for p in pk:
        if (p["kind"] == "sip" and p["status"] == 200 and p["method"] == "REGISTER"
                and p["mac"] == new_mac and p["time"] > tc):
            first_ok.setdefault(p["aor"], p["time"])
    # per phone, from the prober: first 200 after the crash (reachable again)
    probes = read_prober(out / "prober.csv")
    reach: dict[str, float] = {}
    for p in sorted(probes, key=lambda r: r["sent"]):
        if p["sent"] > tc and p["status"] == 200:
            reach.setdefault(p["aor"], p["recv"])
    return {
        "crash_epoch": tc, "old": old, "new": new, "last_old_advert": last_old,
        "first_new_advert": first_new, "advert_gap": first_new - last_old,
        "crash_to_first_advert": first_new - tc, "crash_to_garp": garp_new - tc,
        "crash_to_notify_master": master_new - tc,
        "register_ok_after": {a: t - tc for a, t in first_ok.items()},
        "reachable_after": {a: t - tc for a, t in reach.items()},
        "prio_new": meta["spec"]["priority_" + new],
        "n_phones": meta["spec"]["phones"],
    }


# --------------------------------------------------------------------------- tests
def test_topology_build_and_teardown():
    from simsip.lab import leftovers
    from simsip.lab.topology import ADDR, Topology, list_lab_namespaces

    topo = Topology("t" + os.urandom(3).hex())
    try:
        topo.create()
        assert set(topo.created) <= set(list_lab_namespaces())
        assert len(topo.created) == 5
        # the phones namespace reaches both nodes over the bridge
        r = topo.run("phones", ["ping", "-c", "1", "-W", "2", ADDR["a"]], check=False) \
            if shutil.which("ping") else None
        if r is not None:
            assert r.returncode == 0, r.stdout + r.stderr
        topo.partition()
        topo.heal()
        topo.link_down("a")
        topo.link_up("a")
    finally:
        failed = topo.destroy()
    assert failed == []
    names = [n for n in list_lab_namespaces() if n.startswith(f"simsip-{topo.run_id}-")]
    assert names == []
    assert not [n for n in leftovers()["namespaces"] if topo.run_id in n]


def test_short_failover_scenario(tmp_path):
    from simsip.lab import LabSpec, leftovers, run_lab

    run_id = "t" + os.urandom(4).hex()
    spec = LabSpec(run_id=run_id, phones=20, expires=60, refresh_fraction=0.5, advert_int=1, vrrp_version=2,
                   variant="memory", priority_a=200, priority_b=100,
                   faults=[("node_crash", "master", 40.0)], duration=90.0)
    # SIMSIP_LAB_OUT keeps the run's capture/logs somewhere that outlives pytest's tmp rotation
    base = Path(os.environ.get("SIMSIP_LAB_OUT", tmp_path))
    t = time.time()
    out = run_lab(spec, base / f"failover-{int(t)}")
    elapsed = time.time() - t
    res = analyse(out)
    (out / "analysis.json").write_text(json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if not isinstance(v, dict)}, indent=2))
    print("elapsed", round(elapsed, 1))

    # VRRPv2: the backup's first advert follows the master's last one by 3*advert + (256-p)/256
    mdi = 3 * spec.advert_int + (256 - res["prio_new"]) / 256
    assert res["advert_gap"] == pytest.approx(mdi, abs=0.3)
    # ... and so follows the crash by MDI minus the advert phase at the crash
    assert mdi - spec.advert_int - 0.3 <= res["crash_to_first_advert"] <= mdi + 0.3
    assert abs(res["crash_to_garp"] - res["crash_to_first_advert"]) < 0.3
    # every phone eventually gets a 200 from the new master, and the prober sees it reachable
    phones = {f"ph{i}" for i in range(1, spec.phones + 1)}
    assert set(res["register_ok_after"]) == phones
    assert set(res["reachable_after"]) == phones
    # memory variant: nobody is reachable before the VIP moves; all within the refresh interval
    assert min(res["reachable_after"].values()) >= res["crash_to_first_advert"] - 0.05
    assert max(res["reachable_after"].values()) <= spec.refresh_interval + spec.probe_interval + 1.0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "ok" and meta["teardown_failed_namespaces"] == []
    lo = leftovers(run_id)  # other lab runs may be going on at the same time
    assert lo["namespaces"] == [] and lo["pids"] == []
    for pid in meta["pids"].values():  # every process the run started is gone
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
