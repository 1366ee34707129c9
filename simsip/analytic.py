"""Closed forms for screening: what a failover costs before a single event is simulated.

The planner (:mod:`simsip.plan`) screens thousands of timer combinations with the formulas below
and simulates only the most promising few. Every formula is the expectation the simulator should
reproduce (``tests/test_analytic.py`` checks them against hand values and against the simulator).

VRRP takeover
-------------
A VRRP backup declares the master dead when it has heard no advertisement for its
Master_Down_Interval (RFC 3768 §6.1 / RFC 5798 §6.1)::

    Skew_Time            = (256 − p) / 256  s          (VRRPv2, advert A in whole seconds)
                         = (256 − p) · A / 256          (VRRPv3, A in centiseconds)
    Master_Down_Interval = down_timer_adverts · A + Skew_Time        (keepalived: 3 adverts)

The master crashes at t0. Its last advert left ψ seconds earlier; in equilibrium the crash
instant is independent of the advert clock, so ψ ~ U(0, A). The backup's down timer was reset by
that advert, so it takes the VIP at t0 + D with D = MDI − ψ and E[D] = MDI − A/2 (adverts delayed
by a constant δ shift D by δ).

Refresh load
------------
A phone granted expiry E refreshes every R = refresh(E) seconds (90 % of E, E − margin, ...).
N phones in equilibrium have independent phases uniform on [0, R): the REGISTER arrivals form a
stationary renewal superposition with rate exactly N/R.

Loss without replication (``data: none``)
-----------------------------------------
The new master holds no binding. A phone whose next refresh is due u ~ U(0, R) after the crash is
unreachable from t0 until a REGISTER of its reaches the new master:

* u + d ≥ D (its refresh arrives after the takeover): recovery r = u + d + S;
* otherwise the refresh was lost on the dead node and RFC 3261 Timer E retransmits it at u + s_k,
  s_0 = 0, s_{k+1} = s_k + min(T1·2^k, T2) while s_k < Timer F; the first copy arriving after the
  takeover is saved: r = u + s_k* + d + S with k* = min{k : u + s_k + d ≥ D};
* if every copy is lost the transaction times out at u + F and the retry rule waits w more
  (fixed interval, or the mean 3/4·W of an RFC 5626 backoff window): r = u + F + w + d + S.

(d is the one-way delay, S the mean service time.) Then
E[recovery] = E_ψ[(1/R) ∫₀ᴿ r(u, MDI − ψ) du], evaluated numerically on a grid of (ψ, u), and the
fault costs N·E[recovery] unreachable phone-seconds; recovery quantiles come from the same grid.

Loss with a shared store (``data: shared``)
------------------------------------------
The new master sees every binding at once: each phone is out exactly while nobody serves the VIP,
so unreachable phone-seconds = N·D per fault with E[D] = MDI − A/2 (replicated data is screened
as shared: its extra loss, the saves in flight at the crash, is λ·lag — negligible here).

The REGISTER storm
------------------
The phones whose refresh fell in [0, D) retransmit into the new master within a few T1 of the
takeover, on top of the steady N/R; the busiest resolution bin is estimated as the largest
expected bin count of those first arrivals plus the steady rate.

TCP/TLS phones that must reconnect
----------------------------------
A binding of a TCP/TLS phone behind NAT (or a rewritten contact) reaches it only over its
connection, which died with the old master; without replication there is no binding anyway. Such
a phone is out until its first keep-alive after the crash (the residual v of its ping renewal
process, intervals U[a·K, K]) or its refresh u meets the new master's reset (or is retransmitted
into it after the takeover D): r = min(max(v, D), max(u, D) + w) + h, with w the wait after a
transport error and h the reconnection (SYN, TLS round trips, the REGISTER). The keep-alive phases
are paired with the refresh phases by a fixed stride (both marginals exact).

Registrar queueing (Erlang C)
-----------------------------
c workers, exponential service with mean 1/μ, Poisson arrivals λ, offered load a = λ/μ < c:
P(wait) = C(c, a) = [aᶜ/c! · c/(c−a)] / [Σ_{k<c} aᵏ/k! + aᶜ/c! · c/(c−a)] and the mean wait in
queue is W_q = C(c, a) / (cμ − λ).

All functions are pure; none draws random numbers. The protocol rules themselves (VRRP timers,
Timer E, the grant, the backoff window, Erlang C) are those of :mod:`simsip.protocols`; the ones
this module has always offered are re-exported under their old names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

# The protocol rules live in simsip.protocols; they are re-exported here under the names this
# module has always had.
from simsip.protocols.queueing import erlang_c, erlang_c_wait, steady_register_rate
from simsip.protocols.registration import backoff_window, grant_expiry, retry_wait
from simsip.protocols.transactions import timer_e_schedule
from simsip.protocols.vrrp import effective_priority, expected_takeover, master_down_interval
from simsip.protocols.vrrp import skew_time as vrrp_skew

if TYPE_CHECKING:  # pragma: no cover
    from simsip.config.schema import Scenario

_U_GRID = 4000
_PSI_GRID = 64


# --------------------------------------------------------------------------- recovery
@dataclass(frozen=True)
class RecoveryGrid:
    """Recovery times r over an equal-weight grid of (advert phase ψ, refresh phase u)."""

    values: np.ndarray  # shape (psi, u)
    takeover: np.ndarray  # D per psi row

    @property
    def mean(self) -> float:
        return float(self.values.mean())


@lru_cache(maxsize=4096)
def _recovery_none(R: float, mdi: float, advert: float, d: float, s: float, schedule: tuple[float, ...],
                   timeout: float, retry_wait: float) -> RecoveryGrid:
    u = (np.arange(_U_GRID) + 0.5) / _U_GRID * R
    psi = (np.arange(_PSI_GRID) + 0.5) / _PSI_GRID * advert
    D = mdi - psi  # (P,)
    sched = np.asarray(schedule)
    arrive = u[None, :, None] + sched[None, None, :] + d  # (1, U, K)
    ok = arrive >= D[:, None, None]  # (P, U, K)
    any_ok = ok.any(axis=2)
    k = ok.argmax(axis=2)
    r = u[None, :] + sched[k] + d
    r = np.where(any_ok, r, u[None, :] + timeout + retry_wait + d)
    return RecoveryGrid(values=r + s, takeover=D)


def expected_recovery_none(R: float, mdi: float, advert_int: float, delay: float = 0.0, service: float = 0.0,
                           schedule: tuple[float, ...] | None = None, timeout: float = 32.0,
                           retry_wait: float = 30.0) -> float:
    """E[recovery] without replication: numeric integral over ψ ~ U(0, A) and u ~ U(0, R)."""
    sched = timer_e_schedule() if schedule is None else tuple(schedule)
    return _recovery_none(float(R), float(mdi), float(advert_int), float(delay), float(service), sched,
                          float(timeout), float(retry_wait)).mean


def keepalive_residual_quantiles(k: float, a: float, q: np.ndarray) -> np.ndarray:
    """Quantiles of the time from an arbitrary instant to the next keep-alive when the intervals are
    uniform in [a·K, K] (a stationary renewal process): the residual life, with density
    P(L > x)/E[L] — uniform on (0, K) when a = 1; mean K(1 + a + a²)/(3(1 + a))."""
    if a >= 1.0:
        return q * k
    x = np.linspace(0.0, k, 4097)
    surv = np.where(x < a * k, 1.0, (k - x) / (k - a * k))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (surv[1:] + surv[:-1]) * np.diff(x))])
    return np.interp(q, cdf / cdf[-1], x)


@lru_cache(maxsize=4096)
def _recovery_reconnect(R: float, mdi: float, advert: float, ka: tuple[float, float] | None, wait: float,
                        handshake: float) -> RecoveryGrid:
    """TCP/TLS phones whose binding the new master cannot use (connection-bound, or none there): a
    phone is reachable again once it reconnects and registers. Its first keep-alive after the crash
    (at the residual v) or its refresh (at u ~ U(0, R)) meets the new master's reset — or, sent
    before the takeover D, is retransmitted by TCP into it: at max(v, D), or max(u, D) plus the
    transport-error wait; then the handshake (SYN, TLS round trips, the REGISTER)."""
    u = (np.arange(_U_GRID) + 0.5) / _U_GRID * R
    psi = (np.arange(_PSI_GRID) + 0.5) / _PSI_GRID * advert
    D = mdi - psi
    r = np.maximum(u[None, :], D[:, None]) + wait
    if ka is not None:  # the keep-alive phases, stratified and paired with u by a fixed stride
        q = (((np.arange(_U_GRID) * 2477) % _U_GRID) + 0.5) / _U_GRID
        v = keepalive_residual_quantiles(ka[0], ka[1], q)
        r = np.minimum(r, np.maximum(v[None, :], D[:, None]))
    return RecoveryGrid(values=r + handshake, takeover=D)


def expected_recovery_shared(mdi: float, advert_int: float, advert_delay: float = 0.0) -> float:
    """E[recovery] with a shared store: the takeover time MDI − A/2."""
    return expected_takeover(mdi, advert_int, advert_delay)


# --------------------------------------------------------------------------- a scenario
def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    c = np.cumsum(w)
    return float(v[min(np.searchsorted(c, q * c[-1]), v.size - 1)])


class NotScreenable(ValueError):
    """The scenario has features the closed forms do not cover (it must be simulated)."""


def screen(cfg: "Scenario") -> dict[str, float]:
    """Closed-form estimates of the headline figures of one scenario (first fault only).

    Covered: equilibrium fleets, ``node_crash`` faults of the VIP master, data none/shared/
    replicated (replicated screened as shared), fixed or backoff retry. Raises
    :class:`NotScreenable` otherwise. Keys match :mod:`simsip.metrics` figure names.
    """
    crash = [f for f in cfg.faults if f.kind == "node_crash"]
    if len(cfg.faults) != len(crash) or not crash:
        raise NotScreenable("screening covers node_crash faults only")
    if any(f.start != "equilibrium" for f in cfg.fleets):
        raise NotScreenable("screening covers fleets in equilibrium only")
    if crash[0].node not in ("master", max(cfg.ha.nodes, key=lambda n: n.priority).name):
        raise NotScreenable("screening covers a crash of the VIP master only")
    vr = cfg.ha.vrrp
    if vr.vip_move != "garp":
        raise NotScreenable("screening covers a VIP moved by GARP only (vip_move: garp)")
    hc = cfg.ha.health_check
    share = hc.contribution(True) if hc is not None else 0  # a weighted check passing at equilibrium
    prios = sorted((effective_priority(n.priority, n.priority + share) for n in cfg.ha.nodes), reverse=True)
    mdi = master_down_interval(vr.version, prios[1], vr.advert_int, vr.down_timer_adverts)
    adv_delay = vr.advert_delay.expected
    t0 = crash[0].at
    reg = cfg.registrar
    d = cfg.network.delay.expected
    s = reg.service_time.expected
    cap = reg.worker_limit / max(s, 1e-12)
    res = cfg.output.resolution
    shared = reg.data in ("shared", "replicated")
    if (reg.max_contacts is not None and not reg.remove_existing and shared
            and any(cfg.connection_bound(fl) for fl in cfg.fleets)):
        raise NotScreenable("a contact limit refusing reconnected TCP/TLS phones (max_contacts without "
                            "remove_existing) is simulated only")

    fleets = []
    for fl in cfg.fleets:
        ph = fl.phone
        # the mean grant: expires_range spreads it uniformly, so take the draw's mean u = 1/2
        granted = grant_expiry(ph.expires, reg.min_expires, reg.max_expires, reg.expires_range, 0.5)
        R = ph.refresh.interval(granted)
        sched = timer_e_schedule(ph.timers.t1, ph.timers.t2, ph.timers.timer_f, ph.timers.max_retransmissions)
        rt = ph.retry
        if rt.mode == "fixed":
            wait = rt.timeout_interval if rt.timeout_interval is not None else (
                rt.first_interval if rt.first_interval is not None else rt.interval)
        else:
            wait = 0.75 * backoff_window(0, rt.base, rt.max, rt.exponent_offset)  # mean of U[W/2, W]
        conn = None
        if ph.transport != "udp" and (cfg.connection_bound(fl) or not shared):
            # the new master cannot use a binding: the phone must reconnect (keep-alive or refresh)
            ka = ph.flow_keepalive
            te = retry_wait(rt, 0, transport=True, u=0.5)
            hs = (4 + 2 * (cfg.network.tcp.tls_rtts if ph.transport == "tls" else 0)) * d + s
            conn = ((float(ka.interval), float(ka.randomize)) if ka.kind != "none" else None,
                    math.inf if te is None else float(te), float(hs))
        fleets.append((float(fl.count), float(R), sched, float(ph.timers.timeout), float(wait), float(ph.calls_per_hour),
                       conn))
    core = _screen_core(tuple(fleets), float(mdi), float(adv_delay), float(vr.advert_int), float(t0),
                        float(cfg.duration), float(d), float(s), float(res), bool(shared))
    out = dict(core)
    rate, peak = out["steady_register_rate"], out["peak_register_rate"]
    out.update({
        "capacity_per_s": cap,
        "steady_load_vs_capacity": rate / cap,
        "registrar_wait_mean": erlang_c_wait(reg.worker_limit, s, rate),
        "master_down_interval": mdi,
        "peak_load_vs_capacity": peak / cap,
    })
    return out


@lru_cache(maxsize=65536)
def _screen_core(fleets: tuple, mdi: float, adv_delay: float, advert: float, t0: float, duration: float,
                 d: float, s: float, res: float, shared: bool) -> tuple:
    """The capacity-independent part of :func:`screen` (cached: plans repeat it for every worker count)."""
    horizon = duration - t0  # recoveries later than this are censored, as in the simulator
    n_total = 0.0
    rate = 0.0
    loss = 0.0
    calls = 0.0
    rows: list[np.ndarray] = []
    wts: list[float] = []
    burst_bins: dict[int, float] = {}
    for N, R, sched, timeout, wait, cph, conn in fleets:
        n_total += N
        rate += steady_register_rate(N, R)
        grid = _recovery_none(R, mdi + adv_delay, advert, d, s, sched, timeout, wait)
        if conn is not None:  # TCP/TLS without a usable binding: until the phone reconnects
            rg = _recovery_reconnect(R, mdi + adv_delay, advert, *conn)
            rows.append(rg.values)
            wts.append(N / rg.values.shape[1])
            r_mean = float(np.minimum(rg.values, horizon).mean())
            loss += N * r_mean
            calls += N * r_mean * cph
            continue
        u = (np.arange(_U_GRID) + 0.5) / _U_GRID * R
        hit_dead = u[None, :] + d < grid.takeover[:, None]
        arr = t0 + grid.values[hit_dead]
        if arr.size:
            b, c = np.unique(np.floor(arr / res).astype(np.int64), return_counts=True)
            for bi, ci in zip(b.tolist(), c.tolist()):
                burst_bins[bi] = burst_bins.get(bi, 0.0) + ci * N / (_U_GRID * _PSI_GRID)
        r = grid.takeover[:, None] if shared else grid.values
        rows.append(r)
        wts.append(N / r.shape[1])
        r_mean = float(np.minimum(r, horizon).mean())
        loss += N * r_mean
        calls += N * r_mean * cph
    # per-replication quantiles: the quantile over phones given the advert phase, averaged over it
    allv = np.concatenate(rows, axis=1)
    allw = np.concatenate([np.full(r.shape[1], w) for r, w in zip(rows, wts)])
    q: dict[float, list[float]] = {0.5: [], 0.95: [], 0.99: []}
    mx: list[float] = []
    if len(rows) == 1:  # equal weights: vectorised over the advert phase
        kept = np.where(allv < horizon, allv, np.nan)
        has = ~np.isnan(kept).all(axis=1)
        if has.any():
            srt = np.sort(kept[has], axis=1)  # NaN last
            cnt = (~np.isnan(srt)).sum(axis=1)
            for k in q:
                idx = np.minimum(np.ceil(k * cnt).astype(int) - 1, cnt - 1).clip(0)
                q[k] = srt[np.arange(srt.shape[0]), idx].tolist()
            mx = srt[np.arange(srt.shape[0]), cnt - 1].tolist()
    for i in range(allv.shape[0] if len(rows) > 1 else 0):
        keep = allv[i] < horizon
        if not keep.any():
            continue
        for k in q:
            q[k].append(_weighted_quantile(allv[i][keep], allw[keep], k))
        mx.append(float(allv[i][keep].max()))
    burst = max(burst_bins.values()) if burst_bins else 0.0
    steady_bin = rate * res
    # expected busiest bin plus one Poisson standard deviation: the max over bins is noisier
    peak = (steady_bin + burst + math.sqrt(steady_bin + burst)) / res
    nan = math.nan
    out = {
        "phones": n_total,
        "steady_register_rate": rate,
        "vip_move_time": expected_takeover(mdi, advert, adv_delay),
        "unreachable_phone_seconds": loss,
        "recovery_mean": loss / n_total,
        "recovery_median": float(np.mean(q[0.5])) if q[0.5] else nan,
        "recovery_p95": float(np.mean(q[0.95])) if q[0.95] else nan,
        "recovery_p99": float(np.mean(q[0.99])) if q[0.99] else nan,
        "recovery_max": float(np.mean(mx)) if mx else nan,
        "peak_register_rate": peak,
        "calls_failed_expected": calls,
    }
    return tuple(out.items())


__all__ = [
    "vrrp_skew", "master_down_interval", "expected_takeover", "timer_e_schedule", "steady_register_rate",
    "erlang_c", "erlang_c_wait", "RecoveryGrid", "expected_recovery_none", "expected_recovery_shared",
    "NotScreenable", "screen", "SCREENED_FIGURES",
]

SCREENED_FIGURES = (
    "steady_register_rate", "capacity_per_s", "vip_move_time", "unreachable_phone_seconds", "recovery_mean",
    "recovery_median", "recovery_p95", "recovery_p99", "recovery_max", "peak_register_rate",
    "peak_load_vs_capacity", "calls_failed_expected",
)
