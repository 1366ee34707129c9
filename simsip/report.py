"""Design-review reports: what a registrar failover does to phones, on one page.

A failover review asks a few questions in order. *What is the setup?* — how many phones, which
registrar nodes behind which virtual IP, where the registrations live (each node's memory, one
shared store, or replicated between nodes). *What happened?* — when the fault struck, how long
keepalived took to move the VIP, who owned it when, whether two nodes ever both claimed it.
*What did it cost?* — phones unreachable over time, the recovery-time distribution, unreachable
phone-seconds and failed inbound calls, with 95 % confidence intervals over replications, and the
REGISTER storm against the registrar's capacity. For a sweep or plan: *which settings are good
enough?* — heatmaps over two factors and the Pareto front of loss against registrar load.

Every figure here is a library function over the result tables (``simsip.api.Results`` or the
files of a run directory), so notebooks, ``simsip run``, ``simsip report RUN_DIR`` and slides share
one code path:

* :func:`build_figures` — the plotly figures of one run (``Results`` or :class:`RunData`);
* :func:`write_report` — one self-contained HTML page (plotly.js embedded: opens offline);
* :func:`write_report_dir` / :func:`report_cli` — rebuild the page from a run or sweep directory;
* :func:`export_static` — PNG/SVG of each figure for slides (kaleido, else headless Chromium).
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
_TEMPLATE = "plotly_white"
_TABLES = ("timeseries", "outages", "recovery", "faults", "vip", "replications")
_EMPTY_COLUMNS = {
    "timeseries": ["replication", "time", "registered", "reachable"],
    "outages": ["replication", "phone", "fleet", "start", "end", "duration"],
    "recovery": ["replication", "disturbance", "cause", "fault", "time", "phone", "fleet", "recovery_time"],
    "faults": ["replication", "disturbance", "cause", "fault", "node", "time", "detection_time", "vip_move_time",
               "service_restored_time", "new_vip_node"],
    "vip": ["replication", "time", "node"],
    "replications": ["replication"],
}


class ReportError(ValueError):
    """A directory that cannot be turned into a report (printed as is by the CLI)."""


# =============================================================================== run data
@dataclass
class RunData:
    """Everything a report needs from one run: the resolved config, the summary, the tables.

    ``config`` is the resolved scenario as plain data (durations as unit strings, as in
    ``config.resolved.yaml``); ``scenario`` is the validated :class:`~simsip.config.schema.Scenario`
    when this simsip version can still read it (else ``None`` and the report says less).
    """

    config: dict
    summary: dict
    timeseries: pd.DataFrame
    outages: pd.DataFrame
    recovery: pd.DataFrame
    faults: pd.DataFrame
    vip: pd.DataFrame
    per_replication: pd.DataFrame = field(default_factory=pd.DataFrame)
    scenario: Any = None
    run_dir: Path | None = None

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.summary.get("scenario") or "scenario")


def _typed(config: Mapping) -> Any:
    from simsip.config.schema import Scenario

    try:
        return Scenario.model_validate(dict(config))
    except Exception:  # an older or newer run directory: the report still works from the plain data
        return None


def as_run_data(results: Any) -> RunData:
    """A :class:`RunData` from ``simsip.api.Results`` (or a RunData, returned as is)."""
    if isinstance(results, RunData):
        return results
    cfg = results.config
    return RunData(
        config=cfg.model_dump(mode="json"),
        summary=results.summary,
        timeseries=results.timeseries,
        outages=results.outages,
        recovery=results.recovery,
        faults=results.faults,
        vip=results.vip,
        per_replication=results.per_replication,
        scenario=cfg,
        run_dir=getattr(results, "out_dir", None),
    )


def _read_table(run_dir: Path, name: str) -> pd.DataFrame:
    pq, csv = run_dir / f"{name}.parquet", run_dir / f"{name}.csv"
    try:
        if pq.is_file():
            df = pd.read_parquet(pq)
        elif csv.is_file() and csv.stat().st_size > 0:
            df = pd.read_csv(csv, keep_default_na=True)
        else:
            return pd.DataFrame(columns=_EMPTY_COLUMNS.get(name, []))
    except (pd.errors.EmptyDataError, ValueError, OSError) as exc:
        if isinstance(exc, pd.errors.EmptyDataError):
            return pd.DataFrame(columns=_EMPTY_COLUMNS.get(name, []))
        raise ReportError(f"{run_dir}: cannot read {name} table: {exc}") from None
    for col in ("node", "vip_node", "new_vip_node", "fleet", "cause"):
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    return df


def load_run(run_dir: str | os.PathLike) -> RunData:
    """Read a run directory written by ``simsip run`` / ``simulate(out=...)``."""
    import yaml

    d = Path(run_dir)
    if not d.is_dir():
        raise ReportError(f"{d}: no such directory")
    summ_path = d / "summary.json"
    if not summ_path.is_file():
        raise ReportError(f"{d}: not a run directory (no summary.json; a sweep directory has points.csv or runs.csv)")
    try:
        summary = json.loads(summ_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{summ_path}: cannot read: {exc}") from None
    cfg_path = d / "config.resolved.yaml"
    config: dict = {}
    if cfg_path.is_file():
        try:
            config = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ReportError(f"{cfg_path}: cannot read: {exc}") from None
    tables = {name: _read_table(d, name) for name in _TABLES}
    return RunData(
        config=config if isinstance(config, dict) else {},
        summary=summary,
        timeseries=tables["timeseries"],
        outages=tables["outages"],
        recovery=tables["recovery"],
        faults=tables["faults"],
        vip=tables["vip"],
        per_replication=tables["replications"],
        scenario=_typed(config) if config else None,
        run_dir=d,
    )


# =============================================================================== small helpers
def _secs(v: Any, default: float = math.nan) -> float:
    """Seconds from a resolved-config value (a unit string such as '2min', or a number)."""
    from simsip.units import UnitError, parse_duration

    if v is None:
        return default
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    try:
        return parse_duration(v)
    except (UnitError, TypeError):
        return default


def _human(sec: float) -> str:
    """A duration for people: 500 ms, 3.6 s, 2 min, 1 h."""
    if sec is None or not math.isfinite(sec):
        return "never" if sec == math.inf else "–"
    if sec == 0:
        return "0 s"
    if sec < 1:
        return f"{sec * 1000:.3g} ms"
    if sec < 120:
        return f"{sec:.3g} s"
    if sec < 7200:
        return f"{sec / 60:.3g} min"
    return f"{sec / 3600:.3g} h"


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (int, float)) and abs(v) >= 100:
        return f"{v:,.0f}"
    if isinstance(v, (int, float)):
        return f"{v:.3g}"
    return str(v)


def _n(v: int) -> str:
    return f"{v:,}".replace(",", "\u202f")


def _rep0(df: pd.DataFrame, replication: int) -> pd.DataFrame:
    if "replication" not in df.columns or not len(df):
        return df
    return df[df["replication"] == replication]


def _resolution(run: RunData) -> float:
    r = _secs((run.config.get("output") or {}).get("resolution"))
    if math.isfinite(r) and r > 0:
        return r
    ts = _rep0(run.timeseries, 0)
    if len(ts) > 1:
        return float(np.median(np.diff(ts["time"].to_numpy(dtype=float))))
    return 1.0


def _figure_mean(run: RunData, key: str) -> float:
    f = (run.summary.get("figures") or {}).get(key) or {}
    v = f.get("mean")
    return float(v) if isinstance(v, (int, float)) else math.nan


def _phones(run: RunData) -> int:
    fleets = run.config.get("fleets") or []
    n = sum(int(f.get("count", 0)) for f in fleets if isinstance(f, dict))
    if n:
        return n
    v = _figure_mean(run, "phones")
    return int(v) if math.isfinite(v) else int(run.timeseries["registered"].max()) if len(run.timeseries) else 0


def _node_names(run: RunData) -> list[str]:
    nodes = ((run.config.get("ha") or {}).get("nodes")) or []
    names = [str(n.get("name")) for n in nodes if isinstance(n, dict)]
    if names:
        return names
    return sorted(c[len("register_rx_"):] for c in run.timeseries.columns if c.startswith("register_rx_"))


def _layout(fig: go.Figure, title: str, **kw: Any) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, xanchor="left"), template=_TEMPLATE,
                      margin=dict(t=70, l=60, r=30, b=60), **kw)
    return fig


# =============================================================================== timelines
def _mark_events(fig: go.Figure, faults: pd.DataFrame, vip: pd.DataFrame, row: int | None = None) -> None:
    """Dashed lines at faults (red) and repairs (orange), dotted grey lines at VIP moves."""
    kw = dict(row=row, col=1) if row else {}
    for _, f in faults.iterrows():
        cause = str(f.get("cause", "fault") or "fault")
        color = "#d62728" if cause == "fault" else "#ff7f0e"
        fig.add_vline(x=float(f["time"]), line=dict(color=color, dash="dash", width=1), **kw)
        if not row or row == 1:
            fig.add_annotation(x=float(f["time"]), y=1.02, yref="paper", text=f"{cause} {f.get('node', '')}",
                               showarrow=False, font=dict(size=10, color=color))
    for _, v in vip.iterrows():
        if float(v["time"]) <= 0:
            continue
        fig.add_vline(x=float(v["time"]), line=dict(color="#7f7f7f", dash="dot", width=1), **kw)
        if not row and v["node"]:  # the unserved gap is seconds long: its label would sit on the move's
            fig.add_annotation(x=float(v["time"]), y=0.96, yref="paper", text=f"VIP → {v['node']}", showarrow=False,
                               xanchor="left", font=dict(size=9, color="#555"))


def reachable_figure(timeseries: pd.DataFrame, faults: pd.DataFrame, vip: pd.DataFrame, phones: int,
                     replication: int = 0) -> go.Figure:
    """Phones reachable (the serving node holds a valid binding) and registered (their own view)."""
    ts = _rep0(timeseries, replication)
    fig = go.Figure()
    if len(timeseries) and timeseries["replication"].nunique() > 1:
        band = timeseries.groupby("time")["reachable"].agg(["min", "max"]).reset_index()
        fig.add_trace(go.Scatter(x=band["time"], y=band["max"], line=dict(width=0), showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=band["time"], y=band["min"], fill="tonexty", line=dict(width=0),
                                 fillcolor="rgba(31,119,180,0.15)", name="reachable, range over replications"))
    fig.add_trace(go.Scatter(x=ts["time"], y=ts["reachable"], name="reachable (serving node has a binding)",
                             line=dict(color=_COLORS[0])))
    if "registered" in ts:
        fig.add_trace(go.Scatter(x=ts["time"], y=ts["registered"], name="registered (phones' own view)",
                                 line=dict(color=_COLORS[2], dash="dot")))
    _mark_events(fig, _rep0(faults, replication), _rep0(vip, replication))
    return _layout(fig, f"Phones reachable over time (replication {replication})", xaxis_title="time (s)",
                   yaxis_title="phones", yaxis_range=[0, max(phones, 1) * 1.05], legend=dict(orientation="h", y=-0.2))


def rate_figure(timeseries: pd.DataFrame, faults: pd.DataFrame, vip: pd.DataFrame, capacity: float,
                resolution: float, replication: int = 0) -> go.Figure:
    """REGISTER arrivals per second at each node, retransmissions, and the registrar's capacity."""
    ts = _rep0(timeseries, replication)
    fig = go.Figure()
    cols = [c for c in ts.columns if c.startswith("register_rx_")]
    for i, c in enumerate(cols):
        fig.add_trace(go.Scatter(x=ts["time"], y=ts[c] / resolution, name=f"REGISTER/s at {c[len('register_rx_'):]}",
                                 line=dict(color=_COLORS[i % len(_COLORS)])))
    if "retransmissions" in ts:
        fig.add_trace(go.Scatter(x=ts["time"], y=ts["retransmissions"] / resolution, name="retransmissions/s",
                                 line=dict(color="#999", dash="dot")))
    peak = max((float(np.nanmax(ts[c].to_numpy(dtype=float))) / resolution for c in cols if len(ts)), default=0.0)
    kw: dict[str, Any] = {}
    if math.isfinite(capacity) and peak > 0 and capacity > 3 * peak:
        # capacity far above the load: keep the load readable and say where capacity is
        kw["yaxis_range"] = [0, peak * 1.35]
        fig.add_annotation(x=1, xref="paper", y=peak * 1.3, text=f"capacity {capacity:,.0f}/s — off the scale "
                           f"(peak is {100 * peak / capacity:.2g} % of it)", showarrow=False, xanchor="right",
                           font=dict(color="#d62728", size=11))
    elif math.isfinite(capacity):
        fig.add_hline(y=capacity, line=dict(color="#d62728", width=2), annotation_text=f"capacity {capacity:,.0f}/s")
    _mark_events(fig, _rep0(faults, replication), _rep0(vip, replication))
    return _layout(fig, "REGISTER rate against registrar capacity", xaxis_title="time (s)",
                   yaxis_title="requests per second", legend=dict(orientation="h", y=-0.2), **kw)


