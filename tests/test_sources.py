"""Listing recordings in folders and archives, spooling them in bounded memory, sharding, output paths."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from eventcount.errors import EventcountError
from eventcount.pseudolabel import sources
from eventcount.pseudolabel.shards import parse_shard, select_shard, shard_of
from eventcount.pseudolabel.sources import Problem, SourceItem, label_path, list_recordings
from eventcount.pseudolabel.spool import DEFAULT_MAX_BYTES, TooLargeError, copy_limited, iter_readable

AUDIO = {".wav", ".flac"}
TAR_MODES = {"songs.tar": "w", "songs.tar.gz": "w:gz", "songs.tgz": "w:gz", "songs.tar.bz2": "w:bz2",
             "songs.tar.xz": "w:xz"}


def read_all(tmp_path: Path, items, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[SourceItem, bytes | Problem]:
    """What iter_readable yields, as each recording's bytes (spool copies released) or its Problem."""
    items, spool = list(items), tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    results: dict[SourceItem, bytes | Problem] = {}
    for readable in iter_readable(items, spool, max_bytes):
        if isinstance(readable, Problem):
            results[next(i for i in items if i.key == readable.key)] = readable
            continue
        assert Path(readable.path).is_file()
        results[readable.item] = Path(readable.path).read_bytes()
        readable.release()
    assert list(spool.iterdir()) == []  # nothing left behind, not even a partial copy of a refused member
    return results


