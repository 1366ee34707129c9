"""Registrar overload as the products implement it: the kernel's UDP receive buffer, Kamailio's
buffer probing, and Asterisk's taskprocessor high/low-water alert.

**The UDP receive buffer.** A UDP registrar's workers read REGISTERs from one socket; what waits
for a free worker waits in the socket's receive queue, which the kernel bounds in *bytes*: every
queued datagram is charged its skb ``truesize`` (payload plus buffer and ``sk_buff`` overhead,
about 1–2 KiB for a REGISTER), and a datagram is dropped (``Udp: RcvbufErrors``) when the memory
already charged exceeds ``sk_rcvbuf``; "always allow at least a packet" (Linux
``net/ipv4/udp.c`` ``__udp_enqueue_schedule_skb``: ``if (rmem > sk->sk_rcvbuf) goto drop``,
tested before the new datagram is charged). With k datagrams of truesize s queued the next one is
taken while k·s ≤ B, so the queue holds ``floor(B/s) + 1`` datagrams (:func:`udp_queue_capacity`).
Linux 6.18 tightened the test ("udp: refine __udp_enqueue_schedule_skb() test", E. Dumazet,
net-next 2025-09-16): a datagram that would take the charge past ``sk_rcvbuf`` is dropped unless
nothing is charged (``if (rmem + size > rcvbuf) { ... if (rmem) goto drop; }``), so the queue holds
``floor(B/s)``, one fewer. Which test a socket gets is its kernel's (:data:`UDP_ADMISSION`,
:func:`admission_for_kernel`, ``registrar.udp_buffer.admission``).

``sk_rcvbuf`` starts at ``net.core.rmem_default`` (212 992 B); ``setsockopt(SO_RCVBUF, v)`` sets it
to ``2·min(v, net.core.rmem_max)`` (the kernel doubles the request for its bookkeeping overhead,
socket(7); ``net/core/sock.c`` ``__sock_set_rcvbuf``). Kamailio raises it at start-up
(``src/core/udp_server.c`` ``udp_init`` → ``probe_max_receive_buffer``): from the initial value it
doubles the request while it stays within ``maxbuffer`` (core parameter, default
``MAX_RECV_BUFFER_SIZE`` 256 KiB, ``udp_server.h``), then adds ``BUFFER_INCREMENT`` 2048 B at a
time until the request would pass ``maxbuffer`` or a read-back shows the request had no effect
(:func:`kamailio_rcvbuf`). With the distribution defaults (rmem_max 212 992 B) that ends at
2·212 992 = 425 984 B: about 185 REGISTERs of 2304 B truesize.

**What a datagram is charged.** ``truesize`` is the allocation behind the skb, not the payload. A
NIC driver's receive buffers set it (commonly a 2 KiB buffer + ``sk_buff``: 2304 B, whatever the
size). A datagram from a local socket — the lab's phones and nodes talk over veth pairs and a
bridge, which hand the *sender's* skb to the receiver — is charged what the sender allocated:
``__ip_append_data`` asks ``sock_alloc_send_skb`` for payload + UDP + IPv4 headers + the device's
``LL_RESERVED_SPACE`` (16 B on Ethernet) + 15, ``__alloc_skb`` aligns it to the cache line, adds
``skb_shared_info`` and takes the next kmalloc size, and ``skb->truesize`` is that size plus the
aligned ``sk_buff`` (:func:`local_truesize`): a 344 B REGISTER costs 1280 B, a 744 B KDMQ 2304 B.

**Lazy release (``udp_rmem_release``).** Reading a datagram does not give its bytes back at once:
since Linux 4.11 a UDP socket has a second, reader-side queue; each dequeue adds the datagram's
truesize to ``forward_deficit``, and the deficit is subtracted from the socket's charge only when
it reaches ``forward_threshold`` (``sk_rcvbuf >> 2``) or the reader queue is empty; the release
also moves everything that arrived meanwhile to the reader queue (``net/ipv4/udp.c``
``udp_rmem_release``, ``__skb_recv_udp``). A backlog that keeps the reader queue non-empty is
therefore charged up to a quarter of the buffer for datagrams already read: the unread queue
saw-tooths between ``(B − B/4)/s`` and ``B/s`` datagrams, freeing ⌈(B/4)/s⌉ slots at once every
that many reads (:func:`udp_read`, :func:`udp_admits`).

**Asterisk's overload alert.** Every Asterisk taskprocessor counts its queued tasks; when a push
brings the count to ``high`` (``AST_TASKPROCESSOR_HIGH_WATER_LEVEL`` 500, ``taskprocessor.h``) it
raises the global alert, and it clears it when a pop brings the count down to ``low`` (90 % of
high: 450, ``main/taskprocessor.c``). While any alert is raised res_pjsip's distributor
(``res/res_pjsip/pjsip_distributor.c`` ``distributor()``, ``taskprocessor_overload_trigger =
global`` by default) *ignores* every new out-of-dialog request that arrived over UDP ("rely on the
peer's transport layer to retransmit") and answers one over TCP/TLS ``503`` without Retry-After
(:func:`taskprocessor_alert`).

**Asterisk's threadpool.** res_pjsip runs its tasks on one threadpool (``main/threadpool.c``,
options from pjsip.conf ``[system]``, ``res/res_pjsip/config_system.c``: ``threadpool_initial_size``
0, ``threadpool_auto_increment`` 5, ``threadpool_idle_timeout`` 60 s, ``threadpool_max_size`` 50 —
Asterisk before the taskpool of c67d3d2796, i.e. the 18/20/22 releases). Each task pushed wakes every
idle thread (``queued_task_pushed``); when none was idle the pool grows by ``auto_increment``, at
most to ``max_size`` (``grow``: 0 means no limit) — :func:`threadpool_growth`. A thread that runs out of
tasks goes idle and dies when ``idle_timeout`` passes without being woken (``worker_idle``:
``ast_cond_timedwait`` to start + idle_timeout, then ``threadpool_idle_thread_dead``); since every push
wakes all idle threads, a thread idle since ``s`` dies at max(s, last push) + idle_timeout
(:func:`threadpool_idle_expired`), and nothing keeps ``initial_size`` threads alive.

Every function is pure.
"""

