"""The run page: what one registrar failover did to the phones, for one scenario.

A failover review asks a few questions in order. *What is the setup?* — how many phones, which
registrar nodes behind which virtual IP, where the registrations live. *What happened?* — when the
fault struck, how long keepalived took to move the VIP, who owned it when, whether two nodes ever
both claimed it. *What did it cost?* — phones unreachable over time, the recovery-time
distribution, unreachable phone-seconds and failed inbound calls with 95 % confidence intervals
over replications, and the REGISTER storm against the registrar's capacity.

The page reads a :class:`RunData`: the typed scenario, the key figures with their confidence
intervals (:class:`FigureStat`) and the declared result tables (:mod:`simsip.tables`), built either
from :class:`simsip.api.Results` (:func:`as_run_data`) or from a run directory (:func:`load_run`) —
so ``simsip run``, ``simsip report RUN_DIR`` and a notebook draw the same figures.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from simsip.config.schema import Scenario
from simsip.metrics import censoring_note, km_survival
from simsip.tables import FAULTS, OUTAGES, RECOVERY, TIMESERIES, TRUNK_OUTAGES, VIP, TableError, read_table

from .scenario import scenario_sentences, topology_figure
from .toolkit import COLORS, ReportError, figure_block, fmt, human, layout, page, write_page


# =============================================================================== run data
@dataclass(frozen=True)
class FigureStat:
    """One key figure over the replications: mean and 95 % interval (NaN when unknown).

    ``not_reached``: replications where the figure lies beyond the run end (a recovery quantile
    that the phones not recovered by then keep from being reached); ``not_recovered`` and
    ``not_recovered_share`` (recovery figures): phones still unreachable at the end of the run.
    """

    mean: float
    ci_low: float
    ci_high: float
    n: int
    unit: str = ""
    help: str = ""
    not_reached: int = 0
    not_recovered: float = math.nan
    not_recovered_share: float = math.nan
    method: str = ""

    def shown(self) -> str:
        """The mean for people, '> run end' when it lies beyond the run (in k of n replications)."""
        if self.not_reached:
            return "> run end" if self.not_reached >= self.n else f"> run end ({self.not_reached} of {self.n} replications)"
        return fmt(self.mean)

    @classmethod
    def from_summary(cls, d: Mapping[str, Any]) -> "FigureStat":
        """From one entry of ``summary.json``'s ``figures`` (``None`` is NaN there)."""
        def num(key: str) -> float:
            v = d.get(key)
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan

        return cls(num("mean"), num("ci_low"), num("ci_high"), int(d.get("n") or 0), str(d.get("unit") or ""),
                   str(d.get("help") or ""), int(num("not_reached")) if math.isfinite(num("not_reached")) else 0,
                   num("not_recovered"), num("not_recovered_share"), str(d.get("method") or ""))


@dataclass
class RunData:
    """Everything the run page needs from one run.

    ``scenario`` is the validated scenario, ``None`` when this simsip version cannot read the run's
    ``config.resolved.yaml`` (the page then shows the results only). The tables are the declared
    ones (:mod:`simsip.tables`), over all replications.
    """

    name: str
    scenario: Scenario | None
    figures: dict[str, FigureStat]
    timeseries: pd.DataFrame
    outages: pd.DataFrame
    recovery: pd.DataFrame
    faults: pd.DataFrame
    vip: pd.DataFrame
    per_replication: pd.DataFrame = field(default_factory=pd.DataFrame)
    trunk_outages: pd.DataFrame = field(default_factory=TRUNK_OUTAGES.empty)
    storm: dict = field(default_factory=dict)  # summary.json's storm section: node -> figure -> stats
    description: str = ""
    status: str = "ok"
    error: str | None = None
    seed: int | None = None
    replications_done: int = 0
    simsip_version: str = ""
    run_dir: Path | None = None

    def figure(self, key: str) -> float:
        """The mean of a key figure (NaN if the run has none)."""
        f = self.figures.get(key)
        return f.mean if f is not None else math.nan

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], scenario: Scenario | None, tables: Mapping[str, pd.DataFrame],
                     per_replication: pd.DataFrame, run_dir: Path | None = None, name: str = "") -> "RunData":
        figs = {k: FigureStat.from_summary(v) for k, v in (summary.get("figures") or {}).items() if isinstance(v, Mapping)}
        return cls(
            name=name or (scenario.name if scenario is not None else str(summary.get("scenario") or "scenario")),
            scenario=scenario, figures=figs, per_replication=per_replication,
            description=scenario.description if scenario is not None else "",
            status=str(summary.get("status") or "ok"), error=summary.get("error"), seed=summary.get("seed"),
            replications_done=int(summary.get("replications_done") or 0),
            simsip_version=str(summary.get("simsip_version") or ""), run_dir=run_dir,
            trunk_outages=tables.get("trunk_outages", TRUNK_OUTAGES.empty()),
            storm=summary.get("storm") if isinstance(summary.get("storm"), Mapping) else {},
            **{t: tables[t] for t in ("timeseries", "outages", "recovery", "faults", "vip")},
        )


