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


@pytest.fixture(autouse=True)
def _lab_requirements():
    """Skipped without root or the lab packages — failed instead under CI=true."""
    if _reason:
        from tests.conftest import missing_requirement

        missing_requirement(_reason)


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
                   "to": hdr.get("to", ""), "branch": hdr.get("via", "").partition("branch=")[2],
                   "ua": hdr.get("user-agent", ""), "contact": hdr.get("contact", "")}
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
    # the fault's advert phase is random: the runner waited U[0, advert_int) before the phones
    assert 0 <= meta["phase_delay"] < spec.advert_int
    # the kernel's UDP counters per node at t0 and at the end; the new master received datagrams
    for node in ("a", "b"):
        snmp = meta["udp_snmp"][node]
        assert {"InDatagrams", "RcvbufErrors"} <= set(snmp["t0"]) and snmp["end"]["InDatagrams"] >= snmp["t0"]["InDatagrams"]
        assert snmp["end"]["RcvbufErrors"] == 0  # 20 phones: nothing dropped
    assert meta["udp_snmp"]["b"]["end"]["InDatagrams"] > meta["udp_snmp"]["b"]["t0"]["InDatagrams"]
    assert any(s["local"].endswith(":5060") and s["rb"] > 0 for s in meta["udp_sockets"]["b"]["t0"])
    assert set(meta["kernel_rmem"]["a"]) == {"rmem_default", "rmem_max"}
    lo = leftovers(run_id)  # other lab runs may be going on at the same time
    assert lo["namespaces"] == [] and lo["pids"] == []
    for pid in meta["pids"].values():  # every process the run started is gone
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


# --------------------------------------------------------------------------- baresip UAs
def failwait_window(n: int) -> tuple[float, float]:
    """baresip/libre ``failwait``: the wait after the n-th consecutive failure (n >= 1) is
    min(1800, 30·2^min(n, 6)) s × U[0.5, 1.0] — 30–60 s after the first failure."""
    base = min(1800.0, 30.0 * 2 ** min(n, 6))
    return 0.5 * base, base


def _contact_expires(contact: str) -> float | None:
    import re

    m = re.search(r";\s*expires\s*=\s*(\d+)", contact, re.I)
    return float(m.group(1)) if m else None


def baresip_transactions(pk: list[dict], aor: str, phones_ip: str) -> list[dict]:
    """REGISTER transactions of one baresip AOR in capture order: first send, retransmissions,
    final response (time, status, sending MAC, granted expiry from the Contact)."""
    tx: dict[tuple[str, int], dict] = {}
    for p in pk:
        if p["kind"] != "sip" or p["method"] != "REGISTER" or p["aor"] != aor:
            continue
        key = (p["call_id"], p["cseq"])
        if p["status"] == 0 and p["src"] == phones_ip:
            t = tx.setdefault(key, {"cseq": p["cseq"], "first": p["time"], "sends": [], "uas": set(),
                                    "final": None})
            t["sends"].append(p["time"])
            t["uas"].add(p["ua"])
        elif p["status"] >= 200 and key in tx and tx[key]["final"] is None:
            tx[key]["final"] = {"time": p["time"], "status": p["status"], "mac": p["mac"],
                                "expires": _contact_expires(p["contact"])}
    return sorted(tx.values(), key=lambda t: t["first"])


