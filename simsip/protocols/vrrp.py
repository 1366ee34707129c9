"""VRRP: when a backup decides the master is gone and takes the virtual IP over.

The master of a VRRP group sends an advertisement every Advertisement_Interval ``A``. Every backup
runs a Master_Down_Timer that each advertisement restarts; when it runs out, the backup becomes
master (and announces the address with gratuitous ARPs). Its length, the Master_Down_Interval, is
``down_timer_adverts`` advertisement intervals plus a Skew_Time that makes the backup with the
highest priority ``p`` expire first:

==========================  =============================  ===================================
                            VRRPv2, RFC 3768 §6.1          VRRPv3, RFC 5798 §6.1
==========================  =============================  ===================================
Advertisement_Interval A    whole seconds                  centiseconds
Skew_Time                   (256 − p) / 256 s              (256 − p) · A / 256
Master_Down_Interval        3 · A + Skew_Time              3 · A + Skew_Time
==========================  =============================  ===================================

Both RFCs fix the factor at 3; keepalived (the HA stack modelled here, version 2 by default)
exposes it as ``down_timer_adverts`` (default 3). A master that shuts down cleanly, or enters
FAULT, sends a priority-0 advertisement and the backup takes over after only its Skew_Time.

A master that *crashes* sends nothing more. Its last advertisement left ψ seconds before the
crash, and the backup's timer was restarted by it, so the backup takes over ``MDI − ψ`` after the
crash. The crash instant is independent of the advertisement clock, so ψ is uniform on [0, A) and
the takeover falls in the window (MDI − A, MDI], on average MDI − A/2 after the crash.
Advertisements that take δ to reach the backup shift all of this by δ.

Every function is pure: numbers in, numbers out, no randomness drawn (a random phase is passed in
as a uniform draw ``u`` in [0, 1)).
"""

from __future__ import annotations

#: RFC 3768 / RFC 5798: advertisement intervals in a Master_Down_Interval
DOWN_TIMER_ADVERTS = 3


def skew_time(version: int, priority: int, advert_int: float) -> float:
    """Skew_Time in seconds: (256−p)/256 for VRRPv2 (RFC 3768), (256−p)·A/256 for VRRPv3 (RFC 5798).

    >>> skew_time(2, 100, 1.0), skew_time(3, 100, 0.5)
    (0.609375, 0.3046875)
    """
    if not 1 <= priority <= 255:
        raise ValueError(f"VRRP priority must be 1..255, got {priority}")
    if version == 2:
        return (256 - priority) / 256.0
    if version == 3:
        return (256 - priority) * advert_int / 256.0
    raise ValueError(f"VRRP version must be 2 or 3, got {version}")


def master_down_interval(version: int, priority: int, advert_int: float,
                         down_timer_adverts: int = DOWN_TIMER_ADVERTS) -> float:
    """Master_Down_Interval = down_timer_adverts · A + Skew_Time.

    >>> master_down_interval(2, 100, 1.0), master_down_interval(3, 100, 0.5)
    (3.609375, 1.8046875)
    """
    return down_timer_adverts * advert_int + skew_time(version, priority, advert_int)


def takeover_after_crash(mdi: float, advert_int: float, u: float, advert_delay: float = 0.0) -> float:
    """Crash → takeover when the master's last advert left ψ = u·A before the crash: MDI − ψ (+ δ)."""
    return mdi - u * advert_int + advert_delay


def takeover_window(mdi: float, advert_int: float, advert_delay: float = 0.0) -> tuple[float, float]:
    """The bounds (low, high) of crash → takeover after a silent crash: the window (MDI − A, MDI] (+ δ)."""
    return (mdi - advert_int + advert_delay, mdi + advert_delay)


def expected_takeover(mdi: float, advert_int: float, advert_delay: float = 0.0) -> float:
    """E[crash → takeover] = MDI − A/2 (+ δ): the advert phase ψ is uniform on [0, A)."""
    return mdi - advert_int / 2.0 + advert_delay


__all__ = ["DOWN_TIMER_ADVERTS", "skew_time", "master_down_interval", "takeover_after_crash", "takeover_window",
           "expected_takeover"]
