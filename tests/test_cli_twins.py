"""Every ``simsip`` command is the twin of a documented Python function, and the CLI sits on the library.

``simsip.cli.TWINS`` maps each command to the function(s) it calls. These tests hold it to the
truth: the table lists exactly the commands the typer app has; each twin is public, documented and
reachable from ``simsip`` (or a submodule ``simsip``'s docstring names); each command really calls
its twin (the twin is replaced by one that raises, and the command must hit it); every
``simsip.cli.*`` module imports on its own, the library never imports the CLI, and sweeps and
plans do not import report writers. ``import simsip`` itself stays light (its names load lazily).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

import simsip
import simsip.cli
from simsip.cli import TWINS, app
from tests.conftest import EXAMPLES, ROOT

PACKAGE = ROOT / "simsip"


def command_paths() -> set[str]:
    """Every runnable command of the app, as typed after ``simsip`` (``trace import``, ``run``, ...)."""
    out: set[str] = set()

    def walk(cmd, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, path + [name])
        else:
            out.add(" ".join(path))

    walk(typer.main.get_command(app), [])
    return out


def resolve(ref: str):
    module, attr = ref.split(":")
    return importlib.import_module(module), attr, getattr(importlib.import_module(module), attr)


# --------------------------------------------------------------------------- the table is complete


def test_twins_table_lists_exactly_the_commands():
    commands = command_paths()
    assert {"run", "check", "schema", "sweep", "plan", "report", "version", "trace import", "models show",
            "lab run", "calibrate", "validate", "validation-doc"} <= commands  # the walk reaches into groups
    assert not commands - set(TWINS), f"commands without a Python twin: {sorted(commands - set(TWINS))}"
    assert not set(TWINS) - commands, f"twins of commands that do not exist: {sorted(set(TWINS) - commands)}"


@pytest.mark.parametrize("command", sorted(TWINS))
def test_twin_is_public_documented_and_reachable(command):
    assert TWINS[command], command
    for ref in TWINS[command]:
        module, attr, obj = resolve(ref)
        assert module.__name__.startswith("simsip") and not module.__name__.startswith("simsip.cli"), ref
        if attr == "__version__":
            assert obj == simsip.__version__
            continue
        assert not attr.startswith("_"), ref
        assert callable(obj) and inspect.getdoc(obj), f"{ref}: a twin is a documented function"
        on_face = [n for n in simsip.__all__ if getattr(simsip, n) is obj]
        sub = module.__name__.split(".")[1] if module.__name__ != "simsip" else None
        in_submodule = (sub in simsip.SUBMODULES and f"simsip.{sub}" in simsip.__doc__
                        and getattr(importlib.import_module(f"simsip.{sub}"), attr, None) is obj)
        assert on_face or in_submodule, f"{ref}: not reachable as simsip.<name> nor from a documented submodule"


# --------------------------------------------------------------------------- each command calls its twin


class Called(BaseException):
    """Raised by a stand-in twin (a BaseException, so no command's ``except Exception`` hides it)."""


LAB_RUN = EXAMPLES / "lab" / "udp-none"

#: (command line, the twin it must call, stand-ins needed to get there on any machine)
CALLS = [
    (["run", EXAMPLES / "quickstart.yaml", "--out", "{tmp}/r"], "simsip.api:simulate", {}),
    (["run", EXAMPLES / "replication-modes.yaml", "--out", "{tmp}/v"], "simsip.compare:simulate_variants", {}),
    (["check", EXAMPLES / "quickstart.yaml"], "simsip.config.loader:load_config", {}),
    (["schema"], "simsip.config.loader:json_schema", {}),
    (["report", "{tmp}"], "simsip.report:write_report_dir", {}),
    (["sweep", EXAMPLES / "sweeps" / "expiry-vs-advert.yaml", "--out", "{tmp}/s"], "simsip.sweep:sweep", {}),
    (["plan", EXAMPLES / "plans" / "impossible-slo.yaml", "--out", "{tmp}/p"], "simsip.plan:plan", {}),
    (["trace", "import", LAB_RUN], "simsip.trace.measure:measure_trace", {}),
    (["trace", "infer", LAB_RUN], "simsip.trace.infer:infer_scenario", {}),
    (["trace", "infer", LAB_RUN, "--out", "{tmp}/i.yaml"], "simsip.report.infer_page:write_inference_report", {}),
    (["models", "list"], "simsip.models:profiles", {}),
    (["models", "show", "pjsua"], "simsip.models:profile_values", {}),
    (["models", "assumptions", "--key", "refresh"], "simsip.models:assumptions", {}),
    (["lab", "install"], "simsip.lab.scenario:install_packages", {}),
    (["lab", "check"], "simsip.lab.check:check_requirements", {}),
    (["lab", "run", LAB_RUN / "config.yaml", "--out", "{tmp}/l"], "simsip.lab.scenario:run_scenario",
     {"simsip.lab.check:check_requirements": lambda *a, **k: []}),
    (["lab", "preload", "--n", "0", "--n", "1000", "--out", "{tmp}/pl"], "simsip.lab.preload:measure_preload", {}),
    (["lab", "cleanup", "--run-id", "no-such-run"], "simsip.lab.runner:cleanup_stale", {}),
    (["calibrate", LAB_RUN], "simsip.validate:calibrate", {}),
    (["validate", LAB_RUN / "config.yaml", LAB_RUN], "simsip.validate:validate", {}),
    (["validation-doc", "--examples", EXAMPLES / "lab", "--out", "{tmp}/v.md", "--fig-dir", "{tmp}/v"],
     "simsip.validate:validation_doc", {}),
]


def _command_of(argv: list) -> str:
    words = [str(a) for a in argv]
    two = " ".join(words[:2])
    return two if two in TWINS else words[0]


def test_calls_cover_every_command():
    covered = {_command_of(argv) for argv, _, _ in CALLS}
    assert covered == set(TWINS) - {"version"}
    for argv, twin, _ in CALLS:
        assert twin in TWINS[_command_of(argv)], (argv, twin)


@pytest.mark.parametrize("argv, twin, stand_ins", CALLS, ids=[f"{_command_of(c[0])}->{c[1].split(':')[1]}" for c in CALLS])
def test_command_calls_its_twin(argv, twin, stand_ins, tmp_path, monkeypatch):
    calls = []

    def fake(*args, **kwargs):
        calls.append((args, kwargs))
        raise Called(twin)

    for ref, value in {**stand_ins, twin: fake}.items():
        module, attr, _ = resolve(ref)
        monkeypatch.setattr(module, attr, value)
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(Called):
        CliRunner().invoke(app, args, catch_exceptions=False)
    assert len(calls) == 1


def test_version_prints_the_version():
    r = CliRunner().invoke(app, ["version"])
    assert r.exit_code == 0 and r.stdout.strip() == simsip.__version__


# --------------------------------------------------------------------------- no cycles, light imports


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)