def vip_owner_figure(vip: pd.DataFrame, timeseries: pd.DataFrame, faults: pd.DataFrame, nodes: Sequence[str],
                     horizon: float, replication: int = 0) -> go.Figure:
    """Who served the VIP when (top) and how many VRRP instances claimed master (bottom).

    Two masters at once is a split brain: both nodes answer for the VIP and the phones' ARP
    entries decide which one a REGISTER reaches.
    """
    v = _rep0(vip, replication).sort_values("time")
    has_masters = "vrrp_masters" in timeseries.columns
    fig = make_subplots(rows=2 if has_masters else 1, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.68, 0.32] if has_masters else [1.0])
    lanes = list(nodes) + ["(nobody)"]
    color_of = {n: _COLORS[i % len(_COLORS)] for i, n in enumerate(nodes)}
    color_of["(nobody)"] = "#bbbbbb"
    shown: set[str] = set()
    times = v["time"].to_numpy(dtype=float)
    for i, (_, row) in enumerate(v.iterrows()):
        a = float(row["time"])
        b = float(times[i + 1]) if i + 1 < len(times) else horizon
        if b <= a:
            continue
        lane = str(row["node"]) or "(nobody)"
        if lane not in lanes:
            lanes.insert(len(lanes) - 1, lane)
            color_of[lane] = _COLORS[len(color_of) % len(_COLORS)]
        fig.add_trace(go.Scatter(x=[a, b], y=[lane, lane], mode="lines", line=dict(width=18, color=color_of[lane]),
                                 name=lane, legendgroup=lane, showlegend=lane not in shown,
                                 hovertemplate=f"{lane}: %{{x:.2f}} s<extra></extra>"), row=1, col=1)
        shown.add(lane)
    if not len(v):
        fig.add_trace(go.Scatter(x=[0, horizon], y=["(nobody)", "(nobody)"], mode="lines",
                                 line=dict(width=18, color="#bbbbbb"), name="no VIP record"), row=1, col=1)
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(lanes)), title_text="VIP served by", row=1, col=1)
    if has_masters:
        ts = _rep0(timeseries, replication)
        fig.add_trace(go.Scatter(x=ts["time"], y=ts["vrrp_masters"], mode="lines", line=dict(shape="hv", color="#444"),
                                 name="VRRP masters (2+ = split brain)"), row=2, col=1)
        fig.add_hline(y=1.5, line=dict(color="#d62728", dash="dot", width=1), row=2, col=1)
        fig.update_yaxes(title_text="masters", rangemode="tozero", dtick=1, row=2, col=1)
        fig.update_xaxes(title_text="time (s)", row=2, col=1)
    else:
        fig.update_xaxes(title_text="time (s)", row=1, col=1)
    _mark_events(fig, _rep0(faults, replication), v.iloc[0:0], row=1)
    if has_masters:
        _mark_events(fig, _rep0(faults, replication), v.iloc[0:0], row=2)
    return _layout(fig, f"VIP owner over time (replication {replication})", legend=dict(orientation="h", y=-0.18))


