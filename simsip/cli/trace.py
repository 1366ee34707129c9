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
TWINS = {
    "trace import": ("simsip.trace.measure:measure_trace", "simsip.trace.measure:write_trace_tables"),
    "trace infer": ("simsip.trace.infer:infer_scenario", "simsip.trace.infer:write_inference"),
}


@app.command("import")
def trace_import(
    path: Path = typer.Argument(..., help="A pcap/pcapng file or a lab run directory."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory for events.csv and the metric tables."),
    vip: Optional[str] = typer.Option(None, "--vip", help="The VIP address (to tell probes and registrars apart)."),
    resolution: float = typer.Option(1.0, "--resolution", help="Time-series step in seconds."),
) -> None:
    """Import a capture: a tidy SIP/VRRP event table, skipped-packet counts, and the simulator's metrics."""
    from simsip.trace.measure import measure_trace, write_trace_tables
    from simsip.trace.pcap import TraceError

    try:
        trace = measure_trace(path, vip=vip, resolution=resolution)
    except TraceError as exc:
        fail(str(exc))
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
        write_trace_tables(trace, out)
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
) -> None:
    """Infer fleets, timers, the registrar and the HA setup from captures: a runnable scenario, each value with its evidence."""
    from simsip.cli._output import err_console
    from simsip.trace.infer import infer_scenario, write_inference
    from simsip.trace.pcap import TraceError

    if out is not None and not out.parent.is_dir():
        fail(f"{out}: the directory {out.parent} does not exist")

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
    if out is not None:
        write_inference(inference, out, name)
        console.print(f"written: {out}", highlight=False, markup=False)
    else:
        console.print(inference.scenario_yaml(name or "inferred"), highlight=False, markup=False, soft_wrap=True)
