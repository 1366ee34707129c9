"""The package's structure as the design promises it: no import cycle anywhere in ``simsip/``, the
engine's components never import the model that wires them, and the layers point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PKG = Path(__file__).resolve().parents[1] / "simsip"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, here: str, is_pkg: bool, modules: set[str]):
    """Every simsip module imported anywhere in the file (functions included, TYPE_CHECKING not)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for sub in ast.walk(node):
                skip.add(id(sub))
    base = here if is_pkg else here.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("simsip"):
                    yield a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = base
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                mod = f"{pkg}.{node.module}" if node.module else pkg
            else:
                mod = node.module or ""
            if not mod.startswith("simsip"):
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                yield sub if sub in modules else mod


def import_graph() -> nx.DiGraph:
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    g = nx.DiGraph()
    g.add_nodes_from(files)
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target in _imports(tree, name, path.name == "__init__.py", set(files)):
            if target != name and target in files:
                g.add_edge(name, target)
    return g


def test_no_import_cycle_in_the_package():
    g = import_graph()
    cycles = list(nx.simple_cycles(g))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles[:10])


def test_the_cycle_check_can_fail(tmp_path, monkeypatch):
    """Negative control: a package with a circle is reported."""
    pkg = tmp_path / "simsip"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from simsip.a import y\n")
    (pkg / "a" / "y.py").write_text("def f():\n    from simsip.a.x import g\n")
    monkeypatch.setattr(__import__(__name__), "PKG", pkg)
    assert list(nx.simple_cycles(import_graph()))


def test_engine_components_never_import_the_model():
    g = import_graph()
    wired_by = [m for m in g.predecessors("simsip.engine.model") if m.startswith("simsip.engine.")]
    assert wired_by == [], f"components that import the model: {wired_by}"


def test_lower_layers_do_not_import_upper_ones():
    """units/io/rng/faults -> config -> engine -> metrics/trace -> experiments/report -> cli."""
    g = import_graph()
    low = {"simsip.units", "simsip.io", "simsip.rng", "simsip.faults"}
    for m in low | {m for m in g if m.startswith("simsip.config")} | {m for m in g if m.startswith("simsip.engine")}:
        for t in g.successors(m):
            assert not t.startswith(("simsip.cli", "simsip.report", "simsip.api", "simsip.sweep", "simsip.plan",
                                     "simsip.lab", "simsip.validate", "simsip.metrics")), f"{m} imports {t}"
    for m in low:
        for t in g.successors(m):
            assert t in low or t == "simsip", f"{m} imports {t}"
