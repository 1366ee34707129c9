"""Validation: does the simulator reproduce what the real lab measured?

A recorded lab run (``simsip lab run``, or the shipped ones in ``examples/lab/``) is ground truth
for one scenario: a packet capture on the lab's bridge, the OPTIONS prober's answers ("does the
node holding the VIP have a binding for this phone?") and the fault times. Validation runs the
model on the *same* scenario and compares what the question of the project is about:

* **recovery time** per phone after each fault — median, p95, the whole distribution (two-sample
  Kolmogorov–Smirnov statistic between the lab's phones and the model's phones pooled over
  replications) and an overlaid CDF;
* **unreachable phone-seconds** in each fault (or repair) window;
* **VIP move time** — fault until the new VRRP master's first advert;
* **peak REGISTER rate** (new transactions per second) — shown, not gated (see below).

Making the comparison fair
--------------------------
* *Same advert phase.* A crash lands at some phase of the master's VRRP advert cycle, which decides
  the VIP move time to within one advert interval. The model is run with ``ha.vrrp.first_advert``
  taken from the capture (:func:`simsip.lab.bridge.scenario_for_lab_run`) and SIPp's even refresh
  phases (``phases: even``).
* *Same measuring instrument.* The lab knows a phone's state only at its probe times (one round
  every ``lab.probe_interval``), so a lab recovery time is "first probe that found the phone
  reachable again" minus the fault time, and an outage shorter than the probe gap can be missed.
  The model's per-phone reachability is therefore *sampled at the lab's own probe round times*
  (from ``prober.csv``) and turned into outages and recoveries by the very code the trace metrics
  use (:mod:`simsip.trace.metrics`). Lab and model numbers are both probe-quantised.
* *Calibrated, on the pre-fault part only.* :func:`calibrate` measures the one-way network delay
  and the registrar's service time from the part of the capture before the first fault and the
  model runs with them (``calibrated=True``). Nothing after the first fault is fitted.

Tolerances (fixed here, stated in every report): recovery median within max(10 %, 2 s), p95 within
max(15 %, 3 s), unreachable phone-seconds within 15 % per window, KS statistic ≤ 0.2, VIP move
time within 0.5 s per fault. The peak REGISTER rate of a 20-phone lab is a handful per second,
where one phone more or less is tens of percent: it is reported for information, not gated.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from simsip.config.schema import Scenario

__all__ = ["TOLERANCES", "ValidationReport", "calibrate", "validate", "validation_doc", "recorded_runs",
           "calibration_overrides"]

#: Gate per metric: (relative, absolute) — pass when |sim − lab| ≤ max(rel·|lab|, abs).
TOLERANCES: dict[str, tuple[float, float]] = {
    "recovery_median": (0.10, 2.0),
    "recovery_p95": (0.15, 3.0),
    "unreachable_phone_seconds": (0.15, 0.0),
    "ks_statistic": (0.0, 0.2),  # sim value itself must be ≤ 0.2
    "vip_move_time": (0.0, 0.5),
}
#: Fallback one-way delay when the capture holds no ARP request/reply pair (bridge + 2 veth hops).
DEFAULT_LAB_DELAY = 50e-6


# ------------------------------------------------------------------------------------------
# loading a recorded run
def _load_cfg(cfg: Scenario | str | Path, overrides: Sequence[str] = ()) -> Scenario:
    if isinstance(cfg, Scenario):
        return cfg
    from simsip.config.loader import load_config

    return load_config(cfg, list(overrides))


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable lab-run file ({exc})") from None


@dataclass
class _LabRun:
    run_dir: Path
    trace: Any  # TraceImport
    meta: dict
    faults: list[dict]
    t0: float  # scenario t=0 in trace seconds
    probe_grid: np.ndarray  # probe round start times, scenario seconds
    disturbances: list[tuple[float, str]]  # (scenario time, "fault"|"repair")


def _open_run(run_dir: str | Path) -> _LabRun:
    from simsip.lab.bridge import lab_t0
    from simsip.trace import import_trace

    run_dir = Path(run_dir)
    for name in ("meta.json", "faults.json", "prober.csv"):
        if not (run_dir / name).is_file():
            raise ValueError(f"{run_dir}: missing {name} (not a recorded simsip lab run)")
    meta = _json(run_dir / "meta.json")
    faults = _json(run_dir / "faults.json")
    _require_complete(run_dir, meta, faults)
    tr = import_trace(run_dir)
    t0 = lab_t0(run_dir, tr.t0_epoch)
    pr = pd.read_csv(run_dir / "prober.csv")
    rounds = pr.groupby("round")["sent_epoch"].min().sort_index().to_numpy(dtype=float)
    grid = rounds - float(meta["t0_epoch"])
    dist = sorted((float(f["scenario_time"]), "fault" if f["action"] == "fault" else "repair") for f in faults)
    return _LabRun(run_dir, tr, meta, faults, t0, grid, dist)


def _require_complete(run_dir: Path, meta: Any, faults: Any) -> None:
    """Refuse a lab run that did not reach the end of its scenario (interrupted, failed, or
    with fewer faults and repairs recorded than its spec schedules): there is nothing to validate."""
    if not isinstance(meta, dict) or not isinstance(faults, list):
        raise ValueError(f"{run_dir}: meta.json / faults.json are not a recorded simsip lab run")
    status = meta.get("status")
    if status != "ok":
        raise ValueError(f"{run_dir}: incomplete lab run (meta.json status {status!r}): it did not reach the end "
                         "of its scenario, so there is nothing to validate; record it again with simsip lab run")
    planned = (meta.get("spec") or {}).get("faults") or []
    want = sum(1 + (f.get("repair_after") is not None) for f in planned if isinstance(f, dict))
    got = sum(1 for f in faults if isinstance(f, dict) and f.get("action") in ("fault", "repair"))
    if got < want:
        raise ValueError(f"{run_dir}: incomplete lab run: {got} of the {want} faults and repairs its spec schedules "
                         "were recorded (faults.json); record it again with simsip lab run")


# ------------------------------------------------------------------------------------------
# calibration
def _arp_gaps(capture: Path, since: float, until: float) -> list[float]:
    """Request→reply gaps of ARP exchanges seen on the bridge (epoch window)."""
    import dpkt

    pending: dict[tuple[bytes, bytes], float] = {}
    gaps: list[float] = []
    with open(capture, "rb") as fh:
        for ts, buf in dpkt.pcapng.Reader(fh):
            if not since <= ts < until:
                continue
            try:
                eth = dpkt.ethernet.Ethernet(buf)
            except Exception:  # noqa: BLE001 - damaged frame
                continue
            a = eth.data
            if not isinstance(a, dpkt.arp.ARP) or a.spa == a.tpa:  # skip gratuitous ARP
                continue
            if a.op == dpkt.arp.ARP_OP_REQUEST:
                pending[(a.spa, a.tpa)] = ts
            elif a.op == dpkt.arp.ARP_OP_REPLY and (a.tpa, a.spa) in pending:
                gaps.append(ts - pending.pop((a.tpa, a.spa)))
    return gaps


def calibrate(run_dir: str | Path) -> dict:
    """Fit the network delay and the registrar service time from the pre-fault part of a run.

    Method (the capture is taken on the lab's bridge, between the phones and the nodes):

    * *one-way delay* d (phone → node): an ARP request seen on the bridge reaches its target one
      veth hop h later and the reply comes back one hop later, so the request→reply gap on the
      bridge is 2h + (kernel ARP time) ≥ 2h = d. The smallest such gap before the first fault is
      taken as d; gaps longer than half the median REGISTER round trip are replies the kernel
      held back, not delays (50 µs when no usable ARP exchange is in the capture).
    * *service time* s: a REGISTER seen on the bridge reaches the node after h, is served, and its
      200 OK is back on the bridge h later: gap = 2h + s = d + s. s is the median of (gap − d)
      over the first transmissions of REGISTERs answered 200 before the first fault, used as a
      constant (a 20-phone lab never queues, so only its level matters).

    Returns ``--set``-able overrides: ``{"network.delay": "0.000042s", "registrar.service_time":
    {"dist": "constant", "mean": "0.000310s"}}`` plus ``"_evidence"`` (sample sizes and raw
    figures, not an override).
    """
    run = _open_run(run_dir)
    first_fault = min((t for t, c in run.disturbances if c == "fault"), default=math.inf)
    until_trace = run.t0 + first_fault
    ev = run.trace.events
    vip = run.meta.get("vip")
    pre = ev[ev["time"] < until_trace]
    req = pre[(pre["kind"] == "request") & (pre["method"] == "REGISTER") & ~pre["retransmission"]]
    if vip:
        req = req[req["dst"].str.split(":").str[0] == vip]
    resp = pre[(pre["kind"] == "response") & (pre["method"] == "REGISTER") & (pre["status"] == 200)]
    first_ok = resp.groupby(["call_id", "cseq"])["time"].min()
    sent = req.groupby(["call_id", "cseq"])["time"].min()
    joined = pd.concat([sent.rename("sent"), first_ok.rename("ok")], axis=1, join="inner")
    sip_gaps = (joined["ok"] - joined["sent"]).to_numpy(dtype=float)
    sip_gaps = sip_gaps[sip_gaps >= 0]
    cap = next((f for f in run.trace.files if f.suffix == ".pcapng"), None)
    arp = _arp_gaps(cap, run.trace.t0_epoch, run.trace.t0_epoch + until_trace) if cap else []
    if not sip_gaps.size:
        raise ValueError(f"{run_dir}: no answered REGISTER before the first fault to calibrate on")
    # an ARP exchange slower than half a REGISTER round trip was not answered at once (the
    # kernel answers some requests late, e.g. while it resolves the asker itself): not a delay
    arp = [g for g in arp if 0 <= g < float(np.median(sip_gaps)) / 2]
    delay = float(min(arp)) if arp else DEFAULT_LAB_DELAY
    service = max(float(np.median(sip_gaps)) - delay, 1e-6)
    return {
        "network.delay": f"{delay:.6f}s",
        "registrar.service_time": {"dist": "constant", "mean": f"{service:.6f}s"},
        "_evidence": {
            "window": f"capture start .. first fault (scenario t={first_fault:g} s)",
            "register_pairs": int(sip_gaps.size),
            "register_gap_median_s": float(np.median(sip_gaps)),
            "register_gap_p90_s": float(np.quantile(sip_gaps, 0.9)),
            "arp_pairs": len(arp),
            "arp_gap_min_s": float(min(arp)) if arp else None,
        },
    }


def calibration_overrides(cal: dict) -> list[str]:
    """``path=value`` strings for ``--set`` / ``load_config(..., overrides)``."""
    out = []
    for k, v in cal.items():
        if k.startswith("_"):
            continue
        if isinstance(v, dict):
            out += [f"{k}.{kk}={vv}" for kk, vv in v.items()]
        else:
            out.append(f"{k}={v}")
    return out


def _apply_calibration(data: dict, cal: dict) -> None:
    data["network"]["delay"] = {"dist": "constant", "mean": cal["network.delay"]}
    data["registrar"]["service_time"] = dict(cal["registrar.service_time"])


# ------------------------------------------------------------------------------------------
# probe-sampled outages (the same code path for lab and model)
def _sampled_outages(outages: pd.DataFrame, phones: int, grid: np.ndarray) -> list[tuple[str, float, float]]:
    """Outages (phone, start, end) as the prober would see them: each phone's reachability is
    sampled at ``grid`` (reachable unless a model outage [start, end) covers the probe time)."""
    from simsip.trace.metrics import _compress, _outages

    by_phone: dict[int, list[tuple[float, float]]] = {}
    for p, s, e in zip(outages["phone"], outages["start"], outages["end"]):
        by_phone.setdefault(int(p), []).append((float(s), math.inf if pd.isna(e) else float(e)))
    timelines = {}
    for p in range(phones):
        iv = by_phone.get(p, [])
        pts = []
        for g in grid:
            down = any(s <= g < e for s, e in iv)
            pts.append((float(g), not down))
        timelines[f"p{p:06d}"] = _compress(pts)
    return _outages(timelines)


def _recoveries(outs: list[tuple[str, float, float]], disturbances: list[tuple[float, str]]) -> pd.DataFrame:
    from simsip.trace.metrics import _recovery

    rec = _recovery(outs, [t for t, _ in disturbances])
    causes = {i: c for i, (_, c) in enumerate(disturbances)}
    rec["cause"] = rec["fault"].map(causes)
    return rec


def _window_loss(outs: list[tuple[str, float, float]], disturbances: list[tuple[float, str]], end: float) -> list[float]:
    """Unreachable phone-seconds inside each disturbance window [d_i, d_{i+1}) (last: to ``end``)."""
    out = []
    for i, (t, _) in enumerate(disturbances):
        t1 = disturbances[i + 1][0] if i + 1 < len(disturbances) else end
        tot = 0.0
        for _, s, e in outs:
            e = end if math.isnan(e) else e
            tot += max(0.0, min(e, t1) - max(s, t))
        out.append(tot)
    return out


def _reachable_at(outs: list[tuple[str, float, float]], phones: int, grid: np.ndarray) -> np.ndarray:
    down = np.zeros(len(grid))
    for _, s, e in outs:
        e = math.inf if math.isnan(e) else e
        down += (grid >= s) & (grid < e)
    return phones - down


def _notify_move(run: _LabRun, t_fault: float) -> float:
    """Fault (scenario time) → first MASTER transition of another node, from the keepalived notify
    script's nanosecond timestamps recorded in meta.json (NaN when there is none)."""
    fault = next((f for f in run.faults if f["action"] == "fault"
                  and abs(float(f["scenario_time"]) - t_fault) < 1e-6), None)
    if fault is None:
        return math.nan
    epoch = float(fault["epoch"])
    # only within the run: the teardown stops the master's keepalived first, and the backup's
    # brief MASTER before its own stop is no VIP move of the fault
    t0, dur = run.meta.get("t0_epoch"), (run.meta.get("spec") or {}).get("duration")
    end = float(t0) + float(dur) if all(isinstance(v, (int, float)) for v in (t0, dur)) else math.inf
    best = math.inf
    for node, trans in (run.meta.get("transitions") or {}).items():
        if node == fault.get("node"):
            continue
        for when, state, *_ in trans:
            if state == "MASTER" and epoch <= when <= end:
                best = min(best, float(when))
    return best - epoch if math.isfinite(best) else math.nan


def _q(x: np.ndarray, q: float) -> float:
    x = x[~np.isnan(x)]
    return float(np.quantile(x, q)) if x.size else math.nan


# ------------------------------------------------------------------------------------------
@dataclass
class ValidationReport:
    """Lab vs model for one recorded run. ``table`` has one row per compared metric."""

    name: str
    run_dir: Path
    table: pd.DataFrame  # metric, lab, sim, tolerance, pass (True/False, None = not gated)
    lab_recovery: np.ndarray
    sim_recovery: np.ndarray
    reach: pd.DataFrame  # time, lab, sim_mean, sim_min, sim_max (probe grid, scenario time)
    calibration: dict | None
    scenario: Scenario
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        gated = self.table[self.table["pass"].notna()]
        return bool(gated["pass"].astype(bool).all())

    @property
    def failures(self) -> list[str]:
        bad = self.table[self.table["pass"].notna() & ~self.table["pass"].fillna(True).astype(bool)]
        return list(bad["metric"])

    def figures(self) -> dict:
        """Plotly figures: ``cdf`` (recovery-time CDF, lab vs model) and ``reachable`` (phones
        reachable at the lab's probe times, lab vs model mean with min–max band)."""
        import plotly.graph_objects as go

        def ecdf(x: np.ndarray):
            x = np.sort(x[~np.isnan(x)])
            return x, np.arange(1, x.size + 1) / max(x.size, 1)

        cdf = go.Figure()
        lx, ly = ecdf(self.lab_recovery)
        sx, sy = ecdf(self.sim_recovery)
        cdf.add_trace(go.Scatter(x=sx, y=sy, mode="lines", line_shape="hv",
                                 name=f"model ({sx.size} phone-recoveries, pooled)"))
        cdf.add_trace(go.Scatter(x=lx, y=ly, mode="lines+markers", line_shape="hv",
                                 name=f"lab ({lx.size} phones)"))
        cdf.update_layout(title=f"{self.name}: recovery time after the fault (probe-quantised)",
                          xaxis_title="seconds from fault to reachable", yaxis_title="fraction of affected phones",
                          template="plotly_white")
        r = self.reach
        reach = go.Figure()
        reach.add_trace(go.Scatter(x=r["time"], y=r["sim_max"], mode="lines", line_width=0,
                                   showlegend=False, hoverinfo="skip"))
        reach.add_trace(go.Scatter(x=r["time"], y=r["sim_min"], mode="lines", line_width=0, fill="tonexty",
                                   name="model min–max over replications"))
        reach.add_trace(go.Scatter(x=r["time"], y=r["sim_mean"], mode="lines", name="model mean"))
        reach.add_trace(go.Scatter(x=r["time"], y=r["lab"], mode="lines+markers", line_shape="hv", name="lab"))
        reach.update_layout(title=f"{self.name}: phones reachable at the probe times",
                            xaxis_title="scenario time (s)", yaxis_title="phones reachable", template="plotly_white")
        return {"cdf": cdf, "reachable": reach}

    def to_markdown(self) -> str:
        rows = ["| metric | lab | sim | tolerance | pass |", "|---|---:|---:|---|---|"]
        for m, lab, sim, tol, ok in self.table[["metric", "lab", "sim", "tolerance", "pass"]].itertuples(index=False):
            mark = "–" if ok is None or (isinstance(ok, float) and math.isnan(ok)) else ("✅" if ok else "❌")
            rows.append(f"| {m} | {_fmt(lab)} | {_fmt(sim)} | {tol} | {mark} |")
        return "\n".join(rows)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.3g}" if abs(float(v)) < 1000 else f"{float(v):,.0f}"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(float(v)))


