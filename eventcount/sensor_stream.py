"""Sensor CSV lines arriving on a stream -> samples on a uniform grid, as they arrive.

The same columns, parsing and grid as reading the whole file (`eventcount.sensors`, `eventcount.timestamps`):
the header and the first rows choose the columns, each batch of lines is parsed by the file reader's parser,
missing cells are filled by interpolation between their column's neighbours, and grid sample k (time k / rate)
is interpolated once the row after it has arrived. A stream cannot see the whole file first, so:
- the grid rate is `SensorConfig.rate` or else the model's working rate (a file without `--rate` is resampled
  at its timestamps' typical rate instead: give the same `--rate` to `detect FILE` for identical events);
- timestamps must increase and steps must stay within `--max-gap` (a file's repeated, slightly disordered
  rows and gaps are repaired with the whole table in view; a stream stops with an error naming the line).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from eventcount import sensors
from eventcount.config import SensorConfig
from eventcount.errors import EventcountError

READ_BYTES = 1 << 16


class CsvGrid:
    """Push text lines of a sensor CSV, get float32 samples [n, channels] on the uniform grid at `rate`."""

    def __init__(self, options: SensorConfig, rate: float, name: str = "standard input") -> None:
        if options.filter_column is not None:
            raise EventcountError("row filters (filter_column) need the whole file; they do not work on a stream")
        sensors.check_rate(rate)
        self.options, self.rate, self.name = options, float(rate), name
        self.head: list[str] = []  # lines before the columns are chosen
        self.line_no = 0  # lines read so far
        self.table: sensors._Table | None = None
        self.layout: sensors._Layout | None = None
        self.origin: float | None = None  # the first raw timestamp
        self.times = np.zeros(0)  # rows not yet behind the grid: seconds, and values (NaN: missing)
        self.values = np.zeros((0, 0))
        self.known = np.zeros((0, 0), bool)  # cells given in the stream (not filled)
        self.anchors: list[tuple[float, float] | None] = []  # per column: last known (time, value) before `times`
        self.settled = 0  # rows of `times` whose every cell is known
        self.next_sample = 0  # the next grid index to emit
        self.rows = 0

    @property
    def channels(self) -> int | None:
        """Channels of the samples (None until the header and first rows have chosen the columns)."""
        if self.layout is None:
            return None
        return 1 if self.options.magnitude else len(self.layout.value_cols)

    def push(self, text: str) -> np.ndarray:
        """Whole lines of text (ending in a newline) -> the grid samples now certain."""
        if self.layout is None:
            self.head.append(text)
            lines = "".join(self.head)
            if sum(1 for line in lines.splitlines() if line.strip() and not line.lstrip().startswith("#")) <= 20:
                return self._empty()
            return self._start(lines)
        return self._rows(text)

    def finish(self) -> np.ndarray:
        """The end of the stream: the last grid samples (up to the last timestamp)."""
        if self.layout is None:
            if not "".join(self.head).strip():
                raise EventcountError(f"{self.name}: no data rows (the stream is empty or holds only comments)")
            return self._start("".join(self.head), final=True)
        return self._emit(final=True)

    def _start(self, text: str, final: bool = False) -> np.ndarray:
        """Choose the columns from the header and the first rows (as the file reader does), then read them."""
        self.table = sensors._read_header(text, self.name, self.options.delimiter)
        self.layout = sensors._choose_layout(self.table, self.options)
        self.anchors = [None] * len(self.layout.value_cols)
        self.values = np.zeros((0, len(self.layout.value_cols)))
        self.known = np.zeros((0, len(self.layout.value_cols)), bool)
        body, self.line_no = self.table.body, self.table.body_line - 1
        samples = self._rows(body)
        return np.concatenate([samples, self._emit(final=True)]) if final else samples

    def _rows(self, text: str) -> np.ndarray:
        assert self.table is not None and self.layout is not None
        first_line = self.line_no + 1
        self.line_no += text.count("\n")
        table = sensors._Table(self.name, self.table.delimiter, self.table.names, self.table.has_header, text,
                               first_line, [])
        values, _, _ = sensors._parse(table, self.layout)
        if not len(values):
            return self._empty()
        lines = np.fromiter((n for n, _ in sensors._data_lines(table)), dtype=np.int64)
        columns = self.layout.float_columns()
        bad = np.argwhere(np.isinf(values))
        if bad.size:
            raise EventcountError(f"{self.name}, line {lines[bad[0][0]]}: '{values[tuple(bad[0])]}' is not a finite "
                                  "number; fix the cell or leave it empty")
        block = values[:, [columns.index(j) for j in self.layout.value_cols]]
        times = self._times(values[:, columns.index(self.layout.time_col)] if self.layout.time_col is not None
                            else None, lines, len(values))
        self.times = np.concatenate([self.times, times])
        self.values = np.concatenate([self.values, block])
        self.known = np.concatenate([self.known, ~np.isnan(block)])
        self.rows += len(values)
        return self._emit(final=False)

    def _times(self, raw: np.ndarray | None, lines: np.ndarray, count: int) -> np.ndarray:
        """Rows' times in seconds from the first row; checks that they increase without long steps."""
        if raw is None:  # no time column: one row per sample, at positions 0, 1, 2, ...
            return (self.rows + np.arange(count)).astype(np.float64)
        missing = np.flatnonzero(np.isnan(raw))
        if missing.size:
            raise EventcountError(f"{self.name}, line {lines[missing[0]]}: the timestamp is missing; fill it in")
        if self.origin is None:
            self.origin = float(raw[0])
        times = (raw - self.origin) * self.layout.time_scale
        previous = np.concatenate([self.times[-1:] if self.times.size else [np.nan], times[:-1]])  # NaN: none
        steps = times - previous
        for k in np.flatnonzero((steps <= 0) | (steps > self.options.max_gap_s))[:1]:
            what = ("is not after the one before" if steps[k] <= 0 else
                    f"comes {steps[k]:.6g} s after the one before, more than --max-gap {self.options.max_gap_s:g} s")
            raise EventcountError(f"{self.name}, line {lines[k]}: timestamp {sensors.fmt(raw[k])} {what}; a stream "
                                  "needs increasing timestamps without gaps (detect the saved file instead)")
        return times

    def _emit(self, final: bool) -> np.ndarray:
        """Fill what can be filled, then interpolate the grid samples that the settled rows cover."""
        self._fill(final)
        if not self.settled:
            return self._empty()
        times, values = self.times[: self.settled], self.values[: self.settled]
        last = times[-1]
        if not final:  # samples strictly before the last settled row: a later row cannot change them
            candidates = np.arange(self.next_sample, int(math.floor(self._index(last))) + 2)
            end = self.next_sample + int(np.count_nonzero(self._position(candidates) < last))
        elif self.layout is not None and self.layout.time_col is None:
            end = self.rows
        else:  # as `timestamps.resample`: the grid may pass the last timestamp by 1 % of a step
            end = int(math.floor(last * self.rate + 0.01)) + 1
            if end < 2:
                raise EventcountError(f"{self.name}: the recording lasts {last:.6g} s, less than two samples at "
                                      f"{self.rate:g} Hz; give a higher --rate")
        grid = self._position(np.arange(self.next_sample, max(end, self.next_sample)))
        data = np.stack([np.interp(grid, times, column) for column in values.T], axis=1)
        self.next_sample = max(end, self.next_sample)
        self._drop_behind()
        if self.options.magnitude:
            data = np.linalg.norm(data, axis=1, keepdims=True)
        return np.ascontiguousarray(data, dtype=np.float32)

    def _position(self, k: np.ndarray) -> np.ndarray:
        """Where grid samples k lie on the rows' axis: seconds (k / rate), or the row index without a time column."""
        k = np.asarray(k, dtype=np.float64)
        return k if self.layout is not None and self.layout.time_col is None else k / self.rate

    def _index(self, position: float) -> float:
        return position if self.layout is not None and self.layout.time_col is None else position * self.rate

    def _fill(self, final: bool) -> None:
        """Fill missing cells between known ones (as `timestamps.fill_missing` does over the whole file);
        `settled` = the rows before the first cell that must wait for a later value."""
        settled = len(self.times)
        for j in range(self.values.shape[1]):
            column = self.values[:, j]
            known = self.known[:, j]
            gaps = np.flatnonzero(np.isnan(column))
            if not gaps.size:
                continue
            xp, fp = self.times[known], column[known]
            if self.anchors[j] is not None:
                xp, fp = np.r_[self.anchors[j][0], xp], np.r_[self.anchors[j][1], fp]
            if not xp.size:
                if final:
                    raise EventcountError(f"{self.name}: {sensors._label(self.table, self.layout.value_cols[j])} has "
                                          "no values (every cell is empty or NaN); leave it out")
                settled = min(settled, int(gaps[0]))
                continue
            fillable = gaps if final else gaps[self.times[gaps] < xp[-1]]
            column[fillable] = np.interp(self.times[fillable], xp, fp)
            if fillable.size < gaps.size:
                settled = min(settled, int(gaps[fillable.size]))
        self.settled = settled

    def _drop_behind(self) -> None:
        """Forget the rows that no grid sample still to come lies after, keeping their last known cells."""
        position = self._position(np.array([self.next_sample]))[0]
        keep = max(0, min(self.settled - 1, int(np.searchsorted(self.times[: self.settled], position, "right")) - 1))
        if not keep:
            return
        for j in range(self.values.shape[1]):
            known = np.flatnonzero(self.known[:keep, j])
            if known.size:
                self.anchors[j] = (float(self.times[known[-1]]), float(self.values[known[-1], j]))
        self.times, self.values, self.known = self.times[keep:], self.values[keep:], self.known[keep:]
        self.settled -= keep

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.channels or 1), np.float32)


def csv_blocks(source: BinaryIO, grid: CsvGrid) -> Iterator[np.ndarray]:
    """Grid samples from CSV bytes arriving on `source`, as each batch of whole lines arrives."""
    read = getattr(source, "read1", source.read)
    carry = b""
    while True:
        raw = read(READ_BYTES)
        if not raw:
            break
        raw = carry + raw
        cut = raw.rfind(b"\n") + 1
        carry = raw[cut:]
        if cut:
            yield grid.push(_text(raw[:cut], grid.name))
    if carry:
        yield grid.push(_text(carry + b"\n", grid.name))
    yield grid.finish()


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8").lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as error:
        raise EventcountError(f"{name}: not UTF-8 text (undecodable byte {raw[error.start]:#04x}); is it "
                              "really CSV?") from None
