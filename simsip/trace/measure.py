"""A capture measured: its event table and the simulator's metrics in one call.

This is the Python twin of ``simsip trace import``: :func:`measure_trace` imports a pcap/pcapng file
or a lab run directory (:func:`~simsip.trace.import_trace`) and computes the simulator's result
tables from it (:func:`~simsip.trace.trace_metrics`, with the faults and repairs the run directory
records); :func:`write_trace_tables` writes ``events.csv`` and the metric tables where the caller
asks::

    >>> from simsip.trace import measure_trace, write_trace_tables
    >>> t = measure_trace("examples/lab/udp-none", vip="10.99.0.10")
    >>> t.metrics.unreachable_phone_seconds, t.metrics.recovery.head()
    >>> write_trace_tables(t, "events/")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simsip.io import atomic_table

from .importer import TraceImport, import_trace
from .metrics import TraceMetrics, trace_metrics

#: the metric tables :func:`write_trace_tables` writes next to ``events.csv``
TABLES = ("timeseries", "outages", "recovery", "faults", "vip")


@dataclass
class MeasuredTrace:
    """An imported capture (:attr:`imported`) and its metrics (:attr:`metrics`)."""

    imported: TraceImport
    metrics: TraceMetrics

    @property
    def events(self) -> pd.DataFrame:
        return self.imported.events


def measure_trace(path: str | os.PathLike, *, vip: str | None = None, resolution: float = 1.0) -> MeasuredTrace:
    """Import a capture or lab run directory and compute its metrics (``vip``: the VIP address, to
    tell probes and registrars apart; ``resolution``: time-series step in seconds). Raises
    :class:`~simsip.trace.TraceError` for a file that is not a capture."""
    import math

    if not isinstance(resolution, (int, float)) or not math.isfinite(resolution) or resolution <= 0:
        raise ValueError(f"resolution: value {resolution!r}: the time-series step must be a positive number of "
                         "seconds (allowed: > 0)")
    from dataclasses import replace

    from .sip import unreadable_notes

    imp = import_trace(path)
    met = trace_metrics(imp.events, vip=vip, faults=imp.faults() or None, resolution=resolution)
    notes = tuple(unreadable_notes(imp.skipped))  # HEP or TLS: why a capture may show no SIP
    if notes:
        met = replace(met, warnings=tuple(met.warnings) + notes)
    return MeasuredTrace(imp, met)


def write_trace_tables(trace: MeasuredTrace, out: str | os.PathLike) -> Path:
    """Write ``events.csv`` and the metric tables (:data:`TABLES`) into ``out``, each atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_table(out / "events.csv", trace.events, "csv", float_format="%.6g")
    for name in TABLES:
        atomic_table(out / f"{name}.csv", getattr(trace.metrics, name), "csv", float_format="%.6g")
    return out
