"""The setup of a run in a picture and in words: who registers where, and what breaks when.

A failover review starts with the deployment: the phone fleets register through the virtual IP,
keepalived decides which registrar node serves it, and where the registrations live (each node's
memory, one shared store, or replicated between nodes) decides what a new master knows. Both the
drawing (:func:`topology_figure`) and the sentences (:func:`scenario_sentences`) are read from the
validated :class:`~simsip.config.schema.Scenario`; what a fault does is said in the fault table's
words (:mod:`simsip.faults`).
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

import numpy as np
import plotly.graph_objects as go

from simsip.config.schema import Scenario
from simsip.faults import BY_NAME as FAULT_KINDS

from .toolkit import count, human, layout


# =============================================================================== topology
#: Fleets drawn one by one in the topology; beyond, the others share one node.
MAX_FLEETS_DRAWN = 12



def _workers_words(reg) -> str:
    """``N workers``, or the growing threadpool's sizes."""
    tp = reg.threadpool
    if tp is None:
        return f"{reg.workers} workers"
    top = f"up to {tp.max_size}" if tp.max_size else "without limit"
    ser = f", {tp.serializers} serving REGISTERs at once at most" if tp.serializers else ""
    return f"a threadpool of {tp.initial_size} threads growing by {tp.auto_increment} {top}{ser}"

def topology_graph(scenario: Scenario) -> Any:
    """The deployment as a layered networkx graph: fleets → VIP → nodes → binding stores.

    Node attributes: ``layer`` (0..3), ``label`` (text shown), ``kind``; edge attributes
    ``label`` and ``style`` ('solid' for SIP, 'dash' for VRRP, 'dot' for replication/store access).
    """
    import networkx as nx

    g = nx.DiGraph()
    ha, reg = scenario.ha, scenario.registrar
    vrrp = ha.vrrp
    drawn = list(scenario.fleets[:MAX_FLEETS_DRAWN]) if len(scenario.fleets) > MAX_FLEETS_DRAWN + 1 else list(scenario.fleets)
    for f in drawn:
        g.add_node(f"fleet:{f.name}", layer=0, kind="fleet",
                   label=f"<b>{html.escape(f.name)}</b><br>{count(f.count)} phones<br>{html.escape(f.profile or 'custom')}, "
                         f"expires {human(f.phone.expires)}")
    rest = scenario.fleets[len(drawn):]
    if rest:  # one node for the others: the drawing stays readable (and quick) with hundreds of fleets
        g.add_node("fleet:(more)", layer=0, kind="fleet",
                   label=f"<b>{len(rest):,} more fleets</b><br>{count(sum(f.count for f in rest))} phones")
    hc = ha.health_check
    g.add_node("vip", layer=1, kind="vip",
               label=(f"<b>VIP</b><br>keepalived VRRPv{vrrp.version}<br>advert {human(vrrp.advert_int)}"
                      f"{', preempt' if vrrp.preempt else ', nopreempt'}"
                      + (f"<br>track_script {hc.kind}" if hc is not None else "")) if ha.kind == "keepalived"
               else f"<b>VIP</b><br>{_stack_label(ha)}")
    nodes = list(ha.nodes)
    top = max((n.priority for n in nodes), default=100)
    faulted: dict[str, list[str]] = {}
    for f in scenario.faults:
        faulted.setdefault(f.node, []).append(f"{f.kind} at {human(f.at)}")
    for n in nodes:
        role = "initial master" if n.priority == top else "backup"
        extra = faulted.get(n.name, []) + (faulted.get("master", []) if n.priority == top else []) + (
            faulted.get("backup", []) if n.priority != top else [])
        g.add_node(f"node:{n.name}", layer=2, kind="node", faults=extra,
                   label=f"<b>{html.escape(n.name)}</b><br>priority {n.priority} ({role})<br>"
                         f"{html.escape(reg.profile or 'registrar')}, {_workers_words(reg)}"
                         + "".join(f"<br>⚡ {html.escape(x)}" for x in extra))
    for f in drawn:
        g.add_edge(f"fleet:{f.name}", "vip", label="REGISTER (UDP)", style="solid")
    if rest:
        g.add_edge("fleet:(more)", "vip", label="REGISTER (UDP)", style="solid")
    for n in nodes:
        g.add_edge("vip", f"node:{n.name}", label="", style="solid")
    for a, b in zip(nodes, nodes[1:]):
        g.add_edge(f"node:{a.name}", f"node:{b.name}", label="VRRP adverts", style="dash")
    if reg.data == "shared":
        g.add_node("store:shared", layer=3, kind="store", label="<b>shared store</b><br>one DB all nodes read<br>(data: shared)")
        for n in nodes:
            g.add_edge(f"node:{n.name}", "store:shared", label="", style="dot")
    else:
        mode = "replicated (DMQ)" if reg.data == "replicated" else "memory only"
        for n in nodes:
            g.add_node(f"store:{n.name}", layer=3, kind="store", label=f"<b>bindings {html.escape(n.name)}</b><br>{mode}")
            g.add_edge(f"node:{n.name}", f"store:{n.name}", label="", style="dot")
        if reg.data == "replicated":
            for a, b in zip(nodes, nodes[1:]):
                g.add_edge(f"store:{a.name}", f"store:{b.name}", label=f"replication, lag {human(reg.replication.lag.mean)}",
                           style="dash")
    return g


