"""Cluster membership stacks: how long heartbeat and corosync take to notice a dead node.

**Linux-HA heartbeat** (``ha.cf``): every node sends a heartbeat every ``keepalive``; a peer
silent for ``deadtime`` is declared dead and its resources are taken over. A crash sends nothing
more, so detection comes ``deadtime`` after the peer's *last* heartbeat, which left ψ uniform in
[0, keepalive) before the crash: detection falls in (deadtime − keepalive, deadtime] after it.
At start-up ``initdead`` applies instead; heartbeat's config.c defaults it to ``deadtime`` when
that exceeds 10 s, else to 12 s below 6 s and to 2·deadtime otherwise.

**corosync totem** (corosync.conf(5)): a node that stops passing the token is noticed after the
token timeout — ``token`` plus ``token_coefficient`` for each node beyond two — and then the
``consensus`` timeout (by default 1.2 × that token timeout), after which the survivors form the
new membership (``join``, 50 ms). Pacemaker only then fences and starts resources.

**Pacemaker placement** after a failed node rejoins: each node's score for the resources is the
sum of the constraints that prefer it, and the node they currently run on adds the
``resource-stickiness``. They move back to the preferred node only if its location score beats
the stickiness (RHEL 9 HA guide §12.4: "if the location constraint score is higher than the
resource-stickiness value, the cluster may still move healthy resources"). Pacemaker's own
default stickiness is 0; clusters newly created on RHEL 9 default it to 1, so without a location
preference nothing moves back.

Every function is pure; a random phase is passed in as a uniform draw ``u`` in [0, 1).
"""

from __future__ import annotations

#: corosync: consensus defaults to this many token timeouts
CONSENSUS_PER_TOKEN = 1.2


def corosync_token_timeout(token: float, nodes: int, token_coefficient: float = 0.65) -> float:
    """The effective token timeout: token + (nodes − 2)·token_coefficient (two nodes or fewer: token)."""
    return token + max(0, nodes - 2) * token_coefficient


def corosync_detection(nodes: int, token: float = 3.0, token_coefficient: float = 0.65,
                       consensus: float | None = None, join: float = 0.05) -> float:
    """Seconds from a node's failure to the survivors' new membership: token + consensus + join.

    ``consensus`` None: 1.2 × the effective token timeout.

    >>> round(corosync_detection(2), 6), round(corosync_detection(3, token=1.0, join=0.0), 6)
    (6.65, 3.63)
    """
    tok = corosync_token_timeout(token, nodes, token_coefficient)
    cons = consensus if consensus is not None else CONSENSUS_PER_TOKEN * tok
    return tok + cons + join


def heartbeat_initdead(deadtime: float, initdead: float | None = None) -> float:
    """heartbeat's dead time at start-up: ``initdead`` if set, else its rule from ``deadtime``."""
    if initdead is not None:
        return initdead
    if deadtime > 10:
        return deadtime
    return 12.0 if deadtime < 6 else 2 * deadtime


def heartbeat_detection(deadtime: float, keepalive: float, u: float) -> float:
    """Crash → peer declared dead when the last heartbeat left ψ = u·keepalive before the crash."""
    return deadtime - u * keepalive


def heartbeat_detection_window(deadtime: float, keepalive: float) -> tuple[float, float]:
    """The bounds (low, high) of crash → declared dead: the window (deadtime − keepalive, deadtime]."""
    return (deadtime - keepalive, deadtime)


def pacemaker_fails_back(location_score: int, resource_stickiness: int) -> bool:
    """Do the resources move back to the preferred node when it rejoins? Only if its location
    score beats the stickiness of the current node (ties stay: nothing gains by moving).

    >>> pacemaker_fails_back(1_000_000, 0), pacemaker_fails_back(0, 1), pacemaker_fails_back(100, 200)
    (True, False, False)
    """
    return location_score > resource_stickiness


__all__ = ["CONSENSUS_PER_TOKEN", "pacemaker_fails_back", "corosync_token_timeout", "corosync_detection", "heartbeat_initdead",
           "heartbeat_detection", "heartbeat_detection_window"]
