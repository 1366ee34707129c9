"""The Python API: the twin of ``simsip run`` for notebooks.

>>> import simsip
>>> cfg = simsip.load_config("examples/quickstart.yaml")
>>> res = simsip.simulate(cfg, replications=3)
>>> res.summary["figures"]["recovery_median"]
>>> res.timeseries.head(); res.figures()["reachable"].show()

Replications run one after another with run numbers 0..n-1; each has its own named random
streams, so adding replications never changes the earlier ones.

``simulate(..., out=DIR)`` writes the run directory as a unit, so it never claims more than it holds:

1. ``summary.json`` with ``status: running`` first (and the tables of any earlier run in DIR removed);
2. each finished replication's tables atomically in ``parts/<replication>/``, then the summary's
   ``replications_done``;
3. at the end the combined tables and ``report.html``, and ``summary.json`` with ``status: ok`` last
   (the parts are removed after that).

Ctrl-C and SIGTERM end the run the same way (``status: interrupted``, the finished replications
combined), an exception with ``status: error``. A run killed outright (``kill -9``, power loss)
stays ``status: running``: ``simsip report`` refuses it (:func:`run_state`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from pydantic import ValidationError

from simsip.config.loader import ConfigError, resolved_yaml
from simsip.config.loader import load_config as _load_config
from simsip.config.schema import Scenario
from simsip.io import Terminated, atomic_table, atomic_text, no_interrupts, output_dir_problem, run_state, terminate_as_interrupt  # noqa: F401
from simsip.memory import release
from simsip.metrics import FIGURE_HELP, INTERVAL_METHODS, RepMetrics, ci95, compute, summarize_figures, summarize_storm  # noqa: F401


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = (), *, seed: int | None = None,
                replications: int | None = None) -> Scenario:
    """Load and validate a scenario file; ``overrides`` are ``path.to.key=value`` strings.

    ``seed`` / ``replications`` replace the file's values (``simsip run --seed/--replications``).
    Every problem raises :class:`~simsip.config.ConfigError` naming the file (and line and key).
    """
    cfg = _load_config(path, overrides)
    if seed is None and replications is None:
        return cfg
    try:
        return _with_run_options(cfg, seed, replications)
    except ValidationError as exc:  # e.g. a negative seed: name the file and the field
        lines = str(exc).splitlines()
        raise ConfigError([f"{path}: {lines[0]}: {' '.join(lines[1:3])}"]) from None


def _with_run_options(cfg: Scenario, seed: int | None, replications: int | None) -> Scenario:
    """``cfg`` with another seed and/or number of replications (validated again)."""
    upd = {}
    if replications is not None:
        upd["replications"] = int(replications)
    if seed is not None:
        upd["seed"] = int(seed)
    return Scenario.model_validate({**cfg.model_dump(), **upd}) if upd else cfg


@dataclass
class Results:
    """What a simulation produced: tables over all replications and the summary."""

    config: Scenario
    seed: int
    reps: list[RepMetrics] = field(default_factory=list)
    runtime_s: float = 0.0
    status: str = "ok"
    error: str | None = None
    out_dir: Path | None = None

    def _cat(self, attr: str) -> pd.DataFrame:
        frames = [getattr(r, attr) for r in self.reps if len(getattr(r, attr))]
        if not frames:
            return getattr(self.reps[0], attr).iloc[0:0] if self.reps else pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    @property
    def timeseries(self) -> pd.DataFrame:
        return self._cat("timeseries")

    @property
    def outages(self) -> pd.DataFrame:
        return self._cat("outages")

    @property
    def recovery(self) -> pd.DataFrame:
        return self._cat("recovery")

    @property
    def faults(self) -> pd.DataFrame:
        return self._cat("faults")

    @property
    def vip(self) -> pd.DataFrame:
        return self._cat("vip")

    @property
    def trunk_outages(self) -> pd.DataFrame:
        """The ``trunk_outages`` table (:data:`simsip.tables.TRUNK_OUTAGES`) over all replications."""
        return self._cat("trunk_outages")

    @property
    def per_replication(self) -> pd.DataFrame:
        """One flat row per replication (figures and counters)."""
        rows = [{"replication": r.replication, **r.figures, **{f"n_{k}": v for k, v in r.counters.items()}} for r in self.reps]
        return pd.DataFrame(rows)

    @property
    def summary(self) -> dict:
        from simsip._version import __version__

        figures = summarize_figures([r.figures for r in self.reps])
        return {
            "scenario": self.config.name,
            "status": self.status,
            "error": self.error,
            "seed": self.seed,
            "replications_requested": self.config.replications,
            "replications_done": len(self.reps),
            "simsip_version": __version__,
            "python": platform.python_version(),
            "runtime_s": round(self.runtime_s, 3),
            "intervals": INTERVAL_METHODS,
            "recovery_quantiles": "Kaplan–Meier: phones not recovered by the run end are right-censored there; "
                                  "mean null with not_reached > 0 means beyond the run end",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "figures": figures,
            # per node: how REGISTER load went (offered vs served, drops, duplicates, whether an overload cleared)
            "storm": summarize_storm([r.storm for r in self.reps]),
            "engine": engine_summary([r.engine for r in self.reps]),
        }

    def figures(self) -> dict:
        """The report's plotly figures (same code path as ``report.html``)."""
        from simsip.report import build_figures

        return build_figures(self)

    # ------------------------------------------------------------------ writing
    def _tables(self) -> dict[str, pd.DataFrame]:
        tables = {"timeseries": self.timeseries, "faults": self.faults, "vip": self.vip, "replications": self.per_replication}
        if self.config.output.per_phone:
            tables["outages"] = self.outages
            tables["recovery"] = self.recovery
        if self.config.trunks:
            tables["trunk_outages"] = self.trunk_outages
        return tables

    def write(self, out_dir: str | os.PathLike, report: bool = True) -> Path:
        """Write (or rewrite) the whole run directory, file by file atomically, the summary last
        (``report``: also the page)."""
        out = Path(out_dir)
        _make_dir(out)
        self.out_dir = out
        fmt = self.config.output.format
        _atomic_text(out / "config.resolved.yaml", resolved_yaml(self.config))
        for name, df in self._tables().items():
            _atomic_table(out / f"{name}.{fmt}", df, fmt)
        if report and self.config.output.report and self.reps:
            from simsip.report import write_report

            write_report(self, out / "report.html")
        self._write_summary(out)
        return out

    def _write_summary(self, out: Path) -> None:
        _atomic_text(out / "summary.json", json.dumps(_jsonable(self.summary), indent=2) + "\n")

    def _start(self, out: Path) -> None:
        """Step 1 of a run directory: ``status: running``, nothing of an earlier run left."""
        _make_dir(out)
        self.out_dir = out
        self.status = "running"
        for p in out.glob(".*.tmp"):  # a write cut short by kill -9
            p.unlink(missing_ok=True)
        shutil.rmtree(out / "parts", ignore_errors=True)
        for name in (*_TABLE_FILES, "report.html"):
            for p in out.glob(f"{name}.*") if name != "report.html" else [out / name]:
                if p.suffix in (".csv", ".parquet", ".html"):
                    p.unlink(missing_ok=True)
        _atomic_text(out / "config.resolved.yaml", resolved_yaml(self.config))
        self._write_summary(out)

    def _write_part(self, out: Path, rep: RepMetrics) -> None:
        """Step 2: one finished replication's tables, then the summary that counts it."""
        fmt = self.config.output.format
        part = out / "parts" / f"{rep.replication:06d}"
        names = ["timeseries", "faults", "vip"] + (["outages", "recovery"] if self.config.output.per_phone else [])
        names += ["trunk_outages"] if self.config.trunks else []
        for name in names:
            _atomic_table(part / f"{name}.{fmt}", getattr(rep, name), fmt)
        self._write_summary(out)

    def _finish(self, out: Path, status: str) -> None:
        """Step 3: the combined tables and the page, the summary with the final status last."""
        self.status = status
        self.write(out)
        shutil.rmtree(out / "parts", ignore_errors=True)


