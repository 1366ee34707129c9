"""Engine speed on a 50 000-phone UDP fleet at steady state (no keepalives, no auth, no faults,
and the same with one failover). Prints wall-clock seconds per replication (best of 3)."""

from __future__ import annotations

import sys
import time

from simsip.config.schema import Scenario
from simsip.engine.model import Model


def cfg(fault: bool, **phone) -> Scenario:
    doc = {
        "name": "bench", "seed": 1, "duration": "2h",
        "fleets": [{"name": "f", "count": 50_000, "phone": {"expires": "600s", **phone}}],
        "registrar": {"workers": 8, "service_time": {"dist": "exponential", "mean": "0.5ms"}},
        "network": {"delay": "2ms"},
        "faults": [{"node": "master", "at": "1h"}] if fault else [],
        "output": {"resolution": "1s", "report": False},
    }
    return Scenario.model_validate(doc)


def best(c: Scenario, n: int = 3) -> float:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        Model(c).run()
        out.append(time.perf_counter() - t)
    return min(out)


if __name__ == "__main__":
    extra = sys.argv[1:]
    print(f"steady 50k udp 2h:            {best(cfg(False)):.2f} s")
    print(f"50k udp 2h, failover at 1h:   {best(cfg(True)):.2f} s")
    if "--all" in extra:
        print(f"50k tcp+crlf ka 30s, failover:{best(cfg(True, transport='tcp', keepalive={'kind': 'crlf', 'interval': '30s'})):.2f} s")
        c = cfg(False).model_copy(update={"auth": cfg(False).auth.model_copy(update={"enabled": True})})
        print(f"50k udp + digest auth steady: {best(c):.2f} s")
