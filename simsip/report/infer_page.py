"""The inference page: what a capture says about the phones, the registrar and the HA pair.

``simsip trace infer`` turns a capture into a scenario; each value in it is the median of what the
wire showed, with a 95 % interval. A median hides what a design review needs to see: do all phones
of a fleet refresh at the same point of their expiry, or do some refresh late (the ones a failover
catches)? Is the registrar's latency one hump, or a tail? Do waits after failures grow (backoff)?
This page draws, from an :class:`~simsip.trace.infer.Inference`, the distributions behind the
values:

* the **refresh point** of each phone (its refresh time ÷ the expiry the registrar granted, the
  mean over its refreshes: one observation per phone), per fleet;
* the registrar's **response latency** (last copy of a REGISTER to its final response), overall
  and per answering node;
* the **waits before a retry** after a timeout and after each error code, per fleet, and the wait
  by the number of failures in a row (backoff);
* the phones' **keep-alive intervals**;
* the **VRRP** advert interval (advertised field and measured gaps), the priorities each node
  advertised, and each node's priority over time: a weighted check (the priority stepping while the
  master keeps advertising) and a failback (preempt or not, and the preempt delay);
* the **failover** measurements: the master's silence before the backup took over, detection, VIP
  move and service restored per fault, the GARP bursts, and the phones' recovery
  (``simsip trace import``'s metrics, when the inference measured them).

Every figure says its n and the median's 95 % interval (order statistics); a quantity the capture
holds no evidence for is a "not observed" panel with the reason, never an empty plot. Like the run
page, the file is self-contained (plotly.js embedded: it opens offline) and written atomically.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .run_page import recovery_cdf_figure
from .toolkit import COLORS, count, figure_block, human, layout, page, rgba, write_page

__all__ = ["InferencePanel", "inference_figures", "inference_panels", "render_inference_report",
           "write_inference_report"]

#: at most this many fleets (the largest) or nodes get a row of their own in a figure
MAX_ROWS = 12


class InferencePanel:
    """One section of the page: a figure, or "not observed" with the reason when nothing backs it.

    ``missing`` lists the groups (fleets, nodes) the figure has no row for, each with its reason."""

    __slots__ = ("name", "title", "figure", "caption", "missing")

    def __init__(self, name: str, title: str, figure: go.Figure | None, caption: str,
                 missing: Sequence[tuple[str, str]] = ()) -> None:
        self.name, self.title, self.figure, self.caption = name, title, figure, caption
        self.missing = list(missing)

    @property
    def observed(self) -> bool:
        return self.figure is not None


# =============================================================================== text
def _esc(text: Any) -> str:
    """Text from a capture, safe inside a plotly label (plotly reads a few HTML tags and entities)."""
    return html.escape("".join(ch if ch.isprintable() else "?" for ch in str(text)))


def _value(x: float, unit: str, scale: float = 1.0) -> str:
    if unit == "s":
        return human(x)
    if unit == "ms":
        return f"{x * scale:.3g} ms"
    return f"{x * scale:.4g}"


def stat_line(e: Any, unit: str | None = None) -> str:
    """``n=…, median …, 95 % CI …–…`` of an :class:`~simsip.trace.infer.Estimate` (or not observed)."""
    unit = e.unit if unit is None else unit
    if not e.observed:
        return "not observed" + (f" ({e.evidence})" if e.evidence else "")
    scale = 1000.0 if unit == "ms" else 1.0
    ci = (f"95 % CI {_value(e.lo, unit, scale)}–{_value(e.hi, unit, scale)}" if e.lo is not None and e.hi is not None
          else "no interval (fewer than 3 observations)")
    return f"n={count(e.n)}, median {_value(e.value, unit, scale)}, {ci}"


# =============================================================================== figures
def distribution_figure(title: str, rows: Sequence[tuple[str, Any]], x_title: str, *, unit: str | None = None,
                        color: str = COLORS[0], x_range: tuple[float, float] | None = None,
                        bin_size: float | None = None) -> go.Figure:
    """One histogram per row (label, observed Estimate), with the median (line) and its 95 % interval
    (band); each row's title gives n, the median and the interval. ``unit="ms"`` draws seconds as ms.

    ``x_range``/``bin_size`` fix the axis (the refresh point's is its whole domain, 0–1); otherwise
    the axis spans at least ±10 % around the median, so a tight cluster is not magnified into a
    spread."""
    n = len(rows)
    fig = make_subplots(rows=n, cols=1, vertical_spacing=min(0.12, 0.45 / max(n, 1)),
                        subplot_titles=[f"{_esc(label)} — {_esc(stat_line(e, unit))}" for label, e in rows])
    for i, (label, e) in enumerate(rows, start=1):
        u = e.unit if unit is None else unit
        scale = 1000.0 if u == "ms" else 1.0
        xs = np.asarray(e.samples if e.samples else [e.value], dtype=float) * scale
        if x_range is not None:
            lo_x, hi_x = x_range[0], max(x_range[1], float(xs.max()) * 1.02)
        else:
            mid = e.value * scale
            pad = max(0.1 * abs(mid), 1e-9)
            lo_x, hi_x = min(float(xs.min()), mid - pad), max(float(xs.max()), mid + pad)
            if float(xs.min()) >= 0:
                lo_x = max(lo_x, 0.0)
            edge = 0.04 * (hi_x - lo_x)
            lo_x, hi_x = lo_x - edge, hi_x + edge
        # bins by the axis shown, so a tight cluster is a visible bar, not a hairline under the median
        size = bin_size if bin_size is not None else (hi_x - lo_x) / min(60, max(10, int(math.sqrt(len(xs))) * 2))
        fig.add_trace(go.Histogram(x=xs.tolist(), name=_esc(label), marker=dict(color=rgba(color, 0.75)),
                                   showlegend=False, xbins=dict(start=lo_x, end=hi_x, size=size),
                                   hovertemplate="%{x}: %{y} observations<extra></extra>"), row=i, col=1)
        fig.update_xaxes(range=[lo_x, hi_x], row=i, col=1)
        axis = "" if i == 1 else str(i)
        shapes = []
        if e.lo is not None and e.hi is not None:
            shapes.append(dict(type="rect", xref=f"x{axis}", yref=f"y{axis} domain", x0=e.lo * scale, x1=e.hi * scale,
                               y0=0, y1=1, fillcolor=rgba("#d62728", 0.15), line=dict(width=0), layer="below"))
        shapes.append(dict(type="line", xref=f"x{axis}", yref=f"y{axis} domain", x0=e.value * scale, x1=e.value * scale,
                           y0=0, y1=1, line=dict(color="#d62728", width=2)))
        fig.update_layout(shapes=list(fig.layout.shapes) + shapes)
        fig.update_yaxes(title_text="count", row=i, col=1)
        fig.update_xaxes(title_text=x_title if i == n else None, row=i, col=1)
    fig.update_annotations(font=dict(size=12))
    return layout(fig, title, height=140 + 190 * n, showlegend=False, bargap=0.05)


def _fleet_label(f: Any) -> str:
    return f"fleet {f.name} ({count(f.phones)} phones, {f.transport})"


def _rows(pairs: Sequence[tuple[str, Any]]) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    """Split (label, Estimate) pairs into the observed rows and the not-observed (label, reason)."""
    seen = [(label, e) for label, e in pairs if e.observed]
    missing = [(label, e.evidence or "no evidence in the capture") for label, e in pairs if not e.observed]
    if len(seen) > MAX_ROWS:
        missing.append((f"{len(seen) - MAX_ROWS} more", "not drawn (the page shows the largest groups)"))
        seen = seen[:MAX_ROWS]
    return seen, missing


def _panel(name: str, title: str, pairs: Sequence[tuple[str, Any]], x_title: str, caption: str = "", *,
           unit: str | None = None, color: str = COLORS[0], x_range: tuple[float, float] | None = None,
           bin_size: float | None = None) -> InferencePanel:
    seen, missing = _rows(pairs)
    fig = (distribution_figure(title, seen, x_title, unit=unit, color=color, x_range=x_range, bin_size=bin_size)
           if seen else None)
    return InferencePanel(name, title, fig, caption, missing)


def refresh_panel(inf: Any) -> InferencePanel:
    pairs = []
    for f in inf.fleets:
        pairs.append((_fleet_label(f), f.refresh_per_phone))
    panel = _panel("refresh", "Refresh point per phone (refresh time ÷ granted expiry)", pairs,
                   "refresh point (share of the granted expiry)",
                   "One observation per phone: the mean, over its refreshes, of the time from a 2xx to the phone's "
                   "next REGISTER divided by the expiry that 2xx granted. Red line: the median; red band: its 95 % "
                   "interval. A spread here is phones that differ (firmware, settings); per-refresh jitter is in the "
                   "table below. A phone refreshing late is one a failover catches longer.",
                   x_range=(0.0, 1.0), bin_size=0.005)
    return panel


def latency_panel(inf: Any) -> InferencePanel:
    r = inf.registrar
    pairs = [("all answering nodes", r.latency)]
    if len(r.latency_by_node) > 1:
        pairs += [(f"node {node}", e) for node, e in r.latency_by_node.items()]
    return _panel("latency", "Registrar response latency", pairs, "latency (ms)",
                  "From the last copy of a REGISTER to its final response, for transactions sent once only (a "
                  "retransmitted one cannot be matched to its copy). It includes the network round trip and the "
                  "queueing at the load the capture saw; the scenario uses the median as the mean service time.",
                  unit="ms", color=COLORS[2])


def retry_panel(inf: Any) -> InferencePanel:
    pairs = []
    for f in inf.fleets:
        pairs.append((f"{_fleet_label(f)}: after a timeout", f.timeout_wait))
        for code, e in f.error_waits.items():
            pairs.append((f"{_fleet_label(f)}: after {code}", e))
    if not any(f.error_waits for f in inf.fleets):
        pairs.append(("after an error response", _NotSeen("no REGISTER got an error response that was retried")))
    return _panel("retry", "Wait before a retry, after a timeout or an error response", pairs, "wait (s)",
                  "From the failure (the transaction timeout — Timer F, or when the next retransmission was due — "
                  "or the error response) to the phone's next REGISTER. 401/407 challenges and 423 are not "
                  "failures and are left out.", color=COLORS[1])


class _NotSeen:
    """A stand-in Estimate for a quantity that has no entry at all (e.g. no error code seen)."""

    observed = False
    value = lo = hi = None
    n = 0
    unit = "s"
    samples = ()

    def __init__(self, evidence: str) -> None:
        self.evidence = evidence


def streak_panel(inf: Any) -> InferencePanel:
    """Median wait (with its interval) by the number of failures in a row, one line per fleet."""
    fig = go.Figure()
    missing = []
    for i, f in enumerate(inf.fleets[:MAX_ROWS]):
        seen = [(k, e) for k, e in sorted(f.streak_waits.items()) if e.observed]
        if not seen:
            missing.append((_fleet_label(f), "no REGISTER failed and was retried"))
            continue
        ks = [k for k, _ in seen]
        med = [e.value for _, e in seen]
        up = [(e.hi - e.value) if e.hi is not None else 0.0 for _, e in seen]
        down = [(e.value - e.lo) if e.lo is not None else 0.0 for _, e in seen]
        text = [_esc(stat_line(e)) for _, e in seen]
        verdict = {True: "backoff", False: "no backoff", None: "backoff not decidable"}[f.backoff]
        fig.add_trace(go.Scatter(x=ks, y=med, mode="lines+markers", name=_esc(f"{_fleet_label(f)}: {verdict}"),
                                 line=dict(color=COLORS[i % len(COLORS)]), text=text,
                                 error_y=dict(type="data", symmetric=False, array=up, arrayminus=down),
                                 hovertemplate="failure %{x} in a row: %{text}<extra></extra>"))
    if not fig.data:
        return InferencePanel("backoff", "Wait by failures in a row (backoff)", None, "", missing)
    layout(fig, "Wait by failures in a row (backoff)", xaxis_title="failure number in a row (1 = the first)",
           yaxis_title="median wait before the retry (s)", xaxis=dict(dtick=1), legend=dict(orientation="h", y=-0.25))
    return InferencePanel("backoff", "Wait by failures in a row (backoff)", fig,
                          "Median wait before the retry after the k-th consecutive failure, with its 95 % interval "
                          "(bars). Waits that grow with k are a backoff (the scenario's retry mode: backoff).",
                          missing)


def keepalive_panel(inf: Any) -> InferencePanel:
    pairs = [(f"{_fleet_label(f)}: {f.keepalive_kind if f.keepalive_kind != 'none' else 'keep-alive'}",
              f.keepalive_interval) for f in inf.fleets]
    if not pairs:
        pairs = [("phones", _NotSeen("no REGISTER in the capture"))]
    return _panel("keepalive", "Keep-alive intervals", pairs, "interval (s)",
                  "Time between consecutive CRLF or OPTIONS pings from one phone address. The scenario takes the "
                  "p95 as the interval and p5/p95 as its randomisation.", color=COLORS[3])


def vrrp_advert_panel(inf: Any) -> InferencePanel:
    h = inf.ha
    pairs = [("measured gap between one master's adverts", h.advert_gap), ("advertised interval field", h.advert_int)]
    if h.stack and h.stack != "keepalived":
        pairs = [(label, _NotSeen(f"no VRRP advert ({h.stack} traffic seen instead)")) for label, _ in pairs]
    return _panel("vrrp_advert", "VRRP advert interval", pairs, "interval (s)",
                  "The interval each advert carries (VRRPv2: whole seconds, v3: centiseconds) and the measured gaps "
                  "between one master's consecutive adverts (jitter, lost adverts). The backup declares the master "
                  "dead after about three intervals.", color=COLORS[4])


def vrrp_priority_panel(inf: Any) -> InferencePanel:
    h = inf.ha
    title = "VRRP priorities advertised"
    if not h.priority_counts and not h.priorities:
        why = f"no VRRP advert ({h.stack} traffic seen instead)" if h.stack else "no VRRP advert in the capture"
        return InferencePanel("vrrp_priority", title, None, "", [("VRRP", why)])
    counts = {ip: dict(c) for ip, c in (h.priority_counts or {ip: {p: 1} for ip, p in h.priorities.items()}).items()}
    for _t, ip in h.priority_zero_times:  # a master releasing the VIP (FAULT, or keepalived stopped)
        counts.setdefault(ip, {})
        counts[ip][0] = counts[ip].get(0, 0) + 1
    first_master = {}
    for t, ip in h.masters:
        first_master.setdefault(ip, t)
    fig = go.Figure()
    levels = sorted({p for c in counts.values() for p in c}, reverse=True)
    nodes = sorted(counts, key=lambda ip: -max(counts[ip]))[:MAX_ROWS]
    for i, prio in enumerate(levels[:MAX_ROWS]):
        xs = [n for n in nodes if prio in counts[n]]
        ys = [counts[n][prio] for n in xs]
        fig.add_trace(go.Bar(x=[_esc(n) for n in xs], y=ys, name=f"priority {prio}", text=[f"priority {prio}"] * len(xs),
                             marker=dict(color=COLORS[i % len(COLORS)]),
                             hovertemplate="%{x}: %{y} adverts at %{text}<extra></extra>"))
    total = sum(sum(c.values()) for c in counts.values())
    notes = []
    for n in nodes:
        since = f", master from {first_master[n]:.1f} s" if n in first_master else ", never master"
        notes.append(f"{n}: {', '.join(f'{p} ({c})' for p, c in counts[n].items())}{since}")
    layout(fig, f"{title} (n={count(total)} adverts)", xaxis_title="advertising node", yaxis_title="adverts",
           barmode="group", legend=dict(orientation="h", y=-0.25))
    missing = []
    if len(counts) < 2:
        missing.append(("the backup", "never advertised (it stayed backup, or its adverts did not reach the capture): "
                        "its priority is an assumption in the scenario"))
    caption = ("Adverts per node and advertised priority (counts, not estimates: a priority is a setting, so there "
               "is no interval). Several priorities from one node are a weighted track_script at work; 0 is a master "
               "releasing the VIP. " + "; ".join(notes) + ".")
    return InferencePanel("vrrp_priority", title, fig, caption, missing)


def vrrp_timeline_panel(inf: Any) -> InferencePanel:
    """Each node's advertised priority over time: a weighted check shows as a step while the node keeps
    advertising, a failback as a node's adverts reappearing; with the weight and preempt read off them."""
    h = inf.ha
    title = "VRRP priority over time (weighted checks, failbacks)"
    runs = getattr(h, "priority_runs", {}) or {}
    if not runs:
        why = f"no VRRP advert ({h.stack} traffic seen instead)" if h.stack else "no VRRP advert in the capture"
        return InferencePanel("vrrp_timeline", title, None, "", [("VRRP", why)])
    fig = go.Figure()
    for i, ip in enumerate(sorted(runs, key=lambda n: -max(r[0] for r in runs[n]))[:MAX_ROWS]):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for prio, first, last, _n in runs[ip]:
            if xs:  # a gap between runs: the node was silent (backup, down or in FAULT), or changed priority
                xs.append(None)
                ys.append(None)
            xs += [first, last]
            ys += [prio, prio]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=_esc(ip), connectgaps=False,
                                 line=dict(color=COLORS[i % len(COLORS)], width=3),
                                 hovertemplate=f"{_esc(ip)}: priority %{{y}} at %{{x:.3f}} s<extra></extra>"))
    for st in h.priority_steps[:200]:
        if st["continuous"]:
            fig.add_annotation(x=st["time"], y=st["new"], text=f"{st['old']}→{st['new']}", showarrow=True,
                               arrowhead=2, ay=-30)
    layout(fig, title, xaxis_title="capture time (s)", yaxis_title="advertised priority",
           legend=dict(orientation="h", y=-0.25))
    w = h.weight
    if w.observed:
        weight = (f"Weighted check: |w| = {w.value:g} (n={w.n} step(s) while the node kept advertising"
                  f"{', reverse' if h.weight_reverse else ''}); " + "; ".join(h.weight_evidence[:4]) + ". ")
    else:
        weight = "No weighted check: " + (w.evidence or "constant priorities") + ". "
    pre = h.preempt.get("preempt")
    word = {True: "preempt", False: "nopreempt", None: "preempt not observed"}[pre]
    delay = f" preempt_delay {stat_line(h.preempt_delay)}." if h.preempt_delay.observed else ""
    caption = (weight + f"Failback: {word} ({h.preempt.get('evidence', '')}).{delay} A line is a run of adverts at "
               "one priority; a break is a silence (a backup does not advertise).")
    return InferencePanel("vrrp_timeline", title, fig, caption, [])


