"""Samplers for configured distributions, drawing from one named stream."""

from __future__ import annotations

import math
from typing import Callable

from simsip.config.types import Dist
from simsip.rng import Stream


def sampler(dist: Dist, stream: Stream) -> Callable[[], float]:
    """A zero-argument function returning one draw in seconds (never negative)."""
    kind = dist.dist
    if kind == "constant" or (kind in ("normal", "lognormal") and dist.sd == 0):
        value = float(dist.mean)
        return lambda: value
    if kind == "uniform":
        lo, span = float(dist.low), float(dist.high - dist.low)
        rnd = stream.random
        return lambda: lo + span * rnd()
    if kind == "exponential":
        mean = float(dist.mean)
        exp = stream.exponential
        return lambda: exp(mean)
    if kind == "normal":
        mean, sd = float(dist.mean), float(dist.sd)
        nrm = stream.normal

        def truncated() -> float:  # normal truncated at zero (rejection)
            while True:
                x = mean + sd * nrm()
                if x >= 0:
                    return x

        return truncated
    # lognormal parameterised by its mean and standard deviation
    m, s = float(dist.mean), float(dist.sd)
    sigma2 = math.log1p((s / m) ** 2)
    sigma, mu = math.sqrt(sigma2), math.log(m) - sigma2 / 2
    nrm = stream.normal
    return lambda: math.exp(mu + sigma * nrm())
