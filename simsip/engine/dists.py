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


class VectorDraws:
    """The next draws of a :func:`sampler` as an array, bit-identical to calling it repeatedly:
    :meth:`peek` looks ahead without consuming, :meth:`take` consumes. Only distributions whose
    scalar form is one buffered draw and IEEE arithmetic (constant, uniform, exponential) have one."""

    __slots__ = ("kind", "a", "b", "stream", "last")

    def __init__(self, kind: str, a: float, b: float, stream: Stream | None):
        self.kind, self.a, self.b, self.stream = kind, a, b, stream
        self.last = None  # what the last peek returned

    def peek(self, n: int):
        import numpy as np

        if self.kind == "constant":
            out = np.full(n, self.a)
        elif self.kind == "uniform":
            out = self.a + self.b * self.stream.ahead("u", n)
        else:
            out = self.stream.ahead("e", n) * self.a
        self.last = out
        return out

    def take(self, k: int) -> None:
        if self.kind != "constant" and k:
            self.stream.skip("u" if self.kind == "uniform" else "e", k)


def vector_draws(dist: Dist, stream: Stream) -> VectorDraws | None:
    """The vectorised twin of :func:`sampler` for ``dist``, or None where draws cannot be batched
    exactly (truncated normal's rejections, lognormal's ``exp``)."""
    kind = dist.dist
    if kind == "constant" or (kind in ("normal", "lognormal") and dist.sd == 0):
        return VectorDraws("constant", float(dist.mean), 0.0, None)
    if kind == "uniform":
        return VectorDraws("uniform", float(dist.low), float(dist.high - dist.low), stream)
    if kind == "exponential":
        return VectorDraws("exponential", float(dist.mean), 0.0, stream)
    return None
