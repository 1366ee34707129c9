"""Config generators: kamailio.cfg, keepalived.conf (+ notify/track scripts), SIPp phone XML."""
from __future__ import annotations

import glob
import os
from pathlib import Path

from .spec import LabSpec
from .topology import ADDR, IFACE, VIP

#: Kamailio workers of the prober's own socket (LabSpec.probe_port 5061)
PROBE_WORKERS = 2
DB_NAME = "kamailio"
DB_PORT = 5432
#: usrloc fetch_rows: rows per batch of the start-up preload (the module's default, usrloc_mod.c)
PRELOAD_FETCH_ROWS = 2000
#: what the first UDP worker logs, with its clock ($TV(Sn), epoch s.µs), once the preload is done
PRELOAD_MARK = "simsip-preload-done"
#: usrloc timer_interval (s): expired contacts are removed, and db_mode 2 writes back, on it
TIMER_INTERVAL = 5


def kamailio_module_dir() -> str:
    dirs = sorted(glob.glob("/usr/lib/*/kamailio/modules"))
    return (dirs[0] if dirs else "/usr/lib/x86_64-linux-gnu/kamailio/modules") + "/"


def db_name(spec: LabSpec | None = None, node: str | None = None) -> str:
    """The PostgreSQL database a node's usrloc uses: one shared ``kamailio`` for db_mode 3 (every
    node reads and writes the same table); a database per node (``kamailio_a``, ``kamailio_b``) for
    db_mode 1/2, whose table is the node's own disk copy of its bindings and is preloaded at start
    (two nodes on one table would preload each other's contacts)."""
    if spec is not None and node is not None and spec.usrloc_db_mode in (1, 2):
        return f"{DB_NAME}_{node}"
    return DB_NAME


def db_names(spec: LabSpec) -> tuple[str, ...]:
    """Every database the lab's PostgreSQL must hold for ``spec``."""
    if spec.usrloc_db_mode in (1, 2):
        return tuple(db_name(spec, n) for n in ("a", "b"))
    return (DB_NAME,) if spec.uses_db else ()


def db_url(spec: LabSpec | None = None, node: str | None = None) -> str:
    return f"postgres://postgres@{ADDR['db']}:{DB_PORT}/{db_name(spec, node)}"


