"""The real lab: Kamailio + keepalived + SIPp + tshark in network namespaces.

:func:`prepare_run` / :func:`run_scenario` run a simsip scenario in the lab (the twins of
``simsip lab run``), :func:`check_requirements` and :func:`cleanup_stale` those of
``simsip lab check`` and ``simsip lab cleanup``, :func:`install_packages` that of
``simsip lab install``, :func:`measure_preload` that of ``simsip lab preload`` (Kamailio usrloc's
start-up preload in db_mode 1/2, timed against the lab's PostgreSQL).
"""
from .check import check_requirements
from .preload import measure_preload
from .runner import cleanup_stale, leftovers, run_lab
from .scenario import PreparedLabRun, install_packages, prepare_run, run_scenario
from .spec import Fault, LabSpec

__all__ = ["LabSpec", "Fault", "run_lab", "check_requirements", "cleanup_stale", "leftovers", "PreparedLabRun",
           "install_packages", "prepare_run", "run_scenario", "measure_preload"]