def _gate(metric: str, lab: float, sim: float) -> tuple[str, bool]:
    """(tolerance text, pass). A gated metric that cannot be computed on either side (no phone
    recovered, no VIP move, no fault reached) is a failure, never a pass."""
    rel, ab = TOLERANCES[metric]
    if metric == "ks_statistic":  # the model-vs-lab statistic itself (its "lab" column is empty)
        return f"≤ {ab:g}", bool(not _missing(sim) and sim <= ab)
    if _missing(lab) or _missing(sim):
        return _tol_text(rel, ab) + " (not computable: fails)", False
    return _tol_text(rel, ab), bool(abs(sim - lab) <= max(rel * abs(lab), ab) + 1e-9)


def _tol_text(rel: float, ab: float) -> str:
    if rel and ab:
        return f"±max({rel * 100:g} %, {ab:g} s)"
    if rel:
        return f"±{rel * 100:g} %"
    return f"±{ab:g} s"


def validate(
    cfg: Scenario | str | Path,
    run_dir: str | Path,
    replications: int = 20,
    calibrated: bool = True,
    overrides: Sequence[str] = (),
    align: bool = True,
) -> ValidationReport:
    """Compare the simulator with the recorded lab run in ``run_dir`` (see the module docstring)."""
    from scipy.stats import ks_2samp

    from simsip.api import simulate
    from simsip.lab.bridge import refresh_phase_shift, scenario_for_lab_run
    from simsip.lab.topology import ADDR, VIP
    from simsip.trace import trace_metrics

    base = _load_cfg(cfg, overrides)
    run = _open_run(run_dir)
    names = [n.name for n in base.ha.nodes]
    lab_names = {ADDR["a"]: names[0], ADDR["b"]: names[1] if len(names) > 1 else "b"}
    dur = float(base.duration)
    dists = run.disturbances
    notes: list[str] = []

    # ---- lab
    tm = trace_metrics(run.trace.events, vip=run.meta.get("vip", VIP), faults=[run.t0 + t for t, _ in dists],
                       registrar_nodes=lab_names, end=run.t0 + dur)
    if tm.reachability_source != "probe":
        raise ValueError(f"{run_dir}: the capture holds no prober answers (source {tm.reachability_source})")
    n_phones = base.phones
    grid = run.probe_grid[(run.probe_grid >= 0) & (run.probe_grid < dur)]

    def snap(t: float) -> float:
        """A probe's send time → its round's start (the probes of one round go out within ms of
        each other; the model is sampled at the round starts)."""
        if math.isnan(t):
            return t
        i = int(np.searchsorted(run.probe_grid, t + 1e-6, side="right")) - 1
        return float(run.probe_grid[i]) if i >= 0 else t

    lab_outs = [(p, snap(s - run.t0), snap(e - run.t0)) for p, s, e in
                zip(tm.outages["phone"], tm.outages["start"], tm.outages["end"]) if s - run.t0 >= 0]
    lab_rec = _recoveries(lab_outs, dists)
    lab_rt = lab_rec.loc[lab_rec["cause"] == "fault", "recovery_time"].to_numpy(dtype=float)
    lab_loss = _window_loss(lab_outs, dists, dur)
    lab_moves = tm.faults["vip_move_time"].to_numpy(dtype=float, copy=True)
    for i, (t, cause) in enumerate(dists):
        if cause == "fault" and i < len(lab_moves) and math.isnan(lab_moves[i]):
            alt = _notify_move(run, t)
            if not math.isnan(alt):
                lab_moves[i] = alt
                notes.append(f"lab VIP move of fault {i} from keepalived's notify timestamps (meta.json "
                             "transitions): the capture holds no advert of the new master (a partition "
                             "drops the unicast adverts inside the nodes)")
    ev = run.trace.events
    regs = ev[(ev["kind"] == "request") & (ev["method"] == "REGISTER") & ~ev["retransmission"]]
    rt_s = regs["time"].to_numpy(dtype=float) - run.t0
    lab_rate = np.histogram(rt_s, bins=np.arange(0.0, math.floor(dur) + 1.0))[0]

    # ---- model
    shift = refresh_phase_shift(base, run.run_dir, trace=run.trace) if align else 0.0
    scn = scenario_for_lab_run(base, run.run_dir, trace=run.trace, shift=shift)
    sgrid = grid - shift  # the lab's probe times on the model's clock
    sgrid = sgrid[sgrid >= 0]
    data = scn.model_dump()
    cal = calibrate(run.run_dir) if calibrated else None
    if cal:
        _apply_calibration(data, cal)
    data["replications"] = int(replications)
    data["output"]["resolution"] = 1.0
    data["output"]["report"] = False
    scn = Scenario.model_validate(data)
    res = simulate(scn)
    sim_rts, sim_losses, sim_moves, sim_reach, sim_peaks = [], [], [], [], []
    for rep in range(replications):
        o = res.outages[res.outages["replication"] == rep] if len(res.outages) else res.outages
        outs = _sampled_outages(o, n_phones, sgrid)
        outs = [(p, s + shift, e + shift) for p, s, e in outs]  # back on the lab's clock
        rec = _recoveries(outs, dists)
        sim_rts.append(rec.loc[rec["cause"] == "fault", "recovery_time"].to_numpy(dtype=float))
        sim_losses.append(_window_loss(outs, dists, dur))
        sim_reach.append(_reachable_at(outs, n_phones, grid))
        f = res.faults[res.faults["replication"] == rep]
        sim_moves.append(f.loc[f["cause"] == "fault", "vip_move_time"].to_numpy(dtype=float))
        ts = res.timeseries[res.timeseries["replication"] == rep]
        sim_peaks.append(float(ts["register_tx"].max()) if "register_tx" in ts else math.nan)
    sim_rt = np.concatenate(sim_rts) if sim_rts else np.zeros(0)

    # ---- table
    rows: list[dict] = []

    def add(metric: str, key: str | None, lab: float, sim: float) -> None:
        if key is None:
            rows.append({"metric": metric, "lab": lab, "sim": sim, "tolerance": "info", "pass": None})
        else:
            tol, ok = _gate(key, lab, sim)
            rows.append({"metric": metric, "lab": lab, "sim": sim, "tolerance": tol, "pass": ok})

    add("recovery median (s)", "recovery_median", _q(lab_rt, 0.5), _q(sim_rt, 0.5))
    add("recovery p95 (s)", "recovery_p95", _q(lab_rt, 0.95), _q(sim_rt, 0.95))
    lab_clean, sim_clean = lab_rt[~np.isnan(lab_rt)], sim_rt[~np.isnan(sim_rt)]
    if lab_clean.size and sim_clean.size:
        ks = float(ks_2samp(lab_clean, sim_clean).statistic)
    elif not lab_clean.size and not sim_clean.size:
        ks = math.nan  # no recovery on either side: nothing to compare, which is not agreement
    else:
        ks = 1.0
    add("recovery KS statistic", "ks_statistic", math.nan, ks)
    add("phones affected per fault", None, float(lab_rt.size) / max(1, sum(c == "fault" for _, c in dists)),
        float(sim_rt.size) / replications / max(1, sum(c == "fault" for _, c in dists)))
    add("phones not recovered by the end", None, float(np.isnan(lab_rt).sum()),
        float(np.isnan(sim_rt).sum()) / replications)
    fault_idx = 0
    for i, (t, cause) in enumerate(dists):
        label = f"{cause} {i} @ {t:.2f} s"
        sim_w = float(np.mean([s[i] for s in sim_losses]))
        add(f"unreachable phone·s, {label}", "unreachable_phone_seconds", float(lab_loss[i]), sim_w)
        if cause == "fault":
            lab_mv = float(lab_moves[i]) if i < len(lab_moves) else math.nan
            sims = [m[fault_idx] for m in sim_moves if fault_idx < len(m)]
            sim_mv = float(np.nanmean(sims)) if sims and not all(np.isnan(sims)) else math.nan
            add(f"VIP move time, {label} (s)", "vip_move_time", lab_mv, sim_mv)
            fault_idx += 1
    add("peak new-REGISTER rate (/s, 1 s bins)", None, float(lab_rate.max()) if lab_rate.size else 0.0,
        float(np.nanmean(sim_peaks)))
    table = pd.DataFrame(rows, columns=["metric", "lab", "sim", "tolerance", "pass"])
    table["pass"] = table["pass"].astype(object)

    reach_m = np.vstack(sim_reach) if sim_reach else np.zeros((1, grid.size))
    reach = pd.DataFrame({"time": grid, "lab": _reachable_at(lab_outs, n_phones, grid),
                          "sim_mean": reach_m.mean(axis=0), "sim_min": reach_m.min(axis=0),
                          "sim_max": reach_m.max(axis=0)})
    notes.append(f"model: {replications} replications, seed {scn.seed}, first_advert "
                 f"{scn.ha.vrrp.first_advert:.3f} s, phases even"
                 + f", timeline shifted {shift:+.3f} s to align SIPp's refresh phases"
                 + (f", network.delay {cal['network.delay']}, service_time {cal['registrar.service_time']['mean']}"
                    if cal else ", uncalibrated"))
    notes.append(f"both sides sampled at the lab's {grid.size} probe rounds "
                 f"(every {base.lab.probe_interval:g} s): recovery = first probe finding the phone reachable − fault time")
    return ValidationReport(name=base.name, run_dir=run.run_dir, table=table, lab_recovery=lab_rt,
                            sim_recovery=sim_rt, reach=reach, calibration=cal, scenario=scn, notes=notes)


