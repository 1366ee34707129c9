"""Atomic file writes: a result file is either the old one or the complete new one, never half.

Every writer goes to a temporary file in the same directory, is flushed to disk, and replaces the
target with one ``os.replace`` — so a crash, ``kill -9`` or Ctrl-C in the middle of a write leaves
what was there before, and resumable sweeps can trust every file they find.

SIGTERM and SIGHUP end a run, sweep or plan the way Ctrl-C does (:func:`terminate_as_interrupt`),
so what is computed is kept and the status recorded; :func:`no_interrupts` keeps a second signal
from cutting the final writes short.

A result file gets the mode any other file the user creates gets (0666 less the umask), not the
0600 of a private temporary file.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd


def _umask() -> int:
    """The process umask (read by setting it and putting it back; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_dir_problem(out: str | os.PathLike) -> str | None:
    """Create the output directory ``out``; what is wrong with it when that fails (``None``: ready).

    The message names the path and what to do, for a located user error (a path that is a file,
    a directory that cannot be created or written)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"{out}: output path exists and is not a directory (choose another --out)"
    except NotADirectoryError:
        return f"{out}: output path is inside a file, not a directory (choose another --out)"
    except OSError as exc:
        return f"{out}: cannot create the output directory: {exc.strerror or exc} (choose another --out)"
    probe = out / f".simsip-write-test-{os.getpid()}"
    try:  # os.access lies for root and on read-only mounts: try it
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"{out}: output directory is not writable: {exc.strerror or exc} (choose another --out)"
    return None


def atomic_write(path: str | os.PathLike, writer: Callable[[str], None]) -> None:
    """Call ``writer(tmp_path)``, fsync the result, and move it over ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_table(path: str | os.PathLike, df: pd.DataFrame, fmt: str = "csv", **csv_kw) -> None:
    if fmt == "parquet":
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, **csv_kw))


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) received: handled like Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


@contextmanager
def _signal_handlers(signals: tuple, handler) -> Iterator[None]:
    """Inside the block ``handler`` handles ``signals``; the old handlers come back after it.
    Main thread only (elsewhere Python cannot set handlers: the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {}
    for sig in signals:
        try:
            old[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):
            pass
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _raise_terminated(signum, frame):  # noqa: ANN001
    raise Terminated(signum)


def terminate_as_interrupt():
    """Inside the block, SIGTERM and SIGHUP raise :class:`Terminated` (a KeyboardInterrupt), so they
    end a run the way Ctrl-C does: finished work kept, status recorded. Main thread only."""
    return _signal_handlers((signal.SIGTERM, signal.SIGHUP), _raise_terminated)


def no_interrupts():
    """A second Ctrl-C or SIGTERM must not cut the final writes short (main thread only)."""
    return _signal_handlers((signal.SIGINT, signal.SIGTERM, signal.SIGHUP), signal.SIG_IGN)


def run_state(summary: dict, run_dir: str | os.PathLike) -> str | None:
    """Why a run directory's files cannot be trusted as a whole (``None``: they can).

    ``status: running`` in ``summary.json`` means the run is still going, or its process was killed
    outright before it could finish (``kill -9``, power loss): its tables may disagree.
    """
    if summary.get("status") != "running":
        return None
    pid, host = summary.get("pid"), summary.get("host")
    alive = False
    if isinstance(pid, int) and host == socket.gethostname():
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
    done = summary.get("replications_done")
    if alive:
        return (f"{run_dir}: the run is still going (status running, pid {pid}, {done} replication(s) done); "
                "wait for it to finish")
    return (f"{run_dir}: incomplete run (status running, {done} replication(s) done): its process was killed "
            "before it finished (kill -9 or a crash), so its files may disagree; run it again")


# ------------------------------------------------------------------------------------------
# recorded runs shipped compressed
#: the files of a recorded lab run (``simsip lab run``) that validation and trace import read
RUN_ARCHIVE = "run.tar.xz"


def unpacked_run(path: str | os.PathLike) -> Path:
    """The directory holding a recorded lab run's files (``meta.json``, ``capture.pcapng``, ...).

    Shipped runs are small xz archives (``examples/lab/<name>/run.tar.xz`` next to a readable
    ``config.yaml``; a capture compresses about 20×). ``path`` may be a directory with the files, a
    directory with ``run.tar.xz``, or the archive itself. An archive is unpacked once into a cache
    directory named after its content hash (under the system temp dir, one per user), atomically:
    a half-unpacked cache is never used. Anything else is returned unchanged (the caller reports
    what is missing).
    """
    import hashlib
    import shutil
    import tarfile

    p = Path(path)
    arch = p / RUN_ARCHIVE if p.is_dir() else p
    if p.is_dir() and ((p / "meta.json").is_file() or not arch.is_file()):
        return p
    if not (arch.is_file() and arch.name.endswith((".tar.xz", ".txz"))):
        return p
    digest = hashlib.sha256(arch.read_bytes()).hexdigest()[:16]
    name = (arch.parent.name if arch.name == RUN_ARCHIVE else arch.name.split(".")[0]) or "run"
    cache = Path(tempfile.gettempdir()) / f"simsip-runs-{os.getuid() if hasattr(os, 'getuid') else 0}"
    dest = cache / f"{name}-{digest}"
    if (dest / "meta.json").is_file():
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
    try:
        with tarfile.open(arch) as tar:
            tar.extractall(tmp, filter="data")
        entries = [e for e in tmp.iterdir()]
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp  # one top folder or flat
        try:
            os.replace(root, dest)
        except OSError:  # another process unpacked it first
            if not (dest / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