def read_one(tmp_path: Path, item: SourceItem, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    [data] = read_all(tmp_path, [item], max_bytes).values()
    if isinstance(data, Problem):
        raise EventcountError(f"{item.key}: {data.message}")
    return data


def make_tar(path: Path, members: list[tuple[str, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def add_tar_special(path: Path, name: str, kind: bytes, target: str = "a.wav") -> None:
    """Append a link or device member to an uncompressed tar."""
    with tarfile.open(path, "a") as archive:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        archive.addfile(info)


def make_zip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names; tests make them on purpose
        for name, data in members:
            archive.writestr(name, data)
    return path


def write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def keys(recordings: list[SourceItem]) -> list[str]:
    return [rec.key for rec in recordings]


def test_directory_is_walked_sorted_and_filtered(tmp_path: Path) -> None:
    root = tmp_path / "dir"
    for rel in ["sub/b.wav", "sub/a.WAV", "c.flac", "notes.txt", "._c.flac", "__MACOSX/sub/x.wav"]:
        write(root / rel, rel.encode())
    recordings, problems = list_recordings([root], AUDIO)
    assert keys(recordings) == ["dir/c.flac", "dir/sub/a.WAV", "dir/sub/b.wav"]
    assert problems == []
    assert recordings[1].source == str(root / "sub" / "a.WAV") and recordings[1].member is None
    assert recordings[1].size == len(b"sub/a.WAV")


def test_single_file_missing_source_and_wrong_extension(tmp_path: Path) -> None:
    wav = write(tmp_path / "x" / "a.wav")
    txt = write(tmp_path / "notes.txt")
    recordings, problems = list_recordings([wav, tmp_path / "gone.wav", txt, wav], AUDIO)
    assert keys(recordings) == ["a.wav"]
    assert [(p.status, "does not exist" in p.message) for p in problems] == [("error", True), ("skipped", False)]
    assert "not a recording" in problems[1].message


def test_glob_matches_the_path_inside_the_source(tmp_path: Path) -> None:
    for rel in ["disc1/a.wav", "disc2/a.wav", "disc1/deep/b.wav"]:
        write(tmp_path / "dir" / rel)
    make_zip(tmp_path / "z.zip", [("disc1/c.wav", b"1"), ("disc2/c.wav", b"2")])
    recordings, _ = list_recordings([tmp_path / "dir", tmp_path / "z.zip"], AUDIO, glob="disc1/*")
    assert keys(recordings) == ["dir/disc1/a.wav", "dir/disc1/deep/b.wav", "z.zip/disc1/c.wav"]


@pytest.mark.parametrize("name", [*TAR_MODES, "songs.zip"])
def test_archive_members_become_keys_under_the_archive_name(tmp_path: Path, name: str) -> None:
    members = [("disc1/a.wav", b"aa"), ("./disc1/b.flac", b"bbb"), ("readme.txt", b"r"), ("disc2/", b"")]
    path = tmp_path / name
    if name.endswith(".zip"):
        make_zip(path, members)
    else:
        make_tar(path, [m for m in members if not m[0].endswith("/")], TAR_MODES[name])
    recordings, problems = list_recordings([path], AUDIO)
    assert problems == []
    assert recordings == [
        SourceItem(str(path), "disc1/a.wav", f"{name}/disc1/a.wav", 2),
        SourceItem(str(path), "./disc1/b.flac", f"{name}/disc1/b.flac", 3),
    ]


def test_archives_inside_a_folder_are_listed(tmp_path: Path) -> None:
    write(tmp_path / "data" / "b.wav")
    make_tar(write(tmp_path / "data" / "part" / "s.tgz"), [("a.wav", b"1")])
    recordings, _ = list_recordings([tmp_path / "data"], AUDIO)
    assert keys(recordings) == ["data/b.wav", "data/part/s.tgz/a.wav"]
    assert read_one(tmp_path, recordings[1]) == b"1"


def test_output_folder_is_excluded(tmp_path: Path) -> None:
    write(tmp_path / "data" / "a.wav")
    write(tmp_path / "data" / "labels" / "a.wav")
    recordings, _ = list_recordings([tmp_path / "data"], AUDIO, exclude=[tmp_path / "data" / "labels"])
    assert keys(recordings) == ["data/a.wav"]


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_unsafe_member_names_are_reported_and_never_escape(tmp_path: Path, kind: str) -> None:
    members = [("../../x.wav", b"1"), ("/etc/x.wav", b"2"), ("a/../../y.wav", b"3"), ("C:\\z.wav", b"4"),
               ("..\\w.wav", b"5"), ("ok.wav", b"6")]
    path = make_zip(tmp_path / "evil.zip", members) if kind == "zip" else make_tar(tmp_path / "evil.tgz", members)
    recordings, problems = list_recordings([path], AUDIO)
    assert keys(recordings) == [f"{path.name}/ok.wav"]
    assert len(problems) == 5 and all("unsafe member name" in p.message for p in problems)
    assert {p.member for p in problems} == {name for name, _ in members[:5]}
    outdir = tmp_path / "out"
    for rec in recordings:
        assert label_path(outdir, rec.key, ".tsv").resolve().is_relative_to(outdir.resolve())
    for problem in problems:  # a problem key is a label: used as a path it is refused
        with pytest.raises(EventcountError):
            label_path(outdir, problem.key, ".tsv")


def test_links_and_devices_in_a_tar_are_reported(tmp_path: Path) -> None:
    path = make_tar(tmp_path / "t.tar", [("a.wav", b"1")], "w")
    add_tar_special(path, "link.wav", tarfile.SYMTYPE, "/etc/passwd")
    add_tar_special(path, "hard.wav", tarfile.LNKTYPE)
    add_tar_special(path, "dev.wav", tarfile.CHRTYPE)
    add_tar_special(path, "lib", tarfile.SYMTYPE, "/usr/lib")  # not a recording name: not reported
    recordings, problems = list_recordings([path], AUDIO)
    assert keys(recordings) == ["t.tar/a.wav"]
    assert [p.message.split(" is ")[1] for p in problems] == [
        "a symbolic link; only regular files are read",
        "a hard link; only regular files are read",
        "a device or pipe; only regular files are read",
    ]


def test_symlink_in_a_zip_is_reported_and_blocks_a_later_same_name(tmp_path: Path) -> None:
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w") as archive:
        link = zipfile.ZipInfo("link.wav")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
        archive.writestr("a.wav", b"1")
    with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as archive:
        warnings.simplefilter("ignore")
        archive.writestr("link.wav", b"regular, but second")
    recordings, problems = list_recordings([path], AUDIO)
    assert keys(recordings) == ["z.zip/a.wav"]
    assert [p.key for p in problems] == ["z.zip/link.wav", "z.zip/link.wav#2"]
    assert "symbolic link" in problems[0].message and "same output name" in problems[1].message


def test_duplicate_names_keep_the_first_and_read_it(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "z.zip", [("a.wav", b"first"), ("a.wav", b"second"), ("b.wav", b"b")])
    recordings, problems = list_recordings([path], AUDIO)
    assert keys(recordings) == ["z.zip/a.wav", "z.zip/b.wav"]
    assert [(p.key, p.status) for p in problems] == [("z.zip/a.wav#2", "skipped")]
    assert read_one(tmp_path, recordings[0]) == b"first"


def test_names_equal_after_cleaning_collide(tmp_path: Path) -> None:
    members = [("a/./b.wav", b"1"), ("a/b.wav", b"2"), ("a//b.flac", b"3"), ("A/B.wav", b"4"), ("a/c.wav", b"5")]
    path = make_tar(tmp_path / "t.tar", members, "w")
    recordings, problems = list_recordings([path], AUDIO)
    assert [(r.key, r.member) for r in recordings] == [("t.tar/a/b.wav", "a/./b.wav"), ("t.tar/a/c.wav", "a/c.wav")]
    assert [p.member for p in problems] == ["a/b.wav", "a//b.flac", "A/B.wav"]
    assert len({p.key for p in problems} | set(keys(recordings))) == 5  # every key unique
    data = dict(read_all(tmp_path, recordings))
    assert data[recordings[0]] == b"1"


def test_same_file_name_from_two_sources_collides(tmp_path: Path) -> None:
    first, second = write(tmp_path / "x" / "a.wav", b"1"), write(tmp_path / "y" / "a.wav", b"2")
    recordings, problems = list_recordings([first, second], AUDIO)
    assert [r.source for r in recordings] == [str(first)]
    assert problems[0].source == str(second) and problems[0].key == "a.wav#2"


def test_corrupt_archives_are_reported_and_listing_goes_on(tmp_path: Path) -> None:
    bad_zip = write(tmp_path / "bad.zip", b"not a zip at all")
    bad_tgz = write(tmp_path / "bad.tar.gz", b"\x1f\x8b but not really gzip")
    good = write(tmp_path / "a.wav")
    recordings, problems = list_recordings([bad_zip, bad_tgz, good], AUDIO)
    assert keys(recordings) == ["a.wav"]
    assert [(p.key, p.status) for p in problems] == [("bad.zip", "error"), ("bad.tar.gz", "error")]


def test_truncated_tgz_keeps_what_was_listed_and_reports_the_rest(tmp_path: Path) -> None:
    payloads = [(f"{i}.wav", os.urandom(200_000)) for i in range(4)]
    path = make_tar(tmp_path / "t.tgz", payloads)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    recordings, problems = list_recordings([path], AUDIO)
    assert 1 <= len(recordings) < 4
    assert [(p.key, p.status) for p in problems] == [("t.tgz", "error")]
    results = dict(read_all(tmp_path, recordings))
    assert results[recordings[0]] == payloads[0][1]
    assert isinstance(results[recordings[-1]], Problem)  # its data was cut off


@pytest.mark.parametrize("name", ["bomb.tar.gz", "bomb.zip"])
def test_compression_bomb_is_reported_not_read(tmp_path: Path, name: str) -> None:
    members = [("bomb.wav", bytes(50 * 1024**2)), ("ok.wav", b"fine")]
    path = make_zip(tmp_path / name, members) if name.endswith(".zip") else make_tar(tmp_path / name, members)
    assert path.stat().st_size < 1024**2
    recordings, _ = list_recordings([path], AUDIO)
    results = dict(read_all(tmp_path, recordings, max_bytes=1024**2))
    bomb, ok = recordings
    assert results[ok] == b"fine"
    assert isinstance(results[bomb], Problem) and "more than the limit" in results[bomb].message
    with pytest.raises(EventcountError, match="limit"):
        read_one(tmp_path, bomb, max_bytes=1024**2)


class Endless(io.RawIOBase):
    """A stream of zeros that never ends (a member whose size header lies), counting what is read."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        buffer[:] = bytes(len(buffer))
        self.served += len(buffer)
        return len(buffer)


def test_copy_limited_stops_just_past_the_limit() -> None:
    stream = Endless()
    with pytest.raises(TooLargeError, match="once decompressed"):
        copy_limited(stream, io.BytesIO(), 3 * 1024**2 + 5, declared=10)
    assert stream.served == 3 * 1024**2 + 6
    target = io.BytesIO()
    assert copy_limited(io.BytesIO(b"abc"), target, 3) == 3 and target.getvalue() == b"abc"
    with pytest.raises(TooLargeError):
        copy_limited(io.BytesIO(b"abcd"), io.BytesIO(), 3)
    with pytest.raises(TooLargeError, match="not read"):
        copy_limited(stream, io.BytesIO(), 3, declared=4)


def make_mixed_sources(tmp_path: Path) -> tuple[list[Path], dict[str, bytes]]:
    """A folder, a plain tar, a tar.gz and a zip, and the bytes expected for every key."""
    expected: dict[str, bytes] = {}
    for i in range(3):
        expected[f"dir/s{i}/r.wav"] = write(tmp_path / "dir" / f"s{i}" / "r.wav", os.urandom(1000 + i)).read_bytes()
    members = [(f"m/{i}.wav", os.urandom(500 + i)) for i in range(5)]
    paths = [tmp_path / "dir", make_tar(tmp_path / "p.tar", members, "w"), make_tar(tmp_path / "c.tar.gz", members),
             make_zip(tmp_path / "z.zip", members)]
    for path in paths[1:]:
        expected.update({f"{path.name}/{member}": data for member, data in members})
    return paths, expected


def test_streaming_yields_the_same_bytes_as_direct_reads(tmp_path: Path, monkeypatch) -> None:
    paths, expected = make_mixed_sources(tmp_path)
    recordings, problems = list_recordings(paths, AUDIO)
    assert problems == [] and sorted(keys(recordings)) == sorted(expected)
    opened = []
    real_open = tarfile.open
    monkeypatch.setattr(sources.tarfile, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    streamed = list(read_all(tmp_path, reversed(recordings)).items())
    assert len(opened) == 2  # each tar once, whatever the number of members
    assert sorted(rec.key for rec, _ in streamed) == sorted(expected)
    for rec, data in streamed:
        assert data == expected[rec.key] == read_one(tmp_path, rec)


def test_streaming_a_subset_yields_only_that_subset(tmp_path: Path) -> None:
    paths, expected = make_mixed_sources(tmp_path)
    recordings, _ = list_recordings(paths, AUDIO)
    subset = recordings[1::3]
    streamed = list(read_all(tmp_path, subset + subset[:1]).items())
    assert sorted(rec.key for rec, _ in streamed) == sorted(rec.key for rec in subset)
    assert all(data == expected[rec.key] for rec, data in streamed)


def test_a_member_gone_since_listing_is_a_problem(tmp_path: Path) -> None:
    path = make_tar(tmp_path / "t.tgz", [("a.wav", b"1"), ("b.wav", b"2")])
    recordings, _ = list_recordings([path], AUDIO)
    make_tar(path, [("a.wav", b"1")])
    results = dict(read_all(tmp_path, recordings))
    assert results[recordings[0]] == b"1"
    assert "not found" in results[recordings[1]].message


def test_shards_partition_the_keys_stably() -> None:
    items = [SourceItem("s", None, f"dir/{i}.wav", 1) for i in range(1000)]
    shards = [select_shard(items, i, 4) for i in range(4)]
    assert sorted(rec.key for shard in shards for rec in shard) == sorted(rec.key for rec in items)
    assert sum(len(shard) for shard in shards) == len(items)
    assert all(150 < len(shard) < 350 for shard in shards)
    assert select_shard(items, 2, 4) == shards[2]
    # pinned (first 8 bytes of `printf KEY | sha256sum`, mod n): must never change between versions
    assert (shard_of("songs.tar.gz/disc1/a.wav", 4), shard_of("dir/a.wav", 7)) == (2, 6)
    assert select_shard(items, 0, 1) == items


@pytest.mark.parametrize("text, expected", [("0/4", (0, 4)), ("3/4", (3, 4)), (" 1 / 2 ", (1, 2))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["4/4", "1/0", "-1/2", "1", "a/b", "1/2/3"])
def test_parse_shard_refuses_bad_input_naming_the_0_based_rule(text: str) -> None:
    with pytest.raises(EventcountError, match="0-based"):
        parse_shard(text)


def test_output_path_drops_the_extension_and_stays_inside(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert label_path(out, "songs.tar.gz/disc1/a.wav", ".events.tsv") == out / "songs.tar.gz/disc1/a.events.tsv"
    assert label_path(out, "a.wav", ".events.tsv") == out / "a.events.tsv"
    for key in ["../a.wav", "/etc/a.wav", "a/../../b.wav", ""]:
        with pytest.raises(EventcountError):
            label_path(out, key, ".tsv")
    with pytest.raises(EventcountError):
        label_path(out, "a.wav", "/../x")


def test_output_path_refuses_a_link_leading_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "songs.tar.gz").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(EventcountError, match="outside"):
        label_path(out, "songs.tar.gz/a.wav", ".tsv")
