"""Designs side by side: the variants of one scenario on the same phones and the same fault.

A design review asks "no replication vs DMQ vs shared DB — how many phones does each lose, and for
how long?". ``simulate_variants`` runs every variant of a scenario with the same seed (so the
phones' phases and the fault's timing are common random numbers across designs) and
``comparison_table`` lines their key figures up with confidence intervals.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from simsip.config.loader import expand_variants
from simsip.config.schema import Scenario

KEY_FIGURES = [
    "unreachable_phone_seconds",
    "phones_affected",
    "recovery_median",
    "recovery_p95",
    "vip_move_time",
    "detection_time",
    "failback_vip_move_time",
    "peak_register_rate",
    "conflict_phone_seconds",
    "split_brain_seconds",
    "calls_failed_expected",
    "loss_minutes_per_phone_year",
]


def simulate_variants(cfg: Scenario, *, out: str | os.PathLike | None = None, **kw) -> dict[str, "object"]:
    """Run every variant (or the scenario itself) — ``{variant name: Results}``."""
    from simsip.api import simulate

    results = {}
    for name, vcfg in expand_variants(cfg):
        vout = None if out is None else (Path(out) / name if cfg.variants else Path(out))
        results[name] = simulate(vcfg, out=vout, **kw)
    return results


def comparison_table(results: dict) -> pd.DataFrame:
    """One row per variant and figure: mean and 95 % CI."""
    rows = []
    for name, res in results.items():
        figs = res.summary["figures"]
        for k in KEY_FIGURES:
            f = figs.get(k)
            if f is None:
                continue
            rows.append({"variant": name, "figure": k, "mean": f["mean"], "ci_low": f["ci_low"], "ci_high": f["ci_high"],
                         "unit": f["unit"], "n": f["n"]})
    return pd.DataFrame(rows)


def comparison_figure(results: dict) -> go.Figure:
    """Reachable phones over time, one line per variant (replication 0)."""
    fig = go.Figure()
    for name, res in results.items():
        ts = res.timeseries
        ts = ts[ts["replication"] == 0]
        fig.add_trace(go.Scatter(x=ts["time"], y=ts["reachable"], name=name, mode="lines"))
    fig.update_layout(title="Reachable phones: variants side by side", xaxis_title="time (s)", yaxis_title="phones",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def write_comparison(results: dict, out_dir: str | os.PathLike) -> Path:
    """comparison.csv and comparison.html (self-contained) in ``out_dir``."""
    import html

    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    from simsip.api import _atomic_table, _atomic_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = comparison_table(results)
    _atomic_table(out / "comparison.csv", table, "csv")
    wide = table.pivot_table(index="figure", columns="variant", values="mean", sort=False)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>simsip comparison</title>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body style='font-family:sans-serif'>"
        "<h1>Variants side by side</h1>" + wide.to_html(float_format=lambda v: f"{v:,.3g}", na_rep="–")
        + pio.to_html(comparison_figure(results), include_plotlyjs=False, full_html=False)
        + "<p>" + html.escape(", ".join(results)) + "</p></body></html>"
    )
    _atomic_text(out / "comparison.html", page)
    return out
