"""Who owns a lab run's namespaces: a lock held for the run's whole life, so the next run can tell
a dead run's leftovers from a live run's and remove them itself.

Each ``simsip lab run`` holds an exclusive ``flock`` on ``/run/simsip-lab/<run_id>.lock`` from
before it creates its first namespace until its teardown is done. The kernel drops the lock when
the process dies, however it dies (``kill -9`` included), so a lock file nobody holds names a dead
run: :func:`reap_dead_runs` (called by every lab run before it builds anything, with the runner's
``cleanup_stale``) kills the
processes left in that run's ``simsip-<run_id>-*`` namespaces and deletes them, by run id — never
anything of a run that is alive. Namespaces with no lock file (an older simsip, or made by hand)
are reported, not touched: ``simsip lab cleanup`` removes them.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import Callable

from .topology import PREFIX, list_lab_namespaces


def lock_dir() -> Path:
    """``/run/simsip-lab`` (a tmpfs: emptied at boot, like the namespaces), else under the temp dir."""
    for d in (Path("/run/simsip-lab"), Path(tempfile.gettempdir()) / "simsip-lab"):
        try:
            d.mkdir(parents=True, exist_ok=True)
            if os.access(d, os.W_OK):
                return d
        except OSError:
            continue
    raise OSError("no writable directory for the lab's run locks (/run/simsip-lab or the temp dir)")


def claim(run_id: str) -> int:
    """Hold the lock of ``run_id`` (an open file descriptor; :func:`release` it after teardown)."""
    path = lock_dir() / f"{run_id}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def release(fd: int | None, run_id: str | None = None) -> None:
    """Drop the lock (and its file) once the run's teardown is done."""
    if fd is None:
        return
    if run_id is not None:
        try:
            (lock_dir() / f"{run_id}.lock").unlink()
        except OSError:
            pass
    try:
        os.close(fd)
    except OSError:
        pass


def _held(path: Path) -> bool:
    """Is the lock file held by a live process? (Trying to take it answers without waiting.)"""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we took
    return False


def run_ids_present() -> set[str]:
    """Run ids of the ``simsip-<run_id>-*`` namespaces on this machine."""
    return {n[len(PREFIX):].split("-", 1)[0] for n in list_lab_namespaces()}


def dead_runs() -> tuple[list[str], list[str]]:
    """(run ids whose lock nobody holds — dead runs, run ids of namespaces with no lock file)."""
    d = lock_dir()
    present = run_ids_present()
    dead, unowned = [], []
    for rid in sorted(present | {p.stem for p in d.glob("*.lock")}):
        lock = d / f"{rid}.lock"
        if not lock.exists():
            unowned.append(rid)
        elif not _held(lock):
            dead.append(rid)
    return dead, unowned


def reap_dead_runs(cleanup_stale: Callable[[str], dict]) -> dict[str, list]:
    """Remove what dead lab runs left with ``cleanup_stale(run_id)`` (the runner's: kill the processes
    in the run's namespaces, delete them), then their lock files.

    Returns ``{"runs": [...], "killed_pids": [...], "deleted_namespaces": [...], "unowned": [...]}``.
    """
    dead, unowned = dead_runs()
    out: dict[str, list] = {"runs": [], "killed_pids": [], "deleted_namespaces": [], "unowned": unowned}
    for rid in dead:
        done = cleanup_stale(rid)
        out["runs"].append(rid)
        out["killed_pids"] += done["killed_pids"]
        out["deleted_namespaces"] += done["deleted_namespaces"]
        if not [n for n in list_lab_namespaces() if n.startswith(f"{PREFIX}{rid}-")]:
            try:
                (lock_dir() / f"{rid}.lock").unlink()
            except OSError:
                pass
    return out
