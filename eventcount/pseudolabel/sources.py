"""Listing what to label: recordings in files, folders and tar/zip archives, each with a key naming its output.

Every recording gets a `key`: a sanitised relative POSIX path, unique within one listing and stable across
runs (`songs.tar.gz/disc1/a.wav`, `dir/sub/a.wav`, `a.wav`). It names the output file (`label_name`) and
identifies the recording in the manifest. Listing reads no member data (`spool` reads members later).
Whatever is passed over is returned as a `Problem` to report.
"""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from eventcount.errors import EventcountError

ArchiveKind = Literal["zip", "tar"]
ARCHIVE_SUFFIXES: dict[str, ArchiveKind] = {
    ".zip": "zip", ".tar": "tar", ".tar.gz": "tar", ".tgz": "tar", ".tar.bz2": "tar", ".tbz2": "tar",
    ".tar.xz": "tar", ".txz": "tar",
}
_DECOMPRESSORS: dict[bytes, Callable[..., IO[bytes]]] = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open,
                                                        b"\xfd7zXZ\x00": lzma.open}
# What a damaged or hostile archive can raise while being listed or read (UnicodeDecodeError is a ValueError).
READ_ERRORS = (OSError, EOFError, ValueError, RuntimeError, tarfile.TarError, zipfile.BadZipFile, zlib.error,
               lzma.LZMAError)
_SEPARATORS = re.compile(r"[/\\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")

ProblemStatus = Literal["skipped", "error"]


@dataclass(frozen=True)
class SourceItem:
    """One recording: a file (`member` None, `source` its path) or an archive member (`source` the archive)."""

    source: str
    member: str | None
    key: str
    size: int | None


@dataclass(frozen=True)
class Problem:
    """Something passed over, to report in the manifest.

    `key` is unique among one listing's recordings and problems but is a label, never a path: it may hold the
    raw unsafe member name, or end in `#2` for the second of two identical names. `status` is "skipped" for
    what is left out on purpose (links, unsafe or colliding names) and "error" for what could not be read.
    """

    key: str
    source: str
    member: str | None
    message: str
    status: ProblemStatus = "skipped"

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass(frozen=True)
class _Member:
    """An archive entry other than a directory; `unsupported` says why it cannot be read, if it cannot."""

    name: str
    size: int
    unsupported: str | None


@dataclass(frozen=True)
class _Filter:
    extensions: frozenset[str]
    glob: str | None

    def matches(self, rel: str, use_glob: bool = True) -> bool:
        """Whether the path `rel` (inside its source) has a wanted extension and matches the glob."""
        if self.extensions and PurePosixPath(rel).suffix.lower() not in self.extensions:
            return False
        return not (use_glob and self.glob) or fnmatch.fnmatchcase(rel, self.glob)


def archive_kind(name: str) -> ArchiveKind | None:
    """The format of an archive, told by its file name's suffix (any case); None for other files."""
    return next((kind for suffix, kind in ARCHIVE_SUFFIXES.items() if name.lower().endswith(suffix)), None)


