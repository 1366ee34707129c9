"""Registrar load: the steady REGISTER rate and the M/M/c (Erlang C) queue in front of the workers.

N phones that each refresh every R seconds, with independent phases, send a stationary stream
of N/R REGISTERs per second.

A registrar with c workers, exponential service of mean 1/μ and Poisson arrivals at rate λ is an
M/M/c queue with offered load a = λ/μ (in Erlangs). While a < c it is stable and an arrival has
to wait with the Erlang C probability

    C(c, a) = [aᶜ/c! · c/(c − a)] / [Σ_{k<c} aᵏ/k! + aᶜ/c! · c/(c − a)],

and the mean wait in the queue is W_q = C(c, a) / (cμ − λ). C is computed from the Erlang B
(loss) formula by its stable recursion B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1)), then
C = B / (1 − ρ + ρ·B) with ρ = a/c (e.g. Kleinrock, *Queueing Systems* I, §3.5).

Every function is pure.
"""

from __future__ import annotations

import math


def steady_register_rate(phones: float, refresh_interval: float) -> float:
    """N/R: REGISTERs per second of N phones refreshing every R seconds in equilibrium."""
    if refresh_interval <= 0:
        raise ValueError("refresh interval must be > 0")
    return phones / refresh_interval


def erlang_b(workers: int, offered: float) -> float:
    """B(c, a): the probability that an arrival finds all c servers busy in an M/M/c/c loss system."""
    c = int(workers)
    if c < 1:
        raise ValueError("workers must be >= 1")
    if offered <= 0:
        return 0.0
    b = 1.0
    for k in range(1, c + 1):
        b = offered * b / (k + offered * b)
    return b


def erlang_c(workers: int, offered: float) -> float:
    """C(c, a): probability that an arrival waits in an M/M/c queue (1.0 when a ≥ c).

    >>> erlang_c(1, 0.7), round(erlang_c(2, 1.0), 12)
    (0.7, 0.333333333333)
    """
    c = int(workers)
    if c < 1:
        raise ValueError("workers must be >= 1")
    if offered <= 0:
        return 0.0
    if offered >= c:
        return 1.0
    b = erlang_b(c, offered)
    rho = offered / c
    return b / (1 - rho + rho * b)


def erlang_c_wait(workers: int, mean_service: float, arrival_rate: float) -> float:
    """W_q = C(c, a)/(cμ − λ): mean wait in queue of an M/M/c registrar (inf when saturated)."""
    mu = 1.0 / mean_service
    if arrival_rate >= workers * mu:
        return math.inf
    return erlang_c(workers, arrival_rate / mu) / (workers * mu - arrival_rate)


__all__ = ["steady_register_rate", "erlang_b", "erlang_c", "erlang_c_wait"]
