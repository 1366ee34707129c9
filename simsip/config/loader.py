"""Loading a scenario: YAML with line numbers, profiles from ``models/``, overrides, one validation.

A user's config names profiles (``profile: yealink`` in a fleet, ``registrar: {profile: kamailio}``,
``ha: {profile: keepalived}``) and overrides them field by field; a config may also ``extends:`` a
reference deployment from ``models/deployments``. The loader merges all of that into one plain
document, remembering for every key which file and line it came from, then validates it once into
the frozen :class:`~simsip.config.schema.Scenario`. Every error names the file, the line, the key
path, the value and what is allowed — the CLI prints it without a traceback.
"""

from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simsip.config.schema import Scenario
from simsip.config.types import field_at, model_of, quantity_kind

MAX_NODES = 200_000  # YAML nodes per document: stops alias bombs
MAX_DEPTH = 64

Path_ = tuple  # a key path: ('fleets', 0, 'phone', 'expires')


class ConfigError(ValueError):
    """A user mistake in a config: printed as is, without a traceback."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Located:
    """A plain document plus where each key path came from."""

    data: Any
    where: dict[Path_, str] = field(default_factory=dict)


def models_dir() -> Path:
    """The model library: ``$SIMSIP_MODELS``, else the one shipped inside the package.

    The package's copy is the data package ``simsip/_library`` (in a checkout a link to the
    repository's ``models/``; in a wheel the files themselves), found with :mod:`importlib.resources`
    so that an installed simsip finds it from any working directory.
    """
    env = os.environ.get("SIMSIP_MODELS")
    if env:
        return Path(env)
    from importlib.resources import files

    lib = files("simsip") / "_library"
    if not isinstance(lib, Path):  # e.g. a zipped install: the library must be plain files
        raise ConfigError([f"the model library inside the package ({lib}) is not a directory on disk; "
                           "set SIMSIP_MODELS=/path/to/models"])
    return lib.resolve()


# ----------------------------------------------------------------------------- YAML
def _fmt_path(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


_MERGE_TAG = "tag:yaml.org,2002:merge"
# what PyYAML's scalar constructors raise for values they resolve but cannot build: impossible
# dates (2001-13-45), '!!int abc', '!!bool x', '!!timestamp x', integers over 4300 digits ...
_CONSTRUCT_ERRORS = (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError)


class _YamlSyntaxError(ConfigError):
    """The text is not YAML at all (as opposed to YAML with an unreadable value)."""


def _yaml_problem(exc: yaml.YAMLError, source: str, text: str) -> _YamlSyntaxError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line = f":{mark.line + 1}"
    elif isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.position, int):
        line = f":{text.count(chr(10), 0, exc.position) + 1}"
    else:
        line = ""
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return _YamlSyntaxError([f"{source}{line}: not valid YAML: {problem}"])


_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_yaml(text: str, source: str) -> Located:
    """Parse one YAML document keeping ``file:line`` for every key path.

    Every failure is a :class:`ConfigError` naming the source (and the line where known): YAML
    syntax, unprintable characters, values PyYAML cannot construct, alias bombs, deep nesting.
    """
    try:
        loader = yaml.SafeLoader(text)  # checks for unprintable characters right away
    except yaml.YAMLError as exc:
        raise _yaml_problem(exc, source, text) from None
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise _yaml_problem(exc, source, text) from None
        except RecursionError:
            raise ConfigError([f"{source}: nesting too deep"]) from None
        where: dict[Path_, str] = {}
        counter = [0]

        def count(node: yaml.Node) -> None:
            counter[0] += 1
            if counter[0] > MAX_NODES:
                raise ConfigError([f"{source}: document too large or too many aliases (over {MAX_NODES} nodes)"])

        def line(node: yaml.Node) -> str:
            return f"{source}:{node.start_mark.line + 1}"

        def construct(node: yaml.Node, path: Path_) -> Any:
            value = _construct(node, path)
            if isinstance(value, str) and _SURROGATE.search(value):  # "\udc80": no file can hold it
                shown = value.encode("utf-8", "backslashreplace").decode()
                raise ConfigError([f"{line(node)}: {_fmt_path(path)}: value '{shown}': a lone surrogate escape is "
                                   "not a character (allowed: text in UTF-8)"])
            return value

        def _construct(node: yaml.Node, path: Path_) -> Any:
            try:
                return loader.construct_object(node, deep=True)
            except yaml.YAMLError:
                raise
            except _CONSTRUCT_ERRORS as exc:
                tag = node.tag.rsplit(":", 1)[-1] if node.tag.startswith("tag:yaml.org,2002:") else node.tag
                value = node.value if isinstance(node, yaml.ScalarNode) else "..."
                shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
                reason = str(exc).splitlines()[0] if isinstance(exc, ValueError) and str(exc) else ""
                raise ConfigError(
                    [f"{line(node)}: {_fmt_path(path)}: value {shown}: not a valid {tag}"
                     f"{f' ({reason})' if reason else ''}; quote it if it is meant as text"]
                ) from None

        def key_of(knode: yaml.Node, path: Path_) -> str:
            if not isinstance(knode, yaml.ScalarNode):
                raise ConfigError([f"{line(knode)}: {_fmt_path(path)}: keys must be plain names"])
            key = construct(knode, path)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise ConfigError([f"{line(knode)}: {_fmt_path(path)}: key {key!r} is not a name"])
            return str(key)

        def merged_pairs(node: yaml.Node, path: Path_, stack: frozenset) -> dict[str, tuple]:
            """YAML merge (``<<``): the pairs a mapping contributes to one that merges it, first wins."""
            if not isinstance(node, yaml.MappingNode):
                raise ConfigError([f"{line(node)}: {_fmt_path(path)}: '<<' merges a mapping or a list of mappings"])
            if id(node) in stack or len(stack) > MAX_DEPTH:
                raise ConfigError([f"{line(node)}: {_fmt_path(path)}: nesting too deep or recursive alias"])
            explicit, merges = own_pairs(node, path, stack | {id(node)})
            out = dict(explicit)
            for src in merges:
                for k, kv in src.items():
                    out.setdefault(k, kv)
            return out

        def own_pairs(node: yaml.MappingNode, path: Path_, stack: frozenset) -> tuple[dict[str, tuple], list[dict]]:
            explicit: dict[str, tuple] = {}
            merges: list[dict] = []
            for knode, vnode in node.value:
                count(knode)
                if knode.tag == _MERGE_TAG:
                    subs = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
                    for sub in subs:  # earlier mappings in a merge list win
                        merges.append(merged_pairs(sub, path, stack))
                    continue
                key = key_of(knode, path)
                if key in explicit:
                    raise ConfigError([f"{line(knode)}: {_fmt_path(path + (key,))}: key given twice"])
                explicit[key] = (knode, vnode)
            return explicit, merges

        def build(node: yaml.Node, path: Path_, stack: frozenset) -> Any:
            count(node)
            if len(path) > MAX_DEPTH or id(node) in stack:
                raise ConfigError([f"{line(node)}: {_fmt_path(path)}: nesting too deep or recursive alias"])
            where.setdefault(path, line(node))
            if isinstance(node, yaml.MappingNode):
                inner = stack | {id(node)}
                explicit, merges = own_pairs(node, path, inner)
                pairs = dict(explicit)  # explicit keys win over merged ones (YAML merge semantics)
                for src in merges:
                    for k, kv in src.items():
                        pairs.setdefault(k, kv)
                out: dict[Any, Any] = {}
                for key, (knode, vnode) in pairs.items():
                    where[path + (key,)] = line(knode)
                    out[key] = build(vnode, path + (key,), inner)
                return out
            if isinstance(node, yaml.SequenceNode):
                return [build(v, path + (i,), stack | {id(node)}) for i, v in enumerate(node.value)]
            return construct(node, path)

        try:
            data = None if root is None else build(root, (), frozenset())
        except yaml.YAMLError as exc:
            raise _yaml_problem(exc, source, text) from None
        except RecursionError:
            raise ConfigError([f"{source}: nesting too deep"]) from None
        return Located(data, where)
    finally:
        loader.dispose()


def read_yaml(path: Path) -> Located:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    return parse_yaml(text, str(path))


# ----------------------------------------------------------------------------- merging
def _merge(base: Located, over: Located) -> None:
    """Deep-merge ``over`` into ``base``: mappings merge, everything else replaces."""

    def rec(b: Any, o: Any) -> Any:
        if isinstance(b, dict) and isinstance(o, dict):
            for k, v in o.items():
                b[k] = rec(b[k], v) if k in b else copy.deepcopy(v)
            return b
        return copy.deepcopy(o)

    base.data = rec(base.data, over.data)
    base.where.update(over.where)


def _merge_at(doc: Located, path: Path_, over: Located) -> None:
    """Merge ``over`` (a profile section) *under* the values already at ``path`` in ``doc``."""
    node = doc.data
    for p in path[:-1]:
        node = node[p]
    if isinstance(node, dict):
        mine = node.get(path[-1])
    elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
        mine = node[path[-1]]  # a list item (a trunk) takes its profile under its own keys
    else:
        mine = None
    merged = copy.deepcopy(over.data) if isinstance(over.data, dict) else {}
    if isinstance(mine, dict):
        stack = [(merged, mine)]
        while stack:
            b, o = stack.pop()
            for k, v in o.items():
                if isinstance(v, dict) and isinstance(b.get(k), dict):
                    stack.append((b[k], v))
                else:
                    b[k] = copy.deepcopy(v)
    node[path[-1]] = merged
    for p, w in over.where.items():
        doc.where.setdefault(path + p, w)


_PROFILE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KIND_WORD = {"phones": "phone", "registrars": "registrar", "ha": "HA", "trunks": "trunk", "sbcs": "SBC"}


def _load_profile(kind: str, name: Any, section: str, at: str, path: Path_ = ()) -> Located:
    where = f"{at}: {_fmt_path(path)}" if path else at
    if not isinstance(name, str) or not _PROFILE_NAME.fullmatch(name) or name.startswith("."):
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise ConfigError(
            [f"{where}: profile must be a profile name from models/{kind}/ (letters, digits, '_', '.', '-'; "
             f"at most 64), got {shown}"]
        )
    path_ = models_dir() / kind / f"{name}.yaml"
    try:
        found = path_.is_file()
        have = [] if found else sorted(p.stem for p in (models_dir() / kind).glob("*.yaml"))
    except OSError as exc:
        raise ConfigError([f"{where}: cannot look up {_KIND_WORD.get(kind, kind)} profile {name!r}: {exc}"]) from None
    if not found:
        raise ConfigError(
            [f"{where}: unknown {_KIND_WORD.get(kind, kind)} profile {name!r} (available: {', '.join(have) or 'none'})"]
        )
    doc = read_yaml(path_)
    if not isinstance(doc.data, dict) or not isinstance(doc.data.get(section), dict):
        raise ConfigError([f"{path_}: a {_KIND_WORD.get(kind, kind)} profile needs a '{section}:' mapping"])
    sub = {p[1:]: w for p, w in doc.where.items() if p[:1] == (section,)}
    return Located(doc.data[section], sub)


def _resolve_extends(doc: Located, source: Path, depth: int = 0) -> Located:
    if not isinstance(doc.data, dict) or "extends" not in doc.data:
        return doc
    if depth > 8:
        raise ConfigError([f"{source}: 'extends' nests too deep"])
    name = doc.data.pop("extends")
    at = doc.where.get(("extends",), str(source))
    if not isinstance(name, str) or not name:
        raise ConfigError([f"{at}: extends: must name a deployment in models/deployments or a YAML path, got {name!r}"])
    cand = [source.parent / name, models_dir() / "deployments" / f"{name}.yaml", models_dir() / "deployments" / name]
    try:
        base_path = next((c for c in cand if c.is_file()), None)
        have = [] if base_path else sorted(p.stem for p in (models_dir() / "deployments").glob("*.yaml"))
    except OSError as exc:  # e.g. a name longer than the file-name limit
        raise ConfigError([f"{at}: extends: cannot look up {name[:80]!r}: {exc.strerror or exc}"]) from None
    if base_path is None:
        raise ConfigError([f"{at}: extends: {name!r} not found (deployments: {', '.join(have) or 'none'})"])
    base = _resolve_extends(read_yaml(base_path), base_path, depth + 1)
    if not isinstance(base.data, dict):
        raise ConfigError([f"{base_path}: a deployment must be a mapping"])
    _merge(base, doc)
    return base


def _apply_profiles(doc: Located) -> None:
    d = doc.data
    fleets = d.get("fleets")
    if isinstance(fleets, list):
        for i, fl in enumerate(fleets):
            if isinstance(fl, dict) and fl.get("profile") is not None:
                if fl.get("phone") is not None and not isinstance(fl["phone"], dict):
                    continue  # 'phone: false' / a list / a string: left for validation to report, never replaced
                at = ("fleets", i, "profile")
                prof = _load_profile("phones", fl["profile"], "phone", doc.where.get(at, "fleets"), at)
                _merge_at(doc, ("fleets", i, "phone"), prof)
    trunks = d.get("trunks")
    if isinstance(trunks, list):
        for i, tr in enumerate(trunks):
            if isinstance(tr, dict) and tr.get("profile") is not None:
                at = ("trunks", i, "profile")
                prof = _load_profile("trunks", tr["profile"], "trunk", doc.where.get(at, "trunks"), at)
                _merge_at(doc, ("trunks", i), prof)
    for key, kind in (("registrar", "registrars"), ("ha", "ha"), ("database", "databases"), ("sbc", "sbcs")):
        sec = d.get(key)
        if isinstance(sec, dict) and sec.get("profile") is not None:
            # (a section that is not a mapping is left for validation to report)
            prof = _load_profile(kind, sec["profile"], key, doc.where.get((key, "profile"), key), (key, "profile"))
            _merge_at(doc, (key,), prof)


def _apply_set(doc: Located, assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError([f"--set {assignment!r}: expected path.to.key=value"])
    key, _, raw = assignment.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError([f"--set {assignment!r}: empty key path"])
    src = f"--set {key.strip()}"
    try:
        value = parse_yaml(raw, src).data if raw.strip() else ""
    except _YamlSyntaxError:  # not YAML: take the text as it is
        value = raw
    except ConfigError as exc:  # YAML, but a value PyYAML cannot construct (e.g. 2001-13-45)
        raise ConfigError([p.replace(f"{src}:1: (top level): ", f"{src}: ") for p in exc.problems]) from None
    node = doc.data
    path: list[Any] = []
    for j, p in enumerate(parts):
        last = j == len(parts) - 1
        if isinstance(node, list):
            idx = None
            if p.lstrip("-").isdigit():
                idx = int(p)
            else:  # fleets.<name>
                idx = next((k for k, it in enumerate(node) if isinstance(it, dict) and it.get("name") == p), None)
            if idx is None or not -len(node) <= idx < len(node):
                raise ConfigError([f"--set {key}: no item {p!r} in {_fmt_path(tuple(path)) or 'list'}"])
            idx %= len(node)
            path.append(idx)
            if last:
                node[idx] = value
            else:
                node = node[idx]
        elif isinstance(node, dict):
            path.append(p)
            if last:
                node[p] = value
            else:
                node = node.setdefault(p, {})
        else:
            raise ConfigError([f"--set {key}: {_fmt_path(tuple(path))} is not a mapping or list"])
    doc.where[tuple(path)] = f"--set {key}"


# ----------------------------------------------------------------------------- validation
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
_BOUND_WORDS = (
    ("ge", "greater than or equal to"), ("gt", "greater than"), ("le", "less than or equal to"), ("lt", "less than")
)


def _quantity(loc: Path_) -> str | None:
    """'duration' or 'rate' when the schema field at ``loc`` is one, else None."""
    fld, _ = field_at(Scenario, loc)
    if fld is None:
        return None
    return quantity_kind(fld.annotation, fld.metadata)


def _bound(v: Any, kind: str | None) -> str:
    from simsip.units import format_duration, format_rate

    if kind and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return format_duration(float(v)) if kind == "duration" else format_rate(float(v))
    return str(v)


def _allowed(err: dict, kind: str | None = None) -> str:
    ctx = err.get("ctx") or {}
    t = err.get("type", "")
    if t == "literal_error" and "expected" in ctx:
        return f" (allowed: {ctx['expected']})"
    for k, word in _BOUNDS:
        if k in ctx:
            return f" (allowed: {word} {_bound(ctx[k], kind)})"
    return ""


_MISSING = object()


def _written(doc: Located, loc: Path_) -> Any:
    """The value at ``loc`` in the merged document, as the user wrote it (or _MISSING)."""
    node = doc.data
    for p in loc:
        if isinstance(node, dict) and p in node:
            node = node[p]
        elif isinstance(node, list) and isinstance(p, int) and -len(node) <= p < len(node):
            node = node[p]
        else:
            return _MISSING
    return node


def _known_keys(path: Path_) -> str:
    """The keys allowed at a path of the schema, for 'unknown key' messages."""
    if any(not isinstance(p, int) for p in path):
        fld, _ = field_at(Scenario, path)
        model = model_of(fld.annotation) if fld is not None else None
    else:
        model = Scenario
    names = sorted(getattr(model, "model_fields", {}))
    return f" (allowed: {', '.join(names)})" if names else ""


def format_validation(exc: ValidationError, doc: Located, default_source: str) -> list[str]:
    errors = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tagged-union"))))
        ctx = err.get("ctx") or {}
        if err.get("type") == "located" and isinstance(ctx.get("at"), (tuple, list)):
            # a model validator's error about one of the model's fields (see schema._located)
            loc = loc + tuple(ctx["at"])
            err = {**err, "msg": ctx.get("problem", err.get("msg")), "input": _written(doc, loc)}
        errors.append((loc, err))
    problems = []
    for loc, err in errors:
        if err.get("type") == "too_short" and any(len(o) > len(loc) and o[: len(loc)] == loc for o, _ in errors):
            # a collection is 'too short' only because an item in it failed: that item's error says it all
            given = err.get("input")
            if isinstance(given, (list, tuple)) and len(given) >= (err.get("ctx") or {}).get("min_length", 0):
                continue
        # pydantic puts model-level validator errors at the model's path
        where = None
        for n in range(len(loc), -1, -1):
            where = doc.where.get(loc[:n])
            if where:
                break
        where = where or default_source
        msg = err.get("msg", "invalid")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err.get("type") == "extra_forbidden":
            problems.append(f"{where}: {_fmt_path(loc)}: unknown key {loc[-1]!r}{_known_keys(loc[:-1])}")
            continue
        if err.get("type") == "missing":
            problems.append(f"{where}: {_fmt_path(loc)}: required key is missing")
            continue
        value = err.get("input")
        kind = None
        if any(k in (err.get("ctx") or {}) for k, _ in _BOUNDS):
            # a range error on a duration or rate: show it as written, with its unit
            kind = _quantity(loc)
            written = _written(doc, loc)
            if written is _MISSING and loc:  # a shorthand such as 'delay: -1s' for {mean: -1s}
                written = _written(doc, loc[:-1])
            if kind and isinstance(written, (str, int, float)) and not isinstance(written, bool):
                value = written
                ctx = err.get("ctx") or {}
                msg = next(
                    f"Input should be {words} {_bound(ctx[k], kind)}" for k, words in _BOUND_WORDS if k in ctx
                )
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        problems.append(f"{where}: {_fmt_path(loc)}: value {shown}: {msg}{_allowed(err, kind)}")
    return problems


def validate(doc: Located, source: str) -> Scenario:
    """The validated scenario; its ``variants:`` are expanded and validated too, exactly as ``run``
    does (so ``check`` finds a bad override)."""
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{source}:1: a scenario must be a mapping of keys (name, duration, fleets, ...)"])
    try:
        scn = Scenario.model_validate(doc.data, context={"strict_units": True})
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, doc, source)) from None
    if scn.variants:
        expand_variants(scn, doc.where)
    return scn


def load_document(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Located:
    """The merged plain document (before validation) of a config file."""
    p = Path(path)
    doc = read_yaml(p)
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{p}:1: a scenario must be a mapping of keys (name, duration, fleets, ...)"])
    doc = _resolve_extends(doc, p)
    for a in overrides:
        _apply_set(doc, a)
    try:
        _apply_profiles(doc)
    except (TypeError, AttributeError, KeyError) as exc:  # malformed structure around a profile key
        raise ConfigError([f"{p}: cannot apply profiles: {exc}"]) from None
    return doc


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Load, merge and validate a scenario file (``--set`` overrides applied last)."""
    doc = load_document(path, overrides)
    return validate(doc, str(path))


