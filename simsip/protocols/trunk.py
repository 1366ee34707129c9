"""What sits around the registrar: the PBX's own trunk registration and an SBC's registration cache.

**Asterisk's outbound registration** (``res_pjsip_outbound_registration.c``, read at asterisk/asterisk
f0c1c1a7): a registration starts in ``sip_outbound_registration_perform`` with
``schedule_registration(state, (max_delay ? ast_random() % max_delay : 0) + 1)`` — the first
REGISTER goes 1..``max_random_initial_delay`` whole seconds after the module loads (default 10).
``handle_registration_response`` then decides what follows each response:

* a 2xx: ``retries = 0`` and the next REGISTER ``expiration - REREGISTER_BUFFER_TIME`` seconds later
  (``REREGISTER_BUFFER_TIME`` 10, never below 0);
* a Retry-After: wait it (``schedule_retry``), whatever the code;
* a *temporal* code (``sip_outbound_registration_is_temporal``: 408 — also a local timeout —, 500, 502,
  503, 504, 6xx, and 401/407 when ``auth_rejection_permanent`` is off) with ``retry_interval`` > 0:
  after ``max_retries`` such retries give up for good, else ``retries += 1`` and wait ``retry_interval``;
* otherwise a 403 with ``forbidden_retry_interval`` > 0 and retries left waits that; any other code
  with ``fatal_retry_interval`` > 0 and retries left waits that; else give up until a reload.

**OpenSIPS mid_registrar** (``modules/mid_registrar/save.c``, contact throttling,
``process_contacts_by_ct``): a REGISTER whose contact the mid-registrar does not know is forwarded;
a known one is forwarded when ``now - last_reg_ts >= expires_out - e`` (the time since the last
forwarded REGISTER reaches the upstream lifetime minus the phone's expiry), otherwise absorbed with a
local 200. Forwarded REGISTERs carry ``max(e, outgoing_expires)`` (``calc_ob_contact_expires``,
behaviour 0; ``outgoing_expires`` default 3600), and the upstream lifetime read back from the main
registrar's 200 is capped at ``outgoing_expires`` (behaviour 1).
"""

from __future__ import annotations

import math

#: res_pjsip_outbound_registration.c: ``#define REREGISTER_BUFFER_TIME 10``
REREGISTER_BUFFER_TIME = 10.0


def initial_delay(max_random_initial_delay: float, u: float) -> float:
    """Seconds from a registration's start (module load) to its first REGISTER:
    ``(ast_random() % max_delay) + 1`` — a whole number in 1..max_delay, uniform (1 when max is 0).
    ``u`` is a uniform draw in [0, 1)."""
    m = int(max_random_initial_delay)
    return float((int(u * m) if m > 0 else 0) + 1)


def mean_initial_delay(max_random_initial_delay: float) -> float:
    """Closed form: the mean of :func:`initial_delay`, (max + 1) / 2 for max >= 1, else 1 s."""
    m = int(max_random_initial_delay)
    return (m + 1) / 2 if m > 0 else 1.0


def refresh_after(granted: float) -> float:
    """Seconds from a 2xx to the next REGISTER: ``expiration - REREGISTER_BUFFER_TIME``, at least 0."""
    return max(granted - REREGISTER_BUFFER_TIME, 0.0)


def is_temporal(code: int, auth_rejection_permanent: bool) -> bool:
    """``sip_outbound_registration_is_temporal``: codes after which Asterisk retries at ``retry_interval``."""
    if code in (408, 500, 502, 503, 504) or 600 <= code < 700:
        return True
    return code in (401, 407) and not auth_rejection_permanent


def after_failure(code: int, retries: int, *, retry_interval: float, forbidden_retry_interval: float,
                  fatal_retry_interval: float, max_retries: int, auth_rejection_permanent: bool,
                  retry_after: float = 0.0) -> tuple[float | None, int]:
    """(seconds until the next REGISTER or None = stop for good, the retry count after it) for a
    non-2xx ``code`` (408 for a local timeout) with ``retries`` retries so far
    (``handle_registration_response``)."""
    if retry_after > 0:
        return retry_after, retries
    if retry_interval > 0 and is_temporal(code, auth_rejection_permanent):
        if retries >= max_retries:
            return None, retries
        return retry_interval, retries + 1
    if code == 403 and forbidden_retry_interval > 0 and retries < max_retries:
        return forbidden_retry_interval, retries + 1
    if fatal_retry_interval > 0 and retries < max_retries:
        return fatal_retry_interval, retries + 1
    return None, retries


def give_up_time(retry_interval: float, max_retries: int, timeout: float) -> float:
    """Closed form: seconds from the first REGISTER to Asterisk giving up when every attempt times
    out (408 after ``timeout``): ``max_retries + 1`` attempts, each timeout plus a retry wait between."""
    return (max_retries + 1) * timeout + max_retries * retry_interval


def sbc_forwards(known: bool, since_forward: float, expires_out: float, e: float) -> bool:
    """mid_registrar contact throttling: is a phone's REGISTER forwarded upstream (else absorbed)?
    ``known``: the mid-registrar holds the contact; ``since_forward``: seconds since its last
    forwarded REGISTER; ``expires_out``: the upstream lifetime it was granted; ``e``: the phone's expiry."""
    return (not known) or since_forward >= expires_out - e


def sbc_upstream_expires(e: float, outgoing_expires: float) -> float:
    """The expiry a forwarded REGISTER asks of the registrar: ``max(e, outgoing_expires)``."""
    return max(e, outgoing_expires)


def sbc_expires_out(granted: float, outgoing_expires: float) -> float:
    """The upstream lifetime the mid-registrar keeps from the registrar's 200: capped at outgoing_expires."""
    return min(granted, outgoing_expires)


def sbc_cycle(expires_out: float, e: float, refresh_interval: float) -> float:
    """Closed form: seconds between two forwarded REGISTERs of a phone refreshing every
    ``refresh_interval``: the first refresh at or after ``expires_out - e`` since the last forward."""
    gap = expires_out - e
    if gap <= 0:
        return refresh_interval
    return math.ceil(gap / refresh_interval - 1e-9) * refresh_interval


__all__ = ["REREGISTER_BUFFER_TIME", "initial_delay", "mean_initial_delay", "refresh_after", "is_temporal", "after_failure",
           "give_up_time", "sbc_forwards", "sbc_upstream_expires", "sbc_expires_out", "sbc_cycle"]
