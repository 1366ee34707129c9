"""The scenario matrix of the exact-vs-fast twin runs, and a canonical form of a run's records.

Every HA stack × fault kind × fleet mix, each small enough to run twice in a fraction of a second:
once with ``engine.fast_paths: true`` (the default) and once with the plain event-by-event
engine. :func:`canonical` turns a :class:`~simsip.engine.records.RunLog` into plain Python data in
which the order of records that the fast paths may legitimately append in another order (binding
saves and phone outcomes stamped with their true time but applied ahead) no longer matters, while
every value, time and count still does.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import asdict

from simsip.config.schema import Scenario

HA_STACKS = ("keepalived", "heartbeat", "pacemaker", "cold", "weighted", "cloud")
FAULTS = ("node_crash", "process_crash", "process_hang", "process_restart", "link_down", "partition",
          "phone_link_down", "db_crash", "db_replica_down", "ha_stop")
MIXES = ("plain", "tcp_tls", "dns_plus_plain", "lb", "dual", "keepalives", "random_faults", "storm", "overload",
         "sbc_trunks", "tcp_nat")

_BASE = {
    "name": "twin",
    "seed": 11,
    "duration": "4min",
    "fleets": [],
    "registrar": {"workers": 2, "service_time": {"dist": "exponential", "mean": "2ms"}, "min_expires": "10s"},
    "ha": {"vrrp": {"version": 2, "advert_int": "1s"},
           "nodes": [{"name": "a", "priority": 150}, {"name": "b", "priority": 100}]},
    "network": {"delay": "2ms"},
    "output": {"resolution": "1s", "report": False},
}


def _fleet(name: str, count: int, **phone) -> dict:
    ph = {"expires": "60s", "refresh": {"mode": "percent", "percent": 50},
          "retry": {"interval": "10s", "spread": "4s"}}
    ph.update(phone)
    return {"name": name, "count": count, "phone": ph}


def _mix(doc: dict, mix: str) -> None:
    if mix == "plain":
        doc["fleets"] = [_fleet("udp", 60)]
    elif mix == "tcp_tls":
        # the TLS fleet's stack does not notice a reset or close of its connection (libre: Timer F, and
        # an idle connection closed by the peer waits for the refresh); the TCP fleet's ends the request
        doc["fleets"] = [_fleet("tcp", 30, transport="tcp"), _fleet("tls", 30, transport="tls", transport_reset="unnoticed")]
        doc["network"]["tcp"] = {"tls_handshake_cost": 2.0}
    elif mix == "tcp_nat":
        # connection-bound bindings: NATed TLS phones with CRLF keep-alives, NATed TCP phones without
        # (a new master reaches them only once they reconnect); contacts limited in _contact_limit
        doc["fleets"] = [_fleet("tls", 30, transport="tls", nat=True, keepalive={"kind": "crlf", "interval": "20s"}),
                         _fleet("tcp", 30, transport="tcp", nat=True, retry={"interval": "10s", "spread": "4s",
                                                                             "transport_error_interval": "1s"})]
    elif mix == "dns_plus_plain":
        # a DNS fleet and a VIP fleet share the registrars: arrivals from both must be served in order
        doc["fleets"] = [_fleet("udp", 40), dict(_fleet("srv", 40), server="dns_srv")]
        doc["dns"] = {"srv": [{"target": "a", "priority": 10}, {"target": "b", "priority": 20}]}
    elif mix == "lb":
        doc["fleets"] = [dict(_fleet("lb", 60), server="lb")]
        doc["load_balancer"] = {"algorithm": "priority", "probe_interval": "5s", "probe_timeout": "2s"}
    elif mix == "dual":
        doc["fleets"] = [dict(_fleet("dual", 40, failover={"dual_registration": True}), server="dns_srv")]
        doc["dns"] = {"srv": [{"target": "a", "priority": 10}, {"target": "b", "priority": 20}]}
        doc["calls"] = {"lookup": "any_node"}
    elif mix == "keepalives":
        doc["fleets"] = [_fleet("opt", 30, keepalive={"kind": "options", "interval": "15s"}),
                         # libre's rule: a failed flow waits the retry rule before registering (the tcp_nat
                         # mix's TLS fleet registers at once)
                         _fleet("crlf", 30, transport="tcp", keepalive={"kind": "crlf", "interval": "20s",
                                                                        "on_failure": "backoff"})]
    elif mix == "random_faults":
        doc["fleets"] = [_fleet("udp", 60, calls_per_hour="30/h")]
        doc["random_faults"] = [{"kind": "node_crash", "node": "any", "mtbf": "70s", "mttr": "20s"},
                                {"kind": "process_crash", "node": "master", "mtbf": "90s", "mttr": "10s"}]
    elif mix == "storm":
        # a boot storm into slow workers with digest auth: queueing far beyond T1, retransmitted
        # copies completing out of order on several workers, every completion challenged first
        doc["fleets"] = [dict(_fleet("boot", 150), start="boot_storm", boot_window="3s"), _fleet("udp", 40)]
        doc["registrar"].update({"workers": 3, "service_time": {"dist": "exponential", "mean": "15ms"}})
        doc["auth"] = {"enabled": True, "nonce_lifetime": "40s"}
    elif mix == "overload":
        # a boot storm into a receive buffer of a few REGISTERs, slow workers (queueing beyond T1):
        # kernel drops, duplicates or absorbed retransmissions, and (UDP + TCP) the taskprocessor alert
        doc["fleets"] = [dict(_fleet("udp", 50), start="boot_storm", boot_window="3s"),
                         dict(_fleet("tcp", 20, transport="tcp"), start="boot_storm", boot_window="3s")]
        doc["registrar"].update({"service_time": {"dist": "exponential", "mean": "150ms"},
                                 "udp_buffer": {"sizing": "rmem_default", "rmem_default": 9216, "truesize": 2304}})
    elif mix == "sbc_trunks":
        # a caching SBC (forwards every other refresh) next to a VIP fleet, and two trunk
        # registrations whose provider fails for a while (timeouts until Asterisk gives up; 403s)
        doc["fleets"] = [dict(_fleet("sbc", 40), server="sbc"), _fleet("udp", 30)]
        doc["sbc"] = {"outgoing_expires": "100s"}
        doc["trunks"] = [
            {"name": "itsp", "expiration": "60s", "max_random_initial_delay": "5s", "retry_interval": "20s",
             "max_retries": 1, "calls_per_hour": "60/h", "outages": [{"at": "70s", "duration": "50s"}]},
            {"name": "backup", "expiration": "40s", "contact": "vip", "forbidden_retry_interval": "15s",
             "start_delay": "2s", "outages": [{"at": "100s", "duration": "30s", "code": 403}]},
        ]
    else:  # pragma: no cover
        raise ValueError(mix)


def _overload(doc: dict, k: int) -> None:
    """The overload mix's front: stateless or stateful, with or without the taskprocessor alert."""
    reg = doc["registrar"]
    reg["transactions"] = ("stateless", "stateful")[k % 2]
    if k % 2:
        reg.update({"retransmission_cost": 0.2, "absorb_window": "2s"})
    if k % 3 != 1:
        reg.update({"overload": "taskprocessor", "overload_high": 4, "overload_low": 2})
    if k % 4 in (1, 2):  # Asterisk's threadpool: grows from 0 under the storm, idle threads die
        reg["threadpool"] = {"initial_size": k % 2, "auto_increment": 1 + k % 2, "max_size": 3, "idle_timeout": "20s"}
    if k % 2 == 0:  # a NATed office behind pike (and, every other cell, kamailio.cfg's ipban)
        reg["pike"] = {"reqs_density_per_unit": 6, "ban_time": "20s" if k % 4 == 0 else "0s"}
        doc["fleets"][0]["phone"]["nat_group"] = 10


