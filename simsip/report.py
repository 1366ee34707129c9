"""Figures for design reviews, built from the result tables (one code path for CLI and notebooks).

``build_figures(results)`` returns plotly figures; ``write_report`` puts them in one
self-contained HTML page (plotly.js embedded, no CDN) next to the key figures with their
confidence intervals.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _mark_events(fig: go.Figure, faults, vip) -> None:
    for _, f in faults.iterrows():
        color = "#d62728" if f["cause"] == "fault" else "#ff7f0e"
        label = f"{f['cause']} {f['node']}"
        fig.add_vline(x=float(f["time"]), line=dict(color=color, dash="dash", width=1))
        fig.add_annotation(x=float(f["time"]), y=1.02, yref="paper", text=label, showarrow=False, font=dict(size=10, color=color))
    for _, v in vip.iterrows():
        if float(v["time"]) <= 0:
            continue
        text = f"VIP → {v['node']}" if v["node"] else "VIP unserved"
        fig.add_vline(x=float(v["time"]), line=dict(color="#7f7f7f", dash="dot", width=1))
        fig.add_annotation(x=float(v["time"]), y=0.96, yref="paper", text=text, showarrow=False, font=dict(size=9, color="#555"))


def reachable_figure(timeseries, faults, vip, phones: int, replication: int = 0) -> go.Figure:
    ts = timeseries[timeseries["replication"] == replication]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ts["time"], y=ts["reachable"], name="reachable (serving node has a binding)", line=dict(color=_COLORS[0])))
    fig.add_trace(go.Scatter(x=ts["time"], y=ts["registered"], name="registered (phones' own view)", line=dict(color=_COLORS[2], dash="dot")))
    if timeseries["replication"].nunique() > 1:
        band = timeseries.groupby("time")["reachable"].agg(["min", "max"]).reset_index()
        fig.add_trace(go.Scatter(x=band["time"], y=band["max"], line=dict(width=0), showlegend=False, hoverinfo="skip"))
        fig.add_trace(
            go.Scatter(x=band["time"], y=band["min"], fill="tonexty", line=dict(width=0), fillcolor="rgba(31,119,180,0.15)",
                       name="reachable, range over replications")
        )
    _mark_events(fig, faults[faults["replication"] == replication], vip[vip["replication"] == replication])
    fig.update_layout(title="Phones reachable over time", xaxis_title="time (s)", yaxis_title="phones", yaxis_range=[0, phones * 1.05],
                      legend=dict(orientation="h", y=-0.2), margin=dict(t=60))
    return fig


def rate_figure(timeseries, faults, vip, capacity: float, resolution: float, replication: int = 0) -> go.Figure:
    ts = timeseries[timeseries["replication"] == replication]
    fig = go.Figure()
    cols = [c for c in ts.columns if c.startswith("register_rx_")]
    for i, c in enumerate(cols):
        fig.add_trace(go.Scatter(x=ts["time"], y=ts[c] / resolution, name=f"REGISTER/s at {c[len('register_rx_'):]}",
                                 line=dict(color=_COLORS[i % len(_COLORS)])))
    if "retransmissions" in ts:
        fig.add_trace(go.Scatter(x=ts["time"], y=ts["retransmissions"] / resolution, name="retransmissions/s", line=dict(color="#999", dash="dot")))
    if math.isfinite(capacity):
        fig.add_hline(y=capacity, line=dict(color="#d62728", width=2), annotation_text=f"capacity {capacity:.0f}/s")
    _mark_events(fig, faults[faults["replication"] == replication], vip[vip["replication"] == replication])
    fig.update_layout(title="REGISTER rate against registrar capacity", xaxis_title="time (s)", yaxis_title="requests per second",
                      legend=dict(orientation="h", y=-0.2), margin=dict(t=60))
    return fig


def recovery_cdf_figure(recovery) -> go.Figure:
    fig = go.Figure()
    rec = recovery[recovery["cause"] == "fault"] if len(recovery) else recovery
    for i, (key, grp) in enumerate(rec.groupby("fault") if len(rec) else []):
        x = np.sort(grp["recovery_time"].dropna().to_numpy())
        if not x.size:
            continue
        y = np.arange(1, x.size + 1) / len(grp)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(shape="hv", color=_COLORS[i % len(_COLORS)]),
                                 name=f"fault {key} (all replications)"))
    fig.update_layout(title="Recovery time after each fault (CDF over affected phones)", xaxis_title="seconds from fault to reachable",
                      yaxis_title="fraction of affected phones", yaxis_range=[0, 1.02])
    return fig


def build_figures(results) -> dict[str, go.Figure]:
    cfg = results.config
    ts, faults, vip = results.timeseries, results.faults, results.vip
    cap = cfg.registrar.workers / max(cfg.registrar.service_time.expected, 1e-12)
    return {
        "reachable": reachable_figure(ts, faults, vip, cfg.phones),
        "register_rate": rate_figure(ts, faults, vip, cap, cfg.output.resolution),
        "recovery_cdf": recovery_cdf_figure(results.recovery),
    }


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def write_report(results, path: Path) -> None:
    from simsip.api import _atomic_text

    figs = build_figures(results)
    summ = results.summary
    rows = []
    for k, f in summ["figures"].items():
        ci = f"[{_fmt(f['ci_low'])}, {_fmt(f['ci_high'])}]" if f["n"] > 1 else ""
        rows.append(f"<tr><td>{html.escape(k)}</td><td>{_fmt(f['mean'])}</td><td>{ci}</td><td>{html.escape(f['unit'])}</td>"
                    f"<td>{html.escape(f['help'])}</td></tr>")
    status = "" if summ["status"] == "ok" else f"<p class=err>Run {summ['status']}: {html.escape(str(summ['error']))}</p>"
    parts = [pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"fig-{name}") for name, fig in figs.items()]
    cfg = results.config
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>simsip — {html.escape(cfg.name)}</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}} .err{{color:#b00}}</style></head>
<body><h1>simsip: {html.escape(cfg.name)}</h1>
<p>{html.escape(cfg.description)}</p>
<p>{cfg.phones} phones in {len(cfg.fleets)} fleet(s); {len(cfg.ha.nodes)} registrar nodes behind a keepalived VIP
(VRRPv{cfg.ha.vrrp.version}, advert {cfg.ha.vrrp.advert_int}s); registration data: {cfg.registrar.data};
{len(cfg.faults)} fault(s); {summ['replications_done']} replication(s), seed {summ['seed']}, simsip {summ['simsip_version']}.</p>
{status}
<h2>Key figures (mean and 95 % confidence interval over replications)</h2>
<table><tr><th>figure</th><th>mean</th><th>95 % CI</th><th>unit</th><th>meaning</th></tr>{''.join(rows)}</table>
{''.join(parts)}
</body></html>"""
    _atomic_text(Path(path), page)