def test_baresip_uas_refresh_and_backoff_across_master_crash(tmp_path):
    """3 real baresip UAs next to 10 SIPp phones; memory variant; the master crashes at t=18 s.

    Each UA registers before the fault with baresip's own User-Agent; after the crash it
    re-registers with the new master at its own refresh, 90 % of the granted expiry after its last
    200 (UA 1's refresh falls inside the VIP outage and is answered on a retransmission once the
    VIP moved), or — for a transaction that failed — after its RFC 5626 backoff window
    (failwait). Nothing is left behind."""
    from simsip.lab import LabSpec, leftovers, run_lab
    from simsip.lab.runner import stray_baresip_pids

    run_id = "t" + os.urandom(4).hex()
    E = 60.0
    spec = LabSpec(run_id=run_id, phones=10, baresip=3, expires=E, refresh_fraction=0.5,
                   advert_int=1, vrrp_version=2, variant="memory", priority_a=200, priority_b=100,
                   faults=[("node_crash", "master", 18.0)], duration=60.0)
    base = Path(os.environ.get("SIMSIP_LAB_OUT", tmp_path))
    t = time.time()
    out = run_lab(spec, base / f"baresip-{int(t)}")
    elapsed = time.time() - t
    meta = json.loads((out / "meta.json").read_text())
    res = analyse(out)
    pk = read_capture(out / "capture.pcapng")
    tc = res["crash_epoch"]
    end = meta["t0_epoch"] + spec.duration
    takeover = tc + res["crash_to_first_advert"]
    old_mac, new_mac = meta["macs"][res["old"]], meta["macs"][res["new"]]
    phones_ip = meta["addresses"]["phones"]
    aors = meta["baresip_aors"]
    assert aors == ["baresip001", "baresip002", "baresip003"]
    assert meta["versions"]["baresip"].startswith("baresip")
    report: dict[str, dict] = {}
    for aor in aors:
        txs = baresip_transactions(pk, aor, phones_ip)
        assert txs, f"{aor}: no REGISTER in the capture"
        # every REGISTER of the UA carries baresip's own User-Agent (a real baresip, not SIPp)
        assert all(ua.startswith("baresip") for tr in txs for ua in tr["uas"]), (aor, txs[0]["uas"])
        before = [tr for tr in txs if tr["final"] and tr["final"]["status"] == 200
                  and tr["final"]["time"] < tc and tr["final"]["mac"] == old_mac]
        assert before, f"{aor}: not registered with the old master before the crash"
        last_ok = before[-1]["final"]
        granted = last_ok["expires"]
        assert granted == E, (aor, last_ok)
        due = last_ok["time"] + 0.9 * granted
        assert tc < due < end - 2, f"{aor}: refresh due at t={due - meta['t0_epoch']:.1f} s is outside the test window"
        after = [tr for tr in txs if tr["first"] > last_ok["time"]]
        assert after, f"{aor}: no REGISTER after its last 200 before the crash"
        # its own refresh: 90 % of the granted expiry after the last 200 (libre's rwait)
        assert after[0]["first"] == pytest.approx(due, abs=0.5), (aor, after[0]["first"] - due)
        rec = {"due_after_crash": due - tc, "in_outage": tc <= due <= takeover, "failures": 0}
        # walk its transactions: each failure must be followed by a retry inside failwait's window
        fails = 0
        ok_new = None
        for i, tr in enumerate(after):
            fin = tr["final"]
            if fin is not None and fin["status"] == 200:
                ok_new = tr
                break
            fails += 1
            failed_at = fin["time"] if fin is not None else tr["first"] + 64 * 0.5  # Timer F
            lo, hi = failwait_window(fails)
            nxt = after[i + 1] if i + 1 < len(after) else None
            if nxt is None:  # the retry is due after the end of the run
                assert failed_at + lo > end - 1, (aor, "no retry although one was due")
                break
            wait = nxt["first"] - failed_at
            assert lo - 0.5 <= wait <= hi + 0.5, (aor, fails, wait, (lo, hi))
            rec.setdefault("retries", []).append({"n": fails, "wait": wait, "window": [lo, hi]})
        rec["failures"] = fails
        assert ok_new is not None, f"{aor}: never registered again after the crash"
        assert ok_new["final"]["mac"] == new_mac, f"{aor}: 200 after the crash not from the new master"
        # nobody answers before the VIP moved (memory variant: the old master is gone)
        assert ok_new["final"]["time"] >= takeover - 0.05
        if rec["in_outage"]:  # answered on a retransmission of the same transaction
            assert fails == 0 and len(ok_new["sends"]) > 1
            assert ok_new["final"]["time"] - takeover < 4.5  # T2-capped retransmission gap
        rec["registered_after_crash"] = ok_new["final"]["time"] - tc
        report[aor] = rec
    print(json.dumps(report, indent=2), "elapsed", round(elapsed, 1))
    # the design puts UA 1's refresh into the VIP outage (crash at 18 s, refresh due ≈ 19 s)
    assert report["baresip001"]["in_outage"], report["baresip001"]
    # the prober probes the baresip AORs too: reachable before the crash and again after it
    probes = read_prober(out / "prober.csv")
    for aor in aors:
        mine = [p for p in probes if p["aor"] == aor]
        assert any(p["status"] == 200 and p["sent"] < tc for p in mine), aor
        assert aor in res["reachable_after"], aor
        assert res["reachable_after"][aor] >= res["crash_to_first_advert"] - 0.05
    assert set(res["reachable_after"]) >= {f"ph{i}" for i in range(1, spec.phones + 1)}
    # nothing left behind: namespaces, processes in them, baresip UAs anywhere
    assert meta["status"] == "ok" and meta["teardown_failed_namespaces"] == []
    lo = leftovers(run_id)
    assert lo["namespaces"] == [] and lo["pids"] == []
    assert stray_baresip_pids(run_id) == []
    for name, pid in meta["pids"].items():
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), name
    assert elapsed < 150


# --------------------------------------------------------------------------- trace infer ground truth, live
def test_infer_ground_truth_live(tmp_path):
    """Record tests/data/infer-truth afresh (SIPp refresh 70 %, K=5, retry 6 s; 3 baresip UAs;
    the master's Kamailio down 6–34 s; ≈ 80 s) and infer from it: the same checks as the stored
    capture's (tests/test_infer_lab_truth.py), so a new SIPp, baresip or Kamailio is caught."""
    from simsip.config.loader import load_config
    from simsip.lab import run_scenario
    from simsip.trace import infer_scenario
    from tests.test_infer_lab_truth import DATA, assert_baresip_matches_profile, assert_sipp_matches

    base = Path(os.environ.get("SIMSIP_LAB_OUT", tmp_path))
    out = run_scenario(DATA / "config.yaml", base / f"infer-truth-{int(time.time())}")
    inf = infer_scenario(out)
    assert_sipp_matches(inf, load_config(DATA / "config.yaml"))
    assert_baresip_matches_profile(inf)
