"""Decoding: per-frame probabilities [T, D] -> event times in seconds (pure numpy)."""

from __future__ import annotations

import numpy as np

from eventcount.annotations import Event
from eventcount.config import DecodeConfig
from eventcount.features import frame_times


def local_mass(probs: np.ndarray) -> np.ndarray:
    """Probability summed over each frame and its two neighbours, [T] -> [T] (a hit split over frames adds up)."""
    padded = np.pad(probs, 1)
    return padded[:-2] + padded[1:-1] + padded[2:]


def peak_frames(probs: np.ndarray, threshold: float, min_distance: int) -> np.ndarray:
    """Frames of local maxima whose local mass reaches `threshold`, at least `min_distance` frames apart."""
    mass = local_mass(probs)
    previous = np.concatenate([[-np.inf], probs[:-1]])
    following = np.concatenate([probs[1:], [-np.inf]])
    peaks = np.flatnonzero((probs >= previous) & (probs > following) & (mass >= threshold))
    if min_distance <= 1 or peaks.size < 2:
        return peaks
    kept: list[int] = []
    for frame in peaks:
        if kept and frame - kept[-1] < min_distance:
            if mass[frame] > mass[kept[-1]]:
                kept[-1] = frame
            continue
        kept.append(frame)
    return np.asarray(kept, dtype=np.int64)


def peak_times(probs: np.ndarray, frames: np.ndarray, frame_rate: float) -> np.ndarray:
    """Sub-frame event times: the probability-weighted centre of each peak's three-frame neighbourhood."""
    padded = np.pad(probs, 1)
    weights = np.stack([padded[frames], padded[frames + 1], padded[frames + 2]])
    offsets = (weights * np.array([-1.0, 0.0, 1.0])[:, None]).sum(0) / np.maximum(weights.sum(0), 1e-12)
    return frame_times(frames + offsets, frame_rate)


def pick_class(probs: np.ndarray, frame_rate: float, threshold: float, min_distance_s: float,
               lag_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One class: probabilities [T] -> (event times [n] in seconds, confidences [n] in 0..1)."""
    min_distance = max(1, int(round(min_distance_s * frame_rate)))
    frames = peak_frames(probs, threshold, min_distance)
    times = peak_times(probs, frames, frame_rate) - lag_s
    confidence = np.minimum(local_mass(probs)[frames], 1.0)
    keep = times >= 0
    return times[keep], confidence[keep]


def class_threshold(config: DecodeConfig, name: str) -> float:
    return config.thresholds.get(name, config.threshold)


def pick_events(probs: np.ndarray, frame_rate: float, classes: list[str], config: DecodeConfig,
                delay_frames: int = 0) -> list[Event]:
    """All classes: probabilities [T, D] -> events sorted by time, moved back by the front end's detection
    delay (`FrontendConfig.detection_delay`) and the configured lag."""
    events = []
    lag_s = config.lag_s + delay_frames / frame_rate
    for d, name in enumerate(classes):
        times, confidence = pick_class(probs[:, d], frame_rate, class_threshold(config, name),
                                       config.min_distance_s, lag_s)
        events += [Event(float(t), name, float(c)) for t, c in zip(times, confidence, strict=True)]
    return sorted(events, key=lambda e: (e.time_s, e.label))