def load_config_text(text: str, source: str = "<config>") -> Scenario:
    """Validate a scenario given as YAML text (profiles are looked up as for files)."""
    doc = parse_yaml(text, source)
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{source}:1: a scenario must be a mapping of keys (name, duration, fleets, ...)"])
    try:
        _apply_profiles(doc)
    except (TypeError, AttributeError, KeyError) as exc:
        raise ConfigError([f"{source}: cannot apply profiles: {exc}"]) from None
    return validate(doc, source)


def resolved_yaml(scn: Scenario) -> str:
    """The resolved config: every default filled in, units normalised."""
    return yaml.safe_dump(scn.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _schema_for_editors(schema: dict) -> None:
    """Make the duration/rate properties valid JSON Schema that agrees with the loader.

    pydantic writes a numeric default (3600.0) and keeps range constraints it cannot map onto a
    string ('gt': 0) as unknown keywords. Defaults become unit strings ('1h'); the bounds move
    into the description ('Must be > 0s.').
    """
    from simsip.config.types import DURATION_PATTERN, RATE_PATTERN
    from simsip.units import format_duration, format_rate

    def kind_of(branch: Any) -> str | None:
        if isinstance(branch, dict) and branch.get("type") == "string":
            return {DURATION_PATTERN: "duration", RATE_PATTERN: "rate"}.get(branch.get("pattern"))
        return None

    def fix(prop: dict) -> None:
        for branch in prop.get("anyOf", [prop]):
            kind = kind_of(branch)
            if kind is None:
                continue
            bounds = [f"{word} {_bound(branch.pop(k), kind)}" for k, word in _BOUNDS if k in branch]
            if bounds:
                prop["description"] = (prop.get("description", "").rstrip() + f" Must be {' and '.join(bounds)}.").lstrip()
            d = prop.get("default")
            if isinstance(d, (int, float)) and not isinstance(d, bool):
                prop["default"] = format_duration(float(d)) if kind == "duration" else format_rate(float(d))

    for model in [schema, *schema.get("$defs", {}).values()]:
        for prop in model.get("properties", {}).values():
            fix(prop)


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of scenario files, for editor completion (``simsip schema``)."""
    schema = Scenario.model_json_schema()
    _schema_for_editors(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "simsip scenario"
    return schema


def expand_variants(scn: Scenario, where: dict | None = None) -> list[tuple[str, Scenario]]:
    """The scenarios a ``variants:`` section describes: each is the base with its overrides merged.

    A ``profile:`` named in an override (a fleet's, the registrar's, the HA stack's, the
    database's) is applied under that override, as in the base document. Without variants, the
    scenario itself (named by the scenario). Errors name the variant, and the file and line when
    ``where`` (the document's key locations) is given.
    """
    if not scn.variants:
        return [(scn.name, scn)]
    base = scn.model_dump(mode="json")
    base.pop("variants", None)
    out = []
    where = where or {}
    for i, v in enumerate(scn.variants):
        doc = Located(copy.deepcopy(base), {})
        at = ("variants", i, "overrides")
        vwhere = where.get(at) or where.get(("variants", i)) or where.get(("variants",)) or f"variants[{i}].overrides"
        located = {p[len(at):]: w for p, w in where.items() if p[:len(at)] == at}
        over = Located(copy.deepcopy(v.overrides), {(): vwhere, **located})
        label = f"variants[{i}] ({v.name})"

        def named(problems: list[str], default: str = vwhere) -> list[str]:
            # 'file:line: variants[i] (name): key: problem' — the location first, as everywhere
            out_ = []
            for p in problems:
                loc, sep, rest = p.partition(": ")
                out_.append(f"{loc}: {label}: {rest}" if sep and ":" in loc else f"{default}: {label}: {p}")
            return out_

        try:
            _apply_profiles(over)
        except ConfigError as exc:
            raise ConfigError(named(exc.problems)) from None
        except (TypeError, AttributeError, KeyError) as exc:
            raise ConfigError(named([f"cannot apply profiles: {exc}"])) from None
        _merge(doc, over)
        doc.data["name"] = f"{scn.name}/{v.name}"
        if v.description:
            doc.data["description"] = v.description
        try:
            vs = Scenario.model_validate(doc.data, context={"strict_units": True})
        except ValidationError as exc:
            raise ConfigError(named(format_validation(exc, doc, vwhere))) from None
        out.append((v.name, vs))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ConfigError([f"{where.get(('variants',)) or 'variants'}: variants: names must be unique, got {names}"])
    return out
