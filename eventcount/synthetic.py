"""Synthetic drum-like recordings with known event times, for tests, examples and smoke checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from eventcount.annotations import Event
from eventcount.writers import write_events

CLASSES = ("low", "mid", "high")


def _sound(kind: str, rate: int, rng: np.random.Generator) -> np.ndarray:
    """One hit of a kind: a low decaying thump, a mid band noise burst or a short high click."""
    length = int(0.25 * rate)
    t = np.arange(length) / rate
    if kind == "low":
        freq = rng.uniform(55, 80)
        return np.sin(2 * np.pi * freq * t * (1 + 0.5 * np.exp(-t * 30))) * np.exp(-t * rng.uniform(14, 20))
    noise = rng.standard_normal(length)
    if kind == "mid":
        tone = np.sin(2 * np.pi * rng.uniform(180, 220) * t)
        band = np.convolve(noise, np.hanning(9) * np.cos(np.pi * np.arange(9) / 2.2), mode="same")
        return (0.6 * band + 0.5 * tone) * np.exp(-t * rng.uniform(22, 30))
    high = np.diff(noise, prepend=0.0)
    return 0.5 * high * np.exp(-t * rng.uniform(60, 90))


def synthetic_recording(duration_s: float, rate: int, seed: int, rate_hz: float = 2.0,
                        min_gap_s: float = 0.12) -> tuple[np.ndarray, list[Event]]:
    """A mono recording [n] with hits of the three kinds at random times, and its events."""
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal(int(duration_s * rate)) * 10 ** (rng.uniform(-55, -40) / 20)
    events: list[Event] = []
    for kind in CLASSES:
        n = rng.poisson(rate_hz * duration_s)
        times = np.sort(rng.uniform(0.05, max(0.05, duration_s - 0.3), n))
        times = times[np.diff(times, prepend=-np.inf) > min_gap_s]
        for time_s in times:
            hit = _sound(kind, rate, rng) * 10 ** (rng.uniform(-14, 0) / 20)
            start = int(round(time_s * rate))
            end = min(start + hit.size, audio.size)
            audio[start:end] += hit[: end - start]
            events.append(Event(round(float(start / rate), 6), kind))
    audio *= 0.5 / max(1e-9, np.abs(audio).max())
    return audio.astype(np.float32), sorted(events, key=lambda e: e.time_s)


def make_synthetic_set(out_dir: str | Path, n_files: int, duration_s: float = 10.0, seed: int = 0,
                       rate: int = 16000, prefix: str = "clip") -> list[Path]:
    """Write `n_files` wav recordings with `<stem>.events.tsv` timestamps into out_dir; returns the wav paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_files):
        audio, events = synthetic_recording(duration_s, rate, seed * 100_003 + i)
        path = out_dir / f"{prefix}{i:03d}.wav"
        sf.write(path, audio, rate)
        write_events(out_dir / f"{prefix}{i:03d}.events.tsv", events)
        paths.append(path)
    return paths
