"""Measure Kamailio usrloc's start-up preload (db_mode 1 or 2) in the lab: ``simsip lab preload``.

What the product does (Kamailio 5.6.3, the lab's Debian package; ``git show 5.6.3:<path>``):

* ``src/modules/usrloc/usrloc_mod.c`` ``child_init``: in db_mode 1 and 2 the process of rank
  ``ul_load_rank`` = ``PROC_SIPINIT`` (1, the first UDP worker; ``src/core/sr_module.h``) calls
  ``preload_udomain`` for every registered table (``preload`` modparam, or the table of a
  ``save()``), when ``db_load`` is 1 (the default).
* ``src/modules/usrloc/udomain.c`` ``preload_udomain``: one ``SELECT`` of 20 columns of the whole
  table (``server_id`` filter only with ``db_srvid``), fetched ``fetch_rows`` rows at a time
  (default 2000, ``DB_CAP_FETCH``); per row: ``dbrow2info`` (parse the row), ``lock_udomain``,
  ``get_urecord`` / ``mem_insert_urecord`` (shared-memory hash), ``mem_insert_ucontact``,
  ``state = CS_SYNC``, unlock. No log line says when it ends (only ``LM_DBG`` per batch).
* ``src/main.c`` ``main_loop``: the UDP sockets are bound (``udp_init``) before any worker is
  forked; workers are forked one after the other by the main process (``fork_process`` calls
  ``init_child(rank)`` in the child), and the main process does not wait for the first worker
  unless ``wait_worker1_mode`` is set. So the first worker answers nothing until its preload is
  done (then it runs ``event_route[core:worker-one-init]``: this module's end-of-preload log line),
  but workers 2..children answer at once, from a table that is still filling: a REGISTER is saved,
  a lookup of a not yet loaded AOR finds nothing.

The measurement: one Kamailio node (the lab's config generator, ``db_mode`` 1 or 2, ``preload``
``location``) and the lab's PostgreSQL in namespaces this module creates and deletes. For each
N it fills ``location`` with N contacts (rows as ``save()`` writes them), starts Kamailio, and
times, from the process start: the preload's end (the first worker's log line, its own clock),
the first answer to anything, the first 200 to a REGISTER, and the first 200 to an OPTIONS for the
last row's AOR (a ``registered()`` lookup that holds once that contact is loaded). Runs are
shuffled over N and repeated; ``fit`` fits T = a + N / rate by least squares.
"""
from __future__ import annotations

import json
import math
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from simsip.io import atomic_text

from . import configs, ownership
from .check import check_requirements
from .runner import Lab, LabInterrupted, _loadavg, _tail, _wait, cleanup_stale, tool_versions
from .spec import LabSpec
from .topology import ADDR, PREFIX, VIP, LabError, netns_pids

DEFAULT_NS = (0, 1000, 10000, 50000, 200000)
#: shared memory for Kamailio (-m): 200 000 contacts take ≈ 140 MB of it (measured: kamcmd core.shmmem)
SHM_MB = 512
PROBE_INTERVAL = 0.005
PROBE_AOR = "preloadprobe"

__all__ = ["PreloadRun", "measure_preload", "fit", "fill_sql", "DEFAULT_NS"]


@dataclass
class PreloadRun:
    """One start of Kamailio over a table of ``n`` contacts; times in s from the process start."""
    n: int
    rep: int
    workers: int
    db_mode: int
    start_epoch: float
    preload_end: float | None       # the first worker's log line (Kamailio's clock, $TV)
    first_answer: float | None      # the first response to any probe
    first_register_200: float | None
    last_aor_200: float | None      # first 200 to OPTIONS for the table's last AOR (None: n = 0)
    loaded: int | None              # contacts usrloc holds afterwards (usrloc:location_contacts), the probe's included
    answered_before_preload: int    # probe responses that arrived before the preload's end
    loadavg: list[float]
    cpu_worker1: float | None = None   # CPU s (utime+stime) of the first worker when its log line was read
    cpu_postgres: float | None = None  # CPU s of the db namespace's PostgreSQL processes from the start to then


def fill_sql(n: int) -> str:
    """SQL that empties ``location`` and fills it with ``n`` contacts ph1..phN, as save() writes them
    (one contact per AOR, UDP, the VIP's socket, valid for an hour)."""
    return f"""
TRUNCATE location;
ALTER SEQUENCE location_id_seq RESTART WITH 1;
INSERT INTO location (ruid, username, contact, received, path, expires, q, callid, cseq,
                      last_modified, flags, cflags, user_agent, socket, methods, instance, reg_id,
                      server_id, connection_id, keepalive, partition)
SELECT 'ulcx-' || lpad(to_hex(i), 8, '0') || '-preload-' || i, 'ph' || i,
       'sip:ph' || i || '@{ADDR["phones"]}:5060;transport=udp', NULL, NULL,
       LOCALTIMESTAMP(0) + interval '1 hour', -1, 'ph' || i || '-1@simsip', 2,
       LOCALTIMESTAMP(0), 0, 0, 'simsip-lab', 'udp:{VIP}:5060', NULL, NULL, 0, 0, -1, 0, 0
FROM generate_series(1, {int(n)}) AS i;
VACUUM ANALYZE location;
"""


