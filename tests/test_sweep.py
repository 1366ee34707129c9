"""Sweeps: the shipped ≥100×5 sweep end to end, kill -9 and resume, executors agree, CI coverage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import simsip
from simsip.config.loader import ConfigError
from simsip.sweep import SweepDirMismatch, design_points, prepare, sweep
from tests.conftest import EXAMPLES, ROOT

SMALL = """
name: small
base: base.yaml
factors:
  - {{path: fleets.desk.phone.expires, range: [30s, 60s], levels: {levels}}}
  - {{path: registrar.data, values: [none, shared]}}
design: grid
replications: {reps}
"""

BASE = """
name: small-base
seed: 3
duration: 100s
fleets:
  - {name: desk, count: 1000, profile: generic-udp, phone: {expires: 60s}}
registrar: {profile: kamailio, min_expires: 10s}
ha: {profile: keepalived}
output: {report: false, per_phone: false}
faults:
  - {kind: node_crash, node: master, at: 30s}
"""


def _small(tmp: Path, levels: int = 3, reps: int = 2) -> Path:
    (tmp / "base.yaml").write_text(BASE)
    p = tmp / "small.yaml"
    p.write_text(SMALL.format(levels=levels, reps=reps))
    return p


def test_shipped_sweep_end_to_end(tmp_path):
    """expiry-vs-advert: 100 points × 5 replications of 1 000 phones on 2 workers."""
    out = tmp_path / "sw"
    res = sweep(EXAMPLES / "sweeps" / "expiry-vs-advert.yaml", workers=2, out=out)
    assert len(res.points) >= 100 and len(res.runs) == 5 * len(res.points)
    assert list(res.runs[["point", "replication"]].itertuples(index=False, name=None)) == sorted(
        (k, r) for k in range(len(res.points)) for r in range(5))
    for name in ("runs.parquet", "runs.csv", "points.parquet", "points.csv", "manifest.json", "sweep.resolved.yaml"):
        assert (out / name).exists(), name
    assert not (out / "report.html").exists()  # sweep() returns results; the page is the caller's
    simsip.write_sweep_report(res, out / "report.html")
    assert len(list((out / "points").glob("*.parquet"))) == len(res.points)
    pts = res.points
    # the shared store loses only the VIP move: far less than no replication at every point
    none = pts[pts["registrar.data"] == "none"].set_index(["fleets.desk.phone.expires", "ha.vrrp.advert_int"])
    shared = pts[pts["registrar.data"] == "shared"].set_index(["fleets.desk.phone.expires", "ha.vrrp.advert_int"])
    assert (shared["unreachable_phone_seconds_mean"] < none["unreachable_phone_seconds_mean"]).all()
    # common random numbers: the steady load depends on the expiry only, identically across the other factors
    steady = pts.groupby("fleets.desk.phone.expires")["steady_register_rate_mean"].nunique()
    assert (steady == 1).all()
    assert (pts["unreachable_phone_seconds_ci_low"] <= pts["unreachable_phone_seconds_mean"]).all()
    html = (out / "report.html").read_text()
    assert '<script src="http' not in html and "fig-heatmap" in html and "fig-ci_bands" in html
    # rerunning the same sweep computes nothing and leaves identical tables
    again = sweep(EXAMPLES / "sweeps" / "expiry-vs-advert.yaml", workers=2, out=out)
    assert again.computed == 0
    assert_frame_equal(again.runs, res.runs)
    assert_frame_equal(pd.read_parquet(out / "points.parquet"), res.points)


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    spec = _small(tmp_path, levels=15, reps=2)  # 30 points
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "simsip.cli", "sweep", str(spec), "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if len(list((out / "points").glob("*.parquet"))) >= 4 if (out / "points").exists() else False:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker processes, as kill -9 would
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done_before = len(list((out / "points").glob("*.parquet")))
    assert 4 <= done_before < 30
    assert not (out / "runs.parquet").exists()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{30 - done_before} point(s) simulated, {done_before} resumed" in r.stdout.replace("\n", " ")
    assert "fig-heatmap" in (out / "report.html").read_text()  # the command writes the page
    ref = sweep(spec, workers=1, out=tmp_path / "clean")
    for name in ("runs", "points"):
        assert_frame_equal(pd.read_parquet(out / f"{name}.parquet"), pd.read_parquet(tmp_path / "clean" / f"{name}.parquet"))
        assert (out / f"{name}.csv").read_bytes() == (tmp_path / "clean" / f"{name}.csv").read_bytes()


def test_executors_give_identical_tables(tmp_path):
    spec = _small(tmp_path, levels=3, reps=2)
    serial = sweep(spec, workers=1)
    pool = sweep(spec, workers=2)
    assert_frame_equal(serial.runs, pool.runs)
    assert_frame_equal(serial.points, pool.points)
    pytest.importorskip("dask.distributed")
    dask = sweep(spec, workers=2, dask="local")
    assert_frame_equal(serial.runs, dask.runs)
    assert_frame_equal(serial.points, dask.points)


def test_changed_base_is_refused_unless_fresh(tmp_path):
    spec = _small(tmp_path, levels=2, reps=2)
    out = tmp_path / "sw"
    sweep(spec, workers=1, out=out)
    (tmp_path / "base.yaml").write_text(BASE.replace("count: 1000", "count: 900"))
    with pytest.raises(SweepDirMismatch, match="different base config or factors.*--fresh"):
        sweep(spec, workers=1, out=out)
    r = subprocess.run([sys.executable, "-m", "simsip.cli", "sweep", str(spec), "--out", str(out), "--workers", "1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--fresh" in r.stderr
    res = sweep(spec, workers=1, out=out, fresh=True)
    assert res.computed == 4 and (res.runs["phones"] == 900).all()


def test_spec_errors_name_file_line_key(tmp_path):
    (tmp_path / "base.yaml").write_text(BASE)
    p = tmp_path / "bad.yaml"
    p.write_text("name: bad\nbase: base.yaml\nfactors:\n  - {path: fleets.desk.count, values: [0]}\n")
    with pytest.raises(ConfigError) as e:
        prepare(p)
    assert "point 0" in str(e.value) and "fleets[0].count" in str(e.value)
    p.write_text("name: bad\nbase: base.yaml\nfactors:\n  - {path: x, range: [1s, 2s]}\ndesign: grid\n")
    with pytest.raises(ConfigError) as e:
        prepare(p)
    assert f"{p}:" in str(e.value) and "levels" in str(e.value)
    p.write_text("name: bad\nbase: nope.yaml\nfactors:\n  - {path: x, values: [1]}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: base: scenario file 'nope.yaml' not found"):
        prepare(p)


def test_designs_are_deterministic(tmp_path):
    spec = _small(tmp_path)
    from simsip.sweep import SweepSpec

    s = SweepSpec.model_validate({"base": "x", "design": "lhs", "points": 10, "seed": 4,
                                  "factors": [{"path": "a", "range": ["1s", "5s"]}, {"path": "b", "values": [1, 2]}]})
    a, b = design_points(s), design_points(s)
    assert a == b and len(a) == 10
    xs = sorted(float(p["a"][:-1]) for p in a)
    # a Latin hypercube puts one point in each tenth of the range
    assert [int((x - 1) / 0.4) for x in xs] == list(range(10))
    assert len(design_points(SweepSpec.model_validate({**s.model_dump(), "design": "random"}))) == 10


def test_ci_coverage_of_a_closed_form(tmp_path):
    """Over 120 independent batches of 5 replications, the 95 % CI covers E[D] = MDI − A/2 ≈ 95 % of the time."""
    (tmp_path / "shared.yaml").write_text("""
