"""The capacity planner: which timers keep registration loss under the SLO without melting the registrar?

A *plan* names a base scenario, *decision variables* (config paths with candidate values or
ranges: expiry, refresh point, retry timers, VRRP version and advert interval, replication mode,
registrar workers, ...) and an *SLO*: constraints on the figures a failover produces, e.g.::

    slo:
      - recovery_p99 <= 60s              # 99 % of phones reachable again within a minute
      - unreachable_phone_seconds <= 20000
      - peak_load_vs_capacity <= 0.8     # the REGISTER storm stays under 80 % of capacity
      - steady_register_rate <= 10/s     # steady-state refresh load
    objectives: [unreachable_phone_seconds, steady_register_rate, peak_register_rate]

The planner works in three steps:

1. **Screen** every combination of the variables with the closed forms of :mod:`simsip.analytic`
   (steady load N/R, the VRRP takeover MDI − A/2, the no-replication loss window integrated over
   advert and refresh phases, the retransmission storm, Erlang C). Thousands of combinations take
   seconds. A combination passes when every screened figure is within ``screen_tolerance`` of its
   limit (the closed forms are expectations, the simulator has noise and effects they omit).
2. **Confirm** the best ``candidates`` by simulation with ``replications`` replications (common
   random numbers): every constrained figure gets a mean and a 95 % CI. A candidate is *feasible*
   when the CI upper bound of each ``<=`` figure (lower bound of each ``>=``) meets its limit.
3. **Recommend** the feasible candidate that is best on the objectives (in order), with the margin
   of every constraint (limit − CI bound) — or say plainly that **no setting satisfies the SLO**,
   with the closest candidate and what it misses by. A one-at-a-time **sensitivity** run around the
   recommendation gives the tornado data (which knob moves the first objective most).

The result also lists which figures were screened analytically and which were only simulated, the
Pareto front (loss vs steady load vs storm peak) of the screened set and of the simulated
candidates. :func:`plan` returns a :class:`PlanResult` (and with ``out`` writes its tables with
:func:`write_plan`); the self-contained HTML report is the caller's to write
(``simsip.write_plan_report(result, path)``; ``simsip plan`` does).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import Field, field_validator, model_validator

from simsip.analytic import SCREENED_FIGURES, NotScreenable, screen
from simsip.config.loader import ConfigError, resolved_yaml
from simsip.config.schema import Scenario
from simsip.io import output_dir_problem
from simsip.metrics import FIGURE_HELP, ci95
from simsip.sweep import (
    BaseScenario,
    Factor,
    _Spec,
    _quantity,
    _resolve_path,
    _written,
    atomic_table,
    atomic_text,
    factor_levels,
    load_base,
    load_spec_document,
    simulate_points,
    validate_spec,
)

_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*(\S.*?)\s*$")


# ----------------------------------------------------------------------------- spec
class Constraint(_Spec):
    """One SLO term: a figure, a comparison and a limit (units allowed: '60s', '10/s')."""

    figure: str
    op: Literal["<=", ">=", "<", ">"]
    limit: float
    text: str = ""
    kind: str | None = None  # the limit's unit: 'duration', 'rate' or None (a bare number)

    @property
    def upper(self) -> bool:
        return self.op in ("<=", "<")

    def violation(self, value: float) -> float:
        """Relative violation (≤ 0: met): (value − limit)/|limit| for an upper bound."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return math.inf
        scale = abs(self.limit) or 1.0
        return (value - self.limit) / scale if self.upper else (self.limit - value) / scale

    def met(self, value: float) -> bool:
        if value is None or math.isnan(value):
            return False
        return {"<=": value <= self.limit, "<": value < self.limit, ">=": value >= self.limit, ">": value > self.limit}[self.op]


def parse_constraint(item: Any) -> Constraint:
    if isinstance(item, dict):
        item = dict(item)
        lim = item.get("limit")
        num, _ = _quantity(lim)
        if num is None:
            raise ValueError(f"limit {lim!r} is not a number or a quantity with a unit")
        return Constraint(figure=item.get("figure", ""), op=item.get("op", "<="), limit=num,
                          text=f"{item.get('figure')} {item.get('op', '<=')} {lim}", kind=_quantity(lim)[1])
    if not isinstance(item, str):
        raise ValueError(f"write a constraint as 'figure <= limit', got {item!r}")
    m = _CONSTRAINT.match(item)
    if not m:
        raise ValueError(f"cannot read {item!r}: write 'figure <= limit' (e.g. 'recovery_p99 <= 60s')")
    fig, op, raw = m.groups()
    num, kind = _quantity(raw)
    if num is None:
        try:
            num = float(raw)
        except ValueError:
            raise ValueError(f"limit {raw!r} is not a number or a quantity with a unit ('60s', '10/s')") from None
    return Constraint(figure=fig, op=op, limit=num, text=item.strip(), kind=kind)


