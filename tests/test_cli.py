"""The ``simsip`` command: run / check / schema, exit codes, run directory, crash handling."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import simsip.api
import simsip.metrics
from simsip.cli import app
from simsip.config.loader import json_schema, load_config

ROOT = Path(__file__).resolve().parents[1]

TINY = """\
name: tiny
seed: 3
replications: 1
duration: 2min
fleets:
  - name: desk
    count: 30
    profile: generic-udp
    phone:
      expires: 60s
registrar:
  profile: kamailio
ha:
  profile: keepalived
faults:
  - node: master
    at: 30s
    repair_after: 30s
output:
  resolution: 1s
"""

NODES = ("node-a", "node-b")


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clean_exit(result, code: int):
    """Exit code as expected, via typer.Exit/SystemExit, no Python traceback anywhere."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    p = d / "tiny.yaml"
    p.write_text(TINY)
    return p


@pytest.fixture(scope="module")
def run_dir(tiny, tmp_path_factory):
    """One run with --seed, --replications and --set overriding the file."""
    out = tmp_path_factory.mktemp("run") / "out"
    res = invoke("run", tiny, "--out", out, "--seed", "11", "--replications", "2", "--set", "fleets.desk.count=40")
    assert_clean_exit(res, 0)
    return out, res


# --------------------------------------------------------------------------- run


def test_run_prints_progress_and_results(run_dir):
    _, res = run_dir
    assert "40 phones, 2 replication(s), seed 11" in res.stdout
    assert "replication 2/2 done" in res.stdout
    assert "unreachable_phone_seconds" in res.stdout


def test_run_summary(run_dir):
    out, _ = run_dir
    summ = json.loads((out / "summary.json").read_text())
    assert summ["status"] == "ok" and summ["error"] is None
    assert summ["scenario"] == "tiny"
    assert summ["seed"] == 11  # --seed
    assert summ["replications_requested"] == 2 and summ["replications_done"] == 2  # --replications
    figs = summ["figures"]
    assert figs["phones"]["mean"] == 40  # --set fleets.desk.count=40
    for must in ("unreachable_phone_seconds", "phones_affected", "recovery_median", "vip_move_time"):
        assert must in figs
    for name, f in figs.items():
        assert {"mean", "ci_low", "ci_high", "n", "unit"} <= set(f), name
        if f["mean"] is not None and f["ci_low"] is not None:
            assert f["ci_low"] <= f["mean"] + 1e-9 and f["mean"] <= f["ci_high"] + 1e-9, (name, f)


def test_run_timeseries_columns(run_dir):
    out, _ = run_dir
    ts = pd.read_csv(out / "timeseries.csv")
    need = {"time", "reachable", "registered", "resp_2xx", "resp_503", "timeouts", "retransmissions"}
    need |= {f"register_rx_{n}" for n in NODES} | {f"queue_{n}" for n in NODES}
    assert need <= set(ts.columns), sorted(need - set(ts.columns))
    assert set(ts["replication"]) == {0, 1}
    one = ts[ts["replication"] == 0]
    assert len(one) == 120  # 2 min at 1 s resolution
    assert one["time"].iloc[0] == 0 and one["time"].is_monotonic_increasing
    assert (ts["reachable"] <= 40).all() and (ts["registered"] <= 40).all()


def test_run_tables_and_resolved_config(run_dir):
    out, _ = run_dir
    for name in ("outages.csv", "recovery.csv", "faults.csv", "vip.csv", "replications.csv"):
        assert (out / name).is_file(), name
    outages = pd.read_csv(out / "outages.csv")
    assert len(outages) > 0  # a master crash without replication loses registrations
    pd.read_csv(out / "recovery.csv")
    resolved = out / "config.resolved.yaml"
    scn = load_config(resolved)  # re-loadable, units and all
    assert scn.seed == 11 and scn.replications == 2 and scn.fleets[0].count == 40
    assert scn.fleets[0].phone.expires == 60.0
    assert yaml.safe_load(resolved.read_text())["duration"] == "2min"


