"""Sweeps: one scenario, many settings, replications with common random numbers.

A *sweep* asks how the registration loss moves when one or more knobs move: it takes a base
scenario, a list of *factors* (any config path, e.g. ``fleets.0.phone.expires`` or
``ha.vrrp.advert_int``, each with a list of values or a range), and a *design* that picks the
points to simulate — the full ``grid``, ``random`` points, or a Latin hypercube (``lhs``). Every
point is the base scenario with the factor values written in (exactly as ``--set`` would), then
validated once; each point runs ``replications`` replications.

**Common random numbers.** With ``common_random_numbers: true`` (the default) every point uses the
base scenario's seed and replication numbers 0..n−1. simsip's named random streams then hand every
point the same refresh phases, advert phase, delays, … so the difference between two points is
the effect of the knob, not of the dice: comparisons are far sharper than with independent seeds.
With ``false`` each point gets its own seed derived from (base seed, point number).

**Tables.** ``runs``: one tidy row per (point, replication) — the point number, its factor values
(as validated: durations in seconds) and every figure of :attr:`simsip.api.Results.per_replication`.
``points``: one row per point with ``<figure>_mean``, ``<figure>_ci_low``, ``<figure>_ci_high``
(Student-t 95 %, :func:`simsip.metrics.ci95`). Both are sorted by (point, replication), so they
do not depend on which executor ran the points or in what order they finished.

**Nothing lost.** With an output directory, each finished point is written atomically as
``points/<k>.parquet`` the moment it completes; ``manifest.json`` holds a fingerprint of the
resolved base scenario, the factors and the design. Running the same sweep again resumes: only
missing points are computed, and the final ``runs``/``points`` tables are identical to an
uninterrupted run. A changed base config or factors is refused (or started afresh with ``fresh``).
A sweep computes and keeps results; it writes no report page — that is the caller's
(``simsip sweep`` adds ``report.html``; in Python: ``simsip.write_sweep_report(result, path)``).

Spec file::

    name: expiry-vs-advert
    base: ../quickstart.yaml          # a scenario file (relative to this file) or an inline mapping
    set: ["output.report=false"]      # optional overrides applied to the base first
    factors:
      - {path: fleets.0.phone.expires, values: [60s, 120s, 300s]}
      - {path: ha.vrrp.advert_int, range: [1s, 5s], levels: 5, step: 1s}
    design: grid                      # grid | random | lhs   (random/lhs: points, seed)
    replications: 5
    common_random_numbers: true

Executors: serial, local processes (``workers``), or Dask (``dask="tcp://host:8786"`` or
``"local"`` for a LocalCluster; Dask is an optional extra imported only when asked for).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import numpy as np
import pandas as pd
import yaml

from simsip.io import atomic_text, atomic_write, output_dir_problem, terminate_as_interrupt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simsip.config.loader import (
    ConfigError,
    Located,
    _apply_profiles,
    _apply_set,
    _resolve_extends,
    format_validation,
    parse_yaml,
    read_yaml,
    resolved_yaml,
    validate,
)
from simsip.config.schema import Scenario

log = logging.getLogger("simsip.sweep")

SPEC_VERSION = 1


# ----------------------------------------------------------------------------- spec
class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Factor(_Spec):
    """One knob: a config path and its values (a list, or a range with levels)."""

    path: str = Field(..., min_length=1, description="Config path as for --set, e.g. fleets.0.phone.expires.")
    values: list[Any] | None = Field(None, min_length=1, description="Explicit values (as written in a scenario).")
    range: tuple[Any, Any] | None = Field(None, description="[low, high]: numbers or quantities with units ('30s').")
    levels: int | None = Field(None, ge=1, le=100_000, description="Grid levels over the range (evenly spaced).")
    step: Any | None = Field(None, description="Round range values to multiples of this (e.g. 1s for VRRPv2).")
    log: bool = Field(False, description="Space or sample the range logarithmically.")
    name: str | None = Field(None, description="Column name (default: the path).")

    @model_validator(mode="after")
    def _one_source(self) -> "Factor":
        if (self.values is None) == (self.range is None):
            raise ValueError("give either 'values' or 'range'")
        if self.range is not None:
            lo, hi = (_quantity(v)[0] for v in self.range)
            if lo is None or hi is None:
                raise ValueError(f"range bounds must be numbers or quantities with a unit, got {list(self.range)}")
            if hi < lo:
                raise ValueError(f"range needs low <= high, got {list(self.range)}")
            if self.log and lo <= 0:
                raise ValueError("a log range needs low > 0")
            if self.step is not None and (_quantity(self.step)[0] or 0) <= 0:
                raise ValueError(f"step must be > 0, got {self.step!r}")
        return self

    @property
    def column(self) -> str:
        return self.name or self.path


class SweepSpec(_Spec):
    """A sweep: base scenario, factors, design, replications."""

    name: str = Field("sweep", min_length=1, max_length=128, description="Sweep name.")
    description: str = Field("", description="What the sweep asks.")
    base: str | dict[str, Any] = Field(..., description="Scenario file (relative to the spec) or inline scenario.")
    set: list[str] = Field(default_factory=list, description="Overrides applied to the base (path=value).")
    factors: list[Factor] = Field(..., min_length=1, max_length=64)
    design: Literal["grid", "random", "lhs"] = Field("grid")
    points: int | None = Field(None, ge=1, le=1_000_000, description="Points for random/lhs designs.")
    seed: int = Field(0, ge=0, description="Seed of the design (random/lhs), not of the simulation.")
    replications: int | None = Field(None, ge=1, le=100_000, description="Replications per point (default: base).")
    common_random_numbers: bool = Field(True, description="Every point uses the same seed and replication numbers.")

    @model_validator(mode="after")
    def _design(self) -> "SweepSpec":
        if self.design in ("random", "lhs") and self.points is None:
            raise ValueError(f"design {self.design!r} needs 'points'")
        if self.design == "grid":
            for i, f in enumerate(self.factors):
                if f.range is not None and f.levels is None:
                    raise ValueError(f"factors[{i}] ({f.path}): a grid over a range needs 'levels'")
        cols = [f.column for f in self.factors]
        dup = sorted({c for c in cols if cols.count(c) > 1})
        if dup:
            raise ValueError(f"factor given twice: {', '.join(dup)}")
        return self


# ----------------------------------------------------------------------------- quantities
def _quantity(value: Any) -> tuple[float | None, str | None]:
    """(number, unit kind) for 30, '30s' (duration) or '2/h' (rate); (None, None) otherwise."""
    from simsip.units import UnitError, parse_duration, parse_rate

    if isinstance(value, bool):
        return None, None
    if isinstance(value, (int, float)):
        return float(value), None
    if isinstance(value, str):
        for kind, parse in (("duration", parse_duration), ("rate", parse_rate)):
            try:
                return float(parse(value)), kind
            except (UnitError, ValueError, TypeError):
                pass
    return None, None


def _written(x: float, kind: str | None, integer: bool) -> Any:
    """A generated value written back as a scenario value (with a unit when the range had one)."""
    if integer:
        return int(round(x))
    x = float(f"{x:.12g}")
    if kind == "duration":
        return f"{x:g}s" if abs(x) >= 1e-3 or x == 0 else f"{x * 1e6:.12g}us"
    if kind == "rate":
        return f"{x:.12g}/s"
    return x


def _range_values(f: Factor, unit_points: np.ndarray) -> list[Any]:
    """Map points in [0, 1] onto the factor's range (with log spacing and step rounding)."""
    (lo, kind), (hi, _) = _quantity(f.range[0]), _quantity(f.range[1])
    integer = kind is None and all(isinstance(v, int) and not isinstance(v, bool) for v in f.range)
    if f.log:
        xs = np.exp(np.log(lo) + unit_points * (np.log(hi) - np.log(lo)))
    else:
        xs = lo + unit_points * (hi - lo)
    if f.step is not None:
        st = _quantity(f.step)[0]
        xs = np.clip(np.round(xs / st) * st, math.ceil(lo / st - 1e-9) * st, math.floor(hi / st + 1e-9) * st)
    return [_written(float(x), kind, integer) for x in xs]


