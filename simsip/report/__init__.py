"""Reports: what a registrar failover does to phones, as self-contained HTML pages.

A failover study produces typed results — one run (:class:`simsip.api.Results`), several designs
side by side, a sweep (:class:`simsip.sweep.SweepResult`), a plan (:class:`simsip.plan.PlanResult`)
— and the declared result tables (:mod:`simsip.tables`). This package only *renders* them: it never
runs a simulation, a sweep or a plan. Each page answers the review's questions in order (the
setup, what happened, what it cost; for a sweep or plan, which settings are good enough) and is
one HTML file with plotly.js embedded, written atomically:

* :func:`write_run_report` — one run (:mod:`~simsip.report.run_page`);
* :func:`write_comparison_report` — variants of a scenario side by side;
* :func:`write_sweep_report` — a sweep (``simsip sweep`` and ``simsip report SWEEP_DIR``: same page);
* :func:`write_plan_report` — a capacity plan;
* :func:`write_inference_report` — what ``simsip trace infer`` read off a capture, as distributions
  (:mod:`~simsip.report.infer_page`);
* :func:`write_report_dir` — any of them rebuilt from a directory;
* :func:`export_static` — PNG/SVG of each figure for slides.

The figures are library functions too (:func:`build_figures`, :func:`compare_figure`,
:func:`heatmap_figure`, …), so notebooks and slides share the pages' code path. All pages share
one toolkit (:mod:`~simsip.report.toolkit`: look, number formats, HTML shell).
"""

from __future__ import annotations

from .comparison_page import compare_figure, compare_table, render_comparison_report, write_comparison_report
from .directory import render_dir, write_report_dir
from .export import chromium_args, export_static, figures_of, find_chromium
from .infer_page import inference_figures, render_inference_report, write_inference_report
from .plan_page import (
    Limit,
    PlanData,
    as_plan_data,
    build_plan_figures,
    is_plan_dir,
    plan_pareto_figure,
    render_plan_report,
    tornado_figure,
    write_plan_report,
)
from .run_page import (
    FIGURE_CAPTIONS,
    FigureStat,
    RunData,
    as_run_data,
    bindings_figure,
    build_figures,
    conflicts_figure,
    key_figures_figure,
    load_run,
    rate_figure,
    reachable_figure,
    recovery_cdf_figure,
    render_run_report,
    scenario_words,
    vip_owner_figure,
    write_run_report,
)
from .scenario import scenario_sentences, topology_figure, topology_graph
from .sweep_page import (
    SweepData,
    as_sweep_data,
    build_sweep_figures,
    ci_band_figure,
    heatmap_figure,
    is_sweep_dir,
    load_sweep,
    pareto_figure,
    pareto_mask,
    render_sweep_report,
    sweep_columns,
    tradeoff_figure,
    write_sweep_report,
)
from .toolkit import ReportError

#: the run page under its earlier names
write_report = write_run_report
render_report = render_run_report

__all__ = [
    "FIGURE_CAPTIONS", "FigureStat", "Limit", "PlanData", "ReportError", "RunData", "SweepData", "as_plan_data",
    "as_run_data", "as_sweep_data", "bindings_figure", "build_figures", "build_plan_figures", "build_sweep_figures",
    "chromium_args", "ci_band_figure", "compare_figure", "compare_table", "conflicts_figure", "export_static",
    "figures_of", "find_chromium", "heatmap_figure", "inference_figures", "is_plan_dir", "is_sweep_dir", "key_figures_figure", "load_run",
    "load_sweep", "pareto_figure", "pareto_mask", "plan_pareto_figure", "rate_figure", "reachable_figure",
    "recovery_cdf_figure", "render_comparison_report", "render_dir", "render_inference_report", "render_plan_report", "render_report",
    "render_run_report", "render_sweep_report", "scenario_sentences", "scenario_words",
    "topology_figure", "topology_graph", "tornado_figure", "vip_owner_figure", "write_comparison_report",
    "write_inference_report", "write_plan_report", "write_report", "write_report_dir", "write_run_report", "write_sweep_report",
]
