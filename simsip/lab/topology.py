"""Network namespaces for the lab: a switch namespace with a bridge and one namespace per role.

Nothing is created in, or changed in, the root namespace: the veth pairs are created inside the
switch namespace with their peer end placed directly in the lab namespace.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

PREFIX = "simsip-"
SUBNET = "10.99.0"
VIP = f"{SUBNET}.10"
ADDR = {
    "a": f"{SUBNET}.11",
    "b": f"{SUBNET}.12",
    "phones": f"{SUBNET}.20",
    "prober": f"{SUBNET}.30",
    "db": f"{SUBNET}.40",
}
NODES = ("a", "b")
IFACE = "eth0"  # name of the interface inside every lab namespace


class LabError(RuntimeError):
    pass


def sh(argv: list[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise LabError(f"command failed ({r.returncode}): {' '.join(argv)}\n{r.stderr.strip()}")
    return r


def list_lab_namespaces() -> list[str]:
    r = sh(["ip", "netns", "list"], check=False)
    out = []
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX):
            out.append(name)
    return out


def netns_pids(ns: str) -> list[int]:
    r = sh(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in r.stdout.split() if x.isdigit()]


@dataclass
class Topology:
    run_id: str
    with_db: bool = False
    created: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9]{1,12}", self.run_id):
            raise ValueError("run_id must be 1-12 chars of [a-z0-9]")

    @property
    def roles(self) -> tuple[str, ...]:
        return ("a", "b", "phones", "prober") + (("db",) if self.with_db else ())

    def ns(self, role: str) -> str:
        return f"{PREFIX}{self.run_id}-{role}"

    def cmd(self, role: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(role)] + argv

    def run(self, role: str, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return sh(self.cmd(role, argv), check=check)

    def port(self, role: str) -> str:
        return f"p-{role}"  # switch-side veth end

    # --- build / destroy ------------------------------------------------------------------
    def _add_ns(self, name: str) -> None:
        sh(["ip", "netns", "add", name])
        self.created.append(name)
        sw = ["ip", "netns", "exec", name, "sysctl", "-q", "-w"]
        sh(sw + ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
           check=False)
        sh(["ip", "-n", name, "link", "set", "lo", "up"])

    def create(self) -> None:
        sw = self.ns("sw")
        self._add_ns(sw)
        sh(["ip", "-n", sw, "link", "add", "br0", "type", "bridge", "stp_state", "0",
            "forward_delay", "0", "mcast_snooping", "0"])
        for role in self.roles:
            name = self.ns(role)
            self._add_ns(name)
            sh(["ip", "-n", sw, "link", "add", self.port(role), "type", "veth",
                "peer", "name", IFACE, "netns", name])
            sh(["ip", "-n", sw, "link", "set", self.port(role), "master", "br0"])
            sh(["ip", "-n", sw, "link", "set", self.port(role), "up"])
            sh(["ip", "-n", name, "addr", "add", f"{ADDR[role]}/24", "dev", IFACE])
            sh(["ip", "-n", name, "link", "set", IFACE, "up"])
            if role in NODES:
                self.run(role, ["sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1"])
        sh(["ip", "-n", sw, "link", "set", "br0", "up"])
        # Each node knows its peer's MAC permanently, so unicast VRRP adverts to a dead peer
        # still reach the wire (and the capture) instead of waiting on a failed ARP lookup.
        macs = {n: self.mac(n) for n in NODES}
        for n, peer in (("a", "b"), ("b", "a")):
            sh(["ip", "-n", self.ns(n), "neigh", "replace", ADDR[peer], "lladdr", macs[peer],
                "dev", IFACE, "nud", "permanent"])

    def mac(self, role: str) -> str:
        r = sh(["ip", "-n", self.ns(role), "-o", "link", "show", IFACE])
        m = re.search(r"link/ether ([0-9a-f:]{17})", r.stdout)
        if not m:
            raise LabError(f"no MAC for {role}")
        return m.group(1)

    def destroy(self) -> list[str]:
        """Delete every namespace this object created; return those that could not be deleted."""
        failed = []
        for name in reversed(self.created):
            r = sh(["ip", "netns", "del", name], check=False)
            if r.returncode != 0 and name in list_lab_namespaces():
                failed.append(name)
        self.created = [n for n in self.created if n in failed]
        return failed

    # --- faults -------------------------------------------------------------------------
    def link_down(self, node: str) -> None:
        sh(["ip", "-n", self.ns("sw"), "link", "set", self.port(node), "down"])

    def link_up(self, node: str) -> None:
        sh(["ip", "-n", self.ns("sw"), "link", "set", self.port(node), "up"])

    def partition(self) -> None:
        """Both nodes drop all traffic to and from each other (iptables inside the node
        namespaces; routes cannot do it: keepalived sends its adverts with SO_DONTROUTE)."""
        for n, peer in (("a", "b"), ("b", "a")):
            self.run(n, ["iptables", "-w", "-I", "INPUT", "-s", ADDR[peer], "-j", "DROP"])
            self.run(n, ["iptables", "-w", "-I", "OUTPUT", "-d", ADDR[peer], "-j", "DROP"])

    def heal(self) -> None:
        for n, peer in (("a", "b"), ("b", "a")):
            self.run(n, ["iptables", "-w", "-D", "INPUT", "-s", ADDR[peer], "-j", "DROP"], check=False)
            self.run(n, ["iptables", "-w", "-D", "OUTPUT", "-d", ADDR[peer], "-j", "DROP"], check=False)

    def flush_vip(self, node: str) -> None:
        sh(["ip", "-n", self.ns(node), "addr", "del", f"{VIP}/24", "dev", IFACE], check=False)

    def has_vip(self, node: str) -> bool:
        r = sh(["ip", "-n", self.ns(node), "-o", "addr", "show", "dev", IFACE], check=False)
        return f"inet {VIP}/" in r.stdout