#: The unit kind a figure's limit may carry, from the figure's unit (other figures take a bare number).
_LIMIT_KIND = {"s": "duration", "1/s": "rate"}


def check_constraint(c: Constraint) -> None:
    """A limit must be a finite number, in the figure's own kind of unit (no rate on a duration)."""
    if not math.isfinite(c.limit):
        raise ValueError(f"{c.text!r}: the limit must be a finite number, got {c.limit}")
    unit = FIGURE_HELP.get(c.figure, ("",))[0]
    want = _LIMIT_KIND.get(unit)
    if c.kind is not None and c.kind != want:
        if want is None:
            raise ValueError(f"{c.text!r}: {c.figure} is a count or sum{' in ' + unit if unit else ''}, not a "
                             f"{c.kind}: write a bare number")
        example = "60s" if want == "duration" else "10/s"
        raise ValueError(f"{c.text!r}: {c.figure} is a {want} ({unit}), the limit is a {c.kind}: write e.g. "
                         f"'{c.figure} {c.op} {example}'")


def _unit(c: dict) -> str:
    """' s', ' 1/s' or '' after a constraint's number in a message."""
    return f" {c['unit']}" if c.get("unit") else ""


def as_set(f: Factor, value: Any) -> str:
    """``path=value`` for ``--set``: a duration or rate written with its unit, as the variable's
    values (or range) were written in the plan."""
    first = (f.values or list(f.range or ()))[:1]
    kind = _quantity(first[0])[1] if first else None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif kind is not None and isinstance(value, (int, float)):
        text = _written(float(value), kind, False)
    elif isinstance(value, float) and value.is_integer() and isinstance(first[0] if first else None, int):
        text = str(int(value))
    else:
        text = str(value)
    return f"{f.path}={text}"


class Sensitivity(_Spec):
    replications: int = Field(5, ge=2, le=10_000)
    figure: str | None = Field(None, description="Figure of the tornado (default: the first objective).")
    enabled: bool = True


class PlanSpec(_Spec):
    """A plan: base scenario, decision variables, SLO, objectives."""

    name: str = Field("plan", min_length=1, max_length=128)
    description: str = ""
    base: str | dict[str, Any]
    set: list[str] = Field(default_factory=list)
    variables: list[Factor] = Field(..., min_length=1, max_length=32)
    slo: list[Any] = Field(..., min_length=1, max_length=64)
    objectives: list[str] = Field(
        default_factory=lambda: ["unreachable_phone_seconds", "steady_register_rate", "peak_register_rate"], min_length=1
    )
    candidates: int = Field(5, ge=1, le=1000, description="Screened combinations confirmed by simulation.")
    replications: int = Field(8, ge=2, le=100_000, description="Replications per simulated candidate.")
    screen_tolerance: float = Field(0.25, ge=0, le=10, description="Relative slack allowed at screening.")
    max_combinations: int = Field(200_000, ge=1)
    sensitivity: Sensitivity = Field(default_factory=Sensitivity)

    @field_validator("slo")
    @classmethod
    def _slo(cls, v: list[Any]) -> list[Any]:
        out = []
        for item in v:
            c = parse_constraint(item)
            if c.figure not in FIGURE_HELP and c.figure not in SCREENED_FIGURES:
                raise ValueError(f"unknown figure {c.figure!r} in {item!r} (figures: {', '.join(sorted(FIGURE_HELP))})")
            check_constraint(c)
            out.append(c)
        return out

    @model_validator(mode="after")
    def _vars(self) -> "PlanSpec":
        for i, f in enumerate(self.variables):
            if f.range is not None and f.levels is None:
                raise ValueError(f"variables[{i}] ({f.path}): a range needs 'levels' (the planner screens a grid)")
        known = set(FIGURE_HELP) | set(SCREENED_FIGURES) | {f.column for f in self.variables}
        for i, o in enumerate(self.objectives):  # an unknown objective is the user's, not a KeyError later
            if o not in known:
                raise ValueError(f"objectives[{i}]: unknown objective {o!r} (allowed: a figure — "
                                 f"{', '.join(sorted(FIGURE_HELP))} — or a variable's column)")
        fig = self.sensitivity.figure
        if fig is not None and fig not in known:
            raise ValueError(f"sensitivity.figure: unknown figure {fig!r} (allowed: {', '.join(sorted(FIGURE_HELP))})")
        return self

    @property
    def constraints(self) -> list[Constraint]:
        return list(self.slo)