def factor_levels(f: Factor) -> list[Any]:
    """The grid levels of a factor (its values, or ``levels`` evenly spaced over its range)."""
    if f.values is not None:
        return list(f.values)
    n = f.levels or 1
    pts = np.linspace(0.0, 1.0, n) if n > 1 else np.array([0.5])
    out: list[Any] = []
    for v in _range_values(f, pts):  # step rounding may merge neighbours
        if v not in out:
            out.append(v)
    return out


def design_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The points of a design: one {path: value} mapping per point, in a fixed order."""
    if spec.design == "grid":
        levels = [factor_levels(f) for f in spec.factors]
        return [dict(zip([f.path for f in spec.factors], combo)) for combo in itertools.product(*levels)]
    n = int(spec.points or 1)
    d = len(spec.factors)
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0x5EE9]))
    if spec.design == "random":
        u = rng.random((n, d))
    else:  # Latin hypercube: one point in each of n equal slices of every factor
        from scipy.stats import qmc

        u = qmc.LatinHypercube(d=d, seed=rng).random(n)
    cols: list[list[Any]] = []
    for j, f in enumerate(spec.factors):
        if f.values is not None:
            idx = np.minimum((u[:, j] * len(f.values)).astype(int), len(f.values) - 1)
            cols.append([f.values[i] for i in idx])
        else:
            cols.append(_range_values(f, u[:, j]))
    return [{f.path: cols[j][i] for j, f in enumerate(spec.factors)} for i in range(n)]


# ----------------------------------------------------------------------------- loading
def validate_spec(doc, source: str, model: type, shape: str):
    """Validate a spec document into ``model``; errors name the file, line and key."""
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{source}:1: {shape}"])
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise _spec_error(exc, doc, source) from None


def _spec_error(exc: ValidationError, doc: Located, source: str) -> ConfigError:
    return ConfigError(format_validation(exc, doc, source))


def load_spec_document(path: str | os.PathLike | None = None, text: str | None = None,
                       data: dict | None = None, source: str = "<sweep>") -> tuple[Located, str, Path]:
    """The spec's YAML document (with lines), its source name and the directory paths are relative to."""
    if path is not None:
        p = Path(path)
        return read_yaml(p), str(p), p.resolve().parent
    if text is not None:
        return parse_yaml(text, source), source, Path.cwd()
    return Located(copy.deepcopy(data), {}), source, Path.cwd()