# ------------------------------------------------------------------------------------------
def recorded_runs(examples: str | Path = "examples/lab") -> list[tuple[Path, Path]]:
    """(config.yaml, run directory) of every recorded run (a folder with ``config.yaml`` and
    ``meta.json``) directly under ``examples``, sorted by name; empty when there are none (or no
    such directory)."""
    root = Path(examples)
    if not root.is_dir():
        return []
    return [(d / "config.yaml", d) for d in sorted(root.iterdir())
            if (d / "config.yaml").is_file() and (d / "meta.json").is_file()]


def validation_doc(
    runs: Sequence[tuple[Scenario | str | Path, str | Path]],
    out_md: str | Path = "docs/validation.md",
    fig_dir: str | Path = "docs/validation/",
    replications: int = 20,
) -> Path:
    """Validate every (config, run_dir) pair and write the markdown page with a table per run and
    the CDF / reachable overlays (PNG when kaleido is installed, else a small HTML page per run
    that loads plotly.js from its CDN — a self-contained page would carry 3.5 MB of plotly.js)."""
    out_md, fig_dir = Path(out_md), Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    try:
        import kaleido  # noqa: F401

        png = True
    except ImportError:
        png = False
    rel = fig_dir.resolve().relative_to(out_md.parent.resolve()) if fig_dir.resolve().is_relative_to(out_md.parent.resolve()) else fig_dir.resolve()
    lines = [
        "# Validation against the real lab",
        "",
        "Generated by `simsip validation-doc` (`simsip.validate.validation_doc`). Each recorded lab run in",
        "`examples/lab/` (Kamailio + keepalived + SIPp in network namespaces, see `simsip lab`) is",
        "compared with the simulator run on the same scenario: the VRRP advert phase taken from the",
        "capture, SIPp's even refresh phases, network delay and registrar service time calibrated on the",
        "pre-fault part of the capture only. The model's per-phone reachability is sampled at the lab's",
        "own probe times, so both columns are probe-quantised the same way.",
        "",
        "Tolerances: recovery median ±max(10 %, 2 s); p95 ±max(15 %, 3 s); unreachable phone-seconds",
        "±15 % per fault/repair window; two-sample KS statistic (lab phones vs model phones pooled over",
        "replications) ≤ 0.2; VIP move time ±0.5 s. Rows marked `info` are not gated.",
        "",
    ]
    summary = ["| run | result | failing metrics |", "|---|---|---|"]
    body: list[str] = []
    for cfg, run_dir in runs:
        rep = validate(cfg, run_dir, replications=replications)
        figs = rep.figures()
        name = rep.name
        summary.append(f"| {name} | {'pass' if rep.passed else 'FAIL'} | {', '.join(rep.failures) or '–'} |")
        body += [f"## {name}", "", f"Run: `{Path(run_dir)}` — {rep.scenario.description}", "", rep.to_markdown(), ""]
        body += [f"- {n}" for n in rep.notes] + [""]
        if png:
            for k, fig in figs.items():
                fig.write_image(fig_dir / f"{name}-{k}.png", width=900, height=450)
                body.append(f"![{name} {k}]({rel / f'{name}-{k}.png'})")
        else:
            html = fig_dir / f"{name}.html"
            parts = [figs["cdf"].to_html(full_html=False, include_plotlyjs="cdn"),
                     figs["reachable"].to_html(full_html=False, include_plotlyjs=False)]
            html.write_text("<!doctype html><html><head><meta charset='utf-8'><title>" + name
                            + "</title></head><body>" + "\n".join(parts) + "</body></html>\n")
            body.append(f"Overlay (recovery CDF, reachable over time): [{name}.html]({rel / f'{name}.html'})")
        body.append("")
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text("\n".join(lines + summary + [""] + body))
    return out_md
