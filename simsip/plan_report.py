"""Figures for capacity-planning reviews: heatmaps, CI bands, Pareto fronts, tornado charts.

A sweep answers "how does the loss move with these knobs": a **heatmap** of a figure's mean over
two factors and **CI bands** (mean and 95 % interval against one factor, one line per level of a
second) show it. A plan answers "which setting": the **Pareto front** (loss vs steady load vs
storm peak, screened estimates and simulated candidates), and the **tornado** chart (how far each
knob, moved one level either way, moves the loss around the recommendation). Both reports are one
self-contained HTML page (plotly.js embedded, no CDN), written atomically.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

if TYPE_CHECKING:  # pragma: no cover
    from simsip.plan import PlanResult
    from simsip.sweep import SweepResult

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _label(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def heatmap_figure(points: pd.DataFrame, x: str, y: str, figure: str = "unreachable_phone_seconds") -> go.Figure:
    """Mean of ``figure`` over two factors (other factors averaged)."""
    col = f"{figure}_mean"
    piv = points.groupby([y, x])[col].mean().unstack(x)
    fig = go.Figure(go.Heatmap(z=piv.to_numpy(), x=[_label(v) for v in piv.columns], y=[_label(v) for v in piv.index],
                               colorscale="Viridis", colorbar=dict(title=figure)))
    fig.update_layout(title=f"{figure} (mean over replications) by {x} and {y}", xaxis_title=x, yaxis_title=y,
                      xaxis_type="category", yaxis_type="category")
    return fig


def ci_band_figure(points: pd.DataFrame, x: str, figure: str = "unreachable_phone_seconds",
                   group: str | None = None, max_groups: int = 8) -> go.Figure:
    """Mean and 95 % CI of ``figure`` against factor ``x`` (one band per level of ``group``)."""
    fig = go.Figure()
    groups = [(None, points)] if group is None else list(points.groupby(group, sort=True))
    if len(groups) > max_groups:
        idx = np.linspace(0, len(groups) - 1, max_groups).round().astype(int)
        groups = [groups[i] for i in sorted(set(idx.tolist()))]
    for i, (g, df) in enumerate(groups):
        d = df.groupby(x)[[f"{figure}_mean", f"{figure}_ci_low", f"{figure}_ci_high"]].mean().reset_index().sort_values(x)
        c = _COLORS[i % len(_COLORS)]
        name = figure if g is None else f"{group}={_label(g)}"
        xs = d[x].tolist()
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=d[f"{figure}_ci_high"].tolist() + d[f"{figure}_ci_low"].tolist()[::-1],
                                 fill="toself", line=dict(width=0), fillcolor=_rgba(c, 0.18), hoverinfo="skip",
                                 showlegend=False))
        fig.add_trace(go.Scatter(x=xs, y=d[f"{figure}_mean"], mode="lines+markers", name=name, line=dict(color=c)))
    fig.update_layout(title=f"{figure}: mean and 95 % CI against {x}", xaxis_title=x, yaxis_title=figure)
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def pareto_figure(screen: pd.DataFrame, candidates: pd.DataFrame, recommended: int | None = None) -> go.Figure:
    """Loss vs steady load (marker size: storm peak): screened set, its front, simulated candidates."""
    fig = go.Figure()
    s = screen
    if len(s):
        fig.add_trace(go.Scattergl(x=s["est_steady_register_rate"], y=s["est_unreachable_phone_seconds"], mode="markers",
                                   name="screened (closed forms)", marker=dict(color="#bbbbbb", size=5),
                                   text=s["est_peak_register_rate"].map(lambda v: f"storm peak ≈ {v:.3g}/s")))
        ok = s[s["screen_ok"]]
        fig.add_trace(go.Scattergl(x=ok["est_steady_register_rate"], y=ok["est_unreachable_phone_seconds"], mode="markers",
                                   name="passed screening", marker=dict(color="#2ca02c", size=6, opacity=0.6)))
        fr = s[s["pareto"]].sort_values("est_steady_register_rate")
        fig.add_trace(go.Scatter(x=fr["est_steady_register_rate"], y=fr["est_unreachable_phone_seconds"],
                                 mode="lines+markers", name="Pareto front (screened, feasible)",
                                 line=dict(color="#2ca02c", dash="dot")))
    if len(candidates):
        c = candidates
        peak = c.get("peak_register_rate_mean", pd.Series(np.ones(len(c))))
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
    fig.update_layout(title="Pareto front: loss vs steady load (storm peak as size)",
                      xaxis_title="steady REGISTER rate (1/s)", yaxis_title="unreachable phone-seconds per fault",
                      yaxis_type="log")
    return fig


def tornado_figure(sens: pd.DataFrame) -> go.Figure:
    """One bar per variable: the change of the figure when that variable moves one level down/up."""
    fig = go.Figure()
    if not len(sens):
        return fig
    figure = sens["figure"].iloc[0]
    order = sens.groupby("variable")["swing"].first().sort_values().index.tolist()
    for side, color in (("low", "#1f77b4"), ("high", "#d62728")):
        d = sens[sens["side"] == side].set_index("variable").reindex(order)
        fig.add_trace(go.Bar(y=order, x=d["delta"], orientation="h", name=f"one level {side}er" if side == "low" else "one level higher",
                             marker_color=color, text=[_label(v) if v == v else "" for v in d["value"]],
                             textposition="auto"))
    fig.update_layout(barmode="overlay", title=f"Sensitivity of {figure} around the recommended point (tornado)",
                      xaxis_title=f"Δ {figure} vs the recommended point", yaxis_title="")
    return fig


def _page(title: str, intro: str, figs: dict[str, go.Figure], tables: list[tuple[str, pd.DataFrame]]) -> str:
    parts = [pio.to_html(f, include_plotlyjs=False, full_html=False, div_id=f"fig-{n}") for n, f in figs.items()]
    tabs = "".join(f"<h2>{html.escape(t)}</h2>" + df.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0,
                                                             classes="tbl") for t, df in tables if len(df))
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}} .tbl{{border-collapse:collapse;font-size:12px}}
.tbl td,.tbl th{{padding:2px 6px;border-bottom:1px solid #ddd}} .msg{{padding:8px;background:#f4f4f4}}</style>
</head><body><h1>{html.escape(title)}</h1><div class="msg">{intro}</div>
{''.join(parts)}{tabs}</body></html>
"""


