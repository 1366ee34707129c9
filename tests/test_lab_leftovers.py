"""The next lab run removes a dead run's leftovers itself: a run's lock dies with it (kill -9
included), so namespaces whose lock nobody holds are a dead run's — killed and deleted by run id;
a live run's, and namespaces with no lock file, are never touched."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.lab


@pytest.fixture(autouse=True)
def _root_and_ip():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        from tests.conftest import missing_requirement

        missing_requirement("lab leftovers tests need root and iproute2 (network namespaces)")


def _fake_run(rid: str) -> subprocess.Popen:
    """A namespace simsip-<rid>-a with a process inside, as a killed run leaves them."""
    subprocess.run(["ip", "netns", "add", f"simsip-{rid}-a"], check=True)
    return subprocess.Popen(["ip", "netns", "exec", f"simsip-{rid}-a", "sleep", "300"])


def _gone(rid: str) -> bool:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return f"simsip-{rid}-a" not in out


def test_next_run_reaps_a_dead_run_only(tmp_path):
    from simsip.lab import ownership

    dead, live, unowned = (f"zz{secrets.token_hex(3)}" for _ in range(3))
    procs = [_fake_run(r) for r in (dead, live, unowned)]
    holder = None
    try:
        # the dead run: its owner took the lock and was killed with kill -9
        owner = subprocess.Popen([sys.executable, "-c",
                                  f"from simsip.lab import ownership; ownership.claim({dead!r}); import time; time.sleep(300)"])
        # the live run: its owner holds the lock
        holder = subprocess.Popen([sys.executable, "-c",
                                   f"from simsip.lab import ownership; ownership.claim({live!r}); "
                                   "print('held', flush=True); import time; time.sleep(300)"], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
        t0 = time.time()
        while not (ownership.lock_dir() / f"{dead}.lock").exists() and time.time() - t0 < 30:
            time.sleep(0.05)
        time.sleep(0.5)
        owner.kill()
        owner.wait()
        time.sleep(0.3)
        from simsip.lab.runner import cleanup_stale

        got = ownership.reap_dead_runs(cleanup_stale)
        assert dead in got["runs"] and live not in got["runs"] and unowned not in got["runs"]
        assert unowned in got["unowned"]
        assert f"simsip-{dead}-a" in got["deleted_namespaces"] and _gone(dead)
        assert procs[0].wait(timeout=10) != 0  # its process was killed
        assert not (ownership.lock_dir() / f"{dead}.lock").exists()
        assert not _gone(live) and procs[1].poll() is None  # a live run is untouched
        assert not _gone(unowned) and procs[2].poll() is None  # and so is one with no lock file
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        for p in procs:
            p.kill()
            p.wait()
        for r in (dead, live, unowned):
            subprocess.run(["ip", "netns", "del", f"simsip-{r}-a"], capture_output=True)
            (ownership.lock_dir() / f"{r}.lock").unlink(missing_ok=True)


def test_kill_9_of_a_real_lab_run_is_cleaned_by_the_next(tmp_path):
    """kill -9 of `simsip lab run` mid-scenario: its namespaces and processes stay, its meta.json says
    running; the reaping every lab run does first removes them all."""
    from pathlib import Path

    from simsip.lab import check_requirements, leftovers
    from simsip.lab import ownership
    from simsip.lab.runner import cleanup_stale

    problems = check_requirements()
    if problems:
        from tests.conftest import missing_requirement

        missing_requirement("lab packages missing (run lab/install.sh): " + "; ".join(problems))
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "lab"
    p = subprocess.Popen([sys.executable, "-m", "simsip.cli", "lab", "run", str(root / "examples/lab/udp-none/config.yaml"),
                          "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    rid = None
    try:
        meta = out / "meta.json"
        t0 = time.time()
        while time.time() - t0 < 120 and rid is None:
            if meta.exists():
                import json

                rid = json.loads(meta.read_text())["run_id"]
            time.sleep(0.1)
        assert rid, "the lab run did not start"
        while time.time() - t0 < 120 and len(leftovers(rid)["pids"]) < 5:
            time.sleep(0.2)
        left = leftovers(rid)
        assert left["namespaces"] and left["pids"], left
        os.kill(p.pid, 9)  # the runner only: what it started stays behind
        p.wait(timeout=30)
        time.sleep(0.5)
        assert leftovers(rid)["namespaces"], "nothing was left behind to clean"
        import json

        assert json.loads(meta.read_text())["status"] == "running"
        got = ownership.reap_dead_runs(cleanup_stale)
        assert rid in got["runs"]
        assert leftovers(rid) == {"namespaces": [], "pids": []}
    finally:
        if p.poll() is None:
            p.kill()
        if rid:
            cleanup_stale(rid)