def failover_panel(inf: Any) -> InferencePanel:
    """Per fault: the old master's silence, detection, VIP move, service restored, GARP timing."""
    h = inf.ha
    series: dict[str, list[tuple[float, str]]] = {}
    for k, c in enumerate(h.master_changes):
        if math.isfinite(c["silence"]):
            series.setdefault("old master's last advert → new master's first", []).append(
                (c["silence"], f"change {k + 1} at {c['time']:.1f} s: {c['old'] or '?'} → {c['new']}"))
    m = getattr(inf, "measured", None)
    if m is not None and len(m.metrics.faults):
        ft = m.metrics.faults
        ft = ft[ft["cause"] == "fault"]
        for col, name in (("detection_time", "detection"), ("vip_move_time", "VIP move"),
                          ("service_restored_time", "service restored")):
            for k, (t, v) in enumerate(zip(ft["time"], ft[col])):
                if math.isfinite(float(v)):
                    series.setdefault(f"fault → {name}", []).append((float(v), f"fault {k} at {float(t):.1f} s"))
    if h.garp_second_delay.observed:
        series["first → second GARP burst"] = [(float(x), "") for x in h.garp_second_delay.samples]
    title = "Failover measurements"
    garps = ""
    if h.garp_bursts:
        sizes = sorted({int(b["count"]) for b in h.garp_bursts})
        garps = (f" Gratuitous ARP bursts: n={len(h.garp_bursts)}, of {', '.join(map(str, sizes))} GARP(s) each, first at "
                 f"{h.garp_bursts[0]['time']:.1f} s.")
    if not series and not h.garp_bursts:
        why = ("no change of VRRP master, no gratuitous ARP and no measured fault in the capture"
               + ("" if m is not None else f" ({inf.measured_note or 'failover metrics not computed'})"))
        return InferencePanel("failover", title, None, "", [("failover", why)])
    from simsip.trace.infer import estimate

    if not series:
        return InferencePanel("failover", title, None, "", [("failover", "no change of VRRP master and no measured "
                                                             "fault in the capture." + garps)])
    fig = go.Figure()
    names = list(series)
    for i, name in enumerate(names):
        vals = [v for v, _ in series[name]]
        e = estimate(name, vals, unit="s")
        label = f"{name} — {stat_line(e)}"
        fig.add_trace(go.Scatter(x=vals, y=[name] * len(vals), mode="markers", name=_esc(label),
                                 text=[_esc(t) for _, t in series[name]],
                                 marker=dict(size=10, color=COLORS[i % len(COLORS)], opacity=0.8),
                                 hovertemplate="%{x:.3g}: %{text}<extra></extra>"))
    layout(fig, title, xaxis_title="seconds", yaxis=dict(autorange="reversed"),
           height=220 + 45 * len(names), legend=dict(orientation="h", y=-0.3), showlegend=True)
    caption = ("Each marker is one failover; n counts them and an interval needs at least 3. "
               "Silence: from the old master's last advert to the new master's first (Master_Down_Interval minus "
               "the fault's phase in the advert cycle). Detection, VIP move and service restored are simsip trace "
               "import's measurements from the fault time." + garps)
    missing = [] if m is not None else [("detection, VIP move, service restored", inf.measured_note or "not measured")]
    return InferencePanel("failover", title, fig, caption, missing)