def test_run_report_is_self_contained(run_dir):
    out, _ = run_dir
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "plotly" in html.lower() and "Plotly.newPlot" in html
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I)
    tags = re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", html, re.I)
    assert tags
    for tag in tags:
        assert "http" not in tag and "cdn.plot.ly" not in tag, tag
    # the only 'cdn.plot.ly' text is a default inside the inlined plotly.js bundle (geo topojson URL)
    first_script_end = html.index("</script>")
    assert "cdn.plot.ly" not in html[first_script_end:]


def test_run_crash_in_replication_keeps_finished_ones(tiny, tmp_path, monkeypatch):
    real = simsip.metrics.compute

    def flaky(cfg, log, replication, calls_rng, **kw):
        if replication == 1:
            raise RuntimeError("simulated crash in replication 1")
        return real(cfg, log, replication, calls_rng, **kw)

    # simsip.api imports compute by name, so the module attribute simsip.api.compute is the one the
    # run actually calls; patch both so the test does not depend on the import style
    monkeypatch.setattr(simsip.metrics, "compute", flaky)
    monkeypatch.setattr(simsip.api, "compute", flaky)
    out = tmp_path / "out"
    res = invoke("run", tiny, "--out", out, "--replications", "3")
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert "run failed" in res.output and "simulated crash in replication 1" in res.output
    summ = json.loads((out / "summary.json").read_text())
    assert summ["status"] == "error"
    assert "RuntimeError" in summ["error"] and "simulated crash in replication 1" in summ["error"]
    assert summ["replications_done"] == 1 and summ["replications_requested"] == 3
    assert summ["figures"]["phones"]["n"] == 1
    ts = pd.read_csv(out / "timeseries.csv")
    assert set(ts["replication"]) == {0}  # replication 0 kept
    assert load_config(out / "config.resolved.yaml").replications == 3
    assert (out / "report.html").is_file()


@pytest.mark.parametrize("args, fragment", [(["--seed", "-1"], "seed"), (["--replications", "0"], "replications")])
def test_run_bad_option_values(tiny, tmp_path, args, fragment):
    res = invoke("run", tiny, "--out", tmp_path / "o", *args)
    assert_clean_exit(res, 2)
    assert fragment in res.output
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- schema / check


def test_schema_prints_json(tmp_path):
    res = invoke("schema")
    assert_clean_exit(res, 0)
    assert json.loads(res.stdout) == json_schema()
    res = invoke("schema", "--out", tmp_path / "s.json")
    assert_clean_exit(res, 0)
    assert json.loads((tmp_path / "s.json").read_text()) == json_schema()


def test_check_ok(tiny):
    res = invoke("check", tiny)
    assert_clean_exit(res, 0)
    assert "ok (30 phones, 1 fault(s))" in res.stdout
    res = invoke("check", tiny, "--set", "fleets.desk.count=5")
    assert_clean_exit(res, 0)
    assert "ok (5 phones" in res.stdout


def test_check_show_prints_reloadable_resolved_config(tiny, tmp_path):
    res = invoke("check", tiny, "--show")
    assert_clean_exit(res, 0)
    p = tmp_path / "shown.yaml"
    p.write_text(res.stdout)
    assert load_config(p) == load_config(tiny)


def test_check_example_files():
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        assert_clean_exit(invoke("check", path), 0)


BASE = TINY

