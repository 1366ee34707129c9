"""From a simulator scenario to a real-lab run, and back.

The real lab (``simsip.lab``) is a fixed shape: one SIPp process playing N UDP or TCP phones whose
refreshes are spread evenly over one refresh interval (plus, when a second fleet has
``profile: baresip``, up to 10 real baresip UAs with baresip's own refresh and RFC 5626
backoff), two Kamailio registrars (memory only, DMQ replication, or a shared PostgreSQL
location table; ``registrar.workers`` children, a constant ``registrar.service_time`` as a
usleep per REGISTER, ``udp_buffer.maxbuffer``) behind one keepalived VRRP pair (optionally a
track_script, weighted or not) on an idle
Linux bridge, an OPTIONS prober that asks the VIP holder "do you have a binding for this AOR?"
every ``lab.probe_interval`` seconds, and a fault injector (faults at a random phase of the
advert timer; a repaired node crash reboots the node). A simsip :class:`~simsip.config.schema.
Scenario` can describe much more (many fleets, backoff retries, lossy networks, overload replies,
SIP health checks, hung processes, three-node clusters...). This module maps the part of a
scenario the lab can *really* realise onto a :class:`~simsip.lab.spec.LabSpec` and refuses the rest
loudly:

* :func:`spec_from_scenario` returns the LabSpec, or raises :class:`LabUnsupported` listing every
  item the lab cannot realise with its key path and why (never just the first one);
* :func:`mapping_notes` lists the scenario items the lab silently does its own way (the real
  Kamailio has its own workers and service time, the lab's own VRRP advert phase, ...);
* :func:`scenario_for_lab_run` goes the other way: given the scenario and a recorded run, it
  returns the scenario the simulator should run to be compared with that recording — the VRRP
  advert phase measured in the capture (so the model's crash lands at the same point of the
  advert cycle as the lab's did) and SIPp's even refresh phases.

Node names map to the lab's nodes in order: ``ha.nodes[0]`` is lab node ``a``, ``ha.nodes[1]`` is
``b``; the fault targets ``master``/``backup`` are kept (the lab resolves them when the fault fires,
as the simulator does).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from simsip import faults as fault_table
from simsip.config.schema import Scenario
from simsip.io import unpacked_run
from simsip.protocols.registration import refresh_interval
from simsip.protocols.transactions import sipp_timeout

from .configs import TIMER_INTERVAL
from .spec import MAX_BARESIP, MAX_WORKERS, Fault, LabSpec

__all__ = ["LabUnsupported", "spec_from_scenario", "mapping_notes", "scenario_for_lab_run",
           "MAX_LAB_PHONES", "MAX_LAB_DELAY", "lab_t0", "first_advert_phase", "refresh_phase_shift"]

#: One SIPp process and one prober round per probe interval: beyond this the prober's round no
#: longer fits into a 1 s interval on the 2-core lab machine and the capture grows too large.
MAX_LAB_PHONES = 500
#: The lab's one-way phone↔registrar delay is a Linux bridge between veth pairs: tens of µs.
#: A scenario asking for more than this cannot be realised (the lab adds no netem delay).
MAX_LAB_DELAY = 0.001

#: dmq_usrloc on the lab's bridge applies a replicated save about 0.2 ms after it (examples/lab/dmq):
#: a configured replication lag up to this is Kamailio's own, a longer constant one is a usleep() on
#: the peer before it handles the KDMQ update
MIN_REPLICATION_DELAY = 0.001

#: A second fleet with this profile is realised by real baresip UAs (``LabSpec.baresip``).
BARESIP_PROFILE = "baresip"

#: simsip fault kinds -> lab fault kinds (declared in the fault table).
_FAULT_KINDS = fault_table.LAB_KINDS


class LabUnsupported(ValueError):
    """The scenario asks for something the real lab cannot realise.

    ``problems`` holds one ``"key.path: why"`` string per unsupported item.
    """

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(
            f"{len(self.problems)} item(s) of the scenario cannot be realised by the real lab:\n  "
            + "\n  ".join(self.problems)
        )


def _s(x: float) -> str:
    return f"{x:g} s"


def _problems(cfg: Scenario) -> list[str]:  # noqa: C901 - one flat checklist reads best
    out: list[str] = []
    # ---- fleets / phones
    if cfg.trunks:
        out.append(f"trunks: {len(cfg.trunks)} trunk registration(s); the lab has no PBX registering to a provider")
    if not (len(cfg.fleets) == 1 or (len(cfg.fleets) == 2 and cfg.fleets[1].profile == BARESIP_PROFILE)):
        out.append(f"fleets: {len(cfg.fleets)} fleets; the lab runs one SIPp fleet, optionally followed "
                   f"by one fleet with `profile: {BARESIP_PROFILE}` (real baresip UAs)")
    if cfg.fleets and cfg.fleets[0].profile == BARESIP_PROFILE:
        out.append(f"fleets[0].profile: {BARESIP_PROFILE!r}; the first fleet is the lab's SIPp fleet — "
                   "put the baresip fleet second, after a SIPp fleet")
    if len(cfg.fleets) >= 2 and cfg.fleets[1].profile == BARESIP_PROFILE:
        out += _baresip_problems(cfg)
    for i, fl in enumerate(cfg.fleets[:1]):
        p = f"fleets[{i}]"
        ph = fl.phone
        if fl.count > MAX_LAB_PHONES:
            out.append(f"{p}.count: {fl.count} phones; the lab runs at most {MAX_LAB_PHONES} "
                       "(one prober round must fit in a probe interval)")
        if fl.start != "equilibrium":
            out.append(f"{p}.start: {fl.start!r}; the lab starts phones evenly over one refresh "
                       "interval during the warm-up (equilibrium), it has no boot storm")
        if fl.server == "sbc":
            out.append(f"{p}.server: 'sbc'; the lab has no registration-caching SBC (its SIPp phones register "
                       "to the VIP)")
        if fl.phases != "even":
            out.append(f"{p}.phases: {fl.phases!r}; SIPp starts phone k at k·R/N, i.e. even phases — "
                       "set `phases: even`")
        if ph.transport != "udp":
            out.append(f"{p}.phone.transport: {ph.transport!r}; the lab's SIPp phones use UDP only. SIPp 3.6.1 "
                       "(Debian 12) dies at the first TCP reset in -t tn mode (one connection per phone): "
                       "read_error() calls abort(), which frees the phone's socket, and then queues it for "
                       "reset_connection() (use after free; 'Unable to get a SCTP socket (3)'; fixed upstream by "
                       "queueing before abort). TCP phones in the lab: a second fleet with `profile: baresip` "
                       "and `phone.transport: tcp`")
        if ph.calls_per_hour > 0:
            out.append(f"{p}.phone.calls_per_hour: {ph.calls_per_hour * 3600:g}/h; the lab places no "
                       "calls (reachability is probed with OPTIONS at the registrar)")
        granted = cfg.registrar.grant(ph.expires)
        if abs(granted - ph.expires) > 1e-9:
            out.append(f"{p}.phone.expires: {_s(ph.expires)} is granted as {_s(granted)} by "
                       "registrar.min_expires/max_expires; SIPp refreshes on the requested expiry, "
                       "not the granted one — make the registrar grant what the phone asks")
        if ph.expires != int(ph.expires):
            out.append(f"{p}.phone.expires: {_s(ph.expires)}; SIP Expires is whole seconds")
        rf = ph.refresh
        interval = rf.interval(ph.expires)
        if rf.min_interval > interval + 1e-9:
            out.append(f"{p}.phone.refresh.min_interval: {_s(rf.min_interval)} exceeds the refresh "
                       f"interval ({_s(interval)}); SIPp has no minimum refresh interval")
        tm = ph.timers
        if ph.transport == "tcp":
            pass  # SIPp sends once over TCP and waits Timer F (timers.timeout) for the 200
        elif tm.max_retransmissions is None:
            out.append(f"{p}.phone.timers.max_retransmissions: null (Timer F {_s(tm.timeout)} alone); "
                       "SIPp has no Timer F, it ends a transaction after -max_retrans K retransmissions "
                       f"— set it (K=9 times out at {_s(sipp_timeout(tm.t1, tm.t2, 9))} at T1 500 ms)")
        elif tm.timer_f is not None and sipp_timeout(tm.t1, tm.t2, tm.max_retransmissions) > tm.timer_f + 1e-9:
            out.append(f"{p}.phone.timers.timer_f: {_s(tm.timer_f)} ends the transaction before "
                       f"max_retransmissions {tm.max_retransmissions} do "
                       f"({_s(sipp_timeout(tm.t1, tm.t2, tm.max_retransmissions))}); SIPp has no Timer F")
        if abs(tm.t1 * 1000 - round(tm.t1 * 1000)) > 1e-6 or abs(tm.t2 * 1000 - round(tm.t2 * 1000)) > 1e-6:
            out.append(f"{p}.phone.timers: t1/t2 need millisecond resolution for SIPp")
        rt = ph.retry
        if rt.mode != "fixed":
            out.append(f"{p}.phone.retry.mode: {rt.mode!r}; the SIPp phone retries after a fixed "
                       "pause only (no RFC 5626 backoff)")
        else:
            if rt.first_interval is not None and abs(rt.first_interval - rt.interval) > 1e-9:
                out.append(f"{p}.phone.retry.first_interval: {_s(rt.first_interval)} differs from "
                           f"interval {_s(rt.interval)}; the SIPp phone has one fixed retry pause")
            if rt.spread > 0:
                out.append(f"{p}.phone.retry.spread: {_s(rt.spread)}; the SIPp retry pause has no jitter")
            if rt.timeout_interval is not None and abs(rt.timeout_interval - rt.interval) > 1e-9:
                out.append(f"{p}.phone.retry.timeout_interval: {_s(rt.timeout_interval)} differs from "
                           f"interval {_s(rt.interval)}; the SIPp phone waits the same after a "
                           "timeout and an error reply")
        if rt.max_attempts > 0:
            out.append(f"{p}.phone.retry.max_attempts: {rt.max_attempts}; the SIPp phone retries "
                       "for ever (0)")
    # ---- registrar
    rg = cfg.registrar
    if rg.when_full != "drop":
        out.append(f"registrar.when_full: {rg.when_full!r}; the lab's Kamailio has no scripted "
                   "overload reply (it drops what its socket buffer cannot hold)")
    if rg.persistence in ("write_through", "write_back"):
        # usrloc db_mode 1/2: each node's own table in a database of its own, preloaded at start
        if rg.data != "none" or rg.storage != "local":
            out.append(f"registrar.persistence: {rg.persistence!r} with data {rg.data!r} and storage {rg.storage!r}; "
                       "the lab realises write-through/write-back (usrloc db_mode 1/2) as a table per node "
                       "(data: none, storage: local), and a shared table as db_mode 3 (data: shared)")
        if rg.persistence == "write_back" and abs(float(rg.flush_interval) - TIMER_INTERVAL) > 1e-9:
            out.append(f"registrar.flush_interval: {_s(rg.flush_interval)}; the lab's usrloc timer_interval, "
                       f"which drives db_mode 2's write-back, is {TIMER_INTERVAL:g} s")
        if rg.preload != "first_worker":
            out.append(f"registrar.preload: {rg.preload!r}; Kamailio's first UDP worker preloads while the others "
                       "answer (first_worker)")
        if rg.workers < 2:
            out.append("registrar.workers: 1 with a preload; the lab's Kamailio would answer nothing until the "
                       "preload ends, which the model's first_worker rule does not say: give 2 or more")
    if rg.expires_range > 0:
        out.append(f"registrar.expires_range: {rg.expires_range:g} %; the lab's Kamailio grants "
                   "exactly the requested expiry (SIPp would not follow a shortened grant)")
    if rg.lookup_grace > 0:
        out.append(f"registrar.lookup_grace: {_s(rg.lookup_grace)}; Kamailio's registered() has no "
                   "grace after expiry")
    if rg.transactions != "stateless":
        out.append(f"registrar.transactions: {rg.transactions!r}; the lab's Kamailio calls save() without "
                   "t_newtran() (stateless: every retransmission it reads is saved and answered again)")
    if rg.workers > MAX_WORKERS:
        out.append(f"registrar.workers: {rg.workers}; the lab runs at most {MAX_WORKERS} Kamailio children "
                   "per socket (2-core machine)")
    st = rg.service_time
    if st.dist == "constant" and st.mean > 1.0:
        out.append(f"registrar.service_time: {_s(st.mean)}; the lab's usleep() per REGISTER is at most 1 s")
    ub = rg.udp_buffer
    if ub is not None and ub.sizing != "kamailio":
        out.append(f"registrar.udp_buffer.sizing: {ub.sizing!r}; the lab's Kamailio always probes SO_RCVBUF "
                   "up to maxbuffer at start-up (sizing: kamailio)")
    lag = rg.replication.lag
    if rg.data == "replicated" and lag.expected > MIN_REPLICATION_DELAY and (lag.dist != "constant" or lag.mean > 1.0):
        out.append(f"registrar.replication.lag: {lag.dist} with mean {_s(lag.expected)}; the lab realises a "
                   f"replication lag above {MIN_REPLICATION_DELAY * 1000:g} ms only as a constant of at most 1 s "
                   "(a usleep() on the peer before it applies the KDMQ update)")
    if rg.data == "replicated" and rg.replication.send_delay > 0:
        out.append(f"registrar.replication.send_delay: {_s(rg.replication.send_delay)}; the lab's dmq_usrloc sends "
                   "each update from inside save() (0), it cannot hold updates on the sender")
    if rg.data == "replicated" and not rg.replication.sync_on_start:
        out.append("registrar.replication.sync_on_start: false; the lab's dmq_usrloc runs with sync 1")
    rp = rg.replication
    if rg.data == "replicated" and rp.batch_msg_contacts != 1:
        out.append(f"registrar.replication.batch_msg_contacts: {rp.batch_msg_contacts}; the lab's dmq_usrloc sends "
                   "one KDMQ per contact (the default 1)")
    if rg.data == "replicated" and rp.sync_socket != "node":
        out.append("registrar.replication.sync_socket: shared; the lab's Kamailio listens on the node address (KDMQ) "
                   "and on the VIP (REGISTERs), two sockets")
    if rg.data == "replicated" and (rp.sync_t1, rp.sync_t2, rp.sync_timeout) != (0.5, 4.0, 30.0):
        out.append("registrar.replication.sync_t1/sync_t2/sync_timeout: the lab's tm runs its defaults (500 ms, "
                   "4 s, 30 s)")
    if rg.data == "replicated" and rp.ping_interval not in (None, 60.0):
        out.append(f"registrar.replication.ping_interval: {_s(rp.ping_interval)}; the lab's dmq pings every 60 s "
                   "(the default)")
    # ---- HA
    ha = cfg.ha
    if len(ha.nodes) != 2:
        out.append(f"ha.nodes: {len(ha.nodes)} nodes; the lab has exactly two (a, b)")
    for i, n in enumerate(ha.nodes[:2]):
        if not 1 <= n.priority <= 254:
            out.append(f"ha.nodes[{i}].priority: {n.priority}; the lab's nodes take 1..254 "
                       "(255 = address owner is not set up)")
    v = ha.vrrp
    if v.down_timer_adverts != 3:
        out.append(f"ha.vrrp.down_timer_adverts: {v.down_timer_adverts}; keepalived fixes it at 3")
    if v.version == 3 and v.advert_int < 0.01:
        out.append(f"ha.vrrp.advert_int: {_s(v.advert_int)}; VRRPv3 takes >= 10 ms")
    if not v.garp_lower_prio:
        out.append("ha.vrrp.garp_lower_prio: false; the lab runs keepalived's default "
                   "(garp_lower_prio_repeat on)")
    if v.advert_delay.expected > MAX_LAB_DELAY:
        out.append(f"ha.vrrp.advert_delay: mean {_s(v.advert_delay.expected)}; the lab's nodes sit "
                   f"on one bridge (<= {MAX_LAB_DELAY * 1000:g} ms)")
    hc = ha.health_check
    if hc is not None and hc.kind != "socket":
        out.append(f"ha.health_check.kind: {hc.kind!r}; the lab's track_script checks the Kamailio "
                   "UDP socket only (kind: socket)")
    if hc is not None and not -253 <= hc.weight <= 253:
        out.append(f"ha.health_check.weight: {hc.weight}; keepalived's track_script weight is -253..253")
    if v.garp_master_refresh > 0:
        out.append(f"ha.vrrp.garp_master_refresh: {_s(v.garp_master_refresh)}; the lab's keepalived sends "
                   "no periodic GARP (keepalived's default 0)")
    if v.use_vmac:
        out.append("ha.vrrp.use_vmac: true; the lab's keepalived runs without a virtual MAC")
    if v.vip_move != "garp":
        out.append(f"ha.vrrp.vip_move: {v.vip_move!r}; the lab is one LAN bridge: the VIP moves by GARP")
    # ---- network
    nw = cfg.network
    if nw.delay.expected > MAX_LAB_DELAY or (nw.delay.dist == "uniform" and nw.delay.high > MAX_LAB_DELAY):
        out.append(f"network.delay: mean {_s(nw.delay.expected)}; the lab's bridge adds tens of µs "
                   f"and no emulated delay (<= {MAX_LAB_DELAY * 1000:g} ms can be compared)")
    if nw.loss > 0:
        out.append(f"network.loss: {nw.loss:g}; the lab's bridge loses nothing (no netem)")
    if nw.arp.mode != "per_phone":
        out.append(f"network.arp.mode: {nw.arp.mode!r}; the lab's phones share the VIP's L2 (per_phone)")
    if nw.arp.garp_loss > 0:
        out.append(f"network.arp.garp_loss: {nw.arp.garp_loss:g}; the lab loses no GARP")
    # ---- faults
    names = [n.name for n in ha.nodes]
    for i, f in enumerate(cfg.faults):
        if f.kind not in _FAULT_KINDS:
            why = fault_table.kind(f.kind).lab_why
            out.append(f"faults[{i}].kind: {f.kind!r}; {why} (lab kinds: {sorted(_FAULT_KINDS)})")
        if f.node not in ("master", "backup") and f.node in names and names.index(f.node) > 1:
            out.append(f"faults[{i}].node: {f.node!r} is the third node or later; the lab has two")
    return out


def _baresip_problems(cfg: Scenario) -> list[str]:
    """What the second (``profile: baresip``) fleet asks that real baresip 1.0 UAs cannot do.

    The lab's baresip UAs behave as baresip does (refresh at 90 % of the grant, libre's failwait
    backoff 30·2^min(n,6) s × U[0.5, 1], capped at 1800 s, RFC 3261 timers); the fleet may set
    only how many there are. They register with the SIPp fleet's expiry (one ``expires`` per lab
    run)."""
    out: list[str] = []
    p = "fleets[1]"
    fl, ph0 = cfg.fleets[1], cfg.fleets[0].phone
    ph = fl.phone
    if fl.count > MAX_BARESIP:
        out.append(f"{p}.count: {fl.count} baresip UAs; the lab runs at most {MAX_BARESIP} (one process each)")
    if ph.transport not in ("udp", "tcp"):
        out.append(f"{p}.phone.transport: {ph.transport!r}; the lab's baresip UAs register over UDP or TCP")
    if ph.calls_per_hour > 0:
        out.append(f"{p}.phone.calls_per_hour: {ph.calls_per_hour * 3600:g}/h; the lab places no calls")
    if abs(float(ph.expires) - float(ph0.expires)) > 1e-9:
        out.append(f"{p}.phone.expires: {_s(ph.expires)} differs from fleets[0] ({_s(ph0.expires)}); the "
                   "lab's baresip UAs register with the SIPp fleet's expiry (regint) — set them equal")
    rf = ph.refresh
    if not (rf.mode == "percent" and abs(rf.percent - 90) < 1e-9):
        out.append(f"{p}.phone.refresh: mode {rf.mode!r}; baresip refreshes at 90 % of the granted expiry "
                   "(mode: percent, percent: 90)")
    rt = ph.retry
    if not (rt.mode == "backoff" and abs(rt.base - 30) < 1e-9 and abs(rt.max - 1800) < 1e-9
            and rt.exponent_offset == 1 and rt.max_attempts == 0):
        out.append(f"{p}.phone.retry: baresip retries by libre's failwait (mode: backoff, base: 30s, "
                   "max: 1800s, exponent_offset: 1, max_attempts: 0) — keep the profile's retry rule")
    tm = ph.timers
    if abs(tm.t1 - 0.5) > 1e-9 or abs(tm.t2 - 4.0) > 1e-9:
        out.append(f"{p}.phone.timers: baresip (libre) uses T1 500 ms / T2 4 s")
    if ph.keepalive.kind != "none":
        out.append(f"{p}.phone.keepalive.kind: {ph.keepalive.kind!r}; the lab's baresip UAs send no keep-alives")
    if ph.transport == "tcp" and ph.transport_reset != "unnoticed":
        out.append(f"{p}.phone.transport_reset: {ph.transport_reset!r}; libre does not tell a REGISTER sent on an "
                   "established connection about its reset (Timer F ends it: models/phones/baresip.yaml) — "
                   "set `transport_reset: unnoticed`")
    if fl.start != "equilibrium":
        out.append(f"{p}.start: {fl.start!r}; the lab starts its baresip UAs spread over the warm-up")
    return out


def spec_from_scenario(cfg: Scenario, run_id: str | None = None) -> LabSpec:
    """The :class:`LabSpec` that realises ``cfg`` in the real lab.

    Raises :class:`LabUnsupported` listing every item of ``cfg`` the lab cannot realise (see
    :func:`mapping_notes` for what it realises its own way without complaint).
    """
    problems = _problems(cfg)
    if problems:
        raise LabUnsupported(problems)
    fl = cfg.fleets[0]
    ph = fl.phone
    rf = ph.refresh
    E = float(ph.expires)
    # The phone's refresh rule on a fixed expiry is one fixed interval; LabSpec speaks fraction or
    # margin, so take whichever reproduces the rule exactly.
    interval = rf.interval(E)
    # the rule's own value, before min_interval: when it is not raised, LabSpec can say it as is
    own = refresh_interval(E, rf.mode, percent=rf.percent, margin=rf.margin, min_interval=0.0)
    if rf.mode == "percent" and own >= rf.min_interval:
        fraction, margin = rf.percent / 100.0, None
    elif rf.mode == "margin" and E > rf.margin and own >= rf.min_interval:
        fraction, margin = None, float(rf.margin)
    else:  # half_or_margin, or a rule that fell back to E/2 / min_interval
        fraction, margin = interval / E, None
    rg = cfg.registrar
    min_exp = max(1.0, float(rg.min_expires))
    max_exp = float(rg.max_expires) if rg.max_expires else max(3600.0, E, min_exp)
    nodes = {n.name: lab for n, lab in zip(cfg.ha.nodes, ("a", "b"))}
    variant = {"none": "memory", "replicated": "dmq", "shared": "shared_db"}[rg.data]
    db_mode = {"write_through": 1, "write_back": 2}.get(rg.persistence) if rg.data == "none" else None
    v = cfg.ha.vrrp
    hc = cfg.ha.health_check
    st = rg.service_time
    # a constant service time is a usleep() per REGISTER; any other distribution is not realised
    # (the lab's Kamailio then runs at its own speed, see mapping_notes)
    service = float(st.mean) if st.dist == "constant" else 0.0
    ub = rg.udp_buffer
    faults = tuple(
        Fault(kind=_FAULT_KINDS[f.kind], node=nodes.get(f.node, f.node), at=float(f.at),
              repair_after=None if f.repair_after is None else float(f.repair_after))
        for f in cfg.faults
    )
    return LabSpec(
        phones=fl.count,
        expires=E,
        refresh_fraction=fraction,
        refresh_margin=margin,
        t1=float(ph.timers.t1),
        t2=float(ph.timers.t2),
        max_retrans=9 if ph.timers.max_retransmissions is None else int(ph.timers.max_retransmissions),
        transport=ph.transport,
        tcp_timeout=float(ph.timers.timeout) if ph.transport == "tcp" else None,
        retry_interval=float(ph.retry.interval),
        baresip=cfg.fleets[1].count if len(cfg.fleets) == 2 else 0,
        baresip_transport=cfg.fleets[1].phone.transport if len(cfg.fleets) == 2 else "udp",
        variant=variant,
        db_mode=db_mode,
        min_expires=min_exp,
        max_expires=max_exp,
        workers=int(rg.workers),
        service_time=service,
        replication_delay=(float(rg.replication.lag.mean) if rg.data == "replicated"
                           and rg.replication.lag.dist == "constant" and rg.replication.lag.mean > MIN_REPLICATION_DELAY
                           else 0.0),
        rmem_default=None if ub is None else int(ub.rmem_default),
        rmem_max=None if ub is None else int(ub.rmem_max),
        maxbuffer=None if ub is None else int(ub.maxbuffer),
        # a registrar slowed on purpose gets a probe socket of its own (5061, two workers), so the
        # prober's rounds neither queue with REGISTERs nor take their workers or buffer
        probe_port=5061 if service > 0 else 5060,
        vrrp_version=v.version,
        advert_int=float(v.advert_int),
        priority_a=cfg.ha.nodes[0].priority,
        priority_b=cfg.ha.nodes[1].priority,
        preempt=v.preempt,
        preempt_delay=float(v.preempt_delay),
        garp_master_delay=float(v.garp_master_delay),
        garp_master_repeat=int(v.garp_master_repeat),
        track_interval=None if hc is None else float(hc.interval),
        track_fall=1 if hc is None else hc.fall,
        track_rise=1 if hc is None else hc.rise,
        track_weight=0 if hc is None else int(hc.weight),
        track_reverse=False if hc is None else bool(hc.reverse),
        probe_interval=float(cfg.lab.probe_interval),
        faults=faults,
        duration=float(cfg.duration),
        warmup=None if cfg.lab.warmup is None else float(cfg.lab.warmup),
        run_id=run_id,
    )


def mapping_notes(cfg: Scenario) -> list[str]:
    """Scenario items the lab realises its own way (not errors; say them next to a lab run)."""
    rg = cfg.registrar
    st = rg.service_time
    if st.dist == "constant" and st.mean > 0:
        service = (f"registrar.service_time ({st.mean * 1000:g} ms, constant): usleep({int(round(st.mean * 1e6))}) "
                   "(cfgutils) in the REGISTER branch before save(); the real per-REGISTER time is a little "
                   "longer (save, reply, log, sleep overshoot) — measure it in busy seconds of the capture; "
                   "the OPTIONS prober then asks a socket of its own (VIP:5061, two workers)")
    else:
        service = (f"registrar.service_time ({st.dist}, mean {st.expected * 1000:g} ms): not realised — only a "
                   "constant service time becomes a usleep(); the lab's Kamailio runs at its own speed "
                   "(~0.1 ms per REGISTER; `simsip calibrate RUN_DIR` measures it)")
    ub = rg.udp_buffer
    if ub is None:
        buffer = (f"registrar.queue_limit ({rg.queue_limit}): not realised — the lab's queue is the kernel's UDP "
                  "receive buffer (this kernel's rmem_default/rmem_max, Kamailio's default maxbuffer); "
                  "give registrar.udp_buffer to say it")
    else:
        buffer = (f"registrar.udp_buffer: maxbuffer {ub.maxbuffer} B becomes Kamailio's maxbuffer; rmem_default "
                  f"{ub.rmem_default} B / rmem_max {ub.rmem_max} B are checked against the node namespace's "
                  "net.core values when the run starts (not settable per network namespace on this kernel: "
                  f"read-only there); truesize ({ub.truesize} B) is the kernel's — the run records "
                  "`ss -uanm` (rb, drops) and Udp RcvbufErrors per node")
    notes = [
        f"registrar.workers ({rg.workers}): Kamailio children={rg.workers} (UDP workers per listen socket"
        + (", and tcp_children" if any(f.phone.transport == "tcp" for f in cfg.fleets) else "") + ")",
        service,
        buffer,
        f"registrar.removal_interval ({_s(rg.removal_interval)}): the lab's usrloc timer_interval is 5 s "
        "(reachability does not depend on it: registered() checks the expiry itself)",
        "ha.vrrp.first_advert: random in the lab — the runner waits U[0, advert_int) (meta.json phase_delay) "
        "after the first MASTER before it starts phones and prober, so t=0 and the faults fall at a random "
        "phase of the advert timer while SIPp's refresh phases relative to t=0 stay as configured; "
        "scenario_for_lab_run() (replay) reads the phase back from the capture",
        "network.arp timers: the lab's namespaces use the Linux defaults the simulator defaults to",
        "seed/replications/output: ignored — one lab run is one replication",
    ]
    if rg.data == "replicated":
        lag = rg.replication.lag
        notes.append((f"registrar.replication.lag (constant {lag.mean * 1000:g} ms): a usleep() on the peer before "
                      "it applies each KDMQ update, on top of dmq_usrloc's own ~0.2 ms; " if lag.dist == "constant"
                      and lag.mean > MIN_REPLICATION_DELAY else
                      f"registrar.replication.lag (mean {lag.expected * 1000:g} ms): dmq_usrloc's own (~0.2 ms on the "
                      "lab's bridge; `simsip calibrate` measures it); ")
                     + f"sync_rate ({rg.replication.sync_rate:g}/s): dmq_usrloc's own")
    if cfg.ha.health_check is not None:
        hc = cfg.ha.health_check
        notes.append(f"ha.health_check.timeout ({_s(hc.timeout)}) / exec_time ({_s(hc.exec_time)}): the "
                     f"lab's track_script times out after max(1 s, interval) and takes a few ms")
    ph0 = cfg.fleets[0].phone if cfg.fleets else None
    if len(cfg.fleets) == 2 and cfg.fleets[1].phone.transport == "tcp":
        notes.append("fleets[1].phone.transport tcp: each baresip UA keeps one TCP connection to the VIP (Kamailio "
                     "listens on TCP too); after a reset from a new master the recorded UAs (tcp-baresip-crash) "
                     "registered again 62-88 s later: Timer F (32 s) then failwait, as libre's source says (the reset closes "
                     "the connection without telling the transaction: models/phones/baresip.yaml transport_reset). "
                     "network.tcp (rto_min, syn_rto) is the lab kernel's own")
    if ph0 is not None and ph0.timers.timer_f is not None:
        notes.append("timers.timer_f: SIPp ends transactions by max_retransmissions only")
    if cfg.ha.health_check is not None and cfg.ha.health_check.weight:
        hc = cfg.ha.health_check
        notes.append(f"ha.health_check.weight {hc.weight}{' reverse' if hc.reverse else ''}: keepalived "
                     "vrrp_script weight (priority adjusted, no FAULT)")
    return notes


# ------------------------------------------------------------------------------------------
# recorded run -> the scenario to simulate
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the lab run's JSON: {exc}") from None


def lab_t0(run_dir: str | Path, trace_t0_epoch: float) -> float:
    """Scenario t=0 of a recorded run in trace seconds (``meta.json`` t0_epoch − capture start)."""
    meta = _read_json(unpacked_run(run_dir) / "meta.json")
    if "t0_epoch" not in meta:
        raise ValueError(f"{run_dir}/meta.json has no t0_epoch (not a simsip lab run?)")
    return float(meta["t0_epoch"]) - float(trace_t0_epoch)


def first_advert_phase(events, t0: float, master_ip: str, advert_int: float,
                       before: float | None = None) -> float:
    """Phase of the initial master's VRRP adverts relative to scenario t=0, in [0, advert_int):
    the value the simulator's ``ha.vrrp.first_advert`` takes.

    Without ``before``: the first advert after t=0. With ``before`` (scenario seconds, normally the
    first fault): the *last* advert before it, reduced modulo ``advert_int``. The latter is what
    decides the VIP move time, and it differs from the former because keepalived schedules each
    advert ``advert_int`` after the previous one went out, so scheduling delays accumulate: the
    shipped runs drift by up to 80 ms over 9 s on a loaded 2-core machine.
    """
    vr = events[(events["kind"] == "vrrp") & (events["vrrp_src"] == master_ip)]
    vr = vr[vr["vrrp_priority"].fillna(0).astype(float) > 0]
    times = vr["time"].to_numpy(dtype=float) - t0
    if before is not None:
        sel = times[times < before]
        if sel.size:
            return float(sel.max() % advert_int)
    after = times[times >= -1e-9]
    if not after.size:
        raise ValueError(f"no VRRP advert from the initial master {master_ip} after t=0 in the capture")
    return float(math.fmod(after.min(), advert_int))


def refresh_phase_shift(cfg: Scenario, run_dir: str | Path, trace=None) -> float:
    """How much earlier the simulator's timeline must run for its even refresh phases to line up
    with the lab's (seconds; in [0, s) with s = R/N the spacing between phones' refreshes).

    SIPp starts phone k at k·R/N after the phones start, so in the lab the refreshes fall on
    ``offset_lab + j·s``, where ``offset_lab`` depends on when the warm-up ended; the simulator's
    ``phases: even`` puts them on ``s/2 + j·s``. ``offset_lab`` is the circular mean of the first
    transmissions of REGISTERs (modulo s) before the first fault; running the model's scenario
    ``shift = (offset_lab − s/2) mod s`` seconds earlier than the lab's (faults, advert phase and
    probe times all moved by −shift) makes the two refresh schedules coincide.
    """
    from simsip.trace import import_trace

    run_dir = unpacked_run(run_dir)
    tr = trace if trace is not None else import_trace(run_dir)
    meta = _read_json(run_dir / "meta.json")
    t0 = lab_t0(run_dir, tr.t0_epoch)
    fl = cfg.fleets[0]
    R = fl.phone.refresh.interval(cfg.registrar.grant(fl.phone.expires))
    s = R / fl.count
    first_fault = min((float(f.at) for f in cfg.faults), default=float(cfg.duration))
    ev = tr.events
    vip = meta.get("vip")
    reg = ev[(ev["kind"] == "request") & (ev["method"] == "REGISTER") & ~ev["retransmission"].astype(bool)]
    if vip:
        reg = reg[reg["dst"].astype(str).str.split(":").str[0] == vip]
    t = reg["time"].to_numpy(dtype=float) - t0
    t = t[t < first_fault]
    if t.size == 0:
        return 0.0
    ang = 2 * math.pi * (t % s) / s
    import numpy as np

    offset = (math.atan2(float(np.sin(ang).mean()), float(np.cos(ang).mean())) / (2 * math.pi) * s) % s
    shift = (offset - s / 2) % s
    if shift > first_fault:  # never move a fault before t=0
        shift -= s
    return float(shift)


def scenario_for_lab_run(cfg: Scenario, run_dir: str | Path, trace=None, shift: float = 0.0) -> Scenario:
    """The scenario to simulate for comparison with the recorded lab run in ``run_dir``.

    Same as ``cfg`` but with ``ha.vrrp.first_advert`` set to the phase of the initial master's
    adverts measured in the capture — the phase of its last advert before the first fault (see
    :func:`first_advert_phase`), so the model's crash lands at the same point of the advert cycle
    and the VIP moves as late as in the lab — and every fleet's
    ``phases: even`` (SIPp starts phone k at k·R/N). ``trace`` may pass an already imported
    :class:`~simsip.trace.TraceImport` of ``run_dir``. With ``shift`` (see
    :func:`refresh_phase_shift`) the lab's timeline is moved ``shift`` seconds earlier: fault
    times and the advert phase are shifted, so model time τ corresponds to lab time τ + shift.
    Fault and repair times are the ones the lab really applied (``faults.json``), a few ms after
    the planned ones.
    """
    from simsip.trace import import_trace

    run_dir = unpacked_run(run_dir)
    tr = trace if trace is not None else import_trace(run_dir)
    meta = _read_json(run_dir / "meta.json")
    t0 = lab_t0(run_dir, tr.t0_epoch)
    initial = meta.get("initial_master")
    addrs = meta.get("addresses", {})
    if initial not in addrs:
        raise ValueError(f"{run_dir}/meta.json: initial_master {initial!r} has no address")
    adv = float(cfg.ha.vrrp.advert_int)
    first_fault = min((float(f.at) for f in cfg.faults), default=None)
    phase = first_advert_phase(tr.events, t0, addrs[initial], adv, before=first_fault)
    data = cfg.model_dump()
    data["ha"]["vrrp"]["first_advert"] = round((phase - shift) % adv, 6)
    for fl in data["fleets"]:
        fl["phases"] = "even"
    hc = data["ha"].get("health_check")
    if hc is not None and "first_check" in hc:  # the schema can pin the check phase
        det = _detection_time(run_dir, meta)
        if det is not None:
            # keepalived logs the verdict; the check itself started exec_time earlier
            start = det - float(cfg.ha.health_check.exec_time)
            hc["first_check"] = round((start - shift) % float(cfg.ha.health_check.interval), 6)
    actual = _actual_fault_times(cfg, run_dir)
    for f, (at, repair_after) in zip(data["faults"], actual):
        f["at"] = max(0.0, at - shift)
        f["repair_after"] = repair_after
    return Scenario.model_validate(data)


def _detection_time(run_dir: Path, meta: dict) -> float | None:
    """Scenario time at which a track_script first failed after the first fault: the faulted
    node's first FAULT transition (keepalived's notify script, ns timestamps in meta.json)."""
    path = run_dir / "faults.json"
    log = _read_json(path) if path.is_file() else []
    first = next((e for e in log if e.get("action") == "fault"), None)
    if first is None or "t0_epoch" not in meta:
        return None
    node, epoch = first.get("node"), float(first["epoch"])
    for when, state, *_ in (meta.get("transitions") or {}).get(node, []):
        if state == "FAULT" and float(when) >= epoch:
            return float(when) - float(meta["t0_epoch"])
    return None


def _actual_fault_times(cfg: Scenario, run_dir: Path) -> list[tuple[float, float | None]]:
    """(at, repair_after) per scenario fault as the lab really applied them (faults.json records
    the scenario time of each injection and repair; they lag the plan by a few ms)."""
    path = run_dir / "faults.json"
    log = _read_json(path) if path.is_file() else []
    used: set[int] = set()

    def find(action: str, planned: float) -> float | None:
        for i, e in enumerate(log):
            if i not in used and e.get("action") == action and abs(float(e.get("planned_time", -1)) - planned) < 1e-6:
                used.add(i)
                return float(e["scenario_time"])
        return None

    out: list[tuple[float, float | None]] = []
    for f in cfg.faults:
        at = find("fault", float(f.at))
        at = float(f.at) if at is None else at
        rep = None
        if f.repair_after is not None:
            r = find("repair", float(f.at) + float(f.repair_after))
            rep = float(f.repair_after) if r is None else max(r - at, 1e-6)
        out.append((at, rep))
    return out
