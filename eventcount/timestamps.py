"""Sensor timestamps onto a uniform grid: repeated and slightly disordered rows repaired, gaps found, resampled.

What real logs from phones, watches and data loggers hold, and what happens to it (`SensorConfig` options):
- repeated timestamps (sensor batching, clock resolution): the rows are merged, their values averaged;
- rows out of order by at most `max_disorder_s`: sorted; further out of order: an error naming the lines;
- steps longer than `max_gap_s` (the OS paused sampling): kept as gaps of the returned `Signal`, whose
  samples there are placeholders (`Signal` says how detection treats them);
- `strict_timestamps`: any of these is an error instead, as before they were tolerated.
Each repair is counted in one warning per file (and process) on the ``eventcount.timestamps`` logger.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np

from eventcount.config import SensorConfig
from eventcount.errors import EventcountError

logger = logging.getLogger(__name__)
_warned: set[str] = set()


def _warn(message: str) -> None:
    """Log a repair once per process: a command may read a file more than once (its duration, then its data)."""
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def to_grid(raw: np.ndarray, values: np.ndarray, scale: float, config: SensorConfig, name: str,
            line: Callable[[int], int], labels: list[str], unit_guessed: bool = False
            ) -> tuple[np.ndarray, float, list[tuple[float, float]]]:
    """Timestamped rows -> (values on a uniform grid [n, c], rate, gaps as (start_s, end_s)).

    raw: timestamps [rows] in the file's unit (`scale` seconds each); values: [rows, c], NaN = missing
    (filled by interpolation); line(k): the file line of row k, for messages; labels: column names.
    Time 0 is the earliest timestamp.
    """
    missing = np.flatnonzero(np.isnan(raw))
    if missing.size:
        raise EventcountError(f"{name}, line {line(int(missing[0]))}: the timestamp is missing; "
                              "fill it in or delete the line")
    times = (raw - raw.min()) * scale
    if config.strict_timestamps:
        _check_strictly_increasing(raw, times, name, line)
    order = _sort_order(raw, times, config.max_disorder_s, name, line)
    if order is not None:
        times, values = times[order], values[order]
    times, values = _merge_repeated(times, values, name)
    if len(times) < 2:
        raise EventcountError(f"{name}: every row has the same timestamp; a recording needs at least two")
    fill_missing(values, times, labels, name)
    gaps = _gaps(raw, times, config, name, line, unit_guessed)
    rate = float(config.rate or typical_rate(times))
    return resample(times, values, rate, name), rate, gaps


def _check_strictly_increasing(raw: np.ndarray, times: np.ndarray, name: str, line: Callable[[int], int]) -> None:
    back = np.flatnonzero(np.diff(times) <= 0)
    if back.size:
        k = int(back[0]) + 1
        raise EventcountError(f"{name}, line {line(k)}: timestamp {fmt(raw[k])} is not after {fmt(raw[k - 1])} "
                              f"on line {line(k - 1)}; timestamps must increase: sort the rows by time and "
                              "remove duplicate rows (or leave out --strict-timestamps)")


def _sort_order(raw: np.ndarray, times: np.ndarray, tolerance_s: float, name: str,
                line: Callable[[int], int]) -> np.ndarray | None:
    """The rows' order by time when some are out of order by at most `tolerance_s` (None: in order)."""
    latest = np.maximum.accumulate(times)
    behind = latest - times
    worst = int(np.argmax(behind))
    if behind[worst] <= 0:
        return None
    if behind[worst] > tolerance_s:
        ahead = int(np.flatnonzero(times[:worst] == latest[worst])[0])
        raise EventcountError(
            f"{name}, line {line(worst)}: timestamp {fmt(raw[worst])} is {behind[worst]:.6g} s before "
            f"{fmt(raw[ahead])} on line {line(ahead)}; rows more than {tolerance_s:g} s out of order are not "
            "sorted silently: sort the file by time, or raise --max-disorder")
    moved = int(np.count_nonzero(behind > 0))
    _warn(f"{name}: sorted {moved} row(s) that were out of order by up to {1000 * behind[worst]:.3g} ms")
    return np.argsort(times, kind="stable")