def kamailio_cfg(spec: LabSpec, node: str, run_dir: Path) -> str:
    peer = "b" if node == "a" else "a"
    v = spec.variant
    mods = ["kex", "tm", "sl", "pv", "textops", "ctl", "usrloc", "registrar"]
    if v == "dmq":
        mods += ["dmq", "dmq_usrloc"]
    db_mode = spec.usrloc_db_mode
    if db_mode:
        mods.insert(0, "db_postgres")
    if db_mode in (1, 2):
        mods.append("xlog")  # the preload's end is logged from event_route[core:worker-one-init]
    usleep_us = int(round(spec.service_time * 1e6))
    dmq_us = int(round(spec.replication_delay * 1e6)) if v == "dmq" else 0
    if usleep_us > 0 or dmq_us > 0:
        mods.append("cfgutils")  # usleep() is a cfgutils function in Kamailio 5.6, not core
    tcp = spec.tcp
    lines = [
        "#!KAMAILIO",
        "debug=2",
        "log_stderror=yes",
        f"children={spec.workers}",
    ]
    if spec.maxbuffer is not None:
        lines.append(f"maxbuffer={int(spec.maxbuffer)}")
    if tcp:
        lines += [f"tcp_children={spec.workers}", "tcp_accept_aliases=no"]
    else:
        lines.append("disable_tcp=yes")
    lines += [
        "auto_aliases=no",
        f"listen=udp:{ADDR[node]}:5060",
        f"listen=udp:{VIP}:5060",
    ]
    if tcp:
        lines += [f"listen=tcp:{ADDR[node]}:5060", f"listen=tcp:{VIP}:5060"]
    if spec.probe_port != 5060:
        # the prober's own socket: workers and a receive buffer of its own, so that probes
        # neither wait behind REGISTERs nor take their workers or buffer
        lines += [f"socket_workers={PROBE_WORKERS}", f"listen=udp:{VIP}:{spec.probe_port}"]
    lines += [
        f'alias="{VIP}"',
        f'mpath="{kamailio_module_dir()}"',
    ]
    lines += [f'loadmodule "{m}.so"' for m in mods]
    lines += [
        f'modparam("ctl", "binrpc", "unix:{run_dir}/kamailio-{node}.ctl")',
        f'modparam("usrloc", "db_mode", {db_mode})',
        f'modparam("usrloc", "timer_interval", {TIMER_INTERVAL})',
        f'modparam("registrar", "min_expires", {int(spec.min_expires)})',
        f'modparam("registrar", "max_expires", {int(spec.max_expires)})',
        f'modparam("registrar", "default_expires", {int(spec.expires)})',
    ]
    if db_mode:
        lines.append(f'modparam("usrloc", "db_url", "{db_url(spec, node)}")')
    if db_mode in (1, 2):
        # usrloc loads the whole table in child_init of rank PROC_SIPINIT, the first UDP worker,
        # after the sockets are bound and before that worker reads any (usrloc_mod.c child_init ->
        # udomain.c preload_udomain, fetch_rows 2000 rows per batch); save("location") registers the
        # table anyway, `preload` says it outright
        lines += ['modparam("usrloc", "preload", "location")',
                  f'modparam("usrloc", "fetch_rows", {PRELOAD_FETCH_ROWS})']
    if v == "dmq":
        lines += [
            f'modparam("dmq", "server_address", "sip:{ADDR[node]}:5060")',
            f'modparam("dmq", "notification_address", "sip:{ADDR[peer]}:5060")',
            'modparam("dmq", "num_workers", 2)',
            'modparam("dmq_usrloc", "enable", 1)',
            'modparam("dmq_usrloc", "sync", 1)',
        ]
    route = ["request_route {"]
    if v == "dmq":
        if dmq_us > 0:  # the peer applies each replicated save that much later (registrar.replication.lag)
            route.append(f'    if (is_method("KDMQ")) {{ usleep({dmq_us}); dmq_handle_message(); exit; }}')
        else:
            route.append('    if (is_method("KDMQ")) { dmq_handle_message(); exit; }')
    route += ['    if (is_method("REGISTER")) {']
    if usleep_us > 0:
        route.append(f"        usleep({usleep_us});  # the registrar's known service time")
    route += [
        '        if (!save("location")) { sl_reply_error(); }',
        "        exit;",
        "    }",
        '    if (is_method("OPTIONS")) {',
        '        if (registered("location")) { sl_send_reply("200", "OK"); }',
        '        else { sl_send_reply("404", "Not Found"); }',
        "        exit;",
        "    }",
        '    if (is_method("ACK")) { exit; }',
        '    sl_send_reply("405", "Method Not Allowed");',
        "}",
    ]
    if db_mode in (1, 2):
        # run by the first UDP worker right after its child_init, i.e. after the preload
        # (main.c: fork_process -> init_child(PROC_SIPINIT), then run_child_one_init_route)
        route += [
            "event_route[core:worker-one-init] {",
            f'    xlog("L_ALERT", "{PRELOAD_MARK} $TV(Sn) pid $pp\\n");',
            "}",
        ]
    return "\n".join(lines + [""] + route) + "\n"


NOTIFY_SH = """#!/bin/sh
# keepalived notify: $1=INSTANCE|GROUP $2=name $3=state $4=priority
echo "$(date +%s%N) $3 $4" >> "{out}"
"""

TRACK_SH = """#!/bin/sh
# healthy while the kamailio whose PID is in the pid file holds its UDP 5060 socket
# (kill -0 is not enough: a killed but unreaped process still passes it); every verdict is
# logged with its start time (ns) so that the check phase can be read back after the run
start=$(date +%s%N)
ok=1
pid=$(cat "{pidfile}" 2>/dev/null) && [ -n "$pid" ] && ss -Hlunp 'sport = :5060' 2>/dev/null | grep -q "pid=$pid," || ok=0
echo "$start $ok" >> "{log}"
[ "$ok" = 1 ]
"""


def write_scripts(spec: LabSpec, node: str, run_dir: Path) -> dict[str, Path]:
    notify = run_dir / f"notify-{node}.sh"
    notify.write_text(NOTIFY_SH.replace("{out}", str(run_dir / f"transitions-{node}.log")))
    os.chmod(notify, 0o755)
    paths = {"notify": notify}
    if spec.track_interval:
        track = run_dir / f"track-{node}.sh"
        track.write_text(TRACK_SH.replace("{pidfile}", str(run_dir / f"kamailio-{node}.pid"))
                         .replace("{log}", str(run_dir / f"checks-{node}.log")))
        os.chmod(track, 0o755)
        paths["track"] = track
    return paths


