"""``simsip sweep`` and ``simsip plan``: many settings of one scenario.

A *sweep* simulates every point of a design over some knobs (resumable: finished points are on
disk, running the command again computes only what is missing) and writes the runs/points tables
and a report page with heatmaps and CI bands. A *plan* screens every combination of decision
variables with closed forms, simulates the best ones and recommends a setting that meets the SLO
— or says that none does (exit code 3). The library computes and keeps the results
(:func:`simsip.sweep.sweep`, :func:`simsip.plan.plan`); these commands print them and write the
report pages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from simsip.cli._output import console, err_console, fail, interrupt_code

app = typer.Typer()

#: command -> its Python twin(s) (``module:function``; see :data:`simsip.cli.TWINS`)
TWINS = {"sweep": ("simsip.sweep:sweep",), "plan": ("simsip.plan:plan",)}


@app.command("sweep", help="Run a parameter sweep with replications (resumable; --workers, --dask).")
def sweep_command(
    spec: Path = typer.Argument(..., help="Sweep spec YAML (base scenario, factors, design, replications)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Local worker processes (default: all CPUs)."),
    dask: Optional[str] = typer.Option(None, "--dask", help="Dask scheduler address (tcp://host:8786) or 'local'."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Sweep directory (default sweeps/<spec name>/)."),
    fresh: bool = typer.Option(False, "--fresh", help="Discard what the sweep directory holds and start over."),
) -> None:
    """Run a sweep: every point's replications, resumable; writes runs/points tables and report.html."""
    from simsip.config.loader import ConfigError
    from simsip.sweep import prepare, sweep

    try:
        prep = prepare(spec)
    except ConfigError as exc:
        fail(exc.problems)
    out_dir = out or Path("sweeps") / spec.stem
    reps = prep.configs[0]["replications"] if prep.configs else 0
    console.print(f"simsip sweep: [bold]{escape(prep.spec.name)}[/] — {prep.n_points} points × {reps} replications, "
                  f"{escape(str(out_dir))}/", highlight=False)
    try:
        res = sweep(prep, workers=workers, out=out_dir, dask=dask, fresh=fresh, progress="auto")
    except ConfigError as exc:
        fail(exc.problems)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM
        err_console.print(f"[yellow]interrupted[/]: finished points are in {escape(str(out_dir))}/points; "
                          "run the same command again to resume")
        raise typer.Exit(interrupt_code(exc))
    if len(res.points):  # the report page is the caller's: sweep() keeps only the results
        from simsip.report import write_sweep_report

        write_sweep_report(res, out_dir / "report.html")
    console.print(f"done: {res.computed} point(s) simulated, {prep.n_points - res.computed} resumed, "
                  f"{res.runtime_s:.1f}s; written {escape(str(out_dir))}/runs.parquet, points.parquet (+ .csv), report.html",
                  highlight=False)


@app.command("plan", help="Search settings that meet an SLO: analytic screening, then simulation.")
def plan_command(
    spec: Path = typer.Argument(..., help="Plan YAML (base scenario, variables, SLO, objectives)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Plan directory (default plans/<spec name>/)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Local worker processes (default: all CPUs)."),
    dask: Optional[str] = typer.Option(None, "--dask", help="Dask scheduler address or 'local'."),
) -> None:
    """Screen every combination analytically, simulate the best, recommend a setting that meets the SLO."""
    from simsip.config.loader import ConfigError
    from simsip.plan import plan

    out_dir = out or Path("plans") / spec.stem
    try:
        res = plan(spec, out=out_dir, workers=workers, dask=dask, progress=True)
    except ConfigError as exc:
        fail(exc.problems)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: a plan keeps nothing half-done
        err_console.print("[yellow]interrupted[/]: the plan was stopped before its recommendation; run it again")
        raise typer.Exit(interrupt_code(exc))
    from simsip.report import write_plan_report  # the page is the caller's: plan() keeps only the results

    write_plan_report(res, out_dir / "report.html")
    summ = res.summary()
    table = Table(title=f"{res.spec.name}: {summ['combinations']} combinations screened, "
                        f"{summ['simulated_candidates']} simulated × {res.spec.replications} replications")
    table.add_column("SLO")
    table.add_column("mean", justify="right")
    table.add_column("95 % CI", justify="right")
    table.add_column("margin", justify="right")
    table.add_column("unit")
    table.add_column("met")
    pick = res.recommendation or res.closest
    for c in pick["constraints"] if pick else []:
        f = lambda v: "–" if v is None else f"{v:.4g}"  # noqa: E731
        table.add_row(escape(c["slo"]), f(c["mean"]), f"{f(c['ci_low'])} – {f(c['ci_high'])}", f(c["margin"]),
                      escape(c.get("unit") or ""), "yes" if c["met_by_ci"] else "[red]no[/]")
    console.print(table)
    style = "bold green" if res.status == "feasible" else "bold red"
    console.print(f"[{style}]{'FEASIBLE' if res.status == 'feasible' else 'INFEASIBLE'}[/]: " + escape(res.message),
                  highlight=False)
    console.print(f"written: {escape(str(out_dir))}/ (plan.json, screen, candidates, sensitivity, report.html)",
                  highlight=False)
    if res.status != "feasible":
        raise typer.Exit(3)
