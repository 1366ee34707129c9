"""The model library ships inside the package: found with importlib.resources from any directory,
every file of models/ is package data, SIMSIP_MODELS still overrides. (.ci/run builds the wheel,
installs it in a fresh venv outside the checkout and runs the quick start there.)"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_library_is_package_data_linked_to_models():
    link = ROOT / "simsip" / "_library"
    assert link.is_symlink() and link.resolve() == (ROOT / "models").resolve()
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["simsip._library"]
    files = [p.relative_to(ROOT / "models").as_posix() for p in (ROOT / "models").rglob("*") if p.is_file()]
    assert files
    missed = [f for f in files if not any(fnmatch.fnmatch(f, g) or fnmatch.fnmatch(f, g.replace("**/", "")) for g in globs)]
    assert not missed, f"files of models/ the wheel would not ship: {missed}"


def test_library_found_from_any_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SIMSIP_MODELS"}
    code = ("from simsip.config.loader import models_dir; import simsip.models as m; "
            "print(models_dir()); print(len(m.profiles()))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    where, n = r.stdout.split()
    assert Path(where) == (ROOT / "models").resolve() and int(n) > 10


def test_simsip_models_overrides(tmp_path):
    lib = tmp_path / "lib" / "phones"
    lib.mkdir(parents=True)
    (lib / "only-one.yaml").write_text((ROOT / "models" / "phones" / "generic-udp.yaml").read_text())
    env = {**os.environ, "SIMSIP_MODELS": str(tmp_path / "lib")}
    code = "from simsip.config.loader import models_dir; import simsip.models as m; print(models_dir()); print([p.name for p in m.profiles()])"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    where, names = r.stdout.splitlines()
    assert where == str(tmp_path / "lib") and names == "['only-one']"


def test_missing_requirement_fails_under_ci(tmp_path):
    """The lab and browser tests skip for a missing requirement locally and FAIL under CI=true."""
    t = tmp_path / "test_req.py"
    t.write_text("from tests.conftest import missing_requirement\n\n"
                 "def test_needs_it():\n    missing_requirement('lab packages missing (test)')\n")
    for ci, code, word in (("true", 1, "1 failed"), ("", 0, "1 skipped")):
        env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                            str(t)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == code and word in r.stdout, (ci, r.stdout, r.stderr)
    for mod in ("test_lab.py", "test_report_browser.py", "test_validation.py"):
        assert "missing_requirement(" in (ROOT / "tests" / mod).read_text(), mod
