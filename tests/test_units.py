"""Durations given by people: `50ms`, `0.05s`, `0.05`, `2min`."""

from __future__ import annotations

import pytest

from eventcount.errors import EventcountError
from eventcount.units import parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("50ms", 0.05), ("0.05s", 0.05), ("0.05", 0.05), ("2min", 120.0), (" 50 ms ", 0.05), ("1.5h", 5400.0),
    ("250us", 250e-6), ("3sec", 3.0), ("5MS", 0.005), (".5", 0.5), ("1e-3", 0.001), ("2e-3s", 0.002),
    (0.05, 0.05), (3, 3.0),
])
def test_parses_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["fifty", "50 parsecs", "", "ms", "-5ms", "5 m s", "1,5"])
def test_rejects_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(EventcountError, match="tolerance: expected a duration such as 50ms"):
        parse_duration(text, what="tolerance")
