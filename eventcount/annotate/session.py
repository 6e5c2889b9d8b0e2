"""The answers of an annotation session: counts (and taps) per clip, saved at once, resumed from the files.

The count table (`labels.csv`) holds one row per answered clip; clips without an answer have no row, so a
restart resumes at the first of them. Taps are kept as rough event times in `<stem>.events.tsv` per recording;
a clip is either tapped (its counts are its taps per class) or counted with keys (no taps).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from eventcount.annotate.clips import ClipList, ClipRef
from eventcount.annotations import Event, read_events
from eventcount.atomic import atomic_write
from eventcount.errors import EventcountError
from eventcount.labels import Clip, CountTable, read_count_table, write_count_table
from eventcount.writers import get_writer

MARKER = "# eventcount annotate: rough tap times, one line per tap (time_s<TAB>label)"
MAX_COUNT = 100_000


@dataclass
class Answer:
    """A clip's counts per class (in class order) and its taps: (seconds from the recording's start, class)."""

    counts: list[int]
    taps: list[tuple[float, str]] = field(default_factory=list)


class Session:
    """Answers per clip index, written atomically to the count table and the event files on every change."""

    def __init__(self, clips: ClipList, classes: list[str], output: Path, events_dir: Path | None = None) -> None:
        self.clips = clips
        self.output = Path(output)
        self.events_dir = Path(events_dir) if events_dir is not None else self.output.parent
        self.answers: dict[int, Answer] = {}
        self.kept_rows: list[Clip] = []  # rows of an existing table that are not clips of this session
        self.classes = self._resume_table(classes)
        self.no_taps = clips.shared_event_files()
        self._resume_taps()
        self._lock = threading.Lock()

    def first_open(self) -> int:
        """Index of the first clip without an answer (the number of clips when all are answered)."""
        return next((clip.index for clip in self.clips.clips if clip.index not in self.answers), len(self.clips.clips))

    def answered(self) -> int:
        return len(self.answers)

    def taps_in_clip(self, index: int) -> list[tuple[float, str]]:
        """A clip's taps in seconds from its start."""
        answer = self.answers.get(index)
        start = self.clips.clips[index].start_s
        return [(round(t - start, 4), label) for t, label in answer.taps] if answer else []

    def answer(self, index: int, counts: list[int], taps: list[tuple[float, str]]) -> None:
        """Store a clip's answer (taps in seconds from the clip's start) and save it at once."""
        clip = self.clips.clips[index]
        checked = self._check(clip, counts, taps)
        with self._lock:
            before = self.answers.get(index)
            self.answers[index] = checked
            try:
                if checked.taps or (before is not None and before.taps):
                    self._write_events(clip.recording)
                self._write_table()
            except BaseException:  # not saved: the session keeps what the files hold
                if before is None:
                    del self.answers[index]
                else:
                    self.answers[index] = before
                raise

    def _check(self, clip: ClipRef, counts: list[int], taps: list[tuple[float, str]]) -> Answer:
        if len(counts) != len(self.classes) or any(type(c) is not int or not 0 <= c <= MAX_COUNT for c in counts):
            raise EventcountError(f"counts must be {len(self.classes)} integers >= 0 (one per class "
                                  f"{','.join(self.classes)}), got {counts!r}")
        if taps and clip.recording in self.no_taps:
            raise EventcountError(self.no_taps[clip.recording])
        absolute = []
        for time_s, label in taps:
            if label not in self.classes:
                raise EventcountError(f"tap for unknown class {label!r}; classes are {','.join(self.classes)}")
            if not isinstance(time_s, (int, float)) or not -0.05 <= time_s <= clip.duration_s + 0.05:
                raise EventcountError(f"tap time {time_s!r} is outside the clip (0 to {clip.duration_s:g} s)")
            inside = min(max(float(time_s), 0.0), clip.duration_s - 1e-4)  # a clip holds [start, end)
            absolute.append((round(clip.start_s + inside, 4), label))
        if taps and [sum(lab == name for _, lab in taps) for name in self.classes] != counts:
            raise EventcountError("a tapped clip's counts must be its number of taps per class")
        return Answer(list(counts), sorted(absolute))

    def _write_table(self) -> None:
        rows = [Clip(self.clips.recordings[c.recording], c.start_s, c.end_s, self.answers[c.index].counts)
                for c in self.clips.clips if c.index in self.answers]
        write_count_table(self.output, CountTable(self.classes, self.kept_rows + rows))

    def _write_events(self, recording: int) -> None:
        taps = [Event(time_s, label) for clip in self.clips.clips_of(recording) if clip.index in self.answers
                for time_s, label in self.answers[clip.index].taps]
        _, to_tsv = get_writer("tsv")
        with atomic_write(self.clips.event_file(recording, self.events_dir)) as handle:
            handle.write(f"{MARKER}\n{to_tsv(sorted(taps, key=lambda e: e.time_s))}")

    def _resume_table(self, classes: list[str] | None) -> list[str]:
        """Answers from an existing count table; its other rows are kept as they are."""
        if not self.output.exists():
            if not classes:
                raise EventcountError("give the classes to count (--classes KD,SD,HH)")
            return list(classes)
        table = read_count_table(self.output)
        if classes and list(classes) != table.classes:
            raise EventcountError(f"{self.output}: holds the classes {','.join(table.classes)}, but "
                                  f"--classes says {','.join(classes)}; give another -o or the same classes")
        keys = {(c.recording, round(c.start_s, 3)): c for c in self.clips.clips}
        numbers = {path: i for i, path in enumerate(self.clips.recordings)}
        for row in table.clips:
            number = numbers.get(Path(os.path.abspath(row.path)))
            clip = keys.get((number, round(row.start_s, 3))) if row.start_s is not None else None
            if clip is None or row.end_s is None or abs(row.end_s - clip.end_s) > 1e-3:
                self.kept_rows.append(row)
            else:
                self.answers[clip.index] = Answer(row.counts)
        return table.classes

    def _resume_taps(self) -> None:
        """Taps of answered clips from event files this tool wrote; taps that disagree with a clip's counts
        (a save interrupted between the two files) are dropped, leaving the clip counted with keys."""
        for recording in range(len(self.clips.recordings)):
            path = self.clips.event_file(recording, self.events_dir)
            if not path.exists():
                continue
            with open(path, encoding="utf-8") as handle:
                if handle.readline().rstrip("\n") != MARKER:
                    self.no_taps[recording] = (f"{path} was not written by eventcount annotate and is kept; "
                                               "give --events DIR to tap along")
                    continue
            events = read_events(path)
            for clip in self.clips.clips_of(recording):
                answer = self.answers.get(clip.index)
                inside = [(e.time_s, e.label) for e in events if clip.start_s <= e.time_s < clip.end_s]
                if answer and inside and [sum(lab == n for _, lab in inside) for n in self.classes] == answer.counts:
                    answer.taps = inside
