"""Sensor CSV files (timestamps or a known rate) read into a uniformly sampled `Signal`.

Time 0 of the returned `Signal` is the earliest kept timestamp (of the rows left after `filter_column`), so
event times written as "seconds from the first sample" (the Oxford step annotations, for one) line up with
it. Irregular timestamps are resampled onto a uniform grid by linear interpolation (no anti-alias filter:
choose a rate at or above the sensor's); repeated and slightly disordered rows and gaps are handled by
`eventcount.timestamps`. Missing cells are filled by interpolation and counted in a warning. Everything the
user can fix raises `EventcountError` naming the file, the line (1-based, as an editor shows it) and the column.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from eventcount.config import SensorConfig
from eventcount.errors import EventcountError
from eventcount.signals import Signal
from eventcount.timestamps import fill_missing, fmt, to_grid
from eventcount.units import is_number

TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_UNIT_WORDS = {"s": "s", "sec": "s", "secs": "s", "seconds": "s", "ms": "ms", "msec": "ms",
               "us": "us", "µs": "us", "usec": "us", "ns": "ns", "nsec": "ns"}
_UNIT_SUFFIX = re.compile(r"(?:^|[ _.\-])[(\[]?(" + "|".join(_UNIT_WORDS) + r")[)\]]?$")
_TIME_NAMES = {"t", "ts", "time", "times", "timestamp", "timestamps", "seconds", "sec", "secs",
               "elapsed", "elapsed_time", "time_elapsed", "epoch", "unix_time"}
_MISSING = {"", "nan", "na", "n/a", "null", "none"}
_DELIMITER_WORDS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";",
                    "whitespace": None, "space": None, " ": None}
_DELIMITER_NAMES = {",": "commas", "\t": "tabs", ";": "semicolons", None: "whitespace"}
_SAMPLE_ROWS = 20


def read_sensor_csv(
    path_or_file: str | os.PathLike[str] | IO[str] | IO[bytes],
    options: SensorConfig | None = None,
    source: str = "",
) -> Signal:
    """Read a delimited text file of sensor samples into a uniformly sampled `Signal`.

    The first line is a header when none of its fields is a number. Blank lines and `#` comments are
    skipped. Returns data float32 [n_samples, channels] (channels = value columns, or 1 with `magnitude`)
    at `options.rate` or the typical rate of the timestamps; time 0 = the first kept timestamp.
    """
    options = options or SensorConfig()
    _check_options(options)
    text, name = _read_text(path_or_file, source)
    table = _read_header(text, name, options.delimiter)
    layout = _choose_layout(table, options)
    columns = layout.float_columns()
    values, texts, lines = _parse(table, layout)
    cells = values[:, columns.index(layout.filter_col)] if layout.filter_numeric else texts
    rows = _Rows(table, _kept_rows(table, layout, options, cells, len(values)), lines)
    if len(rows.index) < 2:
        _too_few_rows(rows)
    block = values[rows.index]
    _check_finite(block, columns, rows)
    data, rate, gaps = _uniform(block, columns, layout, rows, options)
    if options.magnitude:
        data = np.linalg.norm(data, axis=1, keepdims=True)
    return Signal(np.ascontiguousarray(data, dtype=np.float32), rate, name, gaps)


# ---------------------------------------------------------------------------------------------- options


def _check_options(options: SensorConfig) -> None:
    if options.time_unit not in (*TIME_UNITS, "auto"):
        raise EventcountError(f"time unit '{options.time_unit}' is not one of s, ms, us, ns, auto")
    if options.rate is not None:
        check_rate(options.rate)
    if not options.max_gap_s > 0:
        raise EventcountError(f"--max-gap must be a positive duration, not {options.max_gap_s}")
    if not options.max_disorder_s >= 0:
        raise EventcountError(f"--max-disorder must be a duration of 0 or more, not {options.max_disorder_s}")
    if (options.filter_column is None) != (options.filter_value is None):
        raise EventcountError("give both a filter column and a filter value, or neither")
    if options.columns is not None and not options.columns:
        raise EventcountError("the list of value columns is empty; leave it out to use every numeric column")


def check_rate(rate: float) -> None:
    if not (math.isfinite(rate) and rate > 0):
        raise EventcountError(f"--rate must be a positive number of samples per second, not {rate}")


def _delimiter(option: str | None, first_line: str) -> str | None:
    """The delimiter to use (None = runs of whitespace), from the option or guessed from the first line."""
    if option is not None:
        if option.lower() in _DELIMITER_WORDS:
            return _DELIMITER_WORDS[option.lower()]
        if len(option) != 1:
            raise EventcountError(f"delimiter '{option}' must be one character, tab, comma, semicolon "
                                  "or whitespace")
        return option
    for candidate in ("\t", ";", ","):
        if candidate in first_line:
            return candidate
    return None


# ---------------------------------------------------------------------------------------------- reading


def _source_name(path_or_file: object, source: str) -> str:
    if source:
        return source
    if isinstance(path_or_file, (str, os.PathLike)):
        return os.fspath(path_or_file)
    return str(getattr(path_or_file, "name", "") or "<stream>")


def _read_text(path_or_file: str | os.PathLike[str] | IO[str] | IO[bytes], source: str) -> tuple[str, str]:
    """The whole file as text with '\\n' line ends, and the name to use in messages."""
    name = _source_name(path_or_file, source)
    try:
        if isinstance(path_or_file, (str, os.PathLike)):
            raw: str | bytes = Path(path_or_file).read_bytes()
        else:
            raw = path_or_file.read()
    except OSError as error:
        raise EventcountError(f"{name}: cannot read the file ({error.strerror or error})") from error
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise EventcountError(f"{name}: not a UTF-8 text file (undecodable byte at offset "
                                  f"{error.start}); is it really a CSV file?") from error
    return raw.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n"), name


@dataclass
class _Table:
    """A text table split into its header and its body."""

    name: str
    delimiter: str | None  # None = runs of whitespace
    names: list[str]  # header names, or "0", "1", ... without a header
    has_header: bool
    body: str  # the text after the header (from the first data line when there is no header)
    body_line: int  # 1-based line number of the body's first line
    sample: list[list[str]]  # the first data rows, split into fields


def _read_header(text: str, name: str, delimiter_option: str | None) -> _Table:
    start, line_no = 0, 1
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end]
        if line.strip() and not line.lstrip().startswith("#"):
            break
        start, line_no = end + 1, line_no + 1
    else:
        raise EventcountError(f"{name}: no data rows (the file is empty or holds only comments)")
    delimiter = _delimiter(delimiter_option, line)
    fields = _split_fields(line, delimiter)
    has_header = not any(is_number(field) for field in fields)
    if has_header:
        table = _Table(name, delimiter, [f.strip() for f in fields], True, text[end + 1:], line_no + 1, [])
    else:
        table = _Table(name, delimiter, [str(j) for j in range(len(fields))], False, text[start:], line_no, [])
    table.sample.extend(fields for _, fields in itertools.islice(_data_rows(table), _SAMPLE_ROWS))
    if not table.sample:
        raise EventcountError(f"{name}: no data rows after the header; a recording needs at least two samples")
    return table


def _data_lines(table: _Table) -> Iterator[tuple[int, str]]:
    """(line number, text without its comment) of every data line: the one definition of a data row."""
    body, start, line_no = table.body, 0, table.body_line
    while start < len(body):
        end = body.find("\n", start)
        end = len(body) if end < 0 else end
        line = body[start:end]
        content = line.split("#", 1)[0] if "#" in line else line
        if content.strip():
            yield line_no, content
        start, line_no = end + 1, line_no + 1


def _data_rows(table: _Table) -> Iterator[tuple[int, list[str]]]:
    for line_no, content in _data_lines(table):
        yield line_no, _split_fields(content, table.delimiter)


def _split_fields(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    if '"' not in line:
        return line.split(delimiter)
    return next(csv.reader([line], delimiter=delimiter))


# ---------------------------------------------------------------------------------------------- columns


@dataclass
class _Layout:
    """Which columns hold what, as 0-based indices into the table's fields."""

    time_col: int | None
    time_scale: float  # seconds per time unit
    unit_guessed: bool  # seconds assumed because neither the option nor the column name said
    value_cols: list[int]
    filter_col: int | None
    filter_numeric: bool

    def float_columns(self) -> list[int]:
        wanted = [self.time_col, *self.value_cols, self.filter_col if self.filter_numeric else None]
        return list(dict.fromkeys(j for j in wanted if j is not None))

    def text_filter_column(self) -> int | None:
        return None if self.filter_numeric else self.filter_col


