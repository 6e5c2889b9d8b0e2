"""Decoding: per-frame probabilities [T, D] -> event times in seconds (pure numpy), whole or as frames arrive.

`pick_events` decodes a whole array; `StreamDecoder` decodes frames as they arrive and gives exactly the same
events: both find candidate peaks with `candidate_peaks`, merge them with `PeakMerger` and time them with
`peak_details`, so there is one definition of each step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eventcount.annotations import Event
from eventcount.config import DecodeConfig
from eventcount.features import frame_times


def local_mass(probs: np.ndarray) -> np.ndarray:
    """Probability summed over each frame and its two neighbours, [T] -> [T] (a hit split over frames adds up)."""
    padded = np.pad(probs, 1)
    return padded[:-2] + padded[1:-1] + padded[2:]


def candidate_peaks(probs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(frames, local masses) of the local maxima whose local mass reaches `threshold` (before merging).

    A frame is a local maximum when it is >= the frame before and > the frame after; before the first and
    after the last frame lies -inf."""
    mass = local_mass(probs)
    previous = np.concatenate([[-np.inf], probs[:-1]])
    following = np.concatenate([probs[1:], [-np.inf]])
    peaks = np.flatnonzero((probs >= previous) & (probs > following) & (mass >= threshold))
    return peaks, mass[peaks]


@dataclass
class Peak:
    frame: int
    mass: float
    payload: object = None


class PeakMerger:
    """The greedy merge of peaks in time order: a peak closer than `min_distance` frames to the kept one
    replaces it when its mass is larger, else it is dropped. Fed one peak at a time, it says when a kept peak
    is final (a later peak far enough arrived, or no later peak can be close enough)."""

    def __init__(self, min_distance: int) -> None:
        self.min_distance = min_distance
        self.pending: Peak | None = None

    def add(self, peak: Peak) -> list[Peak]:
        """Take the next peak; returns the peaks that became final."""
        if self.pending is not None and peak.frame - self.pending.frame < self.min_distance:
            if peak.mass > self.pending.mass:
                self.pending = peak
            return []
        final, self.pending = self.release(), peak
        return final

    def ready(self, next_frame: int) -> list[Peak]:
        """The pending peak when every later peak will lie at frame >= `next_frame`, if that is far enough."""
        if self.pending is not None and next_frame - self.pending.frame >= self.min_distance:
            return self.release()
        return []

    def release(self) -> list[Peak]:
        final, self.pending = ([] if self.pending is None else [self.pending]), None
        return final


def peak_frames(probs: np.ndarray, threshold: float, min_distance: int) -> np.ndarray:
    """Frames of local maxima whose local mass reaches `threshold`, at least `min_distance` frames apart."""
    frames, masses = candidate_peaks(probs, threshold)
    merger, kept = PeakMerger(min_distance), []
    for frame, mass in zip(frames, masses, strict=True):
        kept += merger.add(Peak(int(frame), float(mass)))
    kept += merger.release()
    return np.asarray([peak.frame for peak in kept], dtype=np.int64)


def peak_times(probs: np.ndarray, frames: np.ndarray, frame_rate: float, first_frame: int = 0) -> np.ndarray:
    """Sub-frame event times: the probability-weighted centre of each peak's three-frame neighbourhood.

    `probs` may be a slice of a longer array that starts at frame `first_frame` (zero-padded at its ends)."""
    padded = np.pad(probs, 1)
    weights = np.stack([padded[frames], padded[frames + 1], padded[frames + 2]])
    offsets = (weights * np.array([-1.0, 0.0, 1.0])[:, None]).sum(0) / np.maximum(weights.sum(0), 1e-12)
    return frame_times((first_frame + frames) + offsets, frame_rate)