from __future__ import annotations

#: Linux default ``net.core.rmem_default`` and ``net.core.rmem_max`` (bytes)
RMEM_DEFAULT = 212_992
RMEM_MAX = 212_992
#: Kamailio ``MAX_RECV_BUFFER_SIZE`` (the default of the ``maxbuffer`` core parameter) and
#: ``BUFFER_INCREMENT`` (``src/core/udp_server.h``, ``config.h``)
KAMAILIO_MAXBUFFER = 256 * 1024
KAMAILIO_BUFFER_INCREMENT = 2048
#: Linux ``SOCK_MIN_RCVBUF`` (2·(2048 + sizeof(struct sk_buff)), rounded: the floor of a set buffer)
SOCK_MIN_RCVBUF = 2304
#: Asterisk taskprocessor high-water level and the low-water level it derives (90 %)
TASKPROCESSOR_HIGH_WATER = 500
TASKPROCESSOR_LOW_WATER = 450


def setsockopt_rcvbuf(requested: int, rmem_max: int = RMEM_MAX) -> int:
    """``sk_rcvbuf`` after ``setsockopt(SO_RCVBUF, requested)``: 2·min(requested, rmem_max), at least
    SOCK_MIN_RCVBUF (Linux ``__sock_set_rcvbuf``); ``getsockopt`` reads this doubled value back."""
    v = min(int(requested), int(rmem_max))
    return max(2 * v, SOCK_MIN_RCVBUF)


def kamailio_rcvbuf(rmem_default: int = RMEM_DEFAULT, rmem_max: int = RMEM_MAX,
                    maxbuffer: int = KAMAILIO_MAXBUFFER) -> int:
    """The receive buffer a Kamailio UDP socket ends with: ``probe_max_receive_buffer`` run against
    the Linux rule of :func:`setsockopt_rcvbuf`, starting from ``rmem_default``.

    >>> kamailio_rcvbuf()
    425984
    >>> kamailio_rcvbuf(rmem_max=8 * 1024 * 1024)
    524288
    """
    current = int(rmem_default)  # getsockopt on a fresh socket: sk_rcvbuf = rmem_default
    optval = current if current else KAMAILIO_BUFFER_INCREMENT
    phase = 0
    while True:
        optval = optval * 2 if phase == 0 else optval + KAMAILIO_BUFFER_INCREMENT
        if optval > maxbuffer:
            if phase == 1:
                break
            phase = 1
            optval //= 2
            continue
        after = setsockopt_rcvbuf(optval, rmem_max)  # Linux never refuses: it caps
        if after < optval:  # "setting SO_RCVBUF has no effect"
            current = after
            if phase == 0:
                phase = 1
                optval //= 2
                continue
            break
        current = after
    return current