name: coverage
duration: 30s
fleets: [{name: f, count: 20, phone: {expires: 60s}}]
registrar: {data: shared, min_expires: 10s}
ha: {vrrp: {version: 2, advert_int: 1s}, nodes: [{name: a, priority: 200}, {name: b, priority: 100}]}
output: {report: false, per_phone: false}
faults: [{node: master, at: 10s}]
""")
    (tmp_path / "cov.yaml").write_text("""
name: coverage
base: shared.yaml
factors: [{path: seed, range: [1, 120], levels: 120}]
replications: 5
""")
    res = sweep(tmp_path / "cov.yaml", workers=2)
    expected = 3 + (256 - 100) / 256 - 0.5
    pts = res.points
    assert len(pts) == 120
    covered = ((pts["vip_move_time_ci_low"] <= expected) & (expected <= pts["vip_move_time_ci_high"])).mean()
    assert 0.88 <= covered <= 0.99, covered
    # the loss is N·D per run, so its interval covers N·E[D] exactly as often
    cov_loss = ((pts["unreachable_phone_seconds_ci_low"] <= 20 * expected + 1e-9)
                & (20 * expected - 1e-9 <= pts["unreachable_phone_seconds_ci_high"])).mean()
    assert cov_loss == pytest.approx(covered)
