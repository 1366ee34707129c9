"""The fault table: every kind of failure simsip can inject, declared once.

A registrar pair fails in a handful of ways that HA stacks see very differently. A *node crash*
(power, kernel panic) silences the registrar and the HA daemon at once: the backup notices only
when adverts or heartbeats stop. A *process crash* kills the registrar but leaves keepalived
running: without a health check the VIP stays on a node that answers nothing. A *hang* is worse:
the socket stays bound, so even a socket check passes. A *link down* isolates the node; a
*partition* isolates the nodes from each other (split brain); a *phone link down* cuts the phones
from a node the HA daemons still see as healthy. An *HA stop* is the planned case: the HA daemon
is stopped cleanly and says so (keepalived's priority-0 advert), so the backup need not wait out
its down timer. The database under a shared store can lose its
primary or its replica.

Each :class:`FaultKind` holds everything about one kind: what it means (the schema's help and the
report's words), whether it names a node or hits the whole cluster, whether random MTBF/MTTR
faults may draw it, what it needs from the scenario (a located validation error otherwise), how
the real lab realises it, and how it is applied and repaired. ``apply``/``repair`` act through
the engine's node actions (:class:`simsip.engine.nodes.NodeActions`), so this module imports
nothing of the engine and the config schema can build its choices from it. Adding a kind is one
entry here, one method there if it needs a new action, and its tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class FaultKind:
    name: str
    help: str  # what it means, in the schema's and the docs' words
    words: str  # the report: "the master {words}"
    apply: Callable[[Any, int, float], None]  # (node actions, node index or -1, time)
    repair: Callable[[Any, int, float], None]
    cluster_wide: bool = False  # hits the cluster (node is ignored) rather than one node
    random: bool = False  # random_faults may draw it (MTBF/MTTR)
    default_repair: float | None = None  # repair_after when the fault gives none
    lab: str | None = None  # the real lab's name for this kind (simsip.lab.spec), None: cannot
    lab_why: str = "no lab fault does this"
    needs: Callable[[Any], str | None] | None = None  # scenario -> problem, None: fine
    lab_apply: Callable[[Any, str, Any], None] | None = None  # (the lab runner, node name, lab fault)
    lab_repair: Callable[[Any, str, Any], None] | None = None
    params: tuple[str, ...] = ()  # fields of the fault (beyond node, at, repair_after) that apply reads, as keywords
    # it only arms a later effect: applied to a node that is down as well, and no disturbance of its own in the
    # recovery, VIP-move and faults.csv figures (what it causes shows under the fault or repair it acts in)
    arms: bool = False


def _needs_database(scn) -> str | None:
    if scn.registrar.data == "shared" or (scn.registrar.persistence == "db_only" and scn.registrar.storage == "shared"):
        return None
    return ("a database fault needs a shared registration store (registrar.data: shared, or persistence "
            f"db_only on shared storage); registrar.data is {scn.registrar.data!r}")


def _needs_replica(scn) -> str | None:
    problem = _needs_database(scn)
    if problem is None and scn.database.replication == "none":
        return ("db_replica_down needs a replica (database.replication: async, semisync, sync or galera — a Galera "
                "member, whose loss stalls writes for suspect_timeout and, without quorum, stops them), got 'none'")
    return problem


def _needs_sync(scn) -> str | None:
    rg = scn.registrar
    if rg.data == "replicated" and rg.replication.sync_on_start:
        return None
    return ("partial_sync needs a registrar that pulls a full sync on start (registrar.data: replicated, "
            f"replication.sync_on_start: true); registrar.data is {rg.data!r}")


KINDS: tuple[FaultKind, ...] = (
    FaultKind(
        "node_crash", "the node stops (registrar and HA daemon; no priority-0 advert)",
        "crashes (registrar and keepalived stop, no priority-0 advert)",
        apply=lambda a, n, t: a.crash_node(n, t), repair=lambda a, n, t: a.repair_node(n, t),
        random=True, lab="node_crash",
        lab_apply=lambda lab, n, f: lab.crash_node(n), lab_repair=lambda lab, n, f: lab.reboot_node(n)),
    FaultKind(
        "process_crash", "the registrar dies, the HA daemon lives (only a health check moves the VIP)",
        "loses its registrar process (keepalived keeps running)",
        apply=lambda a, n, t: a.stop_registrar(n, t), repair=lambda a, n, t: a.restart_registrar_now(n, t),
        random=True, lab="process_crash",
        lab_apply=lambda lab, n, f: lab.kill_registrar(n), lab_repair=lambda lab, n, f: lab.start_registrar_again(n)),
    FaultKind(
        "process_hang", "the registrar takes requests and never answers (its socket stays bound)",
        "hangs (the registrar takes requests and never answers)",
        apply=lambda a, n, t: a.hang_registrar(n, t), repair=lambda a, n, t: a.restart_registrar_now(n, t),
        random=True, lab_why="the lab cannot freeze Kamailio while it keeps taking requests"),
    FaultKind(
        "process_restart", "the registrar stops and starts again after repair_after (memory lost)",
        "restarts its registrar (memory lost)",
        apply=lambda a, n, t: a.stop_registrar(n, t), repair=lambda a, n, t: a.restart_registrar_now(n, t),
        default_repair=0.0, lab="restart",
        lab_apply=lambda lab, n, f: lab.stop_registrar(n, f), lab_repair=lambda lab, n, f: lab.finish_restart(n)),
    FaultKind(
        "link_down", "the node's network link goes down (keepalived goes to FAULT)",
        "loses its network link",
        apply=lambda a, n, t: a.link_down(n, t), repair=lambda a, n, t: a.link_up(n, t),
        random=True, lab="link_down",
        lab_apply=lambda lab, n, f: lab.topo.link_down(n), lab_repair=lambda lab, n, f: lab.topo.link_up(n)),
    FaultKind(
        "partition", "the nodes stop hearing each other (split brain); node is ignored",
        "stops hearing its peer (network partition between the nodes)",
        apply=lambda a, n, t: a.partition(t), repair=lambda a, n, t: a.heal(t),
        cluster_wide=True, random=True, lab="partition",
        lab_apply=lambda lab, n, f: lab.topo.partition(), lab_repair=lambda lab, n, f: lab.topo.heal()),
    FaultKind(
        "ha_stop", "the HA daemon is stopped cleanly (SIGTERM: planned maintenance, a reboot's shutdown); the "
        "registrar keeps running. keepalived's master sends a priority-0 advert (takeover after the backup's "
        "Skew_Time); heartbeat hands its resources over; pacemaker stops them and a peer starts them, no fencing",
        "has its HA daemon stopped cleanly (priority-0 advert / resources handed over)",
        apply=lambda a, n, t: a.stop_ha(n, t), repair=lambda a, n, t: a.start_ha(n, t),
        lab="ha_stop",
        lab_apply=lambda lab, n, f: lab.stop_keepalived(n), lab_repair=lambda lab, n, f: lab.start_keepalived_again(n)),
    FaultKind(
        "phone_link_down", "the phones (and the call ingress) cannot reach the node; the nodes still hear each other",
        "is cut off from the phones (the HA daemons still see it healthy)",
        apply=lambda a, n, t: a.phone_link(n, False, t), repair=lambda a, n, t: a.phone_link(n, True, t)),
    FaultKind(
        "db_crash", "the database primary under a shared store fails (see database)",
        "loses its database primary",
        apply=lambda a, n, t: a.db_crash(t), repair=lambda a, n, t: a.db_repair(t),
        cluster_wide=True, needs=_needs_database),
    FaultKind(
        "db_replica_down", "the database replica under a shared store fails (see database): async goes on, semisync "
        "blocks writes for semisync_timeout then reverts to async, sync fails writes; with galera a member fails: "
        "writes stall for suspect_timeout, then a majority (3+ nodes) goes on and a minority (2 nodes, no garbd) "
        "refuses every query until the member returns or pc.bootstrap",
        "loses its database replica (with Galera: a member; without quorum the survivors refuse every query)",
        apply=lambda a, n, t: a.db_replica_down(t), repair=lambda a, n, t: a.db_replica_up(t),
        cluster_wide=True, needs=_needs_replica),
    FaultKind(
        "partial_sync", "the full sync the node pulls when its registrar (re)starts — the one under way at `at`, "
        "or the next (a node that is down is armed for its restart) — is cut after `fraction` of its messages (the donor's sync loop aborted: an error in the "
        "middle of dmq_usrloc's usrloc_get_all_ucontacts walk, the KDMQ path cut); the node holds only the "
        "bindings sent before the cut until the phones refresh: dmq_usrloc requests the sync once per process "
        "start (dmq_init_callback_done; reset only when dmq's node list empties, which a peer that is the "
        "notification_address never leaves), never again. repair_after lifts it for later syncs. (A donor that dies "
        "mid-sync is a node_crash or process_crash of the donor: the rest is never sent.)",
        "has its registration sync cut part-way, so it holds only part of the bindings",
        apply=lambda a, n, t, fraction: a.cut_sync(n, t, fraction), repair=lambda a, n, t: a.cut_sync(n, t, None),
        needs=_needs_sync, params=("fraction",), arms=True,
        lab_why="the lab cannot cut dmq_usrloc's sync after a share of its messages (it would need the donor's "
                "KDMQ dropped after N datagrams, e.g. an iptables quota rule in the donor's namespace: not built)"),
)

BY_NAME: dict[str, FaultKind] = {k.name: k for k in KINDS}
NAMES: tuple[str, ...] = tuple(k.name for k in KINDS)
RANDOM_NAMES: tuple[str, ...] = tuple(k.name for k in KINDS if k.random)
LAB_KINDS: dict[str, str] = {k.name: k.lab for k in KINDS if k.lab is not None}
_BY_LAB: dict[str, FaultKind] = {k.lab: k for k in KINDS if k.lab is not None}


def kind(name: str) -> FaultKind:
    return BY_NAME[name]


def by_lab(lab_name: str) -> FaultKind:
    """The kind the real lab calls ``lab_name``."""
    return _BY_LAB[lab_name]


def help_text() -> str:
    """One paragraph for the schema's Fault docstring and the config reference."""
    return " ".join(f"{k.name}: {k.help}." for k in KINDS)
