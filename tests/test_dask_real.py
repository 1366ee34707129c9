"""Dask against real processes: a ``dask scheduler`` and two ``dask worker`` processes started on
127.0.0.1 (tcp://, nothing else listens or connects elsewhere); one worker is killed with SIGKILL
in the middle of the sweep, and no point is lost: the tables equal a serial run's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pandas.testing import assert_frame_equal

pytest.importorskip("dask.distributed")

from simsip.sweep import sweep  # noqa: E402
from tests.test_sweep import _small  # noqa: E402

DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(cond, timeout: float, what: str) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cluster(tmp_path):
    if not DASK.exists():
        pytest.skip("the dask command is not installed beside this Python")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    procs = []

    def start(name, argv):
        p = subprocess.Popen([str(DASK), *argv], stdout=open(logs / f"{name}.out", "w"), stderr=subprocess.STDOUT,
                             env=env, cwd=Path(__file__).resolve().parents[1], start_new_session=True)
        procs.append(p)
        return p

    start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"])
    _wait(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 60, "the scheduler")
    workers = [start(f"worker{i}", ["worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
                                    "--no-dashboard", "--name", f"w{i}"]) for i in range(2)]
    from dask.distributed import Client

    with Client(address, timeout="30s") as c:
        c.wait_for_workers(2, timeout=60)
    try:
        yield address, workers, logs
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def test_worker_killed_mid_sweep_loses_no_point(tmp_path, cluster):
    address, workers, logs = cluster
    spec = _small(tmp_path, levels=10, reps=2)
    out = tmp_path / "sw"
    box: dict = {}

    def run():
        try:
            box["res"] = sweep(spec, dask=address, out=out)
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["exc"] = exc

    t = threading.Thread(target=run)
    t.start()
    _wait(lambda: (out / "points").is_dir() and len(list((out / "points").glob("*.parquet"))) >= 2, 180,
          "the first points")
    n_before = len(list((out / "points").glob("*.parquet")))
    workers[0].send_signal(signal.SIGKILL)  # mid-sweep: it holds running and queued points
    workers[0].wait(timeout=30)
    t.join(timeout=600)
    assert not t.is_alive(), "the sweep did not finish after a worker died"
    assert "exc" not in box, repr(box.get("exc"))
    res = box["res"]
    total = res.points.shape[0]
    assert n_before < total, "the worker was killed after the sweep had finished"
    ref = sweep(spec, workers=1)
    assert total == len(ref.points) == 20
    assert_frame_equal(res.runs, ref.runs)
    assert_frame_equal(res.points, ref.points)
