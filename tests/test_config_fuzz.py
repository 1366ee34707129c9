"""Fuzzing the config loader: any input gives a Scenario or a ConfigError, never anything else.

Bugs once found here (PyYAML constructor errors, unprintable characters, very deep nesting, long
profile names, merge-key overrides) are pinned by the regression tests at the end of the file.
"""

from __future__ import annotations

import copy
import re
import signal
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from simsip.config.loader import ConfigError, load_config, load_config_text, resolved_yaml
from simsip.config.schema import Scenario

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
SOURCE = "fuzz.yaml"

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- timeout guard


@pytest.fixture(autouse=True)
def alarm_guard():
    """Every test here must finish in well under a minute (alias bombs, deep nesting)."""

    def on_alarm(signum, frame):
        raise TimeoutError("config loader took too long")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(45)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------- the property


def check(text: str, path: Path | None = None):
    """Scenario, or ConfigError with printable problems that name where they are.

    With ``path`` the text is written there and loaded as a file (``extends:`` resolves beside it).
    """
    sources = (SOURCE, str(ROOT / "models"))
    try:
        if path is None:
            scn = load_config_text(text, SOURCE)
        else:
            path.write_text(text, encoding="utf-8")
            sources = (str(path.parent), str(ROOT / "models"))
            scn = load_config(path)
    except ConfigError as exc:
        assert exc.problems, "ConfigError without problems"
        for p in exc.problems:
            assert isinstance(p, str) and p.strip()
            assert p.startswith(sources), p
        event("ConfigError")
        return None
    assert isinstance(scn, Scenario)
    event("valid Scenario")
    # whatever validates can be written back and read again
    again = load_config_text(resolved_yaml(scn), "resolved.yaml")
    assert again.phones == scn.phones and again.fleets[0].name == scn.fleets[0].name
    return scn


# --------------------------------------------------------------------------- strategies


def _field_names() -> list[str]:
    names: set[str] = set()

    def walk(model):
        for k, f in model.model_fields.items():
            names.add(k)
            for c in (f.annotation, *getattr(f.annotation, "__args__", ())):
                if isinstance(c, type) and issubclass(c, BaseModel):
                    walk(c)
                for cc in getattr(c, "__args__", ()):
                    if isinstance(cc, type) and issubclass(cc, BaseModel):
                        walk(cc)

    walk(Scenario)
    return sorted(names)


FIELD_NAMES = _field_names()
DURATION_LIKE = ["30s", "250ms", "1h", "5min", "1d", "20cs", "0", "0s", "inf", "never", "-5s", "1e999h", "30",
                 "1.5min", "0.7s", "3 0s", "30 parsecs", "", " ", "nan", "1e-300s", "9" * 30 + "h"]
RATE_LIKE = ["2/h", "40/s", "0", "0/s", "2", "-1/s", "1e999/s", "x/h"]
PROFILE_LIKE = ["generic-udp", "kamailio", "keepalived", "nokia", "../phones/generic-udp", ".x", "a/b", ""]
LITERAL_LIKE = ["percent", "margin", "backoff", "fixed", "drop", "reply_503", "udp", "tcp", "master", "backup",
                "node-a", "node-b", "boot_storm", "equilibrium", "gateway", "per_phone", "csv", "parquet",
                "keepalived", "node_crash", "shared", "none", "lognormal", "uniform", "constant", "normal",
                "exponential", "long_interval", "give_up"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(DURATION_LIKE + RATE_LIKE + PROFILE_LIKE + LITERAL_LIKE),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8), st.integers(-3, 3))
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=25,
)