# ----------------------------------------------------------------------------- result
@dataclass
class PlanResult:
    spec: PlanSpec
    status: Literal["feasible", "infeasible"]
    message: str
    screen: pd.DataFrame  # one row per combination: variables, est_<figure>, screen_ok, violation
    candidates: pd.DataFrame  # one row per simulated candidate: variables, <fig>_mean/_ci_low/_ci_high, status
    runs: pd.DataFrame  # per (candidate, replication)
    recommendation: dict[str, Any] | None
    closest: dict[str, Any] | None
    sensitivity: pd.DataFrame
    pareto_screen: pd.DataFrame
    pareto_candidates: pd.DataFrame
    screened_figures: list[str]
    simulated_figures: list[str]
    invalid_combinations: int = 0
    invalid_example: str = ""
    runtime_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    out_dir: Path | None = None
    base_config: Scenario | None = None  # the resolved base scenario (written to plan.resolved.yaml)

    @property
    def feasible(self) -> pd.DataFrame:
        return self.candidates[self.candidates["status"] == "feasible"]

    def summary(self) -> dict[str, Any]:
        return {
            "plan": self.spec.name,
            "status": self.status,
            "message": self.message,
            "slo": [c.text for c in self.spec.constraints],
            "objectives": self.spec.objectives,
            "combinations": int(len(self.screen)),
            "invalid_combinations": self.invalid_combinations,
            "invalid_example": self.invalid_example,
            "screen_passed": int(self.screen["screen_ok"].sum()) if len(self.screen) else 0,
            "simulated_candidates": int(len(self.candidates)),
            "replications": self.spec.replications,
            "feasible_candidates": int((self.candidates["status"] == "feasible").sum()) if len(self.candidates) else 0,
            "screened_figures": self.screened_figures,
            "simulated_figures": self.simulated_figures,
            "recommendation": self.recommendation,
            "closest": self.closest,
            "runtime_s": round(self.runtime_s, 3),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }


