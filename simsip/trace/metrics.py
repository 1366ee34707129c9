"""The simulator's metrics, measured on an imported trace.

The question the project asks is how long phones stay *unreachable* (an incoming call to the AOR
would fail) when the registrar holding the VIP fails and VRRP moves the VIP to the backup. A trace
answers it in one of two ways:

* **Probed** (ground truth): the lab prober sends ``OPTIONS sip:<aor>@VIP``; the registrar that
  holds the VIP answers 200 if it has a valid binding for the AOR and 404 if not. The AOR's state
  is the answer to its latest probe, taken at the time the probe was sent; a probe without a final
  response (nobody holds the VIP) or with any non-2xx answer counts as unreachable.
* **Inferred** (no probes in the trace): an AOR is reachable from the 200 OK to its REGISTER until
  the lifetime granted in that 200 (Contact ``expires=``, else ``Expires``, else the request's,
  else 3600 s) runs out. A VIP move makes everyone unreachable from the fault (or from the move
  when fault times are unknown) until the new master takes over, and — without registrar
  replication — until the AOR's next 200 from the new master.

VIP ownership comes from VRRP: only the master advertises, so the first advertisement from a new
source marks the moment it took the VIP over. A fault's *VIP move time* is that moment minus the
fault time.

*Disturbances* are the faults and, when the caller knows them, the repairs (:class:`TraceFault`);
each opens a window until the next one, as in the simulator. A fault's *detection time* is the
first sign that the HA stack acted: a new master's first advert, or the faulted master's
priority-0 advert (keepalived sends one when it enters FAULT or stops). The number of VRRP masters
at a moment is the number of nodes advertising: from an advert until 1.5 advert intervals after
the last one, cut short by a fault or a priority-0 advert.

Outages are the unreachable intervals that follow a reachable period (the wait for the very first
registration at the start of a run is not an outage). Traffic metrics (REGISTER arrivals,
responses, retransmissions, timeouts) count REGISTER transactions only: OPTIONS probes are
measurement, not load. The result tables are the declared ones (:mod:`simsip.tables`, the same
columns and dtypes as a simulation), with ``replication`` 0 and ``fleet`` ``""``; what a capture
cannot show (queue lengths, bindings per store, conflicts) is absent or NaN.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from simsip.protocols.transactions import T1, timer_f
from simsip.tables import FAULTS, OUTAGES, RECOVERY, TIMESERIES, VIP

__all__ = ["TraceFault", "TraceMetrics", "trace_metrics"]

DEFAULT_EXPIRES = 3600.0  # RFC 3261 §10.2.1.1 default when nothing says otherwise
_MAX_STEPS = 10_000_000  # timeseries rows (and seconds of register_rate) before refusing

Timeline = list[tuple[float, bool]]  # state-change points (time, reachable), sorted


@dataclass(frozen=True)
class TraceFault:
    """A disturbance during a capture: a fault, or the repair that ends it (trace seconds).

    ``kind`` (``node_crash``, …) and ``node`` (a registrar's name or IP) are ``""`` when unknown.
    """

    time: float
    cause: str = "fault"  # "fault" or "repair"
    kind: str = ""
    node: str = ""

    def __post_init__(self) -> None:
        if self.cause not in ("fault", "repair"):
            raise ValueError(f"cause must be 'fault' or 'repair', got {self.cause!r}")


@dataclass(frozen=True)
class TraceMetrics:
    """Metrics of one trace, as the declared result tables (:mod:`simsip.tables`)."""

    timeseries: pd.DataFrame
    outages: pd.DataFrame
    recovery: pd.DataFrame
    faults: pd.DataFrame
    vip: pd.DataFrame
    register_rate: pd.DataFrame  # per 1 s: time, register_rx (first transmissions), register_retrans
    responses: dict[str, int]  # "2xx", "4xx", "503", "other"
    retransmissions: int
    timeouts: int
    unreachable_phone_seconds: float
    reachability_source: str  # "probe", "register" or "none"
    end: float
    phones: tuple[str, ...] = field(default=())
    #: what makes the figures doubtful, for people (e.g. a --vip no SIP packet was sent to)
    warnings: tuple[str, ...] = field(default=())

    @property
    def vip_move_times(self) -> list[float]:
        """VIP move time of each fault (repairs left out)."""
        return [float(x) for x in self.faults.loc[self.faults["cause"] == "fault", "vip_move_time"]]

    @property
    def recovery_times(self) -> np.ndarray:
        return self.recovery["recovery_time"].to_numpy(dtype=float)


def trace_metrics(
    events: pd.DataFrame,
    *,
    vip: str | None = None,
    faults: Sequence[float | TraceFault] | None = None,
    resolution: float = 1.0,
    registrar_nodes: Mapping[str, str] | None = None,
    replicated: bool = False,
    timeout: float = timer_f(T1),
    end: float | None = None,
) -> TraceMetrics:
    """Compute the simulator's metrics from a trace event table.

    ``vip``: keep only SIP requests sent to / responses sent from this IP (all SIP if ``None``).
    ``faults``: the disturbances, as fault times in trace seconds or :class:`TraceFault` records
    (which can also be repairs, and name the kind and node). ``registrar_nodes``: names for registrar
    IPs, either ``{ip: name}`` or ``{name: ip}``. ``replicated``: in inferred mode, bindings survive
    a VIP move. ``timeout``: a REGISTER with no final response this long after its first
    transmission timed out (default Timer F at the RFC 3261 T1 of 500 ms: 32 s). ``end``: end of the observation (default: the last event).
    """
    if not resolution > 0:
        raise ValueError(f"resolution must be > 0, got {resolution}")
    ev = _normalise(events).sort_values("time", kind="stable")
    t_end = float(end) if end is not None else (float(ev["time"].max()) if len(ev) else 0.0)
    disturbances = _disturbances(faults)
    fault_times = [d.time for d in disturbances if d.cause == "fault"]
    names = _node_names(registrar_nodes)

    masters = _masters(ev, names)
    moves = masters[1:]
    vip_rows = _vip_table(masters, ev, fault_times)

    sip = ev[ev["kind"].isin(["request", "response"])]
    warnings: list[str] = []
    if vip is not None:
        src_host = sip["src"].map(_host)
        dst_host = sip["dst"].map(_host)
        keep = ((sip["kind"] == "request") & (dst_host == vip)) | (
            (sip["kind"] == "response") & (src_host == vip)
        )
        if len(sip) and not keep.any():
            seen = dst_host[sip["kind"] == "request"].value_counts().head(5)
            warnings.append(
                f"no SIP request in the capture was sent to the VIP {vip} ({len(sip)} SIP packets left out); "
                f"requests went to {', '.join(f'{h} ({n})' for h, n in seen.items()) or 'nowhere'}: "
                "check --vip: these figures measure nothing")
        sip = sip[keep]
    requests = sip[sip["kind"] == "request"]
    responses = sip[sip["kind"] == "response"]
    reg_req = requests[requests["method"] == "REGISTER"]
    reg_resp = responses[responses["method"] == "REGISTER"]

    grants = _grants(reg_req, reg_resp)
    dead = _dead_windows(moves, fault_times)
    probe_req = requests[requests["method"] == "OPTIONS"]
    probe_resp = responses[responses["method"] == "OPTIONS"]
    timelines: dict[str, Timeline]
    if probe_resp["status"].isin([200, 404]).any():
        source = "probe"
        timelines = _probe_timelines(probe_req, probe_resp)
    elif grants:
        source = "register"
        move_times = [t for t, _ in moves]
        timelines = {
            aor: _inferred_timeline(g, dead, move_times, replicated, t_end)
            for aor, g in grants.items()
        }
    else:
        source = "none"
        timelines = {}
        warnings.append("no OPTIONS probe answered and no REGISTER granted: reachability cannot be measured "
                        "(0 unreachable phone-seconds means no evidence, not no loss)")

    outages = _outages(timelines)
    recovery = _recovery(outages, [d.time for d in disturbances], [d.cause for d in disturbances])
    unreachable = float(
        sum((t_end if math.isnan(e) else e) - s for _, s, e in outages if s <= t_end)
    )
    faults_table = _faults_table(disturbances, masters, ev, names)
    timeouts_at = _timeouts(reg_req, reg_resp, timeout, t_end)

    steps = int(math.floor(t_end / resolution + 1e-9)) + 1
    if steps > _MAX_STEPS or t_end > _MAX_STEPS:
        raise ValueError(
            f"trace spans {t_end:.0f} s: {steps} timeseries rows at resolution {resolution} s; "
            "pass a coarser resolution or end= (a bogus packet timestamp can cause this)"
        )
    grid = np.arange(steps) * resolution
    registered_tl = {aor: _inferred_timeline(g, [], [], True, t_end) for aor, g in grants.items()}
    ts: dict[str, object] = {
        "replication": np.zeros(len(grid), dtype=np.int64),
        "time": grid,
        "registered": _count_at(registered_tl, grid),
        "reachable": _count_at(timelines, grid),
        "register_tx": _bin(reg_req.loc[~reg_req["retransmission"], "time"], grid, resolution),
    }
    # every copy a node received counts, as in the simulator's register_rx_<node>
    receivers = [_receiver(t, dst, names, masters) for t, dst in zip(reg_req["time"], reg_req["dst"])]
    for node in sorted({r for r in receivers if r}):
        times = reg_req["time"][[r == node for r in receivers]]
        ts[f"register_rx_{node}"] = _bin(times, grid, resolution)
    status = reg_resp["status"]
    ts["resp_2xx"] = _bin(reg_resp.loc[(status >= 200) & (status < 300), "time"], grid, resolution)
    ts["resp_4xx"] = _bin(reg_resp.loc[(status >= 400) & (status < 500), "time"], grid, resolution)
    ts["resp_503"] = _bin(reg_resp.loc[status == 503, "time"], grid, resolution)
    ts["timeouts"] = _bin(pd.Series(timeouts_at, dtype=float), grid, resolution)
    ts["retransmissions"] = _bin(reg_req.loc[reg_req["retransmission"], "time"], grid, resolution)
    ts["vrrp_masters"] = _count_intervals(_master_intervals(ev, names, fault_times), grid)
    ts["vip_node"] = _node_at(vip_rows, grid)

    seconds = np.arange(int(math.floor(t_end + 1e-9)) + 1, dtype=float)
    register_rate = pd.DataFrame(
        {
            "time": seconds,
            "register_rx": _bin(reg_req.loc[~reg_req["retransmission"], "time"], seconds, 1.0),
            "register_retrans": _bin(reg_req.loc[reg_req["retransmission"], "time"], seconds, 1.0),
        }
    )
    n_2xx = int(((status >= 200) & (status < 300)).sum())
    n_4xx = int(((status >= 400) & (status < 500)).sum())
    n_503 = int((status == 503).sum())
    return TraceMetrics(
        timeseries=TIMESERIES.conform(ts),
        outages=OUTAGES.conform(
            {
                "replication": np.zeros(len(outages), dtype=np.int64),
                "phone": pd.Series([p for p, _, _ in outages], dtype=object),
                "fleet": pd.Series([""] * len(outages), dtype=object),
                "start": pd.Series([s for _, s, _ in outages], dtype=float),
                "end": pd.Series([e for _, _, e in outages], dtype=float),
                # an outage still open at the end lasts until the end of the observation
                "duration": pd.Series([max((t_end if math.isnan(e) else e) - s, 0.0) for _, s, e in outages],
                                      dtype=float),
            }
        ),
        recovery=recovery,
        faults=faults_table,
        vip=vip_rows,
        register_rate=register_rate,
        responses={
            "2xx": n_2xx,
            "4xx": n_4xx,
            "503": n_503,
            "other": len(status) - n_2xx - n_4xx - n_503,
        },
        retransmissions=int(reg_req["retransmission"].sum()),
        timeouts=len(timeouts_at),
        warnings=tuple(warnings),
        unreachable_phone_seconds=unreachable,
        reachability_source=source,
        end=t_end,
        phones=tuple(sorted(timelines)),
    )


_REQUIRED = ("time", "kind", "method", "status", "call_id", "cseq", "aor", "src", "dst")
_DEFAULTS: dict[str, tuple[str, object]] = {
    "retransmission": ("bool", False),
    "expires": ("float64", math.nan),
    "branch": ("object", ""),
    "vrrp_src": ("object", ""),
    "vrrp_priority": ("float64", math.nan),
}


def _normalise(events: pd.DataFrame) -> pd.DataFrame:
    """Check the required columns and give the ones the metrics use predictable dtypes."""
    missing = [c for c in _REQUIRED if c not in events.columns]
    if missing:
        raise ValueError(f"events table lacks columns {missing}")
    ev = events.copy()
    ev["time"] = pd.to_numeric(ev["time"], errors="coerce").astype("float64")
    ev = ev[np.isfinite(ev["time"].to_numpy())]
    for col in ("status", "cseq"):
        ev[col] = pd.to_numeric(ev[col], errors="coerce").fillna(0).astype("int64")
    for col in ("kind", "method", "call_id", "aor", "src", "dst"):
        ev[col] = _filled(ev[col], "").astype(str).astype(object)
    for col, (dtype, default) in _DEFAULTS.items():
        if col not in ev.columns:
            ev[col] = default
        elif dtype == "float64":
            ev[col] = pd.to_numeric(ev[col], errors="coerce").astype("float64")
        elif dtype == "bool":
            ev[col] = _filled(ev[col], False).astype(bool)
        else:
            ev[col] = _filled(ev[col], "").astype(str).astype(object)
    return ev


def _filled(series: pd.Series, default: object) -> pd.Series:
    values = series.astype(object)
    return values.where(values.notna(), default)


# ---------------------------------------------------------------------------------------------
# VIP ownership
# ---------------------------------------------------------------------------------------------
def _host(endpoint: str) -> str:
    """IP of an ``ip:port`` / ``[v6]:port`` / bare-IP endpoint."""
    if endpoint.startswith("["):
        return endpoint[1 : endpoint.find("]")]
    if endpoint.count(":") == 1:
        return endpoint.rsplit(":", 1)[0]
    return endpoint


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _node_names(registrar_nodes: Mapping[str, str] | None) -> dict[str, str]:
    """Normalise ``{ip: name}`` or ``{name: ip}`` to ``{ip: name}``."""
    out: dict[str, str] = {}
    for key, value in (registrar_nodes or {}).items():
        if _is_ip(str(key)):
            out[str(key)] = str(value)
        elif _is_ip(str(value)):
            out[str(value)] = str(key)
    return out


def _masters(ev: pd.DataFrame, names: Mapping[str, str]) -> list[tuple[float, str]]:
    """(time, node) at which each VRRP master started advertising; the first is the initial one."""
    adverts = ev[ev["kind"] == "vrrp"]
    out: list[tuple[float, str]] = []
    current: str | None = None
    for t, src, prio in zip(adverts["time"], adverts["vrrp_src"], adverts["vrrp_priority"]):
        if not src or src == current:
            continue
        if prio == 0:
            continue  # a release advert from a non-master says nothing about ownership
        current = src
        out.append((float(t), names.get(src, src)))
    return out


def _vip_table(
    masters: list[tuple[float, str]], ev: pd.DataFrame, fault_times: list[float]
) -> pd.DataFrame:
    """``vip`` table: masters, plus ``""`` (nobody) from a release advert or a fault to a move."""
    rows = list(masters)
    for prev, (t_move, _) in zip(masters, masters[1:]):
        start = _gap_start(prev[0], t_move, fault_times, ev)
        if start is not None:
            rows.append((start, ""))
    rows.sort(key=lambda r: (r[0], r[1] != ""))
    return VIP.conform(
        {
            "replication": np.zeros(len(rows), dtype=np.int64),
            "time": pd.Series([t for t, _ in rows], dtype=float),
            "node": pd.Series([n for _, n in rows], dtype=object),
        }
    )


def _node_at(vip_rows: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """The node serving the VIP at each grid time ("" before the first master and in gaps)."""
    times = vip_rows["time"].to_numpy(dtype=float)
    nodes = np.array([""] + vip_rows["node"].tolist(), dtype=object)
    return nodes[np.searchsorted(times, grid, side="right")]


def _master_intervals(
    ev: pd.DataFrame, names: Mapping[str, str], fault_times: list[float]
) -> list[tuple[float, float]]:
    """[start, end) of each node's stretch as VRRP master, judged from its adverts.

    A node is master from an advert until 1.5 advert intervals after its last one; the stretch ends
    earlier at a fault or at a priority-0 advert (the node releases the VIP) after its last advert.
    """
    adverts = ev[(ev["kind"] == "vrrp") & (ev["vrrp_src"] != "")]
    faults = np.asarray(sorted(fault_times), dtype=float)
    out: list[tuple[float, float]] = []
    for _, grp in adverts.groupby(adverts["vrrp_src"].map(lambda s: names.get(s, s)), sort=True):
        t = grp["time"].to_numpy(dtype=float)
        prio = grp["vrrp_priority"].to_numpy(dtype=float, na_value=math.nan)
        interval = np.nan_to_num(grp["vrrp_advert_int"].to_numpy(dtype=float), nan=1.0)
        start: float | None = None
        last = -math.inf
        hold = 1.5
        for ti, pi, ai in zip(t, prio, interval):
            if pi == 0:  # release: the stretch ends here
                if start is not None:
                    out.append((start, ti))
                    start = None
                continue
            if start is not None and ti - last > hold:
                out.append((start, _cut(last, last + hold, faults)))
                start = None
            if start is None:
                start = ti
            last, hold = ti, 1.5 * (ai if ai > 0 else 1.0)
        if start is not None:
            out.append((start, _cut(last, last + hold, faults)))
    return out


def _cut(last: float, end: float, faults: np.ndarray) -> float:
    """``end``, or the first fault after ``last`` if it comes before."""
    k = int(np.searchsorted(faults, last, side="right"))
    return float(min(end, faults[k])) if k < faults.size else end


def _count_intervals(intervals: list[tuple[float, float]], grid: np.ndarray) -> np.ndarray:
    """Number of [start, end) intervals covering each grid time."""
    if not intervals:
        return np.zeros(len(grid), dtype=np.int64)
    s = np.sort(np.array([a for a, _ in intervals], dtype=float))
    e = np.sort(np.array([b for _, b in intervals], dtype=float))
    return (np.searchsorted(s, grid, side="right") - np.searchsorted(e, grid, side="right")).astype(np.int64)


def _gap_start(
    prev_start: float, t_move: float, fault_times: list[float], ev: pd.DataFrame
) -> float | None:
    """When the VIP was left without master before the move at ``t_move``, if observable."""
    candidates = [f for f in fault_times if prev_start < f < t_move]
    rel = ev[(ev["kind"] == "vrrp") & (ev["time"] > prev_start) & (ev["time"] < t_move)]
    candidates += [float(t) for t in rel.loc[rel["vrrp_priority"] == 0, "time"]]
    return max(candidates) if candidates else None


def _dead_windows(
    moves: list[tuple[float, str]], fault_times: list[float]
) -> list[tuple[float, float]]:
    """Intervals without a VIP master: latest fault before each move (or the move) to the move."""
    out: list[tuple[float, float]] = []
    previous = -math.inf
    for t_move, _ in moves:
        before = [f for f in fault_times if previous < f <= t_move]
        out.append((max(before) if before else t_move, t_move))
        previous = t_move
    return out


def _master_at(t: float, masters: list[tuple[float, str]]) -> str:
    i = bisect.bisect_right([m for m, _ in masters], t) - 1
    return masters[i][1] if i >= 0 else ""


def _receiver(
    t: float, dst: str, names: Mapping[str, str], masters: list[tuple[float, str]]
) -> str:
    host = _host(dst)
    if host in names:
        return names[host]
    return _master_at(t, masters) if masters else ""


def _disturbances(faults: Sequence[float | TraceFault] | None) -> list[TraceFault]:
    """The disturbances in time order (a bare number is a fault at that time)."""
    out = [f if isinstance(f, TraceFault) else TraceFault(float(f)) for f in (faults or ())]
    return sorted(out, key=lambda d: d.time)


def _faults_table(
    disturbances: list[TraceFault], masters: list[tuple[float, str]], ev: pd.DataFrame,
    names: Mapping[str, str],
) -> pd.DataFrame:
    """``faults`` table: per disturbance, the node it hit and how VRRP reacted (see the module doc)."""
    move_list = masters[1:]
    known = set(names.values()) | {n for _, n in masters}
    adverts = ev[ev["kind"] == "vrrp"]
    releases = [(float(t), names.get(src, src)) for t, src, p in
                zip(adverts["time"], adverts["vrrp_src"], adverts["vrrp_priority"]) if p == 0]
    repairs_left = [d for d in disturbances if d.cause == "repair"]
    rows = []
    n_faults = 0
    for i, d in enumerate(disturbances):
        t0 = d.time
        nxt = disturbances[i + 1].time if i + 1 < len(disturbances) else math.inf
        named = names.get(d.node, d.node) if d.node else ""
        if d.cause == "fault":
            node = named if named in known else _master_at(t0, masters)
        else:
            node = named if named in known else ""
        move = next(((t, n) for t, n in move_list if t0 <= t < nxt), None)
        restored = next((t for t, _ in masters if t >= t0), math.nan)
        detection = math.nan
        if d.cause == "fault" and node:
            before = _master_at(t0, masters)
            took = next((t for t, n in move_list if t >= t0 and n not in (node, before)), math.inf)
            released = next((t for t, n in releases if t >= t0 and n == node), math.inf)
            first = min(took, released)
            detection = first - t0 if math.isfinite(first) else math.nan
        repair = math.nan
        if d.cause == "fault":
            fix = next((r for r in repairs_left if r.time >= t0 and (not r.node or not d.node or r.node == d.node)), None)
            if fix is not None:
                repairs_left.remove(fix)
                repair = fix.time - t0
        rows.append({
            "replication": 0,
            "disturbance": i,
            "cause": d.cause,
            "fault": n_faults if d.cause == "fault" else -1,
            "kind": d.kind,
            "node": node,
            "time": t0,
            "repair_time": repair,
            "detection_time": detection,
            "vip_move_time": move[0] - t0 if move else math.nan,
            "service_restored_time": restored - t0,
            "new_vip_node": move[1] if move else "",
        })
        n_faults += d.cause == "fault"
    return FAULTS.conform(pd.DataFrame(rows, columns=list(FAULTS.required)))


# ---------------------------------------------------------------------------------------------
# Reachability timelines
# ---------------------------------------------------------------------------------------------
def _probe_timelines(probe_req: pd.DataFrame, probe_resp: pd.DataFrame) -> dict[str, Timeline]:
    """Per AOR: the state given by each probe's final answer, at the time the probe was sent."""
    final = probe_resp[probe_resp["status"] >= 200]
    answer: dict[tuple[str, int], int] = {}
    for cid, cseq, st in zip(final["call_id"], final["cseq"], final["status"]):
        answer.setdefault((cid, int(cseq)), int(st))
    first = probe_req[~probe_req["retransmission"]]
    samples: dict[str, list[tuple[float, bool]]] = {}
    seen: set[tuple[str, int]] = set()
    for t, cid, cseq, aor in zip(first["time"], first["call_id"], first["cseq"], first["aor"]):
        key = (cid, int(cseq))
        if not aor or key in seen:
            continue
        seen.add(key)
        st = answer.get(key, 0)
        samples.setdefault(aor, []).append((float(t), 200 <= st < 300))
    return {aor: _compress(points) for aor, points in samples.items()}


def _grants(reg_req: pd.DataFrame, reg_resp: pd.DataFrame) -> dict[str, list[tuple[float, float]]]:
    """Per AOR: (time of 2xx to REGISTER, binding valid until)."""
    requested: dict[tuple[str, int], float] = {}
    for cid, cseq, exp in zip(reg_req["call_id"], reg_req["cseq"], reg_req["expires"]):
        requested.setdefault((cid, int(cseq)), float(exp))
    ok = reg_resp[(reg_resp["status"] >= 200) & (reg_resp["status"] < 300)]
    out: dict[str, list[tuple[float, float]]] = {}
    seen: set[tuple[str, int]] = set()
    columns = (ok["time"], ok["call_id"], ok["cseq"], ok["aor"], ok["expires"])
    for t, cid, cseq, aor, exp in zip(*columns):
        key = (cid, int(cseq))
        if not aor or key in seen:  # a retransmitted 200 grants nothing new
            continue
        seen.add(key)
        lifetime = float(exp)
        if math.isnan(lifetime):
            lifetime = requested.get(key, math.nan)
        if math.isnan(lifetime):
            lifetime = DEFAULT_EXPIRES
        out.setdefault(aor, []).append((float(t), float(t) + max(lifetime, 0.0)))
    for grants in out.values():
        grants.sort()
    return out


def _inferred_timeline(
    grants: list[tuple[float, float]],
    dead: list[tuple[float, float]],
    move_times: list[float],
    replicated: bool,
    t_end: float,
) -> Timeline:
    """Reachability of one AOR (until ``t_end``) from its grants, VIP dead windows and moves."""
    grant_times = [g for g, _ in grants]
    candidates = (
        {g for g, _ in grants}
        | {u for _, u in grants}
        | {s for s, _ in dead}
        | {m for _, m in dead}
        | set(move_times)
    )
    breakpoints = sorted(t for t in candidates if t <= t_end)

    def reachable(t: float) -> bool:
        if any(s <= t < m for s, m in dead):
            return False
        i = bisect.bisect_right(grant_times, t) - 1
        if i < 0 or t >= grants[i][1]:
            return False
        if not replicated:
            j = bisect.bisect_right(move_times, t) - 1
            if j >= 0 and grants[i][0] < move_times[j]:
                return False
        return True

    return _compress([(t, reachable(t)) for t in breakpoints])


def _compress(points: list[tuple[float, bool]]) -> Timeline:
    out: Timeline = []
    for t, state in sorted(points, key=lambda p: p[0]):
        if out and out[-1][0] == t:
            out[-1] = (t, state)
        elif not out or out[-1][1] != state:
            out.append((t, state))
    # merging same-time points can leave equal neighbours
    merged: Timeline = []
    for t, state in out:
        if not merged or merged[-1][1] != state:
            merged.append((t, state))
    return merged


def _outages(timelines: Mapping[str, Timeline]) -> list[tuple[str, float, float]]:
    """(phone, start, end) of unreachable intervals after a reachable one; end NaN if open."""
    out: list[tuple[str, float, float]] = []
    for aor in sorted(timelines):
        was_reachable = False
        start: float | None = None
        for t, state in timelines[aor]:
            if state:
                if start is not None:
                    out.append((aor, start, t))
                    start = None
                was_reachable = True
            elif was_reachable and start is None:
                start = t
        if start is not None:
            out.append((aor, start, math.nan))
    return out


def _recovery(
    outages: list[tuple[str, float, float]], times: list[float], causes: Sequence[str] | None = None
) -> pd.DataFrame:
    """``recovery`` table: per disturbance window, each phone's first outage starting in it.

    ``times`` are the disturbances in time order, ``causes`` their causes (default: all faults).
    """
    causes = list(causes) if causes is not None else ["fault"] * len(times)
    fault_index = list(np.cumsum([c == "fault" for c in causes]) - 1)
    rows: list[tuple[int, float, str, float]] = []
    for i, f in enumerate(times):
        nxt = times[i + 1] if i + 1 < len(times) else math.inf
        first: dict[str, tuple[float, float]] = {}
        for phone, start, end in outages:
            if f <= start < nxt and (phone not in first or start < first[phone][0]):
                first[phone] = (start, end)
        for phone in sorted(first):
            rows.append((i, f, phone, first[phone][1] - f))
    return RECOVERY.conform(
        {
            "replication": np.zeros(len(rows), dtype=np.int64),
            "disturbance": pd.Series([r[0] for r in rows], dtype=np.int64),
            "cause": pd.Series([causes[r[0]] for r in rows], dtype=object),
            "fault": pd.Series([fault_index[r[0]] if causes[r[0]] == "fault" else -1 for r in rows], dtype=np.int64),
            "time": pd.Series([r[1] for r in rows], dtype=float),
            "phone": pd.Series([r[2] for r in rows], dtype=object),
            "fleet": pd.Series([""] * len(rows), dtype=object),
            "recovery_time": pd.Series([r[3] for r in rows], dtype=float),
        }
    )


def _count_at(timelines: Mapping[str, Timeline], grid: np.ndarray) -> np.ndarray:
    """Number of AORs whose state is reachable at each grid time."""
    counts = np.zeros(len(grid), dtype=np.int64)
    for tl in timelines.values():
        if not tl:
            continue
        times = np.array([t for t, _ in tl])
        states = np.array([s for _, s in tl], dtype=bool)
        idx = np.searchsorted(times, grid, side="right") - 1
        counts += np.where(idx >= 0, states[np.clip(idx, 0, None)], False)
    return counts


# ---------------------------------------------------------------------------------------------
# Traffic
# ---------------------------------------------------------------------------------------------
def _timeouts(
    reg_req: pd.DataFrame, reg_resp: pd.DataFrame, timeout: float, t_end: float
) -> list[float]:
    """Times (first send + timeout) of REGISTER transactions without a timely final response."""
    answered: dict[tuple[str, int], float] = {}
    final = reg_resp[reg_resp["status"] >= 200]
    for t, cid, cseq in zip(final["time"], final["call_id"], final["cseq"]):
        answered.setdefault((cid, int(cseq)), float(t))
    first_sent: dict[tuple[str, int], float] = {}
    for t, cid, cseq in zip(reg_req["time"], reg_req["call_id"], reg_req["cseq"]):
        first_sent.setdefault((cid, int(cseq)), float(t))
    out: list[float] = []
    for key, t in first_sent.items():
        deadline = t + timeout
        if deadline > t_end:
            continue  # the capture ended before the transaction could time out
        answer = answered.get(key)
        if answer is None or answer > deadline:
            out.append(deadline)
    return sorted(out)


def _bin(times: pd.Series | Sequence[float], grid: np.ndarray, resolution: float) -> np.ndarray:
    """Counts of ``times`` in the bins [grid[i], grid[i] + resolution)."""
    values = np.asarray(times, dtype=float)
    counts = np.zeros(len(grid), dtype=np.int64)
    if values.size == 0 or len(grid) == 0:
        return counts
    idx = np.floor((values - grid[0]) / resolution + 1e-9).astype(np.int64)
    idx = idx[(idx >= 0) & (idx < len(grid))]
    np.add.at(counts, idx, 1)
    return counts