_TABLE_FILES = ("timeseries", "outages", "recovery", "faults", "vip", "trunk_outages", "replications")


def _make_dir(out: Path) -> None:
    """Create a run directory; a path that is a file or not writable is the user's to fix."""
    problem = output_dir_problem(out)
    if problem:
        raise ConfigError([problem])


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, np.integer):
        return int(x)
    return x


def _atomic_text(path: Path, text: str) -> None:
    atomic_text(path, text)


def engine_summary(reps: list[dict]) -> dict:
    """How the replications were simulated, summed: registrations applied in bulk, and the
    refreshes that fell back to the event path with their reasons (``bulk_fallbacks``), or why a
    scenario ran without bulk refreshes (``bulk_disabled``); records folded by record compaction
    and the replications rerun without it (``records_refolded``). Never a result: the metrics are
    the same either way."""
    reps = [r for r in reps if r]
    if not reps:
        return {}
    out: dict = {"bulk": all(r.get("bulk") for r in reps),
                 "bulk_disabled": sorted({r["bulk_disabled"] for r in reps if r.get("bulk_disabled")}) or None}
    fallbacks: dict[str, int] = {}
    for r in reps:
        for k, v in (r.get("bulk_fallbacks") or {}).items():
            fallbacks[k] = fallbacks.get(k, 0) + v
    for key in ("bulk_registrations", "calendar_to_events", "bulk_seconds"):
        out[key] = sum(r.get(key, 0) for r in reps)
    out["bulk_fallbacks"] = dict(sorted(fallbacks.items()))
    # record compaction: saves and 200 OKs folded into an earlier record, and the replications that
    # had to run again unfolded (an out-of-order record folding could not represent)
    out["records_folded"] = sum(r.get("records_folded", 0) for r in reps)
    out["records_refolded"] = sum(1 for r in reps if r.get("records_refolded"))
    return out