def _clean_name(name: str) -> str | None:
    """`name` as a relative POSIX path without `.`, empty parts or control characters; None when unsafe.

    Unsafe: absolute (`/x`, `\\x`, `C:x`) or containing a `..` part. Backslashes count as separators.
    """
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return None
    parts = [part for part in _SEPARATORS.split(name) if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(_CONTROL.sub("_", part) for part in parts)


def _output_stem(key: str) -> str:
    return str(PurePosixPath(key).with_suffix(""))


def _is_mac_metadata(name: str) -> bool:
    """AppleDouble `._x` files and `__MACOSX/` folders that macOS adds to archives: never recordings."""
    parts = _SEPARATORS.split(name)
    return parts[-1].startswith("._") or "__MACOSX" in parts


class _Listing:
    """Collects recordings and problems, keeping keys and output names unique."""

    def __init__(self, wanted: _Filter, exclude: set[Path]) -> None:
        self.wanted = wanted
        self.exclude = exclude
        self.recordings: list[SourceItem] = []
        self.problems: list[Problem] = []
        self._stems: dict[str, str] = {}  # case-folded output stem -> key that holds it
        self._keys: set[str] = set()

    def skip(
        self, key: str, source: Path, member: str | None, message: str, status: ProblemStatus = "skipped"
    ) -> None:
        unique, number = key, 1
        while unique in self._keys:
            number += 1
            unique = f"{key}#{number}"
        self._keys.add(unique)
        self.problems.append(Problem(unique, str(source), member, message, status))

    def claim(self, key: str) -> str | None:
        """Reserve the output name of `key`; return the key already holding it, if any."""
        stem = _output_stem(key).casefold()
        holder = self._stems.get(stem) or (key if key in self._keys else None)
        if holder is None:
            self._stems[stem] = key
        return holder

    def add(self, source: Path, member: str | None, key: str, size: int | None) -> None:
        holder = self.claim(key)
        if holder is not None:
            where = f"member {member!r}" if member is not None else str(source)
            self.skip(key, source, member, f"{where} has the same output name as {holder} (names equal up to "
                      "case, extension or './'); kept the first, skipped this one")
            return
        self._keys.add(key)
        self.recordings.append(SourceItem(str(source), member, key, size))

    def add_source(self, path: Path) -> None:
        name = path.name if path.name not in ("", "..") else path.resolve().name
        name = _clean_name(name) or "root"
        if path.is_dir():
            self.add_directory(path, name)
        elif archive_kind(path.name) and path.exists():
            self.add_archive(path, name, "")
        elif path.is_file() and self.wanted.matches(name, use_glob=False):
            self.add_file(path, name)
        elif path.is_file():
            wanted = ", ".join(sorted(self.wanted.extensions))
            self.skip(name, path, None, f"{path} is not a recording ({wanted}) nor an archive "
                      f"({', '.join(ARCHIVE_SUFFIXES)}); skipped")
        else:
            state = "is not a regular file" if path.exists() else "does not exist"
            self.skip(str(path), path, None, f"{path} {state}", "error")

    def add_file(self, path: Path, key: str) -> None:
        try:
            if not path.is_file():
                raise OSError("not a regular file (a broken link, device or pipe?)")
            size = path.stat().st_size
        except OSError as exc:
            self.skip(key, path, None, f"cannot read {path}: {exc}", "error")
            return
        self.add(path, None, key, size)

    def add_directory(self, root: Path, name: str) -> None:
        def report(exc: OSError) -> None:
            rel = Path(os.path.relpath(exc.filename, root)).as_posix()
            self.skip(f"{name}/{rel}", root, None, f"cannot list {exc.filename}: {exc.strerror}", "error")

        for folder, subfolders, files in os.walk(root, onerror=report):
            here = Path(folder)
            subfolders[:] = sorted(d for d in subfolders if d != "__MACOSX" and not self.excluded(here / d))
            for file_name in sorted(files):
                rel = (here / file_name).relative_to(root).as_posix()
                if _is_mac_metadata(file_name):
                    continue
                clean = _clean_name(rel) or file_name
                if archive_kind(file_name):
                    self.add_archive(here / file_name, f"{name}/{clean}", clean)
                elif self.wanted.matches(clean):
                    self.add_file(here / file_name, f"{name}/{clean}")

    def excluded(self, folder: Path) -> bool:
        return bool(self.exclude) and folder.resolve() in self.exclude

    def add_archive(self, path: Path, key_prefix: str, rel_prefix: str) -> None:
        """List an archive's members under `key_prefix`; `rel_prefix` is its path inside a listed folder."""
        try:
            for member in _archive_members(path):
                self.add_member(path, key_prefix, rel_prefix, member)
        except READ_ERRORS as exc:
            self.skip(key_prefix, path, None, f"cannot read archive {path}: {exc} (any members listed before "
                      "the damage are kept)", "error")

    def add_member(self, path: Path, key_prefix: str, rel_prefix: str, member: _Member) -> None:
        if _is_mac_metadata(member.name):
            return
        clean = _clean_name(member.name)
        rel = clean or member.name
        if not self.wanted.matches(f"{rel_prefix}/{rel}" if rel_prefix else rel):
            return
        if clean is None:
            self.skip(f"{key_prefix}/{member.name}", path, member.name, f"unsafe member name {member.name!r} "
                      "(absolute or containing '..'); skipped, nothing is written outside the output folder")
            return
        key = f"{key_prefix}/{clean}"
        if member.unsupported is None:
            self.add(path, member.name, key, member.size)
            return
        self.claim(key)  # so a later regular member of the same name counts as a collision
        self.skip(key, path, member.name, f"member {member.name!r} is {member.unsupported}; only regular "
                  "files are read")


def list_recordings(
    sources: Sequence[str | Path],
    extensions: Iterable[str],
    glob: str | None = None,
    *,
    exclude: Iterable[str | Path] = (),
) -> tuple[list[SourceItem], list[Problem]]:
    """Find the recordings in files, folders (recursively) and archives, in a deterministic order.

    Sources keep the given order (one given twice counts once); folders are walked in sorted order (links to
    folders are not followed), archives in archive order; archives inside folders are listed too, archives
    inside archives are not. `extensions` (".wav" or "wav", any case; empty means every file) and `glob`
    (fnmatch on the path inside the source, e.g. `disc1/*.wav`; `*` also matches `/`) filter what is found;
    a file named directly is not globbed. Folders in `exclude` (e.g. the output folder) are not entered.
    Only entries that pass the filters are ever reported as problems. Nothing is extracted and no member
    data is read, but listing a compressed tar decompresses it once (in bounded memory).
    """
    wanted = _Filter(frozenset(_dotted(ext) for ext in extensions), glob)
    listing = _Listing(wanted, {Path(path).resolve() for path in exclude})
    seen: set[Path] = set()
    for source in sources:
        path = Path(source)
        if path.resolve() not in seen:
            seen.add(path.resolve())
            listing.add_source(path)
    return listing.recordings, listing.problems


def _dotted(extension: str) -> str:
    extension = extension.lower()
    return extension if extension.startswith(".") else f".{extension}"


def _archive_members(path: Path) -> Iterator[_Member]:
    if archive_kind(path.name) == "zip":
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield _Member(info.filename, info.file_size, _zip_unsupported(info))
        return
    for _, info in tar_entries(path):
        if not info.isdir():
            yield _Member(info.name, info.size, _tar_unsupported(info))


def _zip_unsupported(info: zipfile.ZipInfo) -> str | None:
    kind = stat.S_IFMT(info.external_attr >> 16)  # a Unix file type where the archiver stored one, else 0
    if stat.S_ISLNK(kind):
        return "a symbolic link"
    return "not a regular file" if kind and not stat.S_ISREG(kind) else None


def _tar_unsupported(info: tarfile.TarInfo) -> str | None:
    if info.isreg():
        return None
    if info.issym():
        return "a symbolic link"
    if info.islnk():
        return "a hard link"
    if info.ischr() or info.isblk() or info.isfifo():
        return "a device or pipe"
    return f"not a regular file (tar type {info.type!r})"


def tar_entries(path: Path) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Walk a tar's entries once, front to back; skipped member data is seeked over, never held in memory.

    A compressed tar is read through a gzip/bz2/xz file object, whose forward seeks decompress in small
    blocks: unlike tarfile's own stream mode ("r|*") this stays linear in the decompressed size even for a
    highly compressed member (a bomb made listing quadratic there).
    """
    with open(path, "rb") as handle:
        head = handle.read(6)
    opener = next((open_ for magic, open_ in _DECOMPRESSORS.items() if head.startswith(magic)), open)
    with opener(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as archive:
        for info in archive:
            yield archive, info


def label_name(key: str, suffix: str) -> str:
    """The relative POSIX path of the output for `key`: the key without its extension, then `suffix`."""
    if "/" in suffix or "\\" in suffix:
        raise EventcountError(f"output suffix {suffix!r} must not contain a path separator")
    if _clean_name(key) != key:
        raise EventcountError(f"{key!r} is not a safe recording key (it is not a clean relative path)")
    return _output_stem(key) + suffix


def label_path(outdir: str | Path, key: str, suffix: str) -> Path:
    """`outdir / label_name(key, suffix)`, checked to stay inside `outdir` after resolving links."""
    path = Path(outdir) / label_name(key, suffix)
    root = Path(outdir).resolve()
    if not path.resolve().is_relative_to(root):
        raise EventcountError(f"the output for {key} would land at {path.resolve()}, outside {root} (a folder "
                              "inside it is a link?); not written")
    return path
