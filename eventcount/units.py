"""Parsing durations given by people: `50ms`, `0.05s`, `0.05`, `2min` -> seconds."""

from __future__ import annotations

import re

from eventcount.errors import EventcountError

_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "min": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_duration(text: str | float | int, what: str = "duration") -> float:
    """Seconds from a number or a number with a unit (ms, s, us, min, h); a clear error otherwise."""
    if isinstance(text, (int, float)):
        return float(text)
    match = _PATTERN.match(text)
    if not match or match.group(2).lower() not in _UNITS:
        raise EventcountError(f"{what}: expected a duration such as 50ms, 0.05s or 0.05, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]