def _contact_limit(doc: dict, k: int) -> None:
    """max_contacts 1 in two cells of three: refused (403 or 503) or the oldest removed; every
    other cell's contacts are rewritten to the connection's address instead of relying on nat."""
    reg = doc["registrar"]
    if k % 3:
        reg.update({"max_contacts": 1, "remove_existing": k % 3 == 2, "contacts_full_status": (403, 503)[k % 2]})
    if k % 2:
        reg["rewrite_contact"] = True
        for f in doc["fleets"]:
            f["phone"]["nat"] = False


def _ha(doc: dict, stack: str) -> None:
    ha = doc["ha"]
    if stack == "keepalived":
        ha["health_check"] = {"kind": "sip", "interval": "1s", "fall": 2, "rise": 1}
    elif stack == "heartbeat":
        ha["kind"] = "heartbeat"
        ha["heartbeat"] = {"keepalive": "1s", "deadtime": "6s", "auto_failback": True}
    elif stack == "pacemaker":
        ha["kind"] = "pacemaker"
        ha["corosync"] = {"token": "1s"}
        ha["pacemaker"] = {"fence_time": "3s", "monitor_interval": "5s", "stop_time": "500ms"}
    elif stack == "weighted":
        # a weighted track_script that covers the priority gap (150 − 60 < 100), periodic GARPs,
        # and on every other cell a virtual MAC
        ha["health_check"] = {"kind": "sip", "interval": "1s", "fall": 2, "rise": 1, "weight": -60}
        ha["vrrp"].update({"garp_master_refresh": "7s", "garp_master_repeat": 2})
        if (FAULTS.index(doc["_fault"]) + MIXES.index(doc["_mix"])) % 2:
            ha["vrrp"]["use_vmac"] = True
    elif stack == "cloud":
        # track_process (weighted on every other cell) and a VIP moved by a cloud API
        weight = -60 if (FAULTS.index(doc["_fault"]) + MIXES.index(doc["_mix"])) % 2 else 0
        ha["health_check"] = {"kind": "process", "terminate_delay": "300ms", "weight": weight}
        ha["vrrp"].update({"vip_move": "api", "api_latency": {"dist": "exponential", "mean": "2s"}})
    elif stack == "cold":
        ha["kind"] = "pacemaker"
        ha["standby"] = "cold"
        ha["corosync"] = {"token": "1s"}
        ha["pacemaker"] = {"fence_time": "2s", "monitor_interval": "4s"}
        doc["registrar"].update({"persistence": "write_through", "storage": "shared", "start_time": "3s"})
    else:  # pragma: no cover
        raise ValueError(stack)