def _psql(lab: Lab) -> list[str]:
    return ["psql", "-v", "ON_ERROR_STOP=1", "-q", "-h", str(lab.run_dir / "pgsock"), "-p",
            str(configs.DB_PORT), "-U", "postgres", "-d", configs.db_name(lab.spec, "a")]


def _cpu(pids: Iterable[int]) -> float:
    """utime + stime of ``pids`` in seconds (/proc/PID/stat; gone processes count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / tick


def _mark_line(log: Path, offset: int, need: str = "") -> str | None:
    """The first line of Kamailio's log after ``offset`` that holds the preload's mark (and ``need``)."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    return next((ln for ln in text.splitlines() if configs.PRELOAD_MARK in ln and need in ln), None)


def _mark_pid(log: Path, offset: int) -> int | None:
    line = _mark_line(log, offset, " pid ")
    if line is None:
        return None
    tail = line.rsplit(" pid ", 1)[1].split()
    return int(tail[0]) if tail and tail[0].isdigit() else None


def _preload_mark(log: Path, offset: int) -> float | None:
    line = _mark_line(log, offset)
    if line is None:
        return None
    parts = line.split(configs.PRELOAD_MARK, 1)[1].split()
    try:
        return float(parts[0])
    except (IndexError, ValueError):
        return None


def _read_probe(path: Path) -> list[tuple[float, str, int]]:
    out = []
    try:
        for line in path.read_text().splitlines():
            p = line.split()
            if len(p) == 3:
                out.append((float(p[0]), p[1], int(p[2])))
    except OSError:
        pass
    return out


def _loaded(lab: Lab) -> int | None:
    r = subprocess.run(lab.topo.cmd("a", ["kamcmd", "-s", f"unix:{lab.run_dir}/kamailio-a.ctl",
                                          "stats.get_statistics", "usrloc:"]),
                       capture_output=True, text=True, timeout=30)
    for line in r.stdout.splitlines():
        key, _, val = line.partition("=")
        if key.strip() == "usrloc:location_contacts" and val.strip().isdigit():
            return int(val)
    raise LabError(f"kamcmd gave no contact count: {r.stdout.strip()!r} {r.stderr.strip()!r}")


def _one_run(lab: Lab, n: int, rep: int, timeout: float) -> PreloadRun:
    sh_ = subprocess.run(_psql(lab), input=fill_sql(n), capture_output=True, text=True, timeout=600)
    if sh_.returncode != 0:
        raise LabError(f"filling location with {n} rows failed: {sh_.stderr.strip()[-400:]}")
    probe_out = lab.out / f"probe-{n}-{rep}.txt"
    last = f"ph{n}" if n > 0 else "-"
    script = Path(__file__).with_name("preload_probe.py")
    lab.procs.start("probe", lab.topo.cmd("prober", [
        sys.executable, str(script), ADDR["a"], "5060", last, repr(PROBE_INTERVAL), str(probe_out),
        ADDR["prober"]]), log_name="probe.log")
    time.sleep(0.3)  # the probe is sending before Kamailio starts
    log = lab.log_dir / "kamailio-a.log"
    offset = log.stat().st_size if log.exists() else 0
    load = _loadavg()
    db_ns = lab.topo.ns("db")
    pg0 = _cpu(netns_pids(db_ns))
    cpu: dict[str, float] = {}
    start = time.time()
    lab.start_kamailio("a", shm_mb=SHM_MB)

    def done() -> bool:
        if not lab.procs.alive("kamailio-a"):
            raise LabError("kamailio exited during the preload:\n" + _tail(log))
        if not cpu:
            pid = _mark_pid(log, offset)
            if pid is None:
                return False
            cpu["worker1"] = _cpu([pid])
            cpu["postgres"] = _cpu(netns_pids(db_ns)) - pg0
        rows = _read_probe(probe_out)
        if not any(m == "REGISTER" and s == 200 for _, m, s in rows):
            return False
        return n == 0 or any(m == "OPTIONS" and s == 200 for _, m, s in rows)
    try:
        _wait(done, timeout, f"the preload of {n} contacts", 0.02)
        loaded = _loaded(lab)
    finally:
        lab.procs.stop("probe", signal.SIGTERM, 5)
        lab.procs.stop("kamailio-a", signal.SIGKILL, 5)
    end = _preload_mark(log, offset)
    rows = _read_probe(probe_out)

    def first(pred: Callable[[str, int], bool]) -> float | None:
        ts = [t for t, m, s in rows if pred(m, s)]
        return min(ts) - start if ts else None
    pe = end - start if end is not None else None
    return PreloadRun(
        n=n, rep=rep, workers=lab.spec.workers, db_mode=lab.spec.usrloc_db_mode, start_epoch=start,
        preload_end=pe, first_answer=first(lambda m, s: True),
        first_register_200=first(lambda m, s: m == "REGISTER" and s == 200),
        last_aor_200=first(lambda m, s: m == "OPTIONS" and s == 200) if n > 0 else None,
        loaded=loaded,
        answered_before_preload=sum(1 for t, _, _ in rows if end is not None and t < end),
        loadavg=load, cpu_worker1=cpu.get("worker1"), cpu_postgres=cpu.get("postgres"))


