"""Pages rebuilt from what a run, sweep or plan left on disk (``simsip report DIR``).

A run directory has ``summary.json``, ``config.resolved.yaml`` and the declared tables; a sweep
directory has ``points``/``runs`` tables and ``manifest.json``; a plan directory has ``plan.json``
and its screen/candidates/sensitivity tables. Each is read into the same typed data the
simulation, the sweep or the planner hands over in memory, and drawn by the same page builder.
"""

from __future__ import annotations

import os
from pathlib import Path

from .export import export_static, is_run_dir
from .plan_page import PlanData, is_plan_dir, render_plan_report
from .run_page import load_run, render_run_report
from .sweep_page import SweepData, is_sweep_dir, render_sweep_report
from .toolkit import ReportError, write_page


def render_dir(run_dir: str | os.PathLike) -> str:
    """The page of a run, sweep or plan directory (its kind told by the files it holds)."""
    d = Path(run_dir)
    if not d.is_dir():
        raise ReportError(f"{d}: no such directory")
    if is_plan_dir(d):
        return render_plan_report(PlanData.from_dir(d))
    if is_sweep_dir(d) and not is_run_dir(d):
        return render_sweep_report(SweepData.from_dir(d))
    return render_run_report(load_run(d))


def write_report_dir(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Rebuild the page of a run, sweep or plan directory; it goes to ``out`` or ``DIR/report.html``."""
    page = render_dir(run_dir)
    return write_page(Path(out) if out is not None else Path(run_dir) / "report.html", page)
