"""Trace import: lab packet captures as a tidy SIP/VRRP event table, and the simulator's metrics.

``import_trace(path)`` reads a pcap/pcapng file or a lab run directory into a
:class:`TraceImport` whose ``events`` table is the declared :data:`simsip.tables.EVENTS`;
``trace_metrics(events, ...)`` computes from it the same result tables as a simulation run
(:mod:`simsip.tables`: VIP moves, reachable phones over time, outages, recovery per disturbance,
REGISTER traffic); ``TraceImport.faults()`` gives the disturbances recorded with a lab capture;
``measure_trace(path, ...)`` does both (the twin of ``simsip trace import``) and
``write_trace_tables`` writes the tables.
"""

from .importer import EVENT_COLUMNS, TraceImport, import_trace
from .measure import MeasuredTrace, measure_trace, write_trace_tables
from .metrics import TraceFault, TraceMetrics, trace_metrics
from .pcap import TraceError

__all__ = [
    "EVENT_COLUMNS",
    "TraceError",
    "TraceFault",
    "TraceImport",
    "TraceMetrics",
    "MeasuredTrace",
    "import_trace",
    "measure_trace",
    "trace_metrics",
    "write_trace_tables",
]