def recovery_panel(inf: Any) -> InferencePanel:
    m = getattr(inf, "measured", None)
    title = "Phones' recovery after each disturbance"
    if m is None:
        return InferencePanel("recovery", title, None, "",
                              [("recovery", inf.measured_note or "failover metrics not computed")])
    rec = m.metrics.recovery
    if not len(rec):
        return InferencePanel("recovery", title, None, "",
                              [("recovery", "no phone lost reachability around a fault in the capture")])
    fig = recovery_cdf_figure(rec, m.metrics.end)
    rt = rec["recovery_time"].to_numpy(dtype=float)
    from simsip.trace.infer import estimate

    e = estimate("recovery", rt[np.isfinite(rt)], unit="s")
    never = int(np.isnan(rt).sum())
    layout(fig, f"{title} — {_esc(stat_line(e))}" + (f"; {never} not recovered" if never else ""),
           xaxis_title="seconds from disturbance to reachable", yaxis_title="share of affected phones reachable again",
           yaxis_range=[0, 1.02], legend=dict(orientation="h", y=-0.2))
    return InferencePanel("recovery", title, fig,
                          "Share of the phones that lost reachability reachable again within x seconds "
                          "(Kaplan–Meier: phones still unreachable at the end of the capture are censored there). "
                          "The median and its interval are over the phones that recovered. This is the "
                          "forecast a simulation of the inferred scenario should reproduce.")