def _atomic_table(path: Path, df: pd.DataFrame, fmt: str) -> None:
    atomic_table(path, df, fmt, float_format="%.6g")


def simulate(
    config: Scenario | str | os.PathLike,
    *,
    seed: int | None = None,
    replications: int | None = None,
    out: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    tick: Callable[[int, float, int], None] | None = None,
    per_phone: bool = True,
    tables: bool = True,
) -> Results:
    """Run every replication of a scenario and compute its results.

    ``per_phone=False`` leaves the per-phone tables (outages, recovery) empty — every figure is
    computed all the same; a sweep or a plan point keeps only those. ``tables=False`` keeps
    nothing but the figures and counters of each replication (``per_replication``): every table
    is empty and there are no storm figures (what a sweep point or a plan candidate needs; not
    with ``out``).

    ``progress(done, total)`` is called after each replication; ``tick(replication, t,
    transactions)`` during one, with its simulated time and the REGISTER transactions started.

    With ``out`` the run directory is (re)written after each replication, and also when a
    replication fails or the run is interrupted (the error is recorded in ``summary.json``).
    """
    from simsip.engine.model import Model

    if out is not None and not tables:
        raise ValueError("simulate: a run directory (out=...) needs the tables (tables=True)")
    cfg = config if isinstance(config, Scenario) else load_config(config)
    cfg = _with_run_options(cfg, seed, replications)
    res = Results(config=cfg, seed=cfg.seed)
    out_dir = Path(out) if out is not None else None
    t_start = time.perf_counter()
    if out_dir is not None:
        res._start(out_dir)
    try:
        with terminate_as_interrupt():
            for r in range(cfg.replications):
                model = Model(cfg, replication=r, figures_only=not tables)  # records what the figures read
                log = model.run() if tick is None else model.run(progress=lambda t, n, r=r: tick(r, t, n))
                calls = model.streams.generator("calls")
                del model  # the phones' and nodes' state: the metrics need only the log (memory at the peak)
                if cfg.phones >= 200_000:  # its components refer to each other: freed now, not during the metrics
                    release(collect=True)
                res.reps.append(compute(cfg, log, r, calls, per_phone=per_phone, tables=tables))
                res.runtime_s = time.perf_counter() - t_start
                if out_dir is not None:
                    res._write_part(out_dir, res.reps[-1])
                if progress:
                    progress(r + 1, cfg.replications)
    except KeyboardInterrupt as exc:
        what = f"signal {exc.signum}" if isinstance(exc, Terminated) else "the user (Ctrl-C)"
        res.error = f"interrupted by {what} after %d replication(s)" % len(res.reps)
        res.runtime_s = time.perf_counter() - t_start
        if out_dir is not None:
            with no_interrupts():
                res._finish(out_dir, "interrupted")
        res.status = "interrupted"
        raise
    except Exception as exc:
        res.error = f"{type(exc).__name__}: {exc}\n" + traceback.format_exc(limit=8)
        res.runtime_s = time.perf_counter() - t_start
        if out_dir is not None:
            with no_interrupts():
                res._finish(out_dir, "error")
        res.status = "error"
        raise
    res.runtime_s = time.perf_counter() - t_start
    res.status = "ok"
    if out_dir is not None:
        with terminate_as_interrupt():
            try:
                res._finish(out_dir, "ok")
            except KeyboardInterrupt:  # while combining: the replications are all done, say so
                res.error = "interrupted while writing the combined tables"
                with no_interrupts():
                    res._finish(out_dir, "interrupted")
                res.status = "interrupted"
                raise
    return res