CLI_MODULES = sorted(f"simsip.cli.{m.name}" for m in pkgutil.iter_modules(simsip.cli.__path__))


@pytest.mark.parametrize("module", ["simsip.cli", *CLI_MODULES])
def test_each_cli_module_imports_alone(module):
    r = _fresh(f"import {module}")
    assert r.returncode == 0, r.stderr


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions (absolute names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = ".".join(path.relative_to(ROOT).parent.parts)  # the package a relative import starts from
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


def test_library_never_imports_the_cli():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if path.is_relative_to(PACKAGE / "cli"):
            continue
        bad = {m for m in _imports(path) if m == "simsip.cli" or m.startswith("simsip.cli.")}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, offenders


@pytest.mark.parametrize("name", ["sweep.py", "plan.py"])
def test_sweeps_and_plans_import_no_report_writer(name):
    writers = ("simsip.plan_report", "simsip.report")
    bad = {m for m in _imports(PACKAGE / name) if any(m == w or m.startswith(w + ".") for w in writers)}
    assert not bad, f"simsip/{name} imports {sorted(bad)}: writing the report page is the caller's"


def test_import_simsip_is_light_and_the_face_is_lazy():
    r = _fresh("import sys, simsip\n"
               "heavy = [m for m in ('pandas', 'numpy', 'pydantic', 'plotly', 'simpy', 'typer', 'simsip.api') if m in sys.modules]\n"
               "assert not heavy, heavy\n"
               "import simsip.api, simsip.sweep, simsip.validate\n"
               "assert simsip.simulate is simsip.api.simulate and simsip.Results is simsip.api.Results\n"
               "assert simsip.run_sweep is simsip.sweep.sweep and simsip.validate_run is simsip.validate.validate\n"
               "import simsip.sweep as sw\n"
               "assert sw is sys.modules['simsip.sweep'] and simsip.sweep is sw  # names never shadow submodules\n"
               "assert 'simsip.cli' not in sys.modules\n")
    assert r.returncode == 0, r.stderr


def test_face_names_all_resolve():
    for name in simsip.__all__:
        assert getattr(simsip, name) is not None, name
    assert set(simsip.__all__) <= set(dir(simsip))
    for sub in simsip.SUBMODULES:
        assert getattr(simsip, sub).__name__ == f"simsip.{sub}"
    with pytest.raises(AttributeError):
        simsip.no_such_name  # noqa: B018