def conflicts_figure(timeseries: pd.DataFrame, faults: pd.DataFrame, vip: pd.DataFrame,
                     replication: int = 0) -> go.Figure:
    """Phones with a registration conflict: a binding only on a node that does not serve the VIP
    (misplaced), or different bindings on two nodes (divergent, e.g. after a split brain)."""
    ts = _rep0(timeseries, replication)
    fig = go.Figure()
    if "conflicts" in ts:
        fig.add_trace(go.Scatter(x=ts["time"], y=ts["conflicts"], name="phones in conflict", line=dict(color=_COLORS[1])))
    for col, dash, label in (("conflicts_misplaced", "dot", "misplaced (binding only off the serving node)"),
                             ("conflicts_divergent", "dash", "divergent (nodes disagree)")):
        if col in ts:
            fig.add_trace(go.Scatter(x=ts["time"], y=ts[col], name=label, line=dict(color="#888", dash=dash)))
    if not fig.data:
        fig.add_trace(go.Scatter(x=ts.get("time", []), y=np.zeros(len(ts)), name="no conflict data in this run",
                                 line=dict(color="#bbb")))
    _mark_events(fig, _rep0(faults, replication), _rep0(vip, replication))
    return _layout(fig, f"Registration conflicts over time (replication {replication})", xaxis_title="time (s)",
                   yaxis_title="phones", yaxis_rangemode="tozero", legend=dict(orientation="h", y=-0.2))


def bindings_figure(timeseries: pd.DataFrame, faults: pd.DataFrame, vip: pd.DataFrame, phones: int,
                    replication: int = 0) -> go.Figure:
    """Bindings each store holds in memory (expired ones until the registrar's purge timer)."""
    ts = _rep0(timeseries, replication)
    fig = go.Figure()
    cols = [c for c in ts.columns if c.startswith("bindings_")]
    for i, c in enumerate(cols):
        fig.add_trace(go.Scatter(x=ts["time"], y=ts[c], name=f"bindings held by {c[len('bindings_'):]}",
                                 line=dict(color=_COLORS[i % len(_COLORS)], shape="hv")))
    if not cols:
        fig.add_trace(go.Scatter(x=ts.get("time", []), y=ts.get("registered", []), name="registered (no per-store data)",
                                 line=dict(color="#bbb")))
    fig.add_hline(y=phones, line=dict(color="#555", dash="dot", width=1), annotation_text=f"{phones:,} phones")
    _mark_events(fig, _rep0(faults, replication), _rep0(vip, replication))
    return _layout(fig, f"Bindings held by each store (replication {replication})", xaxis_title="time (s)",
                   yaxis_title="bindings", yaxis_range=[0, max(phones, 1) * 1.1], legend=dict(orientation="h", y=-0.2))


def recovery_cdf_figure(recovery: pd.DataFrame) -> go.Figure:
    """Per disturbance, the fraction of affected phones reachable again within x seconds."""
    fig = go.Figure()
    if len(recovery) and "cause" not in recovery.columns:
        recovery = recovery.assign(cause="fault")
    i = 0
    if len(recovery):
        keys = ["cause", "fault"] if "fault" in recovery.columns else ["cause"]
        for gkey, grp in recovery.groupby(keys):
            cause, key = (gkey[0], gkey[-1]) if isinstance(gkey, tuple) else (gkey, gkey)
            x = np.sort(grp["recovery_time"].dropna().to_numpy(dtype=float))
            if not x.size:
                continue
            y = np.arange(1, x.size + 1) / len(grp)
            label = f"after fault {key}" if cause == "fault" else "after the repair (failback)"
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(shape="hv", color=_COLORS[i % len(_COLORS)],
                                                                       dash="solid" if cause == "fault" else "dash"),
                                     name=f"{label} ({len(grp):,} phone-recoveries)"))
            i += 1
    if not fig.data:
        fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker=dict(color="#bbb"), name="no phone lost reachability"))
    fig.add_hline(y=0.95, line=dict(color="#999", dash="dot", width=1), annotation_text="95 %")
    return _layout(fig, "Recovery time after each disturbance (CDF over affected phones, all replications)",
                   xaxis_title="seconds from disturbance to reachable", yaxis_title="fraction of affected phones",
                   yaxis_range=[0, 1.02], legend=dict(orientation="h", y=-0.2))


_TIME_FIGURES = ("detection_time", "vip_move_time", "recovery_median", "recovery_mean", "recovery_p95",
                 "recovery_p99", "recovery_max", "failback_vip_move_time")


def key_figures_figure(summary: Mapping) -> go.Figure:
    """The time-valued key figures as points with their 95 % confidence intervals."""
    figs = summary.get("figures") or {}
    names, means, lo, hi = [], [], [], []
    for k in _TIME_FIGURES:
        f = figs.get(k)
        if not f or not isinstance(f.get("mean"), (int, float)) or not math.isfinite(f["mean"]):
            continue
        names.append(k)
        means.append(float(f["mean"]))
        lo.append(float(f["mean"]) - float(f.get("ci_low") if f.get("ci_low") is not None else f["mean"]))
        hi.append(float(f.get("ci_high") if f.get("ci_high") is not None else f["mean"]) - float(f["mean"]))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=means, y=names, mode="markers", marker=dict(size=10, color=_COLORS[0]),
                             error_x=dict(type="data", symmetric=False, array=hi, arrayminus=lo, thickness=2, width=6),
                             name="mean with 95 % CI", hovertemplate="%{y}: %{x:.3g} s<extra></extra>"))
    n = summary.get("replications_done", "?")
    return _layout(fig, f"Key times with 95 % confidence intervals ({n} replications)", xaxis_title="seconds",
                   xaxis_type="log" if means and min(means) > 0 and max(means) / min(means) > 50 else "linear",
                   yaxis=dict(autorange="reversed"), height=360, showlegend=False)


# =============================================================================== topology
def topology_graph(config: Mapping) -> Any:
    """The deployment as a layered networkx graph: fleets → VIP → nodes → binding stores.

    Node attributes: ``layer`` (0..3), ``label`` (text shown), ``kind``; edge attributes
    ``label`` and ``style`` ('solid' for SIP, 'dash' for VRRP, 'dot' for replication/store access).
    """
    import networkx as nx

    g = nx.DiGraph()
    ha = config.get("ha") or {}
    vrrp = ha.get("vrrp") or {}
    reg = config.get("registrar") or {}
    data = reg.get("data", "none")
    faults = config.get("faults") or []
    for f in config.get("fleets") or []:
        ph = f.get("phone") or {}
        prof = f.get("profile") or "custom"
        g.add_node(f"fleet:{f['name']}", layer=0, kind="fleet",
                   label=f"<b>{html.escape(str(f['name']))}</b><br>{_n(int(f['count']))} phones<br>{html.escape(str(prof))}, "
                         f"expires {_human(_secs(ph.get('expires')))}")
    hc = ha.get("health_check")
    g.add_node("vip", layer=1, kind="vip",
               label=f"<b>VIP</b><br>keepalived VRRPv{vrrp.get('version', 2)}<br>advert {_human(_secs(vrrp.get('advert_int')))}"
                     f"{', preempt' if vrrp.get('preempt', True) else ', nopreempt'}"
                     + (f"<br>track_script {hc.get('kind')}" if isinstance(hc, dict) else ""))
    nodes = [n for n in ha.get("nodes") or [] if isinstance(n, dict)]
    top = max((int(n.get("priority", 100)) for n in nodes), default=100)
    faulted: dict[str, list[str]] = {}
    for f in faults:
        faulted.setdefault(str(f.get("node", "master")), []).append(f"{f.get('kind')} at {_human(_secs(f.get('at')))}")
    for n in nodes:
        name, prio = str(n["name"]), int(n.get("priority", 100))
        role = "initial master" if prio == top else "backup"
        extra = faulted.get(name, []) + (faulted.get("master", []) if prio == top else []) + (
            faulted.get("backup", []) if prio != top else [])
        g.add_node(f"node:{name}", layer=2, kind="node", faults=extra,
                   label=f"<b>{html.escape(name)}</b><br>priority {prio} ({role})<br>{html.escape(str(reg.get('profile') or 'registrar'))}, "
                         f"{reg.get('workers', '?')} workers" + "".join(f"<br>⚡ {html.escape(x)}" for x in extra))
    for f in config.get("fleets") or []:
        g.add_edge(f"fleet:{f['name']}", "vip", label="REGISTER (UDP)", style="solid")
    for n in nodes:
        g.add_edge("vip", f"node:{n['name']}", label="", style="solid")
    for a, b in zip(nodes, nodes[1:]):
        g.add_edge(f"node:{a['name']}", f"node:{b['name']}", label="VRRP adverts", style="dash")
    if data == "shared":
        g.add_node("store:shared", layer=3, kind="store", label="<b>shared store</b><br>one DB all nodes read<br>(data: shared)")
        for n in nodes:
            g.add_edge(f"node:{n['name']}", "store:shared", label="", style="dot")
    else:
        for n in nodes:
            mode = "replicated (DMQ)" if data == "replicated" else "memory only"
            g.add_node(f"store:{n['name']}", layer=3, kind="store",
                       label=f"<b>bindings {html.escape(str(n['name']))}</b><br>{mode}")
            g.add_edge(f"node:{n['name']}", f"store:{n['name']}", label="", style="dot")
        if data == "replicated":
            lag = (reg.get("replication") or {}).get("lag") or {}
            lag_s = _secs(lag.get("mean")) if isinstance(lag, dict) else _secs(lag)
            for a, b in zip(nodes, nodes[1:]):
                g.add_edge(f"store:{a['name']}", f"store:{b['name']}", label=f"replication, lag {_human(lag_s)}", style="dash")
    return g