def peak_details(probs: np.ndarray, frames: np.ndarray, frame_rate: float, lag_s: float,
                 first_frame: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(event times in seconds moved back by `lag_s`, confidences in 0..1) of the peaks at `frames` of `probs`
    (a slice starting at frame `first_frame`)."""
    times = peak_times(probs, frames, frame_rate, first_frame) - lag_s
    return times, np.minimum(local_mass(probs)[frames], 1.0)


def min_distance_frames(min_distance_s: float, frame_rate: float) -> int:
    return max(1, int(round(min_distance_s * frame_rate)))


def pick_class(probs: np.ndarray, frame_rate: float, threshold: float, min_distance_s: float,
               lag_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One class: probabilities [T] -> (event times [n] in seconds, confidences [n] in 0..1)."""
    frames = peak_frames(probs, threshold, min_distance_frames(min_distance_s, frame_rate))
    times, confidence = peak_details(probs, frames, frame_rate, lag_s)
    keep = times >= 0
    return times[keep], confidence[keep]


def class_threshold(config: DecodeConfig, name: str) -> float:
    return config.thresholds.get(name, config.threshold)


def total_lag_s(config: DecodeConfig, frame_rate: float, delay_frames: int) -> float:
    """What decoding moves events back by: the configured lag plus the front end's detection delay."""
    return config.lag_s + delay_frames / frame_rate


def pick_events(probs: np.ndarray, frame_rate: float, classes: list[str], config: DecodeConfig,
                delay_frames: int = 0) -> list[Event]:
    """All classes: probabilities [T, D] -> events sorted by time, moved back by the front end's detection
    delay (`FrontendConfig.detection_delay`) and the configured lag."""
    events = []
    lag_s = total_lag_s(config, frame_rate, delay_frames)
    for d, name in enumerate(classes):
        times, confidence = pick_class(probs[:, d], frame_rate, class_threshold(config, name),
                                       config.min_distance_s, lag_s)
        events += [Event(float(t), name, float(c)) for t, c in zip(times, confidence, strict=True)]
    return sorted(events, key=lambda e: (e.time_s, e.label))


class StreamDecoder:
    """`pick_events` for probabilities that arrive a few frames at a time: `push` returns the events decided so
    far, `finish` the rest; together they are exactly `pick_events` on the whole array.

    Frame t is tested once frame t + 1 has arrived (a local maximum needs its right neighbour); a kept peak is
    final once no later peak can lie within `min_distance` frames, so an event is decided `max(min_distance,
    1)` frames after the frame of its peak arrives; it is handed out once no other class can still decide an
    earlier one, so the events come in `pick_events`' order."""

    def __init__(self, frame_rate: float, classes: list[str], config: DecodeConfig, delay_frames: int = 0) -> None:
        self.frame_rate = frame_rate
        self.classes = list(classes)
        self.thresholds = [class_threshold(config, name) for name in self.classes]
        self.lag_s = total_lag_s(config, frame_rate, delay_frames)
        self.min_distance = min_distance_frames(config.min_distance_s, frame_rate)
        self.mergers = [PeakMerger(self.min_distance) for _ in self.classes]
        self.recent = np.zeros((0, len(self.classes)))  # frames [next_test - 1, arrived) (fewer at the start)
        self.next_test = 0  # the first frame not tested yet
        self.arrived = 0
        self.decided: list[Event] = []  # decided, held back until no earlier event can come

    @property
    def decision_frames(self) -> int:
        """Frames between a peak's frame arriving and its event being decided."""
        return self.min_distance

    def push(self, probs: np.ndarray) -> list[Event]:
        """Take the next frames' probabilities [n, D]; returns the events now decided and earlier than any event
        still to come, in `pick_events`' order."""
        self.recent = np.concatenate([self.recent, np.asarray(probs, dtype=np.float64).reshape(-1, len(self.classes))])
        self.arrived += len(probs)
        self.decided += self._decide(self.arrived - 1)
        return self._release(self._earliest_undecided())

    def finish(self) -> list[Event]:
        """The end of the stream: test the last frame (nothing follows it) and release every kept peak."""
        self.decided += self._decide(self.arrived)
        for d, merger in enumerate(self.mergers):
            self.decided += self._events(d, merger.release())
        return self._release(np.inf)

    def _earliest_undecided(self) -> float:
        """A time no event still to come can precede: a peak at frame f is timed within a frame of f's centre."""
        frames = [self.next_test] + [m.pending.frame for m in self.mergers if m.pending is not None]
        return (min(frames) - 0.5) / self.frame_rate - self.lag_s

    def _release(self, before: float) -> list[Event]:
        self.decided.sort(key=lambda e: (e.time_s, e.label))
        count = next((i for i, e in enumerate(self.decided) if e.time_s >= before), len(self.decided))
        released, self.decided = self.decided[:count], self.decided[count:]
        return released

    def _decide(self, end: int) -> list[Event]:
        """Test frames [next_test, end); frame `end` (if it arrived) serves as their right neighbour."""
        if end <= self.next_test:
            return []
        first = max(0, self.next_test - 1)
        window = self.recent[: end + 1 - first]
        events: list[Event] = []
        for d, merger in enumerate(self.mergers):
            frames, masses = candidate_peaks(window[:, d], self.thresholds[d])
            tested = (frames + first >= self.next_test) & (frames + first < end)
            final: list[Peak] = []
            if tested.any():
                times, confidence = peak_details(window[:, d], frames[tested], self.frame_rate, self.lag_s, first)
                for frame, mass, time_s, conf in zip(frames[tested], masses[tested], times, confidence, strict=True):
                    final += merger.add(Peak(int(frame) + first, float(mass), (float(time_s), float(conf))))
            events += self._events(d, final + merger.ready(end))
        self.recent = self.recent[end - 1 - first:]
        self.next_test = end
        return events

    def _events(self, d: int, peaks: list[Peak]) -> list[Event]:
        return [Event(peak.payload[0], self.classes[d], peak.payload[1]) for peak in peaks
                if peak.payload[0] >= 0]
