"""The protocol rules the model is built from, each written once as a pure function.

Each module starts with the domain concept and its source (RFC, product documentation):

* :mod:`~simsip.protocols.vrrp` — VRRP v2/v3 Skew_Time, Master_Down_Interval and the takeover
  window after a silent crash (RFC 3768, RFC 5798, keepalived);
* :mod:`~simsip.protocols.transactions` — RFC 3261 Timer E/F: when a REGISTER is retransmitted
  and when it times out (and SIPp's ``-max_retrans``);
* :mod:`~simsip.protocols.registration` — the registrar's grant (Kamailio ``min_expires``,
  ``max_expires``, ``expires_range``), the phone's refresh interval, its retry wait after a
  failure (RFC 5626 backoff, product rules, Retry-After, Restart-Timer) and flow keep-alives;
* :mod:`~simsip.protocols.cluster` — heartbeat's and corosync's failure detection;
* :mod:`~simsip.protocols.queueing` — the steady REGISTER rate and Erlang C;
* :mod:`~simsip.protocols.overload` — the kernel's UDP receive buffer (Kamailio's SO_RCVBUF
  probing, floor(B/truesize) + 1 datagrams), Asterisk's taskprocessor high/low-water alert and its
  threadpool's growth and idle timeout;
* :mod:`~simsip.protocols.trunk` — Asterisk's outbound (trunk) registration (initial random delay,
  refresh, retry rules) and OpenSIPS mid_registrar's forward-or-absorb rule.

Nothing here imports simpy or the config: the inputs are plain numbers and strings (the retry
rule is read through its attributes), the outputs floats in seconds. Where a rule is random the
caller passes the uniform draw ``u`` in [0, 1); nothing draws random numbers itself. The config
methods (``Vrrp.skew``, ``RefreshRule.interval``, ``Registrar.grant``, ``Corosync.detection``, …),
the closed forms of :mod:`simsip.analytic` and the lab bridge all delegate here.
"""

from simsip.protocols.cluster import (
    corosync_detection,
    corosync_token_timeout,
    heartbeat_detection,
    heartbeat_detection_window,
    heartbeat_initdead,
    pacemaker_fails_back,
)
from simsip.protocols.overload import (kamailio_rcvbuf, setsockopt_rcvbuf, taskprocessor_alert, threadpool_growth,
                                       threadpool_idle_expired, udp_queue_capacity)
from simsip.protocols.queueing import erlang_b, erlang_c, erlang_c_wait, steady_register_rate
from simsip.protocols.registration import (
    backoff_window,
    clamp_expiry,
    contacts_after,
    failure_draws,
    failure_wait,
    grant_expiry,
    keepalive_interval,
    keepalive_timeout,
    refresh_interval,
    restart_timer_applies,
    retry_after_header,
    retry_wait,
    retry_wait_draws,
    spread_expiry,
)
from simsip.protocols.transactions import (
    retransmit_interval,
    send_time,
    sipp_timeout,
    timer_e_schedule,
    timer_f,
    transaction_timeout,
)
from simsip.protocols.vrrp import (
    backup_accepts,
    effective_priority,
    expected_takeover,
    master_down_interval,
    skew_time,
    takeover_after_crash,
    takeover_window,
    track_contribution,
)

__all__ = [
    "skew_time", "master_down_interval", "takeover_after_crash", "takeover_window", "expected_takeover",
    "track_contribution", "effective_priority", "backup_accepts",
    "timer_f", "retransmit_interval", "send_time", "timer_e_schedule", "sipp_timeout", "transaction_timeout",
    "clamp_expiry", "spread_expiry", "grant_expiry", "retry_after_header", "refresh_interval", "backoff_window", "retry_wait",
    "retry_wait_draws", "restart_timer_applies", "failure_wait", "failure_draws", "keepalive_interval",
    "keepalive_timeout", "contacts_after",
    "corosync_token_timeout", "corosync_detection", "heartbeat_initdead", "heartbeat_detection",
    "heartbeat_detection_window", "pacemaker_fails_back",
    "steady_register_rate", "erlang_b", "erlang_c", "erlang_c_wait",
    "setsockopt_rcvbuf", "kamailio_rcvbuf", "udp_queue_capacity", "taskprocessor_alert", "threadpool_growth",
    "threadpool_idle_expired",
]
