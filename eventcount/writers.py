"""Writing events: tsv (default), csv, Audacity labels, JAMS and MIDI, one writer per format."""

from __future__ import annotations

import csv
import io
import json
import struct
from collections.abc import Callable
from pathlib import Path

from eventcount.annotations import Event
from eventcount.atomic import atomic_write
from eventcount.config import DEFAULT_FORMAT
from eventcount.errors import EventcountError

GM_DRUM_NOTES = {"KD": 36, "SD": 38, "HH": 42}
MIDI_TICKS_PER_BEAT = 480
MIDI_TEMPO_US = 500_000  # 120 bpm: one tick = 1/960 s


def _confidence(event: Event) -> str:
    return "" if event.confidence is None else f"{event.confidence:.3f}"


def to_tsv(events: list[Event], gaps: list[tuple[float, float]] | None = None, **_: object) -> str:
    """Tab-separated events; a recording's gaps (where nothing was looked for) as `# gap START END` lines."""
    lines = [f"# gap\t{start:.4f}\t{end:.4f}" for start, end in gaps or []]
    lines += ["# time_s\tlabel\tconfidence"]
    lines += [f"{e.time_s:.4f}\t{e.label}\t{_confidence(e)}".rstrip("\t") for e in events]
    return "\n".join(lines) + "\n"


def to_csv(events: list[Event], **_: object) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")  # quotes labels with commas or quotes
    writer.writerow(["time_s", "label", "confidence"])
    writer.writerows([f"{e.time_s:.4f}", e.label, _confidence(e)] for e in events)
    return out.getvalue()


def to_audacity(events: list[Event], **_: object) -> str:
    return "".join(f"{e.time_s:.6f}\t{e.time_s:.6f}\t{e.label}\n" for e in events)


def to_jams(events: list[Event], duration_s: float | None = None, **_: object) -> str:
    data = [{"time": e.time_s, "duration": 0.0, "value": e.label, "confidence": e.confidence} for e in events]
    jam = {
        "file_metadata": {"duration": duration_s or (events[-1].time_s if events else 0.0)},
        "annotations": [{"namespace": "tag_open", "data": data, "sandbox": {}, "time": 0, "duration": None,
                         "annotation_metadata": {"annotation_tools": "eventcount"}}],
        "sandbox": {},
    }
    return json.dumps(jam, indent=1) + "\n"


def _variable_length(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def to_midi(events: list[Event], midi_notes: dict[str, int] | None = None, **_: object) -> bytes:
    """A type-0 MIDI file: each event a 50 ms note on channel 10 (drums); notes from `midi_notes` per class."""
    notes = {**GM_DRUM_NOTES, **(midi_notes or {})}
    ticks_per_s = MIDI_TICKS_PER_BEAT * 1_000_000 / MIDI_TEMPO_US
    messages: list[tuple[int, bytes]] = []
    for e in events:
        note = notes.get(e.label)
        if note is None:
            raise EventcountError(f"no MIDI note for class {e.label!r}; give a class -> note map (--midi-map)")
        velocity = max(1, min(127, round(100 * (e.confidence if e.confidence is not None else 1.0))))
        start = round(e.time_s * ticks_per_s)
        messages.append((start, bytes([0x99, note, velocity])))
        messages.append((start + round(0.05 * ticks_per_s), bytes([0x89, note, 0])))
    messages.sort(key=lambda m: (m[0], m[1][0] == 0x99))
    track = b"\x00\xff\x51\x03" + MIDI_TEMPO_US.to_bytes(3, "big")
    now = 0
    for tick, message in messages:
        track += _variable_length(tick - now) + message
        now = tick
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, MIDI_TICKS_PER_BEAT)
    return header + b"MTrk" + struct.pack(">I", len(track)) + track


WRITERS: dict[str, tuple[str, Callable[..., str | bytes]]] = {
    "tsv": (".events.tsv", to_tsv),
    "csv": (".events.csv", to_csv),
    "audacity": (".labels.txt", to_audacity),
    "jams": (".jams", to_jams),
    "midi": (".mid", to_midi),
}


def get_writer(fmt: str) -> tuple[str, Callable[..., str | bytes]]:
    """(file suffix, function events -> text or bytes) for an output format."""
    try:
        return WRITERS[fmt]
    except KeyError:
        raise EventcountError(f"unknown output format {fmt!r}; choose one of {', '.join(WRITERS)}") from None


def write_events(path: str | Path, events: list[Event], fmt: str = DEFAULT_FORMAT, **options: object) -> None:
    """Write events atomically in format `fmt`."""
    _, writer = get_writer(fmt)
    content = writer(events, **options)
    binary = isinstance(content, bytes)
    with atomic_write(path, "wb" if binary else "w") as handle:
        handle.write(content)
