"""The scenario schema: every parameter once, with its default, range and one line of help.

A scenario describes phones in named fleets, the registrar software on each HA node, the keepalived
(VRRP) pair that owns the virtual IP the phones register to, the network between them, and a
schedule of faults. Defaults that mimic a real product are documented with their source in
``models/`` (the profile files) and in ``../shared/reference``; values that are assumptions say so
in the help text.

The tree is validated once and frozen; the engine only ever sees floats in seconds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from simsip import faults as fault_table
from simsip.config.types import Dist, Duration, Frozen, Rate
from simsip.protocols import cluster, registration, transactions, vrrp
from simsip.protocols import overload as overload_rules


def _located(at: tuple, problem: str) -> PydanticCustomError:
    """A model-validator error about one field below the model.

    pydantic reports model-validator errors at the model itself; ``ctx['at']`` is the field's
    path relative to the model and ``ctx['problem']`` the message without that path, which the
    loader uses to name the key and its line. The message itself stays self-contained.
    """
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in at).lstrip(".")
    return PydanticCustomError("located", "{detail}", {"detail": f"{path}: {problem}", "problem": problem, "at": at})


# --------------------------------------------------------------------------- phones
class RefreshRule(Frozen):
    """When a registered phone sends its refresh, given the expiry the registrar granted (E).

    ``percent``: at E·percent/100 (Linphone, baresip: 90 %). ``margin``: at E − margin, or E/2 when
    E ≤ margin (pjsua: margin 5 s; Polycom: overlap 60 s, "half the expiry" when smaller).
    ``half_or_margin``: at max(E/2, E − margin) (Aastra/Mitel: half-way unless that is more than
    15 s before expiry).
    """

    mode: Literal["percent", "margin", "half_or_margin"] = Field("percent", description="Refresh rule.")
    percent: float = Field(90.0, gt=0, le=100, description="Refresh at this percentage of the granted expiry.")
    margin: Duration = Field(5.0, ge=0, description="Refresh this long before the granted expiry.")
    min_interval: Duration = Field(1.0, gt=0, description="Never refresh sooner than this after a success.")

    def interval(self, granted: float) -> float:
        """Seconds from a successful registration to the next refresh (:func:`~simsip.protocols.refresh_interval`)."""
        return registration.refresh_interval(granted, self.mode, percent=self.percent, margin=self.margin,
                                             min_interval=self.min_interval)


class SipTimers(Frozen):
    """RFC 3261 §17.1.2 non-INVITE client transaction timers (UDP)."""

    t1: Duration = Field(0.5, gt=0, le=60, description="T1: first retransmission interval (RFC 3261: 500 ms).")
    t2: Duration = Field(4.0, gt=0, le=600, description="T2: cap of the retransmission interval (RFC 3261: 4 s).")
    timer_f: Duration | None = Field(
        None, gt=0, description="Timer F: transaction timeout; null means 64·T1 (Cisco SPA/MPP use 16 s)."
    )
    max_retransmissions: int | None = Field(
        None, ge=0, le=100,
        description="Stop after this many retransmissions and time out when the next one is due "
        "(SIPp's max_retrans); null means Timer F alone ends the transaction.",
    )

    @model_validator(mode="after")
    def _order(self) -> "SipTimers":
        if self.t2 < self.t1:
            raise ValueError(f"t2 ({self.t2}s) must be >= t1 ({self.t1}s)")
        return self

    @property
    def timeout(self) -> float:
        """Timer F: ``timer_f``, or 64·T1 (:func:`~simsip.protocols.timer_f`)."""
        return transactions.timer_f(self.t1, self.timer_f)


class RetryRule(Frozen):
    """What a phone does after a failed or timed-out REGISTER.

    ``fixed``: wait ``interval`` (± ``spread`` uniformly), the first retry may use
    ``first_interval`` (pjsua). ``backoff``: RFC 5626 §4.5 — W = min(max, base·2^(n+offset)) for the
    n-th consecutive failure (n = 0 first), wait uniform in [W/2, W]; baresip uses offset 1.
    After ``max_attempts`` consecutive failures (0 = unlimited) the phone waits ``long_interval``
    (Cisco "Reg Retry Long Intvl") or gives up.
    """

    mode: Literal["fixed", "backoff"] = Field("fixed", description="Retry rule.")
    interval: Duration = Field(30.0, ge=0, description="Fixed retry interval.")
    first_interval: Duration | None = Field(None, ge=0, description="First retry after a failure (null: interval).")
    spread: Duration = Field(0.0, ge=0, description="Uniform random ± added to a fixed retry (pjsua: 10 s).")
    timeout_interval: Duration | None = Field(
        None, ge=0, description="Retry after a local timeout (408) when it differs (Linphone: 2 s); null: the rule."
    )
    base: Duration = Field(30.0, gt=0, description="Backoff base-time.")
    max: Duration = Field(1800.0, gt=0, description="Backoff max-time.")
    exponent_offset: int = Field(0, ge=-10, le=10, description="Added to the failure count in the exponent.")
    max_attempts: int = Field(0, ge=0, le=1_000_000, description="Consecutive failures before the long wait (0 = never).")
    after_max: Literal["long_interval", "give_up"] = Field("long_interval", description="After max_attempts.")
    long_interval: Duration = Field(1200.0, ge=0, description="Wait after max_attempts failures.")
    honour_retry_after: bool = Field(True, description="Wait at least a 503's Retry-After before retrying.")
    transport_error_interval: Duration | None = Field(
        None, ge=0,
        description="Wait after the first transport error in a row (TCP reset, connection refused or closed); "
        "Linphone retries at once (0). null: the rule (pjsua: first_interval 0 ± spread).",
    )
    honour_restart_timer: bool = Field(
        False,
        description="After a server failure wait uniform in [0, Restart-Timer] before the first retry "
        "(draft-shen-soc-avalanche-restart-overload; the value is the scenario's restart_timer).",
    )
    retry_codes: tuple[int, ...] | None = Field(
        None,
        description="Failure responses (status codes) that follow this rule (Cisco Retry Reg RSC, pjsua's "
        "408/480/5xx/6xx list); any other failure response gets other_codes. null: every response. Local "
        "timeouts and transport errors always follow the rule.",
    )
    other_codes: Literal["long_interval", "give_up"] = Field(
        "long_interval",
        description="A failure response not in retry_codes: wait long_interval (Cisco Reg Retry Long Intvl) or "
        "stop registering (pjsua after a 403).",
    )
    code_waits: dict[int, Duration] = Field(
        default_factory=dict,
        description="Fixed waits after particular failure responses, before every other step "
        "(Grandstream: 403 → 1200 s). Retry-After still applies on top when honoured.",
    )

    @model_validator(mode="after")
    def _order(self) -> "RetryRule":
        if self.max < self.base:
            raise ValueError(f"backoff max ({self.max}s) must be >= base ({self.base}s)")
        for code in (*(self.retry_codes or ()), *self.code_waits):
            if not 300 <= code <= 699:
                raise ValueError(f"retry code {code} is not a failure response (300-699)")
        return self


class Keepalive(Frozen):
    """Flow keep-alives (RFC 5626 §4.4) and OPTIONS pings that a phone sends after registering.

    ``crlf``: a double-CRLF ping; over TCP/TLS the registrar answers a CRLF pong, and no pong within
    ``timeout`` (RFC 5626 §4.4.1: 10 s) or a TCP reset fails the flow. Over UDP a CRLF gets no
    answer (it only keeps a NAT binding: pjsua's ka_data), so it detects nothing. ``options``: a SIP
    OPTIONS transaction; over UDP any live registrar answers it — also the *new* master after a VIP
    move, so it detects only a registrar that stays silent past the timeout; over TCP/TLS the new
    master has no connection and resets it. Each interval is uniform in [randomize·interval,
    interval] (RFC 5626 implementations: 80–100 %). ``failures`` consecutive failed pings make the
    phone re-register at once; a reset fails the flow at the first. Pings are not queued at the
    registrar's REGISTER workers (CRLF is handled by the transport layer; OPTIONS load is left out).
    """

    kind: Literal["none", "crlf", "options"] = Field("none", description="Keep-alive kind (none, RFC 5626 CRLF, SIP OPTIONS).")
    interval: Duration = Field(30.0, gt=0, le=86400, description="Keep-alive interval (upper end of the random range).")
    randomize: float = Field(0.8, ge=0, le=1, description="Each interval is uniform in [randomize·interval, interval].")
    timeout: Duration | None = Field(
        None, gt=0, description="A ping without answer fails after this (null: CRLF 10 s per RFC 5626 §4.4.1, OPTIONS Timer F)."
    )
    failures: int = Field(1, ge=1, le=100, description="Consecutive failed pings before the phone re-registers.")
    on_failure: Literal["register", "backoff"] = Field(
        "register",
        description="What a failed flow makes an idle phone do: register at once, or count a registration failure "
        "and wait the retry rule's wait first (libre's sipreg keepalive_handler: failwait(++failc); RFC 5626 §4.5 "
        "when every flow failed). A REGISTER under way finds out by itself either way.",
    )


class Failover(Frozen):
    """How a phone moves between DNS targets (RFC 3263 §4.3 / RFC 2782; Yealink/Polycom semantics).

    After ``retry_counts`` failed attempts on one target (timeout, transport error, 503) the phone
    sends the same request to the next target of its ordered list at once; with ``retry_wait:
    immediate`` the attempts on one target follow each other at once, so moving on takes
    ``retry_counts`` × the failure time (e.g. 3 × Timer F). When every target failed the retry rule
    applies and the list starts over. ``failback_mode`` says when the phone returns to the first
    target: ``newRequests`` every new transaction starts there; ``registration`` each refresh after a
    success starts there; ``DNSTTL`` after the DNS TTL since it moved; ``duration`` after
    ``failback_timeout`` since it moved.
    """

    retry_counts: int = Field(3, ge=1, le=20, description="Failed attempts on a target before the next one (Yealink/Polycom 3).")
    retry_wait: Literal["immediate", "rule"] = Field(
        "immediate", description="Between attempts on one target: at once, or the retry rule's wait."
    )
    failback_mode: Literal["newRequests", "DNSTTL", "registration", "duration"] = Field(
        "newRequests", description="When to return to the first target (Yealink/Polycom default newRequests)."
    )
    failback_timeout: Duration = Field(3600.0, ge=0, description="failback_mode duration: time on a secondary target.")
    on_503: bool = Field(True, description="A 503 counts as a failed attempt (RFC 3263 §4.3).")
    dual_registration: bool = Field(
        False,
        description="Keep a second registration at the same time on the next target of the list (Cisco MPP Dual "
        "Registration, Yealink/Polycom register to two servers): its own refresh, transactions, retries and failover, "
        "starting one target further along (needs server dns_srv/dns_a with two or more targets).",
    )


class PhoneAuth(Frozen):
    """The phone's side of digest authentication (used when the scenario's ``auth.enabled``)."""

    nonce_reuse: bool = Field(
        True,
        description="Send credentials proactively with the last nonce (pjsip/belle-sip cache it); a stale or "
        "foreign nonce gets a 401 and a second REGISTER. false: every REGISTER is challenged first.",
    )


class PhoneProfile(Frozen):
    """A phone model: requested expiry, refresh point, SIP timers, retry rule, call load."""

    description: str = Field("", description="What this profile represents.")
    transport: Literal["udp", "tcp", "tls"] = Field(
        "udp", description="SIP transport: udp (Timer E retransmissions), tcp or tls (a connection per phone)."
    )
    expires: Duration = Field(3600.0, gt=0, le=30 * 86400, description="Requested registration expiry.")
    refresh: RefreshRule = Field(default_factory=RefreshRule)
    timers: SipTimers = Field(default_factory=SipTimers)
    retry: RetryRule = Field(default_factory=RetryRule)
    calls_per_hour: Rate = Field(0.0, ge=0, description="Incoming calls to each phone (Poisson), e.g. '2/h'.")
    keepalive: Keepalive = Field(default_factory=Keepalive, description="Keep-alives after registering.")
    keepalive_tcp: Keepalive | None = Field(
        None,
        description="Keep-alives when the transport is tcp or tls, where a product uses other ones than over UDP "
        "(pjsip: ka_interval 15 s is UDP-only, the TCP/TLS transport keep-alive is 90 s); null: the same as keepalive.",
    )
    failover: Failover = Field(default_factory=Failover, description="DNS target failover (fleets with server dns_srv/dns_a).")
    auth: PhoneAuth = Field(default_factory=PhoneAuth, description="Digest authentication behaviour.")
    startup_delay: Duration = Field(
        0.0, ge=0, le=3600, description="Random wait in [0, delay] before the first REGISTER after boot (Yealink reg_surge_prevention)."
    )
    nat_group: int = Field(
        1, ge=1, le=1_000_000,
        description="Phones that share one public source IP (a NATed office): a per-source rate limit such as "
        "Kamailio pike counts them as one source. 1: every phone has its own address.",
    )
    transport_reset: Literal["error", "unnoticed"] = Field(
        "error",
        description="What the SIP stack tells a REGISTER when the tcp/tls connection it went out on is reset or "
        "closed by the peer. error: a transport error at once (the retry rule's transport branch), and an idle "
        "connection closed by the peer makes the phone re-register per the rule. unnoticed (libre/baresip): only a "
        "request still queued for a connection being set up is told (connection refused); one already sent on the "
        "established connection runs on to Timer F and fails as a timeout, and an idle connection closed by the peer "
        "goes unnoticed until the next refresh opens a new one. Either way the connection is gone and the next "
        "request opens a new one. No effect over UDP.",
    )
    nat: bool = Field(
        False,
        description="Behind NAT (or a firewall, or not listening on its Contact): no one can open a connection to the "
        "phone. Over tcp/tls its binding then reaches it only over the connection it registered on, held by the node "
        "that accepted it; a new master has none until the phone reconnects (keep-alive or REGISTER finds the reset); "
        "RFC 5626 outbound flows are bound the same way. "
        "No effect over UDP (the NAT binding to the VIP's address stays usable). Assumption false: phones on the "
        "registrar's LAN or VPN.",
    )

    @property
    def flow_keepalive(self) -> Keepalive:
        """The keep-alives this phone sends over its transport (``keepalive_tcp`` over tcp/tls when set)."""
        if self.transport != "udp" and self.keepalive_tcp is not None:
            return self.keepalive_tcp
        return self.keepalive


class Fleet(Frozen):
    """A named group of identical phones."""

    name: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Fleet name.")
    count: int = Field(..., ge=1, le=20_000_000, description="Number of phones.")
    profile: str | None = Field(None, description="Phone profile from models/phones (already merged below).")
    phone: PhoneProfile = Field(default_factory=PhoneProfile, description="The phone model (profile + overrides).")
    start: Literal["equilibrium", "boot_storm"] = Field(
        "equilibrium",
        description="equilibrium: registered at t=0 with uniform refresh phases; boot_storm: all start in boot_window.",
    )
    phases: Literal["random", "even"] = Field(
        "random",
        description="Equilibrium phases: random (independent uniform) or even (phone k at k·R/N, like a SIPp lab).",
    )
    boot_window: Duration = Field(60.0, ge=0, description="Boot storm: first REGISTERs uniform in [0, window].")
    server: Literal["vip", "dns_srv", "dns_a", "lb", "sbc"] = Field(
        "vip",
        description="How the phones find the registrar: the VRRP VIP; DNS SRV targets (dns.srv, RFC 3263); DNS round "
        "robin A records (dns.a: random pick, no health); a load balancer/SBC in front (load_balancer); a registration-"
        "caching SBC in front of the VIP (sbc: answers refreshes itself, UDP only).",
    )


# --------------------------------------------------------------------------- registrar
class Replication(Frozen):
    """SIP-level replication of the location table (Kamailio DMQ usrloc, OpenSIPS full sharing).

    Every save waits ``send_delay`` on the sender before its update leaves (a crash meanwhile loses
    it), then reaches a peer and is applied there one ``lag`` later (lost only if that peer is down
    or cut off when it arrives). A node that (re)starts pulls a full sync from a live peer:
    ``discovery_delay`` after it answers (or at the first dmq ping that finds a peer), the donor
    sends its bindings at ``sync_rate`` messages per second, ``batch_msg_contacts`` per message; with
    ``sync_burst`` each message goes through the receiver's UDP socket (its kernel buffer and
    workers) and a dropped one is retransmitted by tm. See :mod:`simsip.protocols.sync`.
    """

    lag: Dist = Field(default_factory=lambda: Dist(mean=0.00025), description=(
        "Update left the sender → applied on the peer (0.25 ms: Kamailio dmq_usrloc measured on the lab's bridge, "
        "KDMQ request → the peer's 200, median 0.23 ms; a loaded or distant peer is slower)."))
    send_delay: Duration = Field(0.0, ge=0, le=3600, description=(
        "Save → its update leaves the sender; a crash in between loses it (0: Kamailio dmq_usrloc sends the KDMQ "
        "from usrloc's contact callback inside save(), on the wire before the phone's 200 OK in the lab)."))
    sync_on_start: bool = Field(True, description="Pull a full sync from a peer on (re)start (dmq_usrloc sync=1).")
    sync_rate: Rate = Field(10000.0, gt=0, description=(
        "Sync messages per second leaving the donor (bindings per second with batch_msg_contacts 1): dmq_usrloc's "
        "sync loop sends them back to back (batch_usleep 0); measured ~10 500/s in examples/lab/dmq-sync-burst."))
    discovery_delay: Duration = Field(0.0, ge=0, le=3600, description=(
        "The process answers → the donor's first sync message leaves, when a peer is reachable then: Kamailio dmq "
        "sends its notification KDMQ to notification_address from the first SIP worker's child_init, the peer's "
        "200 runs the init callbacks (usrloc_dmq_request_sync: a KDMQ {\"action\":2} to the peers), and the peer "
        "starts sending (one notification and one request round trip; 4 ms in examples/lab/dmq-sync-burst)."))
    ping_interval: Duration | None = Field(None, gt=0, le=86400, description=(
        "When no peer answers at start: the sync begins at the first dmq ping (every ping_interval from the start, "
        "dmq ping_interval, default 60 s, at least 5 s) that finds one, plus discovery_delay; the init callback runs "
        "once per process (dmq_init_callback_done; dmq_funcs.c ping_servers resets it only when the node list is "
        "empty). null: a sync is pulled at start or never."))
    sync_burst: bool = Field(False, description=(
        "Send the sync as messages (KDMQ requests) through the receiver's UDP socket: each is charged "
        "udp_buffer.truesize in the kernel receive buffer, dropped when it is full (counted in kdmq_dropped_<node>) "
        "and retransmitted by the donor's tm (sync_t1/sync_t2 until sync_timeout); read by a worker in "
        "sync_read_time. false: the bindings arrive at sync_rate outside any socket."))
    batch_msg_contacts: int = Field(1, ge=1, le=150, description=(
        "Contacts per sync message (dmq_usrloc batch_msg_contacts, default 1 = one KDMQ per contact, at most 150)."))
    batch_msg_size: int = Field(60000, ge=1, le=60000, description=(
        "With batch_msg_contacts > 1: a group is sent as soon as its size estimate reaches this many bytes "
        "(dmq_usrloc batch_msg_size, default and maximum 60000 B; usrloc_sync.c usrloc_dmq_send_multi_contact)."))
    sync_contact_bytes: int = Field(400, ge=202, le=60000, description=(
        "dmq_usrloc's size estimate of one contact in a sync group: 201 B of JSON overhead plus the AoR, ruid, "
        "Contact, received, path, Call-ID, User-Agent and instance strings and the numbers' digits (assumption: "
        "400 B for a phone without path or instance; long User-Agents or a Path header make it larger)."))
    sync_socket: Literal["node", "shared"] = Field("node", description=(
        "Which socket the sync messages reach: 'node', the registrar's listen on its own address (its own kernel "
        "buffer of the same size, and `workers` processes of its own: Kamailio forks children per UDP listen; the "
        "lab's config listens on the node address and on the VIP), or 'shared', the socket the REGISTERs use (one "
        "listen for both: the sync competes with REGISTERs for buffer and workers)."))
    sync_read_time: Dist = Field(default_factory=Dist, description=(
        "A worker's time per sync message it reads from the socket (the SIP worker parses the KDMQ and hands it to "
        "a dmq worker: dmq_handle_message → add_dmq_job); the binding counts from then on."))
    sync_t1: Duration = Field(0.5, gt=0, le=60, description="tm retr_timer1 for sync messages (Kamailio tm RETR_T1 500 ms).")
    sync_t2: Duration = Field(4.0, gt=0, le=600, description="tm retr_timer2 for sync messages (Kamailio tm RETR_T2 4 s).")
    sync_timeout: Duration = Field(30.0, gt=0, le=3600, description=(
        "tm fr_timer: a sync message still unanswered then is given up (its bindings never arrive; Kamailio tm "
        "FR_TIME_OUT 30 s)."))

    @property
    def retransmit_offsets(self) -> tuple[float, ...]:
        """Send offsets of one sync message nobody answers (tm's Timer E schedule, :func:`transactions.timer_e_schedule`)."""
        return tuple(transactions.timer_e_schedule(self.sync_t1, self.sync_t2, self.sync_timeout))


class UdpBuffer(Frozen):
    """The kernel's UDP receive buffer in front of the registrar's workers, in bytes.

    Every queued REGISTER is charged its skb ``truesize``; the kernel drops a datagram when the
    memory already charged exceeds the socket's ``sk_rcvbuf``, so floor(rcvbuf/truesize) + 1
    REGISTERs wait (Linux ``__udp_enqueue_schedule_skb``; floor(rcvbuf/truesize) from Linux 6.18,
    ``admission``) — fewer under a backlog, since a read
    datagram stays charged until a quarter of the buffer has been read (``udp_rmem_release``:
    :class:`~simsip.engine.registrar.ReceiveQueue`). ``sizing: kamailio`` is Kamailio's
    start-up probing (``udp_init`` → ``probe_max_receive_buffer``: raise SO_RCVBUF up to
    ``maxbuffer``, each request capped at ``rmem_max`` and doubled by the kernel);
    ``rmem_default``: a socket nobody resizes (``net.core.rmem_default``). See
    :mod:`simsip.protocols.overload`.
    """

    sizing: Literal["kamailio", "rmem_default"] = Field(
        "kamailio", description="How the socket's buffer is sized: Kamailio's SO_RCVBUF probing, or the kernel default."
    )
    rmem_default: int = Field(212_992, ge=256, le=1 << 30, description="net.core.rmem_default in bytes (Linux default 212992).")
    rmem_max: int = Field(212_992, ge=256, le=1 << 30, description="net.core.rmem_max in bytes (Linux default 212992).")
    maxbuffer: int = Field(
        256 * 1024, ge=2048, le=1 << 30, description="Kamailio maxbuffer: the largest SO_RCVBUF it asks for (MAX_RECV_BUFFER_SIZE 256 KiB)."
    )
    truesize: int = Field(
        2304, ge=256, le=65536,
        description="Bytes one queued REGISTER is charged (skb truesize; assumption: a 2 KiB receive buffer plus "
        "sk_buff overhead; read it as Recv-Q / queued datagrams in `ss -uanm`). Over veth/loopback it is what the "
        "sender allocated: simsip.protocols.overload.local_truesize (1280 B for a 344 B REGISTER).",
    )
    sync_truesize: int | None = Field(
        None, ge=256, le=65536,
        description="Bytes one sync message (KDMQ) is charged in this buffer; null: the same as truesize "
        "(local_truesize gives 2304 B for a 744 B KDMQ).",
    )
    admission: Literal[tuple(overload_rules.UDP_ADMISSION)] = Field(  # type: ignore[valid-type]
        "not_over",
        description="The kernel's test for queueing a datagram: not_over (Linux 4.11–6.17, the kernels "
        "distributions ship today: queued while the charge is ≤ sk_rcvbuf, floor(B/s) + 1 REGISTERs) or fits "
        "(Linux ≥ 6.18: only if it still fits, floor(B/s)). simsip.protocols.overload.admission_for_kernel "
        "maps `uname -r` to it.",
    )

    @property
    def rcvbuf(self) -> int:
        """The socket's sk_rcvbuf in bytes (:func:`~simsip.protocols.overload.kamailio_rcvbuf`)."""
        if self.sizing == "kamailio":
            return overload_rules.kamailio_rcvbuf(self.rmem_default, self.rmem_max, self.maxbuffer)
        return self.rmem_default

    @property
    def capacity(self) -> int:
        """REGISTERs the buffer holds before the kernel drops (:func:`~simsip.protocols.overload.udp_queue_capacity`)."""
        return overload_rules.udp_queue_capacity(self.rcvbuf, self.truesize, self.admission)


class Pike(Frozen):
    """Kamailio ``pike``: a per-source-IP flood limit checked when a worker reads a request.

    Hits are counted per ``sampling_time_unit`` (the module's swap timer; its phase is assumed 0);
    an address becomes *red* at the hit that brings the current or the previous unit to
    ``reqs_density_per_unit``, and is unblocked at the first swap whose finished unit stayed below
    it (``src/modules/pike``: ``pike_check_req``, ``ip_tree.c`` ``mark_node``/``is_hot_leaf``, ``refresh_node``). A blocked request
    is dropped without reply (the ``kamailio.cfg`` REQINIT route: ``exit``); that route also bans the
    address for ``ban_time`` in the ``ipban`` htable (autoexpire 300 s) when WITH_ANTIFLOOD is set.
    """

    sampling_time_unit: Duration = Field(2.0, gt=0, le=3600, description="pike sampling_time_unit (default 2 s).")
    reqs_density_per_unit: int = Field(30, ge=1, le=1_000_000, description="pike reqs_density_per_unit (default 30).")
    ban_time: Duration = Field(
        0.0, ge=0, description="Ban a blocked address this long (kamailio.cfg WITH_ANTIFLOOD ipban autoexpire 300 s; 0: pike only)."
    )


class ThreadPool(Frozen):
    """A worker pool that grows under load and shrinks when idle (Asterisk's res_pjsip threadpool,
    ``main/threadpool.c``; pjsip.conf ``[system]`` threadpool_*). Each REGISTER pushed finds an idle
    thread, or the pool grows by ``auto_increment`` threads (at most ``max_size``; 0: no limit); a
    thread idle for ``idle_timeout`` without a push dies (0: never). After a process start the pool
    has ``initial_size`` threads. Simplification: every REGISTER is a push (Asterisk pushes when a
    request lands on an empty one of the distributor's serializers, each run by one thread)."""

    initial_size: int = Field(0, ge=0, le=100_000, description="Threads when the process starts (Asterisk 0).")
    auto_increment: int = Field(
        5, ge=1, le=100_000, description="Threads added when a push finds none idle (Asterisk 5; a fixed pool is `workers`)."
    )
    max_size: int = Field(50, ge=0, le=100_000, description="Most threads (Asterisk 50; 0: no limit).")
    idle_timeout: Duration = Field(60.0, ge=0, description="An idle thread not woken this long dies (Asterisk 60 s; 0: never).")
    serializers: int = Field(
        31, ge=0, le=100_000,
        description="REGISTERs served at once at most: each request runs on one of the distributor's serializers, "
        "one task at a time (Asterisk DISTRIBUTOR_POOL_SIZE 31; 0: no limit), so threads beyond it never serve one "
        "(the model keeps at most this many). A request hashed to a busy serializer while another is free is not "
        "modelled: an upper bound on concurrency. With overload: taskprocessor each serializer is its own "
        "taskprocessor for the alert (a phone's requests hash to one by its Call-ID).",
    )

    @property
    def serving_max(self) -> int:
        """The most threads serving REGISTERs at once: min(max_size, serializers), 0 where neither limits."""
        caps = [c for c in (self.max_size, self.serializers) if c]
        return min(caps) if caps else 0

    @model_validator(mode="after")
    def _sizes(self) -> "ThreadPool":
        if self.max_size and self.initial_size > self.max_size:
            raise ValueError(f"initial_size ({self.initial_size}) must be <= max_size ({self.max_size})")
        return self


class Registrar(Frozen):
    """The registrar software on every HA node (Kamailio-like by default, see models/registrars)."""

    profile: str | None = Field(None, description="Registrar profile from models/registrars (merged).")
    workers: int = Field(
        4, ge=1, le=4096, description="Parallel REGISTER workers (Kamailio children); unused when threadpool is set."
    )
    threadpool: ThreadPool | None = Field(
        None, description="Workers that grow and shrink with the load (Asterisk res_pjsip); null: a fixed `workers`."
    )
    service_time: Dist = Field(
        default_factory=lambda: Dist(dist="exponential", mean=0.002),
        description="Time a worker spends on one REGISTER (assumption: 2 ms exponential).",
    )
    queue_limit: int = Field(1000, ge=0, le=10_000_000, description="REGISTERs waiting beyond the busy workers.")
    udp_buffer: UdpBuffer | None = Field(
        None, description="Bound the queue by the kernel's UDP receive buffer in bytes instead of queue_limit (null: queue_limit)."
    )
    transactions: Literal["stateless", "stateful"] = Field(
        "stateless",
        description="stateless: every copy a worker reads is processed and answered again (Kamailio save() without "
        "t_newtran); stateful: a retransmission of a transaction already read is absorbed, or answered with the "
        "stored reply once it was sent (Kamailio tm t_newtran, the pjsip transaction layer).",
    )
    retransmission_cost: float = Field(
        0.0, ge=0, le=10,
        description="stateful: worker time to match a retransmission to its transaction, as a multiple of a "
        "service-time draw (assumption: 0; tm parses the message and looks up its hash table).",
    )
    absorb_window: Duration = Field(
        5.0, ge=0,
        description="stateful: how long after its reply a transaction still absorbs retransmissions (Kamailio tm "
        "wt_timer 5 s; pjsip Timer J 64·T1 = 32 s); later copies are processed as new.",
    )
    overload: Literal["none", "taskprocessor"] = Field(
        "none",
        description="taskprocessor: Asterisk's overload alert — raised when the queue reaches overload_high, "
        "cleared at overload_low; meanwhile new UDP requests are ignored and TCP/TLS ones get 503 without "
        "Retry-After (res_pjsip pjsip_distributor.c).",
    )
    pike: Pike | None = Field(
        None, description="A per-source-IP rate limit in the request route (Kamailio pike); null: none."
    )
    overload_high: int = Field(500, ge=1, le=10_000_000, description="Taskprocessor high-water level (Asterisk 500).")
    overload_low: int = Field(450, ge=0, le=10_000_000, description="Taskprocessor low-water level (Asterisk 90 % of high: 450).")
    when_full: Literal["drop", "reply_503"] = Field("drop", description="Overload: drop, or answer 503.")
    retry_after: Duration = Field(0.0, ge=0, description="Retry-After on 503 (0 = header absent).")
    retry_after_max: Duration | None = Field(
        None, ge=0, description="If set, Retry-After is uniform in [retry_after, retry_after_max]."
    )
    min_expires: Duration = Field(60.0, ge=0, description="Shorter requested expiries are raised to this.")
    max_expires: Duration = Field(0.0, ge=0, description="Longer requested expiries are lowered (0 = no limit).")
    expires_range: float = Field(0.0, ge=0, le=100, description="Kamailio expires_range: granted expiry uniform in [E(1-r%), E].")
    lookup_grace: Duration = Field(0.0, ge=0, description="A binding still routes calls this long after expiry.")
    expiry_clock: Literal["exact", "whole_seconds"] = Field(
        "exact",
        description="How the registrar stores a binding's expiry: exact (save time + grant; Asterisk PJSIP's "
        "timeval) or whole_seconds (Kamailio/OpenSIPS usrloc time_t: the second the save fell in + the grant, "
        "so a binding ends up to 1 s early; the wall clock's phase is drawn per replication). "
        "simsip.protocols.registration.binding_until.",
    )
    removal_interval: Duration = Field(60.0, gt=0, description="Expired bindings are purged on this timer.")
    data: Literal["none", "shared", "replicated"] = Field(
        "none",
        description="Registration data: none = each node keeps what it received; shared = one store all nodes read "
        "(usrloc db_mode 3); replicated = SIP-level replication (DMQ) with lag.",
    )
    replication: Replication = Field(default_factory=Replication, description="Used when data is 'replicated'.")
    persistence: Literal["memory", "write_through", "write_back", "db_only"] = Field(
        "memory",
        description="Where bindings survive a restart: memory (usrloc db_mode 0), write_through (1), write_back (2, "
        "flushed every flush_interval), db_only (3: every lookup reads the storage).",
    )
    flush_interval: Duration = Field(60.0, gt=0, description="Write-back flush timer (usrloc timer_interval 60 s).")
    storage: Literal["local", "shared"] = Field(
        "local", description="Persistent storage per node (astdb, SQLite) or shared by all (one DB, DRBD volume)."
    )
    start_time: Dist = Field(
        default_factory=lambda: Dist(mean=2.0),
        description="Registrar start-up before it loads bindings (and, with preload first_worker, answers) "
        "(generic assumption: 2 s; the Kamailio profiles carry lab measurements).",
    )
    load_rate: Rate = Field(
        20000.0, gt=0,
        description="Bindings per second loaded from storage at start, into an empty table (generic assumption; the "
        "Kamailio db_mode 1/2 profiles carry the rate measured in the lab, `simsip lab preload`).",
    )
    load_doubling: float | None = Field(
        None, gt=0,
        description="Table size (bindings) at which the start-up load's average cost per binding has doubled: n "
        "bindings take n / load_rate × (1 + n / load_doubling) (Kamailio usrloc: each insert walks one slot of its "
        "2^hash_size-slot table, udomain.c get_urecord, so the cost grows with the table); null = a constant rate.",
    )
    preload: Literal["blocking", "first_worker"] = Field(
        "blocking",
        description="How the start-up load meets the requests: blocking = the process answers nothing until every "
        "stored binding is loaded (start_time + n/load_rate); first_worker = Kamailio usrloc db_mode 1/2: the "
        "sockets are bound and read from start_time on, the first worker spends n/load_rate loading the table "
        "(usrloc child_init at rank PROC_SIPINIT) while the others answer, and the loaded bindings are there "
        "when the load ends (a REGISTER saved meanwhile is kept if newer).",
    )
    restore_expiry: Literal["absolute", "fresh"] = Field(
        "absolute",
        description="What a binding loaded from storage at start is valid until: absolute = the expiry it was saved "
        "with (usrloc, Asterisk PJSIP: location.c stores expiration_time); fresh = its granted expiry plus "
        "lookup_grace counted from the restart, however old the entry (chan_sip reg_source_db: expire + 10 s). "
        "An entry whose expiry passed while the process ran was deleted and is not restored.",
    )
    reply_expires: Literal["granted", "remaining"] = Field(
        "granted",
        description="The expires the 200 tells the phone: the grant, or (remaining) the contact's remaining lifetime "
        "in whole seconds after the save, E − 1 (Asterisk PJSIP res_pjsip_registrar.c:310); the phone refreshes "
        "from it. The equilibrium start uses the grant.",
    )
    rewrite_contact: bool = Field(
        False,
        description="Store a tcp/tls contact as the source address of the connection it came over (Asterisk "
        "rewrite_contact=yes; Kamailio fix_nated_contact/set_contact_alias for every phone): the binding then reaches "
        "the phone only over that connection, NATed or not (see phone.nat).",
    )
    max_contacts: int | None = Field(
        None, ge=1, le=1000,
        description="Contacts one AOR may hold (null: no limit). A REGISTER that would add one more unexpired "
        "contact is refused unless remove_existing; a connection-bound phone's new connection is a new contact.",
    )
    remove_existing: bool = Field(
        False,
        description="When max_contacts would be exceeded, remove the contacts that expire soonest instead of refusing "
        "(Asterisk aor remove_existing; Kamailio save() flag 0x04 replaces all; OpenSIPS save() flag f).",
    )
    contacts_full_status: Literal[403, 503] = Field(
        503,
        description="The reply to a REGISTER over max_contacts: 503 (Kamailio/OpenSIPS R_TOO_MANY, 'Too many "
        "registered contacts') or 403 (Asterisk res_pjsip_registrar).",
    )
    prune_reliable_on_boot: bool = Field(
        False,
        description="At start, delete stored bindings of TCP/TLS phones instead of loading them (Asterisk PJSIP "
        "prune_on_boot: a contact rewritten to its reliable connection's source address cannot survive a restart, "
        "res_pjsip.c ast_sip_will_uri_survive_restart; location.c ast_sip_location_prune_boot_contacts; assumes "
        "rewrite_contact=yes or phones whose Contact is their source address).",
    )

    @model_validator(mode="after")
    def _check(self) -> "Registrar":
        if self.retry_after_max is not None and self.retry_after_max < self.retry_after:
            raise ValueError("retry_after_max must be >= retry_after")
        if self.max_expires and self.max_expires < self.min_expires:
            raise ValueError("max_expires must be 0 (no limit) or >= min_expires")
        if self.overload_low >= self.overload_high:
            raise ValueError("overload_low must be < overload_high")
        if self.remove_existing and self.max_contacts is None:
            raise _located(("remove_existing",), "remove_existing needs max_contacts (there is no limit to make room under)")
        return self

    @property
    def queue_capacity(self) -> int:
        """REGISTERs that may wait for a worker: the UDP buffer's capacity when set, else queue_limit."""
        return self.udp_buffer.capacity if self.udp_buffer is not None else self.queue_limit

    @property
    def worker_limit(self) -> int:
        """The most REGISTERs served at once: a growing threadpool's min(max_size, serializers) (``workers``
        when neither limits it), else ``workers``."""
        tp = self.threadpool
        return tp.serving_max if tp is not None and tp.serving_max else self.workers

    def grant(self, requested: float) -> float:
        """The expiry the registrar grants for a requested one, before expires_range
        (:func:`~simsip.protocols.clamp_expiry`)."""
        return registration.clamp_expiry(requested, self.min_expires, self.max_expires)


# --------------------------------------------------------------------------- HA
class Node(Frozen):
    name: str = Field(..., min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$", description="Node name.")
    priority: int = Field(100, ge=1, le=255, description="VRRP priority (255 = address owner).")


class Vrrp(Frozen):
    """keepalived VRRP timers (defaults: keepalived vrrp.h, see models/ha/keepalived.yaml)."""

    version: Literal[2, 3] = Field(2, description="VRRP version: 2 (keepalived default, RFC 3768) or 3 (RFC 5798).")
    advert_int: Duration = Field(1.0, gt=0, le=255, description="Advertisement interval.")
    down_timer_adverts: int = Field(3, ge=1, le=255, description="Adverts missed before the backup takes over.")
    preempt: bool = Field(True, description="A higher-priority node takes the VIP back when it returns.")
    preempt_delay: Duration = Field(0.0, ge=0, le=1000, description="Wait after start-up before preempting.")
    garp_master_repeat: int = Field(5, ge=1, le=100, description="GARPs per burst on becoming master.")
    garp_master_delay: Duration = Field(5.0, ge=0, description="Delay of the second GARP burst (0 = none).")
    garp_lower_prio: bool = Field(
        True, description="A master that hears a lower-priority master re-announces the VIP (garp_lower_prio_repeat)."
    )
    advert_delay: Dist = Field(
        default_factory=lambda: Dist(mean=0.0), description="One-way delay of VRRP adverts between the nodes."
    )
    first_advert: Duration | None = Field(
        None, ge=0, description="When the initial master sends its first advert after t=0 (null: a random phase)."
    )
    garp_master_refresh: Duration = Field(
        0.0, ge=0, le=86400,
        description="A master repeats its GARPs this often (vrrp_garp_master_refresh; 0 = never, keepalived's default).",
    )
    garp_master_refresh_repeat: int = Field(
        1, ge=1, le=100, description="GARPs per periodic refresh (vrrp_garp_master_refresh_repeat, default 1)."
    )
    use_vmac: bool = Field(
        False, description="The VIP carries the virtual MAC 00:00:5e:00:01:VRID (use_vmac): hosts' ARP entries "
        "never change, the switch learns the new master from its first packet, a missed GARP costs nothing.",
    )
    vip_move: Literal["garp", "api"] = Field(
        "garp", description="How the VIP reaches the new master: GARPs on a LAN, or (api) a notify_master script "
        "that asks a cloud API to move the address; GARPs then have no effect.",
    )
    api_latency: Dist = Field(
        default_factory=lambda: Dist(mean=5.0),
        description="vip_move api: from becoming master until the cloud routes the VIP to it (assumption: 5 s).",
    )

    @model_validator(mode="after")
    def _v2(self) -> "Vrrp":
        if self.version == 2 and abs(self.advert_int - round(self.advert_int)) > 1e-9:
            raise ValueError(f"VRRPv2 takes whole-second advert_int (got {self.advert_int}s); use version: 3")
        if self.version == 3 and abs(self.advert_int * 100 - round(self.advert_int * 100)) > 1e-6:
            raise ValueError(f"VRRPv3 advert_int has centisecond resolution (got {self.advert_int}s)")
        return self

    def skew(self, priority: int) -> float:
        """Skew_Time: RFC 3768 (v2) (256−p)/256 s; RFC 5798 (v3) (256−p)·advert/256 (:func:`~simsip.protocols.skew_time`)."""
        return vrrp.skew_time(self.version, priority, self.advert_int)

    def master_down_interval(self, priority: int) -> float:
        """down_timer_adverts·advert_int + Skew_Time (:func:`~simsip.protocols.master_down_interval`)."""
        return vrrp.master_down_interval(self.version, priority, self.advert_int, self.down_timer_adverts)


class HealthCheck(Frozen):
    """keepalived ``vrrp_script``/``track_script`` (or ``track_process``) on each node, checking the local registrar.

    Checks run every ``interval``; ``fall`` consecutive failures put the instance in FAULT (weight
    0, keepalived's default), which releases the VIP with a priority-0 advert: the backup takes
    over after its Skew_Time. ``kind: socket`` (the registrar's UDP socket is bound) detects a
    crashed process but not a hung one; ``kind: sip`` (an OPTIONS probe with ``timeout``) detects
    both. ``rise`` consecutive successes end the FAULT. ``kind: process`` is ``vrrp_track_process``:
    no polling — keepalived hears the process exit (and start) from the kernel's process events,
    ``event_latency`` later, plus ``terminate_delay`` (``fork_delay`` on a start); a hung process
    still runs, so it is not detected.

    A non-zero ``weight`` changes the priority instead of entering FAULT: w > 0 is added while the
    check passes, w < 0 while it fails (``reverse`` flips the sign), the result clamped to 1..254
    (keepalived ``vrrp_track.c``). The master keeps advertising at the lowered priority; a
    preempting backup discards those adverts and takes over only when its Master_Down_Timer,
    counted from the last advert it accepted, runs out. A weight that does not bring the master
    strictly below the backup, or ``preempt: false``, never moves the VIP. A priority-255 node
    ignores a weighted check (keepalived drops it).
    """

    kind: Literal["socket", "sip", "process"] = Field("socket", description="What is checked (process: track_process).")
    interval: Duration = Field(1.0, gt=0, description="vrrp_script interval (keepalived default 1 s).")
    fall: int = Field(1, ge=1, le=100, description="Failures before FAULT (keepalived default 1).")
    rise: int = Field(1, ge=1, le=100, description="Successes before recovering (keepalived default 1).")
    timeout: Duration = Field(1.0, gt=0, description="Script timeout (sip kind: no answer within it is a failure).")
    exec_time: Duration = Field(0.0, ge=0, description="Time the script takes to report (assumption: 0; calibrate from a lab).")
    first_check: Duration | None = Field(
        None, ge=0, description="When each node's first check runs after t=0 (null: a random phase of the interval)."
    )
    weight: int = Field(
        0, ge=-253, le=253,
        description="0: a failed check means FAULT (keepalived's default); else added to the priority (see above).",
    )
    reverse: bool = Field(False, description="Reverse the weight's sign (track_script ... weight W reverse).")
    terminate_delay: Duration = Field(
        0.0, ge=0, description="process kind: wait after the process exits before it counts as down (default 0)."
    )
    fork_delay: Duration = Field(
        0.0, ge=0, description="process kind: wait after the process starts before it counts as up (default 0)."
    )
    event_latency: Duration = Field(
        0.02, ge=0, description="process kind: process event to keepalived's reaction (assumption: ~20 ms, acassen/keepalived#2599)."
    )

    @model_validator(mode="after")
    def _reverse(self) -> "HealthCheck":
        if self.reverse and self.weight == 0:
            raise _located(("reverse",), "reverse with weight 0 puts the node in FAULT while its registrar is "
                           "healthy (keepalived 'weight 0 reverse'); simsip does not model that — give a weight")
        return self

    def contribution(self, ok: bool) -> int:
        """What the check adds to the priority now (:func:`~simsip.protocols.track_contribution`)."""
        return vrrp.track_contribution(self.weight, ok, self.reverse)


class Heartbeat(Frozen):
    """Linux-HA heartbeat (``ha.cf``): a node is dead after ``deadtime`` without heartbeats.

    Defaults from heartbeat's config.c (keepalive 1 s, deadtime 30 s, warntime deadtime/2,
    initdead = deadtime when > 10 s); see models/ha/heartbeat.yaml.
    """

    keepalive: Duration = Field(1.0, gt=0, description="Heartbeat interval.")
    deadtime: Duration = Field(30.0, gt=0, description="Silence after which the peer is declared dead.")
    warntime: Duration | None = Field(None, gt=0, description="Late-heartbeat warning (null: deadtime/2); logged only.")
    initdead: Duration | None = Field(None, gt=0, description="Dead time at start-up (null: heartbeat's rule).")
    auto_failback: bool = Field(True, description="Resources return to the preferred node when it comes back.")
    takeover_time: Dist = Field(
        default_factory=lambda: Dist(mean=0.5), description="Running the resource scripts on takeover (assumption: 0.5 s)."
    )

    @model_validator(mode="after")
    def _check(self) -> "Heartbeat":
        if self.deadtime <= 2 * self.keepalive:
            raise ValueError(f"deadtime ({self.deadtime}s) must be more than 2 × keepalive ({self.keepalive}s)")
        return self

    @property
    def initial_dead(self) -> float:
        """The dead time at start-up (:func:`~simsip.protocols.heartbeat_initdead`)."""
        return cluster.heartbeat_initdead(self.deadtime, self.initdead)


class Corosync(Frozen):
    """Corosync totem timers: a lost node is noticed after token (+ per-node coefficient) and consensus."""

    token: Duration = Field(3.0, gt=0, description="Token timeout (corosync >= 3.1: 3 s; 2.x: 1 s).")
    token_coefficient: Duration = Field(0.65, ge=0, description="Added per node beyond two.")
    consensus: Duration | None = Field(None, gt=0, description="Consensus timeout (null: 1.2 × token).")
    join: Duration = Field(0.05, ge=0, description="Forming the new membership (join 50 ms).")

    def detection(self, nodes: int) -> float:
        """Failure → new membership in a cluster of ``nodes`` (:func:`~simsip.protocols.corosync_detection`)."""
        return cluster.corosync_detection(nodes, self.token, self.token_coefficient, self.consensus, self.join)


class Pacemaker(Frozen):
    """Pacemaker resource management on top of corosync: fencing, monitors, resource start."""

    stonith_enabled: bool = Field(True, description="Fence a lost node before recovering its resources (default true).")
    fence_time: Dist = Field(default_factory=lambda: Dist(mean=5.0), description="Time a fence action takes (assumption: 5 s).")
    stonith_timeout: Duration = Field(60.0, gt=0, description="A fence slower than this fails (pacemaker default 60 s).")
    monitor_interval: Duration = Field(10.0, gt=0, description="Registrar resource monitor interval (IPaddr2 advertises 10 s).")
    migration_threshold: int = Field(1_000_000, ge=1, description="Local failures before the resource moves (INFINITY).")
    resource_stickiness: int = Field(
        0, ge=0, le=1_000_000,
        description="Score for staying on the current node (pacemaker's default 0; new RHEL 9 clusters set 1).",
    )
    location_score: int = Field(
        1_000_000, ge=0, le=1_000_000,
        description="Score of a location constraint preferring the highest-priority node (0: none; 1000000 = INFINITY, "
        "pcs's default score for 'prefers'). Resources move back when it beats resource_stickiness.",
    )
    ip_start_time: Duration = Field(0.0, ge=0, description="IPaddr2 start (its 5 ARPs 200 ms apart start at once).")
    stop_time: Dist = Field(default_factory=lambda: Dist(mean=1.0), description="Stopping the registrar resource (assumption: 1 s).")

    @property
    def fails_back(self) -> bool:
        """Resources return to the preferred node when it rejoins (:func:`~simsip.protocols.pacemaker_fails_back`)."""
        return cluster.pacemaker_fails_back(self.location_score, self.resource_stickiness)


class Ha(Frozen):
    """The HA control plane that moves the VIP between registrar nodes."""

    kind: Literal["keepalived", "heartbeat", "pacemaker"] = Field("keepalived", description="HA stack.")
    profile: str | None = Field(None, description="HA profile from models/ha (merged).")
    vrrp: Vrrp = Field(default_factory=Vrrp)
    heartbeat: Heartbeat = Field(default_factory=Heartbeat, description="Used when kind is heartbeat.")
    corosync: Corosync = Field(default_factory=Corosync, description="Used when kind is pacemaker.")
    pacemaker: Pacemaker = Field(default_factory=Pacemaker, description="Used when kind is pacemaker.")
    standby: Literal["hot", "warm", "cold"] = Field(
        "hot",
        description="hot/warm: the registrar runs on every node; cold: it is started on the node that takes over "
        "(start time, then loading persisted bindings).",
    )
    health_check: HealthCheck | None = Field(None, description="keepalived track_script (null: none, keepalived's default).")
    nodes: tuple[Node, ...] = Field(
        default_factory=lambda: (Node(name="node-a", priority=101), Node(name="node-b", priority=100)),
        min_length=2, max_length=8, description="Registrar nodes sharing the VIP.",
    )

    @model_validator(mode="after")
    def _unique(self) -> "Ha":
        names = [n.name for n in self.nodes]
        for j, name in enumerate(names):
            if name in names[:j]:
                raise _located(("nodes", j, "name"), f"node names must be unique, got {names}")
        prios = [n.priority for n in self.nodes]
        if len(set(prios)) != len(prios):
            raise ValueError(f"node priorities must differ (VRRP would tie-break on addresses), got {prios}")
        hc = self.health_check
        if hc is not None and self.kind != "keepalived":
            if hc.weight != 0:
                raise _located(("health_check", "weight"), f"a weighted check adjusts a VRRP priority; ha.kind is {self.kind!r}")
            if hc.kind == "process":
                raise _located(("health_check", "kind"), f"track_process is keepalived's; ha.kind is {self.kind!r}")
        v = self.vrrp
        if v.use_vmac and v.vip_move == "api":
            raise _located(("vrrp", "use_vmac"), "use_vmac needs a LAN; vip_move api is a cloud VIP moved by an API")
        return self


# --------------------------------------------------------------------------- network
class Arp(Frozen):
    """How hosts learn which node owns the VIP (Linux neighbour table defaults, net/ipv4/arp.c)."""

    mode: Literal["per_phone", "gateway"] = Field(
        "per_phone", description="per_phone: phones on the VIP's L2; gateway: one router ARP cache for all phones."
    )
    garp_loss: float = Field(0.0, ge=0, le=1, description="Probability that one GARP packet is missed by a host.")
    base_reachable_time: Duration = Field(30.0, gt=0, description="Linux base_reachable_time (REACHABLE 0.5–1.5×).")
    delay_first_probe_time: Duration = Field(5.0, ge=0, description="Linux delay_first_probe_time.")
    retrans_time: Duration = Field(1.0, gt=0, description="Linux retrans_time between unicast probes.")
    ucast_solicit: int = Field(3, ge=0, le=20, description="Linux ucast_solicit probes before re-resolving.")
    gateway_timeout: Duration = Field(14400.0, gt=0, description="Router ARP timeout in gateway mode (Cisco IOS 4 h).")


class Tcp(Frozen):
    """TCP/TLS connection behaviour (Linux defaults) and the TLS handshake's cost at the registrar."""

    syn_rto: Duration = Field(1.0, gt=0, description="First SYN retransmission (RFC 6298 initial RTO 1 s), doubling.")
    rto_min: Duration = Field(0.2, gt=0, description="First data retransmission on a connection (Linux TCP_RTO_MIN 200 ms), doubling.")
    rto_max: Duration = Field(120.0, gt=0, description="Retransmission interval cap (Linux TCP_RTO_MAX 120 s).")
    tls_rtts: int = Field(2, ge=0, le=4, description="Round trips of a TLS handshake after TCP's (TLS 1.2 full: 2; 1.3: 1).")
    tls_handshake_cost: float = Field(
        5.0, ge=0, le=1000,
        description="Registrar work of a TLS handshake, in REGISTER service times, added to the first request on a "
        "new connection (assumption; sip-router measured 61 kB per TLS connection, CPU not published).",
    )


class Network(Frozen):
    delay: Dist = Field(default_factory=lambda: Dist(mean=0.001), description="One-way phone↔node delay.")
    loss: float = Field(0.0, ge=0, le=0.9, description="Independent loss probability per SIP packet.")
    arp: Arp = Field(default_factory=Arp)
    tcp: Tcp = Field(default_factory=Tcp, description="TCP/TLS transport parameters.")


# --------------------------------------------------------------------------- finding the registrar
class SrvRecord(Frozen):
    target: str = Field(..., min_length=1, description="A registrar node name (ha.nodes).")
    priority: int = Field(10, ge=0, le=65535, description="SRV priority (lowest first).")
    weight: int = Field(100, ge=0, le=65535, description="SRV weight within a priority (RFC 2782 weighted random order).")


class Dns(Frozen):
    """DNS records that phones with ``server: dns_srv``/``dns_a`` resolve; targets are node names.

    Phones then address the nodes directly (not the VIP): a node answers while its registrar runs,
    whether or not it holds the VIP. Inbound-call reachability is judged where ``calls.lookup``
    says: by default at the node that serves the VIP (the ingress), so either use
    ``registrar.data: shared`` or ``replicated`` with DNS, or set ``calls.lookup: dns``/``any_node``.
    """

    srv: tuple[SrvRecord, ...] = Field(default_factory=tuple, max_length=16, description="SRV records.")
    a: tuple[str, ...] = Field(default_factory=tuple, max_length=16, description="A records (round robin) as node names.")
    ttl: Duration = Field(300.0, ge=0, description="Record TTL (failback_mode DNSTTL).")


class LoadBalancer(Frozen):
    """A dispatcher/SBC in front of the nodes (Kamailio dispatcher, Acme-like SBC).

    Phones send to the balancer, which never fails; it forwards each REGISTER statelessly to a node
    it believes active and probes every node with OPTIONS every ``probe_interval``: a probe that
    gets no answer within ``probe_timeout`` is a failure, ``probe_threshold`` failures in a row mark
    the node inactive, ``recover_threshold`` successes active again. TCP/TLS terminate at the
    balancer, so a backend failover breaks no phone connection. ``max_register_forward``: REGISTERs
    forwarded per second (token bucket, 1 s burst); the excess gets 503 with ``retry_after``.
    """

    algorithm: Literal["priority", "hash", "round_robin"] = Field(
        "priority", description="priority: first active node in order (ds alg 8); hash: per phone; round_robin."
    )
    targets: tuple[str, ...] = Field(default_factory=tuple, description="Node names in order (empty: ha.nodes).")
    probe_interval: Duration = Field(10.0, gt=0, description="OPTIONS probe interval (assumption: 10 s; Kamailio ds_ping_interval).")
    probe_timeout: Duration = Field(5.0, gt=0, description="Probe without answer after this fails (assumption; tm fr_timer).")
    probe_threshold: int = Field(1, ge=1, le=100, description="Failed probes before inactive (Kamailio ds_probing_threshold 1).")
    recover_threshold: int = Field(1, ge=1, le=100, description="Good probes before active again (Kamailio ds_inactive_threshold 1).")
    max_register_forward: Rate = Field(0.0, ge=0, description="REGISTERs forwarded per second (0 = no limit).")
    retry_after: Duration = Field(0.0, ge=0, description="Retry-After on the balancer's own 503 (0 = absent).")


class Sbc(Frozen):
    """An SBC with registration caching in front of the VIP (OpenSIPS mid_registrar, contact throttling).

    Phones of fleets with ``server: sbc`` register with the SBC (it never fails). It forwards a
    phone's REGISTER to the VIP, asking ``max(e, outgoing_expires)``, when it does not hold the phone's
    contact or when the time since its last forwarded REGISTER reaches the upstream lifetime minus the
    phone's expiry ``e``; otherwise it absorbs the REGISTER with its own 200 at once. Calls reach a
    phone through the registrar's binding, so after a registrar failover that lost bindings the gap is
    set by the SBC's next forward, not by the phones' refreshes. Assumptions: the SBC sits next to the
    registrars (no delay between them), relays copies of a forwarded REGISTER one for one, grants the
    phones the expiry the registrar would (``registrar.grant``), and does not notice a failover.
    """

    profile: str | None = Field(None, description="SBC profile from models/sbcs (merged).")
    outgoing_expires: Duration = Field(
        3600.0, gt=0, le=30 * 86400,
        description="Upstream expiry the SBC asks for (mid_registrar outgoing_expires, default 3600 s).",
    )


class ProviderOutage(Frozen):
    """A window during which the trunk provider does not accept REGISTERs."""

    at: Duration = Field(..., ge=0, description="When the provider starts refusing.")
    duration: Duration = Field(..., gt=0, description="How long it refuses.")
    code: int = Field(
        408, ge=300, le=699,
        description="What a REGISTER gets meanwhile: 408 = no answer (a local timeout after the trunk's timeout), "
        "or the provider's final response code (403, 401, 503, ...).",
    )
    retry_after: Duration = Field(0.0, ge=0, description="Retry-After on that response (0 = absent).")


class Trunk(Frozen):
    """The PBX's registration to its SIP provider (Asterisk res_pjsip_outbound_registration).

    The registration runs on the node that holds the VIP with its PBX process answering: when a node
    takes over (or its PBX restarts) it registers from scratch, the first REGISTER 1..
    ``max_random_initial_delay`` whole seconds after ``start_delay``; then it refreshes
    ``expiration - 10`` s after each 2xx and handles failures by Asterisk's rules (``retry_interval``,
    ``forbidden_retry_interval``, ``fatal_retry_interval``, ``max_retries``, ``auth_rejection_permanent``).
    The provider keeps the last binding until it expires. An inbound DID call succeeds while a binding
    is live and it reaches the node serving the VIP: with ``contact: node`` only the node that registered
    it (a NAT mapping or the node's own address in the Contact), with ``contact: vip`` any node holding
    the VIP.
    """

    name: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Trunk name.")
    profile: str | None = Field(None, description="Trunk profile from models/trunks (merged).")
    expiration: Duration = Field(3600.0, gt=0, le=30 * 86400, description="Requested expiry (Asterisk expiration 3600).")
    max_random_initial_delay: Duration = Field(
        10.0, ge=0, le=86400, description="Random delay of the first REGISTER: whole seconds 1..this (Asterisk 10)."
    )
    retry_interval: Duration = Field(60.0, ge=0, description="Wait after a temporal failure (Asterisk 60; 0 = never retry).")
    forbidden_retry_interval: Duration = Field(0.0, ge=0, description="Wait after a 403 (Asterisk 0 = stop).")
    fatal_retry_interval: Duration = Field(0.0, ge=0, description="Wait after another fatal response (Asterisk 0 = stop).")
    max_retries: int = Field(10, ge=0, le=1_000_000, description="Retries before giving up for good (Asterisk 10).")
    auth_rejection_permanent: bool = Field(True, description="A refused 401/407 stops the registration (Asterisk yes).")
    timeout: Duration = Field(32.0, gt=0, le=3600, description="REGISTER transaction timeout (pjsip timer_b 32 s).")
    start_delay: Duration = Field(
        0.0, ge=0, description="From taking the VIP to the registration starting (a notify script reloading the module; "
        "assumption: 0)."
    )
    provider_rtt: Duration = Field(0.05, ge=0, le=60, description="Round trip to the provider (assumption: 50 ms).")
    provider_expires: Duration | None = Field(
        None, gt=0, description="Expiry the provider grants (null: as requested; assumption)."
    )
    contact: Literal["node", "vip"] = Field(
        "node", description="Where the provider sends calls: the node that registered (NAT mapping, own address; "
        "assumption) or the VIP."
    )
    calls_per_hour: Rate = Field(0.0, ge=0, description="Inbound DID calls on this trunk (Poisson), e.g. '120/h'.")
    outages: tuple[ProviderOutage, ...] = Field(default_factory=tuple, max_length=1000,
                                                description="Windows during which the provider refuses REGISTERs.")


class Calls(Frozen):
    """How an incoming call finds a phone, i.e. which node's bindings decide *reachable*.

    ``vip``: the proxy/SBC sends calls to the VIP; the node serving it must hold the binding.
    ``any_node``: the call proxy queries every registrar (a shared location, or a proxy forking to
    all nodes): reachable while any node whose registrar is available holds an unexpired binding.
    ``dns``: the proxy resolves the same DNS records as the phones (dns.srv by priority then weight,
    else dns.a in order) and looks the phone up on the first target whose registrar is available.
    """

    lookup: Literal["vip", "any_node", "dns"] = Field(
        "vip", description="Where an incoming call looks the phone up: the VIP's node, any available node, or DNS."
    )


class Auth(Frozen):
    """Digest authentication at the registrar: REGISTER → 401 → REGISTER with credentials.

    A nonce is valid only on the node (and registrar process) that issued it, unless the nodes
    share the secret; ``nonce_lifetime`` > 0 makes it stale after that long (Kamailio auth
    ``nonce_expire``). A challenged REGISTER costs one service time like any other.
    """

    enabled: bool = Field(False, description="The registrar challenges REGISTERs.")
    nonce_lifetime: Duration = Field(0.0, ge=0, description="Nonce validity (0 = until the issuing process restarts).")
    shared_secret: bool = Field(False, description="All nodes accept each other's nonces (same auth secret).")


# --------------------------------------------------------------------------- faults
FAULT_KINDS = fault_table.NAMES


class Fault(Frozen):
    """A fault at a scheduled time, optionally repaired (the kinds: :mod:`simsip.faults`)."""

    kind: Literal[fault_table.NAMES] = Field(  # type: ignore[valid-type]
        "node_crash", description="What fails: " + fault_table.help_text()
    )
    node: str = Field("master", description="A node name, or 'master'/'backup' (resolved when the fault fires).")
    at: Duration = Field(..., ge=0, description="When the fault happens.")
    repair_after: Duration | None = Field(None, gt=0, description="Node comes back after this (null: never).")
    fraction: float | None = Field(None, ge=0, le=1, description=(
        "partial_sync only: the share of the sync's messages sent before it is cut (0: none, 1: all)."))

    @model_validator(mode="after")
    def _params(self) -> "Fault":
        wanted = fault_table.kind(self.kind).params
        if "fraction" in wanted and self.fraction is None:
            raise _located(("fraction",), f"a {self.kind} fault needs fraction (the share of the sync sent, 0..1)")
        if "fraction" not in wanted and self.fraction is not None:
            raise _located(("fraction",), f"fraction is for partial_sync faults, not {self.kind}")
        return self


# --------------------------------------------------------------------------- output / scenario
class Output(Frozen):
    resolution: Duration = Field(1.0, gt=0, description="Time-series step.")
    per_phone: bool = Field(True, description="Write the per-phone outage and recovery tables.")
    format: Literal["csv", "parquet"] = Field("csv", description="Table format.")
    report: bool = Field(True, description="Write report.html.")


class RandomFault(Frozen):
    """Faults drawn at random: exponential times between failures (MTBF) and to repair (MTTR)."""

    kind: Literal[fault_table.RANDOM_NAMES] = Field(  # type: ignore[valid-type]
        "node_crash", description="What fails (the kinds that random faults may draw, see faults[].kind)."
    )
    node: str = Field("any", description="A node name, 'master', or 'any' (a node drawn uniformly).")
    mtbf: Duration = Field(..., gt=0, description="Mean time between failures of this kind.")
    mttr: Duration = Field(..., gt=0, description="Mean time to repair.")


class Variant(Frozen):
    """One design to compare: the base scenario with some keys overridden (deep-merged)."""

    name: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Variant name.")
    description: str = Field("", description="What this variant changes.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Keys of the scenario to override (nested mapping).")


class Database(Frozen):
    """The database under a shared registration store (usrloc db_mode 3, Asterisk realtime).

    Its primary replicates to a replica: ``async`` applies each write one ``lag`` later (a crash
    of the primary loses the writes still in flight); ``semisync`` waits for the replica's ack
    but, when the replica stops answering, blocks writes for ``semisync_timeout`` and then
    *silently reverts to async* (MySQL rpl_semi_sync_source_timeout 10 s); ``sync`` never loses a
    write but fails writes while the replica is down; ``galera`` is a quorum cluster of ``nodes``
    voting members: losing one stalls writes for ``suspect_timeout`` (the view change), after which
    a majority goes on writing, and a minority (2 nodes, no arbitrator) refuses every query until
    the member returns or ``bootstrap_after``. When the primary dies, the replica is promoted after
    ``failover_time``; meanwhile the registrars can neither save nor look up.
    """

    profile: str | None = Field(None, description="Database profile from models/databases (merged).")
    replication: Literal["none", "async", "semisync", "sync", "galera"] = Field(
        "none",
        description="Primary → replica replication; galera: a virtually synchronous cluster of `nodes` voting "
        "members with quorum (a lost member stalls writes for suspect_timeout; without a majority the survivors "
        "refuse every query).",
    )
    nodes: int = Field(
        3, ge=2, le=64,
        description="galera: voting members (data nodes plus garbd arbitrators); a member's loss keeps quorum only if "
        "the rest are more than half (3 or more; 2 without an arbitrator lose it).",
    )
    suspect_timeout: Duration = Field(
        5.0, gt=0,
        description="galera: evs.suspect_timeout (PT5S): a silent member is suspected and evicted; writes wait for "
        "that view change.",
    )
    bootstrap_after: Duration | None = Field(
        None, ge=0,
        description="galera without quorum: an operator sets pc.bootstrap=true this long after the loss (null: never; "
        "the cluster re-forms by itself when the lost member returns).",
    )
    lag: Dist = Field(default_factory=lambda: Dist(dist="exponential", mean=0.005),
                      description="Async apply lag on the replica (assumption: 5 ms; no published figure).")
    semisync_timeout: Duration = Field(10.0, gt=0, description="Semi-sync ack wait before reverting to async (MySQL 10 s).")
    failover_time: Duration = Field(30.0, ge=0, description="Detecting the dead primary and promoting the replica (assumption).")


class LabOptions(Frozen):
    """Knobs only the real lab uses (``simsip lab run``); the simulator ignores them."""

    probe_interval: Duration = Field(1.0, gt=0, description="Seconds between prober rounds over all AORs.")
    warmup: Duration | None = Field(None, ge=0, description="Lab time before t=0 so phones are registered (null: R + 5 s).")


class Engine(Frozen):
    """How the simulator runs (never what it predicts)."""

    fast_paths: bool = Field(
        True, description="Apply effects ahead of time where provably nothing can intervene (exact; "
        "false runs the plain event-by-event engine, for checking)."
    )
    bulk: bool = Field(
        True, description="Keep undisturbed phones' refreshes in a calendar off the event heap and apply them "
        "in vectorised batches where provably nothing can intervene (exact, needs fast_paths; false: one "
        "event per refresh). summary.json's engine section counts what ran in bulk and what fell back, and why."
    )
    compact_records: bool = Field(
        True, description="Fold a save or a 200 OK that starts while the phone's previous binding still holds "
        "into that record (memory grows with what is disturbed, not with refreshes; every metric is exactly that "
        "of the unfolded records). Not for replicated data or connection-bound phones, whose metrics compare "
        "bindings one by one; an out-of-order save it cannot represent reruns the replication unfolded (counted "
        "in summary.json's engine section). false: every save and outcome is a record."
    )


class Scenario(Frozen):
    """A complete simsip scenario."""

    name: str = Field("scenario", description="Scenario name.")
    description: str = Field("", description="What the scenario asks.")
    seed: int = Field(1, ge=0, le=2**63 - 1, description="Run seed (named streams derive from it).")
    replications: int = Field(1, ge=1, le=100_000, description="Independent replications (run numbers 0..n-1).")
    duration: Duration = Field(..., gt=0, le=400 * 86400, description="Simulated time.")
    fleets: tuple[Fleet, ...] = Field(..., min_length=1, max_length=1000, description="Phone fleets.")
    registrar: Registrar = Field(default_factory=Registrar)
    ha: Ha = Field(default_factory=Ha)
    network: Network = Field(default_factory=Network)
    faults: tuple[Fault, ...] = Field(default_factory=tuple, max_length=10_000, description="Scheduled faults.")
    random_faults: tuple[RandomFault, ...] = Field(
        default_factory=tuple, max_length=100, description="Faults drawn from MTBF/MTTR (availability over long runs)."
    )
    output: Output = Field(default_factory=Output)
    dns: Dns = Field(default_factory=Dns, description="DNS records for fleets with server dns_srv/dns_a.")
    load_balancer: LoadBalancer | None = Field(None, description="Dispatcher/SBC for fleets with server lb.")
    sbc: Sbc | None = Field(None, description="Registration-caching SBC for fleets with server sbc.")
    trunks: tuple[Trunk, ...] = Field(default_factory=tuple, max_length=100,
                                      description="The PBX's own registrations to SIP providers (inbound DID calls).")
    auth: Auth = Field(default_factory=Auth, description="Digest authentication at the registrar.")
    calls: Calls = Field(default_factory=Calls, description="How incoming calls find a phone (reachability).")
    restart_timer: Duration = Field(
        0.0, ge=0, description="Restart-Timer the registrar advertises (0 = none); phones with retry.honour_restart_timer use it."
    )
    database: Database = Field(default_factory=Database, description="The database under a shared store.")
    lab: LabOptions = Field(default_factory=LabOptions, description="Real-lab options (ignored by the simulator).")
    engine: Engine = Field(default_factory=Engine, description="Simulator options (results do not depend on them).")
    variants: tuple[Variant, ...] = Field(
        default_factory=tuple, max_length=50,
        description="Designs compared side by side (e.g. no replication vs DMQ vs shared DB, same phones, same fault).",
    )

    @model_validator(mode="after")
    def _cross(self) -> "Scenario":
        names = [f.name for f in self.fleets]
        for j, name in enumerate(names):
            if name in names[:j]:
                raise _located(("fleets", j, "name"), f"fleet names must be unique, got {names}")
        nodes = {n.name for n in self.ha.nodes} | {"master", "backup"}
        for i, f in enumerate(self.faults):
            if f.node not in nodes:
                raise _located(("faults", i, "node"), f"{f.node!r} is not a node (allowed: {', '.join(sorted(nodes))})")
            if f.at >= self.duration:
                raise _located(
                    ("faults", i, "at"),
                    f"fault at {f.at:.15g}s is not before the end of the run (duration {self.duration:.15g}s)",
                )
            needs = fault_table.kind(f.kind).needs
            problem = needs(self) if needs is not None else None
            if problem is not None:
                raise _located(("faults", i, "kind"), problem)
        if self.output.resolution > self.duration:
            raise ValueError("output.resolution is longer than the run")
        total = sum(f.count for f in self.fleets)
        if total > 20_000_000:
            raise ValueError(f"{total} phones in all; at most 20 000 000")
        return self

    @property
    def phones(self) -> int:
        return sum(f.count for f in self.fleets)

    def connection_bound(self, fleet: Fleet) -> bool:
        """Does a binding of this fleet reach its phones only over the connection it registered on?
        TCP/TLS phones behind NAT (``phone.nat``), or whose contact the registrar rewrites to the
        connection's source address (``registrar.rewrite_contact``); a balancer or SBC in front holds
        the phones' connections itself (``server: lb`` or ``sbc`` is never bound)."""
        return (fleet.phone.transport != "udp" and fleet.server in ("vip", "dns_srv", "dns_a")
                and (fleet.phone.nat or self.registrar.rewrite_contact))

    def folds_saves(self) -> bool:
        """Does record compaction (``engine.compact_records``) fold the binding stores' saves? Not
        where the metrics compare bindings one by one: copies of one binding in two stores
        (replication, or a restart loading a storage the nodes share) tell divergence apart by
        their expiry, and a connection-bound binding is known by the connection it came over. (The
        phones' outcomes are always folded when compaction is on.)"""
        reg = self.registrar
        if not self.engine.compact_records:
            return False
        one_store = reg.data == "shared" or (reg.persistence == "db_only" and reg.storage == "shared")
        copies = not one_store and (reg.data == "replicated" or (reg.persistence != "memory" and reg.storage == "shared"))
        return not copies and not any(self.connection_bound(f) for f in self.fleets)

    @model_validator(mode="after")
    def _finding_registrar(self) -> "Scenario":
        nodes = [n.name for n in self.ha.nodes]
        for i, r in enumerate(self.dns.srv):
            if r.target not in nodes:
                raise _located(("dns", "srv", i, "target"), f"{r.target!r} is not a node (allowed: {', '.join(nodes)})")
        for i, a in enumerate(self.dns.a):
            if a not in nodes:
                raise _located(("dns", "a", i), f"{a!r} is not a node (allowed: {', '.join(nodes)})")
        if self.load_balancer is not None:
            for i, a in enumerate(self.load_balancer.targets):
                if a not in nodes:
                    raise _located(("load_balancer", "targets", i), f"{a!r} is not a node (allowed: {', '.join(nodes)})")
        for i, f in enumerate(self.fleets):
            if f.server == "dns_srv" and not self.dns.srv:
                raise _located(("fleets", i, "server"), "dns_srv needs dns.srv records")
            if f.server == "dns_a" and not self.dns.a:
                raise _located(("fleets", i, "server"), "dns_a needs dns.a records")
            if f.server == "lb" and self.load_balancer is None:
                raise _located(("fleets", i, "server"), "lb needs a load_balancer section")
            if f.server == "sbc":
                if self.sbc is None:
                    raise _located(("fleets", i, "server"), "sbc needs an sbc section")
                if f.phone.transport != "udp":
                    raise _located(("fleets", i, "phone", "transport"),
                                   f"{f.phone.transport}: a fleet behind the caching SBC must use udp")
                if f.phone.keepalive.kind == "options":
                    raise _located(("fleets", i, "phone", "keepalive", "kind"),
                                   "options keep-alives are not modelled behind the caching SBC (allowed: none, crlf)")
                if self.auth.enabled:
                    raise _located(("auth", "enabled"), "digest auth is not modelled behind the caching SBC "
                                   f"(fleet {f.name!r} has server sbc)")
            if f.phone.failover.dual_registration:
                targets = {r.target for r in self.dns.srv} if f.server == "dns_srv" else set(self.dns.a)
                if f.server not in ("dns_srv", "dns_a") or len(targets) < 2:
                    raise _located(
                        ("fleets", i, "phone", "failover", "dual_registration"),
                        "dual registration needs server dns_srv or dns_a with two or more distinct targets",
                    )
        tnames = [t.name for t in self.trunks]
        for j, t in enumerate(self.trunks):
            if t.name in tnames[:j]:
                raise _located(("trunks", j, "name"), f"trunk names must be unique, got {tnames}")
            for k, o in enumerate(t.outages):
                if o.at >= self.duration:
                    raise _located(("trunks", j, "outages", k, "at"),
                                   f"outage at {o.at:.15g}s is not before the end of the run (duration {self.duration:.15g}s)")
        if self.calls.lookup == "dns" and not (self.dns.srv or self.dns.a):
            raise _located(("calls", "lookup"), "lookup dns needs dns.srv or dns.a records")
        return self
