#!/usr/bin/env python
"""simsip performance benchmark (issue 8): everything measured in one run of this script.

    python benchmarks/bench.py            # full: 50 k throughput ×5, 1 M failover, sweep, 10k/100k/1M growth
    python benchmarks/bench.py --quick    # ×3 throughput, 200 k failover, 10k/100k/200k growth
    python benchmarks/bench.py --profile  # also a cProfile of the failover scenario (200 k phones)

Sections (see benchmarks/README.md):

1. throughput: bare SimPy (benchmarks/baseline.py: one process per phone, one round-trip timeout
   per refresh) and simsip (full model: registrar queue, binding store, records) on the same
   workload, interleaved bare, simsip, bare, simsip, ...; registrations/s of each, the median of
   the per-pair ratios simsip/bare; simsip's metrics time is reported apart.
2. failover: N phones × 1 h, one node crash of the VIP master at 30 min (UDP phones, no
   replication), in a fresh child process per repeat: build+start, event loop, metrics, peak RSS
   (``os.wait4`` rusage of the child). Paired with bare SimPy on the same fleet-hour (reference).
3. sweep: ``simsip.sweep`` with 8 points × 2 replications on 1 and on 2 worker processes.
4. growth: the failover scenario at 10 k / 100 k / 1 M phones (child process each): time, peak
   RSS, µs per registration, bytes per phone, and whether cost per phone stays flat.

The machine is shared and noisy: medians and ratios are the verdict, never one absolute time.
Results are printed as tables and written to ``benchmarks/results-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

GIB = 1024**3
MIB = 1024**2

# targets of issue 8
TARGET_RATIO = 0.50  # simsip registrations/s ≥ 50 % of bare SimPy
TARGET_1M_S = 30.0  # 1 M-phone failover hour ≤ 30 s
TARGET_1M_BYTES = 1.5 * GIB  # ... and ≤ 1.5 GiB peak RSS
TARGET_SPEEDUP = 1.8  # sweep on 2 workers vs 1
# targets of issue 15 (bulk refreshes)
TARGET_BULK_RATIO = 5.0  # simsip registrations/s ≥ 5× bare SimPy, identical records to the exact engine
TARGET_DAY_S = 30.0  # 1 M phones × 24 h, two master crashes with repair and preemption
TARGET_DAY_BYTES = 1.5 * GIB
TARGET_BIG_S = 90.0  # 10 M phones × 1 h, one failover
TARGET_BIG_BYTES = 8 * GIB
TARGET_PLAN_S = 600.0  # planner: ≥ 500 simulated points of a 100 k-phone fleet × 10 replications, 2 workers


# ----------------------------------------------------------------------------- workloads
def throughput_yaml(phones: int, expires: float, duration: float, delay: float, workers: int, service: float) -> str:
    return f"""
name: bench-throughput
seed: 1
duration: {duration}s
fleets:
  - {{name: f, count: {phones}, profile: generic-udp, phone: {{expires: {expires}s}}}}
registrar:
  profile: kamailio
  data: none
  workers: {workers}
  service_time: {{dist: exponential, mean: {service}s}}
network: {{delay: {{dist: constant, mean: {delay}s}}}}
ha: {{profile: keepalived}}
output: {{per_phone: false, report: false}}
"""


def failover_yaml(phones: int) -> str:
    """N UDP phones, expires 3600 s (refresh at 90 %), 1 h, the master node crashes at 30 min."""
    return f"""
name: bench-failover
seed: 1
duration: 1h
fleets:
  - {{name: f, count: {phones}, profile: generic-udp, phone: {{expires: 3600s}}}}
registrar: {{profile: kamailio, data: none}}
ha: {{profile: keepalived}}
faults: [{{kind: node_crash, node: master, at: 30min}}]
output: {{per_phone: false, report: false}}
"""


def day_yaml(phones: int, duration_h: float, bulk: bool = True) -> str:
    """N UDP phones, expires 3600 s, no replication; the master node crashes twice (at 25 % and
    62.5 % of the run) and is repaired 20 min later (keepalived preempts the VIP back)."""
    d = duration_h * 3600.0
    return f"""
name: bench-day
seed: 1
duration: {d:g}s
fleets:
  - {{name: f, count: {phones}, profile: generic-udp, phone: {{expires: 3600s}}}}
registrar: {{profile: kamailio, data: none}}
ha: {{profile: keepalived}}
faults:
  - {{kind: node_crash, node: master, at: {0.25 * d:g}s, repair_after: 20min}}
  - {{kind: node_crash, node: master, at: {0.625 * d:g}s, repair_after: 20min}}
