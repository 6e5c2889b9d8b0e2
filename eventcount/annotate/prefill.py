"""Counts a model proposes for each clip (`annotate -m MODEL`): each recording detected once, in the background."""

from __future__ import annotations

import logging
import threading
from typing import Any

from eventcount.annotate.clips import ClipList, ClipRef
from eventcount.annotations import Event
from eventcount.errors import EventcountError

log = logging.getLogger("eventcount")


class Proposals:
    """A model's events per recording, detected by a background thread starting at the first open clip's
    recording; `for_clip` gives a clip's proposed counts once its recording is done."""

    def __init__(self, model: str, clips: ClipList, classes: list[str], sensor_options: dict[str, Any] | None = None,
                 device: str = "cpu") -> None:
        from eventcount.detection import Detector

        self.detector = Detector.load(model, device)  # in the foreground: a bad -m fails at once
        self.clips = clips
        self.classes = classes
        self.sensor_options = sensor_options
        self.events: dict[int, list[Event]] = {}
        self.failed: dict[int, str] = {}
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.detector.name

    def start(self, first_clip: int = 0) -> None:
        """Detect every recording, the one holding `first_clip` first, then the rest in order."""
        first = self.clips.clips[first_clip].recording if first_clip < len(self.clips.clips) else 0
        order = list(range(first, len(self.clips.recordings))) + list(range(first))
        self._thread = threading.Thread(target=self._run, args=(order,), name="annotate-prefill", daemon=True)
        self._thread.start()

    def wait(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self, order: list[int]) -> None:
        from eventcount.config import DetectSettings
        from eventcount.detection import detect_recording
        from eventcount.threads import set_threads

        set_threads(1)  # one core for the model: the page stays responsive
        settings = DetectSettings(sensor=dict(self.sensor_options or {}))
        for recording in order:
            try:
                self.events[recording] = detect_recording(self.detector, self.clips.recordings[recording],
                                                          settings).events
            except EventcountError as error:
                self.failed[recording] = str(error)
                log.warning("model proposals: %s", error)

    def for_clip(self, clip: ClipRef) -> dict[str, Any]:
        """`state` (pending, ready, failed), `counts` per class (None for a class the model lacks), and the
        model's `events` as [seconds from the clip's start, class]."""
        if clip.recording in self.failed:
            return {"state": "failed", "message": self.failed[clip.recording], "counts": None, "events": []}
        events = self.events.get(clip.recording)
        if events is None:
            return {"state": "pending", "counts": None, "events": []}
        inside = [e for e in events if clip.start_s <= e.time_s < clip.end_s]
        known = set(self.detector.spec.classes)
        counts = [sum(e.label == name for e in inside) if name in known else None for name in self.classes]
        return {"state": "ready", "counts": counts,
                "events": [[round(e.time_s - clip.start_s, 4), e.label] for e in inside if e.label in self.classes]}