def topology_figure(scenario: Scenario) -> go.Figure:
    """The deployment drawn from :func:`topology_graph` (networkx multipartite layout → plotly)."""
    import networkx as nx

    g = topology_graph(scenario)
    fig = go.Figure()
    pos = nx.multipartite_layout(g, subset_key="layer", align="vertical", scale=1.0)
    # keep every layer top-down in insertion order and centred
    layers: dict[int, list[str]] = {}
    for n, d in g.nodes(data=True):
        layers.setdefault(int(d["layer"]), []).append(n)
    for layer_no, members in layers.items():
        k = len(members)
        for i, n in enumerate(members):
            pos[n] = np.array([layer_no * 1.0, (k - 1) / 2.0 - i])
    style_color = {"solid": "#555", "dash": "#9467bd", "dot": "#8c564b"}
    bracket = 0.36  # edges within a layer (VRRP, replication) run as a bracket right of the labels

    def path(a: str, b: str) -> tuple[list[float], list[float]]:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        if abs(x0 - x1) < 1e-9:
            return [x0 + 0.04, x0 + bracket, x1 + bracket, x1 + 0.04], [y0, y0, y1, y1]
        return [x0, x1], [y0, y1]

    for style in ("solid", "dash", "dot"):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for a, b, d in g.edges(data=True):
            if d["style"] != style:
                continue
            px, py = path(a, b)
            xs += [float(v) for v in px] + [None]
            ys += [float(v) for v in py] + [None]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                                     line=dict(color=style_color[style], width=2, dash=style)))
    notes = []  # added in one assignment: plotly's add_annotation is quadratic in the annotations
    for a, b, d in g.edges(data=True):
        if not d.get("label"):
            continue
        (x0, y0), (x1, y1) = pos[a], pos[b]
        same_layer = abs(x0 - x1) < 1e-9
        notes.append(dict(x=x0 + bracket + 0.02 if same_layer else (x0 + x1) / 2, y=(y0 + y1) / 2 + (0 if same_layer else 0.08),
                          text=d["label"].replace(", ", "<br>") if same_layer else d["label"], showarrow=False,
                          font=dict(size=10, color=style_color[d["style"]]), xanchor="left" if same_layer else "center"))
    kind_color = {"fleet": "#1f77b4", "vip": "#ff7f0e", "node": "#2ca02c", "store": "#8c564b"}
    kind_symbol = {"fleet": "circle", "vip": "diamond", "node": "square", "store": "hexagon"}
    for kind in ("fleet", "vip", "node", "store"):
        members = [(n, d) for n, d in g.nodes(data=True) if d["kind"] == kind]
        if not members:
            continue
        border = ["#d62728" if d.get("faults") else "#333" for _, d in members]
        fig.add_trace(go.Scatter(
            x=[float(pos[n][0]) for n, _ in members], y=[float(pos[n][1]) for n, _ in members],
            mode="markers+text", text=[d["label"] for _, d in members], textposition="bottom center",
            textfont=dict(size=11), hovertext=[re.sub("<[^>]+>", " ", d["label"]) for _, d in members], hoverinfo="text",
            marker=dict(size=30, color=kind_color[kind], symbol=kind_symbol[kind], line=dict(width=3, color=border)),
            name={"fleet": "phone fleets", "vip": "virtual IP", "node": "registrar nodes", "store": "binding stores"}[kind]))
    ymax = max(float(p[1]) for p in pos.values())
    ymin = min(float(p[1]) for p in pos.values())
    fig.update_xaxes(visible=False, range=[-0.45, 3.75])
    fig.update_yaxes(visible=False, range=[ymin - 0.9, ymax + 0.45])
    for i, title in enumerate(("phones", "virtual IP", "registrar nodes", "registrations")):
        notes.append(dict(x=i, y=ymax + 0.38, text=f"<i>{title}</i>", showarrow=False, font=dict(size=11, color="#777")))
    fig.update_layout(annotations=notes)
    return layout(fig, f"Deployment: {scenario.name} (registration data: {scenario.registrar.data})",
                  height=260 + 120 * max(len(v) for v in layers.values()), legend=dict(orientation="h", y=-0.05))


