"""Fuzzing the faces a user touches: scenario files, sweep and plan specs, captures.

Hypothesis mutates valid documents — a key's value replaced by a hostile one (wrong type, out of
range, huge, negative, empty, NaN, a lone surrogate, a YAML tag, a unit-less or unknown duration),
a key deleted or an unknown one added — and damages a valid capture's record timestamps. Whatever
comes in, the answer is a result or a located user error: exit code 0 or 2, the error line names
the file, and never a traceback. The budget is fixed (``max_examples``, derandomised) so the suite
costs the same in CI every time.
"""

from __future__ import annotations

import copy
import struct
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from simsip.cli import app
from simsip.config.loader import ConfigError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

BUDGET = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

HOSTILE = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1, 10**30, -(10**30), 1e308, -1e-308, float("nan"), float("inf"),
                     "", " ", "0s", "-5s", "1e400s", "5 parsecs", "nan s", "1ms", "400d", "\udc80", "\x00", "☃",
                     "!!python/object:os.system", "${HOME}", "*", "any", "master", "a" * 5000, [], {}, [[]], {"": None},
                     [1, "x", None], {"kind": "node_crash"}]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)


def _paths(doc, prefix=()):
    """Every (path, value) in a document, containers included."""
    yield prefix, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _mutated(doc, data) -> dict:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = [p for p, _ in _paths(doc) if p]
        path = data.draw(st.sampled_from(paths), label="path")
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        op = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]), label="op")
        if op == "replace":
            parent[path[-1]] = data.draw(HOSTILE, label="value")
        elif op == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.sampled_from(["bogus", "profile", "count", "at", "node"]), label="key")] = data.draw(HOSTILE)
        else:
            parent.append(data.draw(HOSTILE, label="item"))
    return doc


def _dump(doc) -> str:
    # lone surrogates cannot be written as UTF-8: write them as YAML escapes, as a user could
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=False)


def _assert_clean(res, path: Path) -> None:
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code in (0, 2), (res.exit_code, res.output)
    if res.exit_code == 2:
        first = " ".join(res.output.split())
        assert first.startswith("error: ") or "\nerror: " in res.output, res.output
        assert path.name in first, res.output  # located: the file is named


# --------------------------------------------------------------------------- scenario files
QUICKSTART = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())


@BUDGET
@given(data=st.data())
def test_fuzz_scenario_files(tmp_path, data):
    doc = _mutated(QUICKSTART, data)
    p = tmp_path / "fuzz-scenario.yaml"
    p.write_text(_dump(doc))
    res = CliRunner().invoke(app, ["check", str(p)])
    _assert_clean(res, p)


# --------------------------------------------------------------------------- sweep and plan specs
SWEEP = yaml.safe_load((ROOT / "examples" / "sweeps" / "expiry-vs-advert.yaml").read_text())
PLAN = yaml.safe_load((ROOT / "examples" / "plans" / "keepalived-timers.yaml").read_text())


@BUDGET
@given(data=st.data())
def test_fuzz_sweep_specs(tmp_path, data):
    from simsip.sweep import prepare

    doc = _mutated(SWEEP, data)
    p = tmp_path / "fuzz-sweep.yaml"
    p.write_text(_dump(doc))
    try:
        prep = prepare(p)
    except ConfigError as exc:
        assert all(p.name in x or "--" in x for x in exc.problems), exc.problems
        res = CliRunner().invoke(app, ["sweep", str(p), "--out", str(tmp_path / "out")])
        _assert_clean(res, p)
        assert res.exit_code == 2
        return
    assert prep.n_points >= 1  # a valid spec: not run here (the budget is for the errors)


@BUDGET
@given(data=st.data())
def test_fuzz_plan_specs(tmp_path, data):
    from simsip.plan import load_plan

    doc = _mutated(PLAN, data)
    p = tmp_path / "fuzz-plan.yaml"
    p.write_text(_dump(doc))
    try:
        load_plan(p)
    except ConfigError as exc:
        assert all(p.name in x for x in exc.problems), exc.problems
        res = CliRunner().invoke(app, ["plan", str(p), "--out", str(tmp_path / "out")])
        _assert_clean(res, p)
        assert res.exit_code == 2


# --------------------------------------------------------------------------- captures
def _capture() -> bytes:
    from test_trace_fuzz import VALID
    from trace_builders import pcap_bytes

    return pcap_bytes(VALID)


CAPTURE = _capture()


def _record_offsets(data: bytes) -> list[int]:
    pos, out = 24, []
    while pos + 16 <= len(data):
        out.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return out


@settings(BUDGET, max_examples=60)  # each example is a whole `simsip trace import`
@given(data=st.data())
def test_fuzz_capture_timestamps(tmp_path, data):
    """Record headers with bogus seconds/microseconds (epoch 0, year 2106, usec >= 10**6, backwards)."""
    b = bytearray(CAPTURE)
    offs = _record_offsets(CAPTURE)
    for off in data.draw(st.lists(st.sampled_from(offs), min_size=1, max_size=len(offs)), label="records"):
        sec = data.draw(st.one_of(st.sampled_from([0, 1, 0xFFFFFFFF, 1_600_000_000]), st.integers(0, 2**32 - 1)))
        usec = data.draw(st.one_of(st.sampled_from([0, 999_999, 1_000_000, 0xFFFFFFFF]), st.integers(0, 2**32 - 1)))
        struct.pack_into("<II", b, off, sec, usec)
    p = tmp_path / "fuzz-capture.pcap"
    p.write_bytes(bytes(b))
    res = CliRunner().invoke(app, ["trace", "import", str(p), "--out", str(tmp_path / "events")])
    _assert_clean(res, p)