def as_run_data(results: Any) -> RunData:
    """A :class:`RunData` from :class:`simsip.api.Results` (a RunData is returned as is)."""
    if isinstance(results, RunData):
        return results
    tables = {t: getattr(results, t) for t in ("timeseries", "outages", "recovery", "faults", "vip")}
    if getattr(results.config, "trunks", ()):
        tables["trunk_outages"] = results.trunk_outages
    return RunData.from_summary(results.summary, results.config, tables, results.per_replication,
                                run_dir=getattr(results, "out_dir", None))


def _typed(config: Mapping) -> Scenario | None:
    try:
        return Scenario.model_validate(dict(config))
    except Exception:  # an older or newer run directory: the page shows the results only
        return None


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
    from simsip.io import run_state  # a run killed before it finished: its files may disagree

    why = run_state(summary, d) if isinstance(summary, dict) else f"{summ_path}: not a run summary"
    if why:
        raise ReportError(why)
    cfg_path = d / "config.resolved.yaml"
    scenario = None
    if cfg_path.is_file():
        try:
            config = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ReportError(f"{cfg_path}: cannot read: {exc}") from None
        scenario = _typed(config) if isinstance(config, dict) and config else None
    tables = {}
    for t in (TIMESERIES, OUTAGES, RECOVERY, FAULTS, VIP, TRUNK_OUTAGES):
        try:
            tables[t.name] = read_table(d, t)
        except (TableError, OSError, ValueError, pd.errors.ParserError) as exc:
            raise ReportError(f"{d}: cannot read the {t.name} table: {exc}") from None
    per_rep = pd.DataFrame()
    for p in (d / "replications.parquet", d / "replications.csv"):
        if p.is_file() and p.stat().st_size > 0:
            try:
                per_rep = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
            except (OSError, ValueError, pd.errors.EmptyDataError):
                pass
            break
    return RunData.from_summary(summary, scenario, tables, per_rep, run_dir=d)


# =============================================================================== helpers
def _rep(df: pd.DataFrame, replication: int) -> pd.DataFrame:
    if "replication" not in df.columns or not len(df):
        return df
    return df[df["replication"] == replication]


def _resolution(run: RunData) -> float:
    if run.scenario is not None:
        return float(run.scenario.output.resolution)
    ts = _rep(run.timeseries, 0)
    if len(ts) > 1:
        return float(np.median(np.diff(ts["time"].to_numpy(dtype=float))))
    return 1.0


def _phones(run: RunData) -> int:
    if run.scenario is not None:
        return run.scenario.phones
    v = run.figure("phones")
    return int(v) if math.isfinite(v) else int(run.timeseries["registered"].max()) if len(run.timeseries) else 0


def _node_names(run: RunData) -> list[str]:
    if run.scenario is not None:
        return [n.name for n in run.scenario.ha.nodes]
    return sorted(c[len("register_rx_"):] for c in TIMESERIES.members(run.timeseries, "register_rx_"))


def _capacity(run: RunData) -> float:
    cap = run.figure("capacity_per_s")
    if not math.isfinite(cap) and run.scenario is not None:
        reg = run.scenario.registrar
        cap = reg.worker_limit / max(reg.service_time.expected, 1e-12)
    return cap


# =============================================================================== timelines
#: At most this many events get a text label on a timeline (every one keeps its line).
MAX_EVENT_LABELS = 30