@dataclass
class BaseScenario:
    """The base scenario of a sweep or plan as a merged document, ready for per-point overrides."""

    doc: Located  # after 'extends' and 'set', before profiles
    source: str
    resolved: Scenario

    _profiled: Located | None = None

    def _with_profiles(self, doc: Located) -> Located:
        try:
            _apply_profiles(doc)
        except (TypeError, AttributeError, KeyError) as exc:
            raise ConfigError([f"{self.source}: cannot apply profiles: {exc}"]) from None
        return doc

    def point_document(self, overrides: dict[str, Any]) -> Located:
        """The base document with ``overrides`` written in, exactly as ``--set`` would.

        Profiles merge *under* the values written in a scenario, so when no override touches a
        ``profile`` key, applying the overrides to the profiled base is the same and skips reading
        the profile files again (this is what makes screening thousands of points cheap).
        """
        touches_profile = any("profile" in p.split(".") for p in overrides)
        if touches_profile:
            src = self.doc
        else:
            if self._profiled is None:
                self._profiled = self._with_profiles(Located(copy.deepcopy(self.doc.data), dict(self.doc.where)))
            src = self._profiled
        doc = Located(copy.deepcopy(src.data), dict(src.where))
        for path, value in overrides.items():
            _apply_set(doc, f"{path}={json.dumps(value)}")
        return self._with_profiles(doc) if touches_profile else doc

    def point(self, overrides: dict[str, Any], label: str = "") -> Scenario:
        """The validated scenario of one point (errors name the factor that broke it)."""
        doc = self.point_document(overrides)
        try:
            return validate(doc, self.source)
        except ConfigError as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
            raise ConfigError([f"{label}{' ' if label else ''}({shown}): {p}" for p in exc.problems]) from None