fleet = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["desk", "soft", "a", "desk"]), st.text(max_size=6)),
     "count": st.one_of(st.integers(-2, 50), scalars)},
    optional={
        "profile": st.one_of(st.sampled_from(PROFILE_LIKE), scalars),
        "phone": st.one_of(
            st.fixed_dictionaries({}, optional={
                "expires": st.sampled_from(DURATION_LIKE),
                "calls_per_hour": st.sampled_from(RATE_LIKE),
                "refresh": st.one_of(values, st.fixed_dictionaries({"mode": st.sampled_from(LITERAL_LIKE)},
                                                                   optional={"percent": scalars, "margin": st.sampled_from(DURATION_LIKE)})),
                "timers": st.dictionaries(st.sampled_from(["t1", "t2", "timer_f", "max_retransmissions", "t4"]),
                                          st.one_of(st.sampled_from(DURATION_LIKE), scalars), max_size=4),
                "retry": values,
            }),
            values,
        ),
        "start": st.sampled_from(LITERAL_LIKE),
        "boot_window": st.sampled_from(DURATION_LIKE),
    },
)
scenario_like = st.fixed_dictionaries(
    {"duration": st.one_of(st.sampled_from(DURATION_LIKE), scalars), "fleets": st.one_of(st.lists(fleet, max_size=3), values)},
    optional={
        "name": scalars,
        "seed": scalars,
        "replications": st.one_of(st.integers(-1, 5), scalars),
        "registrar": st.one_of(
            st.fixed_dictionaries({}, optional={
                "profile": st.one_of(st.sampled_from(PROFILE_LIKE), scalars),
                "workers": scalars, "when_full": st.sampled_from(LITERAL_LIKE),
                "service_time": st.one_of(st.sampled_from(DURATION_LIKE), values),
                "retry_after": st.sampled_from(DURATION_LIKE), "retry_after_max": st.sampled_from(DURATION_LIKE),
                "min_expires": st.sampled_from(DURATION_LIKE), "max_expires": st.sampled_from(DURATION_LIKE),
            }),
            values,
        ),
        "ha": st.one_of(
            st.fixed_dictionaries({}, optional={
                "profile": st.one_of(st.sampled_from(PROFILE_LIKE), scalars),
                "vrrp": st.one_of(values, st.fixed_dictionaries({}, optional={
                    "version": st.sampled_from([2, 3, 4, "2"]), "advert_int": st.sampled_from(DURATION_LIKE)})),
                "nodes": st.one_of(values, st.lists(st.fixed_dictionaries(
                    {"name": st.sampled_from(["node-a", "node-b", "c", ""]), "priority": st.integers(-1, 300)}), max_size=4)),
            }),
            values,
        ),
        "network": values,
        "faults": st.one_of(values, st.lists(st.fixed_dictionaries(
            {"at": st.sampled_from(DURATION_LIKE)},
            optional={"node": st.sampled_from(LITERAL_LIKE), "repair_after": st.sampled_from(DURATION_LIKE),
                      "kind": st.sampled_from(LITERAL_LIKE)}), max_size=3)),
        "output": values,
        "extends": scalars,
    },
)


def dump(doc) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------- (a) random documents


@FUZZ
@given(doc=st.one_of(values, st.dictionaries(keys, values, max_size=8)))
def test_random_yaml_documents(doc):
    check(dump(doc))


@FUZZ
@given(doc=scenario_like)
def test_random_scenario_shaped_documents(doc):
    check(dump(doc))


YAML_CHARS = list(":-[]{},&*!|>'\"#%@`?.<=~^$\\/ \n\n\n\t") + list("abcsmhx019") + ["  ", "- ", ": ", "<<: ", "&a ", "*a",
                                                                                       "!!int ", "!!str ", "!!binary ",
                                                                                       "---\n", "...\n", "fleets",
                                                                                       "duration", "30s", "\n  "]


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=200), st.lists(st.sampled_from(YAML_CHARS), max_size=60).map("".join)))
def test_random_text(text):
    check(text)


# --------------------------------------------------------------------------- (b) mutated examples


