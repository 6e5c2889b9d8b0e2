"""The pseudo-label manifest: one JSON line per recording, appended crash-safely, read tolerantly, merged.

`manifest.jsonl` lives in the output folder. Each line is a complete JSON object written by one `write`
and fsynced; a later line for the same key supersedes earlier ones, so a resumed or repeated run only
appends. Lines are UTF-8; file names that are not valid UTF-8 round-trip through surrogate escapes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from eventcount.atomic import atomic_write
from eventcount.pseudolabel.sources import Problem

MANIFEST_NAME = "manifest.jsonl"
STATUSES = ("ok", "error", "skipped")
Status = Literal["ok", "error", "skipped"]


@dataclass
class ManifestEntry:
    """What happened to one recording.

    duration_s: length of the recording in seconds; seconds: wall-clock time spent on it; events: number
    of events found per class; output: the event file as a POSIX path relative to the manifest's folder.
    """

    key: str
    source: str
    member: str | None = None
    status: Status = "ok"
    message: str = ""
    duration_s: float | None = None
    events: dict[str, int] = field(default_factory=dict)
    model: str = ""
    model_sha256: str = ""
    seconds: float = 0.0
    output: str | None = None

    @classmethod
    def from_problem(cls, problem: Problem, model: str = "", model_sha256: str = "") -> ManifestEntry:
        return cls(problem.key, problem.source, problem.member, problem.status, problem.message,
                   model=model, model_sha256=model_sha256)

    @classmethod
    def from_dict(cls, data: Any) -> ManifestEntry:
        """Build an entry from a parsed JSON line, ignoring unknown fields; ValueError when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in fields(cls)}
        try:
            entry = cls(**{name: value for name, value in data.items() if name in known})
        except TypeError:
            raise ValueError("'key' or 'source' is missing") from None
        if not isinstance(entry.key, str) or not entry.key or entry.status not in STATUSES:
            raise ValueError(f"needs a non-empty 'key' and a 'status' of {', '.join(STATUSES)}")
        if not isinstance(entry.events, dict):
            raise ValueError("'events' must map class names to counts")
        return entry

    def to_line(self) -> bytes:
        text = json.dumps(asdict(self), ensure_ascii=False) + "\n"
        return text.encode("utf-8", "surrogateescape")


def latest_by_key(entries: Iterable[ManifestEntry]) -> dict[str, ManifestEntry]:
    """The last entry of each key, in order of each key's first appearance."""
    latest: dict[str, ManifestEntry] = {}
    for entry in entries:
        latest[entry.key] = entry
    return latest


def _output_exists(folder: Path, entry: ManifestEntry) -> bool:
    return bool(entry.output) and (folder / str(entry.output)).is_file()


@dataclass
class ManifestContents:
    """The readable entries of one manifest, and a warning per line that was skipped."""

    path: Path
    entries: list[ManifestEntry]
    warnings: list[str]

    def latest(self) -> dict[str, ManifestEntry]:
        return latest_by_key(self.entries)

    def done_keys(self, model_sha256: str | None = None) -> set[str]:
        """Keys whose latest entry is "ok" (made by `model_sha256`, if given) and whose output file exists."""
        return {
            key
            for key, entry in self.latest().items()
            if entry.status == "ok"
            and (model_sha256 is None or entry.model_sha256 == model_sha256)
            and _output_exists(self.path.parent, entry)
        }


class Manifest:
    """Append to and read one manifest file (created on the first append)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def in_dir(cls, outdir: str | Path) -> Manifest:
        return cls(Path(outdir) / MANIFEST_NAME)

    def append(self, entry: ManifestEntry) -> None:
        """Add `entry` as one line: a single write, then fsync, so a crash never leaves half of it.

        A line left incomplete by an earlier crash is first closed with a newline, so it cannot swallow this
        one. Appends from several processes on a local disk do not interleave (O_APPEND).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = entry.to_line()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if _ends_mid_line(fd):
                line = b"\n" + line
            view = memoryview(line)
            while view:  # one write, except in the rare case a regular file takes part of it
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> ManifestContents:
        """All readable entries; broken lines (e.g. an interrupted last write) are skipped with a warning."""
        contents = ManifestContents(self.path, [], [])
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return contents
        with handle:
            for number, raw in enumerate(handle, 1):
                if raw.strip():
                    self._parse(raw, number, contents)
        return contents

    def _parse(self, raw: bytes, number: int, contents: ManifestContents) -> None:
        try:
            contents.entries.append(ManifestEntry.from_dict(json.loads(raw.decode("utf-8", "surrogateescape"))))
        except ValueError as exc:
            why = "incomplete last line (an interrupted run?)" if not raw.endswith(b"\n") else f"not an entry: {exc}"
            contents.warnings.append(f"{self.path}, line {number}: {why}; line ignored")

    def done_keys(self, model_sha256: str | None = None) -> set[str]:
        """Keys to skip when resuming: see ManifestContents.done_keys."""
        return self.read().done_keys(model_sha256)


