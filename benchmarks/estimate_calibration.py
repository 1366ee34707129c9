"""Measure what simsip.estimate predicts: peak memory (max RSS) and time of one replication for
scenarios that stress one term each (phones, registrations, time-series bins, random faults).

    python benchmarks/estimate_calibration.py        # prints measured vs estimated, one line each

The coefficients in simsip/estimate.py were fitted to these points on the project's 2-core machine.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

CASES = {
    "base": dict(phones=1000, duration="10min", expires="3600s"),
    "phones": dict(phones=200_000, duration="10min", expires="3600s"),
    "bins": dict(phones=1000, duration="2d", expires="3600s"),
    "registrations": dict(phones=20_000, duration="1h", expires="60s"),
    "faults": dict(phones=1000, duration="1h", expires="3600s", mtbf="10s"),
}


def scenario(phones: int, duration: str, expires: str, mtbf: str | None = None) -> dict:
    doc = {
        "name": "calib", "seed": 1, "duration": duration, "replications": 1,
        "fleets": [{"name": "f", "count": phones, "profile": "generic-udp", "phone": {"expires": expires}}],
        "registrar": {"profile": "kamailio", "min_expires": "10s"}, "ha": {"profile": "keepalived"},
        "output": {"report": False},
    }
    if mtbf:
        doc["random_faults"] = [{"kind": "node_crash", "node": "any", "mtbf": mtbf, "mttr": "1s"}]
    return doc


CHILD = """
import json, resource, sys, time
from simsip.config.loader import validate
from simsip.config.loader import Located
from simsip.api import simulate
from simsip.config.schema import Scenario
cfg = Scenario.model_validate(json.loads(sys.argv[1]))
t0 = time.perf_counter()
simulate(cfg)
print(json.dumps({"seconds": time.perf_counter() - t0, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    from simsip.config.loader import load_config_text
    from simsip.estimate import estimate

    import yaml

    for name, kw in CASES.items():
        doc = scenario(**kw)
        cfg = load_config_text(yaml.safe_dump(doc), "calib.yaml")
        est = estimate(cfg)
        r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg.model_dump(mode="json"))],
                           capture_output=True, text=True)
        if r.returncode:
            print(name, "failed", r.stderr[-500:])
            continue
        m = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{name:14s} measured {m['seconds']:7.2f} s {m['rss_mib']:7.0f} MiB | estimated {est.seconds:7.2f} s "
              f"{est.peak_bytes / 2**20:7.0f} MiB | R={est.registrations:.3g} B={est.bins:.3g} F={est.faults:.3g}")


if __name__ == "__main__":
    main()
