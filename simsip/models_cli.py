"""The model library: real products' defaults as profiles a scenario starts from.

A phone's registration behaviour (requested expiry, when it refreshes, how it retransmits and
retries), a registrar's (expiry clamps, grace after expiry, purge timer, where bindings live) and
keepalived's timers decide how much registration a failover loses. ``models/`` holds them per
product: ``phones/``, ``registrars/``, ``ha/`` (each a YAML file with its section — ``phone:``,
``registrar:`` or ``ha:`` — and a ``sources:`` mapping that cites, for every value, where it was
read or says that it is an assumption), and ``deployments/``: complete small scenarios to start
from with ``extends: <name>``.

``simsip models list`` prints what is there; ``simsip models show NAME`` prints every value of a
profile with its meaning (the schema's field description) and its source. Fields a profile leaves
out take the schema default, shown as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simsip.config.loader import models_dir
from simsip.config.types import field_at, model_of

#: library folder → (section key in the file, schema model of that section)
KINDS: dict[str, str] = {"phones": "phone", "registrars": "registrar", "ha": "ha", "databases": "database", "deployments": ""}


def _section_model(kind: str) -> Any:
    from simsip.config import schema

    return {"phones": schema.PhoneProfile, "registrars": schema.Registrar, "ha": schema.Ha, "databases": schema.Database,
            "deployments": schema.Scenario}[kind]


@dataclass
class Profile:
    """One file of the library."""

    kind: str
    name: str
    path: Path
    data: dict

    @property
    def section(self) -> dict:
        key = KINDS[self.kind]
        sec = self.data.get(key) if key else self.data
        return sec if isinstance(sec, dict) else {}

    @property
    def sources(self) -> dict:
        s = self.data.get("sources") if self.kind != "deployments" else None
        return s if isinstance(s, dict) else {}

    @property
    def summary(self) -> str:
        sec = self.section
        if self.kind == "phones" and sec.get("description"):
            return str(sec["description"])
        if self.kind == "deployments" and self.data.get("description"):
            return str(self.data["description"])
        for line in self.path.read_text(encoding="utf-8").splitlines():  # the file's first comment
            if line.startswith("#"):
                return line.lstrip("# ").strip()
        return ""


def profiles(kind: str | None = None) -> list[Profile]:
    """Every profile of the library (of one kind), sorted by kind then name."""
    out = []
    for k in KINDS:
        if kind is not None and k != kind:
            continue
        for p in sorted((models_dir() / k).glob("*.yaml")):
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
            out.append(Profile(k, p.stem, p, data if isinstance(data, dict) else {}))
    return out


def find_profile(name: str) -> Profile:
    """A profile by ``name`` or ``kind/name``; raises ``KeyError`` naming what exists."""
    kind, _, base = name.rpartition("/")
    found = [p for p in profiles(kind or None) if p.name == base.removesuffix(".yaml")]
    if not found:
        have = ", ".join(f"{p.kind}/{p.name}" for p in profiles())
        raise KeyError(f"no model {name!r} (available: {have})")
    return found[0]


def leaves(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every leaf of a mapping; lists and non-mappings are leaves."""
    if isinstance(data, dict) and data:
        for k, v in data.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, data


def source_of(path: str, sources: dict) -> str | None:
    """The source covering ``path``: its own entry, else the nearest ancestor's (``service_time``
    covers ``service_time.mean``)."""
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in sources:
            return str(sources[key])
    return None


def field_info(model: Any, path: str) -> tuple[Any, Any]:
    """(pydantic FieldInfo, owning model) of a dotted path under ``model``, or (None, None)."""
    return field_at(model, path.split("."))


def _schema_leaves(model: Any, prefix: str = "") -> Iterator[str]:
    import typing

    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        sub = model_of(info.annotation)
        origin = typing.get_origin(info.annotation)
        if sub is not None and origin not in (tuple, list) and sub.__name__ != "Dist":
            yield from _schema_leaves(sub, path)
        else:
            yield path


def _show(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_show(x)}" for k, x in v.items())
    if isinstance(v, list):
        return "; ".join(_show(x) for x in v)
    if v is None:
        return "null"
    return str(v)


def models_list(console: Console | None = None) -> None:
    """Print the library: kind, name, what it is (``simsip models list``)."""
    console = console or Console()
    table = Table(title=f"simsip model library ({models_dir()})", show_lines=False)
    table.add_column("kind")
    table.add_column("name", style="bold")
    table.add_column("what it is")
    table.add_column("use as")
    use = {"phones": "fleets[].profile: {n}", "registrars": "registrar.profile: {n}", "ha": "ha.profile: {n}",
           "databases": "database.profile: {n}",
           "deployments": "extends: {n}"}
    for p in profiles():
        table.add_row(p.kind, escape(p.name), escape(p.summary), escape(use[p.kind].format(n=p.name)))
    console.print(table)


def models_show(name: str, console: Console | None = None, defaults: bool = True) -> None:
    """Print one profile's values with their meaning and source (``simsip models show NAME``).

    Raises ``KeyError`` for an unknown name (the message lists what exists).
    """
    console = console or Console()
    p = find_profile(name)
    model = _section_model(p.kind)
    table = Table(title=f"{p.kind}/{p.name} — {p.summary}", show_lines=True)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value")
    table.add_column("meaning")
    table.add_column("source" if p.kind != "deployments" else "")
    given = dict(leaves(p.section))
    for path, value in given.items():
        info, _ = field_info(model, path)
        if info is None and "." in path:  # a distribution's sub-key: describe the distribution
            info, _ = field_info(model, path.rsplit(".", 1)[0])
        meaning = (info.description or "") if info is not None else "(not a schema field)"
        src = source_of(path, p.sources) or ("" if p.kind == "deployments" else "[red]no source[/]")
        table.add_row(escape(path), escape(_show(value)), escape(meaning), src if src.startswith("[red]") else escape(src))
    if defaults and p.kind != "deployments":
        for path in _schema_leaves(model):
            if path in given or any(g.startswith(path + ".") for g in given) or any(path.startswith(g + ".") for g in given):
                continue
            info, _ = field_info(model, path)
            default = _default(info)
            table.add_row(f"[dim]{escape(path)}[/]", f"[dim]{escape(default)}[/]", f"[dim]{escape(info.description or '')}[/]",
                          "[dim]schema default (not set by this profile)[/]")
    console.print(table)
    console.print(f"file: {p.path}")


def _default(info: Any) -> str:
    from simsip.docs import format_default

    return format_default(info)


__all__ = ["Profile", "profiles", "find_profile", "leaves", "source_of", "field_info", "models_list", "models_show"]