def topology_figure(config: Mapping) -> go.Figure:
    """The deployment drawn from :func:`topology_graph` (networkx multipartite layout → plotly)."""
    import networkx as nx

    g = topology_graph(config)
    fig = go.Figure()
    if g.number_of_nodes() == 0:
        fig.add_trace(go.Scatter(x=[0], y=[0], mode="text", text=["no configuration in this run"]))
        return _layout(fig, "Deployment", height=300)
    pos = nx.multipartite_layout(g, subset_key="layer", align="vertical", scale=1.0)
    # keep every layer top-down in insertion order and centred
    layers: dict[int, list[str]] = {}
    for n, d in g.nodes(data=True):
        layers.setdefault(int(d["layer"]), []).append(n)
    for layer, members in layers.items():
        k = len(members)
        for i, n in enumerate(members):
            pos[n] = np.array([layer * 1.0, (k - 1) / 2.0 - i])
    style_color = {"solid": "#555", "dash": "#9467bd", "dot": "#8c564b"}
    bracket = 0.36  # edges within a layer (VRRP, replication) run as a bracket right of the labels

    def path(a: str, b: str) -> tuple[list[float], list[float]]:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        if abs(x0 - x1) < 1e-9:
            return [x0 + 0.04, x0 + bracket, x1 + bracket, x1 + 0.04], [y0, y0, y1, y1]
        return [x0, x1], [y0, y1]

    for style in ("solid", "dash", "dot"):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for a, b, d in g.edges(data=True):
            if d["style"] != style:
                continue
            px, py = path(a, b)
            xs += [float(v) for v in px] + [None]
            ys += [float(v) for v in py] + [None]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                                     line=dict(color=style_color[style], width=2, dash=style)))
    for a, b, d in g.edges(data=True):
        if not d.get("label"):
            continue
        (x0, y0), (x1, y1) = pos[a], pos[b]
        same_layer = abs(x0 - x1) < 1e-9
        fig.add_annotation(x=x0 + bracket + 0.02 if same_layer else (x0 + x1) / 2, y=(y0 + y1) / 2 + (0 if same_layer else 0.08),
                           text=d["label"].replace(", ", "<br>") if same_layer else d["label"], showarrow=False,
                           font=dict(size=10, color=style_color[d["style"]]), xanchor="left" if same_layer else "center")
    kind_color = {"fleet": "#1f77b4", "vip": "#ff7f0e", "node": "#2ca02c", "store": "#8c564b"}
    kind_symbol = {"fleet": "circle", "vip": "diamond", "node": "square", "store": "hexagon"}
    for kind in ("fleet", "vip", "node", "store"):
        members = [(n, d) for n, d in g.nodes(data=True) if d["kind"] == kind]
        if not members:
            continue
        border = ["#d62728" if d.get("faults") else "#333" for _, d in members]
        fig.add_trace(go.Scatter(
            x=[float(pos[n][0]) for n, _ in members], y=[float(pos[n][1]) for n, _ in members],
            mode="markers+text", text=[d["label"] for _, d in members], textposition="bottom center",
            textfont=dict(size=11), hovertext=[re.sub("<[^>]+>", " ", d["label"]) for _, d in members], hoverinfo="text",
            marker=dict(size=30, color=kind_color[kind], symbol=kind_symbol[kind], line=dict(width=3, color=border)),
            name={"fleet": "phone fleets", "vip": "virtual IP", "node": "registrar nodes", "store": "binding stores"}[kind]))
    ymax = max(float(p[1]) for p in pos.values())
    ymin = min(float(p[1]) for p in pos.values())
    fig.update_xaxes(visible=False, range=[-0.45, 3.75])
    fig.update_yaxes(visible=False, range=[ymin - 0.9, ymax + 0.45])
    for i, title in enumerate(("phones", "virtual IP", "registrar nodes", "registrations")):
        fig.add_annotation(x=i, y=ymax + 0.38, text=f"<i>{title}</i>", showarrow=False, font=dict(size=11, color="#777"))
    data = (config.get("registrar") or {}).get("data", "none")
    return _layout(fig, f"Deployment: {config.get('name', '')} (registration data: {data})",
                   height=260 + 120 * max(len(v) for v in layers.values()), legend=dict(orientation="h", y=-0.05))


# =============================================================================== the scenario in words
_FAULT_WORDS = {
    "node_crash": "crashes (registrar and keepalived stop, no priority-0 advert)",
    "process_crash": "loses its registrar process (keepalived keeps running)",
    "process_hang": "hangs (the registrar takes requests and never answers)",
    "process_restart": "restarts its registrar (memory lost)",
    "link_down": "loses its network link",
    "partition": "stops hearing its peer (network partition between the nodes)",
}
_DATA_WORDS = {
    "none": "each node keeps only the bindings it received itself (no replication): after a failover the new "
            "master knows none of the phones until each one's next REGISTER reaches it",
    "shared": "all nodes read one shared registration store (e.g. Kamailio usrloc db_mode 3): the new master "
              "sees every binding at once, so only the VIP move itself costs reachability",
    "replicated": "the nodes replicate every save at the SIP level (e.g. Kamailio DMQ): the new master has what "
                  "arrived before the crash, minus saves still in flight",
}


def _refresh_words(refresh: Mapping) -> str:
    mode = refresh.get("mode", "percent")
    if mode == "percent":
        return f"refreshes at {float(refresh.get('percent', 90)):g} % of the granted expiry"
    margin = _human(_secs(refresh.get("margin")))
    if mode == "margin":
        return f"refreshes {margin} before the granted expiry (half-way when the expiry is shorter)"
    return f"refreshes half-way through the granted expiry, or {margin} before it when that is later"


def _retry_words(retry: Mapping) -> str:
    if retry.get("mode") == "backoff":
        return (f"after a failure backs off RFC 5626-style from {_human(_secs(retry.get('base')))} up to "
                f"{_human(_secs(retry.get('max')))}")
    spread = _secs(retry.get("spread"), 0.0)
    s = f"retries a failed REGISTER every {_human(_secs(retry.get('interval')))}"
    return s + (f" (± {_human(spread)})" if spread else " (no jitter)")


