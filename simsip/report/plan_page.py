"""The plan page: which setting meets the SLO, and how sure we are.

The capacity planner (:mod:`simsip.plan`) screens every combination of the decision variables with
closed forms, simulates the best candidates with replications, and recommends the feasible one
that is best on the objectives — or says that no setting satisfies the SLO. The page shows the
**Pareto front** (loss against steady load, storm peak as marker size) of the screened set and of
the simulated candidates, each candidate's constrained figures against their limits with 95 %
intervals, the screened loss over two variables, and the **tornado** chart: how far each knob,
moved one level either way, moves the first objective around the recommendation.

It reads a :class:`PlanData` built from :class:`simsip.plan.PlanResult`
(:meth:`PlanData.from_result`) or from a plan directory (:meth:`PlanData.from_dir`).
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .sweep_page import design_slices, heatmap_figure
from .toolkit import COLORS, ReportError, figure_block, label, layout, page, table_block, write_page


@dataclass(frozen=True)
class Limit:
    """One SLO term as the page draws it: the figure, its limit, the text the user wrote."""

    figure: str
    limit: float
    text: str


@dataclass
class PlanData:
    """What the plan page shows (the parts of a PlanResult a reader needs)."""

    name: str
    status: str  # "feasible" or "infeasible"
    message: str
    variables: list[str]  # the decision variables' columns
    constraints: list[Limit]
    replications: int
    screen: pd.DataFrame  # one row per combination: variables, est_<figure>, screen_ok, pareto
    candidates: pd.DataFrame  # one row per simulated candidate: variables, <figure>_mean/_ci_low/_ci_high, status
    sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)
    screened_figures: list[str] = field(default_factory=list)
    simulated_figures: list[str] = field(default_factory=list)
    invalid_combinations: int = 0
    recommended: int | None = None  # the recommended candidate's number
    run_dir: Path | None = field(default=None, compare=False)

    @classmethod
    def from_result(cls, res: Any) -> "PlanData":
        """From :class:`simsip.plan.PlanResult`."""
        spec = res.spec
        return cls(
            name=str(spec.name), status=res.status, message=res.message,
            variables=[f.column for f in spec.variables],
            constraints=[Limit(c.figure, float(c.limit), c.text) for c in spec.constraints],
            replications=int(spec.replications), screen=res.screen, candidates=res.candidates,
            sensitivity=res.sensitivity, screened_figures=list(res.screened_figures),
            simulated_figures=list(res.simulated_figures), invalid_combinations=int(res.invalid_combinations),
            recommended=int(res.recommendation["candidate"]) if res.recommendation else None,
            run_dir=getattr(res, "out_dir", None),
        )

    @classmethod
    def from_dir(cls, run_dir: str | os.PathLike) -> "PlanData":
        """From a plan directory: ``plan.json`` and the screen/candidates/sensitivity tables."""
        d = Path(run_dir)
        try:
            summ = json.loads((d / "plan.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ReportError(f"{d / 'plan.json'}: cannot read: {exc}") from None
        tables: dict[str, pd.DataFrame] = {}
        for name in ("screen", "candidates", "sensitivity"):
            pq, csv = d / f"{name}.parquet", d / f"{name}.csv"
            try:
                if pq.is_file():
                    tables[name] = pd.read_parquet(pq)
                elif csv.is_file() and csv.stat().st_size > 1:
                    tables[name] = pd.read_csv(csv)
                else:
                    tables[name] = pd.DataFrame()
            except pd.errors.EmptyDataError:
                tables[name] = pd.DataFrame()
            except (OSError, ValueError) as exc:
                raise ReportError(f"{d}: cannot read {name} table: {exc}") from None
        pick = summ.get("recommendation") or summ.get("closest") or {}
        constraints = [Limit(str(c["figure"]), float(c["limit"]), str(c.get("slo") or c["figure"]))
                       for c in pick.get("constraints") or []]
        rec = summ.get("recommendation")
        return cls(
            name=str(summ.get("plan") or d.name), status=str(summ.get("status") or "infeasible"),
            message=str(summ.get("message") or ""), variables=list((pick.get("settings") or {}).keys()),
            constraints=constraints, replications=int(summ.get("replications") or 0), screen=tables["screen"],
            candidates=tables["candidates"], sensitivity=tables["sensitivity"],
            screened_figures=list(summ.get("screened_figures") or []),
            simulated_figures=list(summ.get("simulated_figures") or []),
            invalid_combinations=int(summ.get("invalid_combinations") or 0),
            recommended=int(rec["candidate"]) if rec else None, run_dir=d,
        )


def as_plan_data(source: Any) -> PlanData:
    """A :class:`PlanData` from a PlanResult or a plan directory."""
    if isinstance(source, PlanData):
        return source
    if isinstance(source, (str, os.PathLike)):
        return PlanData.from_dir(source)
    return PlanData.from_result(source)


def is_plan_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / "plan.json").is_file()


# =============================================================================== figures
def plan_pareto_figure(screen: pd.DataFrame, candidates: pd.DataFrame, recommended: int | None = None) -> go.Figure:
    """Loss vs steady load (marker size: storm peak): screened set, its front, simulated candidates."""
    fig = go.Figure()
    s = screen
    if len(s):
        fig.add_trace(go.Scattergl(x=s["est_steady_register_rate"], y=s["est_unreachable_phone_seconds"], mode="markers",
                                   name="screened (closed forms)", marker=dict(color="#bbbbbb", size=5),
                                   text=s["est_peak_register_rate"].map(lambda v: f"storm peak ≈ {v:.3g}/s")))
        ok = s[s["screen_ok"].astype(bool)]
        fig.add_trace(go.Scattergl(x=ok["est_steady_register_rate"], y=ok["est_unreachable_phone_seconds"], mode="markers",
                                   name="passed screening", marker=dict(color="#2ca02c", size=6, opacity=0.6)))
        fr = s[s["pareto"].astype(bool)].sort_values("est_steady_register_rate")
        fig.add_trace(go.Scatter(x=fr["est_steady_register_rate"], y=fr["est_unreachable_phone_seconds"],
                                 mode="lines+markers", name="Pareto front (screened, feasible)",
                                 line=dict(color="#2ca02c", dash="dot")))
    if len(candidates):
        c = candidates
        peak = c["peak_register_rate_mean"] if "peak_register_rate_mean" in c else pd.Series(np.ones(len(c)))
        size = 10 + 20 * (peak - peak.min()) / (peak.max() - peak.min() + 1e-12)
        colors = c["status"].map({"feasible": "#1f77b4", "marginal": "#ff7f0e", "infeasible": "#d62728"})
        fig.add_trace(go.Scatter(
            x=c["steady_register_rate_mean"], y=c["unreachable_phone_seconds_mean"], mode="markers",
            name="simulated candidates (size: storm peak)", marker=dict(color=colors, size=size, line=dict(width=1)),
            error_y=dict(type="data", symmetric=False,
                         array=c["unreachable_phone_seconds_ci_high"] - c["unreachable_phone_seconds_mean"],
                         arrayminus=c["unreachable_phone_seconds_mean"] - c["unreachable_phone_seconds_ci_low"]),
            text=[f"candidate {int(k)}: {st}, peak {p:.3g}/s" for k, st, p in zip(c["candidate"], c["status"], peak)]))
        if recommended is not None:
            r = c[c["candidate"] == recommended]
            fig.add_trace(go.Scatter(x=r["steady_register_rate_mean"], y=r["unreachable_phone_seconds_mean"],
                                     mode="markers", name="recommended",
                                     marker=dict(symbol="star", size=22, color="gold", line=dict(width=1, color="black"))))
    return layout(fig, "Pareto front: loss vs steady load (storm peak as size)",
                  xaxis_title="steady REGISTER rate (1/s)", yaxis_title="unreachable phone-seconds per fault",
                  yaxis_type="log", legend=dict(orientation="h", y=-0.2))


def tornado_figure(sens: pd.DataFrame) -> go.Figure:
    """One bar per variable: the change of the figure when that variable moves one level down/up."""
    fig = go.Figure()
    if not len(sens):
        return fig
    figure = sens["figure"].iloc[0]
    order = sens.groupby("variable")["swing"].first().sort_values().index.tolist()
    for side, color in (("low", "#1f77b4"), ("high", "#d62728")):
        d = sens[sens["side"] == side].set_index("variable").reindex(order)
        fig.add_trace(go.Bar(y=order, x=d["delta"], orientation="h", name="one level lower" if side == "low" else "one level higher",
                             marker_color=color, text=[label(v) if v == v else "" for v in d["value"]],
                             textposition="auto"))
    return layout(fig, f"Sensitivity of {figure} around the recommended point (tornado)", barmode="overlay",
                  xaxis_title=f"Δ {figure} vs the recommended point", yaxis_title="", legend=dict(orientation="h", y=-0.2))


def candidates_figure(candidates: pd.DataFrame, constraints: list[Limit]) -> go.Figure:
    """Each simulated candidate's constrained figures divided by their limits, with 95 % intervals."""
    fig = go.Figure()
    for i, c in enumerate(constraints):
        if f"{c.figure}_mean" not in candidates:
            continue
        scale = c.limit or 1
        cb = candidates
        fig.add_trace(go.Scatter(
            x=cb["candidate"], y=cb[f"{c.figure}_mean"] / scale, mode="markers", name=c.text,
            error_y=dict(type="data", symmetric=False,
                         array=(cb[f"{c.figure}_ci_high"] - cb[f"{c.figure}_mean"]) / scale,
                         arrayminus=(cb[f"{c.figure}_mean"] - cb[f"{c.figure}_ci_low"]) / scale),
            marker=dict(color=COLORS[i % len(COLORS)])))
    fig.add_hline(y=1.0, line=dict(color="black", dash="dash"))
    return layout(fig, "Simulated candidates: each constrained figure / its limit (95 % CI)",
                  xaxis_title="candidate", yaxis_title="figure / limit", legend=dict(orientation="h", y=-0.2))


