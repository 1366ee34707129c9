"""Trace import: lab packet captures as a tidy SIP/VRRP event table, and the simulator's metrics.

``import_trace(path)`` reads a pcap/pcapng file or a lab run directory into a
:class:`TraceImport` whose ``events`` table is the declared :data:`simsip.tables.EVENTS`;
``trace_metrics(events, ...)`` computes from it the same result tables as a simulation run
(:mod:`simsip.tables`: VIP moves, reachable phones over time, outages, recovery per disturbance,
REGISTER traffic); ``TraceImport.faults()`` gives the disturbances recorded with a lab capture;
``measure_trace(path, ...)`` does both (the twin of ``simsip trace import``) and
``write_trace_tables`` writes the tables. ``infer_scenario(captures, ...)`` (the twin of
``simsip trace infer``) reads fleets, timers, the registrar and the HA setup off the wire into an
:class:`Inference`, and ``write_inference`` writes it as a runnable, commented scenario.
"""

from .importer import EVENT_COLUMNS, TraceImport, import_trace
from .infer import Estimate, Inference, infer_scenario, write_inference
from .measure import MeasuredTrace, measure_trace, write_trace_tables
from .metrics import TraceFault, TraceMetrics, trace_metrics
from .pcap import TraceError

__all__ = [
    "EVENT_COLUMNS",
    "Estimate",
    "Inference",
    "TraceError",
    "TraceFault",
    "TraceImport",
    "TraceMetrics",
    "MeasuredTrace",
    "import_trace",
    "infer_scenario",
    "measure_trace",
    "trace_metrics",
    "write_inference",
    "write_trace_tables",
]
