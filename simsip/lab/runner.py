"""Run one real-lab scenario: namespaces, Kamailio x2, keepalived x2, tshark, SIPp phones, prober.

Every process is started by this module (in a process group of its own) and stopped by its PID;
every namespace is created by this module and deleted again, on normal exit, error, SIGINT or
SIGTERM alike.
"""
from __future__ import annotations

import glob
import json
import os
import platform
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from simsip import faults as fault_table
from simsip.io import atomic_text

from . import configs, ownership
from .check import check_requirements
from .spec import Fault, LabSpec
from .topology import ADDR, NODES, PREFIX, VIP, LabError, Topology, list_lab_namespaces, netns_pids, sh


class LabInterrupted(KeyboardInterrupt):
    pass


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log: object

    @property
    def pid(self) -> int:
        return self.popen.pid


@dataclass
class ProcSet:
    log_dir: Path
    procs: list[_Proc] = field(default_factory=list)
    current: dict[str, _Proc] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], log_name: str | None = None) -> _Proc:
        log = open(self.log_dir / (log_name or f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        proc = _Proc(name, p, log)
        self.procs.append(proc)
        self.current[name] = proc
        return proc

    def alive(self, name: str) -> bool:
        p = self.current.get(name)
        return p is not None and p.popen.poll() is None

    def send(self, name: str, sig: int, group: bool = True) -> None:
        p = self.current.get(name)
        if p is not None:
            _signal(p, sig, group)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 5.0, group: bool = True) -> None:
        p = self.current.get(name)
        if p is not None:
            _stop(p, sig, timeout, group)

    def stop_all(self, order: list[str]) -> None:
        seen = set()
        for name in order:
            for p in self.procs:
                if p.name == name:
                    _stop(p, _STOP_SIG.get(name.split("-")[0], signal.SIGTERM), 5.0, True)
                    seen.add(id(p))
        for p in self.procs:
            if id(p) not in seen:
                _stop(p, signal.SIGTERM, 5.0, True)
        for p in self.procs:
            try:
                p.log.close()  # type: ignore[attr-defined]
            except Exception:
                pass


_STOP_SIG = {"tshark": signal.SIGINT, "postgres": signal.SIGINT}


def _signal(p: _Proc, sig: int, group: bool) -> None:
    try:
        if group:
            os.killpg(p.pid, sig)  # the group was created by start_new_session: pgid == pid
        elif p.popen.poll() is None:
            os.kill(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(p: _Proc, sig: int, timeout: float, group: bool) -> None:
    if p.popen.poll() is None or group:
        _signal(p, sig, group and p.popen.poll() is None)
        try:
            p.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    # whatever is left in the process group (children of the leader) is killed too
    _signal(p, signal.SIGKILL, True)
    try:
        p.popen.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _wait(cond: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(step)
    raise LabError(f"timed out after {timeout} s waiting for {what}")


def _version(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        for line in (r.stdout + r.stderr).splitlines():
            if line.strip():
                return line.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return ""


def tool_versions(baresip: bool = False) -> dict[str, str]:
    out = {
        "kamailio": _version(["kamailio", "-v"]),
        "keepalived": _version(["keepalived", "-v"]),
        "sipp": _version(["sipp", "-v"]).replace("\x1b", ""),
        "tshark": _version(["tshark", "-v"]),
        "kernel": platform.release(),  # the nodes' kernel: its UDP admission test (udp_buffer.admission)
    }
    if baresip:  # `baresip -h` prints the version line first (and exits 0 on -h)
        out["baresip"] = _version(["baresip", "-h"])
    return out


def baresip_name(k: int) -> str:
    """Process name of baresip UA ``k`` (1-based) in the ProcSet."""
    return f"baresip-{k:03d}"


#: marker in every baresip command line (its -f config dir is named after it), so that a UA that
#: survived its namespace can still be found (``leftovers``) and killed by PID (``cleanup_stale``)
def _baresip_marker(run_id: str) -> str:
    return f"{PREFIX}{run_id}-baresip-"


def read_transitions(path: Path) -> list[list]:
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].isdigit():
                out.append([int(parts[0]) / 1e9, parts[1], int(parts[2]) if len(parts) > 2 else None])
    return out


def read_checks(path: Path) -> list[list]:
    """The track script's log: one [start epoch, ok] per run (ok 1 passed, 0 failed)."""
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and parts[1] in ("0", "1"):
                out.append([int(parts[0]) / 1e9, int(parts[1])])
    return out


class Lab:
    """Low-level lab control; ``run_lab`` drives one scenario with it."""

    def __init__(self, spec: LabSpec, out_dir: Path):
        self.spec = spec
        self.out = Path(out_dir)
        self.run_dir = self.out / "run"
        self.log_dir = self.out / "logs"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_id = spec.run_id or secrets.token_hex(4)
        self.topo = Topology(self.run_id, with_db=spec.uses_db)
        self.procs = ProcSet(self.log_dir)
        self.fault_log: list[dict] = []
        self.t0: float | None = None
        self._kam_starts = {n: 0 for n in NODES}
        self._ka_starts = {n: 0 for n in NODES}

    # --- processes ------------------------------------------------------------------------
    def start_postgres(self) -> None:
        pg_bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not pg_bins:
            raise LabError("PostgreSQL server not installed")
        bindir = pg_bins[-1]
        data = self.run_dir / "pgdata"
        sock = self.run_dir / "pgsock"
        for d in (data, sock):
            d.mkdir(exist_ok=True)
            shutil.chown(d, "postgres", "postgres")
        os.chmod(data, 0o700)
        # the run dir's parents must be traversable by the postgres user
        for parent in [self.run_dir, *self.run_dir.parents]:
            if str(parent) in ("/", "/tmp"):
                break
            try:
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
            except OSError:
                pass
        priv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        r = subprocess.run(priv + [f"{bindir}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"],
                           capture_output=True, text=True, cwd="/")
        (self.log_dir / "initdb.log").write_text(r.stdout + r.stderr)
        if r.returncode != 0:
            raise LabError(f"initdb failed: {r.stderr.strip()[-500:]}")
        with open(data / "pg_hba.conf", "a") as f:
            f.write("host all all 10.99.0.0/24 trust\n")
        self.procs.start("postgres", self.topo.cmd("db", priv + [
            f"{bindir}/postgres", "-D", str(data), "-k", str(sock),
            "-c", f"listen_addresses={ADDR['db']}", "-c", f"port={configs.DB_PORT}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]))

        def ready() -> bool:
            if not self.procs.alive("postgres"):
                raise LabError("postgres exited:\n" + _tail(self.log_dir / "postgres.log"))
            return subprocess.run(["psql", "-h", str(sock), "-p", str(configs.DB_PORT), "-U", "postgres",
                                   "-Atc", "select 1"], capture_output=True).returncode == 0
        _wait(ready, 30, "postgres to accept connections", 0.2)
        psql = ["psql", "-v", "ON_ERROR_STOP=1", "-q", "-h", str(sock), "-p", str(configs.DB_PORT), "-U", "postgres"]
        for name in configs.db_names(self.spec):  # one shared (db_mode 3), or one per node (db_mode 1/2)
            sh(psql + ["-c", f"CREATE DATABASE {name}"])
            for sql in ("standard-create.sql", "usrloc-create.sql"):
                sh(psql + ["-d", name, "-f", f"/usr/share/kamailio/postgres/{sql}"])

    def start_kamailio(self, node: str, shm_mb: int = 64) -> None:
        cfg = self.run_dir / f"kamailio-{node}.cfg"
        cfg.write_text(configs.kamailio_cfg(self.spec, node, self.run_dir))
        rt = self.run_dir / f"kamailio-{node}"
        rt.mkdir(exist_ok=True)
        self._kam_starts[node] += 1
        self.procs.start(f"kamailio-{node}", self.topo.cmd(node, [
            "kamailio", "-DD", "-E", "-f", str(cfg), "-P", str(self.run_dir / f"kamailio-{node}.pid"),
            "-Y", str(rt), "-m", str(int(shm_mb)), "-M", "8"]), log_name=f"kamailio-{node}.log")

    def kamailio_listening(self, node: str) -> bool:
        r = self.topo.run(node, ["ss", "-Hlun", "sport = :5060"], check=False)
        return len([l for l in r.stdout.splitlines() if l.strip()]) >= 2

    def wait_kamailio(self, node: str, timeout: float = 15) -> None:
        def ok() -> bool:
            if not self.procs.alive(f"kamailio-{node}"):
                raise LabError(f"kamailio on {node} exited:\n" + _tail(self.log_dir / f"kamailio-{node}.log"))
            return self.kamailio_listening(node)
        _wait(ok, timeout, f"kamailio on node {node} to listen on 5060")

    def start_keepalived(self, node: str) -> None:
        conf = self.run_dir / f"keepalived-{node}.conf"
        conf.write_text(configs.keepalived_conf(self.spec, node, self.run_dir))
        self._ka_starts[node] += 1
        pre = str(self.run_dir / f"keepalived-{node}")
        self.procs.start(f"keepalived-{node}", self.topo.cmd(node, [
            "keepalived", "-n", "-l", "-D", "-P", "-f", str(conf),
            "-p", pre + ".pid", "-r", pre + "-vrrp.pid", "-c", pre + "-checkers.pid",
            "--no-syslog"]), log_name=f"keepalived-{node}.log")

    def node_state(self, node: str) -> str:
        tr = read_transitions(self.run_dir / f"transitions-{node}.log")
        return tr[-1][1] if tr else "INIT"

    def udp_snmp(self, node: str) -> dict[str, int]:
        """The ``Udp:`` counters of /proc/net/snmp inside ``node``'s namespace (InDatagrams,
        RcvbufErrors: the kernel's receive-buffer drops, ...); {} when it cannot be read."""
        r = self.topo.run(node, ["cat", "/proc/net/snmp"], check=False)
        return parse_udp_snmp(r.stdout) if r.returncode == 0 else {}

    def udp_sockets(self, node: str) -> list[dict]:
        """The node's UDP sockets on the SIP ports (``ss -uanm``): local address, Recv-Q and the
        kernel's real receive buffer ``rb`` (sk_rcvbuf, bytes) and queued memory ``r``."""
        r = self.topo.run(node, ["ss", "-Huanm"], check=False)
        return parse_ss_udp(r.stdout) if r.returncode == 0 else []

    def kernel_rmem(self, node: str) -> dict[str, int]:
        """net.core.rmem_default/rmem_max as the node's namespace sees them."""
        out = {}
        for key in ("rmem_default", "rmem_max"):
            r = self.topo.run(node, ["cat", f"/proc/sys/net/core/{key}"], check=False)
            if r.returncode == 0 and r.stdout.strip().isdigit():
                out[key] = int(r.stdout.strip())
        return out

    def check_rmem(self) -> tuple[dict[str, dict[str, int]], list[str]]:
        """The kernel's receive-buffer sysctls in each node's namespace, and how they differ from the spec.

        On this lab's kernel net.core.rmem_default/rmem_max are not per network namespace (read
        only inside one), and the lab changes nothing outside its namespaces: where the scenario says
        other values the run goes ahead on the machine's (recorded in meta.json ``kernel_rmem``; a
        forecast of the run uses them, :func:`simsip.validate.forecast_scenario`) and says so.
        Kamailio's ``maxbuffer`` is the lab's buffer knob."""
        seen = {n: self.kernel_rmem(n) for n in NODES}
        differ = []
        for key in ("rmem_default", "rmem_max"):
            want = getattr(self.spec, key)
            for n, vals in seen.items():
                if want is not None and key in vals and vals[key] != want:
                    differ.append(f"registrar.udp_buffer.{key}: the scenario says {want} B, but net.core.{key} is "
                                  f"{vals[key]} B in node {n}'s namespace (this kernel does not let a network "
                                  "namespace set it): the run uses the machine's value")
        return seen, differ

    def vip_holder(self) -> str | None:
        holders = [n for n in NODES if self.topo.has_vip(n)]
        return holders[0] if len(holders) == 1 else None

    def start_tshark(self) -> None:
        cap = self.out / "capture.pcapng"
        self.procs.start("tshark", self.topo.cmd("sw", [
            "tshark", "-i", "br0", "-n", "-q", "-B", "16", "-F", "pcapng", "-w", str(cap),
            "-f", capture_filter(self.spec)]))
        log = self.log_dir / "tshark.log"

        def ready() -> bool:
            if not self.procs.alive("tshark"):
                raise LabError("tshark exited:\n" + _tail(log))
            return "Capturing on" in log.read_text(errors="replace")
        _wait(ready, 20, "tshark to start capturing", 0.1)

    def start_phones(self) -> None:
        xml = self.run_dir / "phone.xml"
        xml.write_text(configs.sipp_phone_xml(self.spec))
        self.procs.start("sipp", self.topo.cmd("phones", configs.sipp_argv(self.spec, xml, self.log_dir)))

    def start_prober(self) -> None:
        script = Path(__file__).with_name("prober.py")
        extra = ",".join(configs.baresip_aor(k) for k in range(1, self.spec.baresip + 1))
        self.procs.start("prober", self.topo.cmd("prober", [
            sys.executable, str(script), VIP, str(self.spec.phones), repr(self.spec.probe_interval),
            str(self.out / "prober.csv"), ADDR["prober"], extra, str(self.spec.probe_port)]))

    def start_baresip(self, k: int) -> _Proc:
        """Baresip UA ``k`` (1-based) in the phones namespace, in the foreground (no -d) with its
        own config dir; ``-t`` makes it quit by itself well after the run should have ended, in
        case the teardown never reaches it."""
        d = configs.write_baresip_dir(self.spec, k, self.run_dir / f"{_baresip_marker(self.run_id)}{k:03d}")
        quit_after = int(float(self.spec.warmup or 0) + self.spec.duration + 300)
        return self.procs.start(baresip_name(k), self.topo.cmd("phones", [
            "baresip", "-4", "-f", str(d), "-t", str(quit_after)]))

    def stop_baresip(self, timeout: float = 5.0) -> None:
        """SIGTERM to every baresip UA at once (each sends its un-REGISTER), then SIGKILL to what
        is left after ``timeout``."""
        procs = [p for p in self.procs.procs if p.name.startswith("baresip-")]
        for p in procs:
            _signal(p, signal.SIGTERM, p.popen.poll() is None)
        end = time.time() + timeout
        for p in procs:
            try:
                p.popen.wait(timeout=max(0.0, end - time.time()))
            except subprocess.TimeoutExpired:
                pass
            _signal(p, signal.SIGKILL, True)

    # --- faults ---------------------------------------------------------------------------
    def resolve_node(self, node: str) -> str:
        if node in NODES:
            return node
        holder = self.vip_holder()
        if holder is None:
            states = {n: self.node_state(n) for n in NODES}
            masters = [n for n, s in states.items() if s == "MASTER"]
            holder = masters[0] if masters else "a"
        return holder if node == "master" else ("b" if holder == "a" else "a")

    def apply(self, f: Fault, node: str) -> None:
        """Realise a fault: the fault table says which of the actions below each kind is."""
        fault_table.by_lab(f.kind).lab_apply(self, node, f)

    def repair(self, f: Fault, node: str) -> None:
        fault_table.by_lab(f.kind).lab_repair(self, node, f)

    # the lab's fault actions (named by the fault table's lab realisations)
    def crash_node(self, node: str) -> None:
        """Power loss: the node's switch port goes down, keepalived and Kamailio die (SIGKILL)."""
        self.topo.link_down(node)
        self.procs.send(f"keepalived-{node}", signal.SIGKILL)
        self.procs.send(f"kamailio-{node}", signal.SIGKILL)

    def reboot_node(self, node: str) -> None:
        """A rebooted node: no VIP configured, link up, Kamailio then keepalived started."""
        self.procs.stop(f"keepalived-{node}", signal.SIGKILL, 2)
        self.procs.stop(f"kamailio-{node}", signal.SIGKILL, 2)
        self.topo.flush_vip(node)
        self.topo.link_up(node)
        self.start_kamailio(node)
        self.wait_kamailio(node)  # as an operator would: the registrar listens before keepalived starts
        self.start_keepalived(node)

    def kill_registrar(self, node: str) -> None:
        self.procs.send(f"kamailio-{node}", signal.SIGKILL)

    def start_registrar_again(self, node: str) -> None:
        self.procs.stop(f"kamailio-{node}", signal.SIGKILL, 2)
        self.start_kamailio(node)

    def stop_registrar(self, node: str, f: Fault) -> None:
        """A restart: SIGTERM Kamailio, and start it at once unless a repair time is given."""
        self.procs.stop(f"kamailio-{node}", signal.SIGTERM, timeout=5)
        if not f.repair_after:
            self.start_kamailio(node)

    def finish_restart(self, node: str) -> None:
        if not self.procs.alive(f"kamailio-{node}"):
            self.start_kamailio(node)

    def stop_keepalived(self, node: str) -> None:
        """ha_stop: SIGTERM keepalived (systemctl stop): its master sends priority 0 and removes the VIP."""
        self.procs.stop(f"keepalived-{node}", signal.SIGTERM, timeout=5)

    def start_keepalived_again(self, node: str) -> None:
        """ha_stop repaired: keepalived starts again (as BACKUP below priority 255)."""
        if not self.procs.alive(f"keepalived-{node}"):
            self.start_keepalived(node)

    def record(self, f: Fault, node: str, action: str, epoch: float) -> None:
        assert self.t0 is not None
        self.fault_log.append({
            "kind": f.kind, "node": node, "requested_node": f.node, "action": action,
            "epoch": epoch, "scenario_time": epoch - self.t0, "planned_time": f.at if action == "fault"
            else f.at + (f.repair_after or 0.0),
        })


def _check_uas(lab: "Lab", out_dir: Path) -> None:
    """SIPp and every baresip UA must still run during the scenario."""
    if not lab.procs.alive("sipp"):
        raise LabError("SIPp exited early:\n" + _tail(out_dir / "logs" / "sipp.log"))
    for k in range(1, lab.spec.baresip + 1):
        if baresip_name(k) in lab.procs.current and not lab.procs.alive(baresip_name(k)):
            raise LabError(f"baresip UA {k} exited early:\n" + _tail(out_dir / "logs" / f"{baresip_name(k)}.log"))


def capture_filter(spec: LabSpec) -> str:
    """tshark's capture filter: SIP on 5060 (UDP and TCP), the probe port, VRRP, ARP."""
    ports = "udp port 5060 or tcp port 5060"
    if spec.probe_port != 5060:
        ports += f" or udp port {spec.probe_port}"
    return ports + " or ip proto 112 or arp"


def parse_ss_udp(text: str) -> list[dict]:
    """``ss -Huanm`` output: one dict per socket (local, recv_q, rb = sk_rcvbuf, r = queued bytes,
    drops = the socket's own drop counter)."""
    import re

    out: list[dict] = []
    cur: dict | None = None
    for line in text.splitlines():
        parts = line.split()
        m = re.search(r"skmem:\(r(\d+),rb(\d+)", line)
        d = re.search(r"skmem:\(.*,d(\d+)\)", line)
        if parts and parts[0] in ("UNCONN", "ESTAB") and len(parts) >= 4:
            cur = {"local": parts[3], "recv_q": int(parts[1])}
            out.append(cur)
        if m and cur is not None:
            cur["r"], cur["rb"] = int(m.group(1)), int(m.group(2))
            if d:
                cur["drops"] = int(d.group(1))
    return out


def parse_udp_snmp(text: str) -> dict[str, int]:
    """The ``Udp:`` header/value line pair of /proc/net/snmp as a dict."""
    rows = [line.split() for line in text.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2:
        return {}
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:]) if v.lstrip("-").isdigit()}


def _loadavg() -> list[float]:
    """1, 5 and 15 min load averages of the lab machine (other work competes for its cores)."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return []


def random_phase_delay(advert_int: float, rng: "random.Random | None" = None) -> float:
    """A pause drawn from U[0, advert_int) (OS randomness unless ``rng`` is given): the runner
    sleeps it between the first MASTER and the start of phones and prober, so that the faults
    land at a random phase of keepalived's advert timer."""
    r = rng if rng is not None else random.SystemRandom()
    return float(r.random() * float(advert_int))


def _sleep_until(epoch: float) -> None:
    while True:
        left = epoch - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.2) if left > 0.25 else left)


def run_lab(spec: LabSpec, out_dir: Path, progress: Callable[[str], None] | None = None) -> Path:
    """Run one scenario in a fresh lab and return ``out_dir`` with capture, logs and metadata."""
    say = progress or (lambda msg: None)
    problems = check_requirements("shared_db" if spec.uses_db else spec.variant, baresip=spec.baresip > 0)
    if problems:
        raise LabError("lab requirements missing:\n  " + "\n  ".join(problems))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lab = Lab(spec, out_dir)
    reaped = ownership.reap_dead_runs(cleanup_stale)  # a dead run's namespaces and processes go first
    if reaped["runs"]:
        say(f"removed the leftovers of dead lab run(s) {', '.join(reaped['runs'])}: "
            f"{len(reaped['deleted_namespaces'])} namespace(s), {len(reaped['killed_pids'])} process(es)")
    if reaped["unowned"]:
        say(f"note: simsip namespaces of run(s) {', '.join(reaped['unowned'])} have no owner lock (an older simsip?); "
            "`simsip lab cleanup` removes them")
    meta: dict = {"spec": spec.to_dict(), "run_id": lab.run_id, "vip": VIP, "addresses": dict(ADDR),
                  "versions": tool_versions(spec.baresip > 0), "started_epoch": time.time(), "status": "running",
                  "loadavg": _loadavg()}
    owner = ownership.claim(lab.run_id)  # held until the teardown is done; the kernel drops it if we die
    # status running first: a run killed outright leaves a record that says so (validate refuses it)
    atomic_text(out_dir / "meta.json", json.dumps(meta, indent=2))
    old_handlers = {}

    def _on_signal(signum, frame):  # noqa: ANN001
        raise LabInterrupted(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGTERM, signal.SIGHUP):
            old_handlers[s] = signal.signal(s, _on_signal)
    try:
        say(f"building namespaces {PREFIX}{lab.run_id}-*")
        lab.topo.create()
        meta["namespaces"] = list(lab.topo.created)
        meta["macs"] = {n: lab.topo.mac(n) for n in NODES}
        meta["kernel_rmem"], differ = lab.check_rmem()
        for d in differ:
            say(f"note: {d}")
        if differ:
            meta["kernel_rmem_differs"] = differ
        if spec.uses_db:
            say("starting PostgreSQL")
            lab.start_postgres()
        for n in NODES:
            lab.start_kamailio(n)
        for n in NODES:
            lab.wait_kamailio(n)
        lab.start_tshark()
        for n in NODES:
            lab.start_keepalived(n)
        _wait(lambda: lab.vip_holder() is not None and any(lab.node_state(n) == "MASTER" for n in NODES),
              10 * spec.advert_int + 15, "a keepalived MASTER holding the VIP")
        meta["initial_master"] = lab.vip_holder()
        # Random fault phase: the wait above polls every 50 ms and the warm-up is whole seconds,
        # so without this t0 (and every fault) would land at a nearly fixed phase of the master's
        # advert timer. A U[0, advert_int) pause (OS randomness) before phones and prober start
        # leaves SIPp's refresh phases relative to t0 as configured and makes the advert phase
        # relative to the faults random, as it is for a user's real outage.
        phase_delay = random_phase_delay(spec.advert_int)
        meta["phase_delay"] = phase_delay
        time.sleep(phase_delay)
        say(f"VRRP master: node {meta['initial_master']}; random phase delay {phase_delay:.3f} s; "
            "starting phones and prober")
        lab.start_prober()
        lab.start_phones()
        start = time.time()
        lab.t0 = start + float(spec.warmup)  # type: ignore[arg-type]
        meta["phones_start_epoch"] = start
        meta["t0_epoch"] = lab.t0
        if spec.baresip:
            # UA k starts (k-1)·warmup/B after the phones, so their refreshes (90 % of the grant
            # after each 200) are spread rather than bunched
            names = [configs.baresip_aor(k) for k in range(1, spec.baresip + 1)]
            meta["baresip_aors"] = names
            meta["baresip_ports"] = {a: configs.baresip_port(k) for k, a in enumerate(names, 1)}
            meta["baresip_start_epochs"] = {}
            say(f"starting {spec.baresip} baresip UA(s) over the warm-up")
            spacing = float(spec.warmup) / spec.baresip  # type: ignore[arg-type]
            for k in range(1, spec.baresip + 1):
                _sleep_until(start + (k - 1) * spacing)
                meta["baresip_start_epochs"][names[k - 1]] = time.time()
                lab.start_baresip(k)
            time.sleep(0.3)
            _check_uas(lab, out_dir)
        end = lab.t0 + spec.duration
        events = []
        for i, f in enumerate(spec.faults):
            events.append((lab.t0 + f.at, 0, i, "fault"))
            if f.repair_after is not None:
                events.append((lab.t0 + f.at + f.repair_after, 1, i, "repair"))
        events.sort()
        resolved: dict[int, str] = {}
        _sleep_until(min([lab.t0] + [e[0] for e in events]))
        meta["udp_snmp"] = {n: {"t0": lab.udp_snmp(n)} for n in NODES}
        meta["udp_sockets"] = {n: {"t0": lab.udp_sockets(n)} for n in NODES}
        for when, _, i, action in events:
            _sleep_until(when)
            f = spec.faults[i]
            if action == "fault":
                resolved[i] = lab.resolve_node(f.node)
                epoch = time.time()
                lab.apply(f, resolved[i])
            else:
                epoch = time.time()
                lab.repair(f, resolved[i])
            lab.record(f, resolved[i], action, epoch)
            say(f"t={epoch - lab.t0:7.3f} {action} {f.kind} node {resolved[i]}")
            _check_uas(lab, out_dir)
        _sleep_until(end)
        _check_uas(lab, out_dir)
        for n in NODES:
            meta["udp_snmp"][n]["end"] = lab.udp_snmp(n)
            meta["udp_sockets"][n]["end"] = lab.udp_sockets(n)
        meta["status"] = "ok"
        say("scenario done; tearing down")
    except BaseException as e:
        meta["status"] = f"error: {type(e).__name__}: {e}"
        raise
    finally:
        if old_handlers:  # a second Ctrl-C/SIGTERM must not cut the teardown short
            for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                old_handlers.setdefault(s, signal.getsignal(s))
                signal.signal(s, signal.SIG_IGN)
        try:
            lab.stop_baresip()
            lab.procs.stop_all(["prober", "sipp"] + [baresip_name(k) for k in range(1, spec.baresip + 1)] + ["tshark", "keepalived-a", "keepalived-b",
                                "kamailio-a", "kamailio-b", "postgres"])
        finally:
            failed = lab.topo.destroy()
            meta["ended_epoch"] = time.time()
            meta["teardown_failed_namespaces"] = failed
            meta["transitions"] = {n: read_transitions(lab.run_dir / f"transitions-{n}.log") for n in NODES}
            if spec.track_interval:
                # each track_script run: [start epoch, 1 ok / 0 failed] (the check's phase)
                meta["track_checks"] = {n: read_checks(lab.run_dir / f"checks-{n}.log") for n in NODES}
            meta["pids"] = {p.name: p.pid for p in lab.procs.procs}
            (out_dir / "faults.json").write_text(json.dumps(lab.fault_log, indent=2))
            (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))
            for s, h in old_handlers.items():
                signal.signal(s, h)
            ownership.release(owner, lab.run_id)
    return out_dir


def stray_baresip_pids(run_id: str | None = None) -> list[int]:
    """PIDs of lab baresip UAs (of ``run_id`` if given) still running, found by the marker in
    their ``-f`` config dir — also when their namespace is already gone."""
    marker = _baresip_marker(run_id) if run_id is not None else PREFIX
    out = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            argv = Path(d, "cmdline").read_bytes().split(b"\0")
            if "zombie" in Path(d, "status").read_text():
                continue
        except OSError:
            continue
        if not argv or os.path.basename(argv[0].decode(errors="replace")) != "baresip":
            continue
        args = [a.decode(errors="replace") for a in argv]
        cfg = args[args.index("-f") + 1] if "-f" in args[:-1] else ""
        name = os.path.basename(cfg.rstrip("/"))
        if name.startswith(marker) and "-baresip-" in name:
            out.append(int(os.path.basename(d)))
    return sorted(out)


def leftovers(run_id: str | None = None) -> dict[str, list]:
    """simsip namespaces still present (only those of ``run_id`` if given) and the PIDs of the
    processes still inside them, plus any lab baresip UA still running (even outside them)."""
    names = [n for n in list_lab_namespaces() if run_id is None or n.startswith(f"{PREFIX}{run_id}-")]
    pids = {p for n in names for p in netns_pids(n)} | set(stray_baresip_pids(run_id))
    return {"namespaces": names, "pids": sorted(pids)}


def cleanup_stale(run_id: str | None = None) -> dict[str, list]:
    """Remove leftovers of a crashed run: kill (by PID) the processes inside ``simsip-*``
    namespaces (only ``simsip-<run_id>-*`` if given), then delete those namespaces. Touches
    nothing without the prefix. Without ``run_id`` do not call it while another lab run is live."""
    killed, deleted = [], []
    for pid in stray_baresip_pids(run_id):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    for name in list_lab_namespaces():
        if run_id is not None and not name.startswith(f"{PREFIX}{run_id}-"):
            continue
        for pid in netns_pids(name):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
        r = sh(["ip", "netns", "del", name], check=False)
        if r.returncode == 0:
            deleted.append(name)
    return {"killed_pids": killed, "deleted_namespaces": deleted}
