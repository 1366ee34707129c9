"""The comparison page: several designs of one scenario, side by side.

A design review asks "no replication vs DMQ vs shared DB — how many phones does each lose, and for
how long?". The variants run on the same phones and the same fault (common random numbers, see
:mod:`simsip.compare`); this page lines their key figures up with 95 % confidence intervals and
overlays their reachable-phones timelines. Every function takes ``{label: Results}`` (or
:class:`~simsip.report.RunData`).
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from simsip.metrics import COMPARISON_FIGURES

from .run_page import as_run_data, censoring_banner, verdict
from .toolkit import COLORS, figure_block, fmt, layout, page, write_page

NOTEBOOK_FIGURES = ("unreachable_phone_seconds", "phones_affected", "recovery_median", "recovery_p95", "vip_move_time",
                    "peak_register_rate", "conflict_phone_seconds")


def compare_figure(results_by_label: Mapping[str, Any], column: str = "reachable", replication: int = 0) -> go.Figure:
    """One timeseries column of several runs overlaid (e.g. replication modes on the same fault)."""
    fig = go.Figure()
    for i, (name, res) in enumerate(results_by_label.items()):
        run = as_run_data(res)
        ts = run.timeseries
        ts = ts[ts["replication"] == replication] if len(ts) else ts
        if column in ts:
            fig.add_trace(go.Scatter(x=ts["time"], y=ts[column], name=str(name), line=dict(color=COLORS[i % len(COLORS)])))
        if i == 0:
            faults = run.faults[run.faults["replication"] == replication]
            fig.update_layout(shapes=[dict(type="line", xref="x", yref="y domain", x0=float(t), x1=float(t), y0=0, y1=1,
                                           line=dict(color="#d62728" if c == "fault" else "#ff7f0e", dash="dash", width=1))
                                      for t, c in zip(faults["time"], faults["cause"])])
    return layout(fig, f"{column} over time, compared (replication {replication})", xaxis_title="time (s)",
                  yaxis_title=column, legend=dict(orientation="h", y=-0.2))


def compare_table(results_by_label: Mapping[str, Any], figures: Sequence[str] = NOTEBOOK_FIGURES) -> pd.DataFrame:
    """Key figures (mean [95 % CI]) of several runs side by side, one column per run."""
    rows = {}
    for name, res in results_by_label.items():
        figs = as_run_data(res).figures
        col = {}
        for k in figures:
            f = figs.get(k)
            if f is None:
                col[k] = "–"
                continue
            ci = f" [{fmt(f.ci_low)}, {fmt(f.ci_high)}]" if f.n > 1 and not f.not_reached else ""
            cens = (f" ({fmt(f.not_recovered)} not recovered by the run end)"
                    if math.isfinite(f.not_recovered) and f.not_recovered > 0 else "")
            col[k] = f"{f.shown()}{ci}{cens}"
        rows[str(name)] = col
    return pd.DataFrame(rows)


def _common_name(names: Sequence[str]) -> str:
    """The scenario the variants share: 'base' of 'base/none', 'base/dmq'; else 'comparison'."""
    if len(set(names)) == 1:
        return names[0]
    prefix = os.path.commonprefix(list(names))
    prefix = prefix[: prefix.rfind("/")] if "/" in prefix else ""
    return prefix or "comparison"


def render_comparison_report(results_by_label: Mapping[str, Any], figures: Sequence[str] = COMPARISON_FIGURES) -> str:
    """The HTML text of the comparison page."""
    runs = {name: as_run_data(r) for name, r in results_by_label.items()}
    title = _common_name([r.name for r in runs.values()])
    shown = [k for k in figures if any(k in r.figures for r in runs.values())]
    table = compare_table(runs, shown)
    body = [
        f"<h1>simsip: {html.escape(title)} — variants side by side</h1>",
        f'<p class="sub">{len(runs)} variants on the same phones and the same faults (common random numbers): '
        f'{html.escape(", ".join(runs))}.</p>',
        "<ul>" + "".join(f"<li><b>{html.escape(str(n))}</b>: {html.escape(verdict(r))}</li>" for n, r in runs.items())
        + "</ul>",
        *[censoring_banner(r).replace("<b>Not all phones recovered.</b>", f"<b>{html.escape(str(n))}: not all phones "
                                      "recovered.</b>") for n, r in runs.items()],
        "<h2>Key figures</h2><p>Mean and 95 % confidence interval over replications.</p>",
        table.to_html(border=0, classes="tbl") if len(table) else "<p>No figures.</p>",
        "<h2>Timelines</h2>",
        figure_block("comparison", compare_figure(runs, "reachable"),
                     "Reachable phones over time, one line per variant (replication 0); dashed: the faults."),
    ]
    return page(f"simsip comparison — {title}", "\n".join(body))


def write_comparison_report(results_by_label: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write the comparison page of ``{label: Results}`` to ``path``."""
    return write_page(path, render_comparison_report(results_by_label))
