"""Designs side by side: the variants of one scenario on the same phones and the same fault.

A design review asks "no replication vs DMQ vs shared DB — how many phones does each lose, and for
how long?". ``simulate_variants`` runs every variant of a scenario with the same seed (so the
phones' phases and the fault's timing are common random numbers across designs) and
``comparison_table`` lines their key figures up with confidence intervals; ``write_comparison``
writes that table and the comparison page (:func:`simsip.report.write_comparison_report`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from simsip.config.loader import expand_variants
from simsip.config.schema import Scenario
from simsip.io import atomic_table
from simsip.metrics import COMPARISON_FIGURES

KEY_FIGURES = list(COMPARISON_FIGURES)


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
                         "unit": f["unit"], "n": f["n"], "not_reached": f.get("not_reached", 0),
                         "not_recovered": f.get("not_recovered"), "not_recovered_share": f.get("not_recovered_share")})
    return pd.DataFrame(rows)


def write_comparison(results: dict, out_dir: str | os.PathLike) -> Path:
    """comparison.csv (:func:`comparison_table`) and the comparison page comparison.html in ``out_dir``."""
    from simsip.report import write_comparison_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_table(out / "comparison.csv", comparison_table(results), "csv", float_format="%.6g")
    write_comparison_report(results, out / "comparison.html")
    return out
