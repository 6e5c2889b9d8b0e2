"""Reading recordings for labelling in flat memory: plain files where they are, archive members spooled to disk.

Workers detect from a file path, block by block, so no process ever holds a whole recording. A plain file is
handed over as its own path; an archive member is copied (decompressed) in CHUNK_BYTES pieces into a spool
folder, capped at `max_bytes` (a compression bomb stops at the cap), and deleted by the caller once labelled
(`Readable.release`). Each archive is opened once and, for a tar, streamed through once.
"""

from __future__ import annotations

import functools
import itertools
import shutil
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from eventcount.errors import EventcountError
from eventcount.pseudolabel.sources import READ_ERRORS, Problem, SourceItem, archive_kind, tar_entries

DEFAULT_MAX_BYTES = 2 * 1024**3
"""Largest recording read (decompressed size); a larger one is reported, never read whole."""
CHUNK_BYTES = 1024**2
_CHANGED = "member not found (did the archive change since it was listed?)"


class TooLargeError(EventcountError):
    """A recording is larger than the byte limit; it was not read whole."""


@dataclass(frozen=True)
class Readable:
    """A recording ready to label: the file to read (`path`), a spool copy to delete afterwards if `spooled`."""

    item: SourceItem
    path: str
    spooled: bool = False

    def release(self) -> None:
        """Delete the spool copy (nothing for a plain file)."""
        if self.spooled:
            Path(self.path).unlink(missing_ok=True)


def copy_limited(stream: IO[bytes], target: IO[bytes], max_bytes: int, declared: int | None = None) -> int:
    """Copy `stream` to `target` in chunks, raising TooLargeError once more than `max_bytes` arrive.

    At most `max_bytes + 1` bytes are read whatever the stream claims; `declared` (a size from a header) is
    checked first so an honest large member is refused without reading. Memory: one chunk. Returns the size.
    """
    _check_declared(declared, max_bytes)
    total = 0
    while total <= max_bytes:
        chunk = stream.read(min(CHUNK_BYTES, max_bytes + 1 - total))
        if not chunk:
            return total
        target.write(chunk)
        total += len(chunk)
    raise TooLargeError(f"more than the limit of {max_bytes} bytes once decompressed (a compression bomb, or a "
                        "size header that lies); reading stopped")


def _check_declared(declared: int | None, max_bytes: int) -> None:
    if declared is not None and declared > max_bytes:
        raise TooLargeError(f"{declared} bytes, more than the limit of {max_bytes} bytes; not read "
                            "(raise the limit if this is a genuine recording)")


@contextmanager
def spool_folder(path: str | Path) -> Iterator[Path]:
    """A fresh, empty spool folder at `path` (what a killed run left there is removed), removed afterwards."""
    path = Path(path)
    _remove(path)
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        _remove(path)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def iter_readable(
    items: Iterable[SourceItem], spool: str | Path, max_bytes: int = DEFAULT_MAX_BYTES
) -> Iterator[Readable | Problem]:
    """Yield every given recording once as a Readable, or as a Problem saying why it could not be read.

    Archive members are copied into the folder `spool` one at a time, as they are asked for; the caller
    releases each copy once done with it. Order: plain files in the given order; an archive's members
    together, where its first member is given, in archive order for a tar, given order for a zip.
    """
    unique = list(dict.fromkeys(items))
    by_archive: dict[str, list[SourceItem]] = {}
    for item in unique:
        if item.member is not None:
            by_archive.setdefault(item.source, []).append(item)
    spooler = _Spooler(Path(spool), max_bytes)
    for item in unique:
        if item.member is None:
            yield _guarded(item, functools.partial(_in_place, item, max_bytes))
        elif item.source in by_archive:
            members = by_archive.pop(item.source)
            read = _iter_zip if archive_kind(Path(item.source).name) == "zip" else _iter_tar
            yield from read(Path(item.source), members, spooler)


def _in_place(item: SourceItem, max_bytes: int) -> Readable:
    path = Path(item.source)
    if not path.is_file():
        raise OSError(f"{path} is no longer a regular file")
    _check_declared(path.stat().st_size, max_bytes)
    return Readable(item, str(path))


class _Spooler:
    """Copies members into `folder` under numbered names that keep each member's extension."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes, self.numbers = folder, max_bytes, itertools.count()

    def copy(self, item: SourceItem, open_member: Callable[[], IO[bytes]], declared: int | None) -> Readable:
        _check_declared(declared, self.max_bytes)
        path = self.folder / f"{next(self.numbers):08d}{PurePosixPath(item.key).suffix}"
        try:
            with open_member() as stream, open(path, "xb") as target:
                copy_limited(stream, target, self.max_bytes, declared)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Readable(item, str(path), spooled=True)


def _problem(item: SourceItem, message: str) -> Problem:
    return Problem(item.key, item.source, item.member, message, "error")


def _guarded(item: SourceItem, read: Callable[[], Readable]) -> Readable | Problem:
    try:
        return read()
    except TooLargeError as exc:
        return _problem(item, str(exc))
    except READ_ERRORS as exc:
        return _problem(item, f"cannot read: {exc}")


def _unfound(items: Iterable[SourceItem], message: str) -> Iterator[Problem]:
    for item in items:
        yield _problem(item, message)


def _iter_zip(path: Path, items: list[SourceItem], spooler: _Spooler) -> Iterator[Readable | Problem]:
    try:
        archive = zipfile.ZipFile(path)
    except READ_ERRORS as exc:
        yield from _unfound(items, f"cannot open archive {path}: {exc}")
        return
    with archive:
        first: dict[str, zipfile.ZipInfo] = {}
        for info in archive.infolist():
            first.setdefault(info.filename, info)  # the listing keeps the first of equal names
        for item in items:
            info = first.get(item.member or "")
            if info is None:
                yield _problem(item, _CHANGED)
            else:  # opening reads the local header only; data is decompressed as it is copied
                yield _guarded(item, functools.partial(spooler.copy, item, functools.partial(archive.open, info),
                                                       info.file_size))


def _iter_tar(path: Path, items: list[SourceItem], spooler: _Spooler) -> Iterator[Readable | Problem]:
    pending = {item.member: item for item in items}
    try:
        for archive, info in tar_entries(path):
            item = pending.pop(info.name, None)
            if item is not None:
                opener = functools.partial(_open_tar_member, archive, info)
                yield _guarded(item, functools.partial(spooler.copy, item, opener, info.size))
            if not pending:
                return  # stop decompressing: nothing more is wanted
    except READ_ERRORS as exc:
        yield from _unfound(pending.values(), f"cannot read archive {path}: {exc}")
        return
    yield from _unfound(pending.values(), _CHANGED)


def _open_tar_member(archive: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    handle = archive.extractfile(info) if info.isreg() else None
    if handle is None:
        raise tarfile.TarError("no longer a regular file (did the archive change since it was listed?)")
    return handle