def _choose_layout(table: _Table, options: SensorConfig) -> _Layout:
    time_col = (_column_index(table, options.time_column) if options.time_column is not None
                else _find_time_column(table))
    if time_col is None and options.rate is None:
        raise EventcountError(f"{table.name}: no time column among the columns {_listing(table)}; name it "
                              "with --time-column or give the sampling rate with --rate")
    scale, guessed = _time_scale(options.time_unit, table.names[time_col] if time_col is not None else "")
    filter_col = None if options.filter_column is None else _column_index(table, options.filter_column)
    if options.columns is not None:
        value_cols = [_column_index(table, column) for column in options.columns]
    else:
        value_cols = [j for j in range(len(table.names))
                      if j not in (time_col, filter_col) and _looks_numeric(table.sample, j)]
    if not value_cols:
        raise EventcountError(f"{table.name}: no numeric value columns besides the time column among the "
                              f"columns {_listing(table)}; choose them with --columns")
    filter_numeric = (filter_col is not None and _looks_numeric(table.sample, filter_col)
                      and is_number(str(options.filter_value)))
    return _Layout(time_col, scale, guessed, value_cols, filter_col, filter_numeric)


def _column_index(table: _Table, spec: str | int) -> int:
    """The index of a column given by header name (exact, else ignoring case) or 0-based index."""
    spec = str(spec).strip()
    if spec in table.names:
        return table.names.index(spec)
    folded = [n.lower() for n in table.names]
    if folded.count(spec.lower()) == 1:
        return folded.index(spec.lower())
    if spec.isdigit() and int(spec) < len(table.names):
        return int(spec)
    raise EventcountError(f"{table.name}: no column '{spec}'; the columns are {_listing(table)}")


