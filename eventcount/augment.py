"""Training augmentations that keep a recording's event counts and times.

Time stretch: a factor s > 1 makes the recording s times longer (slower), so an event at t seconds moves to s * t.
Band limit: the recording is heard as if it had been made at a lower sample rate (nothing above that rate's
Nyquist frequency), which is what the front end makes of a user's low-rate file.
"""

from __future__ import annotations

from collections.abc import Callable

import librosa
import numpy as np
import torch

from eventcount.errors import EventcountError
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



def band_limit(samples: torch.Tensor, rate: float, low_rate: float) -> torch.Tensor:
    """Samples [..., n] at `rate` as a recording made at `low_rate` and resampled back to `rate` (same length)."""
    back = resample(resample(samples, rate, low_rate), low_rate, rate)
    n = samples.shape[-1]
    if back.shape[-1] >= n:
        return back[..., :n]
    return torch.nn.functional.pad(back, (0, n - back.shape[-1]))


def band_limiter(share: float, rates_hz: list[float] | None, rate: float,
                 seed: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A random `band_limit` for training copies: a `share` of them get a sample rate drawn in whole kHz from
    `rates_hz` (LOW, HIGH; default a quarter to three quarters of `rate`), the rest pass unchanged.
    None when `share` is 0."""
    if not 0 <= share <= 1:
        raise EventcountError(f"band_limit: expected a share between 0 and 1, got {share}")
    if share == 0:
        return None
    low, high = rates_hz if rates_hz is not None else (rate / 4, rate * 3 / 4)
    lowest, highest = int(np.ceil(low / 1000)), int(np.floor(high / 1000))
    if not 0 < lowest <= highest or highest * 1000 >= rate:
        raise EventcountError(f"band_limit_rates_hz: expected LOW <= HIGH, spanning a whole kHz, below the "
                              f"front end's {rate:g} Hz; got {low:g}, {high:g}")
    rng = np.random.default_rng(seed)

    def apply(samples: torch.Tensor) -> torch.Tensor:
        if rng.random() >= share:
            return samples
        return band_limit(samples, rate, 1000.0 * int(rng.integers(lowest, highest + 1)))

    return apply