def _mark_events(fig: go.Figure, faults: pd.DataFrame, vip: pd.DataFrame, row: int | None = None) -> None:
    """Dashed lines at faults (red) and repairs (orange), dotted grey lines at VIP moves.

    The lines and labels are added to the layout in one assignment (plotly's ``add_vline``
    re-validates every shape already there, which is quadratic in the number of faults).
    """
    axis = "" if not row or row == 1 else str(row)
    xref, yref = f"x{axis}", f"y{axis} domain"
    shapes, notes = [], []
    ft = faults["time"].to_numpy(dtype=float) if len(faults) else np.zeros(0)
    causes = [str(c or "fault") for c in faults["cause"]] if len(faults) else []
    nodes = [str(n) for n in faults["node"]] if len(faults) else []
    label_faults = (not row or row == 1) and len(ft) <= MAX_EVENT_LABELS
    for t, cause, node in zip(ft, causes, nodes):
        color = "#d62728" if cause == "fault" else "#ff7f0e"
        shapes.append(dict(type="line", xref=xref, yref=yref, x0=float(t), x1=float(t), y0=0, y1=1,
                           line=dict(color=color, dash="dash", width=1)))
        if label_faults:
            notes.append(dict(x=float(t), y=1.02, xref=xref, yref="paper", text=f"{cause} {node}", showarrow=False,
                              font=dict(size=10, color=color)))
    vt = vip["time"].to_numpy(dtype=float) if len(vip) else np.zeros(0)
    vn = [str(n) for n in vip["node"]] if len(vip) else []
    label_vip = not row and len(vt) <= MAX_EVENT_LABELS
    for t, node in zip(vt, vn):
        if t <= 0:
            continue
        shapes.append(dict(type="line", xref=xref, yref=yref, x0=float(t), x1=float(t), y0=0, y1=1,
                           line=dict(color="#7f7f7f", dash="dot", width=1)))
        if label_vip and node:  # the unserved gap is seconds long: its label would sit on the move's
            notes.append(dict(x=float(t), y=0.96, xref=xref, yref="paper", text=f"VIP → {node}", showarrow=False,
                              xanchor="left", font=dict(size=9, color="#555")))
    if shapes:
        fig.update_layout(shapes=list(fig.layout.shapes) + shapes, annotations=list(fig.layout.annotations) + notes)


def reachable_figure(timeseries: pd.DataFrame, faults: pd.DataFrame, vip: pd.DataFrame, phones: int,
                     replication: int = 0) -> go.Figure:
    """Phones reachable (the serving node holds a valid binding) and registered (their own view)."""
    ts = _rep(timeseries, replication)
    fig = go.Figure()
    if len(timeseries) and timeseries["replication"].nunique() > 1:
        band = timeseries.groupby("time")["reachable"].agg(["min", "max"]).reset_index()
        fig.add_trace(go.Scatter(x=band["time"], y=band["max"], line=dict(width=0), showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=band["time"], y=band["min"], fill="tonexty", line=dict(width=0),
                                 fillcolor="rgba(31,119,180,0.15)", name="reachable, range over replications"))
    fig.add_trace(go.Scatter(x=ts["time"], y=ts["reachable"], name="reachable (serving node has a binding)",
                             line=dict(color=COLORS[0])))
    fig.add_trace(go.Scatter(x=ts["time"], y=ts["registered"], name="registered (phones' own view)",
                             line=dict(color=COLORS[2], dash="dot")))
    if "no_connection" in ts.columns:  # connection-bound fleets: a binding without its connection
        fig.add_trace(go.Scatter(x=ts["time"], y=ts["no_connection"],
                                 name="binding but no connection (unreachable until the phone reconnects)",
                                 line=dict(color=COLORS[3], dash="dash")))
    _mark_events(fig, _rep(faults, replication), _rep(vip, replication))
    return layout(fig, f"Phones reachable over time (replication {replication})", xaxis_title="time (s)",
                  yaxis_title="phones", yaxis_range=[0, max(phones, 1) * 1.05], legend=dict(orientation="h", y=-0.2))


def rate_figure(timeseries: pd.DataFrame, faults: pd.DataFrame, vip: pd.DataFrame, capacity: float,
                resolution: float, replication: int = 0) -> go.Figure:
    """REGISTER arrivals per second at each node, retransmissions, and the registrar's capacity."""
    ts = _rep(timeseries, replication)
    fig = go.Figure()
    cols = TIMESERIES.members(ts, "register_rx_")
    for i, c in enumerate(cols):
        fig.add_trace(go.Scatter(x=ts["time"], y=ts[c] / resolution, name=f"REGISTER/s at {c[len('register_rx_'):]}",
                                 line=dict(color=COLORS[i % len(COLORS)])))
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
    _mark_events(fig, _rep(faults, replication), _rep(vip, replication))
    return layout(fig, "REGISTER rate against registrar capacity", xaxis_title="time (s)",
                  yaxis_title="requests per second", legend=dict(orientation="h", y=-0.2), **kw)


