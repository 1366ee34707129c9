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

from simsip.cli._output import console, fail

app = typer.Typer(no_args_is_help=True, help="Packet traces: import captures into event tables and metrics.")

#: command -> its Python twin(s) (``module:function``; see :data:`simsip.cli.TWINS`)
TWINS = {"trace import": ("simsip.trace.measure:measure_trace", "simsip.trace.measure:write_trace_tables")}


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
        rt = met.recovery["recovery_time"].dropna()
        if len(rt):
            console.print(f"recovery: median {rt.median():.2f}s, p95 {rt.quantile(0.95):.2f}s, max {rt.max():.2f}s")
    if out is not None:
        try:
            write_trace_tables(trace, out)
        except OSError as exc:
            fail(f"{exc.filename or out}: cannot write: {exc.strerror or exc}")
        console.print(f"written: {out}/")
