"""Event writers: tsv/csv/Audacity read back equal, MIDI structure and timing, JAMS, atomic output."""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path

import pytest

from eventcount.annotations import Event, read_events
from eventcount.atomic import atomic_write
from eventcount.errors import EventcountError
from eventcount.writers import get_writer, to_midi, write_events

EVENTS = [Event(0.25, "KD", 0.9), Event(0.5, "HH", None), Event(1.2345, "SD", 0.125), Event(61.0, "HH", 1.0)]


@pytest.mark.parametrize("fmt", ["tsv", "csv"])
def test_text_formats_read_back_equal(tmp_path: Path, fmt: str) -> None:
    suffix, _ = get_writer(fmt)
    path = tmp_path / f"song{suffix}"
    write_events(path, EVENTS, fmt)
    assert read_events(path) == EVENTS


def test_audacity_reads_back_times_and_labels(tmp_path: Path) -> None:
    suffix, _ = get_writer("audacity")
    path = tmp_path / f"song{suffix}"
    write_events(path, EVENTS, "audacity")
    assert read_events(path) == [Event(e.time_s, e.label) for e in EVENTS]  # Audacity labels have no confidence


def test_audacity_numeric_labels_read_back(tmp_path: Path) -> None:
    """Classes named by MIDI note numbers: `0.5<TAB>0.5<TAB>36` is an Audacity label, not label '0.5'."""
    events = [Event(0.5, "36"), Event(1.0, "38")]
    write_events(tmp_path / "song.labels.txt", events, "audacity")
    assert read_events(tmp_path / "song.labels.txt") == events


def test_csv_labels_with_commas_and_quotes_read_back(tmp_path: Path) -> None:
    events = [Event(0.5, "hat, closed", 0.5), Event(1.0, 'say "hi"')]
    write_events(tmp_path / "song.events.csv", events, "csv")
    assert read_events(tmp_path / "song.events.csv") == events


def test_empty_event_list_reads_back_empty(tmp_path: Path) -> None:
    for fmt in ("tsv", "csv", "audacity"):
        suffix, _ = get_writer(fmt)
        write_events(tmp_path / f"empty{suffix}", [], fmt)
        assert read_events(tmp_path / f"empty{suffix}") == []


def test_jams_holds_every_event(tmp_path: Path) -> None:
    write_events(tmp_path / "song.jams", EVENTS, "jams", duration_s=70.0)
    jam = json.loads((tmp_path / "song.jams").read_text())
    assert jam["file_metadata"]["duration"] == 70.0
    data = jam["annotations"][0]["data"]
    assert [Event(d["time"], d["value"], d["confidence"]) for d in data] == EVENTS


def parse_midi(data: bytes) -> tuple[tuple[int, int, int], list[tuple[int, bytes]]]:
    """(format, tracks, division) and the (absolute tick, message) list of a type-0 file we wrote."""
    assert data[:4] == b"MThd"
    length, fmt, tracks, division = struct.unpack(">IHHH", data[4:14])
    assert length == 6
    assert data[14:18] == b"MTrk"
    (track_length,) = struct.unpack(">I", data[18:22])
    track = data[22:]
    assert len(track) == track_length
    messages, position, tick = [], 0, 0
    while position < len(track):
        delta = 0
        while True:
            byte = track[position]
            position += 1
            delta = (delta << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        tick += delta
        if track[position] == 0xFF:
            size = track[position + 2]
            messages.append((tick, track[position:position + 3 + size]))
            position += 3 + size
        else:
            messages.append((tick, track[position:position + 3]))
            position += 3
    return (fmt, tracks, division), messages


def test_midi_structure_and_note_times(tmp_path: Path) -> None:
    write_events(tmp_path / "song.mid", EVENTS, "midi")
    data = (tmp_path / "song.mid").read_bytes()
    assert data.startswith(b"MThd") and b"MTrk" in data
    header, messages = parse_midi(data)
    assert header == (0, 1, 480)
    assert messages[-1][1] == b"\xff\x2f\x00"  # end of track
    note_ons = [(tick, msg[1], msg[2]) for tick, msg in messages if msg[0] == 0x99]
    ticks_per_s = 960  # 480 ticks per beat at 120 bpm
    assert note_ons == [(240, 36, 90), (480, 42, 100), (1185, 38, 12), (58560, 42, 100)]
    assert all(tick / ticks_per_s == pytest.approx(e.time_s, abs=1 / ticks_per_s) for (tick, _, _), e in
               zip(note_ons, EVENTS, strict=True))
    note_offs = [tick for tick, msg in messages if msg[0] == 0x89]
    assert note_offs == [tick + 48 for tick, _, _ in note_ons]  # 50 ms notes


def test_midi_note_map_overrides_defaults() -> None:
    _, messages = parse_midi(to_midi([Event(0.0, "KD"), Event(0.1, "clap")], midi_notes={"KD": 35, "clap": 39}))
    assert [msg[1] for _, msg in messages if msg[0] == 0x99] == [35, 39]


def test_unknown_format_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EventcountError, match="unknown output format 'xml'"):
        get_writer("xml")
    with pytest.raises(EventcountError, match="unknown output format"):
        write_events(tmp_path / "song.xml", EVENTS, "xml")
    assert list(tmp_path.iterdir()) == []


def test_failed_midi_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "song.mid"
    with pytest.raises(EventcountError, match="no MIDI note for class 'cowbell'"):
        write_events(target, [Event(0.1, "KD"), Event(0.2, "cowbell")], "midi")
    assert not target.exists()
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "song.events.tsv"
    write_events(target, EVENTS[:1])
    before = target.read_text()
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("half a file")
        raise RuntimeError("interrupted")
    assert target.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.events.tsv"]


def test_overwrite_replaces_content(tmp_path: Path) -> None:
    target = tmp_path / "song.events.tsv"
    write_events(target, EVENTS)
    write_events(target, EVENTS[:2])
    assert read_events(target) == EVENTS[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.events.tsv"]


def test_written_files_get_the_permissions_of_a_plain_open(tmp_path: Path) -> None:
    plain, atomic = tmp_path / "plain.txt", tmp_path / "atomic.txt"
    plain.write_text("x")
    with atomic_write(atomic) as handle:
        handle.write("x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    os.chmod(atomic, 0o640)  # an existing file keeps its permissions when overwritten
    with atomic_write(atomic) as handle:
        handle.write("y")
    assert stat.S_IMODE(atomic.stat().st_mode) == 0o640