def trunk_figure(trunk_outages: pd.DataFrame, trunks: Sequence[str], faults: pd.DataFrame, vip: pd.DataFrame,
                 horizon: float, replication: int = 0) -> go.Figure:
    """When each trunk could take inbound DID calls: one lane per trunk, its down intervals coloured
    by cause (nobody holds the VIP; the provider's binding leads to the old node; no live binding)."""
    t = _rep(trunk_outages, replication)
    fig = go.Figure()
    colors = {"no_node": "#bbbbbb", "wrong_node": "#ff7f0e", "unregistered": "#d62728"}
    words = {"no_node": "no node holds the VIP", "wrong_node": "binding leads to the old node",
             "unregistered": "no live provider binding"}
    for name in trunks:
        fig.add_trace(go.Scatter(x=[0, horizon], y=[name, name], mode="lines", line=dict(color="#2ca02c", width=10),
                                 name="takes calls", showlegend=name == trunks[0], hoverinfo="skip"))
    for cause, color in colors.items():
        xs: list = []
        ys: list = []
        for row in t[t["cause"] == cause].itertuples():
            end = row.end if math.isfinite(row.end) else horizon
            xs += [row.start, end, None]
            ys += [row.trunk, row.trunk, None]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=10), name=words[cause]))
    _mark_events(fig, _rep(faults, replication), _rep(vip, replication))
    return layout(fig, "Trunk registrations: when inbound DID calls can arrive", xaxis_title="time (s)",
                  height=160 + 50 * len(trunks), legend=dict(orientation="h", y=-0.3))


