"""A run directory never lies about its state: running first, complete last; SIGTERM like Ctrl-C;
kill -9 leaves ``status: running`` that ``simsip report`` refuses; files get the user's umask."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from simsip.cli import app
from simsip.io import atomic_text

SLOW = """\
name: slow
seed: 5
replications: 40
duration: 20min
fleets:
  - {name: desk, count: 3000, profile: generic-udp, phone: {expires: 120s}}
registrar: {profile: kamailio}
ha: {profile: keepalived}
faults:
  - {kind: node_crash, node: master, at: 2min, repair_after: 2min}
output: {resolution: 1s, report: true}
"""


def _start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    cfg = tmp_path / "slow.yaml"
    cfg.write_text(SLOW)
    out = tmp_path / "run"
    env = {**os.environ, "NO_COLOR": "1"}
    p = subprocess.Popen([sys.executable, "-m", "simsip.cli", "run", str(cfg), "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    return p, out


def _wait_done(out: Path, p: subprocess.Popen, n: int, timeout: float = 120) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            summ = json.loads((out / "summary.json").read_text())
            if summ["replications_done"] >= n:
                return summ
        except (OSError, ValueError, KeyError):
            pass
        assert p.poll() is None, p.communicate()
        time.sleep(0.05)
    p.kill()
    raise AssertionError("the run did not get going")


def _reps(out: Path, name: str) -> set[int]:
    return set(pd.read_csv(out / f"{name}.csv")["replication"].unique())


def test_kill_9_leaves_running_and_report_refuses(tmp_path):
    p, out = _start(tmp_path)
    try:
        _wait_done(out, p, 2)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        p.kill()
    summ = json.loads((out / "summary.json").read_text())
    assert summ["status"] == "running"  # it never claims to be complete
    # a dead run's finished replications are on disk, one directory each
    parts = sorted((out / "parts").iterdir())
    assert len(parts) >= 2
    res = CliRunner().invoke(app, ["report", str(out)])
    assert res.exit_code == 2, res.output
    assert "incomplete run" in res.output and "Traceback" not in res.output
    # negative control: the refusal is about the status, not about the directory
    summ["status"] = "ok"
    atomic_text(out / "summary.json", json.dumps(summ))
    from simsip.api import run_state

    assert run_state(summ, out) is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_is_handled_like_ctrl_c(tmp_path, sig):
    p, out = _start(tmp_path)
    try:
        _wait_done(out, p, 2)
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == (130 if sig == signal.SIGINT else 128 + sig), err
    assert "Traceback" not in err and "interrupted" in err
    summ = json.loads((out / "summary.json").read_text())
    assert summ["status"] == "interrupted"
    done = summ["replications_done"]
    assert 2 <= done < 40
    for name in ("timeseries", "outages", "recovery", "faults", "replications"):
        assert _reps(out, name) == set(range(done)), name  # every file agrees with the summary
    assert not list(out.glob(".*.tmp")) and not (out / "parts").exists()
    assert CliRunner().invoke(app, ["report", str(out)]).exit_code == 0  # flagged on the page, not refused


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_output_files_use_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        p = tmp_path / "f.txt"
        atomic_text(p, "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask


def test_run_out_is_a_file_exit_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SLOW.replace("replications: 40", "replications: 1").replace("20min", "5min"))
    f = tmp_path / "file"
    f.write_text("")
    res = CliRunner().invoke(app, ["run", str(cfg), "--out", str(f / "sub")])
    assert res.exit_code == 2, res.output
    assert "not a directory" in res.output.lower() and str(f) in res.output
    res = CliRunner().invoke(app, ["run", str(cfg), "--out", str(f)])
    assert res.exit_code == 2 and "not a directory" in res.output, res.output


# --------------------------------------------------------------------------- validate: no lying passes
LAB_RUN = Path(__file__).resolve().parents[1] / "examples" / "lab" / "udp-none"


def _copy_run(tmp_path: Path) -> Path:
    import shutil

    from simsip.io import unpacked_run

    d = tmp_path / "lab-run"
    shutil.copytree(unpacked_run(LAB_RUN), d)
    shutil.copyfile(LAB_RUN / "config.yaml", d / "config.yaml")
    return d


@pytest.mark.parametrize("status", ["running", "error: LabInterrupted: signal 15"])
def test_validate_refuses_an_interrupted_lab_run(tmp_path, status):
    d = _copy_run(tmp_path)
    meta = json.loads((d / "meta.json").read_text())
    meta["status"] = status
    (d / "meta.json").write_text(json.dumps(meta))
    res = CliRunner().invoke(app, ["validate", str(d / "config.yaml"), str(d), "--replications", "2"])
    assert res.exit_code == 2, res.output
    assert "incomplete lab run" in res.output and "Traceback" not in res.output


def test_validate_refuses_a_run_that_never_reached_its_fault(tmp_path):
    d = _copy_run(tmp_path)
    (d / "faults.json").write_text("[]")  # killed before the fault: nothing recorded
    res = CliRunner().invoke(app, ["validate", str(d / "config.yaml"), str(d), "--replications", "2"])
    assert res.exit_code == 2, res.output
    assert "0 of the 1 faults" in res.output


def test_a_metric_that_cannot_be_computed_fails(tmp_path):
    """A run whose spec and record both hold no fault has nothing to forecast: it fails, never passes."""
    import numpy as np

    from simsip.validate import _judge, validate

    d = _copy_run(tmp_path)
    meta = json.loads((d / "meta.json").read_text())
    meta["spec"]["faults"] = []
    (d / "meta.json").write_text(json.dumps(meta))
    (d / "faults.json").write_text("[]")
    rep = validate(d / "config.yaml", d, replications=2)
    assert not rep.passed
    assert "faults recorded in the run" in rep.failures
    # the judgment itself, with a negative control: a number against a model that never has one fails
    never = np.full(10, np.nan)
    assert _judge(10.0, never, 0.1, 2.0, 0.0)["within_tolerance"] is False
    assert _judge(3.0, np.full(10, 3.2), 0.0, 0.5, 0.0)["within_tolerance"] is True