def scenario_words(run: RunData) -> list[str]:
    """The scenario as a few plain sentences (the HTML report's first section)."""
    cfg = run.config
    if not cfg:
        return ["The run directory has no config.resolved.yaml; only the results are shown."]
    scn = run.scenario
    out: list[str] = []
    fleets = cfg.get("fleets") or []
    parts = []
    for i, f in enumerate(fleets):
        ph = f.get("phone") or {}
        s = (f"<b>{_n(int(f['count']))}</b> phones in fleet <i>{html.escape(str(f['name']))}</i>"
             f"{' (profile ' + html.escape(str(f['profile'])) + ')' if f.get('profile') else ''} request "
             f"{_human(_secs(ph.get('expires')))}, {_refresh_words(ph.get('refresh') or {})} and "
             f"{_retry_words(ph.get('retry') or {})}")
        if scn is not None:
            fl = scn.fleets[i]
            granted = scn.registrar.grant(fl.phone.expires)
            r = fl.phone.refresh.interval(granted)
            s += (f"; with the registrar granting {_human(granted)} each phone refreshes every <b>{_human(r)}</b> — "
                  f"without replication a failover leaves a phone unreachable ≈ {_human(r / 2)} on average, "
                  f"{_human(r)} at worst")
        if f.get("start") == "boot_storm":
            s += f"; they all boot within {_human(_secs(f.get('boot_window')))} at the start"
        parts.append(s + ".")
    out.extend(parts)
    reg = cfg.get("registrar") or {}
    ha = cfg.get("ha") or {}
    vrrp = ha.get("vrrp") or {}
    nodes = [n for n in ha.get("nodes") or [] if isinstance(n, dict)]
    node_txt = ", ".join(f"{html.escape(str(n['name']))} (priority {n.get('priority')})" for n in nodes)
    cap = _figure_mean(run, "capacity_per_s")
    s = (f"They register to a virtual IP that keepalived (VRRPv{vrrp.get('version', 2)}, advert every "
         f"{_human(_secs(vrrp.get('advert_int')))}, {'preempt' if vrrp.get('preempt', True) else 'nopreempt'}"
         f"{', preempt_delay ' + _human(_secs(vrrp.get('preempt_delay'))) if _secs(vrrp.get('preempt_delay'), 0) else ''}) "
         f"moves between {len(nodes)} registrar nodes: {node_txt}.")
    if scn is not None and len(scn.ha.nodes) > 1:
        backups = sorted(scn.ha.nodes, key=lambda n: -n.priority)[1:]
        mdi = ", ".join(f"{html.escape(n.name)} {scn.ha.vrrp.master_down_interval(n.priority):.3g} s" for n in backups)
        s += f" A backup takes over when no advert came for its Master_Down_Interval ({mdi})."
    hc = ha.get("health_check")
    if isinstance(hc, dict):
        s += (f" A track_script ({hc.get('kind')}) checks the local registrar every {_human(_secs(hc.get('interval')))}; "
              f"{hc.get('fall', 1)} failure(s) put the node in FAULT and release the VIP.")
    out.append(s)
    s = (f"Each node runs {html.escape(str(reg.get('profile') or 'the registrar'))} with {reg.get('workers', '?')} workers"
         + (f" (capacity ≈ {cap:,.0f} REGISTER/s)" if math.isfinite(cap) else "")
         + f"; registration data: <b>{html.escape(str(reg.get('data', 'none')))}</b> — "
         + _DATA_WORDS.get(str(reg.get("data", "none")), "") + ".")
    out.append(s)
    net = cfg.get("network") or {}
    delay = net.get("delay") or {}
    d_mean = _secs(delay.get("mean")) if isinstance(delay, dict) else _secs(delay)
    out.append(f"The network adds {_human(d_mean)} one-way delay ({delay.get('dist', 'constant') if isinstance(delay, dict) else 'constant'})"
               f" and loses {100 * float(net.get('loss', 0) or 0):g} % of SIP packets.")
    faults = cfg.get("faults") or []
    if not faults:
        out.append("No faults are scheduled: this run shows the steady state.")
    for f in faults:
        node = str(f.get("node", "master"))
        who = f"the {node} node" if node in ("master", "backup") else f"node {html.escape(node)}"
        s = f"At <b>{_human(_secs(f.get('at')))}</b> {who} {_FAULT_WORDS.get(str(f.get('kind')), str(f.get('kind')))}"
        rep = _secs(f.get("repair_after"))
        s += f"; it comes back {_human(rep)} later." if math.isfinite(rep) else " and stays down."
        out.append(s)
    summ = run.summary
    out.append(f"Simulated {_human(_secs(cfg.get('duration')))}, {summ.get('replications_done', '?')} replication(s), "
               f"seed {summ.get('seed', cfg.get('seed'))}, simsip {summ.get('simsip_version', '?')}.")
    return out


# =============================================================================== figures of one run
FIGURE_CAPTIONS = {
    "topology": "Phone fleets register through the virtual IP; keepalived decides which registrar node serves it. "
                "Where the registrations live decides what a new master knows. Red outline: a node with a scheduled fault.",
    "key_figures": "Means over replications with Student-t 95 % confidence intervals; few replications give wide intervals.",
    "reachable": "A phone is reachable when the node serving the VIP holds an unexpired binding for it. Dashed red: "
                 "faults; orange: repairs; dotted grey: VIP moves. The gap between 'registered' and 'reachable' is "
                 "phones that believe they are registered but cannot be called.",
    "vip_owner": "Which node answered for the VIP (top) and how many VRRP instances were master (bottom; 2 = split brain).",
    "register_rate": "REGISTER arrivals per second at each node against the registrar's capacity (workers / service time).",
    "conflicts": "Phones whose binding sits only on a node that does not serve the VIP, or whose bindings differ between nodes.",
    "bindings": "Bindings each store holds (expired ones stay until the purge timer). A new master starting near zero is "
                "the no-replication loss window.",
    "recovery_cdf": "For each disturbance, the share of affected phones reachable again within x seconds (pooled over replications).",
}


def build_figures(results: Any) -> dict[str, go.Figure]:
    """The plotly figures of one run, from ``Results`` or :class:`RunData` (same code path everywhere)."""
    run = as_run_data(results)
    ts, faults, vip = run.timeseries, run.faults, run.vip
    phones = _phones(run)
    cap = _figure_mean(run, "capacity_per_s")
    if not math.isfinite(cap) and run.scenario is not None:
        reg = run.scenario.registrar
        cap = reg.workers / max(reg.service_time.expected, 1e-12)
    horizon = _secs(run.config.get("duration"))
    if not math.isfinite(horizon):
        horizon = float(ts["time"].max()) if len(ts) else 1.0
    figs: dict[str, go.Figure] = {}
    if run.config:
        figs["topology"] = topology_figure(run.config)
    figs["key_figures"] = key_figures_figure(run.summary)
    figs["reachable"] = reachable_figure(ts, faults, vip, phones)
    figs["vip_owner"] = vip_owner_figure(vip, ts, faults, _node_names(run), horizon)
    figs["register_rate"] = rate_figure(ts, faults, vip, cap, _resolution(run))
    figs["conflicts"] = conflicts_figure(ts, faults, vip)
    figs["bindings"] = bindings_figure(ts, faults, vip, phones)
    figs["recovery_cdf"] = recovery_cdf_figure(run.recovery)
    return figs


# =============================================================================== comparisons (notebooks)
def compare_figure(results_by_label: Mapping[str, Any], column: str = "reachable", replication: int = 0) -> go.Figure:
    """One timeseries column of several runs overlaid (e.g. replication modes on the same fault)."""
    fig = go.Figure()
    for i, (label, res) in enumerate(results_by_label.items()):
        run = as_run_data(res)
        ts = _rep0(run.timeseries, replication)
        if column in ts:
            fig.add_trace(go.Scatter(x=ts["time"], y=ts[column], name=str(label), line=dict(color=_COLORS[i % len(_COLORS)])))
        if i == 0:
            for _, f in _rep0(run.faults, replication).iterrows():
                fig.add_vline(x=float(f["time"]), line=dict(color="#d62728" if f.get("cause", "fault") == "fault" else "#ff7f0e",
                                                            dash="dash", width=1))
    return _layout(fig, f"{column} over time, compared (replication {replication})", xaxis_title="time (s)",
                   yaxis_title=column, legend=dict(orientation="h", y=-0.2))