def vip_owner_figure(vip: pd.DataFrame, timeseries: pd.DataFrame, faults: pd.DataFrame, nodes: Sequence[str],
                     horizon: float, replication: int = 0) -> go.Figure:
    """Who served the VIP when (top) and how many VRRP instances claimed master (bottom).

    Two masters at once is a split brain: both nodes answer for the VIP and the phones' ARP
    entries decide which one a REGISTER reaches.
    """
    v = _rep(vip, replication).sort_values("time")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.68, 0.32])
    lanes = list(nodes) + ["(nobody)"]
    color_of = {n: COLORS[i % len(COLORS)] for i, n in enumerate(nodes)}
    color_of["(nobody)"] = "#bbbbbb"
    times = v["time"].to_numpy(dtype=float)
    spans: dict[str, list] = {}  # one trace per lane (None between spans): linear in the VIP moves
    for i, node in enumerate(v["node"].tolist()):
        a = float(times[i])
        b = float(times[i + 1]) if i + 1 < len(times) else horizon
        if b <= a:
            continue
        lane = str(node) or "(nobody)"
        if lane not in lanes:
            lanes.insert(len(lanes) - 1, lane)
            color_of[lane] = COLORS[len(color_of) % len(COLORS)]
        spans.setdefault(lane, []).extend([a, b, None])
    for lane, xs in spans.items():
        fig.add_trace(go.Scatter(x=xs, y=[lane if x is not None else None for x in xs], mode="lines",
                                 line=dict(width=18, color=color_of[lane]), name=lane, legendgroup=lane,
                                 hovertemplate=f"{lane}: %{{x:.2f}} s<extra></extra>"), row=1, col=1)
    if not len(v):
        fig.add_trace(go.Scatter(x=[0, horizon], y=["(nobody)", "(nobody)"], mode="lines",
                                 line=dict(width=18, color="#bbbbbb"), name="no VIP record"), row=1, col=1)
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(lanes)), title_text="VIP served by", row=1, col=1)
    ts = _rep(timeseries, replication)
    fig.add_trace(go.Scatter(x=ts["time"], y=ts["vrrp_masters"], mode="lines", line=dict(shape="hv", color="#444"),
                             name="VRRP masters (2+ = split brain)"), row=2, col=1)
    fig.add_hline(y=1.5, line=dict(color="#d62728", dash="dot", width=1), row=2, col=1)
    fig.update_yaxes(title_text="masters", rangemode="tozero", dtick=1, row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    _mark_events(fig, _rep(faults, replication), v.iloc[0:0], row=1)
    _mark_events(fig, _rep(faults, replication), v.iloc[0:0], row=2)
    return layout(fig, f"VIP owner over time (replication {replication})", legend=dict(orientation="h", y=-0.18))


def conflicts_figure(timeseries: pd.DataFrame, faults: pd.DataFrame, vip: pd.DataFrame,
                     replication: int = 0) -> go.Figure:
    """Phones with a registration conflict: a binding only on a node that does not serve the VIP
    (misplaced), or different bindings on two nodes (divergent, e.g. after a split brain)."""
    ts = _rep(timeseries, replication)
    fig = go.Figure()
    if "conflicts" in ts:
        fig.add_trace(go.Scatter(x=ts["time"], y=ts["conflicts"], name="phones in conflict", line=dict(color=COLORS[1])))
    for col, dash, name in (("conflicts_misplaced", "dot", "misplaced (binding only off the serving node)"),
                            ("conflicts_divergent", "dash", "divergent (nodes disagree)")):
        if col in ts:
            fig.add_trace(go.Scatter(x=ts["time"], y=ts[col], name=name, line=dict(color="#888", dash=dash)))
    if not fig.data:
        fig.add_trace(go.Scatter(x=ts["time"], y=np.zeros(len(ts)), name="no conflict data in this run",
                                 line=dict(color="#bbb")))
    _mark_events(fig, _rep(faults, replication), _rep(vip, replication))
    return layout(fig, f"Registration conflicts over time (replication {replication})", xaxis_title="time (s)",
                  yaxis_title="phones", yaxis_rangemode="tozero", legend=dict(orientation="h", y=-0.2))


def bindings_figure(timeseries: pd.DataFrame, faults: pd.DataFrame, vip: pd.DataFrame, phones: int,
                    replication: int = 0) -> go.Figure:
    """Bindings each store holds in memory (expired ones until the registrar's purge timer)."""
    ts = _rep(timeseries, replication)
    fig = go.Figure()
    cols = TIMESERIES.members(ts, "bindings_")
    for i, c in enumerate(cols):
        fig.add_trace(go.Scatter(x=ts["time"], y=ts[c], name=f"bindings held by {c[len('bindings_'):]}",
                                 line=dict(color=COLORS[i % len(COLORS)], shape="hv")))
    if not cols:
        fig.add_trace(go.Scatter(x=ts["time"], y=ts["registered"], name="registered (no per-store data)",
                                 line=dict(color="#bbb")))
    fig.add_hline(y=phones, line=dict(color="#555", dash="dot", width=1), annotation_text=f"{phones:,} phones")
    _mark_events(fig, _rep(faults, replication), _rep(vip, replication))
    return layout(fig, f"Bindings held by each store (replication {replication})", xaxis_title="time (s)",
                  yaxis_title="bindings", yaxis_range=[0, max(phones, 1) * 1.1], legend=dict(orientation="h", y=-0.2))


def recovery_cdf_figure(recovery: pd.DataFrame, horizon: float | None = None) -> go.Figure:
    """Per disturbance, the share of affected phones reachable again within x seconds.

    A phone still unreachable at the end of the run is censored there (Kaplan–Meier, so several
    replications pool correctly); the curve ends at the run end and says how many never came back.
    """

    fig = go.Figure()
    i = 0
    for (cause, key), grp in recovery.groupby(["cause", "fault"]):
        rt = grp["recovery_time"].to_numpy(dtype=float)
        if not rt.size:
            continue
        end = (horizon - grp["time"].to_numpy(dtype=float)) if horizon is not None else np.full(rt.size, np.nanmax(rt, initial=0.0))
        ev, surv = km_survival(rt, end)
        never = int(np.isnan(rt).sum())
        name = f"after fault {key}" if cause == "fault" else "after the repair (failback)"
        label = f"{name} ({len(grp):,} phone-recoveries"
        label += f"; {never:,} ({100 * never / rt.size:.0f} %) not recovered by the run end)" if never else ")"
        x, y = list(ev), list(1.0 - surv)
        if never and horizon is not None:  # flat to the run end: the share that never came back stays visible
            x.append(float(np.max(end)))
            y.append(y[-1] if y else 0.0)
        color = COLORS[i % len(COLORS)]
        fig.add_trace(go.Scatter(x=[0.0] + x, y=[0.0] + y, mode="lines",
                                 line=dict(shape="hv", color=color, dash="solid" if cause == "fault" else "dash"),
                                 name=label))
        if never and x:
            fig.add_annotation(x=x[-1], y=y[-1], text=f"{100 * never / rt.size:.0f} % not recovered by the run end",
                               showarrow=True, arrowhead=2, ax=-40, ay=-30, font=dict(color="#b35900", size=11))
        i += 1
    if not fig.data:
        fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker=dict(color="#bbb"), name="no phone lost reachability"))
    fig.add_hline(y=0.95, line=dict(color="#999", dash="dot", width=1), annotation_text="95 %")
    return layout(fig, "Recovery time after each disturbance (share of affected phones, all replications)",
                  xaxis_title="seconds from disturbance to reachable", yaxis_title="share of affected phones reachable again",
                  yaxis_range=[0, 1.02], legend=dict(orientation="h", y=-0.2))


