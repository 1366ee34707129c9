"""simsip — predict SIP registration loss across registrar HA failover.

A SimPy discrete-event model of phones, the network, registrars behind a keepalived VIP and the
faults that move it, validated against packet traces from a real Kamailio + keepalived + SIPp lab.

This module is the one face of the Python API: what a notebook needs, each name the twin of a
``simsip`` command (``simsip.cli.TWINS`` is the full table)::

    >>> import simsip
    >>> cfg = simsip.load_config("examples/quickstart.yaml", ["registrar.data=shared"])
    >>> res = simsip.simulate(cfg, replications=10)              # simsip run
    >>> sw = simsip.run_sweep("examples/sweeps/expiry-vs-advert.yaml", workers=2)   # simsip sweep
    >>> simsip.write_sweep_report(sw, "sweep.html")              # writing is the caller's

===============================  =====================================================================
scenario, one run                ``load_config``, ``simulate``, ``Results``, ``simulate_variants``,
                                 ``comparison_table``, ``json_schema``, ``resolved_yaml``,
                                 ``Scenario``, ``ConfigError``
sweeps and plans                 ``run_sweep``, ``SweepResult``, ``run_plan``, ``PlanResult``,
                                 ``write_plan`` (their result tables)
packet traces                    ``import_trace``, ``trace_metrics``, ``measure_trace``,
                                 ``write_trace_tables``, ``infer_scenario``, ``write_inference``,
                                 ``TraceError``
the model against the lab        ``calibrate``, ``calibration_overrides``, ``validate_run``,
                                 ``ValidationReport``, ``validation_doc``, ``recorded_runs``
report writers                   ``write_report``, ``write_report_dir``, ``export_static``,
                                 ``write_comparison``, ``write_sweep_report``, ``write_plan_report``,
                                 ``write_inference_report``
===============================  =====================================================================

``run_sweep``, ``run_plan`` and ``validate_run`` are :func:`simsip.sweep.sweep`,
:func:`simsip.plan.plan` and :func:`simsip.validate.validate` under names that cannot be mistaken
for (or shadowed by) the submodules ``simsip.sweep``, ``simsip.plan`` and ``simsip.validate``.

Documented submodules, loaded on first use: :mod:`simsip.models` (the model library: ``profiles``,
``find_profile``, ``profile_values``), :mod:`simsip.lab` (the real lab), :mod:`simsip.config`,
:mod:`simsip.sweep`, :mod:`simsip.plan`, :mod:`simsip.trace`, :mod:`simsip.validate`,
:mod:`simsip.report`, :mod:`simsip.analytic` (closed forms), :mod:`simsip.compare`, :mod:`simsip.cli`.

Every name is imported lazily (on first attribute access), so ``import simsip`` stays cheap and the
command line starts quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simsip._version import __version__  # noqa: E402

#: public name -> (module, attribute in it)
_API: dict[str, tuple[str, str]] = {
    # a scenario, one run
    "load_config": ("simsip.api", "load_config"),
    "simulate": ("simsip.api", "simulate"),
    "Results": ("simsip.api", "Results"),
    "simulate_variants": ("simsip.compare", "simulate_variants"),
    "comparison_table": ("simsip.compare", "comparison_table"),
    "json_schema": ("simsip.config.loader", "json_schema"),
    "resolved_yaml": ("simsip.config.loader", "resolved_yaml"),
    "ConfigError": ("simsip.config.loader", "ConfigError"),
    "Scenario": ("simsip.config.schema", "Scenario"),
    # sweeps and plans
    "run_sweep": ("simsip.sweep", "sweep"),
    "SweepResult": ("simsip.sweep", "SweepResult"),
    "run_plan": ("simsip.plan", "plan"),
    "PlanResult": ("simsip.plan", "PlanResult"),
    "write_plan": ("simsip.plan", "write_plan"),
    # packet traces
    "import_trace": ("simsip.trace", "import_trace"),
    "trace_metrics": ("simsip.trace", "trace_metrics"),
    "measure_trace": ("simsip.trace", "measure_trace"),
    "write_trace_tables": ("simsip.trace", "write_trace_tables"),
    "infer_scenario": ("simsip.trace", "infer_scenario"),
    "write_inference": ("simsip.trace", "write_inference"),
    "TraceError": ("simsip.trace", "TraceError"),
    # the model against the lab
    "calibrate": ("simsip.validate", "calibrate"),
    "calibration_overrides": ("simsip.validate", "calibration_overrides"),
    "validate_run": ("simsip.validate", "validate"),
    "ValidationReport": ("simsip.validate", "ValidationReport"),
    "validation_doc": ("simsip.validate", "validation_doc"),
    "recorded_runs": ("simsip.validate", "recorded_runs"),
    # report writers (pages and figures)
    "write_report": ("simsip.report", "write_report"),
    "write_report_dir": ("simsip.report", "write_report_dir"),
    "export_static": ("simsip.report", "export_static"),
    "write_comparison": ("simsip.compare", "write_comparison"),
    "write_sweep_report": ("simsip.report", "write_sweep_report"),
    "write_plan_report": ("simsip.report", "write_plan_report"),
    "write_inference_report": ("simsip.report", "write_inference_report"),
}

#: submodules reachable as ``simsip.<name>`` without importing them first
SUBMODULES = ("analytic", "api", "cli", "compare", "config", "lab", "models", "plan", "report", "sweep", "trace",
              "validate")

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later look-ups skip this hook
        return value
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API) | set(SUBMODULES))


if TYPE_CHECKING:  # pragma: no cover - for editors and type checkers; at run time see __getattr__
    from simsip.api import Results, load_config, simulate
    from simsip.compare import comparison_table, simulate_variants, write_comparison
    from simsip.config.loader import ConfigError, json_schema, resolved_yaml
    from simsip.config.schema import Scenario
    from simsip.plan import PlanResult, write_plan
    from simsip.plan import plan as run_plan
    from simsip.report import write_inference_report, write_plan_report, write_sweep_report
    from simsip.report import export_static, write_report, write_report_dir
    from simsip.sweep import SweepResult
    from simsip.sweep import sweep as run_sweep
    from simsip.trace import TraceError, import_trace, measure_trace, trace_metrics, write_trace_tables
    from simsip.trace import infer_scenario, write_inference
    from simsip.validate import ValidationReport, calibrate, calibration_overrides, recorded_runs, validation_doc
    from simsip.validate import validate as validate_run