def _ends_mid_line(fd: int) -> bool:
    if os.fstat(fd).st_size == 0:
        return False
    os.lseek(fd, -1, os.SEEK_END)
    return os.read(fd, 1) != b"\n"


@dataclass
class MergeReport:
    """The manifests of several shard folders combined: one entry per key, and what is wrong.

    entries: the entry kept per key (an "ok" one if any shard has one, else the first seen), sorted by key;
    origins: the folder each kept entry's manifest is in (its `output` is relative to that);
    duplicates: keys "ok" in more than one folder, with those folders; missing: expected keys no manifest has;
    missing_outputs: keys kept as "ok" whose output file is gone; warnings: unreadable manifests and lines.
    """

    entries: dict[str, ManifestEntry] = field(default_factory=dict)
    origins: dict[str, Path] = field(default_factory=dict)
    duplicates: dict[str, list[Path]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    missing_outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def with_status(self, status: Status) -> list[ManifestEntry]:
        return [entry for entry in self.entries.values() if entry.status == status]

    @property
    def all_ok(self) -> bool:
        """No failed recording, nothing missing, no output lost and no key done twice."""
        return not (self.with_status("error") or self.missing or self.missing_outputs or self.duplicates)

    def summary(self) -> str:
        counts = ", ".join(f"{len(self.with_status(s))} {s}" for s in STATUSES)
        return (f"{len(self.entries)} recordings: {counts}; {len(self.duplicates)} done in several shards, "
                f"{len(self.missing)} missing, {len(self.missing_outputs)} outputs missing, "
                f"{len(self.warnings)} warnings")

    def _take(self, entry: ManifestEntry, folder: Path) -> None:
        if entry.status == "ok":
            self.duplicates.setdefault(entry.key, []).append(folder)
        kept = self.entries.get(entry.key)
        if kept is None or (entry.status == "ok" and kept.status != "ok"):
            self.entries[entry.key] = entry
            self.origins[entry.key] = folder


def merge_manifests(manifests: Iterable[str | Path], expected_keys: Iterable[str] | None = None) -> MergeReport:
    """Combine the manifests of shard output folders (or manifest files), in the given order.

    Within one manifest the last entry of a key counts; across manifests an "ok" entry beats a failure and
    the first "ok" one is kept. With `expected_keys` (e.g. the keys of the full listing), keys that no
    manifest mentions are reported as missing.
    """
    report = MergeReport()
    for item in manifests:
        path = Path(item) / MANIFEST_NAME if Path(item).is_dir() else Path(item)
        if not path.is_file():
            report.warnings.append(f"{path}: no manifest here (did this shard run?)")
            continue
        contents = Manifest(path).read()
        report.warnings += contents.warnings
        for entry in contents.latest().values():
            report._take(entry, path.parent)
    report.duplicates = {key: found for key, found in report.duplicates.items() if len(found) > 1}
    report.entries = dict(sorted(report.entries.items()))
    if expected_keys is not None:
        report.missing = sorted(set(expected_keys) - report.entries.keys())
    report.missing_outputs = [
        key for key, entry in report.entries.items()
        if entry.status == "ok" and not _output_exists(report.origins[key], entry)
    ]
    return report


def write_merged_manifest(report: MergeReport, path: str | Path) -> None:
    """Write the kept entries to `path` atomically, their outputs made relative to `path`'s folder."""
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        for key, entry in report.entries.items():
            handle.write(_rebased(entry, report.origins[key], path.parent).to_line())


def _rebased(entry: ManifestEntry, origin: Path, folder: Path) -> ManifestEntry:
    if not entry.output:
        return entry
    return replace(entry, output=Path(os.path.relpath(origin / entry.output, folder)).as_posix())
