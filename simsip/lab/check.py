"""Check that this machine can run the real lab."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess

BINARIES = {
    "ip": "iproute2",
    "kamailio": "kamailio",
    "keepalived": "keepalived",
    "sipp": "sip-tester",
    "tshark": "tshark",
    "ss": "iproute2",
    "setpriv": "util-linux",
    "iptables": "iptables",
}


def check_requirements(variant: str | None = None, baresip: bool = False) -> list[str]:
    """Return a list of human-readable problems; empty when the lab can run (``baresip``: the
    run also needs the baresip user agent and its ``account`` module)."""
    problems: list[str] = []
    if baresip:
        if shutil.which("baresip") is None:
            problems.append("missing binary 'baresip' (Debian package baresip; run lab/install.sh)")
        elif not os.path.isfile("/usr/lib/baresip/modules/account.so"):
            problems.append("baresip module account.so not found in /usr/lib/baresip/modules")
    if os.geteuid() != 0:
        problems.append("not root: the lab creates network namespaces (run as root)")
    for exe, pkg in BINARIES.items():
        if shutil.which(exe) is None:
            problems.append(f"missing binary {exe!r} (Debian package {pkg}; run lab/install.sh)")
    if shutil.which("ip") is not None:
        try:
            r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
            if r.returncode != 0:
                problems.append(f"'ip netns' does not work: {r.stderr.strip()}")
        except (OSError, subprocess.SubprocessError) as e:  # pragma: no cover
            problems.append(f"'ip netns' does not work: {e}")
    mods = glob.glob("/usr/lib/*/kamailio/modules/dmq_usrloc.so")
    if shutil.which("kamailio") is not None and not mods:
        problems.append("kamailio modules directory with dmq_usrloc.so not found")
    if variant == "shared_db":
        if not glob.glob("/usr/lib/*/kamailio/modules/db_postgres.so"):
            problems.append("kamailio db_postgres module missing (kamailio-postgres-modules)")
        if not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
            problems.append("PostgreSQL server missing (postgresql)")
        if shutil.which("psql") is None:
            problems.append("psql missing (postgresql-client)")
    return problems