# =============================================================================== the scenario in words
DATA_WORDS = {
    "none": "each node keeps only the bindings it received itself (no replication): after a failover the new "
            "master knows none of the phones until each one's next REGISTER reaches it",
    "shared": "all nodes read one shared registration store (e.g. Kamailio usrloc db_mode 3): the new master "
              "sees every binding at once, so only the VIP move itself costs reachability",
    "replicated": "the nodes replicate every save at the SIP level (e.g. Kamailio DMQ): the new master has what "
                  "arrived before the crash, minus saves still in flight",
}


def _refresh_words(refresh: Any) -> str:
    if refresh.mode == "percent":
        return f"refreshes at {float(refresh.percent):g} % of the granted expiry"
    margin = human(refresh.margin)
    if refresh.mode == "margin":
        return f"refreshes {margin} before the granted expiry (half-way when the expiry is shorter)"
    return f"refreshes half-way through the granted expiry, or {margin} before it when that is later"


def _retry_words(retry: Any) -> str:
    if retry.mode == "backoff":
        return f"after a failure backs off RFC 5626-style from {human(retry.base)} up to {human(retry.max)}"
    s = f"retries a failed REGISTER every {human(retry.interval)}"
    return s + (f" (± {human(retry.spread)})" if retry.spread else " (no jitter)")


def _stack_label(ha: Any) -> str:
    """The HA stack in a few words (heartbeat and pacemaker; keepalived is described in full)."""
    if ha.kind == "heartbeat":
        hb = ha.heartbeat
        return f"heartbeat (keepalive {human(hb.keepalive)}, deadtime {human(hb.deadtime)})"
    cs = ha.corosync
    return f"corosync/pacemaker (token {human(cs.token)}, stonith {'on' if ha.pacemaker.stonith_enabled else 'off'})"