#: The kernel's test for queueing a datagram on a UDP socket, by release (declared once; the
#: schema's ``udp_buffer.admission`` choices and :func:`udp_admits` read it)
UDP_ADMISSION = {
    "not_over": "Linux 4.11–6.17: queued while the memory already charged is ≤ sk_rcvbuf (always "
                "allow at least a packet): floor(B/s) + 1 datagrams",
    "fits": "Linux ≥ 6.18: queued only if it still fits (charged + truesize ≤ sk_rcvbuf) or nothing "
            "is charged: floor(B/s) datagrams",
}


def admission_for_kernel(release: str) -> str:
    """The :data:`UDP_ADMISSION` rule of a kernel release string (``uname -r``, e.g. ``6.18.44-…``).

    >>> admission_for_kernel("6.18.44-fc"), admission_for_kernel("6.1.0-28-amd64"), admission_for_kernel("5.14.0")
    ('fits', 'not_over', 'not_over')
    """
    import re

    m = re.match(r"\s*(\d+)\.(\d+)", str(release))
    if not m:
        raise ValueError(f"not a kernel release: {release!r}")
    return "fits" if (int(m.group(1)), int(m.group(2))) >= (6, 18) else "not_over"


def udp_queue_capacity(rcvbuf: int, truesize: int, admission: str = "not_over") -> int:
    """Datagrams of ``truesize`` bytes a socket with ``sk_rcvbuf`` = ``rcvbuf`` holds before the
    kernel drops (nothing read meanwhile): floor(B/s) + 1 under ``not_over`` (one is taken while the
    memory already charged is ≤ rcvbuf), floor(B/s) — at least 1 — under ``fits``.

    >>> udp_queue_capacity(212992, 1280), udp_queue_capacity(212992, 1280, "fits")
    (167, 166)
    """
    if truesize <= 0:
        raise ValueError("truesize must be > 0")
    if admission == "fits":
        return max(1, int(rcvbuf) // int(truesize))
    if admission != "not_over":
        raise ValueError(f"admission must be one of {sorted(UDP_ADMISSION)}, not {admission!r}")
    return int(rcvbuf) // int(truesize) + 1


#: Linux x86-64 skb layout: ``SKB_DATA_ALIGN(sizeof(struct sk_buff))``, ``SKB_DATA_ALIGN(sizeof(struct
#: skb_shared_info))`` (MAX_SKB_FRAGS 17) and ``SMP_CACHE_BYTES``
SKB_STRUCT = 256
SKB_SHARED_INFO = 320
CACHE_LINE = 64
#: what ``__ip_append_data`` adds to a UDP payload on an Ethernet device: UDP (8) + IPv4 (20) headers,
#: ``LL_RESERVED_SPACE`` (16) and 15 bytes of alignment slack (``alloc_extra = hh_len + 15``)
UDP_IP_ALLOC_EXTRA = 8 + 20 + 16 + 15


def local_truesize(udp_payload: int) -> int:
    """``skb->truesize`` of a UDP datagram of ``udp_payload`` bytes sent by a local socket over an
    Ethernet-like device (veth, bridge: the receiver queues the sender's skb), for payloads of
    256 B up to one MTU: the kmalloc size behind ``SKB_DATA_ALIGN(payload + 59) + 320`` (the next
    power of two) plus the 256 B ``sk_buff`` (``net/ipv4/ip_output.c`` ``__ip_append_data``,
    ``net/core/skbuff.c`` ``__alloc_skb``, ``SKB_TRUESIZE``).

    >>> local_truesize(344), local_truesize(744)
    (1280, 2304)
    """
    n = int(udp_payload)
    if n < 0:
        raise ValueError("udp_payload must be >= 0")
    head = -(-(n + UDP_IP_ALLOC_EXTRA) // CACHE_LINE) * CACHE_LINE + SKB_SHARED_INFO
    return (1 << (head - 1).bit_length()) + SKB_STRUCT


def udp_admits(charged: int, rcvbuf: int, truesize: int = 0, admission: str = "not_over") -> bool:
    """Does the kernel queue a datagram of ``truesize`` bytes on a UDP socket whose charge
    (``sk_rmem_alloc``: the truesize of every unread datagram plus the forward deficit of read
    ones) is ``charged``? ``not_over``: while ``charged`` ≤ ``rcvbuf`` ("always allow at least a
    packet": Linux 4.11–6.17 ``__udp_enqueue_schedule_skb``); ``fits``: only if ``charged +
    truesize`` ≤ ``rcvbuf`` or nothing is charged (Linux 6.18). See :data:`UDP_ADMISSION`.

    >>> udp_admits(212480, 212992, 1280), udp_admits(212480, 212992, 1280, "fits"), udp_admits(0, 1000, 1280, "fits")
    (True, False, True)
    """
    if admission == "fits":
        return charged + truesize <= rcvbuf or charged == 0
    return charged <= rcvbuf


def udp_read(deficit: int, truesize: int, rcvbuf: int, reader_empty: bool) -> tuple[int, int]:
    """A reader dequeues one datagram of ``truesize`` (``udp_rmem_release`` with ``partial``): the
    deficit grows by its truesize and is released — subtracted from the socket's charge — once it
    reaches ``forward_threshold`` = ``rcvbuf >> 2`` or the reader queue is now empty. Returns the
    deficit afterwards and the bytes released.

    >>> udp_read(0, 1280, 212992, False), udp_read(52480, 1280, 212992, False), udp_read(0, 1280, 212992, True)
    ((1280, 0), (0, 53760), (0, 1280))
    """
    d = int(deficit) + int(truesize)
    if d < (int(rcvbuf) >> 2) and not reader_empty:
        return d, 0
    return 0, d


def taskprocessor_alert(alert: bool, queued: int, high: int = TASKPROCESSOR_HIGH_WATER,
                        low: int = TASKPROCESSOR_LOW_WATER) -> bool:
    """The alert after the queue reached ``queued`` tasks: raised at ``queued ≥ high`` (a push),
    cleared at ``queued ≤ low`` (a pop), otherwise unchanged (the hysteresis between them)."""
    if queued >= high:
        return True
    if queued <= low:
        return False
    return alert


def threadpool_growth(threads: int, idle: int, auto_increment: int, max_size: int) -> int:
    """Threads Asterisk's threadpool adds when a task is pushed (``queued_task_pushed`` → ``grow``):
    none while a thread is idle, else ``auto_increment``, cut to what ``max_size`` allows (0: no limit)."""
    if idle > 0 or auto_increment <= 0:
        return 0
    if max_size and threads + auto_increment > max_size:
        return max(0, max_size - threads)
    return auto_increment


def threadpool_idle_expired(now: float, idle_since: float, last_push: float, idle_timeout: float) -> bool:
    """Has an idle thread (idle since ``idle_since``) died by ``now``? Each push wakes every idle thread,
    which finds no task and waits ``idle_timeout`` again (``worker_idle``), so it dies at
    max(idle_since, last push) + idle_timeout; idle_timeout 0 waits for ever."""
    if idle_timeout <= 0:
        return False
    return now >= max(idle_since, last_push) + idle_timeout


def pike_hit(state: list, t: float, unit: float, density: int) -> bool:
    """One request from a source at time ``t`` through Kamailio pike; True: blocked.

    ``state`` is the source's ``[unit index, previous-unit hits, current-unit hits, red]``, updated
    in place. At every swap (multiples of ``unit``) the current count becomes the previous one and a
    red source whose finished unit stayed below ``density`` is unblocked; a hit that brings either
    count to ``density`` turns the source red (``mark_node``, ``refresh_node``).
    """
    k = int(t // unit)
    if k != state[0]:
        prev = state[2] if k == state[0] + 1 else 0  # two or more swaps: the last finished unit was empty
        if state[3] and state[2] < density:  # the first swap unblocks after a quiet unit
            state[3] = False
        if state[3] and prev < density:  # a later swap saw an empty unit
            state[3] = False
        state[0], state[1], state[2] = k, prev, 0
    state[2] += 1
    if not state[3] and (state[2] >= density or state[1] >= density):
        state[3] = True
    return state[3]


__all__ = ["pike_hit", "RMEM_DEFAULT", "RMEM_MAX", "KAMAILIO_MAXBUFFER", "KAMAILIO_BUFFER_INCREMENT", "SOCK_MIN_RCVBUF",
           "TASKPROCESSOR_HIGH_WATER", "TASKPROCESSOR_LOW_WATER", "setsockopt_rcvbuf", "kamailio_rcvbuf",
           "udp_queue_capacity", "UDP_ADMISSION", "admission_for_kernel", "local_truesize", "udp_admits", "udp_read", "SKB_STRUCT", "SKB_SHARED_INFO",
           "CACHE_LINE", "UDP_IP_ALLOC_EXTRA", "taskprocessor_alert", "threadpool_growth", "threadpool_idle_expired"]