def fit(xs: Sequence[float], ys: Sequence[float]) -> dict:
    """Least-squares T = a + N / rate: a, rate, their standard errors, the residual sd, and a 95 %
    interval of the rate (slope ± t·se, inverted)."""
    k = len(xs)
    if k < 3:
        raise ValueError("need at least 3 runs to fit a line with a spread")
    mx, my = sum(xs) / k, sum(ys) / k
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        raise ValueError("need at least two distinct N")
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    res = [y - (a + b * x) for x, y in zip(xs, ys)]
    s2 = sum(r * r for r in res) / (k - 2)
    se_b = math.sqrt(s2 / sxx)
    se_a = math.sqrt(s2 * (1 / k + mx * mx / sxx))
    try:
        from scipy import stats
        tq = float(stats.t.ppf(0.975, k - 2))
    except Exception:  # pragma: no cover - scipy is a dependency
        tq = 2.0
    lo, hi = b - tq * se_b, b + tq * se_b
    return {"a": a, "a_se": se_a, "per_contact": b, "per_contact_se": se_b,
            "rate": 1 / b if b > 0 else math.inf,
            "rate_95": [1 / hi if hi > 0 else math.inf, 1 / lo if lo > 0 else math.inf],
            "residual_sd": math.sqrt(s2), "runs": k, "t_975": tq}