def inference_panels(inference: Any) -> list[InferencePanel]:
    """The page's sections in order, each a figure or a "not observed" panel."""
    return [refresh_panel(inference), latency_panel(inference), retry_panel(inference), streak_panel(inference),
            keepalive_panel(inference), vrrp_advert_panel(inference), vrrp_priority_panel(inference),
            vrrp_timeline_panel(inference), failover_panel(inference), recovery_panel(inference)]


def inference_figures(inference: Any) -> dict[str, go.Figure]:
    """The page's plotly figures by name (only the observed ones), for notebooks and slides."""
    return {p.name: p.figure for p in inference_panels(inference) if p.figure is not None}


# =============================================================================== the page
def _estimates_table(inf: Any) -> str:
    rows = []

    def row(group: str, e: Any) -> None:
        q = e.quantiles
        spread = f"{_value(q[0], e.unit)} – {_value(q[4], e.unit)}" if q else ""
        rows.append(f"<tr><td>{html.escape(group)}</td><td>{html.escape(e.name)}</td><td class=num>{e.n}</td>"
                    f"<td>{html.escape(stat_line(e))}</td><td class=num>{html.escape(spread)}</td>"
                    f"<td>{html.escape(e.evidence)}</td></tr>")

    for f in inf.fleets[:MAX_ROWS]:
        for e in (f.refresh_per_phone, f.refresh_fraction, f.refresh_margin, f.requested_expires, f.granted_expires,
                  f.t1, f.t2, f.max_retransmissions, f.timeout_wait, *f.error_waits.values(),
                  *f.streak_waits.values(), f.keepalive_interval):
            row(f"fleet {_clean(f.name)}", e)
    row("registrar", inf.registrar.latency)
    row("registrar", inf.registrar.min_expires)
    row("HA", inf.ha.advert_int)
    row("HA", inf.ha.advert_gap)
    row("HA", inf.ha.weight)
    row("HA", inf.ha.preempt_delay)
    return ("<table><tr><th>group</th><th>value</th><th>n</th><th>median and 95 % CI</th><th>p5 – p95</th>"
            "<th>what it rests on</th></tr>" + "".join(rows) + "</table>")


