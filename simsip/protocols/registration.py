"""Keeping a SIP registration alive: the registrar's grant, the phone's refresh, its retry wait.

**The grant.** A phone asks for an expiry in its REGISTER; the registrar grants the requested
value clamped to ``[min_expires, max_expires]`` (RFC 3261 §10.3 lets it shorten the expiry and
answer 423 below its minimum; Kamailio's registrar, like most, raises a short request to
``min_expires`` instead, and ``max_expires`` 0 means no upper limit). Kamailio can then spread the
refreshes of a fleet by granting less at random: with ``expires_range`` r %, the grant ``E``
becomes uniform in [E·(1 − r/100), E], i.e. ``E·(1 − r/100·u)`` for a uniform draw u.

An overloaded registrar answers 503, optionally with a Retry-After: fixed, or spread uniformly
up to a maximum (:func:`retry_after_header`).

**The refresh.** The phone re-registers a while before the granted expiry ``E`` runs out, by a
rule of its firmware (see ``models/phones``):

* ``percent``: at E·percent/100 (Linphone, baresip: 90 %);
* ``margin``: at E − margin, or E/2 when E ≤ margin (pjsua: margin 5 s; Polycom: overlap 60 s);
* ``half_or_margin``: at max(E/2, E − margin) (Aastra/Mitel: half-way unless that is more than
  the margin before expiry);

and never sooner than ``min_interval`` after the success. N phones refreshing every R seconds
send N/R REGISTERs per second (:func:`simsip.protocols.queueing.steady_register_rate`).

**The retry wait.** After a failed REGISTER (a timeout, a 503 or other error reply, a transport
error) the phone waits and starts a new transaction. With n consecutive failures before this one
(n = 0: the first), the rule of :class:`simsip.config.schema.RetryRule` is, in this order:

0. a failure *response* (``status``; not a local timeout or a transport error) listed in
   ``code_waits`` waits that long (Grandstream "Retry wait upon 403 Forbidden" 1200 s); one not
   listed in ``retry_codes`` (when set) waits ``long_interval`` or gives up (``other_codes``):
   Cisco SPA/MPP retry at "Reg Retry Intvl" only the codes of "Retry Reg RSC" (blank by default)
   and wait "Reg Retry Long Intvl" 1200 s after any other failure response; pjsua retries only
   after 408, 480, 500, 502, 503, 504 and 6xx (``pjsua_acc.c`` ``regc_cb``) and otherwise stops;
1. after ``max_attempts`` consecutive failures (0 = never; counted again from there) the phone
   waits ``long_interval`` (Cisco "Reg Retry Long Intvl") or gives up (``after_max: give_up``);
2. the first transport error in a row waits ``transport_error_interval`` if set (Linphone: 0);
3. a local timeout waits ``timeout_interval`` if set (Linphone: 2 s);
4. ``backoff`` (RFC 5626 §4.5): W = min(max, base·2^(n + exponent_offset)) and the wait is uniform
   in [W/2, W], i.e. W·(0.5 + 0.5·u) (baresip: exponent offset 1);
5. ``fixed``: ``first_interval`` for the first failure if set, else ``interval``; with a
   ``spread`` s the wait is uniform in [interval − s, interval + s], or in [0, s] when the
   interval is shorter than s (pjsua: 300 s ± 10 s, first retry 0 s).

Then, for the first failure of a server (timeout, transport error or 503), a phone that honours
the draft-shen Restart-Timer waits uniform in [0, Restart-Timer] instead; and a 503's
Retry-After is a lower bound when the phone honours it.

**Flow keep-alives** (RFC 5626 §4.4): a registered phone pings its flow (double-CRLF, or an
OPTIONS transaction) at intervals uniform in [randomize·K, K] (implementations use 80–100 %);
a CRLF ping without a pong fails after 10 s (§4.4.1), an OPTIONS ping at Timer F.

Every function is pure. Where a rule is random the caller passes the uniform draw ``u`` in
[0, 1); the ``*_draws`` functions say whether a rule consumes a draw at all, so a simulator can
draw only then and keep its random streams as they were.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

REFRESH_MODES = ("percent", "margin", "half_or_margin")
#: RFC 5626 §4.4.1: a CRLF ping without a pong this long after it fails the flow (seconds)
CRLF_PONG_TIMEOUT = 10.0


# --------------------------------------------------------------------------- the grant
def clamp_expiry(requested: float, min_expires: float, max_expires: float) -> float:
    """The requested expiry raised to ``min_expires`` and lowered to ``max_expires`` (0: no limit)."""
    granted = requested if requested >= min_expires else min_expires
    if max_expires and granted > max_expires:
        granted = max_expires
    return granted


def spread_expiry(granted: float, expires_range: float, u: float) -> float:
    """Kamailio ``expires_range`` r %: E·(1 − r/100·u), uniform in [E(1 − r/100), E] for u ~ U[0, 1).

    ``granted`` and ``u`` may also be numpy arrays (one grant per phone): the arithmetic broadcasts.
    """
    if not expires_range:
        return granted
    return granted * (1.0 - expires_range / 100.0 * u)


def grant_expiry(requested: float, min_expires: float, max_expires: float, expires_range: float = 0.0,
                 u: float = 0.0) -> float:
    """The registrar's grant: :func:`clamp_expiry`, then the ``expires_range`` spread with draw ``u``."""
    return spread_expiry(clamp_expiry(requested, min_expires, max_expires), expires_range, u)


