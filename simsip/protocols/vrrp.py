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

**Weighted tracking** (keepalived ``track_script``/``track_process`` with ``weight`` w ≠ 0) changes
the priority instead of entering FAULT. A tracker adds ``w·m`` (m = −1 with ``reverse``, else 1)
while it is OK if w > 0, and while it has failed if w < 0 (``process_script_update_priority``,
``initialise_track_script_state`` in keepalived ``vrrp/vrrp_track.c``). The *effective* priority,
the one advertised and used for Skew_Time, is that total clamped to 1..254
(``vrrp_set_effective_priority``); an address owner (priority 255) never changes it (keepalived
drops a weighted script on such an instance, ``vrrp_complete_instance`` in ``vrrp/vrrp.c``).

A master whose priority drops keeps advertising at the lower priority. A backup accepts an
advert whose priority is at least its own (or always, with ``nopreempt``) and restarts its
Master_Down_Timer; it *discards* a lower one and lets its timer run on (``vrrp_state_backup``,
RFC 3768 §6.4.2). So a weighted failure moves the VIP only if it brings the master strictly
below a preempting backup, and then only Master_Down_Interval after the last advert the backup
accepted — not the Skew_Time a priority-0 advert (FAULT, or a clean stop) gives.

Every function is pure: numbers in, numbers out, no randomness drawn (a random phase is passed in
as a uniform draw ``u`` in [0, 1)).
"""

from __future__ import annotations

#: the address owner's priority (never adjusted) and the highest a tracked priority reaches
PRIORITY_OWNER = 255
PRIORITY_MAX_TRACKED = 254

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


def track_contribution(weight: int, ok: bool, reverse: bool = False) -> int:
    """What one weighted tracker adds to the priority (keepalived vrrp_track.c).

    w > 0 adds w·m while the tracker is OK; w < 0 adds w·m while it has failed (m = −1 with
    ``reverse``). Weight 0 never changes the priority (it means FAULT instead).

    >>> track_contribution(-20, ok=False), track_contribution(-20, ok=True), track_contribution(10, ok=True)
    (-20, 0, 10)
    >>> track_contribution(10, ok=True, reverse=True), track_contribution(-20, ok=False, reverse=True)
    (-10, 20)
    """
    m = -1 if reverse else 1
    if ok:
        return weight * m if weight > 0 else 0
    return weight * m if weight < 0 else 0


def effective_priority(base: int, total: int) -> int:
    """The advertised priority: ``total`` (base + trackers) clamped to 1..254; 255 stays 255
    (keepalived ``vrrp_set_effective_priority``).

    >>> effective_priority(101, 81), effective_priority(100, -30), effective_priority(200, 300), effective_priority(255, 200)
    (81, 1, 254, 255)
    """
    if base == PRIORITY_OWNER:
        return PRIORITY_OWNER
    return min(max(total, 1), PRIORITY_MAX_TRACKED)


def backup_accepts(advert_priority: int, own_priority: int, preempt: bool = True) -> bool:
    """Does a backup accept an advert (restart its Master_Down_Timer)? RFC 3768 §6.4.2 and
    keepalived ``vrrp_state_backup``: yes if it is at least our priority, or if we do not preempt.
    (Priority 0 is a release: the timer is set to Skew_Time instead.)"""
    return (not preempt) or advert_priority >= own_priority


__all__ = ["DOWN_TIMER_ADVERTS", "PRIORITY_OWNER", "PRIORITY_MAX_TRACKED", "track_contribution",
           "effective_priority", "backup_accepts", "skew_time", "master_down_interval", "takeover_after_crash", "takeover_window",
           "expected_takeover"]
