"""How building the run page scales with the number of faults and fleets (issue 14).

The page must be linear in the events: each timeline draws one shape per fault, repair and VIP
move, added in one layout assignment, and the topology draws at most 12 fleets. This prints the
time of ``build_figures`` + ``render_run_report`` and of ``metrics.compute`` for growing counts;
with a linear build, doubling the faults about doubles the time (before the fix, 25 faults took
over a minute, mostly in plotly's ``add_vline``).

    .venv/bin/python benchmarks/report_scaling.py            # faults 25, 50, 100, 200; fleets 10, 100, 300
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simsip.api import simulate  # noqa: E402
from simsip.report.run_page import render_run_report  # noqa: E402
from tests.conftest import scenario  # noqa: E402


def faults_case(n: int):
    faults = [{"node": "master", "at": f"{30 + 30 * i}s", "repair_after": "10s"} for i in range(n)]
    return scenario(duration=f"{30 * n + 60}s", fleets=[{"name": "f", "count": 100, "phone": {"expires": "60s"}}],
                    faults=faults)


def fleets_case(n: int):
    fleets = [{"name": f"f{i}", "count": 2, "phone": {"expires": "60s"}} for i in range(n)]
    return scenario(duration="120s", fleets=fleets, faults=[{"node": "master", "at": "60s"}])


def timed(cfg) -> tuple[float, float]:
    t0 = time.perf_counter()
    res = simulate(cfg)
    t1 = time.perf_counter()
    render_run_report(res)
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    print("case            simulate+metrics (s)   page (s)")
    for n in (25, 50, 100, 200):
        sim, page = timed(faults_case(n))
        print(f"faults {n:<8} {sim:>21.2f} {page:>10.2f}")
    for n in (10, 100, 300):
        sim, page = timed(fleets_case(n))
        print(f"fleets {n:<8} {sim:>21.2f} {page:>10.2f}")


if __name__ == "__main__":
    main()
