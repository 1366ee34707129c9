"""The real lab: Kamailio + keepalived + SIPp + tshark in network namespaces."""
from .check import check_requirements
from .runner import cleanup_stale, leftovers, run_lab
from .spec import Fault, LabSpec

__all__ = ["LabSpec", "Fault", "run_lab", "check_requirements", "cleanup_stale", "leftovers"]