def build_plan_figures(plan_result: Any) -> dict[str, go.Figure]:
    """The Pareto front, the tornado, the screened-loss heatmap and the candidates against their limits."""
    data = as_plan_data(plan_result)
    figs = {"pareto": plan_pareto_figure(data.screen, data.candidates, data.recommended)}
    if len(data.sensitivity):
        figs["tornado"] = tornado_figure(data.sensitivity)
    scr = data.screen
    num = [c for c in data.variables if c in scr and pd.api.types.is_numeric_dtype(scr[c]) and scr[c].nunique() > 1]
    if len(num) >= 2:
        (words, sub), = design_slices(scr, num[:2], list(data.variables), "est_unreachable_phone_seconds",
                                      max_facets=0)
        figs["heatmap"] = heatmap_figure(sub, num[0], num[1], "est_unreachable_phone_seconds",
                                         title=f"Screened loss (closed form, phone·s) by {num[0]} and {num[1]}"
                                               + (f" — {words}" if words else ""))
    if len(data.candidates) and data.variables:
        figs["candidates_ci"] = candidates_figure(data.candidates, data.constraints)
    return figs


PLAN_CAPTIONS = {
    "pareto": "Grey: every screened combination (closed-form estimates); green: those within the screening "
              "tolerance and their front; coloured: the simulated candidates with 95 % intervals (blue feasible, "
              "orange marginal, red infeasible); star: the recommendation.",
    "tornado": "How far the first objective moves when one variable moves one level either way from the "
               "recommended (or closest) setting.",
    "heatmap": "The screened loss estimate over the first two numeric variables; every other variable is fixed at "
               "the level of the least-loss combination, as the title says (never averaged over).",
    "candidates_ci": "Below the dashed line a constraint is met; a candidate is feasible when every interval's "
                     "relevant bound is.",
}


