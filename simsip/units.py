"""Units at the edges: durations and rates as people write them in YAML.

Telephony timers are quoted in mixed units: VRRP adverts in seconds or centiseconds, SIP T1 in
milliseconds, registration expiries in seconds or hours. simsip accepts a number with a unit
(``250ms``, ``30s``, ``5min``, ``1h``, ``1d``) for every duration and ``40/s``, ``2/min``,
``3/h`` for rates, and converts them once, at the edge, into float seconds (or events per second).
Inside the model there are only floats.

A bare number is refused for a duration: "30" could be seconds or milliseconds, and guessing is
how production timers get broken.
"""

from __future__ import annotations

import math
import re

_DURATION_UNITS = {
    "us": 1e-6,
    "ms": 1e-3,
    "cs": 1e-2,
    "s": 1.0,
    "sec": 1.0,
    "min": 60.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_RATE_UNITS = {"s": 1.0, "sec": 1.0, "min": 1 / 60.0, "m": 1 / 60.0, "h": 1 / 3600.0, "d": 1 / 86400.0}

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DUR_RE = re.compile(rf"^\s*({_NUM})\s*([a-z]+)\s*$")
_RATE_RE = re.compile(rf"^\s*({_NUM})\s*/\s*([a-z]+)\s*$")


class UnitError(ValueError):
    """A value could not be read as a quantity with a unit."""


def parse_duration(value: object) -> float:
    """Return seconds for ``'250ms'``, ``'30s'``, ``'1h'`` ... (``0`` alone is allowed)."""
    if isinstance(value, bool):
        raise UnitError(f"expected a duration such as '30s' or '250ms', got {value!r}")
    if isinstance(value, (int, float)):
        if value == 0:
            return 0.0
        raise UnitError(
            f"a duration needs a unit: write '{value}s' or '{value}ms', not {value!r} "
            f"(units: {', '.join(_DURATION_UNITS)})"
        )
    if not isinstance(value, str):
        raise UnitError(f"expected a duration such as '30s' or '250ms', got {value!r}")
    text = value.strip().lower()
    if text in ("0", "0.0"):
        return 0.0
    if text in ("inf", "infinite", "never"):
        return math.inf
    m = _DUR_RE.match(text)
    if not m or m.group(2) not in _DURATION_UNITS:
        raise UnitError(
            f"cannot read {value!r} as a duration; write a number and a unit, e.g. '30s', '250ms', "
            f"'5min', '1h' (units: {', '.join(_DURATION_UNITS)})"
        )
    seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if not math.isfinite(seconds):
        raise UnitError(f"duration {value!r} is not finite")
    return seconds


def parse_rate(value: object) -> float:
    """Return events per second for ``'40/s'``, ``'2/min'``, ``'3/h'``."""
    if isinstance(value, bool):
        raise UnitError(f"expected a rate such as '40/s' or '2/h', got {value!r}")
    if isinstance(value, (int, float)):
        if value == 0:
            return 0.0
        raise UnitError(f"a rate needs a unit: write '{value}/s' or '{value}/h', not {value!r}")
    if not isinstance(value, str):
        raise UnitError(f"expected a rate such as '40/s' or '2/h', got {value!r}")
    m = _RATE_RE.match(value.strip().lower())
    if not m or m.group(2) not in _RATE_UNITS:
        raise UnitError(
            f"cannot read {value!r} as a rate; write e.g. '40/s', '2/min', '3/h' "
            f"(units: {', '.join(_RATE_UNITS)})"
        )
    rate = float(m.group(1)) * _RATE_UNITS[m.group(2)]
    if not math.isfinite(rate):
        raise UnitError(f"rate {value!r} is not finite")
    return rate


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration` for the resolved config: exact, human-friendly."""
    if math.isinf(seconds):
        return "inf"
    if seconds == 0:
        return "0s"
    for unit, factor in (("h", 3600.0), ("min", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        q = seconds / factor
        if abs(q) >= 1 and abs(q - round(q)) < 1e-9:
            return f"{int(round(q))}{unit}"
    if abs(seconds) >= 1:
        return f"{seconds:.12g}s"
    return f"{seconds * 1000:.12g}ms"


def format_rate(per_second: float) -> str:
    if per_second == 0:
        return "0/s"
    for unit, factor in (("s", 1.0), ("min", 1 / 60.0), ("h", 1 / 3600.0)):
        q = per_second / factor
        if abs(q) >= 1:
            return f"{q:.12g}/{unit}"
    return f"{per_second * 3600:.12g}/h"
