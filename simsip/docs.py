"""Generated documentation: the config reference, built from the schema so it cannot drift.

A scenario is a tree — phone fleets, the registrar on every node, the keepalived pair that owns the
VIP, the network, the faults, the output — and every parameter in it has a type, a default (with its
unit), an allowed range and one line of help, all declared once in :mod:`simsip.config.schema`.
:func:`config_reference` renders that as Markdown; ``docs/config-reference.md`` is its output and a
test checks the committed file is identical. Regenerate after changing the schema with::

    python -m simsip.docs --write
"""

from __future__ import annotations

import inspect
import math
import sys
import typing
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from simsip.config.types import model_of, quantity_kind
from simsip.units import format_duration, format_rate

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "config-reference.md"


def _type_name(info: Any) -> str:
    ann = info.annotation
    kind = _kind(info)
    optional = type(None) in typing.get_args(ann)
    origin = typing.get_origin(ann)
    if kind:
        name = kind
    elif origin is typing.Literal:
        name = " | ".join(f"`{a}`" for a in typing.get_args(ann))
    elif origin in (tuple, list):
        sub = model_of(ann)
        name = f"list of {sub.__name__}" if sub else "list"
    else:
        sub = model_of(ann)
        if sub is not None:
            name = "distribution" if sub.__name__ == "Dist" else f"{sub.__name__} (mapping)"
        else:
            base = [a for a in (typing.get_args(ann) or (ann,)) if a is not type(None)]
            b = base[0] if base else ann
            if typing.get_origin(b) is typing.Literal:
                name = " | ".join(f"`{a}`" for a in typing.get_args(b))
            else:
                name = getattr(b, "__name__", str(b)).replace("NoneType", "null")
    return f"{name} or null" if optional and "null" not in name else name


def _kind(info: Any) -> str | None:
    return quantity_kind(info.annotation, info.metadata)


def _fmt_value(v: Any, kind: str | None) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if kind == "duration" and isinstance(v, (int, float)):
        return format_duration(float(v)) if math.isfinite(v) else "inf"
    if kind == "rate" and isinstance(v, (int, float)):
        return format_rate(float(v))
    if isinstance(v, BaseModel):
        if type(v).__name__ == "Dist":
            d = v.model_dump(mode="json")
            extra = ", ".join(f"{k} {d[k]}" for k in ("sd", "low", "high") if d.get(k) not in ("0s", 0, None))
            return f"{d['dist']} {d['mean']}" + (f" ({extra})" if extra else "")
        return "(mapping, see below)"
    if isinstance(v, (tuple, list)):
        if v and isinstance(v[0], BaseModel):
            return "; ".join(", ".join(f"{k}: {x}" for k, x in item.model_dump(mode="json").items()) for item in v)
        return "[" + ", ".join(str(x) for x in v) + "]" if v else "[]"
    if isinstance(v, str):
        return f'"{v}"' if v == "" else v
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def format_default(info: Any) -> str:
    """A field's default as written in YAML (durations and rates with units); 'required' if none."""
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    return _fmt_value(value, _kind(info))


def format_range(info: Any) -> str:
    kind = _kind(info)
    parts = []
    for meta in info.metadata:
        for attr, word in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if hasattr(meta, attr) and getattr(meta, attr) is not None:
                parts.append(f"{word} {_fmt_value(getattr(meta, attr), kind)}")
        if hasattr(meta, "min_length") and getattr(meta, "min_length") is not None:
            parts.append(f"at least {meta.min_length} item(s)" if model_of(info.annotation) else f"length ≥ {meta.min_length}")
        if hasattr(meta, "max_length") and getattr(meta, "max_length") is not None:
            parts.append(f"at most {meta.max_length}" + (" items" if model_of(info.annotation) else " chars"))
        if getattr(meta, "pattern", None):
            parts.append(f"pattern `{meta.pattern}`")
    return ", ".join(parts)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _doc(model: type[BaseModel]) -> str:
    doc = inspect.getdoc(model) or ""
    if model.__doc__ is None or doc == inspect.getdoc(BaseModel) or doc.startswith("Base of every config node"):
        return ""
    return doc


def _sections(model: type[BaseModel], path: str, seen: set) -> Iterator[tuple[str, type[BaseModel]]]:
    yield path, model
    for name, info in model.model_fields.items():
        sub = model_of(info.annotation)
        if sub is None or sub.__name__ == "Dist":
            continue
        list_like = typing.get_origin(info.annotation) in (tuple, list) or any(
            typing.get_origin(a) in (tuple, list) for a in typing.get_args(info.annotation))
        sub_path = f"{path}.{name}" if path else name
        if list_like:
            sub_path += "[]"
        yield from _sections(sub, sub_path, seen)


def _meaning(info: Any) -> str:
    """The field's help; for a nested section without one, the first line of its model's docstring."""
    if info.description:
        return info.description
    sub = model_of(info.annotation)
    doc = _doc(sub) if sub is not None else ""
    return (doc.split("\n\n")[0] + " (section below)") if doc else ""


def config_reference() -> str:
    """The config reference as Markdown, generated from :class:`simsip.config.schema.Scenario`."""
    from simsip.config.schema import Scenario
    from simsip.config.types import Dist

    lines = [
        "# Config reference",
        "",
        "<!-- GENERATED by `python -m simsip.docs --write` from simsip/config/schema.py: do not edit by hand. -->",
        "",
        "Every key of a scenario file, with its type, default, allowed range and meaning. Durations are written",
        "with a unit (`250ms`, `30s`, `5min`, `1h`); rates as `40/s` or `2/h`; a *distribution* is a single",
        "duration (a constant) or a mapping such as `{dist: lognormal, mean: 2ms, sd: 1ms}` (see the last",
        "section). `[]` in a path marks a list item (`fleets[].count` is the `count` of each fleet). Profiles in",
        "`models/` fill the `phone`, `registrar` and `ha` sections before your own values are applied",
        "(`simsip models show NAME` cites each value's source).",
        "",
    ]
    for path, model in list(_sections(Scenario, "", set())) + [("<distribution>", Dist)]:
        title = path or "(top level)"
        lines += [f"## `{title}`", ""]
        doc = _doc(model)
        if doc:
            lines += [doc, ""]
        lines += ["| key | type | default | range | meaning |", "|---|---|---|---|---|"]
        for name, info in model.model_fields.items():
            full = f"{path}.{name}" if path and not path.startswith("<") else name
            lines.append(f"| `{full}` | {_cell(_type_name(info))} | {_cell(format_default(info))} | "
                         f"{_cell(format_range(info))} | {_cell(_meaning(info))} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = config_reference()
    if "--write" in args:
        DOC_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {DOC_PATH}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