def compare_table(results_by_label: Mapping[str, Any], figures: Sequence[str] = (
        "unreachable_phone_seconds", "phones_affected", "recovery_median", "recovery_p95", "vip_move_time",
        "peak_register_rate", "conflict_phone_seconds")) -> pd.DataFrame:
    """Key figures (mean [95 % CI]) of several runs side by side, one column per run."""
    rows = {}
    for label, res in results_by_label.items():
        figs = as_run_data(res).summary.get("figures") or {}
        col = {}
        for k in figures:
            f = figs.get(k)
            if not f:
                col[k] = "–"
                continue
            ci = f" [{_fmt(f.get('ci_low'))}, {_fmt(f.get('ci_high'))}]" if (f.get("n") or 0) > 1 else ""
            col[k] = f"{_fmt(f.get('mean'))}{ci}"
        rows[str(label)] = col
    return pd.DataFrame(rows)


def tradeoff_figure(table: pd.DataFrame, x: str, loss: str, load: str, title: str | None = None) -> go.Figure:
    """A loss figure and a load figure against one factor, on two y axes (with CI bands if present)."""
    t = table.sort_values(x)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for col, color, sec in ((loss, _COLORS[1], False), (load, _COLORS[0], True)):
        m = _metric_col(t, col)
        if m is None:
            continue
        lo, hi = _ci_cols(t, col)
        if lo and hi:
            fig.add_trace(go.Scatter(x=list(t[x]) + list(t[x])[::-1], y=list(t[hi]) + list(t[lo])[::-1], fill="toself",
                                     line=dict(width=0), fillcolor=color, opacity=0.15, showlegend=False, hoverinfo="skip"),
                          secondary_y=sec)
        fig.add_trace(go.Scatter(x=t[x], y=t[m], mode="lines+markers", name=col, line=dict(color=color)), secondary_y=sec)
        fig.update_yaxes(title_text=col, secondary_y=sec, rangemode="tozero")
    fig.update_xaxes(title_text=x)
    return _layout(fig, title or f"{loss} and {load} against {x}", legend=dict(orientation="h", y=-0.2))


# =============================================================================== sweeps and plans
_ID_COLUMNS = {"point", "point_id", "run", "run_id", "replication", "seed", "status", "error", "dir", "path", "index",
               "runtime_s", "key", "hash", "id", "recommended", "feasible", "pareto", "screened", "simulated"}
_STAT_SUFFIXES = ("_mean", "_ci_low", "_ci_high", "_half_width", "_n", "_sd", "_std", "_min", "_max")
_LOSS_PREF = ("unreachable_phone_seconds", "unreachable_phone_seconds_after_disturbances", "recovery_p99", "recovery_p95",
              "recovery_mean", "calls_failed_expected")
_LOAD_PREF = ("steady_register_rate", "peak_register_rate", "peak_load_vs_capacity")


def _metric_col(df: pd.DataFrame, name: str) -> str | None:
    for c in (name, f"{name}_mean", f"mean_{name}", f"{name}.mean"):
        if c in df.columns and pd.api.types.is_numeric_dtype(df[c]):
            return c
    return None


def _ci_cols(df: pd.DataFrame, name: str) -> tuple[str | None, str | None]:
    for lo, hi in ((f"{name}_ci_low", f"{name}_ci_high"), (f"{name}.ci_low", f"{name}.ci_high")):
        if lo in df.columns and hi in df.columns:
            return lo, hi
    return None, None


def _figure_names() -> set[str]:
    from simsip.metrics import FIGURE_HELP

    return set(FIGURE_HELP) | {"phones", "calls_failed", "calls_total_expected", "calls_failed_expected"}