TIME_FIGURES = ("detection_time", "vip_move_time", "recovery_median", "recovery_mean", "recovery_p95",
                "recovery_p99", "recovery_max", "failback_vip_move_time")


def key_figures_figure(figures: Mapping[str, FigureStat], replications: int | str = "?") -> go.Figure:
    """The time-valued key figures as points with their 95 % confidence intervals."""
    names, means, lo, hi = [], [], [], []
    for k in TIME_FIGURES:
        f = figures.get(k)
        if f is None or not math.isfinite(f.mean) or f.not_reached:
            continue
        names.append(k)
        means.append(f.mean)
        lo.append(f.mean - (f.ci_low if math.isfinite(f.ci_low) else f.mean))
        hi.append((f.ci_high if math.isfinite(f.ci_high) else f.mean) - f.mean)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=means, y=names, mode="markers", marker=dict(size=10, color=COLORS[0]),
                             error_x=dict(type="data", symmetric=False, array=hi, arrayminus=lo, thickness=2, width=6),
                             name="mean with 95 % CI", hovertemplate="%{y}: %{x:.3g} s<extra></extra>"))
    return layout(fig, f"Key times with 95 % confidence intervals ({replications} replications)", xaxis_title="seconds",
                  xaxis_type="log" if means and min(means) > 0 and max(means) / min(means) > 50 else "linear",
                  yaxis=dict(autorange="reversed"), height=360, showlegend=False)


# =============================================================================== the page
FIGURE_CAPTIONS = {
    "topology": "Phone fleets register through the virtual IP; the HA stack decides which registrar node serves it. "
                "Where the registrations live decides what a new master knows. Red outline: a node with a scheduled fault.",
    "key_figures": "Means over replications with 95 % confidence intervals (Student-t on the log of the mean, so "
                   "never below zero); few replications give wide intervals. A recovery figure beyond the run end is "
                   "left out.",
    "reachable": "A phone is reachable when the node serving the VIP holds an unexpired binding for it. Dashed red: "
                 "faults; orange: repairs; dotted grey: VIP moves. The gap between 'registered' and 'reachable' is "
                 "phones that believe they are registered but cannot be called. For TCP/TLS phones behind NAT (or "
                 "with rewritten contacts) a binding also needs the connection it was registered on: the dashed "
                 "purple line counts phones whose binding the serving node holds without that connection.",
    "vip_owner": "Which node answered for the VIP (top) and how many VRRP instances were master (bottom; 2 = split brain).",
    "register_rate": "REGISTER arrivals per second at each node against the registrar's capacity (workers / service time).",
    "conflicts": "Phones whose binding sits only on a node that does not serve the VIP, or whose bindings differ between nodes.",
    "bindings": "Bindings each store holds (expired ones stay until the purge timer). A new master starting near zero is "
                "the no-replication loss window.",
    "trunks": "The PBX's own registration to each SIP provider (replication 0). After a failover the new node registers "
              "from scratch (Asterisk: 1..max_random_initial_delay s after it starts); until the provider holds a live "
              "binding that leads to the node holding the VIP, inbound DID calls fail.",
    "recovery_cdf": "For each disturbance, the share of affected phones reachable again within x seconds (pooled over "
                    "replications; Kaplan–Meier, phones still unreachable at the end of the run are censored there, so "
                    "a curve that stays below 100 % is phones that never came back within the run).",
}

_SECTIONS = (("The scenario", ("topology",)), ("Key figures", ("key_figures",)),
             ("Timelines", ("reachable", "vip_owner", "trunks", "register_rate", "conflicts", "bindings")),
             ("Recovery", ("recovery_cdf",)))


