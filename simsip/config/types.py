"""Typed fields with units for the config schema.

A duration is written with a unit in YAML and is a float number of seconds once validated; the
resolved config writes it back with a unit. A distribution of durations is either a single
duration (a constant) or a mapping such as ``{dist: lognormal, mean: 2ms, sd: 1ms}``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationInfo, WithJsonSchema, model_validator

from simsip.units import format_duration, format_rate, parse_duration, parse_rate

def _ci(word: str) -> str:
    """A case-insensitive regex for ``word`` without inline flags (JSON Schema uses ECMA-262 regexes)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


_NUM_PATTERN = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_ZERO_PATTERN = r"0|0\.0"
# what simsip.units.parse_duration / parse_rate accept (spaces around, units in any case)
DURATION_PATTERN = (
    r"^\s*(?:" + _NUM_PATTERN + r"\s*(?:" + "|".join(_ci(u) for u in ("us", "ms", "cs", "sec", "s", "min", "m", "h", "d"))
    + ")|" + _ZERO_PATTERN + "|" + "|".join(_ci(w) for w in ("infinite", "inf", "never")) + r")\s*$"
)
RATE_PATTERN = (
    r"^\s*(?:" + _NUM_PATTERN + r"\s*/\s*(?:" + "|".join(_ci(u) for u in ("sec", "s", "min", "m", "h", "d"))
    + ")|" + _ZERO_PATTERN + r")\s*$"
)
_DURATION_SCHEMA = {
    "type": "string",
    "pattern": DURATION_PATTERN,
    "examples": ["250ms", "30s", "5min", "1h"],
}
_RATE_SCHEMA = {"type": "string", "pattern": RATE_PATTERN, "examples": ["40/s", "2/h"]}


def _number_ok(value: Any, info: ValidationInfo) -> bool:
    """Bare numbers are seconds only for Python callers; YAML input must carry units."""
    strict = bool(info.context and info.context.get("strict_units"))
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not strict


def _duration(value: Any, info: ValidationInfo) -> float:
    if _number_ok(value, info):
        if not math.isfinite(value) and not math.isinf(value):
            raise ValueError("duration is not a number")
        return float(value)
    return parse_duration(value)


def _rate(value: Any, info: ValidationInfo) -> float:
    if _number_ok(value, info):
        return float(value)
    return parse_rate(value)


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(_DURATION_SCHEMA),
]
Rate = Annotated[
    float,
    BeforeValidator(_rate),
    PlainSerializer(format_rate, return_type=str, when_used="json"),
    WithJsonSchema(_RATE_SCHEMA),
]


class Frozen(BaseModel):
    """Base of every config node: unknown keys are errors, values are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Dist(Frozen):
    """A distribution of durations (network delay, service time, replication lag)."""

    dist: Literal["constant", "uniform", "exponential", "normal", "lognormal"] = Field(
        "constant", description="Shape of the distribution."
    )
    mean: Duration = Field(0.0, ge=0, description="Mean (the value itself for 'constant').")
    sd: Duration = Field(0.0, ge=0, description="Standard deviation (normal, lognormal).")
    low: Duration = Field(0.0, ge=0, description="Lower bound (uniform).")
    high: Duration = Field(0.0, ge=0, description="Upper bound (uniform).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, (str, int, float)) and not isinstance(data, bool):
            return {"dist": "constant", "mean": data}
        return data

    @model_validator(mode="after")
    def _check(self) -> "Dist":
        if self.dist == "uniform" and self.high < self.low:
            raise ValueError(f"uniform needs low <= high (got low={self.low}s, high={self.high}s)")
        if self.dist in ("normal", "lognormal") and self.sd > 0 and self.mean <= 0:
            raise ValueError(f"{self.dist} with sd > 0 needs mean > 0")
        return self

    @property
    def expected(self) -> float:
        """The mean of the distribution in seconds (closed form)."""
        if self.dist == "uniform":
            return (self.low + self.high) / 2
        if self.dist == "normal" and self.sd > 0:
            # normal truncated at zero
            from scipy.stats import truncnorm

            a = (0 - self.mean) / self.sd
            return float(truncnorm.mean(a, math.inf, loc=self.mean, scale=self.sd))
        return self.mean

    @property
    def variance(self) -> float:
        if self.dist == "constant":
            return 0.0
        if self.dist == "uniform":
            return (self.high - self.low) ** 2 / 12
        if self.dist == "exponential":
            return self.mean**2
        return self.sd**2


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The config model inside a field's annotation (``Fleet`` in ``tuple[Fleet, ...]``, ``X | None``)."""
    from typing import get_args

    stack = [annotation]
    while stack:
        t = stack.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
        stack.extend(get_args(t))
    return None


def quantity_kind(annotation: Any, metadata: tuple | list = ()) -> str | None:
    """'duration' or 'rate' when the annotation (or a member of it) is :data:`Duration` / :data:`Rate`.

    ``metadata``: a pydantic FieldInfo's metadata, where ``Annotated`` extras of the field itself end up.
    """
    from typing import get_args

    stack = [annotation]
    extra = list(metadata)
    while stack:
        t = stack.pop()
        for meta in (*extra, *getattr(t, "__metadata__", ())):
            func = getattr(meta, "func", None)
            if func is format_duration:
                return "duration"
            if func is format_rate:
                return "rate"
        extra = []
        stack.extend(get_args(t))
    return None


def field_at(model: Any, path: tuple | list) -> tuple[Any, Any]:
    """(FieldInfo, owning model) of a key path below ``model`` (list indices skipped); (None, None)."""
    info = owner = None
    cur = model
    for part in path:
        if isinstance(part, int):
            continue
        fields = getattr(cur, "model_fields", None)
        if not fields or part not in fields:
            return None, None
        info, owner = fields[part], cur
        cur = model_of(info.annotation)
    return info, owner
