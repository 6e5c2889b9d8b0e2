"""Reading event files (timestamps) and class maps; the `Event` record every writer and reader shares."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eventcount.errors import EventcountError
from eventcount.units import is_number

TIME_COLUMNS = ("time_s", "time", "onset", "onset_s", "timestamp", "start")
LABEL_COLUMNS = ("label", "class", "instrument", "name", "note")


@dataclass(frozen=True)
class Event:
    """One event: when (seconds from the recording's start), what (class label), how sure (0..1 or None)."""

    time_s: float
    label: str
    confidence: float | None = None


def read_events(path: str | Path, default_label: str = "event") -> list[Event]:
    """Read an event file in any supported layout, sorted by time.

    tsv/txt: `time [label [confidence]]` per line (tab or space separated, `#` comments), Audacity label
    tracks (`start end label`); csv: a header with a time column (time_s/time/onset) and optional label and
    confidence columns. One-column files give every event `default_label`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise EventcountError(f"{path}: cannot read event file ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise EventcountError(f"{path}: not a text event file ({err.reason})") from err
    if path.suffix.lower() == ".csv":
        events = _read_csv_events(path, text, default_label)
    else:
        events = _read_text_events(path, text, default_label)
    return sorted(events, key=lambda e: e.time_s)


def _number(path: Path, line_no: int, cell: str, what: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise EventcountError(f"{path}:{line_no}: expected {what} as a number, got {cell!r}") from None
    if not np.isfinite(value):
        raise EventcountError(f"{path}:{line_no}: {what} must be finite, got {cell!r}")
    return value


def _read_text_events(path: Path, text: str, default_label: str) -> list[Event]:
    events = []
    first, header = True, None
    audacity_file = path.name.lower().endswith(".labels.txt")  # labels may be numbers (e.g. MIDI notes)
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("\\"):
            continue
        cells = stripped.split("\t") if "\t" in stripped else stripped.split()
        cells = [c.strip() for c in cells]
        is_first, first = first, False
        if is_first and not is_number(cells[0]):
            header = (line_no, cells[0])
            continue  # a header line such as "time_s<TAB>label", possibly after comments
        time_s = _number(path, line_no, cells[0], "the event time in seconds (first column)")
        if time_s < 0:
            raise EventcountError(f"{path}:{line_no}: event time {time_s} is negative")
        second_is_time = len(cells) >= 2 and is_number(cells[1])
        if second_is_time and (audacity_file or (len(cells) >= 3 and not is_number(cells[2]))):
            events.append(Event(time_s, cells[2] if len(cells) >= 3 else default_label))  # Audacity: start, end, label
            continue
        label = cells[1] if len(cells) >= 2 and cells[1] else default_label
        confidence = _number(path, line_no, cells[2], "confidence (third column)") if len(cells) >= 3 else None
        events.append(Event(time_s, label, confidence))
    if header is not None and not events and header[1].lower() not in TIME_COLUMNS:
        # a lone line that is not a number is a broken file, not a header over zero events
        _number(path, header[0], header[1], "the event time in seconds (first column)")
    return events


def _find_column(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def _read_csv_events(path: Path, text: str, default_label: str) -> list[Event]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header = rows[0]
    time_col = _find_column(header, TIME_COLUMNS)
    if time_col is None:
        if is_number(header[0]):
            return _read_text_events(path, text.replace(",", "\t"), default_label)
        raise EventcountError(
            f"{path}:1: no time column; expected one of {', '.join(TIME_COLUMNS)} in the header, got {header}"
        )
    label_col = _find_column(header, LABEL_COLUMNS)
    conf_col = _find_column(header, ("confidence", "probability", "score"))
    events = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) <= time_col:
            raise EventcountError(f"{path}:{line_no}: expected {len(header)} columns, got {len(row)}")
        time_s = _number(path, line_no, row[time_col], f"column {header[time_col]!r}")
        label = row[label_col].strip() if label_col is not None and len(row) > label_col else default_label
        conf = None
        if conf_col is not None and len(row) > conf_col and row[conf_col].strip():
            conf = _number(path, line_no, row[conf_col], f"column {header[conf_col]!r}")
        events.append(Event(time_s, label or default_label, conf))
    return events


def read_class_map(path: str | Path) -> dict[str, str]:
    """Read a YAML class map into {raw label: class}.

    Either `class: [raw, raw, ...]` (e.g. `KD: [35, 36]`) or `raw: class` (e.g. `36: KD`).
    """
    from eventcount.config import load_yaml

    data = load_yaml(path)
    mapping: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, list):
            for raw in value:
                mapping[str(raw)] = str(key)
        elif isinstance(value, (str, int, float)):
            mapping[str(key)] = str(value)
        else:
            raise EventcountError(f"{path}: entry {key!r} must be a class name or a list of raw labels")
    return mapping


def events_by_class(
    events: list[Event], classes: list[str] | None = None, class_map: dict[str, str] | None = None
) -> dict[str, np.ndarray]:
    """Group events into sorted time arrays per class; unmapped labels are dropped when a map is given."""
    grouped: dict[str, list[float]] = {c: [] for c in classes or []}
    for event in events:
        label = class_map.get(event.label) if class_map is not None else event.label
        if label is None or (classes is not None and label not in grouped):
            continue
        grouped.setdefault(label, []).append(event.time_s)
    return {label: np.sort(np.asarray(times, dtype=np.float64)) for label, times in grouped.items()}
