"""A restarted replicated registrar's full sync, as Kamailio dmq/dmq_usrloc do it (5.6, Debian bookworm).

**When it begins.** dmq's first SIP worker sends a notification KDMQ to ``notification_address`` from
``child_init`` (dmq.c, rank PROC_SIPINIT → ``add_server_and_notify`` → ``request_nodelist``). The peer's
200 runs the registered peers' init callbacks once per process (notification_peer.c
``notification_resp_callback_f`` → ``run_init_callbacks``, guarded by ``dmq_init_callback_done``);
dmq_usrloc's is ``usrloc_dmq_request_sync``, a KDMQ ``{"action":2}`` broadcast to the peers, and each
peer answers it with the sync. So with a peer reachable the sync begins one notification and one
request round trip after the process answers (:func:`sync_begins`, ``discovery_delay``). A peer that
does not answer leaves the callback pending until a later notification gets a 200: the ``ping_servers``
timer (registered in ``mod_init`` every ``ping_interval``, default 60 s, at least 5 s) sends
``request_nodelist`` to every node, so the sync begins at the first ping tick that finds a peer.
The callback runs again only if the node list empties (dmq_funcs.c ``ping_servers`` then resets
``dmq_init_callback_done`` and notifies anew); a peer that is the ``notification_address`` is never
deleted from it (it is kept pending after a 408), so with two nodes a process pulls one sync.

**What it is.** The peer walks its location table (``usrloc_get_all_ucontacts``) and sends one KDMQ
per contact (``batch_msg_contacts`` 1, the default), or groups of up to ``batch_msg_contacts`` (at most
150) whose size estimate stays below ``batch_msg_size`` (at most 60000 B; :func:`contacts_per_message`),
back to back (``batch_size``/``batch_usleep`` 0: no throttling), each
through tm (``t_request``): an unanswered one is retransmitted on Timer E (RETR_T1 500 ms, doubling to
RETR_T2 4 s) until fr_timer (30 s). Each message is a datagram in the receiver's UDP socket: charged
its skb truesize, dropped when the buffer is full (:func:`burst_drops`).
"""

from __future__ import annotations

import math


#: dmq_usrloc's size estimate of one contact in a group: 201 B of JSON overhead plus the lengths of its
#: strings and the digits of its numbers (usrloc_sync.c ``usrloc_dmq_send_multi_contact``)
JSON_OVERHEAD = 201
#: the largest group size dmq_usrloc accepts (dmq_usrloc.c mod_init caps batch_msg_size at 60000 B)
MAX_BATCH_MSG_SIZE = 60000


