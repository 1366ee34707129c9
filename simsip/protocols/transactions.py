"""SIP non-INVITE client transactions over UDP: when a REGISTER is resent and when it gives up.

RFC 3261 §17.1.2.2: a client sends the request and starts Timer E at T1 (RTT estimate, default
500 ms) and Timer F at 64·T1. Each time Timer E fires the request is retransmitted and Timer E is
restarted at twice its last value, but never more than T2 (default 4 s). A final response ends
the transaction; Timer F firing ends it with a local timeout (the phone treats it as a 408). So
the copies go out at

    0, T1, 3·T1, 7·T1, …   (the step doubles until it reaches T2, then stays T2)

which at the defaults is 0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, … 31.5 s, and Timer F ends the
transaction at 32 s. Some phones configure Timer F directly (Cisco SPA/MPP: 16 s).

SIPp (the lab's phones) has no Timer F: ``-max_retrans K`` ends a transaction when the
(K+1)-th retransmission would be due, e.g. K = 9 at T1 = 500 ms, T2 = 4 s times out at 31.5 s.
A model phone with ``max_retransmissions`` K does the same, whichever of the two comes first.

The same doubling-with-a-cap rule paces TCP's retransmissions (RFC 6298: the RTO doubles up to
its maximum), so :func:`retransmit_interval` takes the first interval and the cap as arguments.

Every function is pure; none draws random numbers.
"""

from __future__ import annotations

#: RFC 3261 §17.1.1.1 defaults (seconds)
T1 = 0.5
T2 = 4.0
#: Timer F = TIMER_F_T1 · T1 (RFC 3261 §17.1.2.2)
TIMER_F_T1 = 64.0


def timer_f(t1: float = T1, timer_f: float | None = None) -> float:
    """Timer F: the configured value, or 64·T1 (RFC 3261).

    >>> timer_f(0.5), timer_f(0.5, 16.0)
    (32.0, 16.0)
    """
    return timer_f if timer_f is not None else TIMER_F_T1 * t1


_timer_f = timer_f  # the functions below take a ``timer_f`` argument that hides the name


def retransmit_interval(k: int, t1: float = T1, t2: float = T2) -> float:
    """The wait after the k-th transmission (k = 0: the original) before the next: min(T1·2^k, T2)."""
    return min(t1 * 2.0 ** min(k, 1023), t2)  # 2.0**1024 overflows; by then the cap holds anyway


def send_time(n: int, t1: float = T1, t2: float = T2) -> float:
    """Offset of the n-th transmission from the first (n = 0: 0, n = 1: T1, n = 2: 3·T1, …).

    Timer F is not applied: this is when the copy would be due.
    """
    t, step = 0.0, t1
    for _ in range(n):
        t += step
        step = min(2 * step, t2)
    return t


def timer_e_schedule(t1: float = T1, t2: float = T2, timer_f: float | None = None,
                     max_retransmissions: int | None = None) -> tuple[float, ...]:
    """Send offsets of one transaction that gets no answer: 0, T1, 3T1, 7T1, … before Timer F.

    At most ``max_retransmissions`` retransmissions follow the original when it is given.

    >>> timer_e_schedule()[:6]
    (0.0, 0.5, 1.5, 3.5, 7.5, 11.5)
    """
    f = _timer_f(t1, timer_f)
    out = [0.0]
    step = t1
    while True:
        nxt = out[-1] + step
        if nxt >= f - 1e-12:
            break
        if max_retransmissions is not None and len(out) - 1 >= max_retransmissions:
            break
        out.append(nxt)
        step = min(2 * step, t2)
    return tuple(out)


def sipp_timeout(t1: float, t2: float, max_retrans: int) -> float:
    """When SIPp ends an unanswered non-INVITE transaction with ``-max_retrans K``: when the
    (K+1)-th retransmission would be due.

    >>> sipp_timeout(0.5, 4.0, 9)
    31.5
    """
    return send_time(max_retrans + 1, t1, t2)


def transaction_timeout(t1: float = T1, t2: float = T2, timer_f: float | None = None,
                        max_retransmissions: int | None = None) -> float:
    """Offset at which an unanswered transaction times out: Timer F, or earlier when the
    retransmissions run out first (:func:`sipp_timeout`)."""
    f = _timer_f(t1, timer_f)
    if max_retransmissions is None:
        return f
    return min(f, sipp_timeout(t1, t2, max_retransmissions))


__all__ = ["T1", "T2", "TIMER_F_T1", "timer_f", "retransmit_interval", "send_time", "timer_e_schedule",
           "sipp_timeout", "transaction_timeout"]