def _paths(node, path=()):
    """Every (path, value) of a document, containers included."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, path + (i,))


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def _set(doc, path, value):
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


_DUR_RE = re.compile(r"^\s*[0-9.eE+-]+\s*(us|ms|cs|s|sec|min|m|h|d)\s*$")
GARBAGE_DURATIONS = ["30 parsecs", "30", "", "ms", "1e999s", "-1s", "nan s", "1..2s", "s30", "30 s s", "٣s", "1_000s",
                     "0x10s", "1h30min", "∞", "30S", "  ", "inf", "never", "1e-320s"]
TEXT_OPS = ["dup_line", "del_line", "indent_line", "dedent_line", "swap_lines", "truncate"]
DOC_OPS = ["delete", "replace", "insert_unknown", "garble_duration", "duplicate", "nest", "unnest"]


def _mutate_doc(data, doc, op):
    paths = list(_paths(doc))
    if op == "delete":
        cand = [p for p, _ in paths if p]
        if cand:
            path = data.draw(st.sampled_from(cand))
            del _get(doc, path[:-1])[path[-1]]
    elif op == "replace":
        path, _ = data.draw(st.sampled_from(paths))
        doc = _set(doc, path, data.draw(values))
    elif op == "insert_unknown":
        cand = [p for p, v in paths if isinstance(v, dict)]
        if cand:
            path = data.draw(st.sampled_from(cand))
            _get(doc, path)[data.draw(keys)] = data.draw(values)
    elif op == "garble_duration":
        cand = [p for p, v in paths if isinstance(v, str) and _DUR_RE.match(v)]
        if cand:
            path = data.draw(st.sampled_from(cand))
            doc = _set(doc, path, data.draw(st.sampled_from(GARBAGE_DURATIONS)))
    elif op == "duplicate":
        cand = [p for p, _ in paths if p]
        if cand:
            path = data.draw(st.sampled_from(cand))
            parent = _get(doc, path[:-1])
            if isinstance(parent, list):
                parent.insert(path[-1], copy.deepcopy(parent[path[-1]]))
            else:  # copy the subtree under another key of the same mapping, or a new one
                other = data.draw(st.sampled_from(sorted(map(str, parent)) + ["copy"]))
                parent[other] = copy.deepcopy(parent[path[-1]])
    elif op == "nest":
        path, v = data.draw(st.sampled_from(paths))
        wrapped = data.draw(st.sampled_from(["list", "dict"]))
        doc = _set(doc, path, [copy.deepcopy(v)] if wrapped == "list" else {data.draw(keys): copy.deepcopy(v)})
    elif op == "unnest":
        cand = [(p, v) for p, v in paths if isinstance(v, (dict, list)) and v]
        if cand:
            path, v = data.draw(st.sampled_from(cand))
            inner = next(iter(v.values())) if isinstance(v, dict) else v[0]
            doc = _set(doc, path, copy.deepcopy(inner))
    return doc


def _mutate_text(data, text, op):
    lines = text.splitlines()
    if not lines:
        return text
    i = data.draw(st.integers(0, len(lines) - 1))
    if op == "dup_line":
        lines.insert(i, lines[i])
    elif op == "del_line":
        del lines[i]
    elif op == "indent_line":
        lines[i] = "  " + lines[i]
    elif op == "dedent_line":
        lines[i] = lines[i][2:] if lines[i].startswith("  ") else lines[i]
    elif op == "swap_lines":
        j = data.draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "truncate":
        return "\n".join(lines)[: data.draw(st.integers(0, len(text)))]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory) -> Path:
    """A copy of examples/ so that mutants can sit beside the files they extend."""
    d = tmp_path_factory.mktemp("examples")
    for p in EXAMPLES:
        (d / p.name).write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    return d


def test_examples_copy_loads(example_dir):
    for p in EXAMPLES:
        assert load_config(example_dir / p.name) == load_config(p)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_examples(example, example_dir, data):
    original = yaml.safe_load(example.read_text())
    doc = copy.deepcopy(original)
    n = data.draw(st.integers(1, 4), label="mutations")
    for _ in range(n):
        op = data.draw(st.sampled_from(DOC_OPS), label="op")
        doc = _mutate_doc(data, doc, op)
    text = dump(doc)
    if data.draw(st.booleans(), label="text op"):
        text = _mutate_text(data, text, data.draw(st.sampled_from(TEXT_OPS)))
    check(text, example_dir / "mutant.yaml")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_example_text(example, example_dir, data):
    """Line-level edits of the example file itself (comments, flow style and all)."""
    text = example.read_text()
    for _ in range(data.draw(st.integers(1, 3))):
        text = _mutate_text(data, text, data.draw(st.sampled_from(TEXT_OPS)))
    check(text, example_dir / "mutant.yaml")


# --------------------------------------------------------------------------- (c) bombs


def expect_config_error(text: str, fragment: str = "") -> ConfigError:
    signal.alarm(10)
    with pytest.raises(ConfigError) as ei:
        load_config_text(text, SOURCE)
    signal.alarm(0)
    assert fragment in str(ei.value), ei.value.problems
    return ei.value


def _laughs(levels: int = 9, width: int = 10, mapping: bool = False) -> str:
    out = "name: bomb\nduration: 1min\nfleets: [{name: a, count: 1}]\n"
    out += "l0: &l0 " + ("{" + ", ".join(f"k{i}: lol" for i in range(width)) + "}" if mapping else "[" + ", ".join(["lol"] * width) + "]") + "\n"
    for lv in range(1, levels):
        if mapping:
            out += f"l{lv}: &l{lv} {{" + ", ".join(f"k{i}: *l{lv - 1}" for i in range(width)) + "}\n"
        else:
            out += f"l{lv}: &l{lv} [" + ", ".join([f"*l{lv - 1}"] * width) + "]\n"
    return out


@pytest.mark.parametrize("mapping", [False, True], ids=["list", "mapping"])
def test_billion_laughs(mapping):
    expect_config_error(_laughs(mapping=mapping), "too many aliases")


def test_alias_bomb_under_a_real_key():
    text = "name: bomb\nduration: 1min\nfleets: &f [{name: a, count: 1}]\n" + "\n".join(
        f"x{i}: &x{i} [" + ", ".join([f"*{'f' if i == 0 else 'x' + str(i - 1)}"] * 12) + "]" for i in range(8))
    expect_config_error(text)


def test_merge_key_bomb():
    text = "m0: &m0 {" + ", ".join(f"k{i}: 1" for i in range(10)) + "}\n"
    for lv in range(1, 12):
        text += f"m{lv}: &m{lv} {{<<: [" + ", ".join([f"*m{lv - 1}"] * 10) + "]}\n"
    expect_config_error(text)


@pytest.mark.parametrize(
    "text",
    [
        "&a [*a]",
        "&a {x: *a}",
        "a: &a {b: [*a]}\n",
        "name: x\nduration: 1min\nfleets: &f [{name: a, count: 1, phone: *f}]\n",
        "a: &a\n  b: &b\n    c: *a\n",
        "&a [[[[*a]]]]",
    ],
)
def test_recursive_alias(text):
    expect_config_error(text, "recursive alias")


@pytest.mark.parametrize("depth", [70, 100, 300])
@pytest.mark.parametrize("style", ["flow_list", "flow_map", "block"])
def test_deep_nesting(depth, style):
    if style == "flow_list":
        text = "[" * depth + "]" * depth
    elif style == "flow_map":
        text = "{a: " * depth + "1" + "}" * depth
    else:
        text = "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v\n"
    expect_config_error(text, "nesting too deep")


def test_many_nodes_are_refused():
    text = "name: x\nduration: 1min\nfleets: [{name: a, count: 1}]\nbig: &b [" + ", ".join(["1"] * 2000) + "]\n"
    text += "more: [" + ", ".join(["*b"] * 120) + "]\n"
    expect_config_error(text, "too many aliases")


# --------------------------------------------------------------------------- regressions


# Regression (was a strict xfail): parse_yaml only converts yaml.YAMLError; exceptions raised by
# PyYAML's scalar constructors escape as ValueError/IndexError/KeyError/AttributeError instead of
# ConfigError: impossible dates, '!!int abc', '!!float abc', '!!int' (empty), '!!bool x', '!!timestamp
# x', integers over 4300 digits
@pytest.mark.parametrize(
    "text",
    [
        "name: 2001-13-45\nduration: 1min\nfleets: [{name: a, count: 1}]\n",
        "2001-02-30: x\n",
        "a: 2001-01-01 25:00:00\n",
        "seed: !!int abc\n",
        "seed: !!float abc\n",
        "seed: " + "9" * 5000 + "\n",
        "!!int",
        "seed: !!bool x\n",
        "? !!bool x\n: 1\n",
        "a: !!timestamp x\n",
    ],
    ids=["bad-date", "bad-date-key", "bad-hour", "int-tag", "float-tag", "huge-int", "empty-int-tag",
         "bool-tag", "bool-tag-key", "timestamp-tag"],
)
def test_bug_constructor_value_error(text):
    expect_config_error(text)


# Regression (was a strict xfail): yaml.SafeLoader(text) is created before parse_yaml's try, so a NUL
# or other non-printable character raises yaml.reader.ReaderError instead of ConfigError
@pytest.mark.parametrize("text", ["name: \x00\n", "a: \x07\n", "\ufffe"], ids=["nul", "bel", "fffe"])
def test_bug_unprintable_character(text):
    expect_config_error(text)


# Regression (was a strict xfail): nesting deeper than ~900 levels overflows the stack inside PyYAML's
# composer (loader.get_single_node()), outside the 'except RecursionError' that only guards build();
# RecursionError escapes instead of ConfigError
@pytest.mark.parametrize("depth", [1000, 5000])
def test_bug_very_deep_nesting(depth):
    expect_config_error("[" * depth + "]" * depth)


# Regression (was a strict xfail): _load_profile calls Path.is_file() on models/<kind>/<name>.yaml; a
# profile name longer than the file-name limit raises OSError(ENAMETOOLONG) instead of ConfigError
def test_bug_long_profile_name():
    expect_config_error("name: x\nduration: 1min\nfleets: [{name: a, count: 1, profile: " + "x" * 300 + "}]\n")


# Regression (was a strict xfail): YAML merge keys cannot be overridden: '{<<: *base, workers: 3}' is
# rejected as 'key given twice' although YAML merge semantics let explicit keys override merged ones
def test_bug_merge_key_override():
    text = (
        "name: x\nduration: 1min\nfleets: [{name: a, count: 1}]\n"
        "registrar: {<<: {workers: 2, queue_limit: 10}, workers: 3}\n"
    )
    scn = load_config_text(text, SOURCE)
    assert scn.registrar.workers == 3 and scn.registrar.queue_limit == 10


def test_merge_key_without_override_works():
    text = ("name: x\nduration: 1min\nfleets: [{name: a, count: 1}]\n"
            "registrar: {<<: {workers: 2, queue_limit: 10}, when_full: reply_503}\n")
    scn = load_config_text(text, SOURCE)
    assert scn.registrar.workers == 2 and scn.registrar.when_full == "reply_503"