def _write(path: Path, text: str) -> None:
    from simsip.sweep import atomic_text

    atomic_text(path, text)


def sweep_figures(res: "SweepResult", figure: str = "unreachable_phone_seconds") -> dict[str, go.Figure]:
    pts = res.points
    fc = [c for c in res.factor_columns if pts[c].nunique() > 1] if len(pts) else []
    figs: dict[str, go.Figure] = {}
    if f"{figure}_mean" not in pts.columns:
        return figs
    num = [c for c in fc if pd.api.types.is_numeric_dtype(pts[c])]
    if len(fc) >= 2:
        figs["heatmap"] = heatmap_figure(pts, fc[0], fc[1], figure)
    if fc:
        x = num[0] if num else fc[0]
        other = next((c for c in fc if c != x), None)
        figs["ci_bands"] = ci_band_figure(pts, x, figure, other)
        if "steady_register_rate_mean" in pts:
            figs["ci_bands_load"] = ci_band_figure(pts, x, "peak_register_rate", other)
    return figs


def write_sweep_report(res: "SweepResult", path: Path, figure: str = "unreachable_phone_seconds") -> None:
    figs = sweep_figures(res, figure)
    intro = html.escape(f"{res.spec.name}: {len(res.points)} points × replications, factors "
                        f"{', '.join(res.factor_columns)}; common random numbers: {res.spec.common_random_numbers}.")
    cols = ["point", *res.factor_columns] + [c for c in res.points.columns if c.startswith(figure)]
    _write(path, _page(f"simsip sweep: {res.spec.name}", intro, figs, [("Points", res.points[cols])]))


def write_plan_report(res: "PlanResult", path: Path) -> None:
    rec = res.recommendation["candidate"] if res.recommendation else None
    figs = {"pareto": pareto_figure(res.screen, res.candidates, rec)}
    if len(res.sensitivity):
        figs["tornado"] = tornado_figure(res.sensitivity)
    var_cols = [f.column for f in res.spec.variables]
    num = [c for c in var_cols if pd.api.types.is_numeric_dtype(res.screen[c]) and res.screen[c].nunique() > 1]
    if len(num) >= 2:
        scr = res.screen.rename(columns={"est_unreachable_phone_seconds": "loss_mean"})
        figs["heatmap"] = heatmap_figure(scr, num[0], num[1], "loss")
        figs["heatmap"].update_layout(title=f"Screened loss (closed form, phone·s) by {num[0]} and {num[1]}")
    cand = res.candidates
    if len(cand) and var_cols:
        cb = cand.copy()
        figs["candidates_ci"] = go.Figure()
        for i, c in enumerate(res.spec.constraints):
            if f"{c.figure}_mean" not in cb:
                continue
            figs["candidates_ci"].add_trace(go.Scatter(
                x=cb["candidate"], y=cb[f"{c.figure}_mean"] / (c.limit or 1), mode="markers", name=c.text,
                error_y=dict(type="data", symmetric=False,
                             array=(cb[f"{c.figure}_ci_high"] - cb[f"{c.figure}_mean"]) / (c.limit or 1),
                             arrayminus=(cb[f"{c.figure}_mean"] - cb[f"{c.figure}_ci_low"]) / (c.limit or 1)),
                marker=dict(color=_COLORS[i % len(_COLORS)])))
        figs["candidates_ci"].add_hline(y=1.0, line=dict(color="black", dash="dash"))
        figs["candidates_ci"].update_layout(title="Simulated candidates: each constrained figure / its limit (95 % CI)",
                                            xaxis_title="candidate", yaxis_title="figure / limit")
    head = "Feasible" if res.status == "feasible" else "INFEASIBLE"
    intro = (f"<b>{head}.</b> {html.escape(res.message)}<br>Screened analytically: "
             f"{html.escape(', '.join(res.screened_figures) or '-')}; confirmed by simulation: "
             f"{html.escape(', '.join(res.simulated_figures))}. {len(res.screen)} combinations screened "
             f"({res.invalid_combinations} invalid), {len(res.candidates)} simulated × {res.spec.replications} replications.")
    show = ["candidate", *var_cols, "status"] + [c for c in cand.columns if c.startswith("margin[")]
    _write(path, _page(f"simsip plan: {res.spec.name}", intro, figs,
                       [("Simulated candidates", cand[[c for c in show if c in cand]]),
                        ("Sensitivity", res.sensitivity)]))