BAD = {
    "unknown_key": (BASE.replace("      expires: 60s", "      expires: 60s\n      colour: red"), 11, "fleets[0].phone.colour"),
    "wrong_type": (BASE.replace("count: 30", "count: many"), 7, "fleets[0].count"),
    "out_of_range": (BASE.replace("count: 30", "count: 0"), 7, "fleets[0].count"),
    "bad_unit": (BASE.replace("expires: 60s", "expires: 30 parsecs"), 10, "fleets[0].phone.expires"),
    "bare_duration": (BASE.replace("duration: 2min", "duration: 120"), 4, "duration"),
    "bad_literal": (BASE.replace("  profile: kamailio", "  profile: kamailio\n  when_full: explode"), 13, "registrar.when_full"),
    "duplicate_key": (BASE + "seed: 4\n", 21, "seed"),
    "unknown_profile": (BASE.replace("generic-udp", "nokia"), 8, "'nokia'"),
    "yaml_syntax": (BASE.replace("  profile: keepalived", "  profile: [keepalived"), 15, "not valid YAML"),
    "non_mapping": ("- just\n- a list\n", 1, "must be a mapping"),
}


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_exit_2_with_line_and_key(tmp_path, case, command):
    text, line, key = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    args = [command, path] + (["--out", tmp_path / "out"] if command == "run" else [])
    res = invoke(*args)
    assert_clean_exit(res, 2)
    assert f"{path}:{line}:" in res.stderr, res.stderr
    assert key in res.stderr, res.stderr
    assert res.stderr.startswith("error: ")
    if command == "run":
        assert not (tmp_path / "out").exists()


def test_bad_set_value_exit_2(tiny):
    res = invoke("check", tiny, "--set", "fleets.desk.phone.expires=30")
    assert_clean_exit(res, 2)
    assert "--set fleets.desk.phone.expires" in res.stderr and "fleets[0].phone.expires" in res.stderr
    res = invoke("check", tiny, "--set", "fleets.nosuch.count=3")
    assert_clean_exit(res, 2)
    assert "nosuch" in res.stderr


def test_missing_file_exit_2(tmp_path):
    res = invoke("check", tmp_path / "nope.yaml")
    assert_clean_exit(res, 2)
    assert "no such file" in res.stderr


# Regression (was a strict xfail): a YAML scalar that PyYAML resolves but cannot construct (an
# impossible date such as 2001-13-45, '!!int abc', an integer over 4300 digits) raises a plain
# ValueError out of parse_yaml; 'simsip check' prints a Python traceback and exits 1 instead of a
# line-numbered error with exit 2
def test_check_impossible_date_is_a_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE.replace("name: tiny", "name: 2001-13-45"))
    assert_clean_exit(invoke("check", path), 2)


# Regression (was a strict xfail): the same ValueError escapes from --set: yaml.safe_load of the value
# is guarded only against yaml.YAMLError ('--set name=2001-13-45' -> traceback, exit 1)
def test_set_impossible_date_is_a_config_error(tiny):
    assert_clean_exit(invoke("check", tiny, "--set", "name=2001-13-45"), 2)


# Regression (was a strict xfail): cli._fail prints config problems through rich with markup enabled;
# a user value like '[/x]' raises rich.errors.MarkupError (traceback, exit 1) and '[bold]1' is shown
# as '1'
@pytest.mark.parametrize("value", ["[/x]", "[bold]1"])
def test_error_message_shows_user_text_verbatim(tmp_path, value):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE.replace("duration: 2min", f"duration: {json.dumps(value)}"))
    res = invoke("check", path)
    assert_clean_exit(res, 2)
    assert value in res.stderr


# --------------------------------------------------------------------------- real process


def test_real_process_exit_codes(tiny, tmp_path):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    ok = subprocess.run([sys.executable, "-m", "simsip.cli", "check", str(tiny)], capture_output=True, text=True,
                        env=env, timeout=60, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "ok (30 phones" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("count: 30", "count: 0"))
    r = subprocess.run([sys.executable, "-m", "simsip.cli", "check", str(bad)], capture_output=True, text=True,
                       env=env, timeout=60, cwd=tmp_path)
    assert r.returncode == 2
    assert f"{bad}:7:" in r.stderr and "fleets[0].count" in r.stderr and "allowed: >= 1" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    r = subprocess.run([sys.executable, "-m", "simsip.cli"], capture_output=True, text=True, env=env, timeout=60,
                       cwd=tmp_path)
    assert r.returncode in (0, 2) and "Usage" in r.stdout + r.stderr  # no_args_is_help
