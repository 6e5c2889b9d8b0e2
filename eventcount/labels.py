"""Count labels: the clip table `path,start_s,end_s,<class>...` that every training run reads."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from eventcount.atomic import atomic_write
from eventcount.errors import EventcountError

FIXED_COLUMNS = ["path", "start_s", "end_s"]


@dataclass
class Clip:
    """One labelled clip: a recording, an optional window (seconds; None = whole file) and counts per class."""

    path: Path
    start_s: float | None
    end_s: float | None
    counts: list[int]
    line: int = 0


@dataclass
class CountTable:
    """All clips of a count-label CSV, with the class names in column order."""

    classes: list[str]
    clips: list[Clip] = field(default_factory=list)
    source: Path | None = None

    def recordings(self) -> list[Path]:
        """Distinct recordings in first-seen order."""
        return list(dict.fromkeys(clip.path for clip in self.clips))

    def where(self, clip: Clip) -> str:
        return f"{self.source}:{clip.line}" if self.source else str(clip.path)

    def subset(self, classes: list[str]) -> CountTable:
        """The same clips counting only `classes` (in that order)."""
        missing = [c for c in classes if c not in self.classes]
        if missing:
            raise EventcountError(f"{self.source or 'labels'}: no column for class(es) {', '.join(missing)}; "
                                  f"it has {', '.join(self.classes)}")
        index = [self.classes.index(c) for c in classes]
        clips = [dataclasses.replace(c, counts=[c.counts[i] for i in index]) for c in self.clips]
        return CountTable(list(classes), clips, self.source)


def clip_frame_range(start_s: float | None, end_s: float | None, n_frames: int, frame_rate: float,
                     delay_frames: int, factor: float = 1.0) -> tuple[int, int]:
    """Labelled frames [a, b) of a clip (None = the recording's start/end) in a recording of `n_frames` frames,
    time-stretched by `factor`: the frames its interval's events are reported in (shifted by the detection delay).
    A clip can hold at most b - a events (one per frame)."""
    a = min(int(round((start_s or 0.0) * factor * frame_rate)) + delay_frames, n_frames)
    if end_s is None:
        return a, n_frames
    return a, max(a, min(int(round(end_s * factor * frame_rate)) + delay_frames, n_frames))


def _parse_float(path: Path, line: int, name: str, cell: str) -> float | None:
    if cell.strip() == "":
        return None
    try:
        value = float(cell)
    except ValueError:
        raise EventcountError(f"{path}:{line}: column {name!r} must be seconds (a number) or empty, "
                              f"got {cell!r}") from None
    if not math.isfinite(value) or value < 0:
        raise EventcountError(f"{path}:{line}: column {name!r} must be a finite number >= 0, got {cell!r}")
    return value


def _parse_count(path: Path, line: int, name: str, cell: str) -> int:
    text = cell.strip()
    try:
        value = int(text)
    except ValueError:
        raise EventcountError(f"{path}:{line}: count for class {name!r} must be an integer >= 0, "
                              f"got {cell!r}") from None
    if value < 0:
        raise EventcountError(f"{path}:{line}: count for class {name!r} must be >= 0, got {value}")
    return value


def read_count_table(path: str | Path) -> CountTable:
    """Read and validate the syntax of a count-label CSV (files are checked by `check_count_table`)."""
    path = Path(path)
    rows = list(csv.reader(io.StringIO(_read_text(path), newline="")))
    if not rows:
        raise EventcountError(f"{path}: empty labels file; expected a header {','.join(FIXED_COLUMNS)},<class>,...")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in FIXED_COLUMNS if c not in header]
    if missing:
        raise EventcountError(f"{path}:1: missing column(s) {', '.join(missing)}; "
                              f"expected a header {','.join(FIXED_COLUMNS)},<class>,... got {','.join(header)}")
    for column, name in enumerate(header):
        if name in header[:column]:
            raise EventcountError(f"{path}:1: column {name!r} appears twice (columns {header.index(name) + 1} and "
                                  f"{column + 1}); give each class one column")
    classes = [h for h in header if h not in FIXED_COLUMNS]
    if not classes:
        raise EventcountError(f"{path}:1: no class columns after {','.join(FIXED_COLUMNS)}")
    index = {name: header.index(name) for name in header}
    table = CountTable(classes, source=path)
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(header):
            raise EventcountError(f"{path}:{line}: expected {len(header)} fields, got {len(row)}")
        table.clips.append(_parse_row(path, line, row, index, classes))
    if not table.clips:
        raise EventcountError(f"{path}: no clips (only a header)")
    return table


def _read_text(path: Path) -> str:
    """The sheet's text (UTF-8, with or without a byte-order mark); a clear error naming the line otherwise."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise EventcountError(f"{path}: cannot read labels ({err.strerror})") from err
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise EventcountError(f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at column {column}); "
                              "save the sheet as UTF-8 (\"CSV UTF-8\" in spreadsheet programs)") from None


def _parse_row(path: Path, line: int, row: list[str], index: dict[str, int], classes: list[str]) -> Clip:
    raw_path = row[index["path"]].strip()
    if not raw_path:
        raise EventcountError(f"{path}:{line}: empty 'path'")
    recording = Path(raw_path)
    if not recording.is_absolute():
        recording = path.parent / recording
    start = _parse_float(path, line, "start_s", row[index["start_s"]])
    end = _parse_float(path, line, "end_s", row[index["end_s"]])
    if start is not None and end is not None and end <= start:
        raise EventcountError(f"{path}:{line}: end_s {end} must be greater than start_s {start}")
    counts = [_parse_count(path, line, name, row[index[name]]) for name in classes]
    return Clip(recording, start, end, counts, line)


def write_count_table(path: str | Path, table: CountTable) -> None:
    """Write the CSV atomically; recording paths are written relative to the CSV's folder where possible."""
    path = Path(path)
    base = Path(os.path.abspath(path.parent))
    names = {recording: _relative(recording, base) for recording in {clip.path for clip in table.clips}}
    with atomic_write(path, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(FIXED_COLUMNS + table.classes)
        for clip in table.clips:
            writer.writerow([names[clip.path], _seconds(clip.start_s), _seconds(clip.end_s), *clip.counts])


def _relative(recording: Path, base: Path) -> str:
    """The path relative to `base` (else absolute); symbolic links keep their own name, which finds their
    event files (`<stem>.events.tsv`), so they are made absolute without being resolved."""
    absolute = Path(os.path.abspath(recording))
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return str(absolute)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"