def contacts_per_message(batch_msg_contacts: int = 1, batch_msg_size: int = MAX_BATCH_MSG_SIZE,
                         contact_bytes: int = 400) -> int:
    """Contacts in one sync message. With ``batch_msg_contacts`` 1 every contact is its own KDMQ
    (``usrloc_dmq_send_contact``, no group). Otherwise a contact is added to the group and the group is
    sent when it holds ``batch_msg_contacts`` contacts *or* its size estimate has reached
    ``batch_msg_size`` (the test follows the add), so with ``contact_bytes`` per contact a group holds
    min(batch_msg_contacts, ⌈batch_msg_size / contact_bytes⌉)."""
    if batch_msg_contacts < 1 or batch_msg_size < 1 or contact_bytes < 1:
        raise ValueError("batch_msg_contacts, batch_msg_size and contact_bytes must be >= 1")
    if batch_msg_contacts == 1:
        return 1
    return max(1, min(int(batch_msg_contacts), -(-int(batch_msg_size) // int(contact_bytes))))


def messages(n_contacts: int, batch_msg_contacts: int = 1) -> int:
    """Sync messages for ``n_contacts`` contacts, ``batch_msg_contacts`` per message (dmq_usrloc
    ``usrloc_dmq_send_multi_contact`` flushes a group at the count; the last group is flushed at the end)."""
    if batch_msg_contacts < 1:
        raise ValueError("batch_msg_contacts must be >= 1")
    return -(-int(n_contacts) // int(batch_msg_contacts))


def next_ping(started: float, t: float, ping_interval: float) -> float:
    """The first dmq ping tick strictly after ``t`` of a process whose ping timer started at ``started``
    (ticks at started + k·ping_interval, k ≥ 1)."""
    k = max(1, math.floor((t - started) / ping_interval + 1e-9) + 1)
    return started + k * ping_interval


def sync_begins(started: float, discovery_delay: float, ping_interval: float | None, peer_reachable) -> float | None:
    """When a process that answers from ``started`` gets its first sync message from a peer:
    ``started + discovery_delay`` if ``peer_reachable(started)``; else the first ping tick ``p`` with
    ``peer_reachable(p)``, plus ``discovery_delay`` (``None``: no ping interval, or no tick within
    10 000 pings finds a peer)."""
    if peer_reachable(started):
        return started + discovery_delay
    if ping_interval is None:
        return None
    t = started
    for _ in range(10_000):
        t = next_ping(started, t, ping_interval)
        if peer_reachable(t):
            return t + discovery_delay
    return None


def burst_drops(n: int, capacity: int, rate: float = math.inf, workers: int = 1, read_time: float = math.inf) -> int:
    """Datagrams the kernel drops when ``n`` arrive evenly at ``rate`` per second into a socket that
    holds ``capacity`` unread ones, read by ``workers`` readers in ``read_time`` each.

    Nothing read while the burst lasts (``read_time`` ≥ the burst): ``n − capacity``. Otherwise, if the
    readers fall behind (workers/read_time < rate), the buffer fills and every arrival after that waits
    for a read: the burst of length T = n/rate gets ``capacity + reads`` in, with reads =
    floor(workers·T/read_time) (each reader busy from the first arrival on), so
    drops = max(0, n − capacity − reads).
    """
    if n <= capacity:
        return 0
    if math.isinf(read_time):
        return n - capacity
    if workers / read_time >= rate:
        return 0
    reads = math.floor(workers * (n / rate) / read_time + 1e-9)
    return max(0, n - capacity - reads)


def burst_drops_charged(n: int, rcvbuf: int, truesize: int, rate: float, workers: int = 1,
                        read_time: float = math.inf, admission: str = "not_over") -> int:
    """:func:`burst_drops` as Linux charges the buffer: ``n`` datagrams of ``truesize`` bytes arrive
    evenly at ``rate`` per second on a socket of ``rcvbuf`` bytes read first-come-first-served by
    ``workers`` readers in ``read_time`` each; a datagram is dropped while the charge — the unread
    datagrams plus the forward deficit of read ones, given back only once it reaches ``rcvbuf >> 2``
    or the reader queue is empty (:func:`~simsip.protocols.overload.udp_read`) — exceeds ``rcvbuf``
    (:func:`~simsip.protocols.overload.udp_admits`, under the kernel's ``admission`` test). Computed
    arrival by arrival (deterministic)."""
    from collections import deque
    from heapq import heappop, heappush

    from simsip.protocols.overload import udp_admits, udp_read

    free = [0.0] * max(1, int(workers))
    unread: deque[tuple[float, float]] = deque()  # (read time, arrival) of what waits, FIFO
    deficit, refill, drops = 0, -math.inf, 0
    for k in range(int(n)):
        now = k / rate
        while unread and unread[0][0] <= now:
            r, a = unread.popleft()
            if a > refill:  # the reader queue was empty: this read refilled it
                refill = r
            nxt = unread[0][1] if unread else math.inf
            deficit, released = udp_read(deficit, truesize, rcvbuf, nxt > refill)
            if released:
                refill = r
        if not udp_admits(len(unread) * truesize + deficit, rcvbuf, truesize, admission):
            drops += 1
            continue
        f = heappop(free)
        start = now if f < now else f
        heappush(free, start + read_time)
        if start > now:
            unread.append((start, now))
    return drops


def cut_messages(total: int, fraction: float) -> int:
    """Messages a sync cut after ``fraction`` of its ``total`` messages sends: floor(fraction·total)."""
    return min(total, max(0, math.floor(fraction * total + 1e-9)))