def _listing(table: _Table) -> str:
    if not table.has_header:
        return f"0 to {len(table.names) - 1} (by 0-based index, as the file has no header row)"
    shown = ", ".join(f"'{n}'" for n in table.names[:30])
    return shown + (f" and {len(table.names) - 30} more" if len(table.names) > 30 else "")


def _label(table: _Table, column: int) -> str:
    if table.has_header:
        return f"column '{table.names[column]}'"
    return f"column {column} (counting from 0)"


def _looks_numeric(sample: list[list[str]], column: int) -> bool:
    """True when most sampled cells of a column that are not missing are numbers (typos are errors later)."""
    cells = [row[column].strip() for row in sample if column < len(row)]
    present = [cell for cell in cells if cell.lower() not in _MISSING]
    return bool(present) and 2 * sum(is_number(cell) for cell in present) >= len(present)


def _split_unit(name: str) -> tuple[str, str | None]:
    """("time", "ms") for "time_ms", "Time (ms)" or "time[ms]"; (name, None) without a unit suffix."""
    low = name.strip().lower()
    match = _UNIT_SUFFIX.search(low)
    if match is None:
        return low, None
    return low[:match.start()].strip(" _.-"), _UNIT_WORDS[match.group(1)]


def _find_time_column(table: _Table) -> int | None:
    if not table.has_header:
        return None
    for j, name in enumerate(table.names):
        if name.strip().lower() in _TIME_NAMES or _split_unit(name)[0] in _TIME_NAMES:
            return j
    return None


def _time_scale(unit_option: str, column_name: str) -> tuple[float, bool]:
    """Seconds per time unit, and whether seconds were only assumed."""
    if unit_option != "auto":
        return TIME_UNITS[unit_option], False
    unit = _split_unit(column_name)[1]
    return (TIME_UNITS[unit], False) if unit else (1.0, True)


# ---------------------------------------------------------------------------------------------- parsing