def render_plan_report(plan_result: Any) -> str:
    """The HTML text of the plan page (from a PlanResult, a PlanData or a plan directory)."""
    data = as_plan_data(plan_result)
    figs = build_plan_figures(data)
    head = "Feasible" if data.status == "feasible" else "INFEASIBLE"
    intro = (f"<b>{head}.</b> {html.escape(data.message)}<br>Screened analytically: "
             f"{html.escape(', '.join(data.screened_figures) or '-')}; confirmed by simulation: "
             f"{html.escape(', '.join(data.simulated_figures))}. {len(data.screen)} combinations screened "
             f"({data.invalid_combinations} invalid), {len(data.candidates)} simulated × {data.replications} replications.")
    cand = data.candidates
    show = ["candidate", *data.variables, "status"] + [c for c in cand.columns if c.startswith("margin[")]
    body = [f"<h1>simsip plan: {html.escape(data.name)}</h1>", f'<div class="msg">{intro}</div>']
    body += [figure_block(n, f, PLAN_CAPTIONS.get(n, "")) for n, f in figs.items()]
    body.append(table_block("Simulated candidates", cand[[c for c in show if c in cand]]))
    body.append(table_block("Sensitivity", data.sensitivity))
    return page(f"simsip plan — {data.name}", "\n".join(body))


def write_plan_report(plan_result: Any, path: str | os.PathLike) -> Path:
    """Write the plan page of a PlanResult (or PlanData, plan directory) to ``path``."""
    return write_page(path, render_plan_report(plan_result))