def load_base(spec_doc: Located, spec_source: str, rel: Path, base: Any, sets: Iterable[str],
              key: str = "base") -> BaseScenario:
    """Read the base scenario named (or written inline) in a sweep/plan spec."""
    at = spec_doc.where.get((key,), spec_source)
    if isinstance(base, str):
        p = Path(base)
        if not p.is_absolute():
            p = rel / p
        if not p.is_file():
            raise ConfigError([f"{at}: {key}: scenario file {base!r} not found (looked in {p})"])
        doc = _resolve_extends(read_yaml(p), p)
        source = str(p)
    elif isinstance(base, dict):
        sub = {w[1:]: v for w, v in spec_doc.where.items() if w[:1] == (key,)}
        doc = _resolve_extends(Located(copy.deepcopy(base), sub), rel / Path(spec_source).name)
        source = spec_source
    else:
        raise ConfigError([f"{at}: {key}: a scenario file name or an inline scenario mapping"])
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{source}:1: a scenario must be a mapping of keys (name, duration, fleets, ...)"])
    for s in sets:
        _apply_set(doc, s)
    bs = BaseScenario(doc=doc, source=source, resolved=None)  # type: ignore[arg-type]
    bs.resolved = validate(bs.point_document({}), source)
    return bs


def _resolve_path(dump: Any, path: str) -> Any:
    """The validated value at a --set style path (fleets by index or name)."""
    node = dump
    for p in path.split("."):
        if isinstance(node, (list, tuple)):
            if p.lstrip("-").isdigit():
                node = node[int(p)]
            else:
                node = next((it for it in node if isinstance(it, dict) and it.get("name") == p), None)
        elif isinstance(node, dict):
            node = node.get(p)
        else:
            return None
    if isinstance(node, (dict, list, tuple)):
        return json.dumps(node, sort_keys=True, default=str)
    return node


@dataclass
class PreparedSweep:
    """A validated sweep: the spec, base scenario, and every point's scenario."""

    spec: SweepSpec
    base: BaseScenario
    overrides: list[dict[str, Any]]
    configs: list[dict[str, Any]]  # Scenario.model_dump() per point (picklable, executor-neutral)
    factor_values: list[dict[str, Any]]
    fingerprint: str
    source: str

    @property
    def n_points(self) -> int:
        return len(self.configs)


def _derived_seed(seed: int, k: int) -> int:
    return int(np.random.SeedSequence([seed, k, 0xC0FFEE]).generate_state(1, dtype=np.uint64)[0] >> 1)


def prepare(spec_or_path: "str | os.PathLike | SweepSpec | dict", *, text: str | None = None) -> PreparedSweep:
    """Validate a sweep spec and every point of its design (errors: file:line: key: problem)."""
    if isinstance(spec_or_path, SweepSpec):
        doc, source, rel = load_spec_document(data=spec_or_path.model_dump(mode="python"))
        spec = spec_or_path
    else:
        if isinstance(spec_or_path, dict):
            doc, source, rel = load_spec_document(data=spec_or_path)
        elif text is not None:
            doc, source, rel = load_spec_document(text=text, source=str(spec_or_path))
        else:
            doc, source, rel = load_spec_document(path=spec_or_path)
        spec = validate_spec(doc, source, SweepSpec, "a sweep spec must be a mapping (name, base, factors, ...)")
    base = load_base(doc, source, rel, spec.base, spec.set)
    overrides = design_points(spec)
    configs, fvals = [], []
    for k, ov in enumerate(overrides):
        cfg = base.point(ov, label=f"{source}: point {k}")
        upd: dict[str, Any] = {}
        if spec.replications is not None:
            upd["replications"] = spec.replications
        if not spec.common_random_numbers:
            upd["seed"] = _derived_seed(base.resolved.seed, k)
        dump = {**cfg.model_dump(mode="python"), **upd}
        configs.append(dump)
        fvals.append({f.column: _resolve_path(dump, f.path) for f in spec.factors})
    fp = fingerprint(spec, base.resolved)
    return PreparedSweep(spec, base, overrides, configs, fvals, fp, source)


