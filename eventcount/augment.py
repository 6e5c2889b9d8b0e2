"""Time-stretch augmentation: change a recording's speed while keeping its event counts.

A factor s > 1 makes the recording s times longer (slower), so an event at t seconds moves to s * t.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

from eventcount.features import resample


def stretch(samples: torch.Tensor, rate: float, factor: float, preserve_pitch: bool = False) -> torch.Tensor:
    """Stretch samples [..., n] at `rate` by `factor` (length -> ~factor * n).

    Resampling (the default) moves the pitch with the speed, as a tape would; `preserve_pitch` uses a phase
    vocoder instead (librosa), which keeps pitch but smears transients a little.
    """
    if factor <= 0:
        raise ValueError(f"stretch factor must be positive, got {factor}")
    if factor == 1.0:
        return samples
    if preserve_pitch:
        stretched = librosa.effects.time_stretch(samples.numpy(), rate=1.0 / factor)
        return torch.from_numpy(np.ascontiguousarray(stretched))
    return resample(samples, rate, rate * factor)


def stretch_times(times_s: np.ndarray, factor: float) -> np.ndarray:
    """Event times after stretching by `factor`."""
    return np.asarray(times_s, dtype=np.float64) * factor

