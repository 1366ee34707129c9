"""User mistakes end a command with a located message and exit 2, never a traceback: output paths
that are files or not writable, a lone surrogate, an unknown plan objective, bad Dask addresses,
``trace import --resolution 0``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simsip.cli import app

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"
LAB_RUN = EX / "lab" / "udp-none"


def _run(*args) -> tuple[int, str]:
    r = CliRunner().invoke(app, [str(a) for a in args])
    out = " ".join(r.output.split())
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r.exit_code, out


@pytest.fixture
def afile(tmp_path) -> Path:
    f = tmp_path / "afile"
    f.write_text("")
    return f


@pytest.fixture
def small_sweep(tmp_path) -> Path:
    from tests.test_sweep import _small

    return _small(tmp_path, levels=2, reps=2)


def test_output_path_is_a_file(afile, small_sweep, tmp_path):
    cases = [
        ("sweep", small_sweep, "--workers", "1", "--out", afile),
        ("plan", EX / "plans" / "keepalived-timers.yaml", "--out", afile),
        ("trace", "import", LAB_RUN, "--out", afile),
        ("run", EX / "quickstart.yaml", "--out", afile, "-r", "1"),
    ]
    for args in cases:
        code, out = _run(*args)
        assert code == 2, (args, out)
        assert str(afile) in out and "not a directory" in out, (args, out)
    code, out = _run("schema", "--out", tmp_path)
    assert code == 2 and "is a directory" in out
    code, out = _run("schema", "--out", afile / "x.json")
    assert code == 2 and str(afile) in out


def test_report_out_is_a_directory(tmp_path):
    run = tmp_path / "run"
    code, _ = _run("run", EX / "quickstart.yaml", "--out", run, "-r", "1", "--set", "output.report=false")
    assert code == 0
    (tmp_path / "dir").mkdir()
    code, out = _run("report", run, "--out", tmp_path / "dir")
    assert code == 2 and "cannot write the report" in out, out


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("mount"), reason="needs a read-only mount as root")
def test_read_only_output_directory(tmp_path, small_sweep):
    """A read-only directory (a bind mount made read-only: root ignores mode bits)."""
    import subprocess

    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "--bind", "-o", "ro", str(ro), str(ro)], capture_output=True).returncode:
            pytest.skip("cannot make a read-only bind mount here")
    else:
        ro.chmod(0o555)
    try:
        code, out = _run("sweep", small_sweep, "--workers", "1", "--out", ro / "sw")
        assert code == 2 and "cannot create the output directory" in out, out
        code, out = _run("run", EX / "quickstart.yaml", "--out", ro, "-r", "1")
        assert code == 2 and "not writable" in out, out
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)], capture_output=True)


def test_lone_surrogate_in_name(tmp_path):
    cfg = tmp_path / "s.yaml"
    text = (EX / "quickstart.yaml").read_text()
    lines = [("name: \"bad\\udc80name\"" if ln.startswith("name:") else ln) for ln in text.splitlines()]
    cfg.write_text("\n".join(lines) + "\n")
    lineno = next(i for i, ln in enumerate(lines, 1) if ln.startswith("name:"))
    for cmd in ("check", "run"):
        code, out = _run(cmd, cfg, *(["--out", tmp_path / "o"] if cmd == "run" else []))
        assert code == 2, out
        assert f"{cfg}:{lineno}: name:" in out and "surrogate" in out
    code, out = _run("check", EX / "quickstart.yaml", "--set", 'name="x\\udc80"')
    assert code == 2 and "--set name" in out and "surrogate" in out
    # negative control: real non-ASCII text is fine
    code, out = _run("check", EX / "quickstart.yaml", "--set", "name=Zürich-Ω")
    assert code == 0, out


def test_plan_with_an_unknown_objective(tmp_path):
    src = EX / "plans" / "keepalived-timers.yaml"
    text = src.read_text()
    assert "objectives:" in text
    import yaml

    doc = yaml.safe_load(text)
    doc["objectives"] = ["unreachable_phone_seconds", "cheapness"]
    base = doc["base"]
    if isinstance(base, str) and not Path(base).is_absolute():
        doc["base"] = str((src.parent / base).resolve())
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, out = _run("plan", p, "--out", tmp_path / "o")
    assert code == 2, out
    assert f"{p}:" in out and "objectives" in out and "'cheapness'" in out and "allowed" in out


@pytest.mark.parametrize("address, fragment", [
    ("foo bar", "not a Dask scheduler address"),
    ("tcp://", "not a Dask scheduler address"),
    ("tcp://127.0.0.1:99999", "not a Dask scheduler address"),
    ("http://127.0.0.1:8786", "not a Dask scheduler address"),
    ("tcp://127.0.0.1:9", "cannot reach a Dask scheduler"),
])
def test_bad_dask_addresses(small_sweep, tmp_path, address, fragment):
    code, out = _run("sweep", small_sweep, "--dask", address, "--out", tmp_path / "sw")
    assert code == 2, out
    assert fragment in out and "--dask" in out


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_trace_import_resolution_must_be_positive(value):
    code, out = _run("trace", "import", LAB_RUN, "--resolution", value)
    assert code == 2, out
    assert "--resolution" in out and "allowed: > 0" in out
    from simsip.trace.measure import measure_trace

    with pytest.raises(ValueError, match="resolution"):
        measure_trace(LAB_RUN, resolution=float(value))