def _data(doc: dict, fault: str, k: int) -> None:
    reg = doc["registrar"]
    if fault in ("db_crash", "db_replica_down"):
        reg["data"] = "shared"
        mode = ("async", "semisync", "sync")[k % 3]
        if mode == "sync" and (k // 3) % 2:  # half the synchronous cells are a Galera cluster
            mode = "galera"
        doc["database"] = {"replication": mode, "failover_time": "8s", "semisync_timeout": "3s",
                           "nodes": 2 + (k // 6) % 2, "suspect_timeout": "4s",
                           "bootstrap_after": (None, "20s")[(k // 2) % 2]}
        return
    if "persistence" in reg:
        return
    choice = k % 4
    if choice == 1:
        # half the replicated cells hold each update on the sender first (send_delay: an event of its own)
        reg.update({"data": "replicated", "replication": {"lag": {"dist": "exponential", "mean": "20ms"},
                                                          "send_delay": ("0s", "150ms")[(k // 4) % 2]}})
        if (k // 8) % 2:
            # a restarted node's full sync as KDMQ messages into a receive buffer of 20 datagrams, read
            # slowly: kernel drops, tm retransmissions; on the node's own socket or on the REGISTERs'
            # (competing with them); found at start or, when no peer answers, at a later dmq ping
            reg["replication"].update({"sync_burst": True, "sync_read_time": {"dist": "exponential", "mean": "3ms"},
                                       "discovery_delay": "4ms", "ping_interval": "20s",
                                       "batch_msg_contacts": (1, 3)[FAULTS.index(fault) % 2],
                                       "sync_socket": ("node", "shared")[(k // 4) % 2],
                                       # a slow sync overlaps the preempted VIP's REGISTERs
                                       "sync_rate": ("10000/s", "40/s")[(FAULTS.index(fault) // 2) % 2]})
            reg["udp_buffer"] = {"sizing": "rmem_default", "rmem_default": 46080, "truesize": 2304}
    elif choice == 2:
        # astdb-like restarts: half the cells restore a fresh expiry (chan_sip), all prune TCP/TLS (PJSIP)
        reg.update({"persistence": "write_back", "flush_interval": "7s", "start_time": "1s",
                    "restore_expiry": ("absolute", "fresh")[(k // 4) % 2], "prune_reliable_on_boot": True,
                    "reply_expires": ("granted", "remaining")[(k // 8) % 2]})
        if (k // 4 + k // 8) % 2:
            # Kamailio usrloc's rule: answered from start_time on, the first worker busy with a slow
            # load that overlaps the REGISTERs of a preempted VIP, the bindings loaded at its end
            reg.update({"preload": "first_worker", "load_rate": "50/s"})
    elif choice == 3:
        reg.update({"when_full": "reply_503", "queue_limit": 3, "retry_after": "2s", "expires_range": 20})


def matrix_doc(stack: str, fault: str, mix: str, scale: int = 1) -> dict:
    doc = copy.deepcopy(_BASE)
    k = HA_STACKS.index(stack) + FAULTS.index(fault) + MIXES.index(mix)
    doc["name"] = f"twin-{stack}-{fault}-{mix}"
    doc["seed"] = 100 + 7 * k
    _mix(doc, mix)
    for f in doc["fleets"]:
        f["count"] *= scale
    doc["_fault"], doc["_mix"] = fault, mix
    _ha(doc, stack)
    del doc["_fault"], doc["_mix"]
    _data(doc, fault, k)
    if mix == "overload":
        _overload(doc, k)
    if mix == "tcp_nat":
        _contact_limit(doc, k)
    doc["faults"] = [{"kind": fault, "node": "master", "at": "61s", "repair_after": "47s"},
                     {"kind": "node_crash", "node": "master", "at": "150s", "repair_after": "30s"}]
    if doc["registrar"].get("replication", {}).get("sync_burst"):
        # the sync after the second crash's repair is cut half-way
        doc["faults"].append({"kind": "partial_sync", "node": "master", "at": "149s", "fraction": 0.5})
    if mix not in ("random_faults", "sbc_trunks") and k % 3 == 0:
        doc["auth"] = {"enabled": True}
    if k % 5 == 0:
        doc["network"]["loss"] = 0.02
    if k % 7 == 0:
        doc["network"]["arp"] = {"garp_loss": 0.3, "base_reachable_time": "10s"}
    return doc


def scenario_of(cid: str, fast_paths: bool, scale: int = 1, slow: bool = False) -> Scenario:
    """One cell (``stack-fault-mix``), its fleets ``scale`` times larger; ``slow``: 20 ms of work
    per REGISTER and 10 ms each way, so that requests are in flight at almost every instant."""
    stack, rest = cid.split("-", 1)
    mix = next(m for m in MIXES if rest.endswith("-" + m))
    fault = rest[: -len(mix) - 1]
    doc = matrix_doc(stack, fault, mix, scale)
    if slow:
        doc["registrar"].update({"workers": 8, "service_time": "20ms"})
        doc["network"]["delay"] = "10ms"
    doc["engine"] = {"fast_paths": fast_paths, "compact_records": False}
    return Scenario.model_validate(doc, context={"strict_units": True})


def matrix(fast_paths: bool | None = None):
    """(id, Scenario) for every cell; ``fast_paths`` set when not None."""
    for stack, fault, mix in itertools.product(HA_STACKS, FAULTS, MIXES):
        doc = matrix_doc(stack, fault, mix)
        if fast_paths is not None:
            doc["engine"] = {"fast_paths": fast_paths, "compact_records": False}
        yield f"{stack}-{fault}-{mix}", Scenario.model_validate(doc, context={"strict_units": True})


def canonical(log) -> dict:
    """The records of one run as plain data, independent of the order of equal-meaning appends."""
    out: dict = {}
    out["phones"] = sorted(zip(log.ph_t, log.ph_p, log.ph_v))
    out["stores"] = [(sorted(zip(s.t, s.phone, s.until)), list(s.clears)) for s in log.stores]
    for name in ("serving", "vrrp", "adverts", "garps", "checks", "syncs", "repairs", "availability",
                 "trunk_nodes", "trunk_regs", "trunk_responses"):
        out[name] = list(getattr(log, name, []) or [])
    out["faults"] = [asdict(f) for f in log.faults]
    out["counters"] = dict(sorted(log.counters.items()))
    out["bins"] = {k: list(b.v) for k, b in sorted(log.bins.items())}
    out["error"] = log.error
    conns = getattr(log, "conns", None)
    if conns is not None:  # connections by (phone, opened); bindings by the connection they came over
        key = list(zip(conns.phone, conns.t0, conns.node))
        out["connections"] = sorted(key)
        out["connection_closes"] = sorted((key[c], t) for c, t in zip(conns.close_cid, conns.close_t))
        out["connection_stops"] = sorted(conns.stops)
        out["bound_saves"] = sorted((p, u, key[c]) for p, u, c in zip(conns.saved_phone, conns.saved_until,
                                                                      conns.saved_cid))
    return out
