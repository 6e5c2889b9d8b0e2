"""Parsing quantities given by people: durations (`50ms`, `0.05s`, `2min` -> seconds), sizes (`2GB` -> bytes)."""

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


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
               "g": 1024**3, "gb": 1024**3, "gib": 1024**3, "t": 1024**4, "tb": 1024**4, "tib": 1024**4}
_SIZE_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str | int, what: str = "size") -> int:
    """Bytes from a number or a number with a unit (`500MB`, `2GB`, `1.5G`; units are powers of 1024)."""
    if isinstance(text, int):
        return text
    match = _SIZE_PATTERN.match(text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise EventcountError(f"{what}: expected a size such as 500MB, 2GB or a number of bytes, got {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def is_number(text: str) -> bool:
    """Whether a text cell parses as a float (numbers in event files, CSV headers versus data rows)."""
    try:
        float(text)
    except ValueError:
        return False
    return True
