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
from eventcount.writers import get_writer, write_events

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
        from eventcount.detection import Detector

        self.settings = settings
        self.detector = Detector.load(settings.model_path)
        if self.detector.info.get("sha256") != settings.model_sha256:
            raise EventcountError(f"{settings.model_path} changed while the run was starting; run it again")
        self.suffix = get_writer(settings.fmt)[0]
        self.sensor_options = self.detector.spec.frontend.sensor.updated(settings.sensor_options)

    def __call__(self, readable: Readable) -> ManifestEntry:
        """Label one recording; any failure becomes an "error" entry so that a batch carries on."""
        started = time.perf_counter()
        item = readable.item
        entry = ManifestEntry(item.key, item.source, item.member, model=self.settings.model_name,
                              model_sha256=self.settings.model_sha256)
        try:
            entry.duration_s, entry.events, entry.output = self._label(readable)
        except EventcountError as exc:  # named by key, not by the spool copy's path
            entry.status, entry.message = "error", str(exc).replace(readable.path, item.key)
        except Exception as exc:  # one bad recording must not end a batch of thousands
            entry.status, entry.message = "error", f"{item.key}: unexpected {type(exc).__name__}: {exc}"
        entry.seconds = round(time.perf_counter() - started, 4)
        return entry

    def _label(self, readable: Readable) -> tuple[float, dict[str, int], str]:
        from eventcount.recordings import signal_duration

        settings, key = self.settings, readable.item.key
        duration_s = signal_duration(readable.path, self.sensor_options)
        if duration_s == 0:
            raise EventcountError(f"{key}: the recording contains no samples")
        if duration_s * self.detector.frame_rate < 1:
            raise EventcountError(f"{key}: too short to label ({duration_s * 1000:.1f} ms, less than "
                                  f"one frame of {1000 / self.detector.frame_rate:g} ms)")
        probs = self.detector.file_activations(readable.path, settings.tta, self.sensor_options)
        events = [e for e in self.detector.decode(probs)
                  if e.confidence is None or e.confidence >= settings.min_confidence]
        write_events(label_path(settings.outdir, key, self.suffix), events, settings.fmt, duration_s=duration_s)
        counts = dict.fromkeys(self.detector.spec.classes, 0)
        for event in events:
            counts[event.label] = counts.get(event.label, 0) + 1
        return round(duration_s, 6), counts, label_name(key, self.suffix)


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