def _merge_repeated(times: np.ndarray, values: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of equal (sorted) timestamps merged into one holding the mean of their values (NaN ignored)."""
    if not np.any(np.diff(times) == 0):
        return times, values
    unique, first = np.unique(times, return_index=True)
    present = ~np.isnan(values)
    sums = np.add.reduceat(np.where(present, values, 0.0), first, axis=0)
    counts = np.add.reduceat(present.astype(np.int64), first, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        merged = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    _warn(f"{name}: merged {len(times) - len(unique)} row(s) repeating the timestamp of the row before "
          "(values averaged)")
    return unique, merged


def _gaps(raw: np.ndarray, times: np.ndarray, config: SensorConfig, name: str, line: Callable[[int], int],
          unit_guessed: bool) -> list[tuple[float, float]]:
    """(start_s, end_s) of every step longer than `max_gap_s`: the recording stopped there."""
    steps = np.diff(times)
    long = np.flatnonzero(steps > config.max_gap_s)
    if not long.size:
        return []
    hint = ("; the timestamps were taken as seconds: if they are in ms, us or ns, give --time-unit"
            if unit_guessed else "")
    if config.strict_timestamps:  # rows in file order: name the lines
        k = int(long[0]) + 1
        raise EventcountError(f"{name}, line {line(k)}: the timestamps jump by {steps[k - 1]:.6g} s after line "
                              f"{line(k - 1)}, more than the allowed gap of {config.max_gap_s:g} s; split the file "
                              f"there, raise --max-gap or leave out --strict-timestamps{hint}")
    if 2 * long.size > steps.size:
        raise EventcountError(f"{name}: most steps between timestamps ({long.size} of {steps.size}) are longer than "
                              f"the allowed gap of {config.max_gap_s:g} s; raise --max-gap{hint}")
    gaps = [(float(times[k]), float(times[k + 1])) for k in long]
    longest = int(np.argmax(steps[long]))
    _warn(f"{name}: {len(gaps)} gap(s) longer than {config.max_gap_s:g} s in the timestamps (the longest "
          f"{steps[long[longest]]:.3g} s, from {gaps[longest][0]:.3f} s): nothing was recorded there{hint}")
    return gaps


def typical_rate(times: np.ndarray) -> float:
    """Samples per second: 1 / the mean step among steps within ±50 % of the median step.

    Robust to dropped samples (long steps) and to rounded timestamps (a 360 Hz file with 6 decimals gives
    360 Hz, where the median step alone would give 359.97 Hz).
    """
    steps = np.diff(times)
    median = float(np.median(steps))
    near = steps[(steps > 0.5 * median) & (steps < 1.5 * median)]
    return 1.0 / (float(near.mean()) if near.size else median)


def resample(times: np.ndarray, values: np.ndarray, rate: float, name: str) -> np.ndarray:
    """values [n, c] at `times` (s, from 0) linearly interpolated at 0, 1/rate, 2/rate, ... up to times[-1].

    The grid may pass the last timestamp by 1 % of a step (that sample takes the last value), so rounded
    timestamps do not lose the last sample.
    """
    count = int(math.floor(times[-1] * rate + 0.01)) + 1
    if count < 2:
        raise EventcountError(f"{name}: the recording lasts {times[-1]:.6g} s, less than two samples at "
                              f"{rate:g} Hz; give a higher --rate")
    grid = np.arange(count, dtype=np.float64) / rate
    logger.debug("%s: %d timestamped rows resampled to %d samples at %.6g Hz", name, len(times), count, rate)
    return np.stack([np.interp(grid, times, column) for column in values.T], axis=1)


def fill_missing(values: np.ndarray, positions: np.ndarray, labels: list[str], name: str) -> int:
    """Fill NaN cells of values [n, c] in place by linear interpolation over `positions`; log the count.

    Leading and trailing gaps take the nearest value. A column with no value at all is an error.
    """
    missing = np.isnan(values)
    counts = missing.sum(axis=0)
    for j in np.flatnonzero(counts):
        if counts[j] == len(values):
            raise EventcountError(f"{name}: {labels[j]} has no values (every cell is empty or NaN); "
                                  "leave it out")
        gaps = missing[:, j]
        values[gaps, j] = np.interp(positions[gaps], positions[~gaps], values[~gaps, j])
    total = int(counts.sum())
    if total:
        detail = ", ".join(f"{labels[j]}: {counts[j]}" for j in np.flatnonzero(counts))
        _warn(f"{name}: filled {total} missing value(s) by linear interpolation ({detail})")
    return total


def fmt(value: float) -> str:
    """A number as written in a file: no exponent, no trailing zeros (263239149989134, 0.002778)."""
    return np.format_float_positional(value, trim="-")