def fingerprint(spec: SweepSpec, base: Scenario) -> str:
    """A hash of what decides the results: the resolved base scenario and the sweep's design."""

    design = spec.model_dump(mode="json", exclude={"name", "description", "base", "set"})
    h = hashlib.sha256()
    h.update(resolved_yaml(base).encode())
    h.update(json.dumps(design, sort_keys=True, default=str).encode())
    h.update(f"spec{SPEC_VERSION}".encode())
    return h.hexdigest()[:24]


# ----------------------------------------------------------------------------- running one point
def run_point(k: int, config: dict[str, Any], factor_values: dict[str, Any]) -> pd.DataFrame:
    """Simulate one point (all its replications): one row per replication. Picklable, pure."""
    from simsip.api import simulate

    cfg = Scenario.model_validate(config)
    res = simulate(cfg, per_phone=False, tables=False)  # a point is its figures and counters: no table to build
    df = res.per_replication
    for col in reversed(list(factor_values)):
        df.insert(0, col, factor_values[col])
    df.insert(0, "point", k)
    return df


# ----------------------------------------------------------------------------- tables
def _ci_columns(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    from simsip.metrics import ci95

    figs = [c for c in runs.columns if c not in keys and c != "replication" and pd.api.types.is_numeric_dtype(runs[c])]
    rows = []
    for k, g in runs.groupby("point", sort=True):
        row: dict[str, Any] = {c: g[c].iloc[0] for c in keys}
        row["replications"] = int(len(g))
        for f in figs:
            st = ci95([float(x) for x in g[f].tolist()], name=f)
            row[f"{f}_mean"] = st["mean"]
            row[f"{f}_ci_low"] = st["ci_low"]
            row[f"{f}_ci_high"] = st["ci_high"]
        rows.append(row)
    return pd.DataFrame(rows)


def tidy(frames: Iterable[pd.DataFrame], factor_cols: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, points) from the per-point frames, in a canonical order."""
    frames = [f for f in frames if len(f)]
    runs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["point", *factor_cols, "replication"])
    runs = runs.sort_values(["point", "replication"], kind="stable").reset_index(drop=True)
    points = _ci_columns(runs, ["point", *factor_cols]) if len(runs) else pd.DataFrame()
    return runs, points


@dataclass
class SweepResult:
    """What a sweep produced."""

    spec: SweepSpec
    runs: pd.DataFrame
    points: pd.DataFrame
    out_dir: Path | None = None
    computed: int = 0  # points simulated by this call (the rest were resumed from disk)
    runtime_s: float = 0.0
    factor_columns: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- persistence
_atomic = atomic_write


def atomic_table(path: Path, df: pd.DataFrame) -> None:
    if path.suffix == ".parquet":
        _atomic(path, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        _atomic(path, lambda tmp: df.to_csv(tmp, index=False))


class SweepDirMismatch(ConfigError):
    """The output directory holds a different sweep."""


def _point_file(out: Path, k: int) -> Path:
    return out / "points" / f"{k:06d}.parquet"


def open_sweep_dir(out: Path, prep: PreparedSweep, fresh: bool) -> set[int]:
    """Create or reopen a sweep directory; the points already done (refuses a different sweep)."""
    man_path = out / "manifest.json"
    problem = output_dir_problem(out)
    if problem:
        raise ConfigError([problem])
    if man_path.exists() and not fresh:
        try:
            man = json.loads(man_path.read_text())
        except (OSError, ValueError) as exc:
            raise SweepDirMismatch([f"{man_path}: unreadable manifest ({exc}); use --fresh to start over"]) from None
        if man.get("fingerprint") != prep.fingerprint:
            raise SweepDirMismatch([
                f"{out}: holds a sweep of a different base config or factors (fingerprint {man.get('fingerprint')} "
                f"vs {prep.fingerprint} now); refusing to mix results. Use --fresh to discard it, or another --out."
            ])
    elif fresh and out.exists():
        for name in ("points",):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("runs.parquet", "runs.csv", "points.parquet", "points.csv", "manifest.json", "report.html"):
            try:
                (out / name).unlink()
            except FileNotFoundError:
                pass
    (out / "points").mkdir(parents=True, exist_ok=True)
    for tmp in (out / "points").glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    from simsip._version import __version__

    manifest = {
        "kind": "simsip-sweep",
        "name": prep.spec.name,
        "fingerprint": prep.fingerprint,
        "points": prep.n_points,
        "replications": prep.configs[0]["replications"] if prep.configs else 0,
        "factors": [f.column for f in prep.spec.factors],
        "common_random_numbers": prep.spec.common_random_numbers,
        "spec": prep.source,
        "simsip_version": __version__,
    }
    atomic_text(man_path, json.dumps(manifest, indent=2) + "\n")
    resolved = {
        "sweep": prep.spec.model_dump(mode="json", exclude={"base"}),
        "base": yaml.safe_load(resolved_yaml(prep.base.resolved)),
        "points": [{"point": k, **ov} for k, ov in enumerate(prep.overrides)],
    }
    atomic_text(out / "sweep.resolved.yaml", yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
    reap_stray_workers(out)
    return {k for k in range(prep.n_points) if _point_file(out, k).exists()}


def read_point(out: Path, k: int) -> pd.DataFrame | None:
    """A finished point's rows, or ``None`` when its file is unreadable or not point ``k``'s (then it
    is set aside as ``<file>.corrupt`` with a message naming it, and the point is computed again)."""
    path = _point_file(out, k)
    problem = None
    try:
        df = pd.read_parquet(path)
        if "point" not in df.columns or not len(df) or not (df["point"] == k).all():
            problem = f"it does not hold point {k}'s rows"
    except Exception as exc:  # pyarrow raises a zoo of types for a damaged file
        problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if problem is None:
        return df
    bad = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, bad)
    except OSError:
        bad = path
    log.warning("%s: unreadable point file (%s); set aside as %s, point %d is computed again", path, problem, bad.name, k)
    print(f"warning: {path}: unreadable point file ({problem}); set aside as {bad.name}, point {k} is computed again",
          file=sys.stderr)
    return None


# ----------------------------------------------------------------------------- worker lifecycle
_PR_SET_PDEATHSIG = 1


def _start_time(pid: int) -> str | None:
    """A process's start time (field 22 of /proc/PID/stat): with the PID, it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _worker_init(registry: str | None, parent: int) -> None:
    """Runs first in every local worker: die with the sweep (Linux parent-death signal), and leave
    a note so that a later sweep in the same directory can reap a worker that outlived it."""
    import signal as _signal

    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(_signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the registry below is the safety net
        pass
    if os.getppid() != parent:  # the sweep died before prctl took effect
        os._exit(1)
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # Ctrl-C is the sweep's to handle, not the workers'
    if registry:
        d = Path(registry)
        d.mkdir(parents=True, exist_ok=True)
        me = os.getpid()
        (d / str(me)).write_text(json.dumps({"pid": me, "start": _start_time(me), "parent": parent,
                                             "parent_start": _start_time(parent)}))


def _workers_dir(out: Path) -> Path:
    return out / ".workers"


def reap_stray_workers(out: Path) -> list[int]:
    """Kill the local workers of an earlier sweep in ``out`` whose sweep process is gone (by PID and
    start time, so a reused PID is never hit); returns their PIDs."""
    import signal as _signal

    killed = []
    d = _workers_dir(out)
    for note in sorted(d.glob("*")) if d.is_dir() else []:
        try:
            info = json.loads(note.read_text())
            pid, start = int(info["pid"]), info["start"]
            parent, parent_start = int(info["parent"]), info["parent_start"]
        except (OSError, ValueError, KeyError, TypeError):
            note.unlink(missing_ok=True)
            continue
        if parent_start is not None and _start_time(parent) == parent_start:
            continue  # that sweep is still running (in another process): not a stray
        if start is not None and _start_time(pid) == start:
            try:
                os.kill(pid, _signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        note.unlink(missing_ok=True)
    if killed:
        print(f"{out}: killed {len(killed)} worker process(es) left by an earlier sweep that was killed: "
              f"{', '.join(map(str, killed))}", file=sys.stderr)
    return killed


# ----------------------------------------------------------------------------- progress
class _Progress:
    """A rich progress bar on a terminal, plain log lines otherwise (or nothing)."""

    def __init__(self, total: int, done: int, mode: bool | str, label: str):
        self.total, self.done, self.t0, self.start_done = total, done, time.perf_counter(), done
        tty = sys.stderr.isatty()
        self.mode = ("bar" if tty else "log") if mode == "auto" else ("log" if mode else "off")
        if mode is True and tty:
            self.mode = "bar"
        self.bar = None
        self.label = label
        if self.mode == "bar":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("ETA"), TimeRemainingColumn(), transient=False)
            self.bar.start()
            self.task = self.bar.add_task(label, total=total, completed=done)

    def step(self, k: int) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        elif self.mode == "log":
            el = time.perf_counter() - self.t0
            new = self.done - self.start_done
            eta = el / new * (self.total - self.done) if new else float("nan")
            print(f"{self.label}: point {k} done ({self.done}/{self.total}, {el:.1f}s elapsed, ETA {eta:.0f}s)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# ----------------------------------------------------------------------------- executors
def _execute(tasks: list[tuple[int, dict, dict]], on_done: Callable[[int, pd.DataFrame], None],
             workers: int | None, dask: str | None, registry: Path | None = None) -> None:
    if not tasks:
        return
    with terminate_as_interrupt():  # SIGTERM ends a sweep the way Ctrl-C does: finished points kept
        if dask:
            _execute_dask(tasks, on_done, workers, dask)
            return
        n = (os.cpu_count() or 1) if workers is None else int(workers)
        if n <= 1 or len(tasks) == 1:
            for k, cfg, fv in tasks:
                on_done(k, run_point(k, cfg, fv))
            return
        _execute_pool(tasks, on_done, min(n, len(tasks)), registry)


def _execute_pool(tasks, on_done, n: int, registry: Path | None) -> None:
    """Local worker processes that die with the sweep (and are stopped at once when it is interrupted)."""
    pool = ProcessPoolExecutor(max_workers=n, initializer=_worker_init,
                               initargs=(str(registry) if registry else None, os.getpid()))
    pending = {pool.submit(run_point, k, cfg, fv): k for k, cfg, fv in tasks}
    try:
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: pending[f]):
                k = pending.pop(fut)
                on_done(k, fut.result())
    except BaseException:
        for fut in pending:
            fut.cancel()
        for proc in list(getattr(pool, "_processes", {}).values()):  # do not wait for running points
            try:
                proc.kill()
            except (OSError, ValueError):
                pass
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if registry is not None:
            shutil.rmtree(registry, ignore_errors=True)


def _execute_dask(tasks, on_done, workers, address: str) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(["--dask needs the optional extra: pip install 'simsip[dask]' (dask[distributed])"]) from None
    cluster = None
    if address == "local":
        n = workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        client = _dask_client(Client, address)
    try:
        futs = [client.submit(run_point, k, cfg, fv, key=f"simsip-point-{k}-{os.getpid()}-{id(tasks)}", pure=False)
                for k, cfg, fv in tasks]
        index = {f.key: k for f, (k, _, _) in zip(futs, tasks)}
        for fut in as_completed(futs):
            on_done(index[fut.key], fut.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


_DASK_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|ucx|inproc)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:[0-9]{1,5})?$")


def check_dask_address(address: str) -> None:
    """Refuse a malformed ``--dask`` value with what is allowed (before anything runs)."""
    if address == "local":
        return
    m = _DASK_ADDRESS.match(address)
    port = int(m.group(3)[1:]) if m and m.group(3) else 8786
    if m is None or not 0 < port < 65536:
        raise ConfigError([f"--dask: value {address!r}: not a Dask scheduler address (allowed: 'local', or "
                           "tcp://HOST:PORT of a running `dask scheduler`, e.g. tcp://127.0.0.1:8786)"])


def _dask_client(Client, address: str, timeout: float = 10.0):
    check_dask_address(address)
    try:
        return Client(address, timeout=f"{timeout:g}s")
    except (OSError, TimeoutError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError([f"--dask: value {address!r}: cannot reach a Dask scheduler there within {timeout:g} s "
                           f"({msg}); start one with `dask scheduler`, or use --dask local"]) from None


# ----------------------------------------------------------------------------- the sweep
def sweep(spec_or_path: "str | os.PathLike | SweepSpec | dict", *, workers: int | None = None,
          out: str | os.PathLike | None = None, dask: str | None = None, fresh: bool = False,
          progress: bool | str = False, formats: tuple[str, ...] = ("parquet", "csv")) -> SweepResult:
    """Run a sweep and return its tables (``.runs``, ``.points``).

    ``workers``: local processes (default: all CPUs; 1 = serial, in this process). ``dask``:
    a scheduler address or ``"local"``. ``out``: a sweep directory (resumable; see the module
    docstring) that receives the point files, the manifest and the ``runs``/``points`` tables in
    ``formats``; ``fresh`` discards what it holds. ``progress``: ``"auto"`` (bar on a TTY, log lines
    otherwise), True (log lines or bar) or False. The report page is the caller's to write
    (``simsip sweep`` writes ``report.html`` with :func:`simsip.write_sweep_report`).
    """
    prep = spec_or_path if isinstance(spec_or_path, PreparedSweep) else prepare(spec_or_path)
    t0 = time.perf_counter()
    factor_cols = [f.column for f in prep.spec.factors]
    frames: dict[int, pd.DataFrame] = {}
    out_dir = Path(out) if out is not None else None
    done: set[int] = set()
    if dask:
        check_dask_address(dask)
    if out_dir is not None:
        done = open_sweep_dir(out_dir, prep, fresh)
        for k in sorted(done):
            df = read_point(out_dir, k)
            if df is None:
                done.discard(k)
            else:
                frames[k] = df
    tasks = [(k, prep.configs[k], prep.factor_values[k]) for k in range(prep.n_points) if k not in done]
    bar = _Progress(prep.n_points, len(done), progress, prep.spec.name)
    if done and progress:
        print(f"{prep.spec.name}: resuming, {len(done)} of {prep.n_points} points already done", file=sys.stderr)

    def on_done(k: int, df: pd.DataFrame) -> None:
        frames[k] = df
        if out_dir is not None:
            atomic_table(_point_file(out_dir, k), df)
        bar.step(k)

    try:
        _execute(tasks, on_done, workers, dask, registry=_workers_dir(out_dir) if out_dir is not None else None)
    finally:
        bar.close()
    runs, points = tidy([frames[k] for k in sorted(frames)], factor_cols)
    res = SweepResult(prep.spec, runs, points, out_dir, computed=len(tasks), runtime_s=time.perf_counter() - t0,
                      factor_columns=factor_cols)
    if out_dir is not None:
        for fmt in formats:
            atomic_table(out_dir / f"runs.{fmt}", runs)
            atomic_table(out_dir / f"points.{fmt}", points)
    return res


def simulate_points(base: BaseScenario, overrides: list[dict[str, Any]], *, replications: int,
                    seed: int | None = None, workers: int | None = None, dask: str | None = None,
                    columns: list[str] | None = None) -> pd.DataFrame:
    """Simulate arbitrary override sets of a base scenario (the planner's confirm step): runs table."""
    tasks = []
    for k, ov in enumerate(overrides):
        cfg = base.point(ov, label=f"candidate {k}")
        dump = {**cfg.model_dump(mode="python"), "replications": int(replications)}
        if seed is not None:
            dump["seed"] = int(seed)
        tasks.append((k, dump, {c: json.dumps(ov.get(c)) if isinstance(ov.get(c), (dict, list)) else ov.get(c)
                                for c in (columns if columns is not None else list(ov))}))
    frames: dict[int, pd.DataFrame] = {}
    _execute(tasks, lambda k, df: frames.__setitem__(k, df), workers, dask)
    return pd.concat([frames[k] for k in sorted(frames)], ignore_index=True) if frames else pd.DataFrame()