# ----------------------------------------------------------------------------- helpers
def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Rows not dominated by another (all objectives minimised; NaN rows are dominated)."""
    v = np.asarray(values, dtype=float)
    n = v.shape[0]
    ok = ~np.isnan(v).any(axis=1)
    mask = ok.copy()
    order = np.lexsort(v.T[::-1])
    for i in order:
        if not mask[i]:
            continue
        dom = ok & np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1)
        if dom.any():
            mask[i] = False
    # duplicates of a front point stay on the front
    return mask if n else np.zeros(0, dtype=bool)


def _json(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def load_plan(spec_or_path: "str | os.PathLike | PlanSpec | dict") -> tuple[PlanSpec, BaseScenario, str]:
    if isinstance(spec_or_path, PlanSpec):
        doc, source, rel = load_spec_document(data=spec_or_path.model_dump(mode="python", exclude={"slo"})
                                              | {"slo": [c.text for c in spec_or_path.constraints]})
        spec = spec_or_path
    else:
        if isinstance(spec_or_path, dict):
            doc, source, rel = load_spec_document(data=spec_or_path, source="<plan>")
        else:
            doc, source, rel = load_spec_document(path=spec_or_path)
        spec = validate_spec(doc, source, PlanSpec, "a plan must be a mapping (name, base, variables, slo, ...)")
    base = load_base(doc, source, rel, spec.base, spec.set)
    return spec, base, source


# ----------------------------------------------------------------------------- the planner
def plan(spec_or_path: "str | os.PathLike | PlanSpec | dict", *, out: str | os.PathLike | None = None,
         workers: int | None = None, dask: str | None = None, progress: bool = False) -> PlanResult:
    """Screen every combination, simulate the best candidates, recommend (see the module docstring).

    With ``out`` the result is also written there (:func:`write_plan`: plan.json and the tables).
    The report page is the caller's (``simsip plan`` writes ``report.html`` with
    :func:`simsip.write_plan_report`).
    """
    t_start = time.perf_counter()
    spec, base, source = load_plan(spec_or_path)
    if out is not None:  # before any work: an output path that is a file or read-only is the user's
        problem = output_dir_problem(out)
        if problem:
            raise ConfigError([problem])
    if dask:
        from simsip.sweep import check_dask_address

        check_dask_address(dask)
    cons = spec.constraints
    var_cols = [f.column for f in spec.variables]
    levels = [factor_levels(f) for f in spec.variables]
    n_comb = math.prod(len(lv) for lv in levels)
    if n_comb > spec.max_combinations:
        raise ConfigError([f"{source}: variables: {n_comb} combinations exceed max_combinations {spec.max_combinations}"])
    timings: dict[str, float] = {}

    def say(msg: str) -> None:
        if progress:
            print(f"{spec.name}: {msg}", file=sys.stderr, flush=True)

    # ---- 1. screening
    t0 = time.perf_counter()
    rows = []
    invalid = 0
    invalid_example = ""
    overrides_of: list[dict[str, Any]] = []
    screened_ok_any = False
    for combo in itertools.product(*levels):
        ov = dict(zip([f.path for f in spec.variables], combo))
        try:
            cfg = base.point(ov)
        except ConfigError as exc:
            invalid += 1
            if not invalid_example:
                invalid_example = exc.problems[0]
            continue
        dump = cfg.model_dump(mode="python")
        row: dict[str, Any] = {"combination": len(rows)}
        row.update({f.column: _resolve_path(dump, f.path) for f in spec.variables})
        try:
            est = screen(cfg)
            row["screenable"] = True
        except NotScreenable:
            est = {}
            row["screenable"] = False
        for k in SCREENED_FIGURES:
            row[f"est_{k}"] = est.get(k, math.nan)
        viol = []
        for c in cons:
            v = est.get(c.figure, math.nan)
            viol.append(c.violation(v) if not math.isnan(v) else -math.inf)  # unscreened: decided by simulation
        row["violation"] = max(viol) if viol else 0.0
        row["screen_ok"] = bool(row["violation"] <= spec.screen_tolerance)
        screened_ok_any |= row["screen_ok"]
        rows.append(row)
        overrides_of.append(ov)
    scr = pd.DataFrame(rows)
    if scr.empty:
        raise ConfigError([f"{source}: no valid combination of the variables ({invalid} invalid; e.g. {invalid_example})"])
    timings["screen"] = time.perf_counter() - t0
    say(f"screened {len(scr)} combinations ({invalid} invalid) in {timings['screen']:.1f}s; "
        f"{int(scr['screen_ok'].sum())} pass")

    def objective_key(df: pd.DataFrame, prefix: str) -> list[str]:
        cols = []
        for o in spec.objectives:
            cols.append(o if o in df.columns else f"{prefix}{o}")
        return cols

    obj_est = objective_key(scr, "est_")
    front_cols = [c for c in ("est_unreachable_phone_seconds", "est_steady_register_rate", "est_peak_register_rate")]
    scr["pareto"] = pareto_mask(scr[front_cols].to_numpy()) & scr["screen_ok"].to_numpy()

    # ---- 2. choose candidates
    K = spec.candidates
    ok = scr[scr["screen_ok"]]
    if len(ok):
        by_obj = ok.sort_values(obj_est + ["violation", "combination"], kind="stable")
        by_slack = ok.sort_values(["violation", *obj_est, "combination"], kind="stable")
        chosen: list[int] = []
        for df in (by_obj.head(K // 2 + 1), ok[ok["pareto"]].sort_values(obj_est), by_slack):
            for c in df["combination"].tolist():
                if len(chosen) >= K:
                    break
                if c not in chosen:
                    chosen.append(c)
    else:
        chosen = scr.sort_values(["violation", *obj_est, "combination"], kind="stable")["combination"].head(K).tolist()
    say(f"simulating {len(chosen)} candidate(s) × {spec.replications} replications")

    # ---- 3. confirm by simulation
    t0 = time.perf_counter()
    cand_ov = [overrides_of[c] for c in chosen]
    runs = simulate_points(base, cand_ov, replications=spec.replications, workers=workers, dask=dask, columns=[])
    runs = runs.rename(columns={"point": "candidate"})
    runs.insert(1, "combination", [chosen[k] for k in runs["candidate"]])
    timings["simulate"] = time.perf_counter() - t0
    figs = [c for c in runs.columns if c not in ("candidate", "combination", "replication")
            and pd.api.types.is_numeric_dtype(runs[c])]
    crow = []
    for k, comb in enumerate(chosen):
        g = runs[runs["candidate"] == k]
        srow = scr.loc[scr["combination"] == comb].iloc[0]
        row = {"candidate": k, "combination": comb, **{c: srow[c] for c in var_cols}}
        for f in figs:
            st = ci95([float(x) for x in g[f].tolist()], name=f)
            row[f"{f}_mean"], row[f"{f}_ci_low"], row[f"{f}_ci_high"] = st["mean"], st["ci_low"], st["ci_high"]
        worst = -math.inf
        all_ci, all_mean = True, True
        for c in cons:
            bound = row.get(f"{c.figure}_ci_high" if c.upper else f"{c.figure}_ci_low", math.nan)
            mean = row.get(f"{c.figure}_mean", math.nan)
            row[f"margin[{c.text}]"] = (c.limit - bound) if c.upper else (bound - c.limit)
            all_ci &= c.met(bound)
            all_mean &= c.met(mean)
            worst = max(worst, c.violation(bound))
        row["violation"] = worst
        row["status"] = "feasible" if all_ci else ("marginal" if all_mean else "infeasible")
        crow.append(row)
    cands = pd.DataFrame(crow)
    obj_sim = objective_key(cands, "")
    obj_sim = [c if c in cands.columns and c in var_cols else f"{c}_mean" for c in obj_sim]
    pf = [c for c in ("unreachable_phone_seconds_mean", "steady_register_rate_mean", "peak_register_rate_mean") if c in cands]
    cands["pareto"] = pareto_mask(cands[pf].to_numpy()) if pf else False

    # ---- 4. recommend
    rec = closest = None
    feas = cands[cands["status"] == "feasible"]

    def describe(row: pd.Series) -> dict[str, Any]:
        d: dict[str, Any] = {"candidate": int(row["candidate"]), "combination": int(row["combination"]),
                             "settings": {c: _json(row[c]) for c in var_cols},
                             "set": [as_set(f, _json(row[f.column])) for f in spec.variables], "constraints": []}
        for c in cons:
            d["constraints"].append({
                "slo": c.text, "figure": c.figure, "limit": c.limit, "unit": FIGURE_HELP.get(c.figure, ("",))[0],
                "mean": _json(row.get(f"{c.figure}_mean")), "ci_low": _json(row.get(f"{c.figure}_ci_low")),
                "ci_high": _json(row.get(f"{c.figure}_ci_high")),
                "margin": _json(row.get(f"margin[{c.text}]")),
                "met_by_ci": bool(c.met(row.get(f"{c.figure}_ci_high" if c.upper else f"{c.figure}_ci_low"))),
                "screened": c.figure in SCREENED_FIGURES,
            })
        d["objectives"] = {o: _json(row.get(f"{o}_mean", row.get(o))) for o in spec.objectives}
        return d

    if len(feas):
        best = feas.sort_values(obj_sim + ["candidate"], kind="stable").iloc[0]
        rec = describe(best)
        rec["confidence"] = ("every constrained figure's 95 % CI bound over "
                             f"{spec.replications} replications meets its limit (one-sided ≥ 97.5 % each)")
        settings = " ".join(f"--set {x}" for x in rec["set"])
        tight = min(rec["constraints"], key=lambda x: (x["margin"] if x["margin"] is not None else math.inf)
                    / (abs(x["limit"]) or 1))
        status = "feasible"
        message = (f"Recommended: {settings}. Tightest constraint: {tight['slo']} "
                   f"(95 % CI bound {_fmt(tight['ci_high'])}{_unit(tight)}, margin {_fmt(tight['margin'])}{_unit(tight)}). {len(feas)} of {len(cands)} simulated candidates satisfy the SLO.")
        centre = best
    else:
        status = "infeasible"
        worst_row = cands.sort_values(["violation", *obj_sim], kind="stable").iloc[0]
        closest = describe(worst_row)
        misses = [x for x in closest["constraints"] if not x["met_by_ci"]]
        miss_txt = "; ".join(
            f"{x['slo']}: CI bound {_fmt(x['ci_high'] if x['margin'] is not None else None)}{_unit(x)} misses by "
            f"{_fmt(-x['margin'] if x['margin'] is not None else None)}{_unit(x)}"
            for x in misses)
        settings = " ".join(f"--set {x}" for x in closest["set"])
        message = (f"No setting satisfies the SLO. {len(scr)} combinations screened "
                   f"({int(scr['screen_ok'].sum())} passed screening), {len(cands)} simulated; none meets every "
                   f"constraint. Closest: {settings} — {miss_txt}.")
        centre = worst_row
    say(message)

    # ---- 5. sensitivity (one at a time around the recommendation / the closest candidate)
    t0 = time.perf_counter()
    sens = pd.DataFrame()
    if spec.sensitivity.enabled:
        fig = spec.sensitivity.figure or spec.objectives[0]
        comb = int(centre["combination"])
        centre_ov = overrides_of[comb]
        batch = [centre_ov]
        meta = [("(centre)", None, None)]
        for f, lv in zip(spec.variables, levels):
            cur = centre_ov[f.path]
            i = lv.index(cur)
            for side, j in (("low", i - 1), ("high", i + 1)):
                if 0 <= j < len(lv):
                    ov = {**centre_ov, f.path: lv[j]}
                    try:
                        base.point(ov)
                    except ConfigError:
                        continue
                    batch.append(ov)
                    meta.append((f.column, side, lv[j]))
        sruns = simulate_points(base, batch, replications=spec.sensitivity.replications, workers=workers, dask=dask,
                                columns=[])
        means = sruns.groupby("point")[fig].mean() if fig in sruns.columns else pd.Series(dtype=float)
        base_val = float(means.get(0, math.nan))
        srows = []
        for k, (col, side, val) in enumerate(meta):
            if side is None:
                continue
            srows.append({"variable": col, "side": side, "value": json.dumps(val) if isinstance(val, (dict, list)) else val,
                          "centre_value": centre_ov[next(f.path for f in spec.variables if f.column == col)],
                          "figure": fig, "mean": float(means.get(k, math.nan)), "centre_mean": base_val,
                          "delta": float(means.get(k, math.nan)) - base_val})
        sens = pd.DataFrame(srows)
        if len(sens):
            swing = sens.groupby("variable")["delta"].agg(lambda d: float(np.nanmax(np.abs(d))))
            sens["swing"] = sens["variable"].map(swing)
            sens = sens.sort_values(["swing", "variable", "side"], ascending=[False, True, True], kind="stable")
            sens = sens.reset_index(drop=True)
    timings["sensitivity"] = time.perf_counter() - t0

    screened = sorted({c.figure for c in cons if c.figure in SCREENED_FIGURES} | {
        o for o in spec.objectives if o in SCREENED_FIGURES})
    simulated = sorted({c.figure for c in cons} | {o for o in spec.objectives if o not in var_cols})
    res = PlanResult(
        spec=spec, status=status, message=message, screen=scr, candidates=cands, runs=runs, recommendation=rec,
        closest=closest, sensitivity=sens, pareto_screen=scr[scr["pareto"]].reset_index(drop=True),
        pareto_candidates=cands[cands["pareto"]].reset_index(drop=True), screened_figures=screened,
        simulated_figures=simulated, invalid_combinations=invalid, invalid_example=invalid_example,
        runtime_s=time.perf_counter() - t_start, timings=timings, base_config=base.resolved,
    )
    if out is not None:
        write_plan(res, out)
    return res


def _fmt(x: Any) -> str:
    return "?" if x is None else f"{x:.4g}"


def write_plan(res: PlanResult, out: str | os.PathLike) -> Path:
    """The plan directory: plan.json, plan.resolved.yaml, screen/candidates/runs/sensitivity tables
    (each written atomically). The report page is written by a report writer, not here."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res.out_dir = out
    atomic_text(out / "plan.json", json.dumps(_json(res.summary()), indent=2) + "\n")
    spec_dump = res.spec.model_dump(mode="json", exclude={"base", "slo"}) | {"slo": [c.text for c in res.spec.constraints]}
    resolved = {"plan": spec_dump}
    if res.base_config is not None:
        resolved["base"] = yaml.safe_load(resolved_yaml(res.base_config))
    atomic_text(out / "plan.resolved.yaml", yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
    for name, df in (("screen", res.screen), ("candidates", res.candidates), ("runs", res.runs),
                     ("sensitivity", res.sensitivity)):
        atomic_table(out / f"{name}.csv", df)
        if name in ("screen", "runs"):
            atomic_table(out / f"{name}.parquet", df)
    return out
