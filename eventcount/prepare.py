"""Making and checking count labels: recordings + timestamps -> windowed clip counts; sheet validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eventcount.annotations import events_by_class, read_events
from eventcount.config import FrontendConfig
from eventcount.errors import EventcountError
from eventcount.labels import Clip, CountTable, clip_frame_range
from eventcount.recordings import event_file_for, signal_duration

DEFAULT_WINDOW_S = 0.25  # shorter windows make a counts-only model fire less late (BENCHMARKS.md)


def windows(duration_s: float, window_s: float | None, hop_s: float | None, min_fraction: float = 0.5):
    """(start, end) windows covering a recording; a last partial window is kept if >= min_fraction long."""
    if not window_s:
        return [(None, None)]
    hop_s = hop_s or window_s
    starts = np.arange(0.0, max(duration_s - min_fraction * window_s, 0) + 1e-9, hop_s)
    return [(round(float(s), 6), round(float(min(s + window_s, duration_s)), 6)) for s in starts]


def make_count_table(
    recordings: list[Path],
    events_dir: Path | None = None,
    class_map: dict[str, str] | None = None,
    classes: list[str] | None = None,
    window_s: float | None = DEFAULT_WINDOW_S,
    hop_s: float | None = None,
    sensor_options: dict | None = None,
) -> CountTable:
    """Count events per class in fixed windows (or whole files when `window_s` is None/0)."""
    loaded = []
    for path in recordings:
        events = read_events(event_file_for(path, events_dir))
        loaded.append((path, events))
    if classes is None:
        classes = list(dict.fromkeys(class_map.values())) if class_map else sorted(
            {e.label for _, events in loaded for e in events})
    if not classes:
        raise EventcountError("no classes: the event files hold no events and no --classes or --class-map was given")
    table = CountTable(classes)
    for path, events in loaded:
        times = events_by_class(events, classes, class_map)
        duration = signal_duration(path, sensor_options)
        for start, end in windows(duration, window_s, hop_s):
            lo, hi = start or 0.0, end if end is not None else np.inf
            counts = [int(((t >= lo) & (t < hi)).sum()) for t in (times[c] for c in classes)]
            table.clips.append(Clip(path, start, end, counts))
    return table


@dataclass
class Summary:
    """What `prepare` prints about a count table."""

    recordings: int
    clips: int
    duration_s: float
    events: dict[str, int]
    max_count: int
    problems: list[str] = field(default_factory=list)

    @property
    def suggested_cmax(self) -> int:
        return self.max_count + 1


def check_count_table(table: CountTable, sensor_options: dict | None = None) -> Summary:
    """Check every clip's recording exists, is readable, and holds the clip's window; summarise the table."""
    durations: dict[Path, float | None] = {}
    problems: list[str] = []
    total = 0.0
    for clip in table.clips:
        if clip.path not in durations:
            durations[clip.path] = _duration_or_problem(table, clip, problems, sensor_options)
        duration = durations[clip.path]
        if duration is None:
            continue
        start = clip.start_s or 0.0
        end = clip.end_s if clip.end_s is not None else duration
        if end > duration + 1e-3:
            problems.append(f"{table.where(clip)}: window ends at {end:g} s but {clip.path.name} is only "
                            f"{duration:.3f} s long")
        if start >= duration:
            problems.append(f"{table.where(clip)}: window starts at {start:g} s, after the end of {clip.path.name}")
        total += max(0.0, min(end, duration) - start)
    frontend = FrontendConfig(kind="sensor" if sensor_options else "audio")
    problems += capacity_problems(table, {p: d for p, d in durations.items() if d is not None}, frontend)
    counts = np.array([c.counts for c in table.clips])
    events = {name: int(counts[:, d].sum()) for d, name in enumerate(table.classes)}
    return Summary(len(durations), len(table.clips), total, events, int(counts.max()), problems)


def capacity_problems(table: CountTable, durations: dict[Path, float], frontend: FrontendConfig,
                      factor: float = 1.0) -> list[str]:
    """Clips whose count is more than their frames can hold (one event per frame at the front end's frame rate,
    the copy time-stretched by `factor`): the counting loss has no answer for them. Recordings missing from
    `durations` are skipped."""
    problems = []
    stretched = f", time-stretched by {factor:g}" if factor != 1.0 else ""
    for clip in table.clips:
        if clip.path not in durations:
            continue
        n_frames = int(durations[clip.path] * factor * frontend.frame_rate + 1e-9)
        a, b = clip_frame_range(clip.start_s, clip.end_s, n_frames, frontend.frame_rate,
                                frontend.detection_delay(), factor)
        for name, count in zip(table.classes, clip.counts, strict=True):
            if count > b - a:
                problems.append(f"{table.where(clip)}: class {name!r} count {count} is more than the clip can hold "
                                f"(at most {b - a}: one event per frame at {frontend.frame_rate:g} frames/s"
                                f"{stretched})")
    return problems


def _duration_or_problem(table: CountTable, clip: Clip, problems: list[str], sensor_options) -> float | None:
    if not clip.path.exists():
        problems.append(f"{table.where(clip)}: recording {clip.path} not found")
        return None
    try:
        return signal_duration(clip.path, sensor_options)
    except EventcountError as err:
        problems.append(f"{table.where(clip)}: {err}")
        return None
