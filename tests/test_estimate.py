"""Absurd-but-valid scenarios are estimated before they run and refused above this machine's
memory or the time budget, with the estimate and the knob to change; --force runs anyway."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from simsip.cli import app
from simsip.config.loader import load_config
from simsip.estimate import KNOBS, check, estimate

QS = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"


def _est(*sets):
    return estimate(load_config(QS, list(sets)))


def test_terms_scale_with_what_drives_them():
    base = _est()
    assert _est("fleets.0.count=10000").peak_bytes > base.peak_bytes
    twice = _est("duration=12min")
    assert twice.registrations == pytest.approx(2 * base.registrations)
    assert twice.bins == pytest.approx(2 * base.bins)
    fine = _est("output.resolution=100ms")
    assert fine.bins == pytest.approx(10 * base.bins) and fine.registrations == base.registrations
    longer = _est("fleets.0.phone.expires=7200s")
    assert longer.registrations < base.registrations
    flap = _est("random_faults=[{kind: node_crash, node: any, mtbf: 1ms, mttr: 1ms}]")
    assert flap.faults == pytest.approx(360 / 0.002 + len(load_config(QS).faults), rel=1e-9) and flap.time_driver == "faults"


@pytest.mark.parametrize("sets, knob", [
    (["duration=365d"], "registrations"),
    (["duration=200d", "fleets.0.phone.expires=30d", "registrar.max_expires=0s"], "bins"),
    (["fleets.0.count=20000000"], "phones"),
    (["random_faults=[{kind: node_crash, node: any, mtbf: 1ms, mttr: 1ms}]"], "faults"),
])
def test_refused_with_the_estimate_and_the_knob(sets, knob, tmp_path):
    cfg = load_config(QS, sets)
    problems = check(cfg, memory=4 * 2**30, time_budget=600)
    assert problems, estimate(cfg).describe()
    text = " ".join(problems)
    assert KNOBS[knob] in text and "--force" in text and "estimated" in text
    args = ["run", str(QS), "--out", str(tmp_path / "o"), "--time-budget", "10min"]
    for s in sets:
        args += ["--set", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    out = " ".join(res.output.split())
    assert f"{QS}: estimated" in out and "--force" in out and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_small_run_is_not_refused_and_force_overrides(tmp_path):
    cfg = load_config(QS)
    assert check(cfg) == []  # negative control: the quick start runs
    res = CliRunner().invoke(app, ["run", str(QS), "-r", "1", "--out", str(tmp_path / "a"), "--time-budget", "1ms"])
    assert res.exit_code == 2 and "time budget" in res.output
    res = CliRunner().invoke(app, ["run", str(QS), "-r", "1", "--out", str(tmp_path / "b"), "--time-budget", "1ms", "--force"])
    assert res.exit_code == 0, res.output
    assert "running anyway (--force)" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["run", str(QS), "--time-budget", "soon"])
    assert res.exit_code == 2 and "--time-budget" in res.output
