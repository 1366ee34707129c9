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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simsip.config.schema import Scenario

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
    """The model library: $SIMSIP_MODELS, else ``models/`` beside the package."""
    env = os.environ.get("SIMSIP_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models"


# ----------------------------------------------------------------------------- YAML
def _fmt_path(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def parse_yaml(text: str, source: str) -> Located:
    """Parse one YAML document keeping ``file:line`` for every key path."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError([f"{source}{line}: not valid YAML: {problem}"]) from None
        where: dict[Path_, str] = {}
        counter = [0]

        def build(node: yaml.Node, path: Path_, stack: frozenset) -> Any:
            counter[0] += 1
            if counter[0] > MAX_NODES:
                raise ConfigError([f"{source}: document too large or too many aliases (over {MAX_NODES} nodes)"])
            if len(path) > MAX_DEPTH or id(node) in stack:
                raise ConfigError([f"{source}:{node.start_mark.line + 1}: {_fmt_path(path)}: nesting too deep or recursive alias"])
            where.setdefault(path, f"{source}:{node.start_mark.line + 1}")
            if isinstance(node, yaml.MappingNode):
                out: dict[Any, Any] = {}
                loader.flatten_mapping(node)
                for knode, vnode in node.value:
                    if not isinstance(knode, yaml.ScalarNode):
                        raise ConfigError([f"{source}:{knode.start_mark.line + 1}: {_fmt_path(path)}: keys must be plain names"])
                    key = loader.construct_object(knode, deep=True)
                    if not isinstance(key, (str, int, float, bool)) or key is None:
                        raise ConfigError([f"{source}:{knode.start_mark.line + 1}: {_fmt_path(path)}: key {key!r} is not a name"])
                    key = str(key)
                    if key in out:
                        raise ConfigError([f"{source}:{knode.start_mark.line + 1}: {_fmt_path(path + (key,))}: key given twice"])
                    where[path + (key,)] = f"{source}:{knode.start_mark.line + 1}"
                    out[key] = build(vnode, path + (key,), stack | {id(node)})
                return out
            if isinstance(node, yaml.SequenceNode):
                return [build(v, path + (i,), stack | {id(node)}) for i, v in enumerate(node.value)]
            return loader.construct_object(node, deep=True)

        try:
            data = None if root is None else build(root, (), frozenset())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError([f"{source}{line}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
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
    mine = node.get(path[-1]) if isinstance(node, dict) else None
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


def _load_profile(kind: str, name: Any, section: str, at: str) -> Located:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError([f"{at}: profile must be a profile name from models/{kind}/, got {name!r}"])
    path = models_dir() / kind / f"{name}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in (models_dir() / kind).glob("*.yaml"))
        raise ConfigError([f"{at}: unknown {kind[:-1]} profile {name!r} (available: {', '.join(have) or 'none'})"])
    doc = read_yaml(path)
    if not isinstance(doc.data, dict) or not isinstance(doc.data.get(section), dict):
        raise ConfigError([f"{path}: a {kind[:-1]} profile needs a '{section}:' mapping"])
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
    base_path = next((c for c in cand if c.is_file()), None)
    if base_path is None:
        have = sorted(p.stem for p in (models_dir() / "deployments").glob("*.yaml"))
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
                prof = _load_profile("phones", fl["profile"], "phone", doc.where.get(("fleets", i, "profile"), "fleets"))
                _merge_at(doc, ("fleets", i, "phone"), prof)
    for key, kind in (("registrar", "registrars"), ("ha", "ha")):
        sec = d.get(key)
        if isinstance(sec, dict) and sec.get("profile") is not None:
            prof = _load_profile(kind, sec["profile"], key, doc.where.get((key, "profile"), key))
            _merge_at(doc, (key,), prof)


def _apply_set(doc: Located, assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError([f"--set {assignment!r}: expected path.to.key=value"])
    key, _, raw = assignment.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError([f"--set {assignment!r}: empty key path"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
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
def _allowed(err: dict) -> str:
    ctx = err.get("ctx") or {}
    t = err.get("type", "")
    if t == "literal_error" and "expected" in ctx:
        return f" (allowed: {ctx['expected']})"
    for k, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if k in ctx:
            return f" (allowed: {word} {ctx[k]})"
    return ""


def _known_keys(path: Path_) -> str:
    """The keys allowed at a path of the schema, for 'unknown key' messages."""
    model: Any = Scenario
    for p in path:
        if isinstance(p, int):
            continue
        field = getattr(model, "model_fields", {}).get(p)
        if field is None:
            return ""
        ann = field.annotation
        for cand in (ann, *getattr(ann, "__args__", ())):
            if hasattr(cand, "model_fields"):
                model = cand
                break
            for sub in getattr(cand, "__args__", ()):
                if hasattr(sub, "model_fields"):
                    model = sub
                    break
        else:
            pass
    names = sorted(getattr(model, "model_fields", {}))
    return f" (allowed: {', '.join(names)})" if names else ""


def format_validation(exc: ValidationError, doc: Located, default_source: str) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tagged-union"))))
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
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        problems.append(f"{where}: {_fmt_path(loc)}: value {shown}: {msg}{_allowed(err)}")
    return problems


def validate(doc: Located, source: str) -> Scenario:
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{source}:1: a scenario must be a mapping of keys (name, duration, fleets, ...)"])
    try:
        return Scenario.model_validate(doc.data, context={"strict_units": True})
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, doc, source)) from None


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


def json_schema() -> dict:
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "simsip scenario"
    return schema
