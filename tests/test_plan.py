"""The planner: a feasible recommendation that holds with fresh seeds; an impossible SLO said plainly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import simsip
from simsip.api import simulate
from simsip.plan import load_plan, parse_constraint, pareto_mask, plan
from tests.conftest import EXAMPLES


@pytest.fixture(scope="module")
def feasible(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan")
    return plan(EXAMPLES / "plans" / "keepalived-timers.yaml", out=out, workers=2), out


def test_recommendation_holds_with_fresh_seeds(feasible):
    res, out = feasible
    assert res.status == "feasible", res.message
    assert len(res.screen) > 500 and res.invalid_combinations > 0  # VRRPv2 refuses 0.5 s adverts
    rec = res.recommendation
    assert rec and all(c["met_by_ci"] for c in rec["constraints"])
    spec, base, _ = load_plan(EXAMPLES / "plans" / "keepalived-timers.yaml")
    ov = {f.path: base_val for f, base_val in zip(spec.variables, [None] * len(spec.variables))}
    comb = rec["combination"]
    row = res.screen[res.screen["combination"] == comb].iloc[0]
    # rebuild the recommended setting from its override values
    from simsip.sweep import factor_levels
    import itertools

    levels = [factor_levels(f) for f in spec.variables]
    ov = None
    for combo in itertools.product(*levels):
        cand = dict(zip([f.path for f in spec.variables], combo))
        try:
            cfg = base.point(cand)
        except Exception:
            continue
        from simsip.sweep import _resolve_path

        dump = cfg.model_dump(mode="python")
        if all(_resolve_path(dump, f.path) == row[f.column] for f in spec.variables):
            ov = cand
            break
    assert ov is not None
    fresh = simulate(base.point(ov), seed=987654, replications=8).per_replication
    for c in spec.constraints:
        assert c.met(float(fresh[c.figure].mean())), (c.text, fresh[c.figure].mean())
    # outputs
    summ = json.loads((out / "plan.json").read_text())
    assert summ["status"] == "feasible" and summ["screened_figures"] and summ["simulated_figures"]
    assert not (out / "report.html").exists()  # plan() returns results; the page is the caller's
    simsip.write_plan_report(res, out / "report.html")
    html = (out / "report.html").read_text()
    assert '<script src="http' not in html and "Pareto" in html and "tornado" in html
    # `simsip report PLAN_DIR` draws the plan page again from the files, with the same figures
    import re

    from simsip.report import write_report_dir

    again = write_report_dir(out, out / "again.html").read_text()
    ids = re.findall(r'<div id="fig-([a-z_]+)" class="plotly-graph-div"', html)
    assert ids == re.findall(r'<div id="fig-([a-z_]+)" class="plotly-graph-div"', again)
    assert {"pareto", "tornado", "candidates_ci"} <= set(ids) and "Feasible." in again
    assert len(res.sensitivity) >= 4 and {"low", "high"} >= set(res.sensitivity["side"])


def test_impossible_slo_is_reported(tmp_path):
    res = plan(EXAMPLES / "plans" / "impossible-slo.yaml", out=tmp_path, workers=2)
    assert res.status == "infeasible"
    assert res.recommendation is None and res.closest is not None
    assert res.message.startswith("No setting satisfies the SLO")
    assert "unreachable_phone_seconds <= 200" in res.message
    assert res.closest["settings"]["registrar.data"] == "shared"
    assert json.loads((tmp_path / "plan.json").read_text())["status"] == "infeasible"


def test_plan_cli_exit_code_and_message(tmp_path):
    r = subprocess.run([sys.executable, "-m", "simsip.cli", "plan", str(EXAMPLES / "plans" / "impossible-slo.yaml"),
                        "--out", str(tmp_path / "p"), "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr
    assert "INFEASIBLE" in r.stdout and "No setting satisfies the SLO" in r.stdout.replace("\n", " ")
    assert "Pareto" in (tmp_path / "p" / "report.html").read_text()  # the command writes the page
    assert json.loads((tmp_path / "p" / "plan.json").read_text())["status"] == "infeasible"


def test_constraints_and_pareto():
    c = parse_constraint("recovery_p99 <= 60s")
    assert (c.figure, c.op, c.limit) == ("recovery_p99", "<=", 60.0)
    assert parse_constraint("steady_register_rate <= 10/s").limit == 10.0
    assert parse_constraint("peak_load_vs_capacity < 0.8").limit == 0.8
    with pytest.raises(ValueError):
        parse_constraint("recovery_p99 about 60s")
    import numpy as np

    m = pareto_mask(np.array([[1, 5], [2, 2], [3, 3], [5, 1]]))
    assert m.tolist() == [True, True, False, True]


def test_plan_spec_errors_name_file_line_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nbase: {duration: 10s, fleets: [{name: f, count: 1}]}\nvariables:\n  - {path: a.b, values: [1]}\n"
                 "slo:\n  - recovery_p99 around 3\n")
    from simsip.config.loader import ConfigError

    with pytest.raises(ConfigError) as e:
        plan(p)
    assert f"{p}:" in str(e.value) and "slo" in str(e.value)