def summarise(runs: Iterable[PreloadRun]) -> dict:
    runs = list(runs)
    by_n: dict[int, dict] = {}
    for key in ("preload_end", "first_answer", "first_register_200", "last_aor_200", "cpu_worker1",
                "cpu_postgres"):
        for n in sorted({r.n for r in runs}):
            vals = [getattr(r, key) for r in runs if r.n == n and getattr(r, key) is not None]
            if not vals:
                continue
            m = sum(vals) / len(vals)
            sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
            by_n.setdefault(n, {})[key] = {"mean": m, "sd": sd, "min": min(vals), "max": max(vals),
                                           "count": len(vals)}
    ok = [r for r in runs if r.preload_end is not None]
    out: dict = {"by_n": {str(k): v for k, v in by_n.items()}}
    zero = [r.preload_end for r in ok if r.n == 0]
    if zero:
        # the spread grows with N (the shared machine's load): each run's own rate, N / (T − T(0))
        a0 = sum(zero) / len(zero)  # type: ignore[arg-type]
        rates = sorted(r.n / (r.preload_end - a0) for r in ok if r.n >= 10000 and r.preload_end > a0)  # type: ignore[operator]
        if rates:
            out["run_rates"] = {"t0": a0, "n_min": 10000, "count": len(rates), "min": rates[0],
                                "median": rates[len(rates) // 2] if len(rates) % 2 else
                                (rates[len(rates) // 2 - 1] + rates[len(rates) // 2]) / 2, "max": rates[-1]}
    if len({r.n for r in ok}) >= 2 and len(ok) >= 3:
        out["fit_preload_end"] = fit([r.n for r in ok], [r.preload_end for r in ok])  # type: ignore[misc]
        cp = [r for r in ok if r.cpu_worker1 is not None and r.cpu_postgres is not None]
        if len({r.n for r in cp}) >= 2 and len(cp) >= 3:
            # the preload's CPU: the first worker's, and PostgreSQL's (it answers the query first, then
            # the worker converts and inserts the rows: on an idle machine the two add up to the wall time)
            out["fit_cpu"] = fit([r.n for r in cp], [r.cpu_worker1 + r.cpu_postgres for r in cp])  # type: ignore[operator]
        lr = [r for r in ok if r.last_aor_200 is not None]
        if len({r.n for r in lr}) >= 2 and len(lr) >= 3:
            out["fit_last_aor_200"] = fit([r.n for r in lr], [r.last_aor_200 for r in lr])  # type: ignore[misc]
    return out


def measure_preload(out_dir: Path, ns: Sequence[int] = DEFAULT_NS, repeats: int = 3, workers: int = 2,
                    db_mode: int = 1, seed: int | None = None, timeout: float = 300.0,
                    progress: Callable[[str], None] | None = None) -> dict:
    """Build the lab (one Kamailio node, PostgreSQL, the prober), time ``repeats`` starts of Kamailio
    over each table size in ``ns`` (in a shuffled order), tear everything down, and write
    ``results.json`` in ``out_dir``; returns its content."""
    say = progress or (lambda msg: None)
    if db_mode not in (1, 2):
        raise ValueError("the preload runs in usrloc db_mode 1 or 2")
    if repeats < 1 or not ns or min(ns) < 0:
        raise ValueError("need repeats >= 1 and N >= 0")
    problems = check_requirements("shared_db")
    if problems:
        raise LabError("lab requirements missing:\n  " + "\n  ".join(problems))
    out_dir = Path(out_dir).resolve()  # initdb and postgres run from / as the postgres user
    if out_dir.exists() and any(out_dir.iterdir()):
        raise LabError(f"{out_dir} is not empty: give a new directory for the measurement")
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = LabSpec(variant="memory", db_mode=db_mode, workers=workers, run_id=secrets.token_hex(4),
                   expires=3600.0, max_expires=3600.0)
    lab = Lab(spec, out_dir)
    ownership.reap_dead_runs(cleanup_stale)
    order = [(n, r) for n in ns for r in range(repeats)]
    rnd = random.Random(seed)
    rnd.shuffle(order)
    versions = tool_versions()
    pg = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if pg:
        versions["postgresql"] = subprocess.run([str(pg[-1]), "--version"], capture_output=True, text=True).stdout.strip()
    result: dict = {"what": "Kamailio usrloc start-up preload (simsip.lab.preload)", "status": "running",
                    "run_id": lab.run_id,
                    "command": "simsip lab preload " + " ".join(f"--n {n}" for n in ns)
                    + f" --repeats {repeats} --workers {workers} --db-mode {db_mode}"
                    + (f" --seed {seed}" if seed is not None else ""),
                    "started_epoch": time.time(), "versions": versions, "shm_mb": SHM_MB,
                    "fetch_rows": configs.PRELOAD_FETCH_ROWS, "probe_interval": PROBE_INTERVAL,
                    "order": order, "runs": []}
    owner = ownership.claim(lab.run_id)
    old = {}

    def _on_signal(signum, frame):  # noqa: ANN001
        raise LabInterrupted(f"signal {signum}")
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGTERM, signal.SIGHUP):
            old[s] = signal.signal(s, _on_signal)
    try:
        say(f"building namespaces {PREFIX}{lab.run_id}-*")
        lab.topo.create()
        result["namespaces"] = list(lab.topo.created)
        say("starting PostgreSQL")
        lab.start_postgres()
        for i, (n, rep) in enumerate(order):
            run = _one_run(lab, n, rep, timeout)
            result["runs"].append(asdict(run))
            say(f"[{i + 1}/{len(order)}] N={n}: preload end {run.preload_end:.3f} s, first answer "
                f"{_f(run.first_answer)}, REGISTER 200 {_f(run.first_register_200)}, last AOR 200 "
                f"{_f(run.last_aor_200)}, loaded {run.loaded}")
        row = subprocess.run(_psql(lab) + ["-Atc", f"SELECT * FROM location WHERE username = '{PROBE_AOR}'"],
                             capture_output=True, text=True, timeout=30)
        result["probe_row_written_by_kamailio"] = row.stdout.strip()
        result.update(summarise(PreloadRun(**r) for r in result["runs"]))
        result["status"] = "ok"
    except BaseException as e:
        result["status"] = f"error: {type(e).__name__}: {e}"
        raise
    finally:
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            if threading.current_thread() is threading.main_thread():
                old.setdefault(s, signal.getsignal(s))
                signal.signal(s, signal.SIG_IGN)
        try:
            lab.procs.stop_all(["probe", "kamailio-a", "postgres"])
        finally:
            result["teardown_failed_namespaces"] = lab.topo.destroy()
            result["ended_epoch"] = time.time()
            atomic_text(out_dir / "results.json", json.dumps(result, indent=2))
            for s, h in old.items():
                signal.signal(s, h)
            ownership.release(owner, lab.run_id)
    return result


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f} s"
