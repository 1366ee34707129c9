"""The ``simsip`` command: thin typer commands over the library (see ``simsip.api``)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simsip.config.loader import ConfigError, json_schema

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Predict SIP registration loss across registrar HA failover.")
console = Console()
err_console = Console(stderr=True)

_HEADLINE = [
    "unreachable_phone_seconds",
    "phones_affected",
    "recovery_median",
    "recovery_p95",
    "recovery_max",
    "vip_move_time",
    "failback_vip_move_time",
    "peak_register_rate",
    "capacity_per_s",
    "timeouts",
    "calls_failed_expected",
]


def _fail(problems: list[str] | str, code: int = 2) -> None:
    if isinstance(problems, str):
        problems = [problems]
    for p in problems:  # user text (values, file names) is printed verbatim, never as rich markup
        err_console.print("[bold red]error:[/] " + escape(str(p)), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _fmt(v) -> str:
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


@app.command()
def run(
    config: Path = typer.Argument(..., help="Scenario YAML."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (default runs/<config>-<timestamp>/)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Run seed (overrides the config)."),
    replications: Optional[int] = typer.Option(None, "--replications", "-r", help="Replications (overrides the config)."),
    set_: List[str] = typer.Option([], "--set", help="Override a config value: path.to.key=value (repeatable)."),
) -> None:
    """Simulate a scenario, print the key results and write the run directory."""
    from simsip.api import load_config, simulate

    try:
        cfg = load_config(config, set_)
        if seed is not None or replications is not None:
            from simsip.config.schema import Scenario

            upd = cfg.model_dump()
            if seed is not None:
                upd["seed"] = seed
            if replications is not None:
                upd["replications"] = replications
            cfg = Scenario.model_validate(upd)
    except ConfigError as exc:
        _fail(exc.problems)
    except Exception as exc:  # pydantic range errors from --seed/--replications
        _fail(f"{config}: {str(exc).splitlines()[0]}: {' '.join(str(exc).splitlines()[1:3])}")
    out_dir = out or Path("runs") / f"{config.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if cfg.variants:
        _run_variants(cfg, out_dir)
        return
    console.print(f"simsip: [bold]{escape(cfg.name)}[/] — {cfg.phones} phones, {cfg.replications} replication(s), seed {cfg.seed}")

    def progress(done: int, total: int) -> None:
        console.print(f"  replication {done}/{total} done", highlight=False)

    try:
        res = simulate(cfg, out=out_dir, progress=progress)
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted[/]: finished replications written to {escape(str(out_dir))}")
        raise typer.Exit(130)
    except Exception as exc:
        err_console.print(
            f"[bold red]run failed[/]: {escape(f'{type(exc).__name__}: {exc}; partial results in {out_dir}')}"
        )
        raise typer.Exit(1)
    summ = res.summary
    table = Table(title=f"{escape(cfg.name)}: key results (mean, 95 % CI over {summ['replications_done']} replication(s))")
    table.add_column("figure")
    table.add_column("mean", justify="right")
    table.add_column("95 % CI", justify="right")
    table.add_column("unit")
    for k in _HEADLINE:
        f = summ["figures"].get(k)
        if f is None or f["mean"] is None or f["n"] == 0:
            continue
        ci = f"{_fmt(f['ci_low'])} – {_fmt(f['ci_high'])}" if f["n"] > 1 else ""
        table.add_row(k, _fmt(f["mean"]), ci, f["unit"])
    console.print(table)
    console.print(f"written: {out_dir}/ (summary.json, timeseries, outages, recovery, report.html) in {res.runtime_s:.1f}s")


def _run_variants(cfg, out_dir: Path) -> None:
    from simsip.compare import KEY_FIGURES, simulate_variants, write_comparison

    console.print(f"simsip: [bold]{escape(cfg.name)}[/] — {len(cfg.variants)} variants, {cfg.phones} phones, "
                  f"{cfg.replications} replication(s), seed {cfg.seed}")
    try:
        results = simulate_variants(cfg, out=out_dir)
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted[/]: finished variants written to {escape(str(out_dir))}")
        raise typer.Exit(130)
    except ConfigError as exc:
        _fail(exc.problems)
    except Exception as exc:
        err_console.print(f"[bold red]run failed[/]: {escape(f'{type(exc).__name__}: {exc}; partial results in {out_dir}')}")
        raise typer.Exit(1)
    write_comparison(results, out_dir)
    table = Table(title=f"{escape(cfg.name)}: variants side by side (mean over replications)")
    table.add_column("figure")
    for name in results:
        table.add_column(escape(name), justify="right")
    for k in KEY_FIGURES:
        vals = [r.summary["figures"].get(k, {}).get("mean") for r in results.values()]
        if all(v is None for v in vals):
            continue
        table.add_row(k, *[_fmt(v) for v in vals])
    console.print(table)
    console.print(f"written: {escape(str(out_dir))}/<variant>/ and comparison.csv, comparison.html")


@app.command()
def schema(out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write to a file instead of stdout.")) -> None:
    """Print the JSON Schema of scenario files (for editor completion)."""
    text = json.dumps(json_schema(), indent=2)
    if out:
        out.write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")


@app.command()
def check(
    config: Path = typer.Argument(..., help="Scenario YAML."),
    set_: List[str] = typer.Option([], "--set", help="Override a config value: path.to.key=value."),
    show: bool = typer.Option(False, "--show", help="Print the resolved config."),
) -> None:
    """Validate a scenario file (and optionally print it resolved)."""
    from simsip.config.loader import load_config, resolved_yaml

    try:
        cfg = load_config(config, set_)
    except ConfigError as exc:
        _fail(exc.problems)
    if show:
        sys.stdout.write(resolved_yaml(cfg))
    else:
        console.print(f"{config}: ok ({cfg.phones} phones, {len(cfg.faults)} fault(s))")


trace_app = typer.Typer(no_args_is_help=True, help="Packet traces: import captures into event tables and metrics.")
app.add_typer(trace_app, name="trace")


@trace_app.command("import")
def trace_import(
    path: Path = typer.Argument(..., help="A pcap/pcapng file or a lab run directory."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory for events.csv and the metric tables."),
    vip: Optional[str] = typer.Option(None, "--vip", help="The VIP address (to tell probes and registrars apart)."),
    resolution: float = typer.Option(1.0, "--resolution", help="Time-series step in seconds."),
) -> None:
    """Import a capture: a tidy SIP/VRRP event table, skipped-packet counts, and the simulator's metrics."""
    from simsip.trace import TraceError, import_trace, trace_metrics

    try:
        imp = import_trace(path)
    except TraceError as exc:
        _fail(str(exc))
    ev = imp.events
    console.print(f"{path}: {imp.packets} packets, {len(ev)} SIP/VRRP events, duration {imp.duration:.1f}s")
    if imp.skipped:
        console.print("skipped: " + ", ".join(f"{k}={v}" for k, v in sorted(imp.skipped.items())), highlight=False)
    met = trace_metrics(ev, vip=vip, faults=imp.fault_times() or None, resolution=resolution)
    console.print(
        f"reachability from {met.reachability_source}; phones {met.phones}; unreachable phone-seconds "
        f"{met.unreachable_phone_seconds:,.1f}; retransmissions {met.retransmissions}; timeouts {met.timeouts}"
    )
    if len(met.recovery):
        rt = met.recovery["recovery_time"].dropna()
        if len(rt):
            console.print(f"recovery: median {rt.median():.2f}s, p95 {rt.quantile(0.95):.2f}s, max {rt.max():.2f}s")
    if out is not None:
        from simsip.api import _atomic_table

        out.mkdir(parents=True, exist_ok=True)
        _atomic_table(out / "events.csv", ev, "csv")
        for name in ("timeseries", "outages", "recovery", "faults", "vip"):
            _atomic_table(out / f"{name}.csv", getattr(met, name), "csv")
        console.print(f"written: {out}/")


