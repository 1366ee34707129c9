"""The sweep page: how the registration loss moves when the knobs move.

A sweep runs one scenario at many settings (factors such as the expiry, the VRRP advert interval,
the replication mode), each with replications on common random numbers. The page answers "which
settings are good enough, and what do they cost?": a **heatmap** of the loss (and of the load) over
the first two factors, **CI bands** (mean and 95 % interval against one factor, one band per level
of a second), a **trade-off** line when one factor varies, and the **Pareto front** of loss against
REGISTER load.

It reads a :class:`SweepData` — the per-point table with ``<figure>_mean/_ci_low/_ci_high``, the
per-run table and the factor columns — built from :class:`simsip.sweep.SweepResult`
(:meth:`SweepData.from_result`) or from a sweep directory (:meth:`SweepData.from_dir`), so
``simsip sweep`` and ``simsip report SWEEP_DIR`` write the same page.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .toolkit import COLORS, ReportError, figure_block, fmt, label, layout, page, rgba, table_block, write_page

_ID_COLUMNS = {"point", "point_id", "run", "run_id", "replication", "seed", "status", "error", "dir", "path", "index",
               "runtime_s", "key", "hash", "id", "recommended", "feasible", "pareto", "screened", "simulated",
               "candidate", "combination"}
_STAT_SUFFIXES = ("_mean", "_ci_low", "_ci_high", "_half_width", "_n", "_sd", "_std", "_min", "_max")
LOSS_FIGURES = ("unreachable_phone_seconds", "unreachable_phone_seconds_after_disturbances", "recovery_p99", "recovery_p95",
                "recovery_mean", "calls_failed_expected")
LOAD_FIGURES = ("steady_register_rate", "peak_register_rate", "peak_load_vs_capacity")
STORM_FIGURE = "peak_register_rate"
MAX_ROWS = 500  # points listed on the page (the tables on disk have all of them)


# =============================================================================== table helpers
def metric_col(df: pd.DataFrame, name: str) -> str | None:
    """The column holding a figure's value (``name`` or ``name_mean``), if numeric."""
    for c in (name, f"{name}_mean", f"mean_{name}", f"{name}.mean"):
        if c in df.columns and pd.api.types.is_numeric_dtype(df[c]):
            return c
    return None


def ci_cols(df: pd.DataFrame, name: str) -> tuple[str | None, str | None]:
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