def binding_until(saved, granted, grace: float = 0.0, phase: float | None = None):
    """When a binding saved at ``saved`` for ``granted`` seconds stops routing calls: ``saved +
    granted + grace`` on a registrar that keeps time exactly; on one that keeps it in whole seconds
    (``phase`` given) the expiry is the second the save fell in plus the grant: Kamailio's and
    OpenSIPS's usrloc store ``expires`` as a ``time_t`` = ``act_time`` (``time(0)`` when the request
    was read) + expires, and ``VALID_CONTACT(c, t)`` is ``c->expires > t`` with ``t`` the current
    ``time_t``, so the contact is gone at floor(T) + E of the wall clock, up to a second before T + E.
    ``phase`` is the wall clock's fractional second at simulated t = 0 (the epoch is T = t + phase);
    ``saved`` and ``granted`` may be numpy arrays.

    >>> binding_until(10.7, 60.0), binding_until(10.7, 60.0, phase=0.0), binding_until(10.7, 60.0, phase=0.5)
    (70.7, 70.0, 70.5)
    """
    if phase is None:
        return saved + granted + grace
    return np.floor(saved + phase) - phase + granted + grace if isinstance(saved, np.ndarray) else \
        math.floor(saved + phase) - phase + granted + grace


def reported_expiry(granted: float, rule: str = "granted") -> float:
    """The expires the 200 OK tells the phone for its contact. ``granted``: the grant itself;
    ``remaining`` (Asterisk PJSIP, res_pjsip_registrar.c:310 ``hdr->expires =
    ast_tvdiff_ms(contact->expiration_time, ast_tvnow()) / 1000``): the contact's remaining lifetime
    in whole seconds, taken after the save, so a little time has always passed: ceil(granted) − 1
    (E − 1 for a whole-second E)."""
    if rule == "remaining":
        return max(0.0, float(math.ceil(granted) - 1))
    return granted


def retry_after_header(retry_after: float, retry_after_max: float | None, u: float) -> float:
    """The Retry-After an overloaded registrar puts on its 503 (0 = header absent): ``retry_after``,
    or uniform in [retry_after, retry_after_max] when a maximum is set."""
    if retry_after_max is None:
        return retry_after
    return retry_after + (retry_after_max - retry_after) * u


# --------------------------------------------------------------------------- the refresh
def refresh_interval(granted: float, mode: str = "percent", *, percent: float = 90.0, margin: float = 5.0,
                     min_interval: float = 1.0) -> float:
    """Seconds from a successful registration granted ``granted`` to the phone's next refresh.

    >>> refresh_interval(3600.0), refresh_interval(300.0, "margin"), refresh_interval(4.0, "margin")
    (3240.0, 295.0, 2.0)
    """
    if mode == "percent":
        r = granted * percent / 100.0
    elif mode == "margin":
        r = granted - margin if granted > margin else granted / 2.0
    elif mode == "half_or_margin":
        r = max(granted / 2.0, granted - margin)
    else:
        raise ValueError(f"refresh mode must be one of {REFRESH_MODES}, got {mode!r}")
    return max(r, min_interval)


