"""simsip — predict SIP registration loss across registrar HA failover.

A SimPy discrete-event model of phones, the network, registrars behind a keepalived VIP and the
faults that move it, validated against packet traces from a real Kamailio + keepalived + SIPp lab.
"""

__version__ = "0.1.0"

from simsip.api import Results, load_config, simulate  # noqa: E402

__all__ = ["Results", "__version__", "load_config", "simulate"]