def build_figures(results: Any) -> dict[str, go.Figure]:
    """The plotly figures of one run, from ``Results`` or :class:`RunData` (same code path everywhere)."""
    run = as_run_data(results)
    ts, faults, vip = run.timeseries, run.faults, run.vip
    phones = _phones(run)
    if run.scenario is not None:
        horizon = float(run.scenario.duration)
    else:
        horizon = float(ts["time"].max()) if len(ts) else 1.0
    figs: dict[str, go.Figure] = {}
    if run.scenario is not None:
        figs["topology"] = topology_figure(run.scenario)
    figs["key_figures"] = key_figures_figure(run.figures, run.replications_done)
    figs["reachable"] = reachable_figure(ts, faults, vip, phones)
    figs["vip_owner"] = vip_owner_figure(vip, ts, faults, _node_names(run), horizon)
    if run.scenario is not None and run.scenario.trunks:
        figs["trunks"] = trunk_figure(run.trunk_outages, [t.name for t in run.scenario.trunks], faults, vip, horizon)
    figs["register_rate"] = rate_figure(ts, faults, vip, _capacity(run), _resolution(run))
    figs["conflicts"] = conflicts_figure(ts, faults, vip)
    figs["bindings"] = bindings_figure(ts, faults, vip, phones)
    figs["recovery_cdf"] = recovery_cdf_figure(run.recovery, horizon)
    return figs


def scenario_words(run: RunData) -> list[str]:
    """The scenario as a few plain sentences (the page's first section)."""
    if run.scenario is None:
        return ["This simsip version cannot read the run directory's config.resolved.yaml; only the results are shown."]
    scn = run.scenario
    return scenario_sentences(scn, _capacity(run)) + [
        f"Simulated {human(scn.duration)}, {run.replications_done} replication(s), seed "
        f"{run.seed if run.seed is not None else scn.seed}, simsip {run.simsip_version or '?'}."]


def _key_table(figures: Mapping[str, FigureStat]) -> str:
    rows = []
    for k, f in figures.items():
        ci = f"[{fmt(f.ci_low)}, {fmt(f.ci_high)}]" if f.n > 1 and not f.not_reached else ""
        cens = ""
        if math.isfinite(f.not_recovered):
            cens = f"{fmt(f.not_recovered)}" + (f" ({100 * f.not_recovered_share:.0f} %)"
                                                if math.isfinite(f.not_recovered_share) else "")
        rows.append(f"<tr><td>{html.escape(k)}</td><td class=num>{html.escape(f.shown())}</td><td class=num>{ci}</td>"
                    f"<td class=num>{cens}</td><td>{html.escape(f.unit)}</td><td>{html.escape(f.help)}</td></tr>")
    return ("<table><tr><th>figure</th><th>mean</th><th>95 % CI</th><th>not recovered by the run end</th>"
            "<th>unit</th><th>meaning</th></tr>" + "".join(rows) + "</table>")


def _storm_table(storm: Mapping[str, Mapping]) -> str:
    """summary.json's storm figures (:func:`simsip.metrics.storm_figures`) per node, as a table."""
    from simsip.metrics import STORM_FIGURES

    nodes = [n for n, v in storm.items() if isinstance(v, Mapping)]
    if not nodes:
        return ""
    head = "".join(f"<th>{html.escape(n)}</th>" for n in nodes)
    rows = []
    for k, (unit, help_) in STORM_FIGURES.items():
        cells = []
        for n in nodes:
            v = (storm[n].get(k) or {}).get("mean")
            cells.append(f"<td class=num>{fmt(v) if isinstance(v, (int, float)) else '–'}</td>")
        rows.append(f"<tr><td>{html.escape(k)}</td>{''.join(cells)}<td>{html.escape(unit)}</td>"
                    f"<td>{html.escape(help_)}</td></tr>")
    return ("<p>How the REGISTER load went at each node (means over replications; "
            "<code>cleared</code> 0 means the node was still overloaded near the end of the run).</p>"
            f"<table><tr><th>figure</th>{head}<th>unit</th><th>meaning</th></tr>" + "".join(rows) + "</table>")


