"""Durations in config files: "200ms", "1s", "1.5s", "2m", "1h", or a bare number of seconds.

The inverse, for messages, is `vigil.model.fmt_duration`.
"""

from __future__ import annotations

import math
import re

MAX_DURATION = 7 * 86400.0  # in any format: longer is a typo, and keeps fmt_duration finite
_UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*(?P<unit>[A-Za-z]*)")
_EXAMPLES = '"200ms", "1s", "1.5s", "2m", "1h"'


def parse_duration(value: object) -> float:
    """Return `value` in seconds, or raise ValueError saying what is wrong with it.

    Accepts a string of a non-negative number followed by one of the units ms, s, m, h
    (whitespace around and between them is allowed), or a bare non-negative int or float
    meaning seconds. A bare number in a *string* ("5") is refused: the unit must be written.
    Booleans, negative values, NaN and infinity are refused.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as {_EXAMPLES}, found a boolean ({value})")
    if isinstance(value, (int, float)):
        seconds = float(value) if isinstance(value, float) else _int_seconds(value)
        return _checked(seconds, repr(value))
    if not isinstance(value, str):
        raise ValueError(
            f"expected a duration such as {_EXAMPLES}, found {type(value).__name__} ({value!r})"
        )
    text = value.strip()
    if not text:
        raise ValueError(f"empty duration; write one such as {_EXAMPLES}")
    if text.startswith("-"):
        raise ValueError(f"duration {value!r} is negative")
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{value!r} is not a duration; write one such as {_EXAMPLES}")
    unit = match.group("unit")
    if not unit:
        raise ValueError(f"duration {value!r} has no unit; add one of ms, s, m, h, "
                         f"e.g. \"{text}s\"")
    factor = _UNITS.get(unit)
    if factor is None:
        raise ValueError(f"duration {value!r} has unknown unit {unit!r}; use one of ms, s, m, h")
    return _checked(float(match.group("number")) * factor, repr(value))


def _int_seconds(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _checked(seconds: float, shown: str) -> float:
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"duration {shown} is not a finite number")
    if seconds < 0:
        raise ValueError(f"duration {shown} is negative")
    return seconds
