"""Labelling one recording: a loaded model turns a file into an event file and a manifest entry.

`Labeller` is the per-recording function every engine calls (the local process pool in `workers`, Ray actors
in `ray_engine`): it detects from a file path in blocks, writes the event file atomically and returns the
`ManifestEntry` for the caller to append. It never raises for a bad recording: that becomes an "error" entry.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventcount.errors import EventcountError
from eventcount.pseudolabel.manifest import ManifestEntry
from eventcount.pseudolabel.sources import Problem, label_name, label_path
from eventcount.pseudolabel.spool import Readable
from eventcount.writers import get_writer

_TEMP_FILE = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")  # atomic_write's names (mkstemp, 8 chars)


@dataclass(frozen=True)
class LabelSettings:
    """What every worker needs to label recordings the same way (plain data: sent to worker processes)."""

    model_path: str
    model_name: str
    model_sha256: str
    outdir: str
    fmt: str = "tsv"
    tta: int = 1
    min_confidence: float = 0.0
    sensor_options: dict[str, Any] = field(default_factory=dict)


class Labeller:
    """A loaded detector that labels one recording at a time: file -> event file -> manifest entry."""

    def __init__(self, settings: LabelSettings) -> None:
        from eventcount.config import DetectSettings
        from eventcount.detection import Detector

        self.settings = settings
        self.detector = Detector.load(settings.model_path)
        if self.detector.info.get("sha256") != settings.model_sha256:
            raise EventcountError(f"{settings.model_path} changed while the run was starting; run it again")
        self.suffix = get_writer(settings.fmt)[0]
        self.detect_settings = DetectSettings(tta=settings.tta, min_confidence=settings.min_confidence,
                                              sensor=dict(settings.sensor_options))

    def __call__(self, readable: Readable) -> ManifestEntry:
        """Label one recording; any failure becomes an "error" entry so that a batch carries on."""
        from eventcount.detection import detect_recording, write_detection

        started = time.perf_counter()
        settings, item = self.settings, readable.item
        entry = ManifestEntry(item.key, item.source, item.member, model=settings.model_name,
                              model_sha256=settings.model_sha256)
        try:  # errors name the key, not the spool copy's path
            detection = detect_recording(self.detector, readable.path, self.detect_settings, label=item.key)
            write_detection(detection, label_path(settings.outdir, item.key, self.suffix), settings.fmt)
            entry.duration_s, entry.events = round(detection.duration_s, 6), detection.counts()
            entry.output = label_name(item.key, self.suffix)
        except EventcountError as exc:
            entry.status, entry.message = "error", str(exc)
        except Exception as exc:  # one bad recording must not end a batch of thousands
            entry.status, entry.message = "error", f"{item.key}: unexpected {type(exc).__name__}: {exc}"
        entry.seconds = round(time.perf_counter() - started, 4)
        return entry


def problem_entry(problem: Problem, settings: LabelSettings) -> ManifestEntry:
    """The manifest entry of something passed over or unreadable."""
    return ManifestEntry.from_problem(problem, settings.model_name, settings.model_sha256)


def remove_temp_files(outdir: str | Path, names: Iterable[str]) -> None:
    """Delete the temporary files that a killed `atomic_write` left for outputs `names` (relative to `outdir`).

    Folders reached through a link that leads out of `outdir` are not looked into.
    """
    root = Path(outdir).resolve()
    by_folder: dict[Path, set[str]] = {}
    for name in names:
        path = Path(outdir) / name
        by_folder.setdefault(path.parent, set()).add(path.name)
    for folder, targets in by_folder.items():
        if folder.resolve().is_relative_to(root):
            _remove_temps_in(folder, targets)


def _remove_temps_in(folder: Path, targets: set[str]) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for item in entries:
        match = _TEMP_FILE.match(item.name)
        if match and match["target"] in targets and item.is_file(follow_symlinks=False):
            Path(item.path).unlink(missing_ok=True)