from simsip.sweep_cli import plan_command, sweep_command  # noqa: E402

app.command("sweep", help="Run a parameter sweep with replications (resumable; --workers, --dask).")(sweep_command)
app.command("plan", help="Search settings that meet an SLO: analytic screening, then simulation.")(plan_command)


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="A run, sweep or plan directory."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the HTML (default: RUN_DIR/report.html)."),
    static: bool = typer.Option(False, "--static", help="Also export every figure as PNG and SVG for slides."),
) -> None:
    """Rebuild the self-contained HTML report of a run (or sweep/plan) directory."""
    from simsip.report import ReportError, report_cli

    try:
        report_cli(run_dir, out=out, static=static)
    except ReportError as exc:
        _fail(str(exc))


models_app = typer.Typer(no_args_is_help=True, help="The model library: phone, registrar, HA profiles and deployments.")
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list_command() -> None:
    """List the profiles and deployments in models/."""
    from simsip.models_cli import models_list

    models_list()


@models_app.command("show")
def models_show_command(name: str = typer.Argument(..., help="A profile name, or kind/name (e.g. phones/yealink).")) -> None:
    """Show a profile: each value, what it means, and its source."""
    from simsip.models_cli import models_show

    try:
        models_show(name)
    except KeyError as exc:
        _fail(str(exc.args[0]) if exc.args else f"unknown model {name!r}")


from simsip.lab.cli import lab_app  # noqa: E402
from simsip.validate_cli import validate_app  # noqa: E402

app.add_typer(lab_app, name="lab", help="The real lab: Kamailio + keepalived + SIPp + tshark in network namespaces.")
app.add_typer(validate_app)


@app.command()
def version() -> None:
    """Print the simsip version."""
    from simsip import __version__

    console.print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