def _parse(table: _Table, layout: _Layout) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Cells of `layout.float_columns()` as float64 [rows, columns], the text filter column, line numbers.

    numpy's C reader does clean files; anything it rejects is re-read cell by cell, which fills missing
    cells with NaN and names the first bad cell. Line numbers come only from that second pass.
    """
    try:
        return (*_parse_fast(table, layout.float_columns(), layout.text_filter_column()), None)
    except ValueError:
        return _parse_slow(table, layout)


def _parse_fast(table: _Table, columns: list[int], text_column: int | None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    body = table.body.encode("utf-8")  # numpy reads bytes faster, and with a quarter of a StringIO's memory

    def load(usecols: list[int], dtype: type) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": checked later
            return np.loadtxt(io.BytesIO(body), dtype=dtype, delimiter=table.delimiter, encoding="utf-8",
                              comments="#", quotechar='"', usecols=usecols, ndmin=2)

    values = load(columns, np.float64)
    texts = None if text_column is None else np.char.strip(load([text_column], str)[:, 0])
    return values, texts


def _parse_slow(table: _Table, layout: _Layout) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    columns, text_column = layout.float_columns(), layout.text_filter_column()
    need = max([*columns, -1 if text_column is None else text_column]) + 1
    values: list[float] = []  # flat: a list per row would slow the garbage collector down
    texts: list[str] = []
    lines: list[int] = []
    for line_no, fields in _data_rows(table):
        if len(fields) < need:
            raise EventcountError(
                f"{table.name}, line {line_no}: {len(fields)} field(s) separated by "
                f"{_DELIMITER_NAMES.get(table.delimiter, repr(table.delimiter))}, expected at least {need}; "
                "fix or delete the line")
        try:
            values.extend([float(fields[j]) for j in columns])
        except ValueError:
            values.extend([_cell_value(table, layout, line_no, j, fields[j]) for j in columns])
        if text_column is not None:
            texts.append(fields[text_column].strip())
        lines.append(line_no)
    array = np.array(values, dtype=np.float64).reshape(len(lines), len(columns))
    return array, (np.array(texts) if text_column is not None else None), np.array(lines, dtype=np.int64)


def _cell_value(table: _Table, layout: _Layout, line_no: int, column: int, cell: str) -> float:
    """The cell as a number; NaN when it is missing (or any text in a numeric filter column); else an error."""
    try:
        return float(cell)
    except ValueError:
        if column == layout.filter_col or cell.strip().lower() in _MISSING:
            return math.nan  # a text in the filter column just matches no number
    shown = cell.strip() if len(cell.strip()) <= 40 else cell.strip()[:37] + "..."
    if column == layout.time_col:
        hint = "timestamps must be numbers (seconds, or ms/us/ns with --time-unit)"
    else:
        hint = "fix the cell or choose other columns with --columns"
    if not table.has_header and line_no == table.body_line:
        hint += "; the first line was read as data because some of its fields are numbers"
    raise EventcountError(f"{table.name}, line {line_no}, {_label(table, column)}: '{shown}' is not a number; "
                          + hint)


@dataclass
class _Rows:
    """The data rows kept (indices into the parsed rows) and their line numbers, found on demand."""

    table: _Table
    index: np.ndarray
    lines: np.ndarray | None = None

    def line(self, k: int) -> int:
        """The 1-based line number of the k-th kept row."""
        if self.lines is None:
            self.lines = np.fromiter((n for n, _ in _data_lines(self.table)), dtype=np.int64)
        return int(self.lines[self.index[k]])


def _kept_rows(table: _Table, layout: _Layout, options: SensorConfig, cells: np.ndarray | None,
               count: int) -> np.ndarray:
    """Indices of the parsed rows whose filter column holds the filter value (all rows without a filter)."""
    if layout.filter_col is None or cells is None:
        return np.arange(count)
    wanted = str(options.filter_value).strip()
    keep = np.flatnonzero(cells == (float(wanted) if layout.filter_numeric else wanted))
    if len(cells) and not keep.size:
        found = ", ".join(fmt(v) if layout.filter_numeric else f"'{v}'" for v in np.unique(cells)[:10])
        raise EventcountError(f"{table.name}: no rows where {_label(table, layout.filter_col)} equals "
                              f"'{wanted}'; values found: {found}")
    return keep


def _too_few_rows(rows: _Rows) -> None:
    if len(rows.index) == 0:
        raise EventcountError(f"{rows.table.name}: no data rows; a recording needs at least two samples")
    raise EventcountError(f"{rows.table.name}: only one data row (line {rows.line(0)}); a recording needs "
                          "at least two samples")


def _check_finite(block: np.ndarray, columns: list[int], rows: _Rows) -> None:
    bad = np.argwhere(np.isinf(block))
    if bad.size:
        k, j = bad[0]
        raise EventcountError(f"{rows.table.name}, line {rows.line(k)}, {_label(rows.table, columns[j])}: "
                              f"'{block[k, j]}' is not a finite number; fix the cell or leave it empty")


# ---------------------------------------------------------------------------------------------- time


def _uniform(block: np.ndarray, columns: list[int], layout: _Layout, rows: _Rows, options: SensorConfig
             ) -> tuple[np.ndarray, float, list[tuple[float, float]]]:
    """The value columns, missing cells filled, on a uniform grid; its rate; the gaps in the timestamps."""
    values = block[:, [columns.index(j) for j in layout.value_cols]]
    labels = [_label(rows.table, j) for j in layout.value_cols]
    if layout.time_col is None:
        assert options.rate is not None  # _choose_layout demands a rate when there is no time column
        fill_missing(values, np.arange(len(values), dtype=np.float64), labels, rows.table.name)
        return values, float(options.rate), []
    return to_grid(block[:, columns.index(layout.time_col)], values, layout.time_scale, options, rows.table.name,
                   rows.line, labels, layout.unit_guessed)
