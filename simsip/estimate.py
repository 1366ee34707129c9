"""What a scenario will cost before it runs: events, peak memory and time, from the config alone.

A scenario can be valid and still absurd to run here — a year at 1 s resolution, a fault every
millisecond, ten million phones. :func:`estimate` predicts one replication's cost from the terms
that drive it:

* **registrations** R — every phone refreshes once per refresh interval
  (``fleets × duration / refresh(grant(expires))``); each is a transaction of a few events and
  one binding save per store;
* **time-series bins** B — ``duration / output.resolution`` steps, each a slot in a dozen counters
  and a row of the ``timeseries`` table;
* **random faults** F — ``duration / (mtbf + mttr)`` per ``random_faults`` entry, each a crash and a repair
  with the HA stack's reaction (adverts, GARPs, a storm of re-registrations);
* **phones** P — per-phone state held in compact arrays for the whole run.

With record compaction (``engine.compact_records``, :meth:`Scenario.folds_saves`) the records held
grow with the phones and the disturbances, not the refreshes: the memory term of R is then capped
at ``P · (1 + 2F)`` records.

Peak memory ≈ M0 + a·P + b·R + c·B (+ the fault records), time ≈ t·R + u·B + v·F + w·P, with the
coefficients fitted to ``benchmarks/estimate_calibration.py`` on the project's 2-core machine
(they are estimates: within a factor of two to three; the machine is shared). :func:`check` refuses a run whose peak memory
exceeds the machine's available memory, or whose time exceeds a budget, with the estimate and the
knob that drives it; ``simsip run --force`` runs it anyway.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from simsip.config.schema import Scenario

# fitted coefficients (benchmarks/estimate_calibration.py)
M0 = 125 * 2**20  # interpreter, numpy/pandas/simpy, the model's fixed part
BYTES_PER_PHONE = 780.0
BYTES_PER_REGISTRATION = 230.0
BYTES_PER_BIN = 800.0
BYTES_PER_FAULT = 5000.0
SECONDS_PER_REGISTRATION = 16e-6
SECONDS_PER_BIN = 25e-6
SECONDS_PER_FAULT = 4e-3
SECONDS_PER_PHONE = 7e-6
SECONDS_FIXED = 0.1

#: default time budget of one ``simsip run`` (all replications), seconds
DEFAULT_TIME_BUDGET = 3600.0


@dataclass(frozen=True)
class Estimate:
    """One replication's predicted cost (``runs`` replications take ``seconds × runs``)."""

    phones: int
    registrations: float
    bins: float
    faults: float
    events: float
    peak_bytes: float
    seconds: float
    replications: int
    memory_driver: str  # the term that dominates the memory (phones | registrations | bins | faults)
    time_driver: str  # ... and the time

    @property
    def total_seconds(self) -> float:
        return self.seconds * self.replications

    def describe(self) -> str:
        return (f"≈ {self.events:.3g} events, peak memory ≈ {_bytes(self.peak_bytes)}, "
                f"≈ {_duration(self.seconds)} per replication × {self.replications} "
                f"({self.phones:,} phones, {self.registrations:.3g} registrations, {self.bins:.3g} time-series steps, "
                f"{self.faults:.3g} random faults)")


def _bytes(b: float) -> str:
    for unit, k in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if b >= k:
            return f"{b / k:.3g} {unit}"
    return f"{b / 1024:.3g} KiB"


def _duration(s: float) -> str:
    if not math.isfinite(s):
        return "forever"
    for unit, k in (("days", 86400), ("h", 3600), ("min", 60)):
        if s >= k:
            return f"{s / k:.3g} {unit}"
    return f"{s:.2g} s"


def estimate(cfg: Scenario) -> Estimate:
    """Predict one replication's events, peak memory and time from the scenario."""
    dur = float(cfg.duration)
    regs = 0.0
    for f in cfg.fleets:
        granted = max(cfg.registrar.grant(float(f.phone.expires)), 1e-3)
        interval = max(f.phone.refresh.interval(granted), 1e-3)
        regs += f.count * dur / interval  # refreshes (an equilibrium start registers without a transaction)
    bins = dur / float(cfg.output.resolution)
    # a random fault alternates up (mtbf) and down (mttr): dur / (mtbf + mttr) disturbances each
    faults = sum(dur / max(float(r.mtbf) + float(r.mttr), 1e-9) for r in cfg.random_faults) + len(cfg.faults)
    phones = cfg.phones

    events = 4.0 * regs + 12.0 * bins + 200.0 * faults
    # with record compaction a phone's refreshes fold into one record per uninterrupted
    # registration: the records grow with the disturbances (a failover and a failback per fault),
    # not with the refreshes
    held = min(regs, phones * (1.0 + 2.0 * faults)) if cfg.folds_saves() else regs
    mem = {"phones": BYTES_PER_PHONE * phones, "registrations": BYTES_PER_REGISTRATION * held,
           "bins": BYTES_PER_BIN * bins, "faults": BYTES_PER_FAULT * faults}
    tim = {"phones": SECONDS_PER_PHONE * phones, "registrations": SECONDS_PER_REGISTRATION * regs,
           "bins": SECONDS_PER_BIN * bins, "faults": SECONDS_PER_FAULT * faults}
    return Estimate(phones, regs, bins, faults, events, M0 + sum(mem.values()), SECONDS_FIXED + sum(tim.values()),
                    cfg.replications, memory_driver=max(mem, key=mem.get), time_driver=max(tim, key=tim.get))


#: what to change, per dominating term
KNOBS = {
    "phones": "fleets[].count (fewer phones), or model a representative share of the fleet",
    "registrations": "duration, or fleets[].phone.expires (longer expiry: fewer refreshes), or fleets[].count",
    "bins": "output.resolution (a coarser time-series step, e.g. 1min for a run of days) or duration",
    "faults": "random_faults[].mtbf (a longer mean time between failures) or duration",
}


def available_memory() -> float:
    """Bytes this run may use: MemAvailable from /proc/meminfo, else total physical memory."""
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def check(cfg: Scenario, *, memory: float | None = None, time_budget: float | None = None,
          source: str = "") -> list[str]:
    """The reasons to refuse running ``cfg`` here (empty: go ahead): peak memory above ``memory``
    (default: the machine's available memory) or all replications above ``time_budget`` seconds
    (default :data:`DEFAULT_TIME_BUDGET`). Each names the estimate and the knob to change."""
    est = estimate(cfg)
    mem = available_memory() if memory is None else memory
    budget = DEFAULT_TIME_BUDGET if time_budget is None else time_budget
    where = f"{source}: " if source else ""
    out = []
    if est.peak_bytes > mem:
        out.append(f"{where}estimated peak memory {_bytes(est.peak_bytes)} exceeds the {_bytes(mem)} available here "
                   f"({est.describe()}); change {KNOBS[est.memory_driver]}; or --force to run anyway")
    if est.total_seconds > budget:
        out.append(f"{where}estimated run time {_duration(est.total_seconds)} exceeds the time budget of {_duration(budget)} "
                   f"({est.describe()}); change {KNOBS[est.time_driver]}, or fewer replications; "
                   "or --time-budget / --force to run anyway")
    return out