def scenario_sentences(scn: Scenario, capacity: float = math.nan) -> list[str]:
    """The scenario as a few plain sentences (HTML): fleets, VIP and nodes, registrar, network, faults."""
    out: list[str] = []
    for f in scn.fleets:
        ph = f.phone
        s = (f"<b>{count(f.count)}</b> phones in fleet <i>{html.escape(f.name)}</i>"
             f"{' (profile ' + html.escape(f.profile) + ')' if f.profile else ''} request "
             f"{human(ph.expires)}, {_refresh_words(ph.refresh)} and {_retry_words(ph.retry)}")
        granted = scn.registrar.grant(ph.expires)
        r = ph.refresh.interval(granted)
        s += (f"; with the registrar granting {human(granted)} each phone refreshes every <b>{human(r)}</b> — "
              f"without replication a failover leaves a phone unreachable ≈ {human(r / 2)} on average, "
              f"{human(r)} at worst")
        if f.server == "sbc" and scn.sbc is not None:
            from simsip.protocols.trunk import sbc_cycle, sbc_expires_out, sbc_upstream_expires

            out_e = scn.sbc.outgoing_expires
            e_out = sbc_expires_out(scn.registrar.grant(sbc_upstream_expires(granted, out_e)), out_e)
            cyc = sbc_cycle(e_out, granted, r)
            s += (f"; they register through a <b>caching SBC</b> that answers their refreshes itself and forwards one "
                  f"to the registrar every <b>{human(cyc)}</b> (outgoing_expires {human(out_e)}): after a failover that "
                  f"loses bindings a phone waits ≈ {human(cyc / 2)} on average for the SBC's next forward")
        if f.start == "boot_storm":
            s += f"; they all boot within {human(f.boot_window)} at the start"
        if scn.connection_bound(f):
            ka = ph.flow_keepalive
            why = "behind NAT" if ph.nat else "with contacts rewritten to their connection"
            s += (f". Over {ph.transport.upper()} {why}, a binding reaches a phone only over the connection it "
                  "registered on: a new master holding a replicated or shared binding cannot call the phone until "
                  "it reconnects — at its next keep-alive"
                  + (f" (every {human(ka.interval)})" if ka.kind != "none" else " (none: its next refresh or retry)")
                  + " or REGISTER")
        out.append(s + ".")
    reg, ha = scn.registrar, scn.ha
    vrrp = ha.vrrp
    node_txt = ", ".join(f"{html.escape(n.name)} (priority {n.priority})" for n in ha.nodes)
    if ha.kind != "keepalived":
        out.append(f"They register to a virtual IP that {_stack_label(ha)} moves between {len(ha.nodes)} registrar "
                   f"nodes: {node_txt}.")
    s = (f"They register to a virtual IP that keepalived (VRRPv{vrrp.version}, advert every "
         f"{human(vrrp.advert_int)}, {'preempt' if vrrp.preempt else 'nopreempt'}"
         f"{', preempt_delay ' + human(vrrp.preempt_delay) if vrrp.preempt_delay else ''}) "
         f"moves between {len(ha.nodes)} registrar nodes: {node_txt}.")
    if ha.kind != "keepalived":
        s = ""
    elif len(ha.nodes) > 1:
        backups = sorted(ha.nodes, key=lambda n: -n.priority)[1:]
        mdi = ", ".join(f"{html.escape(n.name)} {vrrp.master_down_interval(n.priority):.3g} s" for n in backups)
        s += f" A backup takes over when no advert came for its Master_Down_Interval ({mdi})."
    hc = ha.health_check
    if hc is not None and ha.kind == "keepalived":
        what = ("A track_process watches the registrar's process" if hc.kind == "process" else
                f"A track_script ({hc.kind}) checks the local registrar every {human(hc.interval)}")
        fails = "its exit" if hc.kind == "process" else f"{hc.fall} failure(s)"
        if hc.weight == 0:
            s += f" {what}; {fails} put the node in FAULT and release the VIP (a priority-0 advert)."
        else:
            s += (f" {what} with weight {hc.weight}{' reverse' if hc.reverse else ''}: {fails} change the "
                  "node's priority instead of FAULT, so the VIP moves only if that brings the master below a "
                  "preempting backup, and then after the backup's own Master_Down_Interval.")
    if s:
        out.append(s)
    out.append(f"Each node runs {html.escape(reg.profile or 'the registrar')} with {_workers_words(reg)}"
               + (f" (capacity ≈ {capacity:,.0f} REGISTER/s)" if math.isfinite(capacity) else "")
               + f"; registration data: <b>{html.escape(reg.data)}</b> — " + DATA_WORDS.get(reg.data, "") + "."
               + (f" An AOR holds at most {reg.max_contacts} contact(s): one more gets {reg.contacts_full_status}"
                  + (" (the contacts that expire soonest are removed instead)." if reg.remove_existing else ".")
                  if reg.max_contacts is not None else ""))
    delay = scn.network.delay
    out.append(f"The network adds {human(delay.mean)} one-way delay ({delay.dist})"
               f" and loses {100 * float(scn.network.loss):g} % of SIP packets.")
    for t in scn.trunks:
        out.append(f"The PBX registers trunk <i>{html.escape(t.name)}</i> to its provider from the node holding the VIP "
                   f"(expiration {human(t.expiration)}, first REGISTER 1–{human(max(t.max_random_initial_delay, 1))} "
                   f"after a node takes over, retry every {human(t.retry_interval)} up to {t.max_retries} times); "
                   f"calls arrive at {'the VIP' if t.contact == 'vip' else 'the node that registered'}"
                   + (f", {t.calls_per_hour * 3600:g} inbound calls per hour." if t.calls_per_hour else "."))
    if not scn.faults:
        out.append("No faults are scheduled: this run shows the steady state.")
    for f in scn.faults:
        who = f"the {f.node} node" if f.node in ("master", "backup") else f"node {html.escape(f.node)}"
        s = f"At <b>{human(f.at)}</b> {who} {FAULT_KINDS[f.kind].words if f.kind in FAULT_KINDS else f.kind}"
        kind = FAULT_KINDS.get(f.kind)
        if kind is not None and kind.params:
            s += " (" + ", ".join(f"{p} {getattr(f, p):g}" for p in kind.params) + ")"
        if kind is not None and kind.arms:  # it arms an effect on the node's next start: nothing goes down
            s += f", lifted {human(f.repair_after)} later." if f.repair_after is not None else "."
        else:
            s += f"; it comes back {human(f.repair_after)} later." if f.repair_after is not None else " and stays down."
        out.append(s)
    return out
