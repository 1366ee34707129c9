"""Registration loss, computed after the run from the records.

*Reachable*: a phone is reachable at time t when the node that serves calls to the VIP at t (the
VRRP master the ingress's ARP entry leads to, and that is up) holds a binding for it that has not
expired. This is what decides whether an incoming call finds the phone, and it is what the lab's
prober measures. *Registered* is the phone's own belief: it got a 200 whose expiry has not passed
and its last attempt did not fail.

From the binding saves of every store and the serving timeline we build, per phone, the intervals
during which it was reachable; their complement within the run are its *outages*. After each
disturbance (a fault, or a repair that moves the VIP back), a phone's *recovery time* is the end of
its first outage that starts in the disturbance's window, minus the disturbance time.
Failed inbound calls are drawn after the run: calls to a phone are a Poisson process, so the
number that land in its unreachable time is Poisson with mean rate × unreachable seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from simsip import faults as fault_table
from simsip.config.schema import Scenario
from simsip.engine.records import RunLog
from simsip.memory import release
from simsip.tables import FAULTS, OUTAGES, RECOVERY, TIMESERIES, TRUNK_OUTAGES, VIP


@dataclass
class RepMetrics:
    """Tables and headline figures of one replication (tables as declared in :mod:`simsip.tables`)."""

    replication: int
    timeseries: pd.DataFrame
    outages: pd.DataFrame
    recovery: pd.DataFrame
    faults: pd.DataFrame
    vip: pd.DataFrame
    figures: dict[str, float]
    counters: dict[str, int]
    trunk_outages: pd.DataFrame = field(default_factory=TRUNK_OUTAGES.empty)
    storm: dict[str, dict[str, float]] = field(default_factory=dict)  # :func:`storm_figures` per node
    engine: dict = field(default_factory=dict)  # how it was simulated (bulk refreshes, fallbacks)


def _stable_order(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for phone or slot numbers (int64): the same permutation
    (a stable sort has one), from two stable radix passes over the 16-bit halves of the keys when
    they are many, in [0, 2**32) and far from sorted; timsort otherwise (it is linear on the few
    sorted runs a log mostly is)."""
    n = keys.size
    if n < 20_000 or keys.dtype.kind != "i":
        return np.argsort(keys, kind="stable")
    if np.count_nonzero(keys[1:] < keys[:-1]) < n // 64 or int(keys.min()) < 0 or int(keys.max()) >= 1 << 32:
        return np.argsort(keys, kind="stable")
    low = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    return low[np.argsort((keys[low] >> 16).astype(np.uint16), kind="stable")]


def _sorted_saves(log):
    """A store's saves sorted by phone, then time, then save order (computed once per run log)."""
    cached = getattr(log, "sorted_cache", None)
    if cached is not None:
        return cached
    t = np.frombuffer(log.t, dtype=np.float64) if len(log.t) else np.zeros(0)
    p = np.frombuffer(log.phone, dtype=np.int64) if len(log.phone) else np.zeros(0, dtype=np.int64)
    u = np.frombuffer(log.until, dtype=np.float64) if len(log.until) else np.zeros(0)
    # saves are appended in time order but for the few a fast path applies late: a stable sort by
    # phone alone is then the (phone, time, save order) order; else the full sort
    order = _stable_order(p)
    ps, ts = p[order], t[order]
    if not _sorted_by(ps, ts):
        order = np.lexsort((t, p))  # lexsort is stable: equal (phone, time) keep their save order
        ps, ts = p[order], t[order]
    out = (ps, ts, u[order])
    try:
        log.sorted_cache = out
    except AttributeError:  # a log object without the cache slot
        pass
    return out


def _store_segments(log, horizon: float, purge_interval: float | None = None, with_until: bool = False):
    """(phone, start, end) of every binding lifetime in one store, cut by replacement and clears.

    Without ``purge_interval`` a binding ends when it stops routing calls (its ``until``); with it,
    when the registrar's periodic timer (ticks at multiples of the interval) removes it from memory.
    """
    p, t, u = _sorted_saves(log)
    if purge_interval:
        u = np.ceil(u / purge_interval) * purge_interval
    if t.size == 0:
        return (p, t, u, u) if with_until else (p, t, u)
    end = u.copy()
    same = p[1:] == p[:-1]
    nxt = np.where(same, t[1:], np.inf)
    end[:-1] = np.minimum(end[:-1], nxt)
    if log.clears:
        clears = np.sort(np.asarray(log.clears, dtype=np.float64))
        k = np.searchsorted(clears, t, side="right")
        first_clear = np.where(k < clears.size, clears[np.minimum(k, clears.size - 1)], np.inf)
        end = np.minimum(end, first_clear)
    end = np.minimum(end, horizon)
    keep = end > t
    if with_until:
        return p[keep], t[keep], end[keep], u[keep]
    return p[keep], t[keep], end[keep]


def serving_intervals(log: RunLog) -> list[tuple[float, float, int]]:
    """[(start, end, node)] during which ``node`` serves the VIP (node -1: nobody)."""
    out = []
    changes = sorted(log.serving, key=lambda x: x[0])
    # keep the last change at any given instant
    dedup: list[tuple[float, int]] = []
    for t, n in changes:
        if dedup and dedup[-1][0] == t:
            dedup[-1] = (t, n)
        else:
            dedup.append((t, n))
    for i, (t, n) in enumerate(dedup):
        end = dedup[i + 1][0] if i + 1 < len(dedup) else log.horizon
        if end > t:
            out.append((t, min(end, log.horizon), n))
    return out


def availability_intervals(log: RunLog) -> list[list[tuple[float, float]]]:
    """Per node, the [(start, end)] during which its registrar was available (up, linked, answering)."""
    n = len(log.node_names)
    changes = getattr(log, "availability", None)
    if not changes:
        return [[(0.0, log.horizon)] for _ in range(n)]
    state: dict[int, list[tuple[float, bool]]] = {i: [] for i in range(n)}
    for t, node, up in sorted(changes, key=lambda x: x[0]):  # stable: the last change at an instant wins
        seq = state[node]
        if seq and seq[-1][0] == t:
            seq[-1] = (t, up)
        else:
            seq.append((t, up))
    out = []
    for i in range(n):
        seq, iv = state[i], []
        for k, (t, up) in enumerate(seq):
            end = seq[k + 1][0] if k + 1 < len(seq) else log.horizon
            if up and end > t:
                if iv and iv[-1][1] >= t:
                    iv[-1] = (iv[-1][0], min(end, log.horizon))
                else:
                    iv.append((t, min(end, log.horizon)))
        out.append(iv)
    return out


def dns_lookup_intervals(log: RunLog, targets: list[int]) -> list[tuple[float, float, int]]:
    """[(start, end, node)]: the first available node of ``targets`` (a proxy resolving DNS), -1: none."""
    avail = availability_intervals(log)
    cuts = sorted({0.0, log.horizon} | {t for iv in avail for a, b in iv for t in (a, b) if 0.0 <= t <= log.horizon})
    out: list[tuple[float, float, int]] = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        if b <= a:
            continue
        mid = 0.5 * (a + b)
        node = next((n for n in targets if any(x <= mid < y for x, y in avail[n])), -1)
        if out and out[-1][2] == node and out[-1][1] == a:
            out[-1] = (out[-1][0], b, node)
        else:
            out.append((a, b, node))
    return out