def _num(x: float) -> str:
    return str(int(x)) if float(x) == int(x) else repr(float(x))


def keepalived_conf(spec: LabSpec, node: str, run_dir: Path) -> str:
    peer = "b" if node == "a" else "a"
    prio = spec.priority_a if node == "a" else spec.priority_b
    scripts = write_scripts(spec, node, run_dir)
    out = [
        "global_defs {",
        f"    router_id simsip_{node}",
        "    script_user root",
        "    vrrp_startup_delay 0",
        "}",
    ]
    if "track" in scripts:
        out += [
            "vrrp_script chk_kamailio {",
            f'    script "{scripts["track"]}"',
            f"    interval {_num(spec.track_interval)}",
            f"    timeout {_num(max(1.0, spec.track_interval))}",
            f"    fall {spec.track_fall}",
            f"    rise {spec.track_rise}",
        ]
        if spec.track_weight:
            out.append(f"    weight {spec.track_weight}" + (" reverse" if spec.track_reverse else ""))
        out += [
            "}",
        ]
    out += [
        "vrrp_instance VI_simsip {",
        "    state BACKUP",
        f"    interface {IFACE}",
        "    virtual_router_id 51",
        f"    version {spec.vrrp_version}",
        f"    priority {prio}",
        f"    advert_int {_num(spec.advert_int)}",
        f"    garp_master_delay {_num(spec.garp_master_delay)}",
        f"    garp_master_repeat {spec.garp_master_repeat}",
    ]
    if not spec.preempt:
        out.append("    nopreempt")
    elif spec.preempt_delay > 0:
        out.append(f"    preempt_delay {_num(spec.preempt_delay)}")
    if spec.vrrp_unicast:
        out += [f"    unicast_src_ip {ADDR[node]}", "    unicast_peer {", f"        {ADDR[peer]}", "    }"]
    out += [
        "    virtual_ipaddress {",
        f"        {VIP}/24 dev {IFACE}",
        "    }",
        f'    notify "{scripts["notify"]}"',
    ]
    if "track" in scripts:
        out += ["    track_script {", "        chk_kamailio", "    }"]
    out += ["}"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------
# SIPp phone scenario: one call per phone, looping REGISTER -> 200 -> pause -> REGISTER.
# Same Call-ID and From-tag per phone; SIPp's [cseq] rises with each new request and is kept on
# retransmissions (the message buffer is re-sent as is); the branch carries the CSeq so it is
# unique per transaction and unchanged on retransmissions.
_REGISTER = """REGISTER sip:{vip}:5060 SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-ph[call_number]-[cseq]
      Max-Forwards: 70
      From: <sip:ph[call_number]@{vip}>;tag=ph[call_number]-[pid]
      To: <sip:ph[call_number]@{vip}>
      Call-ID: [call_id]
      CSeq: [cseq] REGISTER
      Contact: <sip:ph[call_number]@[local_ip]:[local_port];transport=[transport]>
      Expires: {expires}
      User-Agent: simsip-lab
      Content-Length: 0
"""

ERROR_CODES = (400, 403, 404, 405, 408, 423, 480, 481, 482, 483, 486, 487, 500, 501, 502, 503,
               504, 513, 600, 603)


def sipp_phone_xml(spec: LabSpec) -> str:
    t1_ms = int(round(spec.t1 * 1000))
    refresh_ms = int(round(spec.refresh_interval * 1000))
    retry_ms = int(round(spec.retry_interval * 1000))
    reg = _REGISTER.format(vip=VIP, expires=int(spec.expires))
    err = "\n".join(
        f'  <recv response="{c}" optional="true" next="fail"/>' for c in ERROR_CODES
    )
    if spec.transport == "tcp":
        # SIPp retransmits over UDP only; over TCP the transaction ends when no 200 came within
        # Timer F (the recv timeout), and SIPp never ends it on a reset (it reconnects instead)
        send = "<send>"
        ok = f'<recv response="200" timeout="{int(round(spec.timeout * 1000))}" ontimeout="fail"/>'
    else:
        send = f'<send retrans="{t1_ms}" ontimeout="fail">'
        ok = '<recv response="200"/>'
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="simsip phone">
  <label id="reg"/>
  {send}
    <![CDATA[
      {reg}
    ]]>
  </send>
  <recv response="100" optional="true"/>
{err}
  {ok}
  <pause milliseconds="{refresh_ms}"/>
  <nop next="reg"/>
  <label id="fail"/>
  <pause milliseconds="{retry_ms}"/>
  <nop next="reg"/>
</scenario>
"""


def sipp_argv(spec: LabSpec, scenario: Path, log_dir: Path) -> list[str]:
    """SIPp command for the phones namespace: N calls spread evenly over one refresh interval."""
    rp_ms = int(round(spec.refresh_interval * 1000))
    if spec.transport == "tcp":
        # one connection per phone. SIPp's defaults would end the run at the first reset (a
        # new master answers a segment of a connection it never had with RST): -max_reconnect 0
        # makes that a fatal error, -reconnect_close true deletes the phone's call, and
        # -reconnect_sleep 1000 ms blocks SIPp's main loop per reset. So: reconnect without
        # limit, keep the call (it waits out its recv timeout, then its retry pause), at once.
        # -max_socket: SIPp's default 50000 exceeds the open-files limit, which in -t tn mode
        # makes it exit at start-up (status 1, only the warning in its log).
        transport = ["-t", "tn", "-max_reconnect", "-1", "-reconnect_close", "false",
                     "-reconnect_sleep", "0", "-max_socket", str(spec.phones + 64)]
    else:
        transport = ["-t", "u1"]
    return [
        "sipp", f"{VIP}:5060",
        "-sf", str(scenario),
        "-i", ADDR["phones"], "-p", "5060", *transport,
        "-m", str(spec.phones), "-l", str(spec.phones),
        "-r", str(spec.phones), "-rp", str(rp_ms),
        "-T2", str(int(round(spec.t2 * 1000))),
        "-max_retrans", str(spec.max_retrans),
        "-max_non_invite_retrans", str(spec.max_retrans),
        "-default_behaviors", "none",
        "-nostdin", "-nd",
        "-trace_err", "-error_file", str(log_dir / "sipp-errors.log"),
        "-trace_stat", "-stf", str(log_dir / "sipp-stat.csv"), "-fd", "5",
        "-cid_str", "ph%u-%p@simsip",
    ]


# ---------------------------------------------------------------------------------------
# baresip user agents: one process per UA, each with its own config dir (-f DIR) holding
# ``config`` and ``accounts``. Only the ``account`` module is loaded (it reads ``accounts``):
# no audio, video or UI modules — registration needs none of them.
BARESIP_BASE_PORT = 5100  # UA k (1-based) listens on phones:BASE+4k (SIPp holds 5060)
BARESIP_PORT_STEP = 4     # libre binds UDP+TCP on the port and TLS on port+1: keep UAs apart
BARESIP_MODULE_DIR = "/usr/lib/baresip/modules"


def baresip_aor(k: int) -> str:
    """User part of baresip UA ``k`` (1-based): baresip001, baresip002, ..."""
    return f"baresip{k:03d}"


def baresip_port(k: int) -> int:
    return BARESIP_BASE_PORT + BARESIP_PORT_STEP * k


def baresip_config(spec: LabSpec, k: int) -> str:
    return "\n".join([
        "# simsip lab: baresip UA for registration only",
        "poll_method\t\tepoll",
        f"sip_listen\t\t{ADDR['phones']}:{baresip_port(k)}",
        f"module_path\t\t{BARESIP_MODULE_DIR}",
        "module_app\t\taccount.so",
        "",
    ])


def baresip_accounts(spec: LabSpec, k: int) -> str:
    """One account: AOR <user>@VIP, outbound proxy = the VIP over ``spec.baresip_transport`` (UDP
    or TCP: one connection per UA), regint = spec.expires."""
    return (f'<sip:{baresip_aor(k)}@{VIP}>;outbound="sip:{VIP}:5060;transport={spec.baresip_transport}"'
            f";regint={int(spec.expires)}\n")


def write_baresip_dir(spec: LabSpec, k: int, run_dir: Path) -> Path:
    d = run_dir / f"baresip-{k:03d}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config").write_text(baresip_config(spec, k))
    (d / "accounts").write_text(baresip_accounts(spec, k))
    return d
