"""``simsip report``: rebuild the review page of a run, sweep or plan directory from its files.

Every run, sweep and plan directory holds its result tables; the self-contained HTML page
(plotly.js embedded, opens offline) can always be rebuilt from them — after a crash, with a newer
simsip, or somewhere else. ``--static`` also exports every figure as PNG and SVG for slides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from simsip.cli._output import console, fail

app = typer.Typer()

#: command -> its Python twin(s) (``module:function``; see :data:`simsip.cli.TWINS`)
TWINS = {"report": ("simsip.report:write_report_dir", "simsip.report:export_static")}


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="A run, sweep or plan directory."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the HTML (default: RUN_DIR/report.html)."),
    static: bool = typer.Option(False, "--static", help="Also export every figure as PNG and SVG for slides."),
) -> None:
    """Rebuild the self-contained HTML report of a run (or sweep/plan) directory."""
    from simsip.report import ReportError, export_static, write_report_dir

    try:
        path = write_report_dir(run_dir, out)
        console.print(f"report: {path}")
        if static:
            fig_dir = path.parent / "figures"
            for fmt in ("png", "svg"):
                paths = export_static(run_dir, fig_dir, fmt=fmt)
                console.print(f"{fmt}: {len(paths)} figure(s) in {fig_dir}")
    except ReportError as exc:
        fail(str(exc))
    except OSError as exc:  # --out is a directory, or where it goes is not writable
        fail(f"{out or run_dir / 'report.html'}: cannot write the report: {exc.strerror or exc} (choose another --out)")
