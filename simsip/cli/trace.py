"""``simsip trace import``: a packet capture measured like a simulation run.

A capture from the lab (or your own network) holds the SIP REGISTERs, the prober's OPTIONS and
the VRRP adverts of a failover. ``trace import`` turns it into a tidy event table and computes the
simulator's result tables from it — reachable phones over time, outages, recovery per fault, VIP
moves — so a real failover and a simulated one can be read side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from simsip.cli._output import console, err_console, fail

app = typer.Typer(no_args_is_help=True, help="Packet traces: import captures into event tables and metrics.")

#: command -> its Python twin(s) (``module:function``; see :data:`simsip.cli.TWINS`)
TWINS = {
    "trace import": ("simsip.trace.measure:measure_trace", "simsip.trace.measure:write_trace_tables"),
    "trace infer": ("simsip.trace.infer:infer_scenario", "simsip.trace.infer:write_inference",
                    "simsip.report.infer_page:write_inference_report"),
}


@app.command("import")
def trace_import(
    path: Path = typer.Argument(..., help="A pcap/pcapng file or a lab run directory."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory for events.csv and the metric tables."),
    vip: Optional[str] = typer.Option(None, "--vip", help="The VIP address (to tell probes and registrars apart)."),
    resolution: float = typer.Option(1.0, "--resolution", help="Time-series step in seconds."),
) -> None:
    """Import a capture: a tidy SIP/VRRP event table, skipped-packet counts, and the simulator's metrics."""
    from simsip.io import output_dir_problem
    from simsip.trace.measure import measure_trace, write_trace_tables
    from simsip.trace.pcap import TraceError

    if not (resolution > 0 and resolution < float("inf")):
        fail(f"--resolution: value {resolution:g}: the time-series step must be a positive number of seconds "
             "(allowed: > 0, e.g. 1 or 0.1)")
    if out is not None:
        problem = output_dir_problem(out)
        if problem:
            fail(problem)
    try:
        trace = measure_trace(path, vip=vip, resolution=resolution)
    except TraceError as exc:
        fail(str(exc))
    except ValueError as exc:  # e.g. a capture spanning more time-series steps than can be held
        fail(f"{path}: {exc}")
    imp, met = trace.imported, trace.metrics
    console.print(f"{path}: {imp.packets} packets, {len(imp.events)} SIP/VRRP events, duration {imp.duration:.1f}s")
    if imp.skipped:
        console.print("skipped: " + ", ".join(f"{k}={v}" for k, v in sorted(imp.skipped.items())), highlight=False)
    console.print(
        f"reachability from {met.reachability_source}; phones {met.phones}; unreachable phone-seconds "
        f"{met.unreachable_phone_seconds:,.1f}; retransmissions {met.retransmissions}; timeouts {met.timeouts}"
    )
    if len(met.recovery):
        from simsip.metrics import recovery_figures

        rec = met.recovery[met.recovery["cause"] == "fault"] if (met.recovery["cause"] == "fault").any() else met.recovery
        fig = recovery_figures(rec["recovery_time"].to_numpy(dtype=float), met.end - rec["time"].to_numpy(dtype=float))

        def show(v: float) -> str:
            return "> capture end" if v == float("inf") else f"{v:.2f}s"

        never = int(fig["phones_not_recovered"])
        console.print(f"recovery: median {show(fig['recovery_median'])}, p95 {show(fig['recovery_p95'])}, "
                      f"max {show(fig['recovery_max'])}; not recovered by the end of the capture: {never} of "
                      f"{int(fig['phones_affected'])}", highlight=False)
    for w in met.warnings:
        err_console.print(f"[yellow]warning[/]: {escape(w)}", highlight=False)
    if out is not None:
        try:
            write_trace_tables(trace, out)
        except OSError as exc:
            fail(f"{exc.filename or out}: cannot write: {exc.strerror or exc}")
        console.print(f"written: {out}/")


@app.command("infer")
def trace_infer(
    captures: list[Path] = typer.Argument(..., help="pcap/pcapng files or lab run directories (merged on time)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the inferred scenario YAML here (default: print it)."),
    vip: Optional[str] = typer.Option(None, "--vip", help="The VIP address (default: from the VRRP adverts, else where REGISTERs go)."),
    name: Optional[str] = typer.Option(None, "--name", help="Scenario name (default: the --out file's stem, else 'inferred')."),
    measure: Optional[bool] = typer.Option(
        None, "--measure/--no-measure", help="Also compute trace import's failover metrics (default: for captures up to 50 MB; it loads the event table)."
    ),
    report: Optional[Path] = typer.Option(
        None, "--report", help="Write the page of inferred distributions here (default: next to --out, <out>.html)."
    ),
    no_report: bool = typer.Option(False, "--no-report", help="Write no HTML page."),
) -> None:
    """Infer fleets, timers, the registrar and the HA setup from captures: a runnable scenario, each value with its evidence.

    With --out, the scenario YAML and, next to it, a self-contained HTML page (plotly embedded, works
    offline) with the distributions behind every value: refresh points, latency, retry waits,
    keep-alives, VRRP adverts and priorities, the failover."""
    from simsip.cli._output import err_console
    from simsip.trace.infer import infer_scenario, write_inference
    from simsip.trace.pcap import TraceError

    if out is not None and not out.parent.is_dir():
        fail(f"{out}: the directory {out.parent} does not exist")
    if no_report and report is not None:
        fail("--report and --no-report: choose one")
    page = None if no_report else (report if report is not None else (out.with_suffix(".html") if out is not None else None))
    if page is not None:
        if not page.parent.is_dir():
            fail(f"--report {page}: the directory {page.parent} does not exist")
        if page.is_dir():
            fail(f"--report {page}: is a directory (give the page's file name, e.g. {page / 'inferred.html'})")
        if out is not None and page.resolve() == out.resolve():
            fail(f"--report {page}: the same file as --out (the page would overwrite the scenario)")

    def progress(n: int) -> None:
        err_console.print(f"... {n:,} packets", highlight=False)

    try:
        inference = infer_scenario(captures, vip=vip, measure=measure, progress=progress)
    except TraceError as exc:
        fail(str(exc))
    console.print(inference.summary(), highlight=False, markup=False, soft_wrap=True)
    m = inference.measured
    if m is not None and len(m.metrics.recovery):
        rt = m.metrics.recovery["recovery_time"].dropna()
        moves = m.metrics.faults["vip_move_time"].dropna() if len(m.metrics.faults) else []
        if len(moves):
            console.print(f"takeover: VIP moved {moves.iloc[0]:.2f}s after the fault", highlight=False)
        if len(rt):
            console.print(f"recovery: median {rt.median():.2f}s, p95 {rt.quantile(0.95):.2f}s, max {rt.max():.2f}s", highlight=False)
    try:
        if out is not None:
            write_inference(inference, out, name)
            console.print(f"written: {out}", highlight=False, markup=False, soft_wrap=True)
        if page is not None:
            from simsip.report.infer_page import write_inference_report

            write_inference_report(inference, page, name or (out.stem if out is not None else page.stem),
                                   scenario_file=out)
            console.print(f"written: {page}", highlight=False, markup=False, soft_wrap=True)
    except OSError as exc:
        fail(f"{exc.filename or out or page}: cannot write: {exc.strerror or exc}")
    if out is None:
        console.print(inference.scenario_yaml(name or "inferred"), highlight=False, markup=False, soft_wrap=True)
