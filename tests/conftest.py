"""Shared helpers: build scenarios in code (validated exactly as YAML input would be)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from simsip.config.schema import Scenario

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def in_ci() -> bool:
    """``CI=true`` (what .ci/run and CI services set): a missing test requirement is a failure."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing_requirement(reason: str) -> None:
    """Skip a test whose requirement (root, the lab packages, Chromium) is missing — except under
    ``CI=true``, where .ci/run installs them, so a missing one fails the test instead of hiding it."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing requirement is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def scenario(**over) -> Scenario:
    """A small scenario: one fleet of UDP phones, two keepalived nodes, no faults, 1 ms delay."""
    base = {
        "name": "test",
        "seed": 7,
        "duration": "5min",
        "fleets": [{"name": "f", "count": 100, "phone": {"expires": "60s", "refresh": {"mode": "percent", "percent": 50}}}],
        "registrar": {"workers": 4, "service_time": {"dist": "exponential", "mean": "1ms"}, "min_expires": "10s"},
        "ha": {"vrrp": {"version": 2, "advert_int": "1s"}, "nodes": [{"name": "a", "priority": 150}, {"name": "b", "priority": 100}]},
        "network": {"delay": "1ms"},
        "output": {"resolution": "1s", "report": False},
    }
    doc = copy.deepcopy(base)
    for k, v in over.items():
        node = doc
        parts = k.split("__")
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if isinstance(node, list):
            node[int(parts[-1])] = v
        else:
            node[parts[-1]] = v
    return Scenario.model_validate(doc, context={"strict_units": True})


@pytest.fixture
def make_scenario():
    return scenario


# ns-3's quick vs extensive split: `pytest -m "not extensive"` is the quick tier (a few minutes);
# the whole suite (what CI runs) adds the lab, the notebooks, the browser, the sweep and plan
# examples and the full exact-vs-fast twin matrix.
_EXTENSIVE_FILES = {"test_lab.py", "test_notebooks.py", "test_report_browser.py", "test_examples.py",
                    "test_lab_leftovers.py", "test_dask_real.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.name if hasattr(item, "path") else ""
        cell = getattr(item, "callspec", None)
        twin_cell = name == "test_twin_runs.py" and cell is not None and "cid" in cell.params
        # a real-lab test anywhere (e.g. test_validation.py's run from scratch) is extensive too: the
        # quick tier must never build namespaces next to a lab run of someone else's
        lab = item.get_closest_marker("lab") is not None
        if name in _EXTENSIVE_FILES or lab or (twin_cell and not str(cell.params["cid"]).endswith("-plain")):
            item.add_marker(pytest.mark.extensive)
