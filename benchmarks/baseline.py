"""The speed limit of the engine: a bare SimPy loop, one process per phone, one round-trip
timeout per refresh (the workload of issue 8's baseline)."""

from __future__ import annotations

import numpy as np
import simpy


def bare_simpy(phones: int, refresh: float, duration: float, rtt: float = 0.004, seed: int = 0) -> int:
    """Simulate ``phones`` phones refreshing every ``refresh`` s; return registrations completed."""
    env = simpy.Environment()
    done = [0]
    phases = np.random.default_rng(seed).random(phones) * refresh

    def phone(first: float):
        yield env.timeout(first)
        while True:
            yield env.timeout(rtt)  # REGISTER → 200 round trip
            done[0] += 1
            yield env.timeout(refresh - rtt)

    for ph in phases.tolist():
        env.process(phone(ph))
    env.run(until=duration)
    return done[0]
