"""``simsip calibrate`` / ``simsip validate`` / ``simsip validation-doc``: the model against the lab.

A recorded lab run is ground truth for one scenario (see :mod:`simsip.validate`): ``calibrate``
fits the model's network delay and registrar service time on the run's pre-fault part and prints
them as ``--set`` overrides; ``validate`` compares the model with the run metric by metric under
fixed tolerances (exit 1 when a gated metric is out of tolerance); ``validation-doc`` validates
every recorded run and writes ``docs/validation.md``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List

import typer
from rich.markup import escape
from rich.table import Table

from simsip.cli._output import console, err_console, fail

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Validate the simulator against recorded real-lab runs.")

#: command -> its Python twin(s) (``module:function``; see :data:`simsip.cli.TWINS`)
TWINS = {
    "calibrate": ("simsip.validate:calibrate", "simsip.validate:calibration_overrides"),
    "validate": ("simsip.validate:validate",),
    "validation-doc": ("simsip.validate:validation_doc", "simsip.validate:recorded_runs"),
}


@app.command("calibrate")
def calibrate_cmd(run_dir: Path = typer.Argument(..., help="A recorded lab run directory.")) -> None:
    """Fit network delay and registrar service time on the pre-fault part of a lab run; prints
    --set overrides."""
    from simsip.validate import calibrate, calibration_overrides

    try:
        cal = calibrate(run_dir)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    console.print_json(json.dumps(cal))
    console.print(" ".join(f"--set {o}" for o in calibration_overrides(cal)), highlight=False, soft_wrap=True)


@app.command("validate")
def validate_cmd(
    config: Path = typer.Argument(..., help="The scenario the lab ran."),
    run_dir: Path = typer.Argument(..., help="The recorded lab run directory."),
    replications: int = typer.Option(None, "--replications", "-r", min=1,
                                     help="Model replications (default 100 for a forecast, 20 for --replay)."),
    replay: bool = typer.Option(False, "--replay", help="Mechanism check: advert and refresh phases taken from the "
                                "capture, tighter tolerances (default: a forecast from the configured scenario)."),
    uncalibrated: bool = typer.Option(False, "--uncalibrated", help="Do not fit delay/service time."),
    set_: List[str] = typer.Option([], "--set", help="Override a config value: path.to.key=value."),
    level: float = typer.Option(0.9, "--level",
                                help="Coverage of the model's predictive interval (0.9: its 5th–95th percentile). "
                                "A run-level gate for k interval rows at error α uses 1 − α/k, with enough "
                                "replications for each tail to hold one."),
) -> None:
    """Forecast a lab run from its scenario and compare; exit 1 when a gated metric fails."""
    from simsip.config.loader import ConfigError
    from simsip.validate import validate

    try:
        rep = validate(config, run_dir, replications=replications, calibrated=not uncalibrated, overrides=set_,
                       mode="replay" if replay else "forecast", level=level)
    except ConfigError as exc:
        fail("; ".join(exc.problems))
    except (ValueError, OSError) as exc:
        fail(str(exc))
    t = Table(title=f"{escape(rep.name)}: lab vs model, {rep.mode} ({rep.replications} replications)")
    for c, j in (("metric", "left"), ("lab", "right"), ("model median", "right"), (f"model {100 * rep.level:g} %", "right"),
                 ("tolerance", "left"), ("pass", "center")):
        t.add_column(c, justify=j)  # type: ignore[arg-type]
    for m, lab, sim, lo, hi, tol, inside, ok in rep.table[["metric", "lab", "sim", "lo", "hi", "tolerance",
                                                          "in_interval", "pass"]].itertuples(index=False):
        mark = "[dim]info[/]" if ok is None else ("[green]pass[/]" if ok else "[bold red]FAIL[/]")
        band = "–" if lo != lo and hi != hi else f"{_fmt(lo)}–{_fmt(hi)}" + ("" if inside is None or inside else " ✗")
        t.add_row(escape(m), _fmt(lab), _fmt(sim), band, escape(tol), mark)
    console.print(t)
    for n in rep.notes:
        console.print(f"[dim]{escape(n)}[/]", highlight=False, soft_wrap=True)
    if not rep.passed:
        err_console.print(f"[bold red]out of tolerance:[/] {escape(', '.join(rep.failures))}")
        raise typer.Exit(1)


@app.command("validation-doc")
def validation_doc_cmd(
    examples: Path = typer.Option(Path("examples/lab"), "--examples", help="Directory of recorded runs."),
    out: Path = typer.Option(Path("docs/validation.md"), "--out", "-o"),
    fig_dir: Path = typer.Option(Path("docs/validation"), "--fig-dir"),
    replications: int = typer.Option(100, "--replications", "-r", min=1),
    no_controls: bool = typer.Option(False, "--no-controls", help="Leave out the negative-control table."),
) -> None:
    """Forecast every recorded run under --examples and write the validation page."""
    from simsip.validate import recorded_runs, validation_doc

    runs = recorded_runs(examples)
    if not runs:
        fail(f"no recorded runs (config.yaml + run.tar.xz or meta.json) under {examples}")
    path = validation_doc(runs, out, fig_dir, replications=replications, controls=not no_controls)
    console.print(f"written: {path} ({len(runs)} run(s)); figures in {fig_dir}/")


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{float(v):.3g}" if abs(float(v)) < 1000 else f"{float(v):,.0f}"