def _clean(text: Any) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))


def _fleets_table(inf: Any) -> str:
    if not inf.fleets:
        return '<p class="msg">No REGISTER in the capture: the scenario has one placeholder fleet.</p>'
    rows = "".join(
        f"<tr><td>{html.escape(_clean(f.name))}</td><td>{html.escape(_clean(f.user_agent))}</td><td>{f.transport}</td>"
        f"<td>{html.escape(f.profile)}</td><td class=num>{count(f.phones)}</td><td class=num>{count(f.addresses)}</td>"
        f"<td class=num>{count(f.transactions)}</td></tr>" for f in inf.fleets[:200])
    more = f"<p>{len(inf.fleets) - 200} more fleets not listed.</p>" if len(inf.fleets) > 200 else ""
    return ("<table><tr><th>fleet</th><th>User-Agent</th><th>transport</th><th>profile</th><th>phones (AORs)</th>"
            "<th>source addresses</th><th>REGISTER transactions</th></tr>" + rows + "</table>" + more)


def _not_observed(panel: InferencePanel) -> str:
    items = "".join(f"<li><b>{html.escape(_clean(g))}</b>: {html.escape(_clean(why))}</li>" for g, why in panel.missing)
    if panel.figure is None:
        return (f'<div class="msg notobs" id="panel-{panel.name}"><b>{html.escape(panel.title)}: not observed.</b>'
                f"<ul>{items}</ul>The scenario uses the profile's value here.</div>")
    return f'<div class="msg notobs" id="missing-{panel.name}">Not observed:<ul>{items}</ul></div>' if items else ""


