"""The report package: one builder per page, pages from memory and from disk agree, no import circles."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd
import pytest

from simsip import report
from tests.conftest import ROOT, scenario

SWEEP = """
name: tiny-sweep
base:
  name: tiny-base
  seed: 3
  duration: 60s
  fleets: [{name: desk, count: 60, profile: generic-udp, phone: {expires: 30s}}]
  registrar: {profile: kamailio, min_expires: 10s}
  ha: {profile: keepalived}
  output: {report: false, per_phone: false}
  faults: [{kind: node_crash, node: master, at: 20s}]
factors:
  - {path: fleets.desk.phone.expires, values: [30s, 60s]}
  - {path: registrar.data, values: [none, shared]}
design: grid
replications: 2
"""


def _fig_ids(text: str) -> list[str]:
    return re.findall(r'<div id="fig-([a-z_]+)" class="plotly-graph-div"', text)


# --- import structure ----------------------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):  # function-level imports included: a lazy import is still a dependency
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def test_the_report_depends_on_results_not_on_what_produces_them():
    """No circle: api/sweep/plan/compare call the report, the report never imports them (not even lazily)."""
    producers = ("simsip.api", "simsip.sweep", "simsip.plan", "simsip.compare", "simsip.cli", "simsip.engine",
                 "simsip.sweep_cli", "simsip.lab")
    files = sorted((ROOT / "simsip" / "report").glob("*.py"))
    assert files and not (ROOT / "simsip" / "report.py").exists() and not (ROOT / "simsip" / "plan_report.py").exists()
    for f in files:
        bad = sorted(m for m in _imports(f) if m.startswith(producers) or m == "simsip")
        assert not bad, f"{f.name} imports {bad}"


# --- run page ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from simsip.api import simulate

    cfg = scenario(duration="2min", replications=2, output={"resolution": "1s", "report": True},
                   faults=[{"kind": "node_crash", "node": "master", "at": "40s", "repair_after": "40s"}])
    out = tmp_path_factory.mktemp("run")
    return simulate(cfg, out=out), out


def test_run_page_from_results_and_from_its_directory_draw_the_same_figures(run, tmp_path):
    res, out = run
    written = (out / "report.html").read_text(encoding="utf-8")
    again = report.write_report_dir(out, tmp_path / "again.html").read_text(encoding="utf-8")
    names = ["topology", "key_figures", "reachable", "vip_owner", "register_rate", "conflicts", "bindings", "recovery_cdf"]
    assert _fig_ids(written) == _fig_ids(again) == names
    disk = report.load_run(out)
    mem = report.as_run_data(res)
    assert disk.scenario == mem.scenario and disk.figures.keys() == mem.figures.keys()
    assert disk.figures["phones"] == mem.figures["phones"]
    for t in ("timeseries", "outages", "recovery", "faults", "vip"):  # the declared tables, read back typed
        assert list(getattr(disk, t).columns) == list(getattr(mem, t).columns), t
        assert getattr(disk, t).dtypes.to_dict() == getattr(mem, t).dtypes.to_dict(), t
    assert "The scenario" in again and "node_crash" in again and "Run directory" in again


def test_run_page_refuses_a_table_that_does_not_match_its_declaration(run, tmp_path):
    _, out = run
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in out.iterdir():
        if p.is_file():
            (bad / p.name).write_bytes(p.read_bytes())
    faults = pd.read_csv(bad / "faults.csv").drop(columns=["cause"])
    faults.to_csv(bad / "faults.csv", index=False)
    with pytest.raises(report.ReportError, match=r"faults table: .*missing column\(s\) \['cause'\]"):
        report.write_report_dir(bad)


def test_comparison_page(run, tmp_path):
    from simsip.compare import write_comparison

    res, _ = run
    write_comparison({"none": res, "again": res}, tmp_path)
    page = (tmp_path / "comparison.html").read_text(encoding="utf-8")
    assert _fig_ids(page) == ["comparison"] and "unreachable_phone_seconds" in page and "again" in page
    assert set(pd.read_csv(tmp_path / "comparison.csv")["variant"]) == {"none", "again"}


# --- sweep page ----------------------------------------------------------------------------------
def test_simsip_sweep_and_simsip_report_dir_write_the_same_sweep_page(tmp_path):
    from typer.testing import CliRunner

    from simsip.cli import app
    from simsip.sweep import sweep

    spec = tmp_path / "tiny.yaml"
    spec.write_text(SWEEP)
    out = tmp_path / "sw"
    r = CliRunner().invoke(app, ["sweep", str(spec), "--workers", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    written = (out / "report.html").read_text(encoding="utf-8")
    r = CliRunner().invoke(app, ["report", str(out), "--out", str(tmp_path / "rebuilt.html")])
    assert r.exit_code == 0, r.output
    rebuilt = (tmp_path / "rebuilt.html").read_text(encoding="utf-8")
    assert written == rebuilt  # the same builder on the same typed data
    res = sweep(spec, workers=1, out=out)  # resumed: nothing computed, the same result in memory
    assert res.computed == 0 and report.render_sweep_report(res) == written
    assert _fig_ids(written) == ["heatmap", "heatmap_load", "ci_bands", "ci_bands_load", "pareto"]
    assert "common random numbers: yes" in written and "4 points × 2 replications" in written
    data = report.SweepData.from_dir(out)
    assert data.factor_columns == res.factor_columns and data.name == "tiny-sweep"