def sweep_columns(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(factors, figures) of a sweep table: figures are known simsip figures (with stat suffixes),
    factors are the other columns that vary, ids aside."""
    known = _figure_names()
    figures, factors = [], []
    for c in df.columns:
        base = c
        for suf in _STAT_SUFFIXES:
            if c.endswith(suf):
                base = c[: -len(suf)]
                break
        base = base.removeprefix("mean_").split(".mean")[0]
        if base in known or c in known:
            if base not in figures:
                figures.append(base)
        elif c not in _ID_COLUMNS and not c.startswith("n_") and df[c].nunique(dropna=True) > 1:
            factors.append(c)
    return factors, figures


def _point_table(points: pd.DataFrame | None, runs: pd.DataFrame | None) -> pd.DataFrame:
    """One row per point: ``points`` as is, else ``runs`` averaged over replications."""
    if points is not None and len(points):
        return points
    if runs is None or not len(runs):
        return pd.DataFrame()
    factors, figures = sweep_columns(runs)
    cols = [c for f in figures for c in [_metric_col(runs, f)] if c]
    if not factors:
        return runs
    return runs.groupby(factors, dropna=False)[cols].mean().reset_index()


def heatmap_figure(table: pd.DataFrame, x: str, y: str, z: str, title: str | None = None) -> go.Figure:
    """Mean of ``z`` over a grid of two factors (other factors averaged out)."""
    zc = _metric_col(table, z) or z
    piv = table.groupby([y, x], dropna=False)[zc].mean().unstack(x)
    fig = go.Figure(go.Heatmap(z=piv.to_numpy(dtype=float), x=[str(v) for v in piv.columns], y=[str(v) for v in piv.index],
                               colorscale="RdYlGn_r", colorbar=dict(title=z),
                               text=[[_fmt(v) for v in row] for row in piv.to_numpy(dtype=float)], texttemplate="%{text}",
                               hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{z}=%{{z:.4g}}<extra></extra>"))
    return _layout(fig, title or f"{z} over {x} × {y}", xaxis_title=x, yaxis_title=y)


def pareto_mask(loss: np.ndarray, load: np.ndarray) -> np.ndarray:
    """Points no other point beats on both loss and load (both minimised)."""
    n = loss.size
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not (np.isfinite(loss[i]) and np.isfinite(load[i])):
            keep[i] = False
            continue
        better = (loss <= loss[i]) & (load <= load[i]) & ((loss < loss[i]) | (load < load[i]))
        keep[i] = not better.any()
    return keep


def pareto_figure(table: pd.DataFrame, loss: str, load: str, factors: Sequence[str] = ()) -> go.Figure:
    """Every point's loss against its registrar load; the Pareto front joined, feasible points marked."""
    lc, dc = _metric_col(table, loss), _metric_col(table, load)
    fig = go.Figure()
    if lc is None or dc is None:
        return _layout(fig, "Pareto front (figures missing)")
    L, D = table[lc].to_numpy(dtype=float), table[dc].to_numpy(dtype=float)
    mask = table["pareto"].astype(bool).to_numpy() if "pareto" in table.columns else pareto_mask(L, D)
    hover = ["<br>".join(f"{f}={table[f].iloc[i]}" for f in factors) for i in range(len(table))]
    color = (np.where(table["feasible"].astype(bool), _COLORS[2], "#bbbbbb") if "feasible" in table.columns
             else np.full(len(table), _COLORS[0]))
    fig.add_trace(go.Scatter(x=D, y=L, mode="markers", marker=dict(color=list(color), size=8, opacity=0.7),
                             hovertext=hover, name="points" + (" (green: meets the SLO)" if "feasible" in table.columns else "")))
    order = np.argsort(D[mask])
    fig.add_trace(go.Scatter(x=D[mask][order], y=L[mask][order], mode="lines+markers", line=dict(color=_COLORS[1], shape="hv"),
                             marker=dict(size=11, symbol="diamond"), name="Pareto front",
                             hovertext=[h for h, m in zip(hover, mask) if m], hoverinfo="text+x+y"))
    if "recommended" in table.columns and table["recommended"].astype(bool).any():
        r = table["recommended"].astype(bool).to_numpy()
        fig.add_trace(go.Scatter(x=D[r], y=L[r], mode="markers", marker=dict(size=18, symbol="star", color="#ffbf00",
                                                                          line=dict(width=1, color="#333")), name="recommended"))
    return _layout(fig, f"Pareto front: {loss} against {load}", xaxis_title=load, yaxis_title=loss,
                   legend=dict(orientation="h", y=-0.2))


@dataclass
class SweepData:
    """A sweep or plan directory: the per-point table, the per-run table, a recommendation if any."""

    points: pd.DataFrame
    runs: pd.DataFrame
    recommendation: dict | None
    run_dir: Path
    meta: dict = field(default_factory=dict)


def is_sweep_dir(path: str | os.PathLike) -> bool:
    d = Path(path)
    return any((d / f"{n}.{e}").is_file() for n in ("points", "runs") for e in ("csv", "parquet"))


def load_sweep(run_dir: str | os.PathLike) -> SweepData:
    d = Path(run_dir)
    tables: dict[str, pd.DataFrame] = {}
    for name in ("points", "runs"):
        pq, csv = d / f"{name}.parquet", d / f"{name}.csv"
        try:
            tables[name] = pd.read_parquet(pq) if pq.is_file() else (pd.read_csv(csv) if csv.is_file() else pd.DataFrame())
        except (OSError, ValueError, pd.errors.EmptyDataError) as exc:
            raise ReportError(f"{d}: cannot read {name} table: {exc}") from None
    rec = None
    for name in ("recommendation.json", "plan.json"):
        p = d / name
        if p.is_file():
            try:
                rec = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                rec = {"error": f"cannot read {name}"}
            break
    meta = {}
    for name in ("summary.json", "sweep.json", "meta.json"):
        p = d / name
        if p.is_file():
            try:
                meta = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                pass
            break
    return SweepData(tables["points"], tables["runs"], rec, d, meta if isinstance(meta, dict) else {})


def build_sweep_figures(sweep: SweepData) -> dict[str, go.Figure]:
    """Heatmaps over the first two factors, a trade-off line for one factor, the Pareto front."""
    table = _point_table(sweep.points, sweep.runs)
    figs: dict[str, go.Figure] = {}
    if not len(table):
        return figs
    factors, figures = sweep_columns(table)
    loss = next((f for f in _LOSS_PREF if f in figures), figures[0] if figures else None)
    load = next((f for f in _LOAD_PREF if f in figures), None)
    grid = [f for f in factors if table[f].nunique() >= 2]
    if loss and len(grid) >= 2:
        figs["heatmap_loss"] = heatmap_figure(table, grid[0], grid[1], loss)
        if load:
            figs["heatmap_load"] = heatmap_figure(table, grid[0], grid[1], load)
    elif loss and len(grid) == 1:
        if load:
            figs["tradeoff"] = tradeoff_figure(table, grid[0], loss, load)
        else:
            figs["tradeoff"] = tradeoff_figure(table, grid[0], loss, loss)
    if loss and load:
        figs["pareto"] = pareto_figure(table, loss, load, factors)
    return figs


# =============================================================================== HTML
_CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1150px;margin:auto;padding:0 16px;color:#222}
h1{margin-bottom:0}.sub{color:#666;margin-top:4px}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;font-size:13px;text-align:left}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}.err{color:#b00;font-weight:bold}
.cap{color:#555;font-size:13px;margin:-4px 0 18px 0}.fig{margin-top:14px}ul.words li{margin:4px 0}"""

_SECTIONS = (("The scenario", ("topology",)), ("Key figures", ("key_figures",)),
             ("Timelines", ("reachable", "vip_owner", "register_rate", "conflicts", "bindings")),
             ("Recovery", ("recovery_cdf",)))


def _fig_html(name: str, fig: go.Figure) -> str:
    div = pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"fig-{name}",
                      config={"displaylogo": False, "responsive": True})
    cap = FIGURE_CAPTIONS.get(name, "")
    return f'<div class="fig">{div}</div>' + (f'<p class="cap">{html.escape(cap)}</p>' if cap else "")


def _page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>{_CSS}</style></head>
<body>
{body}
<p class="sub">Generated by simsip. Figures are interactive (zoom, hover); plotly.js is embedded, so this file works offline.</p>
</body></html>"""


def _key_table(summary: Mapping) -> str:
    rows = []
    for k, f in (summary.get("figures") or {}).items():
        if not isinstance(f, dict):
            continue
        n = f.get("n") or 0
        ci = f"[{_fmt(f.get('ci_low'))}, {_fmt(f.get('ci_high'))}]" if n > 1 else ""
        rows.append(f"<tr><td>{html.escape(k)}</td><td class=num>{_fmt(f.get('mean'))}</td><td class=num>{ci}</td>"
                    f"<td>{html.escape(str(f.get('unit', '')))}</td><td>{html.escape(str(f.get('help', '')))}</td></tr>")
    return ("<table><tr><th>figure</th><th>mean</th><th>95 % CI</th><th>unit</th><th>meaning</th></tr>"
            + "".join(rows) + "</table>")


def render_report(results: Any, figures: Mapping[str, go.Figure] | None = None) -> str:
    """The HTML text of the report of one run."""
    run = as_run_data(results)
    figs = dict(figures) if figures is not None else build_figures(run)
    summ = run.summary
    status = "" if summ.get("status", "ok") == "ok" else (
        f"<p class=err>Run {html.escape(str(summ.get('status')))}: {html.escape(str(summ.get('error')))}</p>")
    desc = run.config.get("description") or ""
    body = [f"<h1>simsip: {html.escape(run.name)}</h1>", f'<p class="sub">{html.escape(str(desc))}</p>', status]
    words = "".join(f"<li>{w}</li>" for w in scenario_words(run))
    used: set[str] = set()
    for title, names in _SECTIONS:
        body.append(f"<h2>{title}</h2>")
        if title == "The scenario":
            body.append(f'<ul class="words">{words}</ul>')
        if title == "Key figures":
            body.append("<p>Mean and 95 % confidence interval over replications.</p>" + _key_table(summ))
        for name in names:
            if name in figs:
                body.append(_fig_html(name, figs[name]))
                used.add(name)
    rest = [n for n in figs if n not in used]
    if rest:
        body.append("<h2>More</h2>")
        body.extend(_fig_html(n, figs[n]) for n in rest)
    if run.run_dir is not None:
        body.append(f'<p class="sub">Run directory: {html.escape(str(run.run_dir))}</p>')
    return _page(f"simsip — {run.name}", "\n".join(body))


def render_sweep_report(sweep: SweepData) -> str:
    """The HTML text of a sweep or plan directory's report."""
    figs = build_sweep_figures(sweep)
    table = _point_table(sweep.points, sweep.runs)
    factors, figures = sweep_columns(table) if len(table) else ([], [])
    name = str(sweep.meta.get("name") or sweep.meta.get("scenario") or sweep.run_dir.name)
    body = [f"<h1>simsip sweep: {html.escape(name)}</h1>",
            f'<p class="sub">{len(table):,} points; factors: {html.escape(", ".join(factors) or "none found")}; '
            f'figures: {html.escape(", ".join(figures) or "none found")}.</p>']
    if sweep.recommendation:
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(json.dumps(v) if not isinstance(v, str) else v)}</td></tr>"
                       for k, v in sweep.recommendation.items())
        body.append(f"<h2>Recommendation</h2><table>{rows}</table>")
    for n, fig in figs.items():
        body.append(_fig_html(n, fig))
    if len(table):
        loss = next((f for f in _LOSS_PREF if f in figures), None)
        shown = table.sort_values(_metric_col(table, loss)) if loss and _metric_col(table, loss) else table
        cols = factors + [c for f in figures for c in [_metric_col(shown, f)] if c][:8]
        body.append("<h2>Points</h2>" + shown[cols].head(50).to_html(index=False, float_format=lambda v: _fmt(v), border=0))
    return _page(f"simsip sweep — {name}", "\n".join(body))


def write_report(results: Any, path: str | os.PathLike) -> None:
    """Write the self-contained HTML report of one run (``Results`` or :class:`RunData`) to ``path``."""
    from simsip.api import _atomic_text

    _atomic_text(Path(path), render_report(results))


