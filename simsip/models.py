"""The model library: real products' defaults as profiles a scenario starts from.

A phone's registration behaviour (requested expiry, when it refreshes, how it retransmits and
retries), a registrar's (expiry clamps, grace after expiry, purge timer, where bindings live) and
keepalived's timers decide how much registration a failover loses. ``models/`` holds them per
product: ``phones/``, ``registrars/``, ``ha/``, ``databases/``, ``trunks/`` (the PBX's registration to
its provider), ``sbcs/`` (a registration-caching SBC) (each a YAML file with its section — ``phone:``,
``registrar:``, ``ha:``, ``database:``, ``trunk:`` or ``sbc:`` — and a ``sources:`` mapping that cites, for
every value, where it was read or says that it is an assumption), and ``deployments/``: complete
small scenarios to start from with ``extends: <name>``.

Look-ups (the Python twins of ``simsip models list`` and ``simsip models show NAME``)::

    >>> from simsip import models
    >>> [(p.kind, p.name, p.use_as) for p in models.profiles()]      # what is there
    >>> for v in models.profile_values("phones/yealink"):             # every value of one profile
    ...     print(v.path, v.text, v.meaning, v.source, v.default)

Fields a profile leaves out take the schema default; :func:`profile_values` lists them too, marked
``default=True``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from simsip.config.loader import models_dir
from simsip.config.types import field_at, model_of

#: library folder → section key in the file ("" for deployments: the whole file is a scenario)
KINDS: dict[str, str] = {"phones": "phone", "registrars": "registrar", "ha": "ha", "databases": "database",
                         "trunks": "trunk", "sbcs": "sbc", "deployments": ""}

#: library folder → how a scenario refers to a profile of that kind
USE_AS: dict[str, str] = {"phones": "fleets[].profile: {n}", "registrars": "registrar.profile: {n}",
                          "ha": "ha.profile: {n}", "databases": "database.profile: {n}", "trunks": "trunks[].profile: {n}",
                          "sbcs": "sbc.profile: {n}", "deployments": "extends: {n}"}


def section_model(kind: str) -> Any:
    """The schema model a profile of ``kind`` fills in (``Scenario`` for deployments)."""
    from simsip.config import schema

    return {"phones": schema.PhoneProfile, "registrars": schema.Registrar, "ha": schema.Ha, "databases": schema.Database,
            "trunks": schema.Trunk, "sbcs": schema.Sbc, "deployments": schema.Scenario}[kind]


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

    @property
    def use_as(self) -> str:
        """How a scenario uses this profile, e.g. ``fleets[].profile: yealink``."""
        return USE_AS[self.kind].format(n=self.name)


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
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        sub = model_of(info.annotation)
        origin = typing.get_origin(info.annotation)
        if sub is not None and origin not in (tuple, list) and sub.__name__ != "Dist":
            yield from _schema_leaves(sub, path)
        else:
            yield path


def format_value(v: Any) -> str:
    """A profile value on one line: mappings as ``k: v, ...``, lists as ``a; b``, None as ``null``."""
    if isinstance(v, dict):
        return ", ".join(f"{k}: {format_value(x)}" for k, x in v.items())
    if isinstance(v, list):
        return "; ".join(format_value(x) for x in v)
    if v is None:
        return "null"
    return str(v)


@dataclass(frozen=True)
class ProfileValue:
    """One value of a profile: what it is, what it means (the schema's field description) and
    where it comes from."""

    path: str  # dotted key inside the profile's section, e.g. ``refresh.margin``
    value: Any  # as written in the profile; the schema default when ``default``
    text: str  # the value on one line (defaults as written in YAML, with units)
    meaning: str  # the schema field's description ("(not a schema field)" if the key is unknown)
    source: str | None  # the profile's citation (None: none given, or a default / a deployment)
    default: bool = False  # not set by the profile: the schema default applies

    @property
    def assumption(self) -> bool:
        """The profile's source says no vendor documents this value (``assumption``, ``NOT FOUND``)."""
        return is_assumption(self.source)


def is_assumption(source: str | None) -> bool:
    """Does a ``sources:`` entry mark its value as an assumption (no vendor documents it)?"""
    if not source:
        return False
    s = source.lower()
    return s.startswith("not found") or s.startswith("assumption") or "assumption:" in s or "assumed" in s


def profile_values(profile: str | Profile, defaults: bool = True) -> list[ProfileValue]:
    """Every value of a profile (``name`` or ``kind/name``) with meaning and source, in file order;
    then, with ``defaults``, the schema fields it leaves out. Raises ``KeyError`` for an unknown name
    (the message lists what exists)."""
    from pydantic_core import PydanticUndefined

    from simsip.docs import format_default

    p = find_profile(profile) if isinstance(profile, str) else profile
    model = section_model(p.kind)
    out = []
    given = dict(leaves(p.section))
    for path, value in given.items():
        info, _ = field_info(model, path)
        if info is None and "." in path:  # a distribution's sub-key: describe the distribution
            info, _ = field_info(model, path.rsplit(".", 1)[0])
        meaning = (info.description or "") if info is not None else "(not a schema field)"
        out.append(ProfileValue(path, value, format_value(value), meaning, source_of(path, p.sources)))
    if defaults and p.kind != "deployments":
        for path in _schema_leaves(model):
            if path in given or any(g.startswith(path + ".") for g in given) or any(path.startswith(g + ".") for g in given):
                continue
            info, _ = field_info(model, path)
            value = info.default_factory() if info.default_factory is not None else info.default
            value = None if value is PydanticUndefined else value  # a required field has no default
            out.append(ProfileValue(path, value, format_default(info), info.description or "", None, default=True))
    return out


@dataclass(frozen=True)
class Assumption:
    """A profile value no vendor documents, and how a scenario reaches it to sweep it."""

    profile: str  # kind/name
    value: ProfileValue
    sweep_path: str  # e.g. ``fleets.0.phone.refresh.percent`` (a fleet using the profile)


#: How a sweep or ``--set`` reaches a profile's section in a scenario (first fleet / trunk).
_SWEEP_PREFIX = {"phones": "fleets.0.phone.", "registrars": "registrar.", "ha": "ha.", "databases": "database.",
                 "trunks": "trunks.0.", "sbcs": "sbc."}


def assumptions(kind: str | None = None, key: str | None = None) -> list[Assumption]:
    """Every profile value whose source marks it as an assumption (``simsip models assumptions``),
    optionally of one kind (``phones``) and under one key (``refresh``: ``refresh.mode``,
    ``refresh.percent``, ...). ``examples/sweeps/assumed-refresh-point.yaml`` sweeps the phones'
    assumed refresh point in one command."""
    out = []
    for p in profiles(kind):
        if p.kind == "deployments":
            continue
        for v in profile_values(p, defaults=False):
            if v.assumption and (key is None or v.path == key or v.path.startswith(key + ".")):
                out.append(Assumption(f"{p.kind}/{p.name}", v, _SWEEP_PREFIX[p.kind] + v.path))
    return out


__all__ = ["KINDS", "USE_AS", "Profile", "ProfileValue", "Assumption", "profiles", "find_profile", "profile_values",
           "assumptions", "is_assumption", "leaves", "source_of", "field_info", "format_value", "section_model"]