def _point_table(runs: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """One row per point from a runs table: figures averaged over replications (``<figure>_mean``)."""
    _, figures = sweep_columns(runs)
    cols = [c for f in figures for c in [metric_col(runs, f)] if c]
    keys = [c for c in ("point", *factors) if c in runs.columns]
    if not keys:
        return runs
    out = runs.groupby(keys, dropna=False)[cols].mean().reset_index()
    return out.rename(columns={c: f"{c}_mean" for c in cols if not c.endswith("_mean")})


# =============================================================================== data
@dataclass
class SweepData:
    """What the sweep page shows: the points, the runs, and which columns are factors."""

    name: str
    points: pd.DataFrame  # one row per point: factor values, <figure>_mean, _ci_low, _ci_high
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per (point, replication)
    factor_columns: list[str] = field(default_factory=list)
    common_random_numbers: bool | None = None
    run_dir: Path | None = field(default=None, compare=False)

    @property
    def replications(self) -> int | None:
        if not len(self.runs) or "replication" not in self.runs.columns:
            return None
        key = "point" if "point" in self.runs.columns else None
        return int(self.runs.groupby(key)["replication"].nunique().max()) if key else int(self.runs["replication"].nunique())

    @property
    def varying(self) -> list[str]:
        """The factor columns that take more than one value."""
        return [c for c in self.factor_columns if c in self.points.columns and self.points[c].nunique(dropna=True) > 1]

    @classmethod
    def from_result(cls, res: Any) -> "SweepData":
        """From :class:`simsip.sweep.SweepResult`."""
        return cls(str(res.spec.name), res.points, res.runs, list(res.factor_columns),
                   bool(res.spec.common_random_numbers), getattr(res, "out_dir", None))

    @classmethod
    def from_table(cls, table: pd.DataFrame, name: str = "sweep") -> "SweepData":
        """From a bare per-point table (factors are the varying non-figure columns)."""
        factors, _ = sweep_columns(table)
        return cls(name, table, pd.DataFrame(), factors)

    @classmethod
    def from_dir(cls, run_dir: str | os.PathLike) -> "SweepData":
        """From a sweep directory: ``points``/``runs`` tables (Parquet preferred) and ``manifest.json``."""
        d = Path(run_dir)
        tables: dict[str, pd.DataFrame] = {}
        for name in ("points", "runs"):
            pq, csv = d / f"{name}.parquet", d / f"{name}.csv"
            try:
                tables[name] = pd.read_parquet(pq) if pq.is_file() else (pd.read_csv(csv) if csv.is_file() else pd.DataFrame())
            except (OSError, ValueError, pd.errors.EmptyDataError) as exc:
                raise ReportError(f"{d}: cannot read {name} table: {exc}") from None
        manifest: dict = {}
        if (d / "manifest.json").is_file():
            try:
                manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ReportError(f"{d / 'manifest.json'}: cannot read: {exc}") from None
        points, runs = tables["points"], tables["runs"]
        factors = [str(c) for c in manifest.get("factors") or []] or sweep_columns(points if len(points) else runs)[0]
        if not len(points) and len(runs):
            points = _point_table(runs, factors)
        crn = manifest.get("common_random_numbers")
        return cls(str(manifest.get("name") or d.name), points, runs, factors,
                   bool(crn) if crn is not None else None, d)


def as_sweep_data(source: Any) -> SweepData:
    """A :class:`SweepData` from a SweepResult, a per-point table or a sweep directory."""
    if isinstance(source, SweepData):
        return source
    if isinstance(source, pd.DataFrame):
        return SweepData.from_table(source)
    if isinstance(source, (str, os.PathLike)):
        return SweepData.from_dir(source)
    return SweepData.from_result(source)


def is_sweep_dir(path: str | os.PathLike) -> bool:
    d = Path(path)
    return any((d / f"{n}.{e}").is_file() for n in ("points", "runs") for e in ("csv", "parquet"))


def load_sweep(run_dir: str | os.PathLike) -> SweepData:
    """Read a sweep directory (see :meth:`SweepData.from_dir`)."""
    return SweepData.from_dir(run_dir)


# =============================================================================== figures
MAX_FACETS = 6  # levels of a third factor drawn as separate figures; beyond, it is fixed at one level


def design_slices(points: pd.DataFrame, axes: Sequence[str], factors: Sequence[str], loss: str | None,
                  max_facets: int = MAX_FACETS) -> list[tuple[str, pd.DataFrame]]:
    """Split the points so a figure over ``axes`` never pools over another factor of the design.

    The first other factor that varies is a facet (one figure per level) when it has at most
    ``max_facets`` levels; every further one (or that one, if it has more levels) is fixed at the
    level of the point with the least ``loss``. Returns ``[(words, points)]``: the words say which
    factor is faceted and which are fixed, for the figure's title.
    """
    others = [f for f in factors if f not in axes and f in points.columns and points[f].nunique(dropna=True) > 1]
    if not others:
        return [("", points)]
    facet = others[0] if points[others[0]].nunique(dropna=True) <= max_facets else None
    fixed = [f for f in others if f != facet]
    sub = points
    words = []
    if fixed:
        lc = metric_col(points, loss) if loss else None
        best = points.loc[points[lc].idxmin()] if lc is not None and points[lc].notna().any() else points.iloc[0]
        for f in fixed:
            sub = sub[sub[f] == best[f]] if pd.notna(best[f]) else sub[sub[f].isna()]
            words.append(f"{f}={label(best[f])}")
    fixed_words = f"fixed at {', '.join(words)}" if words else ""
    if facet is None:
        return [(fixed_words, sub)]
    out = []
    for level, df in sub.groupby(facet, sort=True, dropna=False):
        lv = level[0] if isinstance(level, tuple) else level
        out.append(("; ".join(w for w in (f"{facet}={label(lv)}", fixed_words) if w), df))
    return out


def heatmap_figure(table: pd.DataFrame, x: str, y: str, z: str, title: str | None = None) -> go.Figure:
    """Mean of ``z`` over a grid of two factors (pass the points of one slice of the other factors,
    :func:`design_slices`, so each cell is one point of the design)."""
    zc = metric_col(table, z) or z
    piv = table.groupby([y, x], dropna=False)[zc].mean().unstack(x)
    zv = piv.to_numpy(dtype=float)
    # a recovery figure beyond the run end is +inf: no colour, said in the cell
    text = [["> run end" if v == np.inf else fmt(v) for v in row] for row in zv]
    fig = go.Figure(go.Heatmap(z=np.where(np.isinf(zv), np.nan, zv), x=[label(v) for v in piv.columns],
                               y=[label(v) for v in piv.index], colorscale="RdYlGn_r", colorbar=dict(title=z),
                               text=text, texttemplate="%{text}",
                               hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{z}=%{{z:.4g}}<extra></extra>"))
    return layout(fig, title or f"{z} (mean over replications) by {x} and {y}", xaxis_title=x, yaxis_title=y,
                  xaxis_type="category", yaxis_type="category")


def ci_band_figure(points: pd.DataFrame, x: str, figure: str = "unreachable_phone_seconds",
                   group: str | None = None, max_groups: int = 8) -> go.Figure:
    """Mean and 95 % CI of ``figure`` against factor ``x`` (one band per level of ``group``)."""
    fig = go.Figure()
    groups = [(None, points)] if group is None else list(points.groupby(group, sort=True))
    shown_note = ""
    if len(groups) > max_groups:
        idx = np.linspace(0, len(groups) - 1, max_groups).round().astype(int)
        shown_note = f" ({len(set(idx.tolist()))} of {len(groups)} levels of {group} shown)"
        groups = [groups[i] for i in sorted(set(idx.tolist()))]
    cols = [f"{figure}_mean", f"{figure}_ci_low", f"{figure}_ci_high"]
    for i, (g, df) in enumerate(groups):
        d = df.groupby(x)[cols].mean().reset_index().sort_values(x)
        c = COLORS[i % len(COLORS)]
        name = figure if g is None else f"{group}={label(g[0] if isinstance(g, tuple) else g)}"
        xs = d[x].tolist()
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=d[cols[2]].tolist() + d[cols[1]].tolist()[::-1],
                                 fill="toself", line=dict(width=0), fillcolor=rgba(c, 0.18), hoverinfo="skip",
                                 showlegend=False))
        fig.add_trace(go.Scatter(x=xs, y=d[cols[0]], mode="lines+markers", name=name, line=dict(color=c)))
    return layout(fig, f"{figure}: mean and 95 % CI against {x}{shown_note}", xaxis_title=x, yaxis_title=figure,
                  legend=dict(orientation="h", y=-0.2))


def tradeoff_figure(table: pd.DataFrame, x: str, loss: str, load: str, title: str | None = None) -> go.Figure:
    """A loss figure and a load figure against one factor, on two y axes (with CI bands if present)."""
    t = table.sort_values(x)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for col, color, sec in ((loss, COLORS[1], False), (load, COLORS[0], True)):
        m = metric_col(t, col)
        if m is None:
            continue
        lo, hi = ci_cols(t, col)
        if lo and hi:
            fig.add_trace(go.Scatter(x=list(t[x]) + list(t[x])[::-1], y=list(t[hi]) + list(t[lo])[::-1], fill="toself",
                                     line=dict(width=0), fillcolor=color, opacity=0.15, showlegend=False, hoverinfo="skip"),
                          secondary_y=sec)
        fig.add_trace(go.Scatter(x=t[x], y=t[m], mode="lines+markers", name=col, line=dict(color=color)), secondary_y=sec)
        fig.update_yaxes(title_text=col, secondary_y=sec, rangemode="tozero")
    fig.update_xaxes(title_text=x)
    return layout(fig, title or f"{loss} and {load} against {x}", legend=dict(orientation="h", y=-0.2))


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
    lc, dc = metric_col(table, loss), metric_col(table, load)
    fig = go.Figure()
    if lc is None or dc is None:
        return layout(fig, "Pareto front (figures missing)")
    L, D = table[lc].to_numpy(dtype=float), table[dc].to_numpy(dtype=float)
    mask = table["pareto"].astype(bool).to_numpy() if "pareto" in table.columns else pareto_mask(L, D)
    hover = ["<br>".join(f"{f}={table[f].iloc[i]}" for f in factors) for i in range(len(table))]
    color = (np.where(table["feasible"].astype(bool), COLORS[2], "#bbbbbb") if "feasible" in table.columns
             else np.full(len(table), COLORS[0]))
    fig.add_trace(go.Scatter(x=D, y=L, mode="markers", marker=dict(color=list(color), size=8, opacity=0.7),
                             hovertext=hover, name="points" + (" (green: meets the SLO)" if "feasible" in table.columns else "")))
    order = np.argsort(D[mask])
    fig.add_trace(go.Scatter(x=D[mask][order], y=L[mask][order], mode="lines+markers", line=dict(color=COLORS[1], shape="hv"),
                             marker=dict(size=11, symbol="diamond"), name="Pareto front",
                             hovertext=[h for h, m in zip(hover, mask) if m], hoverinfo="text+x+y"))
    if "recommended" in table.columns and table["recommended"].astype(bool).any():
        r = table["recommended"].astype(bool).to_numpy()
        fig.add_trace(go.Scatter(x=D[r], y=L[r], mode="markers", marker=dict(size=18, symbol="star", color="#ffbf00",
                                                                          line=dict(width=1, color="#333")), name="recommended"))
    return layout(fig, f"Pareto front: {loss} against {load}", xaxis_title=load, yaxis_title=loss,
                  legend=dict(orientation="h", y=-0.2))


def _loss_load(points: pd.DataFrame) -> tuple[str | None, str | None]:
    _, figures = sweep_columns(points) if len(points) else ([], [])
    loss = next((f for f in LOSS_FIGURES if f in figures), figures[0] if figures else None)
    load = next((f for f in LOAD_FIGURES if f in figures), None)
    return loss, load


def build_sweep_figures(sweep: Any) -> dict[str, go.Figure]:
    """Heatmaps over the first two factors, CI bands, a trade-off line for one factor, the Pareto front."""
    data = as_sweep_data(sweep)
    pts = data.points
    figs: dict[str, go.Figure] = {}
    if not len(pts):
        return figs
    loss, load = _loss_load(pts)
    grid = data.varying
    def name(base: str, words: str, n: int) -> str:  # a file-name-safe key (exported as <name>.png)
        return base if n == 1 else base + "__" + re.sub(r"[^A-Za-z0-9_.-]+", "-", words).strip("-")

    if loss and len(grid) >= 2:
        slices = design_slices(pts, grid[:2], grid, loss)
        for words, sub in slices:
            where = f" — {words}" if words else ""
            figs[name("heatmap", words, len(slices))] = heatmap_figure(
                sub, grid[0], grid[1], loss, f"{loss} (mean over replications) by {grid[0]} and {grid[1]}{where}")
            if load:
                figs[name("heatmap_load", words, len(slices))] = heatmap_figure(
                    sub, grid[0], grid[1], load, f"{load} (mean over replications) by {grid[0]} and {grid[1]}{where}")
    if loss and grid and ci_cols(pts, loss)[0]:
        num = [c for c in grid if pd.api.types.is_numeric_dtype(pts[c])]
        x = num[0] if num else grid[0]
        other = next((c for c in grid if c != x), None)
        slices = design_slices(pts, [c for c in (x, other) if c], grid, loss)
        for words, sub in slices:
            where = f" — {words}" if words else ""
            f1 = ci_band_figure(sub, x, loss, other)
            f1.update_layout(title_text=f"{loss}: mean and 95 % CI against {x}{where}")
            figs[name("ci_bands", words, len(slices))] = f1
            if ci_cols(pts, STORM_FIGURE)[0]:
                f2 = ci_band_figure(sub, x, STORM_FIGURE, other)
                f2.update_layout(title_text=f"{STORM_FIGURE}: mean and 95 % CI against {x}{where}")
                figs[name("ci_bands_load", words, len(slices))] = f2
    if loss and len(grid) == 1:
        figs["tradeoff"] = tradeoff_figure(pts, grid[0], loss, load or loss)
    if loss and load:
        figs["pareto"] = pareto_figure(pts, loss, load, data.factor_columns)
    return figs


SWEEP_CAPTIONS = {
    "heatmap": "The loss figure's mean over replications for each pair of levels of the first two factors; each "
               "cell is one point of the design: a third factor is drawn as one figure per level and any further "
               "factor is fixed at the level of the best point, as the title says (never averaged over).",
    "heatmap_load": "The same grid for the steady REGISTER load: what the loss is traded against.",
    "ci_bands": "Mean and 95 % confidence interval over replications against one factor, one band per level of the "
                "next; the other factors are faceted or fixed as the title says (never averaged over).",
    "ci_bands_load": "The REGISTER storm's peak rate against the same factor.",
    "tradeoff": "Loss and load against the one factor that varies.",
    "pareto": "Every point's loss against its load; the front joins the points no other point beats on both.",
}


def render_sweep_report(sweep: Any) -> str:
    """The HTML text of the sweep page (from a SweepResult, a SweepData or a per-point table)."""
    data = as_sweep_data(sweep)
    figs = build_sweep_figures(data)
    pts = data.points
    loss, load = _loss_load(pts)
    reps = data.replications
    crn = {True: "yes", False: "no", None: "unknown"}[data.common_random_numbers]
    _, figures = sweep_columns(pts) if len(pts) else ([], [])
    intro = (f"{len(pts):,} points" + (f" × {reps} replications" if reps else "")
             + f"; factors {', '.join(data.factor_columns) or 'none found'}; common random numbers: {crn}. "
             f"Figures: {', '.join(figures) or 'none found'}.")
    intro += (" Intervals: 95 % Student-t on the log of the mean (on the logit for shares), so never outside a "
              "figure's range; recovery figures are Kaplan–Meier, '> run end' (inf in the tables) where not reached.")
    body = [f"<h1>simsip sweep: {html.escape(data.name)}</h1>", f'<div class="msg">{html.escape(intro)}</div>']
    nrc = metric_col(pts, "phones_not_recovered") if len(pts) else None
    if nrc is not None and (pts[nrc] > 0).any():
        k = int((pts[nrc] > 0).sum())
        body.append(f'<p class="banner"><b>Not all phones recovered.</b> At {k:,} of {len(pts):,} points some affected '
                    f"phones were still unreachable at the end of the run (up to {pts[nrc].max():,.0f} on average); "
                    "their recovery figures account for them (Kaplan–Meier) and show '> run end' where not reached. "
                    "The points table lists phones_not_recovered.</p>")
    body += [figure_block(n, f, SWEEP_CAPTIONS.get(n.split("__")[0], "")) for n, f in figs.items()]
    if len(pts):
        cols = [c for c in ("point", *data.factor_columns) if c in pts.columns]
        for f in (loss, load, STORM_FIGURE, "phones_not_recovered"):
            if f is None:
                continue
            for c in (f"{f}_mean", f"{f}_ci_low", f"{f}_ci_high") if f == loss else (f"{f}_mean",):
                if c in pts.columns and c not in cols:
                    cols.append(c)
        shown = pts
        note = ""
        lc = metric_col(pts, loss) if loss else None
        if len(pts) > MAX_ROWS and lc:
            shown = pts.loc[pts[lc].sort_values(kind="stable").index[:MAX_ROWS]].sort_index()
            note = f"<p class=sub>The {MAX_ROWS} points with the least {html.escape(loss)} of {len(pts):,} (all are in points.csv).</p>"
        body.append(table_block("Points", shown[cols], float_format=fmt) + note)
    return page(f"simsip sweep — {data.name}", "\n".join(body))


def write_sweep_report(table_or_result: Any, path: str | os.PathLike) -> Path:
    """Write the sweep page of a SweepResult (or SweepData, per-point table, sweep directory) to ``path``."""
    return write_page(path, render_sweep_report(table_or_result))