def write_report_dir(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Rebuild the report from a run or sweep directory's files; returns the HTML path.

    A run directory has ``summary.json``, ``config.resolved.yaml`` and the tables (CSV or Parquet);
    a sweep or plan directory has ``points.csv`` and/or ``runs.csv`` (factor columns + figure
    columns), optionally ``recommendation.json``. The page goes to ``out`` or ``RUN_DIR/report.html``.
    """
    from simsip.api import _atomic_text

    d = Path(run_dir)
    if not d.is_dir():
        raise ReportError(f"{d}: no such directory")
    target = Path(out) if out is not None else d / "report.html"
    if is_sweep_dir(d) and not (d / "timeseries.csv").is_file() and not (d / "timeseries.parquet").is_file():
        page = render_sweep_report(load_sweep(d))
    else:
        page = render_report(load_run(d))
    target.parent.mkdir(parents=True, exist_ok=True)
    _atomic_text(target, page)
    return target


# =============================================================================== static export
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    """A headless-capable Chromium/Chrome on PATH (Debian: ``apt-get install chromium``), or None."""
    env = os.environ.get("SIMSIP_CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in CHROMIUM_NAMES:
        p = shutil.which(name)
        if p:
            return p
    return None


def chromium_args(user_data_dir: str | os.PathLike) -> list[str]:
    """Flags for a quiet, offline, throw-away headless Chromium (no network, no first-run UI)."""
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={user_data_dir}"]


def _figures_of(results_or_dir: Any) -> dict[str, go.Figure]:
    if isinstance(results_or_dir, (str, os.PathLike)):
        d = Path(results_or_dir)
        if is_sweep_dir(d) and not (d / "summary.json").is_file():
            return build_sweep_figures(load_sweep(d))
        return build_figures(load_run(d))
    if isinstance(results_or_dir, SweepData):
        return build_sweep_figures(results_or_dir)
    if isinstance(results_or_dir, Mapping):
        return dict(results_or_dir)
    return build_figures(results_or_dir)


def _size(fig: go.Figure) -> tuple[int, int]:
    return int(fig.layout.width or 1100), int(fig.layout.height or 500)


def _export_kaleido(figs: Mapping[str, go.Figure], out: Path, fmt: str, scale: float) -> list[Path]:
    paths = [out / f"{name}.{fmt}" for name in figs]
    sizes = [_size(f) for f in figs.values()]
    if hasattr(pio, "write_images"):  # plotly >= 6.1: one browser session for all figures
        pio.write_images(list(figs.values()), paths, format=fmt, width=[w for w, _ in sizes],
                         height=[h for _, h in sizes], scale=scale)
    else:
        for fig, p, (w, h) in zip(figs.values(), paths, sizes):
            pio.write_image(fig, p, format=fmt, width=w, height=h, scale=scale)
    return paths


def _export_chromium(figs: Mapping[str, go.Figure], out: Path, fmt: str, scale: float, timeout: float = 120.0) -> list[Path]:
    """Render the figures in one headless Chromium page and let plotly.js produce each PNG/SVG."""
    from urllib.parse import unquote

    exe = find_chromium()
    if exe is None:
        raise ReportError("static export needs kaleido (pip install kaleido) or Chromium (apt-get install chromium)")
    names = list(figs)
    specs = ",\n".join(
        f'{{"name": {json.dumps(n)}, "w": {_size(figs[n])[0]}, "h": {_size(figs[n])[1]}, "fig": {pio.to_json(figs[n])}}}'
        for n in names)
    page_text = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><script>{get_plotlyjs()}</script></head><body>
<div id="work"></div><script>
var specs = [{specs}];
function one(s) {{
  var div = document.createElement('div'); div.style.width = s.w + 'px'; div.style.height = s.h + 'px';
  document.getElementById('work').appendChild(div);
  var pre = document.createElement('pre'); document.body.appendChild(pre);
  return Plotly.newPlot(div, s.fig.data, s.fig.layout, {{staticPlot: true}})
    .then(function (gd) {{ return Plotly.toImage(gd, {{format: '{fmt}', width: s.w, height: s.h, scale: {scale}}}); }})
    .then(function (url) {{ pre.textContent = 'FIG:' + s.name + ':DATA:' + url + ':END'; }})
    .catch(function (e) {{ pre.textContent = 'FIG:' + s.name + ':ERROR:' + e + ':END'; }});
}}
specs.reduce(function (p, s) {{ return p.then(function () {{ return one(s); }}); }}, Promise.resolve());
</script></body></html>"""
    with tempfile.TemporaryDirectory(prefix="simsip-export-") as tmp:
        page = Path(tmp) / "figures.html"
        page.write_text(page_text, encoding="utf-8")
        cmd = [exe, *chromium_args(Path(tmp) / "profile"), "--virtual-time-budget=60000", "--dump-dom", page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    found = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(r"<pre>FIG:(.*?):(DATA|ERROR):(.*?):END</pre>", proc.stdout, re.S)}
    paths = []
    for n in names:
        kind, payload = found.get(n, ("ERROR", "no output (" + proc.stderr[-300:] + ")"))
        if kind != "DATA":
            raise ReportError(f"Chromium could not export {n}: {html.unescape(payload)}")
        head, _, body = html.unescape(payload).partition(",")
        p = out / f"{n}.{fmt}"
        if head.endswith(";base64"):
            p.write_bytes(base64.b64decode(body))
        else:
            p.write_text(unquote(body), encoding="utf-8")
        paths.append(p)
    return paths


def export_static(results_or_dir: Any, out_dir: str | os.PathLike, fmt: str = "png", scale: float = 2.0,
                  engine: str = "auto") -> list[Path]:
    """Write each figure as ``OUT_DIR/<name>.<fmt>`` (png or svg) for slides; returns the paths.

    ``results_or_dir``: ``Results``, :class:`RunData`, a run/sweep directory, or a mapping of
    figures. ``engine``: ``kaleido`` (plotly's exporter, which drives a local Chrome/Chromium),
    ``chromium`` (plotly.js's own export inside headless Chromium), or ``auto`` (kaleido, then
    Chromium). Neither needs the network.
    """
    if fmt not in ("png", "svg"):
        raise ValueError(f"fmt must be 'png' or 'svg', got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = _figures_of(results_or_dir)
    if fmt == "svg":
        scale = 1.0  # vector: the viewBox is the figure size
    if engine not in ("auto", "kaleido", "chromium"):
        raise ValueError(f"engine must be auto, kaleido or chromium, got {engine!r}")
    if engine in ("auto", "kaleido"):
        try:
            return _export_kaleido(figs, out, fmt, scale)
        except Exception as exc:  # kaleido missing, or it found no browser
            if engine == "kaleido":
                raise ReportError(f"kaleido export failed: {exc}") from exc
    return _export_chromium(figs, out, fmt, scale)


def report_cli(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, static: bool = False) -> Path:
    """``simsip report RUN_DIR [--out FILE] [--static]``: rebuild the HTML report (and PNG+SVG figures).

    Prints where things went; raises :class:`ReportError` (a user mistake: print it, exit 2).
    """
    from rich.console import Console

    console = Console()
    path = write_report_dir(run_dir, out)
    console.print(f"report: {path}")
    if static:
        fig_dir = path.parent / "figures"
        for fmt in ("png", "svg"):
            paths = export_static(run_dir, fig_dir, fmt=fmt)
            console.print(f"{fmt}: {len(paths)} figure(s) in {fig_dir}")
    return path


__all__ = [
    "RunData", "SweepData", "ReportError", "as_run_data", "load_run", "load_sweep", "build_figures",
    "build_sweep_figures", "write_report", "write_report_dir", "render_report", "render_sweep_report",
    "export_static", "report_cli", "topology_graph", "topology_figure", "scenario_words", "compare_figure",
    "compare_table", "tradeoff_figure", "heatmap_figure", "pareto_figure", "pareto_mask", "find_chromium",
    "chromium_args", "reachable_figure", "rate_figure", "vip_owner_figure", "conflicts_figure",
    "bindings_figure", "recovery_cdf_figure", "key_figures_figure", "is_sweep_dir", "sweep_columns",
]
