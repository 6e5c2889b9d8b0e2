"""The clip list of an annotation session: recordings cut into fixed windows, each addressed by its index."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventcount.errors import EventcountError
from eventcount.prepare import windows
from eventcount.recordings import find_recordings, is_sensor_file, signal_duration

EVENTS_SUFFIX = ".events.tsv"


@dataclass(frozen=True)
class ClipRef:
    """One clip: which recording (index into `ClipList.recordings`) and its window in seconds."""

    index: int
    recording: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class ClipList:
    """The recordings of a session (absolute paths), their durations, and their clips in reading order."""

    recordings: list[Path]
    durations_s: list[float]
    clips: list[ClipRef]
    window_s: float

    def sensor(self, recording: int) -> bool:
        """Whether a recording is a sensor file (plotted, not played)."""
        return is_sensor_file(self.recordings[recording].name)

    def clips_of(self, recording: int) -> list[ClipRef]:
        return [clip for clip in self.clips if clip.recording == recording]

    def event_file(self, recording: int, folder: Path) -> Path:
        """Where the taps of a recording go: `<folder>/<stem>.events.tsv` (what `train --events` looks for)."""
        return folder / f"{self.recordings[recording].stem}{EVENTS_SUFFIX}"

    def shared_event_files(self) -> dict[int, str]:
        """Recordings whose event file name another recording of the session shares, with the reason."""
        stems = Counter(path.stem for path in self.recordings)
        return {i: f"{path.name}: another recording has the stem {path.stem!r}, so taps would share "
                   f"{path.stem}{EVENTS_SUFFIX}; rename one to tap along"
                for i, path in enumerate(self.recordings) if stems[path.stem] > 1}


def build_clip_list(sources: list[Path], window_s: float, exclude: list[Path] | None = None,
                    sensor_options: dict[str, Any] | None = None) -> ClipList:
    """Find the recordings (files and folders) and cut each into `window_s` clips, as `prepare` does
    (a last partial clip is kept when it is at least half a window long)."""
    if not window_s or window_s <= 0:
        raise EventcountError(f"--window must be a duration > 0, got {window_s}")
    skip = {Path(os.path.abspath(p)) for p in exclude or []}
    found = [Path(os.path.abspath(p)) for p in find_recordings(sources)]
    recordings = [p for p in dict.fromkeys(found) if p not in skip]
    if not recordings:
        raise EventcountError(f"no recordings to count in {', '.join(map(str, sources))}")
    durations = [signal_duration(path, sensor_options) for path in recordings]
    clips: list[ClipRef] = []
    for number, (path, duration) in enumerate(zip(recordings, durations, strict=True)):
        spans = windows(duration, window_s, None)
        if not spans:
            raise EventcountError(f"{path}: {duration:.3f} s long, shorter than half a --window ({window_s:g} s)")
        for start, end in spans:
            clips.append(ClipRef(len(clips), number, float(start), float(end)))
    return ClipList(recordings, durations, clips, window_s)