engine: {{bulk: {str(bulk).lower()}}}
output: {{per_phone: false, report: false}}
"""


def sweep_spec(phones: int) -> dict:
    """8 points (4 expiries × 2 data modes) × 2 replications of a short failover scenario."""
    return {
        "name": "bench-sweep",
        "base": {
            "name": "bench-sweep-base",
            "seed": 7,
            "duration": "6min",
            "fleets": [{"name": "desk", "count": phones, "profile": "generic-udp", "phone": {"expires": "120s"}}],
            "registrar": {"profile": "kamailio", "data": "none"},
            "ha": {"profile": "keepalived"},
            "output": {"report": False, "per_phone": False},
            "faults": [{"kind": "node_crash", "node": "master", "at": "3min"}],
        },
        "factors": [
            {"path": "fleets.desk.phone.expires", "values": ["120s", "240s", "360s", "480s"]},
            {"path": "registrar.data", "values": ["none", "shared"]},
        ],
        "design": "grid",
        "replications": 2,
        "common_random_numbers": True,
    }


# ----------------------------------------------------------------------------- helpers
def maxrss_bytes() -> int:
    """Peak resident set of this process's own address space (``VmHWM``).

    Not ``ru_maxrss``: Linux carries the high-water mark of the pre-exec image across fork+exec, so
    a child's ``ru_maxrss`` (and ``RUSAGE_CHILDREN``/``wait4``) is at least the *parent's* peak at
    spawn time (a 10 k-phone child reported the 288 MiB of this script). ``VmHWM`` is per image.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def med(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return statistics.median(xs) if xs else float("nan")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def fmt_s(x: float) -> str:
    return f"{x:8.2f} s"


def log(msg: str = "") -> None:
    print(msg, flush=True)


def run_child(args: list[str]) -> dict:
    """Run this script as ``--child ...`` in a fresh interpreter; its JSON plus its own rusage."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)  # rusage of exactly this child
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed with exit code {proc.returncode}")
    line = next(ln for ln in out.splitlines()[::-1] if ln.startswith("BENCH-JSON "))
    d = json.loads(line[len("BENCH-JSON "):])
    d["process_wall_s"] = wall  # including interpreter start and imports
    d["peak_rss_bytes"] = d.pop("vmhwm_bytes")  # the child's own peak (see maxrss_bytes)
    d["wait4_maxrss_bytes"] = ru.ru_maxrss * 1024  # inflated by this parent's RSS: for reference only
    d["child_user_s"] = ru.ru_utime
    d["child_sys_s"] = ru.ru_stime
    return d


# ----------------------------------------------------------------------------- children
def child_failover(phones: int, profile: str | None = None, yaml_text: str | None = None) -> dict:
    t_imp = time.perf_counter()
    from simsip.config.loader import load_config_text
    from simsip.engine.model import Model
    from simsip.memory import release
    from simsip.metrics import compute

    import_s = time.perf_counter() - t_imp
    cfg = load_config_text(yaml_text or failover_yaml(phones))
    rss_import = maxrss_bytes()
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
    marks: dict[str, float] = {}
    gc.collect()
    if prof:
        prof.enable()
    c0 = time.process_time()
    t0 = time.perf_counter()
    model = Model(cfg)
    t_built = time.perf_counter()
    orig_run = model.sim.run

    def timed_run(until: float) -> None:  # split Model.run into start (before the loop) and loop
        marks["loop0"] = time.perf_counter()
        marks["rss_started"] = maxrss_bytes()
        try:
            orig_run(until)
        finally:
            marks["loop1"] = time.perf_counter()

    model.sim.run = timed_run
    runlog = model.run()
    t_run = time.perf_counter()
    rss_run = maxrss_bytes()
    calls = model.streams.generator("calls")
    del model, timed_run, orig_run  # as simsip.api.run does: the metrics need only the log (cycles: collected)
    release(collect=True)
    rm = compute(cfg, runlog, 0, calls)
    t_met = time.perf_counter()
    cpu = time.process_time() - c0
    if prof:
        prof.disable()
    c = runlog.counters
    d = {
        "phones": phones,
        "import_s": import_s,
        "build_s": t_built - t0,
        "start_s": marks["loop0"] - t_built,
        "build_start_s": marks["loop0"] - t0,
        "loop_s": marks["loop1"] - marks["loop0"],
        "finish_s": t_run - marks["loop1"],
        "run_s": t_run - marks["loop0"],  # loop + _finish
        "sim_s": t_run - t0,  # build + start + run
        "metrics_s": t_met - t_run,
        "total_s": t_met - t0,  # what a user waits for one replication (no interpreter/imports)
        "cpu_s": cpu,  # CPU time of the same span (less sensitive to other load than wall time)
        "registrations": c["transactions_succeeded"],
        "transactions": c["transactions_started"],
        "timeouts": c["transactions_timed_out"],
        "rss_import_bytes": rss_import,
        "rss_started_bytes": marks["rss_started"],
        "rss_run_bytes": rss_run,
        "rss_metrics_bytes": maxrss_bytes(),
        "vmhwm_bytes": maxrss_bytes(),
        "engine": runlog.engine,
        "phones_not_recovered": rm.figures.get("phones_not_recovered"),
        "recovery_median_s": rm.figures.get("recovery_median"),
    }
    if prof:
        prof.dump_stats(profile)
        d["profile"] = summarize_profile(profile)
    return d


def child_bare(phones: int, refresh: float, duration: float, rtt: float) -> dict:
    t_imp = time.perf_counter()
    from baseline import bare_simpy

    import_s = time.perf_counter() - t_imp
    rss_import = maxrss_bytes()
    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    n = bare_simpy(phones, refresh, duration, rtt=rtt)
    return {"phones": phones, "import_s": import_s, "total_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0, "registrations": n, "rss_import_bytes": rss_import,
            "vmhwm_bytes": maxrss_bytes()}


# ----------------------------------------------------------------------------- profile summary
def _bucket(fn: tuple) -> str:
    file, _, name = fn
    if file == "~":
        if "heapq" in name:
            return "heap ops (heappush/heappop/heapify)"
        if "array" in name and ("append" in name or "frombytes" in name or "extend" in name):
            return "records (array appends)"
        if "numpy" in name or "ndarray" in name:
            return "numpy"
        return "builtins (other)"
    f = file.replace("\\", "/")
    for key, label in (
        ("simsip/engine/core.py", "event loop (Sim.run/call_at/Call)"),
        ("simsip/engine/phones.py", "phone logic (phones.py)"),
        ("simsip/engine/registrar.py", "registrar (registrar.py)"),
        ("simsip/engine/network.py", "network (network.py)"),
        ("simsip/engine/vrrp.py", "control plane (HA, faults, topology, model)"),
        ("simsip/engine/cluster.py", "control plane (HA, faults, topology, model)"),
        ("simsip/engine/nodes.py", "control plane (HA, faults, topology, model)"),
        ("simsip/engine/topology.py", "control plane (HA, faults, topology, model)"),
        ("simsip/engine/model.py", "control plane (HA, faults, topology, model)"),
        ("simsip/engine/records.py", "records (records.py)"),
        ("simsip/engine/dists.py", "random draws (dists.py)"),
        ("simsip/rng.py", "random draws (dists.py)"),
        ("simsip/metrics.py", "metrics (metrics.py)"),
        ("/simpy/", "simpy internals"),
        ("/numpy/", "numpy"),
        ("/pandas/", "pandas"),
    ):
        if key in f:
            return label
    return "other python"


def summarize_profile(path: str, top: int = 25) -> dict:
    import pstats

    st = pstats.Stats(path)
    total = st.total_tt
    rows = []
    for fn, (cc, nc, tt, ct, _callers) in st.stats.items():
        rows.append((tt, ct, nc, fn))
    rows.sort(key=lambda r: -r[0])
    topl = [{"function": f"{Path(fn[0]).name}:{fn[1]}({fn[2]})" if fn[0] != "~" else fn[2],
             "self_s": round(tt, 3), "self_pct": round(100 * tt / total, 1), "cum_s": round(ct, 3), "calls": nc}
            for tt, ct, nc, fn in rows[:top]]
    buckets: dict[str, float] = {}
    for tt, _, _, fn in rows:
        b = _bucket(fn)
        buckets[b] = buckets.get(b, 0.0) + tt
    phases = {}
    for fn, (cc, nc, tt, ct, _c) in st.stats.items():
        key = (Path(fn[0]).name, fn[2])
        for label, want in (
            ("Model.__init__ (build)", ("model.py", "__init__")),
            ("PhoneBank.start (equilibrium start)", ("phones.py", "start")),
            ("Sim.bulk_call_at (initial heap)", ("core.py", "bulk_call_at")),
            ("Sim.run (event loop)", ("core.py", "run")),
            ("Model._finish", ("model.py", "_finish")),
            ("metrics.compute", ("metrics.py", "compute")),
        ):
            if key == want:
                phases[label] = round(ct, 3)
    return {
        "total_s": round(total, 3),
        "top_self": topl,
        "buckets_self_s": {k: round(v, 3) for k, v in sorted(buckets.items(), key=lambda kv: -kv[1])},
        "phases_cum_s": phases,
    }


# ----------------------------------------------------------------------------- 1. throughput
def bench_throughput(k: int, phones: int, expires: float, duration: float, delay: float, workers: int,
                     service: float) -> dict:
    from baseline import bare_simpy
    from simsip.config.loader import load_config_text
    from simsip.engine.model import Model
    from simsip.metrics import compute

    refresh = 0.9 * expires
    rtt = 2 * delay + service  # mean REGISTER → 200 time of simsip's path (no queueing)
    cfg = load_config_text(throughput_yaml(phones, expires, duration, delay, workers, service))
    cfg_exact = cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"fast_paths": False})})
    sys.path.insert(0, str(HERE.parent / "tests"))
    assert abs(cfg.fleets[0].phone.refresh.interval(cfg.registrar.grant(expires)) - refresh) < 1e-9
    log(f"\n[1] throughput: {phones:,} phones, expires {expires:g} s (refresh {refresh:g} s), {duration:g} s, "
        f"{delay * 1e3:g} ms constant delay, {workers} workers, {service * 1e3:g} ms exponential service; k={k}")
    log(f"    bare SimPy rtt = 2·delay + mean service = {rtt * 1e3:g} ms")
    pairs = []
    for i in range(k):
        gc.collect()
        c0 = time.process_time()
        t0 = time.perf_counter()
        n_bare = bare_simpy(phones, refresh, duration, rtt=rtt, seed=i)
        t_bare = time.perf_counter() - t0
        c_bare = time.process_time() - c0
        gc.collect()
        c0 = time.process_time()
        t0 = time.perf_counter()
        model = Model(cfg, replication=i)
        t_b = time.perf_counter()
        runlog = model.run()
        t_sim = time.perf_counter() - t0
        c_sim = time.process_time() - c0
        t_m0 = time.perf_counter()
        compute(cfg, runlog, i, model.streams.generator("calls"))
        t_met = time.perf_counter() - t_m0
        n_sim = runlog.counters["transactions_succeeded"]
        # simsip's own exact engine (engine.fast_paths: false) on the same registrations
        gc.collect()
        c0 = time.process_time()
        t0 = time.perf_counter()
        exact_log = Model(cfg_exact, replication=i).run()
        t_exact = time.perf_counter() - t0
        c_exact = time.process_time() - c0
        same = None
        if i == 0:  # the records must be identical to the exact engine's (the twin-run canonical form)
            from twin_matrix import canonical

            a, b = canonical(runlog), canonical(exact_log)
            same = all(a[key] == b[key] for key in a)
        n_exact = exact_log.counters["transactions_succeeded"]
        del exact_log
        p = {
            "bare_s": t_bare, "bare_regs": n_bare, "bare_regs_per_s": n_bare / t_bare,
            "simsip_s": t_sim, "simsip_build_s": t_b - t0, "simsip_regs": n_sim, "simsip_regs_per_s": n_sim / t_sim,
            "simsip_metrics_s": t_met,
        }
        p["ratio"] = p["simsip_regs_per_s"] / p["bare_regs_per_s"]
        p.update({"exact_s": t_exact, "exact_regs": n_exact, "exact_regs_per_s": n_exact / t_exact,
                  "exact_cpu_s": c_exact, "ratio_vs_exact": (n_sim / t_sim) / (n_exact / t_exact),
                  "identical_to_exact": same, "bulk_registrations": runlog.engine.get("bulk_registrations", 0)})
        p["bare_cpu_s"], p["simsip_cpu_s"] = c_bare, c_sim
        p["ratio_cpu"] = (n_sim / c_sim) / (n_bare / c_bare)  # the same on CPU time (robust to other load)
        pairs.append(p)
        del model, runlog
        log(f"    pair {i + 1}: bare {t_bare:6.2f} s {p['bare_regs_per_s'] / 1e3:7.1f} k reg/s | simsip {t_sim:6.2f} s "
            f"{p['simsip_regs_per_s'] / 1e3:7.1f} k reg/s (metrics {t_met:.2f} s) | ratio {p['ratio']:.2f} (CPU time "
            f"{p['ratio_cpu']:.2f}) | exact engine {t_exact:6.2f} s{'' if same is None else ', identical records: %s' % same}"
            f"   load {loadavg()}")
    res = {
        "workload": {"phones": phones, "expires_s": expires, "refresh_s": refresh, "duration_s": duration,
                     "delay_s": delay, "workers": workers, "service_mean_s": service, "bare_rtt_s": rtt, "k": k},
        "pairs": pairs,
        "median_bare_regs_per_s": med([p["bare_regs_per_s"] for p in pairs]),
        "median_simsip_regs_per_s": med([p["simsip_regs_per_s"] for p in pairs]),
        "median_ratio": med([p["ratio"] for p in pairs]),
        "median_ratio_cpu": med([p["ratio_cpu"] for p in pairs]),
        "median_simsip_metrics_s": med([p["simsip_metrics_s"] for p in pairs]),
        "median_bare_s": med([p["bare_s"] for p in pairs]),
        "median_simsip_s": med([p["simsip_s"] for p in pairs]),
        "bare_regs": pairs[0]["bare_regs"],
        "simsip_regs": pairs[0]["simsip_regs"],
        "median_exact_regs_per_s": med([p["exact_regs_per_s"] for p in pairs]),
        "median_ratio_vs_exact": med([p["ratio_vs_exact"] for p in pairs]),
        "identical_to_exact": pairs[0]["identical_to_exact"],
        "bulk_share": pairs[0]["bulk_registrations"] / max(pairs[0]["simsip_regs"], 1),
    }
    res["pass"] = res["median_ratio"] >= TARGET_RATIO
    res["pass_bulk"] = res["median_ratio"] >= TARGET_BULK_RATIO and bool(res["identical_to_exact"])
    return res


# ----------------------------------------------------------------------------- 2. failover
def bench_failover(phones: int, repeats: int, bare_ref: bool) -> dict:
    log(f"\n[2] failover: {phones:,} UDP phones, expires 3600 s (refresh 3240 s), 1 h, node crash of the master at "
        f"30 min, no replication; {repeats} repeat(s), child process each" + (", paired with bare SimPy" if bare_ref else ""))
    runs, bares = [], []
    for i in range(repeats):
        if bare_ref:
            b = run_child(["bare", str(phones), "3240", "3600", "0.004"])
            bares.append(b)
            log(f"    bare   {i + 1}: {b['total_s']:6.2f} s  {b['registrations']:>9,} regs  peak {b['peak_rss_bytes'] / MIB:7.0f} MiB"
                f"   load {loadavg()}")
        r = run_child(["failover", str(phones)])
        runs.append(r)
        log(f"    simsip {i + 1}: build+start {r['build_start_s']:5.2f} s  run {r['run_s']:6.2f} s  metrics "
            f"{r['metrics_s']:5.2f} s  = {r['total_s']:6.2f} s  {r['registrations']:>9,} regs  peak "
            f"{r['peak_rss_bytes'] / MIB:7.0f} MiB   load {loadavg()}")
    keys = ("cpu_s", "build_s", "start_s", "build_start_s", "loop_s", "finish_s", "run_s", "sim_s", "metrics_s", "total_s",
            "process_wall_s", "peak_rss_bytes", "rss_import_bytes", "rss_started_bytes", "rss_run_bytes", "rss_metrics_bytes")
    m = {k: med([r[k] for r in runs]) for k in keys}
    m["registrations"] = runs[0]["registrations"]
    res = {"phones": phones, "runs": runs, "median": m}
    if bares:
        res["bare"] = bares
        res["bare_median_s"] = med([b["total_s"] for b in bares])
        res["bare_median_peak_rss_bytes"] = med([b["peak_rss_bytes"] for b in bares])
        res["median_ratio_total_vs_bare"] = med([r["total_s"] / b["total_s"] for r, b in zip(runs, bares)])
        res["median_ratio_sim_vs_bare"] = med([r["sim_s"] / b["total_s"] for r, b in zip(runs, bares)])
        res["median_ratio_cpu_vs_bare"] = med([r["cpu_s"] / b["cpu_s"] for r, b in zip(runs, bares)])
    scale = 1_000_000 / phones
    res["extrapolated"] = phones != 1_000_000
    res["time_1m_s"] = m["total_s"] * scale
    res["peak_1m_bytes"] = m["rss_import_bytes"] + (m["peak_rss_bytes"] - m["rss_import_bytes"]) * scale
    res["pass_time"] = res["time_1m_s"] <= TARGET_1M_S
    res["pass_memory"] = res["peak_1m_bytes"] <= TARGET_1M_BYTES
    return res


# ----------------------------------------------------------------------------- 3. sweep
def _cpu_all() -> float:
    """CPU seconds of this process and of its reaped children (the sweep's worker processes)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def bench_sweep(phones: int, repeats: int) -> dict:
    from simsip.sweep import prepare, sweep

    prep = prepare(sweep_spec(phones))
    n_runs = prep.n_points * 2
    log(f"\n[3] sweep: {prep.n_points} points × 2 replications of {phones:,} phones (6 min, crash at 3 min); "
        f"1 vs 2 worker processes, {repeats} repeat(s)")
    pairs = []
    for i in range(repeats):
        gc.collect()
        c0 = _cpu_all()
        t0 = time.perf_counter()
        r1 = sweep(prep, workers=1)
        t1 = time.perf_counter() - t0
        cpu1 = _cpu_all() - c0
        gc.collect()
        c0 = _cpu_all()
        t0 = time.perf_counter()
        r2 = sweep(prep, workers=2)
        t2 = time.perf_counter() - t0
        cpu2 = _cpu_all() - c0
        same = r1.runs.equals(r2.runs)
        pairs.append({"workers1_s": t1, "workers2_s": t2, "speedup": t1 / t2, "identical_tables": bool(same),
                      "workers1_cpu_s": cpu1, "workers2_cpu_s": cpu2,
                      "cores_obtained_1": cpu1 / t1, "cores_obtained_2": cpu2 / t2,
                      "cpu_bound_speedup_estimate": 2 * cpu1 / cpu2})
        log(f"    repeat {i + 1}: 1 worker {t1:6.2f} s ({cpu1 / t1:.2f} cores) | 2 workers {t2:6.2f} s ({cpu2 / t2:.2f} cores)"
            f" | speed-up {t1 / t2:.2f}× | CPU {cpu1:.1f} s vs {cpu2:.1f} s | identical: {same}   load {loadavg()}")
    res = {"points": prep.n_points, "replications": 2, "phones": phones, "runs_per_sweep": n_runs, "pairs": pairs,
           "median_workers1_s": med([p["workers1_s"] for p in pairs]),
           "median_workers2_s": med([p["workers2_s"] for p in pairs]),
           "median_speedup": med([p["speedup"] for p in pairs]),
           "median_cores_obtained_2": med([p["cores_obtained_2"] for p in pairs]),
           "median_cpu_bound_speedup_estimate": med([p["cpu_bound_speedup_estimate"] for p in pairs])}
    res["per_point_s"] = res["median_workers1_s"] / prep.n_points
    res["pass"] = res["median_speedup"] >= TARGET_SPEEDUP
    return res


# ----------------------------------------------------------------------------- 4. growth
def bench_growth(sizes: list[int], repeats: int, reuse: dict[int, list[dict]]) -> dict:
    log(f"\n[4] growth: failover scenario at {', '.join(f'{s:,}' for s in sizes)} phones (child process each; "
        f"median of {repeats}; the largest reuses section 2)")
    rows = []
    for n in sizes:
        runs = reuse.get(n) or [run_child(["failover", str(n)]) for _ in range(repeats)]
        m = {k: med([r[k] for r in runs]) for k in ("sim_s", "total_s", "cpu_s", "metrics_s", "peak_rss_bytes", "rss_import_bytes")}
        regs = runs[0]["registrations"]
        row = {
            "phones": n, "repeats": len(runs), "registrations": regs,
            "sim_s": m["sim_s"], "metrics_s": m["metrics_s"], "total_s": m["total_s"], "cpu_s": m["cpu_s"],
            "peak_rss_bytes": m["peak_rss_bytes"], "rss_import_bytes": m["rss_import_bytes"],
            "us_per_registration": m["sim_s"] / regs * 1e6,
            "us_per_phone": m["total_s"] / n * 1e6,
            "cpu_us_per_phone": m["cpu_s"] / n * 1e6,
            "bytes_per_phone": (m["peak_rss_bytes"] - m["rss_import_bytes"]) / n,
        }
        rows.append(row)
        log(f"    {n:>9,}: total {m['total_s']:6.2f} s  peak {m['peak_rss_bytes'] / MIB:7.0f} MiB   load {loadavg()}")
    lo, hi = rows[0], rows[-1]
    res = {"rows": rows,
           "time_per_phone_ratio_hi_vs_lo": hi["us_per_phone"] / lo["us_per_phone"],
           "cpu_per_phone_ratio_hi_vs_lo": hi["cpu_us_per_phone"] / lo["cpu_us_per_phone"],
           "us_per_registration_ratio_hi_vs_lo": hi["us_per_registration"] / lo["us_per_registration"],
           "bytes_per_phone_ratio_hi_vs_lo": hi["bytes_per_phone"] / lo["bytes_per_phone"] if lo["bytes_per_phone"] > 0 else float("nan")}
    if len(rows) >= 2:  # log-log slope of total time and of memory above the import floor (1.0 = linear)
        import numpy as np

        x = np.log([r["phones"] for r in rows])
        res["time_exponent"] = float(np.polyfit(x, np.log([r["total_s"] for r in rows]), 1)[0])
        res["memory_exponent"] = float(np.polyfit(x, np.log([max(r["peak_rss_bytes"] - r["rss_import_bytes"], 1)
                                                              for r in rows]), 1)[0])
        # marginal cost between the two largest sizes vs average cost at the largest (fixed costs excluded)
        a, b = rows[-2], rows[-1]
        res["marginal_us_per_phone_top"] = (b["total_s"] - a["total_s"]) / (b["phones"] - a["phones"]) * 1e6
        res["marginal_bytes_per_phone_top"] = (b["peak_rss_bytes"] - a["peak_rss_bytes"]) / (b["phones"] - a["phones"])
    return res


# ----------------------------------------------------------------------------- 5. day (issue 15)
def _run_line(tag: str, r: dict) -> None:
    e = r.get("engine") or {}
    log(f"    {tag}: build+start {r['build_start_s']:5.2f} s  run {r['run_s']:6.2f} s  metrics {r['metrics_s']:6.2f} s"
        f"  = {r['total_s']:7.2f} s  {r['registrations']:>10,} regs ({e.get('bulk_registrations', 0):,} in bulk)  peak "
        f"{r['peak_rss_bytes'] / MIB:7.0f} MiB   load {loadavg()}")


def bench_day(phones: int, hours: float, repeats: int, base_div: int) -> dict:
    """N phones × a day (two master crashes, repair, preemption); baseline: the same scenario with
    ``engine.bulk: false`` (one event per refresh) on N/base_div phones, scaled linearly."""
    log(f"\n[5] day: {phones:,} UDP phones × {hours:g} h, expires 3600 s, two master crashes with repair and "
        f"preemption, no replication; {repeats} repeat(s); baseline engine.bulk: false at {phones // base_div:,} phones")
    runs = []
    for i in range(repeats):
        r = run_child(["day", str(phones), str(hours), "bulk"])
        runs.append(r)
        _run_line(f"bulk   {i + 1}", r)
    base = run_child(["day", str(phones // base_div), str(hours), "events"])
    _run_line("events 1", base)
    keys = ("total_s", "run_s", "loop_s", "metrics_s", "cpu_s", "peak_rss_bytes", "build_start_s")
    m = {k: med([r[k] for r in runs]) for k in keys}
    res = {"phones": phones, "hours": hours, "runs": runs, "median": m, "baseline": base, "baseline_phones": phones // base_div}
    res["baseline_scaled_total_s"] = base["total_s"] * base_div
    res["baseline_scaled_run_s"] = base["run_s"] * base_div
    res["ratio_total_vs_events"] = res["baseline_scaled_total_s"] / m["total_s"]
    res["ratio_run_vs_events"] = res["baseline_scaled_run_s"] / m["run_s"]
    scale = 1_000_000 / phones
    res["extrapolated"] = phones != 1_000_000
    res["time_1m_s"] = m["total_s"] * scale
    res["peak_1m_bytes"] = m["peak_rss_bytes"] * scale if res["extrapolated"] else m["peak_rss_bytes"]
    res["pass_time"] = res["time_1m_s"] <= TARGET_DAY_S
    res["pass_memory"] = res["peak_1m_bytes"] <= TARGET_DAY_BYTES
    return res


# ----------------------------------------------------------------------------- 6. ten million (issue 15)
def bench_big(phones: int, run: bool) -> dict:
    """10 M phones × 1 h, one failover: the estimate first (``simsip.estimate``), which refuses a
    run above this machine's available memory; the run itself only with ``--big``."""
    from simsip.config.loader import load_config_text
    from simsip.estimate import available_memory, check, estimate

    cfg = load_config_text(failover_yaml(phones))
    est = estimate(cfg)
    refused = check(cfg, time_budget=math.inf)
    log(f"\n[6] big: {phones:,} phones × 1 h, one failover. Estimate: peak {est.peak_bytes / GIB:.1f} GiB, "
        f"{est.seconds:.0f} s, {est.registrations:,.0f} registrations; available memory {available_memory() / GIB:.1f} GiB")
    res = {"phones": phones, "estimate": {"peak_bytes": est.peak_bytes, "seconds": est.seconds,
                                          "registrations": est.registrations}, "refused": refused, "ran": False}
    if refused:
        for why in refused:
            log(f"    refused: {why}")
        return res
    if not run:
        log("    not run (pass --big to run it: minutes and gigabytes on a shared machine)")
        return res
    r = run_child(["big", str(phones)])
    _run_line("bulk   1", r)
    res.update(ran=True, run=r, pass_time=r["total_s"] <= TARGET_BIG_S, pass_memory=r["peak_rss_bytes"] <= TARGET_BIG_BYTES)
    return res


# ----------------------------------------------------------------------------- 8. planner (issue 15)
def plan_spec(phones: int, candidates: int, replications: int) -> dict:
    """A capacity plan over a {phones}-phone fleet: expiry × refresh point × VRRP version and advert
    interval × data mode × workers (576 combinations), a master crash at 5 min, 1 h so that the
    longest refresh lands inside the run; the SLO is loose so every combination passes the screen
    and the ``candidates`` best are simulated, each ``replications`` times."""
    return {
        "name": "bench-plan",
        "base": {
            "name": "bench-plan-base", "seed": 3, "duration": "1h",
            "fleets": [{"name": "desk", "count": phones, "profile": "generic-udp", "phone": {"expires": "3600s"}}],
            "registrar": {"profile": "kamailio", "data": "none"},
            "ha": {"profile": "keepalived"},
            "output": {"report": False, "per_phone": False},
            "faults": [{"kind": "node_crash", "node": "master", "at": "5min"}],
        },
        "variables": [
            {"path": "fleets.desk.phone.expires", "values": ["600s", "1200s", "1800s", "3600s"]},
            {"path": "fleets.desk.phone.refresh.percent", "values": [50, 75, 90]},
            {"path": "ha.vrrp.version", "values": [2, 3]},
            {"path": "ha.vrrp.advert_int", "values": ["1s", "2s", "3s"]},
            {"path": "registrar.data", "values": ["none", "shared"]},
            {"path": "registrar.workers", "values": [4, 8, 16, 32]},
        ],
        "slo": ["unreachable_phone_seconds <= 1e12", "peak_load_vs_capacity <= 1e6"],
        "objectives": ["unreachable_phone_seconds", "steady_register_rate"],
        "candidates": candidates, "replications": replications, "screen_tolerance": 10,
        "sensitivity": {"replications": 5},
    }


def bench_plan(phones: int, candidates: int, replications: int, full_candidates: int) -> dict:
    """One planner run on 2 workers; with fewer candidates than the target's, the confirm step's
    time is scaled linearly to ``full_candidates`` (marked "extrapolated"; screening and the
    sensitivity run are the same for any number of candidates)."""
    from simsip.plan import plan

    log(f"\n[8] plan: {candidates} candidates × {replications} replications of {phones:,} phones, 2 workers "
        f"(+ the sensitivity run)")
    c0 = _cpu_all()
    t0 = time.perf_counter()
    res = plan(plan_spec(phones, candidates, replications), workers=2)
    wall = time.perf_counter() - t0
    cpu = _cpu_all() - c0
    # the candidates' replications, and the sensitivity run's (the centre and one point per row)
    sims = int(len(res.runs)) + (int(len(res.sensitivity)) + 1) * res.spec.sensitivity.replications
    scale = full_candidates / candidates
    # with fewer candidates only the confirm step scales; screening and the sensitivity run do not
    fixed = wall - res.timings.get("simulate", wall)
    out = {"phones": phones, "candidates": int(len(res.candidates)), "replications": replications,
           "wall_s": wall, "cpu_s": cpu, "cores_obtained": cpu / wall, "replications_run": sims,
           "s_per_replication_cpu": cpu / max(sims, 1), "status": res.status,
           "extrapolated": scale != 1.0, "time_full_s": fixed + (wall - fixed) * scale,
           "timings": dict(res.timings)}
    out["pass"] = out["time_full_s"] <= TARGET_PLAN_S and len(res.candidates) * scale >= 500
    log(f"    {wall:7.1f} s wall, {cpu:7.1f} s CPU ({cpu / wall:.2f} cores), {sims} replications simulated, "
        f"{out['s_per_replication_cpu'] * 1000:.0f} ms CPU each; {full_candidates} candidates: "
        f"{out['time_full_s']:.0f} s{' (extrapolated)' if scale != 1.0 else ''}   load {loadavg()}")
    return out


# ----------------------------------------------------------------------------- 7. cost growth (issue 15)
def bench_costgrowth(sizes: list[int], hours: list[float], reuse: dict) -> dict:
    """The day scenario over phones × simulated time: log-log exponents of total time in phones
    and in simulated time, and µs per registration applied in bulk vs per registration simulated
    event by event (the event part also carries the control plane)."""
    log(f"\n[7] cost growth: day scenario at {', '.join(f'{n:,}' for n in sizes)} phones × "
        f"{', '.join(f'{h:g} h' for h in hours)} (child process each)")
    rows = []
    for n in sizes:
        for h in hours:
            r = reuse.get((n, h)) or run_child(["day", str(n), str(h), "bulk"])
            e = r.get("engine") or {}
            bulk_regs = e.get("bulk_registrations", 0)
            event_regs = r["registrations"] - bulk_regs
            bulk_s = e.get("bulk_seconds", 0.0)
            row = {"phones": n, "hours": h, "total_s": r["total_s"], "loop_s": r["loop_s"], "metrics_s": r["metrics_s"],
                   "peak_rss_bytes": r["peak_rss_bytes"], "registrations": r["registrations"],
                   "bulk_registrations": bulk_regs, "event_registrations": event_regs,
                   "us_per_bulk_registration": bulk_s / bulk_regs * 1e6 if bulk_regs else float("nan"),
                   "us_per_event_registration": (r["loop_s"] - bulk_s) / event_regs * 1e6 if event_regs else float("nan"),
                   "us_per_registration": r["total_s"] / r["registrations"] * 1e6}
            rows.append(row)
            log(f"    {n:>10,} × {h:>4g} h: total {r['total_s']:7.2f} s (loop {r['loop_s']:6.2f}, metrics "
                f"{r['metrics_s']:6.2f})  peak {r['peak_rss_bytes'] / MIB:6.0f} MiB  regs {r['registrations']:>11,} "
                f"({event_regs:,} by events)   load {loadavg()}")
    import numpy as np

    res = {"rows": rows}
    by_h = {h: [r for r in rows if r["hours"] == h] for h in hours}
    res["exponent_phones"] = {f"{h:g}h": float(np.polyfit(np.log([r["phones"] for r in rs]),
                                                          np.log([r["total_s"] for r in rs]), 1)[0])
                              for h, rs in by_h.items() if len(rs) >= 2}
    by_n = {n: [r for r in rows if r["phones"] == n] for n in sizes}
    res["exponent_time"] = {f"{n}": float(np.polyfit(np.log([r["hours"] for r in rs]),
                                                     np.log([r["total_s"] for r in rs]), 1)[0])
                            for n, rs in by_n.items() if len(rs) >= 2}
    return res


# ----------------------------------------------------------------------------- report
def print_report(R: dict) -> None:
    log("\n" + "=" * 100)
    log(f"simsip benchmark  {R['started']}  mode={R['mode']}  python {R['python']}  {R['cpus']} CPUs")
    log(f"load average: start {R['load_start']}  end {R['load_end']}  (shared machine: medians and ratios are the verdict)")
    T = R.get("throughput")
    if T:
        w = T["workload"]
        log(f"\n1. Throughput (same workload: {w['phones']:,} phones, refresh {w['refresh_s']:g} s, {w['duration_s']:g} s; "
            f"k={w['k']} interleaved pairs)")
        log(f"   {'':<28}{'median reg/s':>14}{'median time':>14}{'registrations':>15}")
        log(f"   {'bare SimPy':<28}{T['median_bare_regs_per_s']:>14,.0f}{T['median_bare_s']:>12.2f} s{T['bare_regs']:>15,}")
        log(f"   {'simsip (full model)':<28}{T['median_simsip_regs_per_s']:>14,.0f}{T['median_simsip_s']:>12.2f} s{T['simsip_regs']:>15,}")
        log(f"   simsip metrics (not in the above): median {T['median_simsip_metrics_s']:.2f} s")
        log(f"   median of per-pair ratios simsip/bare: {T['median_ratio']:.2f}   "
            f"(pairs: {', '.join('%.2f' % p['ratio'] for p in T['pairs'])}); on CPU time {T['median_ratio_cpu']:.2f}")
        log(f"   {'simsip exact engine':<28}{T['median_exact_regs_per_s']:>14,.0f}   (fast_paths: false; simsip/exact "
            f"×{T['median_ratio_vs_exact']:.1f}); records identical to the exact engine: {T['identical_to_exact']}; "
            f"{T['bulk_share']:.1%} of registrations applied in bulk")
    F = R.get("failover")
    if F:
        m = F["median"]
        log(f"\n2. Failover: {F['phones']:,} phones × 1 h, master crash at 30 min (median of {len(F['runs'])}, child process each)")
        log(f"   build {m['build_s']:.2f} s + start {m['start_s']:.2f} s = {m['build_start_s']:.2f} s | event loop {m['loop_s']:.2f} s"
            f" + finish {m['finish_s']:.2f} s | metrics {m['metrics_s']:.2f} s | total {m['total_s']:.2f} s (CPU {m['cpu_s']:.2f} s)"
            f" (process incl. interpreter+imports {m['process_wall_s']:.2f} s)")
        log(f"   peak RSS {m['peak_rss_bytes'] / MIB:.0f} MiB (after imports {m['rss_import_bytes'] / MIB:.0f}, after start "
            f"{m['rss_started_bytes'] / MIB:.0f}, after run {m['rss_run_bytes'] / MIB:.0f}, after metrics "
            f"{m['rss_metrics_bytes'] / MIB:.0f}); registrations {m['registrations']:,}")
        if "bare" in F:
            log(f"   bare SimPy same fleet-hour (no failover): median {F['bare_median_s']:.2f} s, peak "
                f"{F['bare_median_peak_rss_bytes'] / MIB:.0f} MiB; median per-pair ratio simsip total/bare "
                f"{F['median_ratio_total_vs_bare']:.2f} (simulation only {F['median_ratio_sim_vs_bare']:.2f}; CPU time "
                f"{F['median_ratio_cpu_vs_bare']:.2f})")
        if F["extrapolated"]:
            log(f"   extrapolated to 1 M phones (linear): {F['time_1m_s']:.1f} s, {F['peak_1m_bytes'] / MIB:.0f} MiB")
    S = R.get("sweep")
    if S:
        log(f"\n3. Sweep: {S['points']} points × {S['replications']} replications × {S['phones']:,} phones "
            f"(~{S['per_point_s']:.1f} s per point serially)")
        log(f"   1 worker median {S['median_workers1_s']:.2f} s | 2 workers median {S['median_workers2_s']:.2f} s | "
            f"median speed-up {S['median_speedup']:.2f}× (pairs: {', '.join('%.2f' % p['speedup'] for p in S['pairs'])})")
        log(f"   2 workers obtained {S['median_cores_obtained_2']:.2f} cores (2.0 = machine idle); CPU-bound estimate for an "
            f"idle machine 2·CPU(1)/CPU(2) = {S['median_cpu_bound_speedup_estimate']:.2f}×")
    G = R.get("growth")
    if G:
        log("\n4. Cost growth (failover scenario, 1 h, crash at 30 min)")
        log(f"   {'phones':>10}{'total s':>10}{'CPU s':>9}{'sim s':>9}{'metrics s':>11}{'peak MiB':>10}{'registrations':>15}"
            f"{'µs/reg':>9}{'µs/phone':>10}{'B/phone':>9}")
        for r in G["rows"]:
            log(f"   {r['phones']:>10,}{r['total_s']:>10.2f}{r['cpu_s']:>9.2f}{r['sim_s']:>9.2f}{r['metrics_s']:>11.2f}"
                f"{r['peak_rss_bytes'] / MIB:>10.0f}{r['registrations']:>15,}{r['us_per_registration']:>9.1f}"
                f"{r['us_per_phone']:>10.1f}{r['bytes_per_phone']:>9.0f}")
        hi, lo = G["rows"][-1]["phones"], G["rows"][0]["phones"]
        log(f"   per-phone cost {hi:,} vs {lo:,}: time ×{G['time_per_phone_ratio_hi_vs_lo']:.2f} (CPU ×{G['cpu_per_phone_ratio_hi_vs_lo']:.2f}), "
            f"µs/registration ×{G['us_per_registration_ratio_hi_vs_lo']:.2f}, bytes ×{G['bytes_per_phone_ratio_hi_vs_lo']:.2f}"
            f"  (1.0 = linear; < 1: fixed costs amortised)")
        if "time_exponent" in G:
            log(f"   log-log exponent: time {G['time_exponent']:.2f}, memory above imports {G['memory_exponent']:.2f}; "
                f"marginal cost at the top: {G['marginal_us_per_phone_top']:.1f} µs and "
                f"{G['marginal_bytes_per_phone_top']:.0f} B per phone")
    D = R.get("day")
    if D:
        m = D["median"]
        log(f"\n5. Day: {D['phones']:,} phones × {D['hours']:g} h, two master crashes with repair and preemption "
            f"(median of {len(D['runs'])})")
        log(f"   bulk: total {m['total_s']:.2f} s (build+start {m['build_start_s']:.2f}, run {m['run_s']:.2f}, metrics "
            f"{m['metrics_s']:.2f}), peak {m['peak_rss_bytes'] / MIB:.0f} MiB")
        b = D["baseline"]
        log(f"   one event per refresh (engine.bulk: false) at {D['baseline_phones']:,} phones: total {b['total_s']:.2f} s, "
            f"run {b['run_s']:.2f} s; ×{D['phones'] // D['baseline_phones']} linear = {D['baseline_scaled_total_s']:.1f} s")
        log(f"   ratio events/bulk: total ×{D['ratio_total_vs_events']:.1f}, event loop ×{D['ratio_run_vs_events']:.1f}")
    B = R.get("big")
    if B:
        est = B["estimate"]
        log(f"\n6. Big: {B['phones']:,} phones × 1 h: estimate {est['peak_bytes'] / GIB:.1f} GiB, {est['seconds']:.0f} s; "
            + ("refused: " + "; ".join(B["refused"]) if B["refused"] else
               (f"ran: total {B['run']['total_s']:.1f} s, peak {B['run']['peak_rss_bytes'] / GIB:.2f} GiB" if B["ran"]
                else "not run (--big)")))
    C = R.get("costgrowth")
    if C:
        log("\n7. Cost growth (day scenario, bulk refreshes)")
        log(f"   {'phones':>10}{'hours':>7}{'total s':>9}{'loop s':>8}{'metrics s':>10}{'peak MiB':>9}{'regs':>12}"
            f"{'by events':>10}{'µs/bulk reg':>12}{'µs/event reg':>13}{'µs/reg':>8}")
        for r in C["rows"]:
            log(f"   {r['phones']:>10,}{r['hours']:>7g}{r['total_s']:>9.2f}{r['loop_s']:>8.2f}{r['metrics_s']:>10.2f}"
                f"{r['peak_rss_bytes'] / MIB:>9.0f}{r['registrations']:>12,}{r['event_registrations']:>10,}"
                f"{r['us_per_bulk_registration']:>12.2f}{r['us_per_event_registration']:>13.1f}{r['us_per_registration']:>8.2f}")
        log(f"   log-log exponent of total time in phones: {C['exponent_phones']}; in simulated hours: {C['exponent_time']}")
    P = R.get("profile")
    if P:
        log(f"\nProfile (cProfile, {P['phones']:,} phones failover; cProfile inflates small calls): total {P['total_s']:.2f} s")
        log("   phases (cumulative): " + ", ".join(f"{k} {v:.2f} s" for k, v in P["phases_cum_s"].items()))
        log("   self time by area:")
        for k, v in P["buckets_self_s"].items():
            log(f"     {k:<42}{v:8.2f} s {100 * v / P['total_s']:6.1f} %")
        log("   top functions by self time:")
        for r in P["top_self"][:20]:
            log(f"     {r['self_s']:7.2f} s {r['self_pct']:5.1f} %  {r['calls']:>10,} calls  {r['function']}")
    log("\nTargets (informational)")
    for name, val, ok in R["targets"]:
        log(f"   {verdict(ok)}  {name}: {val}")
    log(f"\nJSON: {R['json']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="k=3, 200 k failover, 10k/100k/200k growth")
    ap.add_argument("--only", default="throughput,failover,sweep,growth,day,big,costgrowth,plan",
                    help="comma-separated sections: throughput,failover,sweep,growth,day,big,costgrowth,plan")
    ap.add_argument("--profile", action="store_true", help="also cProfile the failover scenario (--profile-phones)")
    ap.add_argument("--profile-phones", type=int, default=200_000)
    ap.add_argument("--no-bare-ref", action="store_true", help="skip bare SimPy on the failover fleet-hour")
    ap.add_argument("--big", action="store_true", help="section big: really run 10 M phones × 1 h (minutes, GiBs)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a.child:
        kind, *rest = a.child
        if kind == "failover":
            d = child_failover(int(rest[0]), rest[1] if len(rest) > 1 else None)
        elif kind == "day":
            d = child_failover(int(rest[0]), None, day_yaml(int(rest[0]), float(rest[1]), rest[2] == "bulk"))
        elif kind == "big":
            d = child_failover(int(rest[0]))
        elif kind == "bare":
            d = child_bare(int(rest[0]), float(rest[1]), float(rest[2]), float(rest[3]))
        else:
            raise SystemExit(f"unknown child {kind}")
        print("BENCH-JSON " + json.dumps(d), flush=True)
        return 0

    quick = a.quick
    only = set(a.only.split(","))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    R: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "mode": "quick" if quick else "full",
        "python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
        "load_start": loadavg(),
    }
    try:
        import simpy

        import simsip

        R["versions"] = {"simsip": simsip.__version__, "simpy": simpy.__version__}
    except Exception:  # pragma: no cover
        pass
    log(f"simsip benchmark ({R['mode']}), load average at start {R['load_start']}, {R['cpus']} CPUs")
    fo_phones = 200_000 if quick else 1_000_000
    if "throughput" in only:
        R["throughput"] = bench_throughput(3 if quick else 5, 50_000, 60.0, 600.0, 0.001, 8, 0.002)
    if "failover" in only:
        R["failover"] = bench_failover(fo_phones, 3, bare_ref=not a.no_bare_ref)
    if "sweep" in only:
        R["sweep"] = bench_sweep(20_000, 2 if quick else 3)
    if "growth" in only:
        sizes = [10_000, 100_000, fo_phones]
        reuse = {fo_phones: R["failover"]["runs"]} if "failover" in R else {}
        R["growth"] = bench_growth(sizes, 3, reuse)
    day_phones = 200_000 if quick else 1_000_000
    if "day" in only:
        R["day"] = bench_day(day_phones, 24.0, 1, 10)
    if "big" in only:
        R["big"] = bench_big(10_000_000, a.big)
    if "costgrowth" in only:
        reuse = {(day_phones, 24.0): R["day"]["runs"][0]} if "day" in R else {}
        sizes = [10_000, 100_000, day_phones]
        R["costgrowth"] = bench_costgrowth(sizes, [1.0, 24.0], reuse)
    if "plan" in only:
        R["plan"] = bench_plan(100_000, 50 if quick else 500, 10, 500)
    if a.profile:
        log(f"\n[profile] cProfile of the failover scenario, {a.profile_phones:,} phones")
        with tempfile.TemporaryDirectory() as td:
            d = run_child(["failover", str(a.profile_phones), str(Path(td) / "failover.prof")])
        R["profile"] = {"phones": a.profile_phones, **d.pop("profile")}
    R["load_end"] = loadavg()

    targets = []
    if "throughput" in R:
        targets.append((f"simsip ≥ {TARGET_RATIO:.0%} of bare-SimPy throughput", f"median ratio {R['throughput']['median_ratio']:.2f}",
                        R["throughput"]["pass"]))
    if "failover" in R:
        F = R["failover"]
        ext = " (extrapolated from %s phones, linear)" % f"{F['phones']:,}" if F["extrapolated"] else ""
        targets.append((f"1 M failover ≤ {TARGET_1M_S:g} s (build+start+run+metrics)", f"median {F['time_1m_s']:.1f} s{ext}", F["pass_time"]))
        targets.append((f"1 M failover ≤ 1.5 GiB peak RSS", f"median {F['peak_1m_bytes'] / GIB:.2f} GiB{ext}", F["pass_memory"]))
    if "sweep" in R:
        targets.append((f"sweep speed-up ≥ {TARGET_SPEEDUP}× on 2 workers", f"median {R['sweep']['median_speedup']:.2f}×",
                        R["sweep"]["pass"]))
    if "throughput" in R:
        T = R["throughput"]
        targets.append((f"bulk: simsip ≥ {TARGET_BULK_RATIO:g}× bare SimPy, records identical to the exact engine",
                        f"median ratio {T['median_ratio']:.2f}, identical {T['identical_to_exact']}", T["pass_bulk"]))
    if "day" in R:
        D = R["day"]
        ext = " (extrapolated from %s phones, linear)" % f"{D['phones']:,}" if D["extrapolated"] else ""
        targets.append((f"1 M × 24 h ≤ {TARGET_DAY_S:g} s (build+start+run+metrics)", f"{D['time_1m_s']:.1f} s{ext}", D["pass_time"]))
        targets.append(("1 M × 24 h ≤ 1.5 GiB peak RSS", f"{D['peak_1m_bytes'] / GIB:.2f} GiB{ext}", D["pass_memory"]))
    if "big" in R and R["big"].get("ran"):
        Bg = R["big"]
        targets.append((f"10 M × 1 h ≤ {TARGET_BIG_S:g} s", f"{Bg['run']['total_s']:.1f} s", Bg["pass_time"]))
        targets.append(("10 M × 1 h ≤ 8 GiB", f"{Bg['run']['peak_rss_bytes'] / GIB:.2f} GiB", Bg["pass_memory"]))
    elif "big" in R and R["big"]["refused"]:
        targets.append(("10 M × 1 h: a clear refusal with the estimate", "; ".join(R["big"]["refused"]), True))
    if "plan" in R:
        Pl = R["plan"]
        ext = f" (extrapolated from {Pl['candidates']} candidates, linear)" if Pl["extrapolated"] else ""
        targets.append((f"planner: 500 points × 10 replications of 100 k phones ≤ {TARGET_PLAN_S:g} s on 2 workers",
                        f"{Pl['time_full_s']:.0f} s{ext}, {Pl['cores_obtained']:.2f} cores obtained", Pl["pass"]))
    R["targets"] = targets
    out = HERE / f"results-{stamp}.json"
    R["json"] = str(out.relative_to(HERE.parent))
    out.write_text(json.dumps(R, indent=2, default=str) + "\n")
    print_report(R)
    return 0


if __name__ == "__main__":
    sys.exit(main())