def _fault_lead(run: RunData) -> str:
    """The disturbance a verdict speaks of: 'a node crash of the master', or 'N faults (...)'."""
    f = run.faults
    f = f[(f["cause"] == "fault") & (f["replication"] == f["replication"].min())] if len(f) else f
    if not len(f):
        return ""
    kinds = list(dict.fromkeys(str(k).replace("_", " ") for k in f["kind"]))
    if len(f) == 1:
        node = str(f["node"].iloc[0])
        scheduled = run.scenario.faults if run.scenario is not None else []
        who = scheduled[0].node if len(scheduled) == 1 and scheduled[0].node in ("master", "backup") else node
        return f"a {kinds[0]} of {'the ' + who if who in ('master', 'backup') else 'node ' + who}"
    return f"{len(f)} faults ({', '.join(kinds)})"


def verdict(results: Any) -> str:
    """The run in one sentence: what the faults did to the phones, censoring said plainly."""
    run = as_run_data(results)
    phones = _phones(run)
    lead = _fault_lead(run)
    loss = run.figure("unreachable_phone_seconds")
    if not lead:
        return (f"With no fault, {phones:,} phones add up to {fmt(loss)} unreachable phone-seconds "
                f"(mean over {run.replications_done} replication(s)).")
    aff = run.figure("phones_affected")
    med = run.figures.get("recovery_median")
    if not math.isfinite(aff) or aff == 0:
        return f"{lead[0].upper()}{lead[1:]} leaves no phone unreachable."
    if med is not None and med.not_reached:
        how = "for more than the rest of the run (median recovery beyond the run end)"
    else:
        how = f"for a median {human(med.mean) if med is not None and math.isfinite(med.mean) else '?'}"
    s = f"{lead[0].upper()}{lead[1:]} leaves {aff:,.0f} of {phones:,} phones unreachable {how}"
    nr = run.figure("phones_not_recovered")
    if math.isfinite(nr) and nr > 0:
        s += f"; {100 * nr / max(phones, 1):.0f} % of all phones are still unreachable at the end of the run"
    else:
        mx = run.figures.get("recovery_max")
        if mx is not None and math.isfinite(mx.mean):
            s += f"; all are reachable again within {human(mx.mean)}"
    return s + f" (mean over {run.replications_done} replication(s))."


def censoring_banner(run: RunData) -> str:
    """The banner a page shows when phones were still unreachable at the end of the run ('' if none)."""

    note = censoring_note({k: {"mean": v.mean} for k, v in run.figures.items()})
    return f'<p class="banner"><b>Not all phones recovered.</b> {html.escape(note)}</p>' if note else ""


def render_run_report(results: Any, figures: Mapping[str, go.Figure] | None = None) -> str:
    """The HTML text of the page of one run (``Results`` or :class:`RunData`)."""
    run = as_run_data(results)
    figs = dict(figures) if figures is not None else build_figures(run)
    status = "" if run.status == "ok" else (
        f"<p class=err>Run {html.escape(run.status)}: {html.escape(str(run.error))}</p>")
    body = [f"<h1>simsip: {html.escape(run.name)}</h1>", f'<p class="sub">{html.escape(run.description)}</p>', status,
            f'<p class="verdict">{html.escape(verdict(run))}</p>', censoring_banner(run)]
    words = "".join(f"<li>{w}</li>" for w in scenario_words(run))
    used: set[str] = set()
    for title, names in _SECTIONS:
        body.append(f"<h2>{title}</h2>")
        if title == "The scenario":
            body.append(f'<ul class="words">{words}</ul>')
        if title == "Key figures":
            body.append("<p>Mean and 95 % confidence interval over replications.</p>" + _key_table(run.figures))
        for name in names:
            if name in figs:
                body.append(figure_block(name, figs[name], FIGURE_CAPTIONS.get(name, "")))
                used.add(name)
            if name == "register_rate" and run.storm:
                body.append(_storm_table(run.storm))
    rest = [n for n in figs if n not in used]
    if rest:
        body.append("<h2>More</h2>")
        body.extend(figure_block(n, figs[n], FIGURE_CAPTIONS.get(n, "")) for n in rest)
    if run.run_dir is not None:
        body.append(f'<p class="sub">Run directory: {html.escape(str(run.run_dir))}</p>')
    return page(f"simsip — {run.name}", "\n".join(body))


def write_run_report(results: Any, path: str | os.PathLike) -> Path:
    """Write the self-contained HTML page of one run (``Results`` or :class:`RunData`) to ``path``."""
    return write_page(path, render_run_report(results))
