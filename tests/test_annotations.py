"""Reading event files in every supported layout, class maps, and finding a recording's event file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eventcount.annotations import Event, events_by_class, read_class_map, read_events
from eventcount.errors import EventcountError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_tsv_with_header_comments_and_confidence(tmp_path: Path) -> None:
    path = write(tmp_path / "a.events.tsv", "time_s\tlabel\tconfidence\n# a comment\n\n1.5\tSD\t0.8\n0.25\tKD\t0.9\n")
    assert read_events(path) == [Event(0.25, "KD", 0.9), Event(1.5, "SD", 0.8)]


def test_tsv_with_comment_lines_before_the_header(tmp_path: Path) -> None:
    path = write(tmp_path / "a.events.tsv", "# exported by a tool\n# second comment\ntime_s\tlabel\n0.5\tKD\n")
    assert read_events(path) == [Event(0.5, "KD")]


def test_a_header_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "0.5\tKD\ntime_s\tlabel\n")
    with pytest.raises(EventcountError, match=r"a\.tsv:2:"):
        read_events(path)


def test_one_column_txt_uses_default_label(tmp_path: Path) -> None:
    path = write(tmp_path / "beats.txt", "0.5\n1.0\n  1.5  \n")
    assert read_events(path, default_label="beat") == [Event(0.5, "beat"), Event(1.0, "beat"), Event(1.5, "beat")]


def test_space_separated_madmom_style(tmp_path: Path) -> None:
    path = write(tmp_path / "drums.txt", "0.100 36\n0.350 38\n")
    assert read_events(path) == [Event(0.1, "36"), Event(0.35, "38")]


def test_audacity_labels(tmp_path: Path) -> None:
    text = "0.500000\t0.500000\tKD\n\\\t100.0\t2000.0\n1.250000\t1.300000\tSD\n"
    path = write(tmp_path / "take.labels.txt", text)
    assert read_events(path) == [Event(0.5, "KD"), Event(1.25, "SD")]


def test_audacity_labels_that_are_numbers_or_empty(tmp_path: Path) -> None:
    path = write(tmp_path / "take.labels.txt", "0.5\t0.5\t36\n0.75\t0.8\t\n")
    assert read_events(path, default_label="hit") == [Event(0.5, "36"), Event(0.75, "hit")]


@pytest.mark.parametrize("column", ["time_s", "onset", "Time"])
def test_csv_with_named_time_column(tmp_path: Path, column: str) -> None:
    path = write(tmp_path / "a.csv", f"label,{column},score\nHH,0.75,0.5\nKD,0.25,\n")
    assert read_events(path) == [Event(0.25, "KD"), Event(0.75, "HH", 0.5)]


def test_csv_without_header_is_read_as_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "0.5,KD\n1.0,SD\n")
    assert read_events(path) == [Event(0.5, "KD"), Event(1.0, "SD")]


def test_csv_without_time_column_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "when,what\n0.5,KD\n")
    with pytest.raises(EventcountError, match=r"a\.csv:1: no time column"):
        read_events(path)


@pytest.mark.parametrize(("name", "text", "where"), [
    ("bad.tsv", "0.5\tKD\n0.x7\tSD\n", "bad.tsv:2:"),
    ("bad.csv", "time_s,label\n0.5,KD\n\n1.o,SD\n", "bad.csv:4:"),
    ("bad.txt", "# c\n0.5\nnan\n", "bad.txt:3:"),
    ("neg.tsv", "0.5\n-1.0\n", "neg.tsv:2:"),
])
def test_bad_numbers_name_file_and_line(tmp_path: Path, name: str, text: str, where: str) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(EventcountError) as info:
        read_events(path)
    assert f"{path.parent / where}" in str(info.value)


def test_unreadable_event_files(tmp_path: Path) -> None:
    with pytest.raises(EventcountError, match="cannot read"):
        read_events(tmp_path / "missing.tsv")
    (tmp_path / "binary.tsv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(EventcountError, match="not a text event file"):
        read_events(tmp_path / "binary.tsv")


def test_class_map_class_to_list_layout(tmp_path: Path) -> None:
    path = write(tmp_path / "map.yaml", "KD: [35, 36]\nSD: [38, 40]\n")
    assert read_class_map(path) == {"35": "KD", "36": "KD", "38": "SD", "40": "SD"}


def test_class_map_raw_to_class_layout(tmp_path: Path) -> None:
    path = write(tmp_path / "map.yaml", "36: KD\n38: SD\nrim: SD\n")
    assert read_class_map(path) == {"36": "KD", "38": "SD", "rim": "SD"}


def test_class_map_rejects_nested_values(tmp_path: Path) -> None:
    path = write(tmp_path / "map.yaml", "KD:\n  a: 1\n")
    with pytest.raises(EventcountError, match="KD"):
        read_class_map(path)


def test_events_by_class_with_map_drops_unmapped() -> None:
    events = [Event(2.0, "36"), Event(1.0, "35"), Event(1.5, "38"), Event(0.5, "99")]
    grouped = events_by_class(events, ["KD", "SD", "HH"], {"35": "KD", "36": "KD", "38": "SD"})
    assert set(grouped) == {"KD", "SD", "HH"}
    assert grouped["KD"].tolist() == [1.0, 2.0]
    assert grouped["SD"].tolist() == [1.5]
    assert grouped["HH"].size == 0 and grouped["HH"].dtype == np.float64



@pytest.mark.parametrize("name", ["ref.txt", "ref.tsv", "ref.events.tsv"])
def test_a_lone_line_that_is_not_a_number_is_an_error(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, "# reference\nabc\n")
    with pytest.raises(EventcountError, match=rf"{name}:2: expected the event time in seconds \(first column\) "
                                              r"as a number, got 'abc'"):
        read_events(path)


def test_a_header_alone_means_no_events(tmp_path: Path) -> None:
    assert read_events(write(tmp_path / "a.tsv", "time_s\tlabel\n")) == []
    assert read_events(write(tmp_path / "b.tsv", "# time_s\tlabel\tconfidence\n")) == []
    assert read_events(write(tmp_path / "c.txt", "")) == []
