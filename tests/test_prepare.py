"""Making count labels from timestamps (windows, counts per class) and checking a count sheet against files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from eventcount.annotations import Event
from eventcount.errors import EventcountError
from eventcount.labels import read_count_table, write_count_table
from eventcount.prepare import check_count_table, make_count_table, windows
from eventcount.writers import write_events

RATE = 8000


def recording(path: Path, duration_s: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(duration_s * RATE), np.float32), RATE)
    return path


def test_windows_cover_the_recording() -> None:
    assert windows(2.0, 0.5, None) == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0)]
    assert windows(1.0, 0.5, 0.25) == [(0.0, 0.5), (0.25, 0.75), (0.5, 1.0), (0.75, 1.0)]  # last: exactly half
    assert windows(3.0, None, None) == [(None, None)]


def test_last_partial_window_kept_only_when_long_enough() -> None:
    assert windows(1.3, 0.5, None) == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.3)]  # 0.3 s >= half a window
    assert windows(1.2, 0.5, None) == [(0.0, 0.5), (0.5, 1.0)]  # 0.2 s < half a window: dropped
    assert windows(0.1, 0.5, None) == [(0.0, 0.1)]  # a recording shorter than a window still gives one


def test_make_count_table_counts_per_window_and_class(tmp_path: Path) -> None:
    a = recording(tmp_path / "audio" / "a.wav", 2.0)
    b = recording(tmp_path / "audio" / "b.wav", 1.0)
    events = tmp_path / "events"
    write_events(events / "a.events.tsv", [Event(0.1, "36"), Event(0.2, "38"), Event(0.5, "36"), Event(0.99, "35"),
                                           Event(1.7, "42"), Event(1.9, "38")])
    write_events(events / "b.events.tsv", [Event(0.3, "38")])
    class_map = {"35": "KD", "36": "KD", "38": "SD"}  # 42 is unmapped: dropped
    table = make_count_table([a, b], events, class_map=class_map, window_s=0.5)
    assert table.classes == ["KD", "SD"]
    rows = [(clip.path.name, clip.start_s, clip.end_s, clip.counts) for clip in table.clips]
    assert rows == [
        ("a.wav", 0.0, 0.5, [1, 1]),
        ("a.wav", 0.5, 1.0, [2, 0]),  # an event at the window start belongs to that window
        ("a.wav", 1.0, 1.5, [0, 0]),
        ("a.wav", 1.5, 2.0, [0, 1]),
        ("b.wav", 0.0, 0.5, [0, 1]),
        ("b.wav", 0.5, 1.0, [0, 0]),
    ]


def test_make_count_table_whole_files_and_classes_from_events(tmp_path: Path) -> None:
    a = recording(tmp_path / "a.wav", 1.0)
    write_events(tmp_path / "a.events.tsv", [Event(0.1, "snare"), Event(0.2, "kick"), Event(0.9, "kick")])
    table = make_count_table([a], window_s=None)
    assert table.classes == ["kick", "snare"]
    assert [(c.start_s, c.end_s, c.counts) for c in table.clips] == [(None, None, [2, 1])]


def test_make_count_table_without_classes_is_an_error(tmp_path: Path) -> None:
    a = recording(tmp_path / "a.wav", 1.0)
    write_events(tmp_path / "a.events.tsv", [])
    with pytest.raises(EventcountError, match="no classes"):
        make_count_table([a])


def test_check_count_table_reports_windows_beyond_the_file(tmp_path: Path) -> None:
    recording(tmp_path / "a.wav", 1.0)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,start_s,end_s,KD\na.wav,0,0.5,1\na.wav,0.5,1.6,2\na.wav,1.2,1.7,0\nmissing.wav,,,3\n")
    summary = check_count_table(read_count_table(labels))
    assert summary.problems[0] == f"{labels}:3: window ends at 1.6 s but a.wav is only 1.000 s long"
    assert f"{labels}:4: window ends at 1.7 s" in summary.problems[1]
    assert f"{labels}:4: window starts at 1.2 s, after the end of a.wav" in summary.problems[2]
    assert summary.problems[3].startswith(f"{labels}:5: recording ")
    assert len(summary.problems) == 4
    assert (summary.recordings, summary.clips, summary.max_count, summary.suggested_cmax) == (2, 4, 3, 4)
    assert summary.events == {"KD": 6}
    assert summary.duration_s == pytest.approx(1.0)


def test_a_made_table_checks_clean(tmp_path: Path) -> None:
    a = recording(tmp_path / "a.wav", 1.3)
    write_events(tmp_path / "a.events.tsv", [Event(0.1, "kd")])
    path = tmp_path / "labels.csv"
    write_count_table(path, make_count_table([a], window_s=0.5))
    summary = check_count_table(read_count_table(path))
    assert summary.problems == []
    assert summary.duration_s == pytest.approx(1.3)



def test_check_reports_a_count_the_clip_cannot_hold(tmp_path: Path) -> None:
    """A 0.25 s clip has 25 frames at 100 frames/s; a whole 1 s file 99 (its first frame reports nothing: the
    detection delay)."""
    recording(tmp_path / "a.wav", 1.0)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,start_s,end_s,KD,SD\na.wav,0,0.25,25,3\na.wav,0.25,0.5,2,26\na.wav,,,99,100\n")
    summary = check_count_table(read_count_table(labels))
    assert summary.problems == [
        f"{labels}:3: class 'SD' count 26 is more than the clip can hold (at most 25: one event per frame at "
        "100 frames/s)",
        f"{labels}:4: class 'SD' count 100 is more than the clip can hold (at most 99: one event per frame at "
        "100 frames/s)"]
