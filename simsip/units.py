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
    text = value.strip().lower()
    if text in ("0", "0.0"):
        return 0.0
    m = _RATE_RE.match(text)
    if not m or m.group(2) not in _RATE_UNITS:
        raise UnitError(
            f"cannot read {value!r} as a rate; write e.g. '40/s', '2/min', '3/h' "
            f"(units: {', '.join(_RATE_UNITS)})"
        )
    rate = float(m.group(1)) * _RATE_UNITS[m.group(2)]
    if not math.isfinite(rate):
        raise UnitError(f"rate {value!r} is not finite")
    return rate


def _exact(x: float, factor: float, limit: float = 1e15) -> str | None:
    """The shortest decimal ``t`` with ``float(t) * factor == x`` (what the parsers compute), or None."""
    q = x / factor
    if not math.isfinite(q) or not 0 < abs(q) < limit:
        return None
    n = round(q)
    if n and float(n) * factor == x:
        return str(n)
    for digits in range(1, 18):
        t = f"{q:.{digits}g}"
        if float(t) * factor == x:
            return t
    return None


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration` for the resolved config: exact, human-friendly.

    ``parse_duration(format_duration(x)) == x`` for every finite float ``x`` (and ``inf``): the
    value is written as a whole number of h, min or s when that is exact, below a second as whole
    ms or us, and otherwise as the shortest exact decimal (``0.7s``, ``1.5ms``, ``3600.000001s``).
    """
    if math.isinf(seconds) and seconds > 0:
        return "inf"
    if seconds == 0:
        return "0s"
    if not math.isfinite(seconds):
        return repr(seconds)  # -inf / nan: not durations; parse_duration refuses them
    for unit, factor in (("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        n = round(seconds / factor)
        if n and abs(n) < 10**15 and float(n) * factor == seconds:
            return f"{n}{unit}"
    if abs(seconds) < 1:
        for unit, factor in (("ms", 1e-3), ("us", 1e-6)):
            n = round(seconds / factor)
            if n and abs(n) < 1000 and float(n) * factor == seconds:
                return f"{n}{unit}"
    best = f"{seconds!r}s"  # always exact: float(repr(x)) == x
    for unit, factor in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("min", 60.0), ("h", 3600.0)):
        t = _exact(seconds, factor)
        if t is not None and len(t) + len(unit) < len(best):
            best = t + unit
    return best


def format_rate(per_second: float) -> str:
    """Inverse of :func:`parse_rate`: exact, in the largest unit that keeps the count >= 1."""
    if per_second == 0:
        return "0/s"
    if not math.isfinite(per_second):
        return repr(per_second)
    for unit in ("s", "min", "h", "d"):
        factor = _RATE_UNITS[unit]
        if abs(per_second / factor) >= 1 or unit == "d":
            t = _exact(per_second, factor, limit=math.inf)
            if t is not None:
                return f"{t}/{unit}"
    return f"{per_second!r}/s"