def connection_spans(conns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per connection id: the node that holds it, from when, until when — the phone's first close
    of it, or the first stop of that node's registrar process after it opened."""
    node = np.frombuffer(conns.node, dtype=np.int64) if len(conns.node) else np.zeros(0, dtype=np.int64)
    t0 = np.frombuffer(conns.t0, dtype=np.float64) if len(conns.t0) else np.zeros(0)
    end = np.full(t0.size, np.inf)
    if len(conns.close_cid):
        np.minimum.at(end, np.frombuffer(conns.close_cid, dtype=np.int64), np.frombuffer(conns.close_t, dtype=np.float64))
    for n in set(node.tolist()):
        stops = np.sort([t for t, k in conns.stops if k == n])
        if stops.size:
            sel = node == n
            k = np.searchsorted(stops, t0[sel], side="left")
            end[sel] = np.minimum(end[sel], np.where(k < stops.size, stops[np.minimum(k, stops.size - 1)], np.inf))
    return node, t0, end


def _bound_connection(conns, p: np.ndarray, until: np.ndarray) -> np.ndarray:
    """The connection each binding (slot p, valid until) was registered over; -1 for a binding of
    a connection-bound slot without one (e.g. re-armed from storage), -2 for other slots."""
    out = np.full(p.size, -2, dtype=np.int64)
    bound = conns.bound[p] if p.size else np.zeros(0, dtype=bool)
    if not bound.any():
        return out
    saved = pd.DataFrame({"p": np.frombuffer(conns.saved_phone, dtype=np.int64) if len(conns.saved_phone) else [],
                          "u": np.frombuffer(conns.saved_until, dtype=np.float64) if len(conns.saved_until) else [],
                          "cid": np.frombuffer(conns.saved_cid, dtype=np.int64) if len(conns.saved_cid) else []})
    saved = saved.drop_duplicates(["p", "u"], keep="last")
    idx = pd.MultiIndex.from_arrays([saved["p"].to_numpy(dtype=np.int64), saved["u"].to_numpy(dtype=np.float64)])
    k = idx.get_indexer(pd.MultiIndex.from_arrays([p[bound], until[bound]]))
    cids = saved["cid"].to_numpy(dtype=np.int64)
    out[bound] = np.where(k >= 0, cids[np.maximum(k, 0)], -1)
    return out


def reachable_intervals(log: RunLog, lookup: str = "vip", dns_targets: list[int] | None = None,
                        connections: bool = True, segments: list | None = None):
    """Per-phone reachable intervals (phone, start, end), sorted by phone then start, merged.

    ``lookup`` (``calls.lookup``): ``vip`` — the binding must be on the node serving the VIP;
    ``any_node`` — on any node while its registrar is available; ``dns`` — on the first available
    node of ``dns_targets``. A second registration's binding (dual registration, a slot numbered
    after the phones) counts for its phone.

    A connection-bound binding (``Scenario.connection_bound``: TCP/TLS behind NAT, or a rewritten
    contact; the run log's ``conns``) reaches its phone only while that node also holds the
    connection the binding was registered over: a new master with a replicated or shared binding
    has none until the phone reconnects and registers again. ``connections=False`` ignores that
    rule (what the loss would be if the node could open a connection to the phone).
    ``segments``: each store's ``_store_segments(store, horizon, with_until=True)`` when the caller
    has them already.
    """
    conns = getattr(log, "conns", None) if connections else None
    if conns is not None:
        cnode, ct0, cend = connection_spans(conns)
        segs = []
        for k, st in enumerate(log.stores):
            p, s, e, u = segments[k] if segments is not None else _store_segments(st, log.horizon, with_until=True)
            segs.append((p, s, e, _bound_connection(conns, p, u)))
    elif segments is not None:
        segs = [_merge_touching(p, s, e) for p, s, e, _ in segments]
    else:
        segs = [_merge_touching(*_store_segments(s, log.horizon)) for s in log.stores]
    if lookup == "any_node":
        windows = [(a, b, node) for node, iv in enumerate(availability_intervals(log)) for a, b in iv]
    elif lookup == "dns":
        windows = dns_lookup_intervals(log, list(dns_targets or []))
    else:
        windows = serving_intervals(log)
    ps, ss, es = [], [], []
    for a, b, node in windows:
        if node < 0:
            continue
        seg = segs[log.store_of_node[node]]
        p, s, e = seg[:3]
        s2 = np.maximum(s, a)
        e2 = np.minimum(e, b)
        if conns is not None:  # a bound binding: only while this node holds its connection
            cid = seg[3]
            bound = cid >= -1
            c = np.maximum(cid, 0)
            held = (cid >= 0) & (cnode[c] == node) if cnode.size else np.zeros(cid.size, dtype=bool)
            s2 = np.where(bound, np.maximum(s2, ct0[c] if ct0.size else 0.0), s2)
            e2 = np.where(bound, np.where(held, np.minimum(e2, cend[c] if cend.size else 0.0), s2), e2)
        k = e2 > s2
        ps.append(p[k])
        ss.append(s2[k])
        es.append(e2[k])
    if not ps:
        z = np.zeros(0)
        return np.zeros(0, dtype=np.int64), z, z
    p = _to_phone(log, np.concatenate(ps))
    s = np.concatenate(ss)
    e = np.concatenate(es)
    return _merge_per_phone(p, s, e, log.horizon)  # sorts by phone, then start


def _merge_touching(p: np.ndarray, s: np.ndarray, e: np.ndarray):
    """One store's segments (sorted by phone, then start; a phone's never overlap) with every chain
    in which a segment starts where the one before ended joined into one: the same union, and the
    same :func:`count_at` (ends are exclusive), from far fewer rows — a phone that refreshes before
    its binding expires is one segment however many refreshes it made."""
    if p.size < 2:
        return p, s, e
    new = np.ones(p.size, dtype=bool)
    new[1:] = (p[1:] != p[:-1]) | (s[1:] != e[:-1])
    if new.all():
        return p, s, e
    idx = np.flatnonzero(new)
    last = np.r_[idx[1:] - 1, p.size - 1]
    return p[idx], s[idx], e[last]


def _to_phone(log: RunLog, slots: np.ndarray) -> np.ndarray:
    """Phone of each registration slot (slots past the phones are dual registrations)."""
    owner = getattr(log, "slot_owner", None)
    return slots if owner is None or slots.size == 0 else owner[slots]


def call_lookup(cfg: Scenario, log: RunLog) -> tuple[str, list[int]]:
    """``calls.lookup`` and, for ``dns``, the proxy's target order (SRV by priority, then weight)."""
    lookup = cfg.calls.lookup
    names = list(log.node_names)
    if lookup != "dns":
        return lookup, []
    if cfg.dns.srv:
        recs = sorted(enumerate(cfg.dns.srv), key=lambda x: (x[1].priority, -x[1].weight, x[0]))
        order = [names.index(r.target) for _, r in recs]
    else:
        order = [names.index(a) for a in cfg.dns.a]
    return lookup, list(dict.fromkeys(order))


def _group_cummax(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Running maximum of ``values`` restarting at each new group (``groups`` sorted).

    A doubling scan (Hillis–Steele): after the step with shift k every element holds the maximum
    of the up to 2k elements of its group ending at it, so ⌈log2(longest group)⌉ vectorised steps
    give the exact running maximum (a phone has a handful of intervals: two or three steps)."""
    out = np.array(values, dtype=np.float64, copy=True)
    n = out.size
    if n < 2:
        return out
    new = np.ones(n, dtype=bool)
    new[1:] = groups[1:] != groups[:-1]
    starts = np.flatnonzero(new)
    start_of = np.repeat(starts, np.diff(np.r_[starts, n]))
    longest = int(np.diff(np.r_[starts, n]).max())
    pos = np.arange(n)
    k = 1
    while k < longest:
        i = np.flatnonzero(pos - k >= start_of)  # elements with a group member k before them
        out[i] = np.maximum(out[i], out[i - k])
        k *= 2
    return out


def _sorted_by(p: np.ndarray, s: np.ndarray) -> bool:
    """Whether the rows are sorted by ``p``, then ``s``."""
    if p.size < 2:
        return True
    dp = p[1:] - p[:-1] if p.dtype.kind in "iu" else None
    if dp is None:
        return False
    return bool(np.all((dp > 0) | ((dp == 0) & (s[1:] >= s[:-1]))))


def _merge_per_phone(p: np.ndarray, s: np.ndarray, e: np.ndarray, horizon: float):
    """Union of intervals per phone (inputs in any order)."""
    if p.size == 0:
        return p, s, e
    if not _sorted_by(p, s):  # one linear check saves a sort of inputs already in order
        # inputs are mostly runs already sorted by start (a store's segments, window by window in
        # time order): a stable sort by phone alone (a merge of the runs) is then enough
        order = _stable_order(p)
        ps, ss = p[order], s[order]
        if not _sorted_by(ps, ss):
            order = np.lexsort((s, p))
            ps, ss = p[order], s[order]
        p, s, e = ps, ss, e[order]
    run_end = _group_cummax(p, e)  # running max of end within each phone (exact)
    new = np.ones(p.size, dtype=bool)
    new[1:] = (p[1:] != p[:-1]) | (s[1:] > run_end[:-1])
    idx = np.flatnonzero(new)
    last = np.r_[idx[1:] - 1, p.size - 1]
    return p[idx], s[idx], run_end[last]


def divergent_intervals(a, b, horizon: float):
    """Per phone, the times two stores both hold a valid binding with different expiries."""
    pa, sa, ea, ua = a
    pb, sb, eb, ub = b
    if pa.size == 0 or pb.size == 0:
        z = np.zeros(0)
        return np.zeros(0, dtype=np.int64), z, z
    tmin = min(float(sa.min()), float(sb.min()))
    span = (horizon - tmin) + 1.0
    ka_s, ka_e = pa * span + (sa - tmin), pa * span + (ea - tmin)
    kb_s, kb_e = pb * span + (sb - tmin), pb * span + (eb - tmin)
    lo = np.searchsorted(kb_e, ka_s, side="right")  # first B segment ending after A starts
    hi = np.searchsorted(kb_s, ka_e, side="left")  # B segments starting before A ends
    cnt = np.clip(hi - lo, 0, None)
    if cnt.sum() == 0:
        z = np.zeros(0)
        return np.zeros(0, dtype=np.int64), z, z
    ia = np.repeat(np.arange(pa.size), cnt)
    first = np.repeat(lo, cnt)
    within = np.arange(ia.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    ib = first + within
    same_phone = pa[ia] == pb[ib]
    differ = np.abs(ua[ia] - ub[ib]) > 1e-9
    k = same_phone & differ
    ia, ib = ia[k], ib[k]
    s = np.maximum(sa[ia], sb[ib])
    e = np.minimum(ea[ia], eb[ib])
    m = e > s
    return _merge_per_phone(pa[ia][m], s[m], e[m], horizon)


def outages_from(p: np.ndarray, s: np.ndarray, e: np.ndarray, n_phones: int, horizon: float):
    """Complement of the reachable intervals within [0, horizon): (phone, start, end), end NaN if open."""
    op, os_, oe = [], [], []
    if p.size:
        first = np.ones(p.size, dtype=bool)
        first[1:] = p[1:] != p[:-1]
        lastm = np.ones(p.size, dtype=bool)
        lastm[:-1] = p[1:] != p[:-1]
        # before the first interval
        k = first & (s > 0)
        op.append(p[k]); os_.append(np.zeros(k.sum())); oe.append(s[k])
        # between intervals
        k = ~first
        gp, gs, ge = p[k], e[np.flatnonzero(k) - 1], s[k]
        m = ge > gs
        op.append(gp[m]); os_.append(gs[m]); oe.append(ge[m])
        # after the last
        k = lastm & (e < horizon)
        op.append(p[k]); os_.append(e[k]); oe.append(np.full(k.sum(), np.nan))
    seen = np.zeros(n_phones, dtype=bool)
    seen[p] = True
    never = np.flatnonzero(~seen)
    op.append(never); os_.append(np.zeros(never.size)); oe.append(np.full(never.size, np.nan))
    P = np.concatenate(op).astype(np.int64)
    S = np.concatenate(os_)
    E = np.concatenate(oe)
    order = np.lexsort((S, P))
    return P[order], S[order], E[order]


def count_at(starts: np.ndarray, ends: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Number of intervals [start, end) covering each grid time (``grid`` ascending).

    #starts ≤ g − #ends ≤ g, counted without sorting the intervals: each start is placed at the
    first grid time at or after it (a binary search in the short grid) and the placements are
    summed up the grid."""
    n = grid.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)

    g0 = float(grid[0])
    step = float(grid[-1] - grid[0]) / (n - 1) if n > 1 else 1.0

    def at_or_before(x: np.ndarray) -> np.ndarray:
        # first grid time ≥ x: estimated from the grid's step, then corrected against the grid
        # itself until exact (a regular grid needs at most one correction)
        k = np.clip(np.ceil((x - g0) / step), 0, n).astype(np.int64) if step > 0 else np.zeros(x.size, np.int64)
        for _ in range(3):
            down = (k > 0) & (grid[np.maximum(k - 1, 0)] >= x)
            up = (k < n) & (grid[np.minimum(k, n - 1)] < x)
            if not (down.any() or up.any()):
                break
            k = k - down + up
        else:  # an irregular grid: a binary search each
            k = np.searchsorted(grid, x, side="left")
        return np.cumsum(np.bincount(k, minlength=n + 1)[:n])

    return at_or_before(np.asarray(starts, dtype=np.float64)) - at_or_before(np.asarray(ends, dtype=np.float64))


def vrrp_masters(changes, grid: np.ndarray) -> np.ndarray:
    """How many VRRP instances are master at each grid time, from the (time, node, state)
    transitions (the last one at or before the grid time counts; at one instant, the later in
    the log)."""
    masters = np.zeros(grid.size, dtype=np.int64)
    if not changes:
        return masters
    changes = sorted(changes, key=lambda x: x[0])  # stable: a node's changes at one instant keep their order
    state: dict[str, str] = {}
    was = 0
    times, counts = [], []
    for t, node, st in changes:  # the count after each change
        state[node] = st
        now = sum(1 for v in state.values() if v == "master")
        if now != was or not times:
            times.append(t)
            counts.append(now)
            was = now
    # each grid time takes the count after the last change at or before it
    k = np.searchsorted(np.asarray(times, dtype=np.float64), grid, side="right") - 1
    return np.where(k >= 0, np.asarray(counts, dtype=np.int64)[np.maximum(k, 0)], 0)


def registered_intervals(log: RunLog) -> tuple[np.ndarray, np.ndarray]:
    t = np.frombuffer(log.ph_t, dtype=np.float64)
    p = np.frombuffer(log.ph_p, dtype=np.int64)
    v = np.frombuffer(log.ph_v, dtype=np.float64)
    if t.size == 0:
        return np.zeros(0), np.zeros(0)
    if getattr(log, "outcomes_ordered", False):  # folded: each phone's rows are in time order already
        order = np.argsort(p, kind="stable")
    else:
        order = np.lexsort((np.arange(t.size), t, p))
    t, p, v = t[order], p[order], v[order]
    nxt = np.full(t.size, np.inf)
    same = p[1:] == p[:-1]
    nxt[:-1] = np.where(same, t[1:], np.inf)
    ok = v > 0
    start = t[ok]
    end = np.minimum(np.minimum(v[ok], nxt[ok]), math.inf)
    if getattr(log, "slot_owner", None) is not None:  # dual registration: registered on either
        _, start, end = _merge_per_phone(_to_phone(log, p[ok]), start, end, log.horizon)
    return start, end


def _q(x: np.ndarray, q: float) -> float:
    return float(np.quantile(x, q)) if x.size else float("nan")


def km_survival(times: np.ndarray, censor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier (product-limit) estimate of P(recovery time > t).

    ``times`` are recovery times, NaN for a phone not recovered by the run end; ``censor`` is, per
    phone, the time from its disturbance to the run end (where a NaN is censored). Returns the
    distinct recovery times and the survival just after each.
    """
    t = np.asarray(times, dtype=float)
    c = np.asarray(censor, dtype=float)
    obs = ~np.isnan(t)
    x = np.where(obs, t, c)
    if x.size == 0:
        return np.zeros(0), np.zeros(0)
    # at a tie an event comes before a censoring (the usual convention)
    order = np.lexsort((~obs, x))
    x, obs = x[order], obs[order]
    at_risk = x.size - np.arange(x.size)
    ev_t, first = np.unique(x[obs], return_index=True) if obs.any() else (np.zeros(0), np.zeros(0, dtype=int))
    if ev_t.size == 0:
        return ev_t, np.zeros(0)
    idx = np.flatnonzero(obs)
    d = np.bincount(np.searchsorted(ev_t, x[idx]), minlength=ev_t.size)
    n_risk = at_risk[idx[np.r_[0, np.cumsum(d)[:-1]]]]
    return ev_t, np.cumprod(1.0 - d / n_risk)


def km_quantile(times: np.ndarray, censor: np.ndarray, q: float) -> float:
    """The q-quantile of recovery time accounting for phones not recovered by the run end.

    With no censored phone this is the ordinary sample quantile (``numpy.quantile``, linear);
    otherwise the Kaplan–Meier quantile, the first time the estimated share still unrecovered
    falls to 1 - q or below; ``inf`` when it never does within the run ("> run end"). NaN when no
    phone was affected.
    """
    t = np.asarray(times, dtype=float)
    if t.size == 0:
        return math.nan
    if not np.isnan(t).any():
        return float(np.quantile(t, q))
    ev_t, surv = km_survival(t, censor)
    k = np.flatnonzero(surv <= 1.0 - q + 1e-12)
    return float(ev_t[k[0]]) if k.size else math.inf


def recovery_figures(times: np.ndarray, censor: np.ndarray) -> dict[str, float]:
    """Recovery figures of one replication; a phone not recovered by the run end is censored.

    Quantiles are Kaplan–Meier (:func:`km_quantile`); the mean and the maximum are only known when
    every affected phone recovered, else they are ``inf`` (more than the run shows).
    """
    t = np.asarray(times, dtype=float)
    done = t[~np.isnan(t)]
    cens = int(np.isnan(t).sum())
    out = {"phones_affected": float(t.size), "phones_not_recovered": float(cens),
           "phones_not_recovered_share": cens / t.size if t.size else math.nan}
    if t.size == 0:
        out.update(recovery_mean=math.nan, recovery_median=math.nan, recovery_p95=math.nan, recovery_p99=math.nan,
                   recovery_max=math.nan)
        return out
    out["recovery_mean"] = float(done.mean()) if cens == 0 else math.inf
    out["recovery_median"] = km_quantile(t, censor, 0.5)
    out["recovery_p95"] = km_quantile(t, censor, 0.95)
    out["recovery_p99"] = km_quantile(t, censor, 0.99)
    out["recovery_max"] = float(done.max()) if cens == 0 else math.inf
    return out


def _recovery_table(disturb, dt, op, os_, oe, H, replication, fleet_names, fleet_of, table: bool = True):
    """The recovery table, and the recovery times after faults (not repairs) with their censoring
    times: each outage belongs to the last disturbance at or before its start (one pass: linear in
    the outages and the disturbances); a phone's recovery is the end of its first such outage."""
    fr, fcens = np.zeros(0), np.zeros(0)
    if not (dt.size and op.size):
        return RECOVERY.empty(), fr, fcens
    di = np.searchsorted(dt, os_, side="right") - 1
    # several disturbances at one instant: the window belongs to the last of them
    keep = di >= 0
    order = np.lexsort((os_[keep], op[keep], di[keep]))
    sel = np.flatnonzero(keep)[order]
    del keep, order
    dsel, psel = di[sel], op[sel]
    del di
    first = np.ones(sel.size, dtype=bool)
    first[1:] = (dsel[1:] != dsel[:-1]) | (psel[1:] != psel[:-1])
    sel, dsel = sel[first], dsel[first]
    del first, psel
    if not sel.size:
        return RECOVERY.empty(), fr, fcens
    causes = np.array([d[1] for d in disturb], dtype=object)
    fidx = np.array([d[2] for d in disturb], dtype=np.int64)
    rtime = oe[sel] - dt[dsel]
    is_fault = np.array([d[1] == "fault" for d in disturb], dtype=bool)[dsel]
    fr, fcens = rtime[is_fault], H - dt[dsel][is_fault]
    del is_fault
    if not table:
        return RECOVERY.empty(), fr, fcens
    phones = op[sel]
    del sel
    table = RECOVERY.conform({
        "replication": np.full(dsel.size, replication, dtype=np.int64), "disturbance": dsel,
        "cause": causes[dsel], "fault": fidx[dsel], "time": dt[dsel], "phone": phones,
        "fleet": fleet_names[fleet_of[phones]], "recovery_time": rtime,
    })
    return table, fr, fcens


def compute(cfg: Scenario, log: RunLog, replication: int, calls_rng: np.random.Generator,
            per_phone: bool = True, tables: bool = True) -> RepMetrics:
    """One replication's tables and headline figures from its run log. ``per_phone=False`` leaves
    the per-phone tables (outages, recovery) empty and computes every figure all the same (a
    sweep or a plan keeps only the figures). ``tables=False`` (implies ``per_phone=False``) builds
    no table at all — every table empty, no ``storm`` figures — and only what the headline figures
    and counters need, computed by the same code as with the tables."""
    per_phone = per_phone and tables
    if tables and getattr(log, "figures_only", False):
        raise ValueError("metrics.compute: this run log holds only what the figures read (no phone outcomes, "
                         "partial time-series bins: Model(..., figures_only=True)): only its figures can be "
                         "computed (tables=False)")
    H = log.horizon
    res = log.res
    n = cfg.phones
    fleet_of = np.repeat(np.arange(len(cfg.fleets)), [f.count for f in cfg.fleets])
    fleet_names = np.array([f.name for f in cfg.fleets])
    lookup, dns_targets = call_lookup(cfg, log)
    big = sum(len(st.t) for st in log.stores) + len(log.ph_t) > 2_000_000
    # each store's binding lifetimes (with their expiries), for the reachable intervals and the
    # conflicts: computed once, except in a big run (there each use makes them again, so that they
    # are not all held at the peak)
    store_segs = None if big else [_store_segments(st, H, with_until=True) for st in log.stores]
    rp, rs, re_ = reachable_intervals(log, lookup, dns_targets, segments=store_segs)
    if big:
        release()  # the sorts behind them are freed (simsip.memory)
    grid = np.arange(0.0, H - 1e-9, res)  # samples in [0, H)
    reach = count_at(rs, re_, grid)
    no_conn = None
    if getattr(log, "conns", None) is not None:  # what the connection rule takes away
        _, ws, we = reachable_intervals(log, lookup, dns_targets, connections=False, segments=store_segs)
        held = count_at(ws, we, grid)  # a binding on the serving node, with or without the connection
        no_conn = (held - reach, float((we - ws).sum() - (re_ - rs).sum()))
    if tables:
        reg_s, reg_e = registered_intervals(log)
        registered = count_at(reg_s, reg_e, grid)
    else:  # a timeseries column only
        registered = np.zeros(0, dtype=np.int64)
    ts = {"replication": replication, "time": grid, "registered": registered, "reachable": reach}
    if no_conn is not None:
        ts["no_connection"] = no_conn[0]
    nb = grid.size
    for name, b in sorted(log.bins.items()):
        v = np.asarray(b.v[:nb], dtype=np.int64)
        if v.size < nb:
            v = np.r_[v, np.zeros(nb - v.size, dtype=np.int64)]
        ts[name] = v
    # registration conflicts (only possible with a store per node): a phone whose binding sits on
    # a node other than the serving one (and not on the serving one), or two nodes holding
    # different bindings for it (split brain, lost replication)
    serving = serving_intervals(log)
    if len(log.stores) > 1:
        segs = store_segs if store_segs is not None else [_store_segments(st, H, with_until=True) for st in log.stores]
        joined = [_merge_touching(x[0], x[1], x[2]) for x in segs]  # the union needs no per-save expiry
        up, us, ue = _merge_per_phone(
            _to_phone(log, np.concatenate([x[0] for x in joined])), np.concatenate([np.maximum(x[1], 0.0) for x in joined]),
            np.concatenate([x[2] for x in joined]), H,
        )
        union = count_at(us, ue, grid)
        served = np.zeros(nb, dtype=bool)
        for a, b, node in serving:
            if node >= 0:
                served |= (grid >= a) & (grid < b)
        # (a binding on the serving node without its phone's connection is not misplaced: no_connection)
        misplaced = np.where(served, union - (reach if no_conn is None else held), 0)
        div = np.zeros(nb, dtype=np.int64)
        for i in range(len(segs)):
            for j in range(i + 1, len(segs)):
                dp, ds, de = divergent_intervals(segs[i], segs[j], H)
                div += count_at(ds, de, grid)
        ts["conflicts_misplaced"] = misplaced
        ts["conflicts_divergent"] = div
        ts["conflicts"] = np.minimum(misplaced + div, n)
    else:
        ts["conflicts"] = np.zeros(nb, dtype=np.int64)
    masters = vrrp_masters(log.vrrp, grid)
    ts["vrrp_masters"] = masters
    # bindings held in memory per store (expired ones stay until the registrar's purge timer)
    for si, st in enumerate(log.stores if tables else ()):
        _, bs, be = _merge_touching(*_store_segments(st, H, cfg.registrar.removal_interval))
        label = "shared" if cfg.registrar.data == "shared" else log.node_names[log.store_of_node.index(si)]
        ts[f"bindings_{label}"] = count_at(bs, be, grid)
    for st in log.stores:  # every use of the sorted saves is behind us
        if getattr(st, "sorted_cache", None) is not None:
            st.sorted_cache = None
    if tables:
        owner = np.full(nb, "", dtype=object)
        for a, b, node in serving:
            k = (grid >= a) & (grid < b)
            owner[k] = log.node_names[node] if node >= 0 else ""
        ts["vip_node"] = owner
        timeseries = TIMESERIES.conform(ts)
    else:
        timeseries = TIMESERIES.empty()
    if big:
        release()  # before the per-phone tables, the largest allocations of all

    op, os_, oe = outages_from(rp, rs, re_, n, H)
    del rp, rs, re_
    dur = np.where(np.isnan(oe), H - os_, oe - os_)
    outages = OUTAGES.empty() if not per_phone else OUTAGES.conform(
        {
            "replication": np.full(op.size, replication, dtype=np.int64),
            "phone": op,
            "fleet": fleet_names[fleet_of[op]] if op.size else np.array([], dtype=object),
            "start": os_,
            "end": oe,
            "duration": dur,
        }
    )

    # disturbances: faults and the repairs that follow them
    # (time, cause, fault index, node, kind, seconds until repaired)
    # (a fault that only arms a later effect, faults.KINDS[...].arms, is none: it shows under the one it acts in)
    disturb = [(f.time, "fault", f.index, f.node, f.kind,
                f.repair_time - f.time if f.repair_time is not None else math.nan) for f in log.faults
               if not fault_table.kind(f.kind).arms]
    disturb += [(t, "repair", -1, node, kind, math.nan) for t, node, kind in log.repairs
                if not fault_table.kind(kind).arms]
    disturb.sort(key=lambda x: x[0])
    # each outage belongs to the last disturbance at or before its start (one pass: linear in the
    # outages and the disturbances); a phone's recovery is the end of its first such outage
    dt = np.array([d[0] for d in disturb], dtype=float)
    fault_rows = []
    vip_moves = [(a, node) for a, b, node in serving]
    vip_t = np.array([a for a, _ in vip_moves], dtype=float)
    ha_log = sorted(log.vrrp)
    ha_t = np.array([x[0] for x in ha_log], dtype=float)
    # a stack without VRRP states says when it declared a peer dead or a monitor failed
    notes = sorted(getattr(log, "checks", []) or [])
    note_t = np.array([x[0] for x in notes], dtype=float)
    for i, (t0, cause, fidx_i, node, kind, repair_after) in enumerate(disturb):
        j0 = int(np.searchsorted(vip_t, t0, side="left"))
        before = next((nd for a, b, nd in serving[max(j0 - 1, 0):j0 + 1] if a <= t0 < b), -1)
        before = before if before >= 0 else next((nd for a, nd in reversed(vip_moves[:j0]) if a < t0 and nd >= 0), -1)
        # the VIP moves when a node other than the one serving before the disturbance serves
        move = next(((a, nd) for a, nd in vip_moves[j0:] if nd >= 0 and nd != before), (math.nan, -1))
        restored = next((a for a, nd in vip_moves[j0:] if nd >= 0), math.nan)
        k0 = int(np.searchsorted(ha_t, t0, side="left"))
        acted = next((tv for tv, nm, st in ha_log[k0:]
                      if (st == "master" and nm != node) or (nm == node and st == "fault")), math.nan)
        n0 = int(np.searchsorted(note_t, t0, side="left"))
        noted = next((tv for tv, nm, what in notes[n0:]
                      if (nm != node and what == f"peer {node} dead") or (nm == node and what == "monitor failed")),
                     math.nan)
        if not math.isnan(noted) and (math.isnan(acted) or noted < acted):
            acted = noted
        fault_rows.append(
            {
                "replication": replication,
                "disturbance": i,
                "cause": cause,
                "fault": fidx_i,
                "kind": kind,
                "node": node,
                "time": t0,
                "repair_time": repair_after,
                "detection_time": acted - t0,
                "vip_move_time": move[0] - t0 if move[1] >= 0 else math.nan,
                "service_restored_time": restored - t0,
                "new_vip_node": log.node_names[move[1]] if move[1] >= 0 else "",
            }
        )
    if big:
        release()
    recovery, fr, fcens = _recovery_table(disturb, dt, op, os_, oe, H, replication, fleet_names, fleet_of,
                                          table=per_phone)
    if tables:
        faults = FAULTS.conform(pd.DataFrame(fault_rows, columns=list(FAULTS.required)))
        vip = VIP.conform(
            {
                "replication": np.full(len(serving), replication, dtype=np.int64),
                "time": np.array([a for a, b, nd in serving], dtype=float),
                "node": [log.node_names[nd] if nd >= 0 else "" for a, b, nd in serving],
            }
        )
    else:
        faults, vip = FAULTS.empty(), VIP.empty()

    def mean_of(cause: str, column: str) -> float:
        """The mean of a faults-table column over the rows of one cause (NaN: none), as pandas
        takes it from the table."""
        return float(pd.Series([r[column] for r in fault_rows if r["cause"] == cause], dtype="float64").mean())

    # headline figures
    unreach_total = float(dur.sum())
    fig: dict[str, float] = {}
    fig["phones"] = float(n)
    fig["unreachable_phone_seconds"] = unreach_total
    if no_conn is not None:
        fig["unreachable_no_connection_phone_seconds"] = no_conn[1]
    # recovery after faults, with the phones still unreachable at the run end as right-censored
    # observations (censored at H - fault time): Kaplan–Meier quantiles, +inf when not reached
    fig.update(recovery_figures(fr, fcens))
    # loss attributable to faults: outage time inside fault windows
    # the windows partition [first disturbance, H): the outage time after the first one
    fault_loss = 0.0
    if dt.size:
        a = np.maximum(os_, dt[0])
        b = np.where(np.isnan(oe), H, oe)
        fault_loss = float(np.clip(b - a, 0, None).sum())
    fig["unreachable_phone_seconds_after_disturbances"] = fault_loss
    fig["min_reachable_fraction"] = float(reach.min() / n) if n else math.nan
    fig["vip_move_time"] = mean_of("fault", "vip_move_time") if fault_rows else math.nan
    fig["detection_time"] = mean_of("fault", "detection_time") if fault_rows else math.nan
    fig["split_brain_seconds"] = float((masters >= 2).sum() * res)
    fig["conflict_phone_seconds"] = float(ts["conflicts"].sum() * res)
    fig["peak_conflicts"] = float(ts["conflicts"].max()) if nb else 0.0
    lost_repl = sum(v for k2, v in log.counters.items() if k2.startswith("replicas_lost_"))
    fig["replicas_lost"] = float(lost_repl)
    fig["db_writes_lost"] = float(log.counters.get("db_writes_lost", 0))
    fig["unflushed_bindings_lost"] = float(sum(v for k2, v in log.counters.items() if k2.startswith("unflushed_lost_")))
    year = 365.25 * 86400.0
    if cfg.random_faults:  # availability only means something when faults come at their real rates
        fig["loss_minutes_per_phone_year"] = unreach_total / max(n, 1) / 60.0 * (year / H)
    fig["faults"] = float(len(log.faults))
    fig["failback_vip_move_time"] = (
        mean_of("repair", "vip_move_time") if any(r["cause"] == "repair" for r in fault_rows) else math.nan
    )
    # REGISTER load
    cap = cfg.registrar.worker_limit / max(cfg.registrar.service_time.expected, 1e-12)
    fig["capacity_per_s"] = cap
    rx_cols = [c for c in ts if c.startswith("register_rx_")]  # the bins' columns, as in the table
    rate = np.column_stack([ts[c] for c in rx_cols]).max(axis=1) / res if rx_cols else np.zeros(nb)
    fig["peak_register_rate"] = float(rate.max()) if rate.size else 0.0
    first_fault = min((f.time for f in log.faults if not fault_table.kind(f.kind).arms), default=H)
    pre = grid < first_fault - res
    fig["steady_register_rate"] = float(rate[pre].mean()) if pre.any() else math.nan
    fig["peak_load_vs_capacity"] = fig["peak_register_rate"] / cap if cap else math.nan
    fig["retransmissions"] = float(ts["retransmissions"].sum()) if "retransmissions" in ts else 0.0
    fig["timeouts"] = float(ts["timeouts"].sum()) if "timeouts" in ts else 0.0
    fig["responses_503"] = float(ts["resp_503"].sum()) if "resp_503" in ts else 0.0
    # failed inbound calls (Poisson thinning over each phone's unreachable time)
    lam = np.array([f.phone.calls_per_hour for f in cfg.fleets])  # per second
    if lam.any():
        per_fleet = np.bincount(fleet_of[op], weights=dur, minlength=len(cfg.fleets)) if op.size else np.zeros(len(cfg.fleets))
        mean_failed = float((per_fleet * lam).sum())
        fig["calls_failed_expected"] = mean_failed
        fig["calls_failed"] = float(calls_rng.poisson(mean_failed))
        fig["calls_total_expected"] = float(sum(f.count * f.phone.calls_per_hour for f in cfg.fleets) * H)
    trunk_out = TRUNK_OUTAGES.empty()
    if cfg.trunks:
        out = trunk_outages(cfg, log, replication)
        fig.update(trunk_figures(cfg, log, out, calls_rng))
        if tables:
            trunk_out = out
    storm = storm_figures(timeseries, t1=min(f.phone.timers.t1 for f in cfg.fleets),
                          replication=replication) if tables else {}
    return RepMetrics(replication, timeseries, outages, recovery, faults, vip, fig, dict(log.counters), trunk_out, storm,
                      dict(getattr(log, "engine", {}) or {}))


# =============================================================================== trunks
def trunk_down_intervals(regs: list[tuple[float, float, int]], nodes: list[tuple[float, int]], horizon: float,
                         contact: str) -> list[tuple[float, float, str]]:
    """(start, end, cause) of each interval in [0, horizon) during which a trunk takes no inbound call.

    ``regs``: the provider's saves (time, binding expiry, node), the latest save replacing the binding;
    ``nodes``: (time, node running the registration or -1) from t=0. A call at t succeeds when the
    provider's binding is live (saved at or before t, expiring after t) and it reaches the node that
    holds the VIP: that very node with ``contact: node``, any node with ``contact: vip``.
    """
    regs = sorted(regs)
    nodes = sorted(nodes, key=lambda x: x[0])
    cuts = {0.0, horizon}
    cuts.update(t for t, u, _ in regs if 0 <= t < horizon)
    cuts.update(u for t, u, _ in regs if 0 <= u < horizon)
    cuts.update(t for t, _ in nodes if 0 <= t < horizon)
    cuts = sorted(cuts)
    reg_t = [r[0] for r in regs]
    node_t = [x[0] for x in nodes]
    out: list[tuple[float, float, str]] = []
    from bisect import bisect_right

    for a, b in zip(cuts[:-1], cuts[1:]):
        if b <= a:
            continue
        i = bisect_right(node_t, a) - 1
        cur = nodes[i][1] if i >= 0 else -1
        j = bisect_right(reg_t, a) - 1
        live = j >= 0 and regs[j][1] > a
        if cur < 0:
            cause = "no_node"
        elif not live:
            cause = "unregistered"
        elif contact == "node" and regs[j][2] != cur:
            cause = "wrong_node"
        else:
            cause = ""
        if not cause:
            continue
        if out and out[-1][1] == a and out[-1][2] == cause:
            out[-1] = (out[-1][0], b, cause)
        else:
            out.append((a, b, cause))
    return out


def trunk_outages(cfg: Scenario, log: RunLog, replication: int) -> pd.DataFrame:
    """The ``trunk_outages`` table of one replication (:data:`simsip.tables.TRUNK_OUTAGES`)."""
    H = log.horizon
    rows: dict[str, list] = {c: [] for c in ("replication", "trunk", "start", "end", "duration", "cause")}
    for k, t in enumerate(cfg.trunks):
        regs = [(s, u, n) for i, s, u, n in log.trunk_regs if i == k]
        nodes = [(tt, n) for tt, i, n in log.trunk_nodes if i == k]
        for a, b, cause in trunk_down_intervals(regs, nodes, H, t.contact):
            rows["replication"].append(replication)
            rows["trunk"].append(t.name)
            rows["start"].append(a)
            rows["end"].append(b if b < H else math.nan)
            rows["duration"].append(b - a)
            rows["cause"].append(cause)
    return TRUNK_OUTAGES.conform(rows)


def trunk_figures(cfg: Scenario, log: RunLog, outages: pd.DataFrame, calls_rng: np.random.Generator) -> dict[str, float]:
    """Trunk figures of one replication: seconds without inbound calls, failed DID calls (expected:
    rate × down time; sampled: Poisson), registrations Asterisk gave up."""
    fig: dict[str, float] = {}
    down = outages.groupby("trunk")["duration"].sum() if len(outages) else pd.Series(dtype=float)
    total = float(down.sum()) if len(down) else 0.0
    fig["trunk_unregistered_seconds"] = total
    expected = float(sum(t.calls_per_hour * float(down.get(t.name, 0.0)) for t in cfg.trunks))
    if any(t.calls_per_hour for t in cfg.trunks):
        fig["trunk_calls_failed_expected"] = expected
        fig["trunk_calls_failed"] = float(calls_rng.poisson(expected))
    fig["trunk_registrations_given_up"] = float(sum(1 for _, _, c in log.trunk_responses if c < 0))
    return fig


#: How :func:`ci95` builds an interval for a figure of each support (said in ``summary.json``).
INTERVAL_METHODS = {
    "real": "Student-t 95 % interval of the mean",
    "nonnegative": "Student-t 95 % interval on the log of the mean (delta method), back-transformed: never below 0",
    "fraction": "Student-t 95 % interval on the logit of the mean (delta method), back-transformed: within [0, 1]",
}


def ci95(values: list[float], name: str | None = None, support: str | None = None) -> dict[str, float]:
    """Mean and 95 % confidence interval over replications, respecting the figure's support.

    ``support`` (or, from ``name``, :data:`FIGURE_SUPPORT`): ``real`` — the Student-t interval;
    ``nonnegative`` — the t interval of log(mean) (delta method, se/mean), back-transformed, so it
    never goes below 0 (a mean of 0 over all-zero values gives [0, 0]); ``fraction`` — the same on
    the logit scale, within [0, 1]. Without either, ``real``. NaN values are dropped; ``inf``
    values (a recovery quantile beyond the run end) are counted in ``not_reached`` and make the
    mean and interval ``inf``. ``method`` names the interval.
    """
    kind = support or FIGURE_SUPPORT.get(name or "", "real")
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    out = {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "half_width": math.nan, "n": int(x.size),
           "not_reached": int(np.isinf(x).sum()), "method": kind}
    if x.size == 0:
        return out
    if np.isinf(x).any():
        out.update(mean=math.inf, ci_low=math.inf, ci_high=math.inf)
        return out
    m = float(x.mean())
    out["mean"] = m
    if x.size < 2:
        out.update(ci_low=m, ci_high=m, half_width=0.0)
        return out
    from scipy.stats import t as student_t

    tq = float(student_t.ppf(0.975, x.size - 1))
    se = float(x.std(ddof=1) / math.sqrt(x.size))
    if kind == "nonnegative" and m > 0:
        f = math.exp(tq * se / m)
        lo, hi = m / f, m * f
    elif kind == "fraction" and 0 < m < 1:
        z = math.log(m / (1 - m))
        w = tq * se / (m * (1 - m))
        lo, hi = 1 / (1 + math.exp(-(z - w))), 1 / (1 + math.exp(-(z + w)))
    elif kind in ("nonnegative", "fraction"):  # the mean sits on the edge of the support: every value is there
        lo = hi = m
    else:
        lo, hi = m - tq * se, m + tq * se
    out.update(ci_low=lo, ci_high=hi, half_width=(hi - lo) / 2)
    return out


#: Recovery figures: each is shown with the count and share of phones not recovered by the run end.
RECOVERY_FIGURES = ("recovery_mean", "recovery_median", "recovery_p95", "recovery_p99", "recovery_max")


def summarize_figures(per_rep: list[dict[str, float]]) -> dict[str, dict]:
    """``summary.json``'s ``figures``: per figure, :func:`ci95` over replications with unit and help.

    Every recovery figure carries ``not_recovered`` and ``not_recovered_share`` (means over
    replications of the phones still unreachable at the end of the run).
    """
    keys = list(dict.fromkeys(k for r in per_rep for k in r))
    out: dict[str, dict] = {}
    for k in keys:
        stats = ci95([r.get(k, math.nan) for r in per_rep], name=k)
        unit, help_ = FIGURE_HELP.get(k, ("", ""))
        out[k] = {**stats, "unit": unit, "help": help_}
    nr = ci95([r.get("phones_not_recovered", math.nan) for r in per_rep])["mean"]
    share = ci95([r.get("phones_not_recovered_share", math.nan) for r in per_rep])["mean"]
    for k in RECOVERY_FIGURES:
        if k in out:
            out[k]["not_recovered"] = nr
            out[k]["not_recovered_share"] = share
    return out


def censoring_note(figures: dict[str, dict]) -> str | None:
    """A sentence when some affected phones had not recovered by the run end (None otherwise)."""
    f = figures.get("phones_not_recovered") or {}
    a = figures.get("phones_affected") or {}
    nr, aff = f.get("mean"), a.get("mean")
    if not isinstance(nr, (int, float)) or not isinstance(aff, (int, float)) or not nr or math.isnan(nr) or not aff:
        return None
    return (f"{nr:,.0f} of {aff:,.0f} affected phones ({100 * nr / aff:.0f} %) were still unreachable at the end of "
            f"the run: recovery figures account for them (Kaplan–Meier); a figure shown as '> run end' is not "
            f"reached within the run — run longer to measure it.")


def show_value(f: dict | None, fmt) -> str:
    """A summary figure's mean for people: '> run end' when beyond the run (in k of n replications)."""
    if not f:
        return "–"
    k, n, m = int(f.get("not_reached") or 0), int(f.get("n") or 0), f.get("mean")
    if k:
        return "> run end" if k == n else f"> run end ({k} of {n} replications)"
    return fmt(m)


FIGURE_HELP = {
    "unreachable_phone_seconds": ("phone·s", "Sum over phones of the time no serving node held a valid binding"),
    "unreachable_phone_seconds_after_disturbances": ("phone·s", "Unreachable time after faults and failbacks"),
    "unreachable_no_connection_phone_seconds": (
        "phone·s", "Unreachable time during which the serving node held the binding of a connection-bound (NATed "
        "TCP/TLS) phone but not its connection"),
    "phones_affected": ("phones", "Phones that became unreachable after a fault"),
    "phones_not_recovered": ("phones", "Affected phones still unreachable at the end of the run (censored)"),
    "phones_not_recovered_share": ("", "Share of the affected phones still unreachable at the end of the run"),
    "recovery_mean": ("s", "Mean time from a fault until an affected phone is reachable again (> run end if any "
                           "phone did not recover)"),
    "recovery_median": ("s", "Median recovery time (Kaplan–Meier: phones not recovered by the run end counted)"),
    "recovery_p95": ("s", "95th percentile recovery time (Kaplan–Meier)"),
    "recovery_p99": ("s", "99th percentile recovery time (Kaplan–Meier)"),
    "recovery_max": ("s", "Longest recovery time (> run end if any phone did not recover)"),
    "vip_move_time": ("s", "Fault until another node serves the VIP"),
    "failback_vip_move_time": ("s", "Repair until the VIP moves (preemption)"),
    "detection_time": ("s", "Fault until the HA stack acts (a backup becomes master or the node enters FAULT)"),
    "split_brain_seconds": ("s", "Time with two or more VRRP masters"),
    "conflict_phone_seconds": ("phone·s", "Sum over phones of time with a misplaced or divergent binding"),
    "peak_conflicts": ("phones", "Most phones in conflict at one sample"),
    "replicas_lost": ("", "Replication updates lost (sender died, peer down or unreachable)"),
    "db_writes_lost": ("", "Binding writes lost with the database primary (not yet on the replica)"),
    "unflushed_bindings_lost": ("", "Write-back bindings not yet flushed to storage when their registrar died"),
    "loss_minutes_per_phone_year": ("min", "Unreachable minutes per phone, scaled to a year (availability)"),
    "faults": ("", "Faults that happened (scheduled and random)"),
    "min_reachable_fraction": ("", "Lowest fraction of phones reachable at any sample"),
    "peak_register_rate": ("1/s", "Highest REGISTER arrivals per second at one node"),
    "steady_register_rate": ("1/s", "Mean REGISTER arrivals per second before the first fault"),
    "capacity_per_s": ("1/s", "Registrar capacity: workers / mean service time"),
    "peak_load_vs_capacity": ("", "Peak REGISTER rate over capacity"),
    "retransmissions": ("", "REGISTER retransmissions"),
    "timeouts": ("", "REGISTER transactions that timed out (local 408)"),
    "responses_503": ("", "503 responses received by phones"),
    "calls_failed": ("calls", "Incoming calls that found the phone unreachable (sampled)"),
    "calls_failed_expected": ("calls", "Expected failed incoming calls (rate × unreachable time)"),
    "calls_total_expected": ("calls", "Expected incoming calls in the run"),
    "phones": ("phones", "Phones in the scenario"),
    "trunk_unregistered_seconds": ("s", "Sum over trunks of the time inbound DID calls fail (no live provider binding "
                                        "reaching the node that holds the VIP)"),
    "trunk_calls_failed": ("calls", "Inbound DID calls that found the trunk unregistered (sampled)"),
    "trunk_calls_failed_expected": ("calls", "Expected failed inbound DID calls (trunk call rate × unregistered time)"),
    "trunk_registrations_given_up": ("", "Trunk registrations Asterisk stopped for good (max_retries, a fatal code)"),
}

#: Where each figure lives, for its confidence interval (:func:`ci95`); all are counts, times,
#: rates or sums, so never negative; shares are within [0, 1].
FIGURE_SUPPORT = {k: "nonnegative" for k in FIGURE_HELP}
FIGURE_SUPPORT.update(min_reachable_fraction="fraction", phones_not_recovered_share="fraction")

#: The figures that tell designs apart, in the order a comparison lists them (``simsip run`` of a
#: scenario with variants, the comparison page).
COMPARISON_FIGURES = (
    "unreachable_phone_seconds",
    "unreachable_no_connection_phone_seconds",
    "phones_affected",
    "recovery_median",
    "recovery_p95",
    "vip_move_time",
    "detection_time",
    "failback_vip_move_time",
    "peak_register_rate",
    "conflict_phone_seconds",
    "split_brain_seconds",
    "calls_failed_expected",
    "loss_minutes_per_phone_year",
    "trunk_unregistered_seconds",
    "trunk_calls_failed_expected",
)


# =============================================================================== storm figures
#: What :func:`storm_figures` returns per node: name -> (unit, meaning).
STORM_FIGURES = {
    "offered_peak": ("1/s", "Most REGISTER copies per second that reached the node (register_rx)"),
    "served_peak": ("1/s", "Most REGISTERs per second its workers processed to the end (served)"),
    "offered_total": ("requests", "REGISTER copies that reached the node"),
    "served_total": ("requests", "REGISTERs processed to the end, duplicates included"),
    "kernel_drops": ("requests", "REGISTERs refused because the queue (the UDP receive buffer) was full"),
    "duplicates": ("requests", "Copies processed again in full: duplicate 200s of a stateless registrar"),
    "absorbed": ("requests", "Retransmissions a stateful front matched to their transaction"),
    "ignored": ("requests", "REGISTERs ignored (UDP) or answered 503 (TCP) during the taskprocessor alert"),
    "queueing_delay_max": ("s", "Longest wait of a REGISTER for a worker"),
    "overload_end": ("s", "End of the last step in which the node was overloaded (NaN: never overloaded)"),
    "cleared": ("", "1 if the overload ended at least `settle` before the end of the run, else 0"),
}


def summarize_storm(per_rep: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict]]:
    """``summary.json``'s ``storm``: per node and :data:`STORM_FIGURES` figure, :func:`ci95` over
    replications (every figure is nonnegative) with unit and help."""
    nodes = list(dict.fromkeys(n for r in per_rep for n in r))
    out: dict[str, dict[str, dict]] = {}
    for node in nodes:
        out[node] = {}
        for k, (unit, help_) in STORM_FIGURES.items():
            vals = [r[node][k] for r in per_rep if node in r and k in r[node]]
            out[node][k] = {**ci95(vals, support="fraction" if k == "cleared" else "nonnegative"),
                            "unit": unit, "help": help_}
    return out


def storm_figures(timeseries: pd.DataFrame, *, t1: float = 0.5, settle: float = 60.0,
                  replication: int | None = None) -> dict[str, dict[str, float]]:
    """Per node, how a REGISTER storm went (:data:`STORM_FIGURES`), from one replication's timeseries.

    A step is *overloaded* at a node when it refused a REGISTER (queue or receive buffer full),
    ignored one (taskprocessor alert), its alert was raised, or a REGISTER waited at least ``t1``
    (the phones' T1: beyond it every phone retransmits). The storm *cleared* when the last
    overloaded step ends at least ``settle`` seconds before the end of the run: a storm that keeps
    the node saturated to the end (congestion collapse) did not.
    """
    ts = timeseries
    if replication is None:
        replication = int(ts["replication"].min()) if len(ts) else 0
    ts = ts[ts["replication"] == replication]
    if not len(ts):
        return {}
    t = ts["time"].to_numpy(dtype=float)
    res = float(t[1] - t[0]) if len(t) > 1 else 1.0
    end = float(t[-1]) + res
    nodes = [c[len("register_rx_"):] for c in TIMESERIES.members(ts, "register_rx_")]
    out: dict[str, dict[str, float]] = {}

    def col(name: str) -> np.ndarray:
        return ts[name].to_numpy(dtype=float) if name in ts.columns else np.zeros(len(ts))

    for node in nodes:
        rx, served = col(f"register_rx_{node}"), col(f"served_{node}")
        drops, ignored, alert = col(f"rejected_{node}"), col(f"ignored_{node}"), col(f"overload_{node}")
        wait = col(f"wait_ms_{node}") / 1000.0
        over = (drops > 0) | (ignored > 0) | (alert > 0) | (wait >= t1)
        last = float(t[np.flatnonzero(over)[-1]] + res) if over.any() else float("nan")
        out[node] = {
            "offered_peak": float(rx.max() / res),
            "served_peak": float(served.max() / res),
            "offered_total": float(rx.sum()),
            "served_total": float(served.sum()),
            "kernel_drops": float(drops.sum()),
            "duplicates": float(col(f"duplicates_{node}").sum()),
            "absorbed": float(col(f"absorbed_{node}").sum()),
            "ignored": float(ignored.sum()),
            "queueing_delay_max": float(wait.max()),
            "overload_end": last,
            "cleared": float(not over.any() or last <= end - settle),
        }
    return out