# --------------------------------------------------------------------------- the retry wait
class RetryRuleFields(Protocol):
    """The fields of a retry rule the functions below read (:class:`simsip.config.schema.RetryRule`)."""

    @property
    def mode(self) -> str: ...
    @property
    def interval(self) -> float: ...
    @property
    def first_interval(self) -> float | None: ...
    @property
    def spread(self) -> float: ...
    @property
    def timeout_interval(self) -> float | None: ...
    @property
    def base(self) -> float: ...
    @property
    def max(self) -> float: ...
    @property
    def exponent_offset(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def after_max(self) -> str: ...
    @property
    def long_interval(self) -> float: ...
    @property
    def honour_retry_after(self) -> bool: ...
    @property
    def transport_error_interval(self) -> float | None: ...
    @property
    def honour_restart_timer(self) -> bool: ...
    @property
    def retry_codes(self) -> tuple[int, ...] | None: ...
    @property
    def other_codes(self) -> str: ...
    @property
    def code_waits(self) -> dict[int, float]: ...


def backoff_window(n: int, base: float, max_wait: float, exponent_offset: int = 0) -> float:
    """RFC 5626 §4.5 upper bound W = min(max, base·2^(n + offset)) after n earlier consecutive failures."""
    w = base * 2.0 ** (n + exponent_offset)
    return max_wait if w > max_wait else w


def _code_branch(rule: RetryRuleFields, status: int) -> str | None:
    """Step 0: the branch a failure response's status code decides, or None (the rule goes on)."""
    waits = getattr(rule, "code_waits", None)
    if waits and status in waits:
        return "code_wait"
    codes = getattr(rule, "retry_codes", None)
    if codes is not None and status not in codes:
        return "give_up" if rule.other_codes == "give_up" else "long_interval"
    return None


def _retry_branch(rule: RetryRuleFields, n: int, timeout: bool, transport: bool, status: int = 0) -> str:
    """Which step of the rule decides the wait (see the module docstring)."""
    if status and not timeout and not transport:
        branch = _code_branch(rule, status)
        if branch is not None:
            return branch
    if rule.max_attempts and n + 1 >= rule.max_attempts and (n + 1) % rule.max_attempts == 0:
        return "give_up" if rule.after_max == "give_up" else "long_interval"
    if transport and n == 0 and rule.transport_error_interval is not None:
        return "transport_error_interval"
    if timeout and rule.timeout_interval is not None:
        return "timeout_interval"
    return "backoff" if rule.mode == "backoff" else "fixed"


def retry_wait_draws(rule: RetryRuleFields, n: int, *, timeout: bool = False, transport: bool = False,
                     status: int = 0) -> bool:
    """Does :func:`retry_wait` use its draw ``u`` for this failure (backoff, or a fixed wait with spread)?"""
    branch = _retry_branch(rule, n, timeout, transport, status)
    return branch == "backoff" or (branch == "fixed" and bool(rule.spread))


def retry_wait(rule: RetryRuleFields, n: int, *, timeout: bool = False, transport: bool = False,
               u: float = 0.0, status: int = 0) -> float | None:
    """Seconds to wait after a failure with ``n`` consecutive failures before it; None: give up.

    ``timeout``: the transaction timed out (Timer F); ``transport``: a transport error (TCP reset,
    connection refused or closed); ``status``: the failure response's code (0: none, e.g. a
    timeout); ``u``: a uniform draw in [0, 1), used by backoff and spread.
    """
    branch = _retry_branch(rule, n, timeout, transport, status)
    if branch == "give_up":
        return None
    if branch == "code_wait":
        return rule.code_waits[status]
    if branch == "long_interval":
        return rule.long_interval
    if branch == "transport_error_interval":
        return rule.transport_error_interval
    if branch == "timeout_interval":
        return rule.timeout_interval
    if branch == "backoff":
        return backoff_window(n, rule.base, rule.max, rule.exponent_offset) * (0.5 + 0.5 * u)
    base = rule.first_interval if (n == 0 and rule.first_interval is not None) else rule.interval
    if rule.spread:
        if base < rule.spread:
            return u * rule.spread
        return base + rule.spread * (2.0 * u - 1.0)
    return base


def restart_timer_applies(rule: RetryRuleFields, n: int, restart_timer: float, *, timeout: bool = False,
                          transport: bool = False, server_failure: bool = False) -> bool:
    """Does the draft-shen Restart-Timer replace the wait: the first failure of a server (timeout,
    transport error or 503 = ``server_failure``), a phone that honours it, a timer advertised?"""
    return (n == 0 and rule.honour_restart_timer and restart_timer > 0
            and (timeout or transport or server_failure))


def failure_draws(rule: RetryRuleFields, n: int, *, timeout: bool = False, transport: bool = False,
                  server_failure: bool = False, restart_timer: float = 0.0, status: int = 0) -> tuple[bool, bool]:
    """Which draws :func:`failure_wait` uses, in the order a simulator takes them: (``u``, ``u_restart``)."""
    if _retry_branch(rule, n, timeout, transport, status) == "give_up":
        return (False, False)
    return (retry_wait_draws(rule, n, timeout=timeout, transport=transport, status=status),
            restart_timer_applies(rule, n, restart_timer, timeout=timeout, transport=transport,
                                  server_failure=server_failure))


def failure_wait(rule: RetryRuleFields, n: int, *, timeout: bool = False, transport: bool = False,
                 server_failure: bool = False, restart_timer: float = 0.0, retry_after: float = 0.0,
                 u: float = 0.0, u_restart: float = 0.0, status: int = 0) -> float | None:
    """The whole wait after a failed REGISTER (None: the phone gives up).

    :func:`retry_wait` with draw ``u`` (and the response's ``status``: step 0); then, when :func:`restart_timer_applies`,
    ``u_restart``·Restart-Timer instead; then at least ``retry_after`` (a 503's Retry-After, 0 =
    absent) when the rule honours it.
    """
    wait = retry_wait(rule, n, timeout=timeout, transport=transport, u=u, status=status)
    if wait is None:
        return None
    if restart_timer_applies(rule, n, restart_timer, timeout=timeout, transport=transport,
                             server_failure=server_failure):
        wait = u_restart * restart_timer
    if retry_after > 0 and rule.honour_retry_after and wait < retry_after:
        wait = retry_after
    return wait


# --------------------------------------------------------------------------- flow keep-alives
def keepalive_interval(interval: float, randomize: float, u: float) -> float:
    """RFC 5626 §4.4 keep-alive interval, uniform in [randomize·K, K]: K·(randomize + (1 − randomize)·u).

    ``u`` may also be a numpy array (one interval per phone).
    """
    return interval * (randomize + (1.0 - randomize) * u)


def keepalive_timeout(kind: str, timeout: float | None, timer_f: float) -> float:
    """When a keep-alive ping without an answer fails: the configured timeout, else 10 s for a
    CRLF ping (RFC 5626 §4.4.1) and Timer F for an OPTIONS ping."""
    if timeout is not None:
        return timeout
    return CRLF_PONG_TIMEOUT if kind == "crlf" else timer_f


def contacts_after(held: dict, t: float, contact, limit: int, remove_existing: bool) -> dict | None:
    """The contacts an AOR keeps when a REGISTER at ``t`` adds or refreshes ``contact``, before the
    new one is stored: ``held`` maps each contact to the time it expires (expired ones no longer
    count). Refreshing a contact it already holds never exceeds the limit. One more than ``limit``
    is refused (None) unless ``remove_existing``, which removes the contacts that expire soonest to
    make room. Asterisk res_pjsip_registrar.c ``register_aor_core``: contact_count > max_contacts →
    403, and remove_existing removes the soonest-expiring contacts ("due to remove existing");
    Kamailio registrar save.c: more than max_contacts → R_TOO_MANY (503, reply.c ``codes[]``)."""
    kept = {c: u for c, u in held.items() if u > t}
    if contact in kept or len(kept) + 1 <= limit:
        return kept
    if not remove_existing:
        return None
    for c in sorted(kept, key=lambda c: (kept[c], c))[: len(kept) + 1 - limit]:
        del kept[c]
    return kept


__all__ = ["REFRESH_MODES", "CRLF_PONG_TIMEOUT", "clamp_expiry", "spread_expiry", "grant_expiry", "binding_until",
           "retry_after_header",
           "refresh_interval",
           "RetryRuleFields", "backoff_window", "retry_wait_draws", "retry_wait", "restart_timer_applies",
           "failure_draws", "failure_wait", "keepalive_interval", "keepalive_timeout", "contacts_after"]