def render_inference_report(inference: Any, name: str = "inferred", scenario_file: str | os.PathLike | None = None) -> str:
    """The HTML text of the inference page (``scenario_file``: the YAML it accompanies, named on the page)."""
    inf = inference
    files = ", ".join(str(f) for f in inf.files)
    body = [f"<h1>simsip trace infer: {html.escape(_clean(name))}</h1>",
            f'<p class="sub">{html.escape(_clean(files))}: {count(inf.packets)} packets, {human(inf.duration)}; '
            f"VIP {html.escape(inf.vip or '?')}</p>"]
    if scenario_file is not None:
        body.append(f"<p>The inferred scenario: <code>{html.escape(str(scenario_file))}</code> (each value commented "
                    "with its evidence; <code>simsip run</code> takes it as is).</p>")
    notes = list(inf.notes) + ([inf.measured_note] if inf.measured_note else [])
    if notes:
        body.append('<div class="banner">' + "<br>".join(html.escape(_clean(n)) for n in notes) + "</div>")
    if inf.skipped:
        body.append("<p>Skipped packets: " + html.escape(", ".join(f"{k} = {v}" for k, v in inf.skipped.items())) + "</p>")
    body.append("<h2>Fleets</h2>" + _fleets_table(inf))
    r = inf.registrar
    h = inf.ha
    words = [f"Registrar profile {html.escape(r.profile)} ({html.escape(_clean(r.profile_reason))}); grant rule: "
             f"{html.escape(_clean(r.grant_rule))}; final responses per node: "
             f"{html.escape(', '.join(f'{k} {v}' for k, v in list(r.answered_by.items())[:10]) or 'none')}."]
    if h.stack == "keepalived":
        words.append(f"VRRP v{h.version}, VRID {h.vrid}, {len(h.master_changes)} change(s) of master, "
                     f"{h.priority_zero} priority-0 advert(s), {len(h.dual_masters)} period(s) with two masters.")
    elif h.stack:
        words.append(f"HA stack: {html.escape(h.stack)} traffic seen (no VRRP): its timers are not read from the wire.")
    else:
        words.append("No HA traffic (VRRP, heartbeat, corosync) in the capture.")
    body.append('<ul class="words">' + "".join(f"<li>{w}</li>" for w in words) + "</ul>")
    for panel in inference_panels(inf):
        body.append(f"<h2>{html.escape(panel.title)}</h2>")
        if panel.figure is not None:
            body.append(figure_block(panel.name, panel.figure, panel.caption))
        body.append(_not_observed(panel))
    body.append("<h2>Every inferred value</h2><p>The median of the observations with its distribution-free 95 % "
                "interval (binomial order statistics), and the p5–p95 spread of the observations.</p>"
                + _estimates_table(inf))
    return page(f"simsip trace infer — {_clean(name)}", "\n".join(body))


def write_inference_report(inference: Any, path: str | os.PathLike, name: str | None = None,
                           scenario_file: str | os.PathLike | None = None) -> Path:
    """Write the self-contained HTML page of an :class:`~simsip.trace.infer.Inference` to ``path``
    (atomically), the distributions behind each inferred value; returns the path."""
    target = Path(path)
    return write_page(target, render_inference_report(inference, name or target.stem, scenario_file))
