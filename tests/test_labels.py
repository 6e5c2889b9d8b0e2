"""Count-label CSV: validation errors with line numbers, and a write/read round trip with relative paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventcount.errors import EventcountError
from eventcount.labels import Clip, CountTable, read_count_table, write_count_table


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_clips_classes_and_paths(tmp_path: Path) -> None:
    path = write(tmp_path / "labels.csv", "path,start_s,end_s,KD,SD\na.wav,0,1.5,3,5\n\n/abs/b.wav,,,0,1\n")
    table = read_count_table(path)
    assert table.classes == ["KD", "SD"]
    rows = [(clip.path, clip.start_s, clip.end_s, clip.counts, clip.line) for clip in table.clips]
    assert rows == [(tmp_path / "a.wav", 0.0, 1.5, [3, 5], 2), (Path("/abs/b.wav"), None, None, [0, 1], 4)]
    second = table.clips[1]
    assert table.where(second) == f"{path}:4"


def test_columns_in_any_order(tmp_path: Path) -> None:
    path = write(tmp_path / "labels.csv", "KD,path,end_s,start_s\n2,a.wav,1.0,0.5\n")
    clip = read_count_table(path).clips[0]
    assert (clip.start_s, clip.end_s, clip.counts) == (0.5, 1.0, [2])


@pytest.mark.parametrize(("text", "message"), [
    ("path,start_s,KD\na.wav,0,1\n", r"labels\.csv:1: missing column\(s\) end_s"),
    ("path,start_s,end_s\na.wav,0,1\n", r"labels\.csv:1: no class columns"),
    ("path,start_s,end_s,KD\na.wav,0,1,2\na.wav,1,2,2.5\n", r"labels\.csv:3: count for class 'KD' must be an integer"),
    ("path,start_s,end_s,KD\na.wav,0,1,-1\n", r"labels\.csv:2: count for class 'KD' must be >= 0"),
    ("path,start_s,end_s,KD\na.wav,0,1,1\n\na.wav,2,2,1\n", r"labels\.csv:4: end_s 2\.0 must be greater than start_s"),
    ("path,start_s,end_s,KD\na.wav,1.5,0.5,1\n", r"labels\.csv:2: end_s"),
    ("path,start_s,end_s,KD\na.wav,0,1\n", r"labels\.csv:2: expected 4 fields, got 3"),
    ("path,start_s,end_s,KD\na.wav,0,1,1,7\n", r"labels\.csv:2: expected 4 fields, got 5"),
    ("path,start_s,end_s,KD\na.wav,zero,1,1\n", r"labels\.csv:2: column 'start_s' must be seconds"),
    ("path,start_s,end_s,KD\na.wav,-1,1,1\n", r"labels\.csv:2: column 'start_s' must be a finite number >= 0"),
    ("path,start_s,end_s,KD\n,0,1,1\n", r"labels\.csv:2: empty 'path'"),
    ("path,start_s,end_s,KD\n", r"labels\.csv: no clips"),
    ("", r"labels\.csv: empty labels file"),
])
def test_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "labels.csv", text)
    with pytest.raises(EventcountError, match=message):
        read_count_table(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EventcountError, match="cannot read labels"):
        read_count_table(tmp_path / "nope.csv")


def test_round_trip_with_relative_paths(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    outside = tmp_path.parent / "elsewhere.wav"
    table = CountTable(["KD", "HH"], [
        Clip(audio / "a.wav", 0.0, 0.5, [1, 0]),
        Clip(audio / "sub" / "b.wav", None, None, [4, 12]),
        Clip(outside, 1.25, 2.0, [0, 0]),
    ])
    path = tmp_path / "labels.csv"
    write_count_table(path, table)
    lines = path.read_text().splitlines()
    assert lines[0] == "path,start_s,end_s,KD,HH"
    assert lines[1] == "audio/a.wav,0,0.5,1,0"
    assert lines[2] == "audio/sub/b.wav,,,4,12"
    assert lines[3].startswith(str(outside.resolve()))
    back = read_count_table(path)
    assert back.classes == table.classes
    for written, read in zip(table.clips, back.clips, strict=True):
        assert read.path.resolve() == written.path.resolve()
        assert (read.start_s, read.end_s, read.counts) == (written.start_s, written.end_s, written.counts)


def test_recordings_are_distinct_in_first_seen_order() -> None:
    table = CountTable(["KD"], [Clip(Path("b.wav"), 0, 1, [0]), Clip(Path("a.wav"), 0, 1, [0]),
                                Clip(Path("b.wav"), 1, 2, [1])])
    assert table.recordings() == [Path("b.wav"), Path("a.wav")]


def test_byte_order_mark_and_spaces_in_header(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes("\ufeffpath, start_s ,end_s, KD\na.wav,0,1, 2 \n".encode())
    table = read_count_table(path)
    assert table.classes == ["KD"]
    assert table.clips[0].counts == [2]


def test_linked_recordings_keep_their_names(tmp_path: Path) -> None:
    """A link named after its recording (many sensor files are all called accelerometer.csv) is not resolved."""
    original = tmp_path / "walk1" / "accelerometer.csv"
    original.parent.mkdir()
    original.write_text("0,1\n", encoding="utf-8")
    link = tmp_path / "train" / "walk1.csv"
    link.parent.mkdir()
    link.symlink_to(original)
    labels = tmp_path / "labels.csv"
    write_count_table(labels, CountTable(["step"], [Clip(link, 0.0, 5.0, [9])]))
    assert "train/walk1.csv" in labels.read_text(encoding="utf-8")
    assert read_count_table(labels).clips[0].path == link


def test_a_sheet_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes("path,start_s,end_s,KD\na.wav,0,1,1\nb\u00e9.wav,0,1,2\n".encode("latin-1"))
    with pytest.raises(EventcountError, match=r"labels\.csv:3: not UTF-8 text \(byte 0xe9 at column 2\); save"):
        read_count_table(path)


@pytest.mark.parametrize(("header", "name", "columns"), [
    ("path,start_s,end_s,KD,SD,KD", "KD", "4 and 6"),
    ("path,start_s,end_s,KD,path", "path", "1 and 5"),
    ("path,start_s,end_s,KD, KD ", "KD", "4 and 5"),
])
def test_a_duplicate_column_is_named(tmp_path: Path, header: str, name: str, columns: str) -> None:
    row = ",".join(["a.wav", "0", "1"] + ["1"] * (header.count(",") - 2))
    path = write(tmp_path / "labels.csv", f"{header}\n{row}\n")
    with pytest.raises(EventcountError, match=rf"labels\.csv:1: column '{name}' appears twice \(columns {columns}\)"):
        read_count_table(path)
