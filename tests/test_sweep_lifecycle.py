"""Sweep workers never outlive their sweep; a resume survives strays and damaged point files;
SIGTERM ends a sweep like Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from simsip.sweep import _start_time, reap_stray_workers, sweep
from tests.test_sweep import _small

ROOT = Path(__file__).resolve().parents[1]


def _children(pid: int) -> set[int]:
    out = set()
    for d in Path("/proc").glob("[0-9]*"):
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(cond, timeout: float, what: str) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _start_sweep(spec: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "simsip.cli", "sweep", str(spec), "--workers", "2", "--out", str(out)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_kill_9_of_the_sweep_takes_its_workers_with_it(tmp_path):
    spec = _small(tmp_path, levels=8, reps=2)
    out = tmp_path / "sw"
    proc = _start_sweep(spec, out)
    workers: set[int] = set()
    try:
        _wait(lambda: len(list((out / "points").glob("*.parquet"))) >= 1 if (out / "points").is_dir() else False,
              120, "a first point")
        workers = _children(proc.pid) - {proc.pid}
        workers = {w for w in workers if "python" in Path(f"/proc/{w}/cmdline").read_bytes().decode(errors="replace")}
        assert workers, "no worker process seen"
        os.kill(proc.pid, signal.SIGKILL)  # the sweep only, not its process group
        proc.wait(timeout=30)
        _wait(lambda: not any(_alive(w) for w in workers), 20, f"workers {sorted(workers)} to die with the sweep")
    finally:
        for w in workers:
            try:
                os.kill(w, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            proc.kill()
    # and the sweep resumes to the same tables as one never interrupted
    res = sweep(spec, workers=1, out=out)
    ref = sweep(spec, workers=1, out=tmp_path / "ref")
    assert res.computed < len(ref.points)
    assert_frame_equal(res.runs, ref.runs)


def test_sigterm_ends_a_sweep_like_ctrl_c(tmp_path):
    spec = _small(tmp_path, levels=8, reps=2)
    out = tmp_path / "sw"
    proc = _start_sweep(spec, out)
    try:
        _wait(lambda: len(list((out / "points").glob("*.parquet"))) >= 1 if (out / "points").is_dir() else False,
              120, "a first point")
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "run the same command again to resume" in " ".join(err.split()) and "Traceback" not in err
    _wait(lambda: not any(_alive(w) for w in workers), 20, "workers to stop")


def test_resume_reaps_workers_left_by_a_dead_sweep(tmp_path):
    """A worker note whose sweep is gone is killed on resume; one whose sweep lives is left alone."""
    out = tmp_path / "sw"
    notes = out / ".workers"
    notes.mkdir(parents=True)
    dead_parent = subprocess.Popen(["true"])
    dead_parent.wait()
    stray = subprocess.Popen(["sleep", "120"])
    kept = subprocess.Popen(["sleep", "120"])
    try:
        for p, parent in ((stray, dead_parent.pid), (kept, os.getpid())):
            (notes / str(p.pid)).write_text(json.dumps({
                "pid": p.pid, "start": _start_time(p.pid), "parent": parent,
                "parent_start": "0" if parent == dead_parent.pid else _start_time(parent)}))
        killed = reap_stray_workers(out)
        assert killed == [stray.pid]
        assert stray.wait(timeout=10) == -signal.SIGKILL
        assert kept.poll() is None  # negative control: its sweep is alive
    finally:
        for p in (stray, kept):
            p.kill()
            p.wait()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other-point"])
def test_resume_recomputes_a_damaged_point_file(tmp_path, damage, capfd):
    spec = _small(tmp_path, levels=3, reps=2)
    out = tmp_path / "sw"
    ref = sweep(spec, workers=1, out=out)
    f = out / "points" / "000001.parquet"
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif damage == "garbage":
        f.write_bytes(b"\x00not parquet at all")
    else:
        f.write_bytes((out / "points" / "000002.parquet").read_bytes())
    res = sweep(spec, workers=1, out=out)
    assert res.computed == 1
    assert_frame_equal(res.runs, ref.runs)
    err = capfd.readouterr().err
    assert str(f) in err and "computed again" in err
    assert (out / "points" / "000001.parquet.corrupt").is_file()
