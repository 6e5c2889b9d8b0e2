"""Training augmentations that keep a recording's event counts and times.

Time stretch: a factor s > 1 makes the recording s times longer (slower), so an event at t seconds moves to s * t.
Band limit: the recording is heard as if it had been made at a lower sample rate (nothing above that rate's
Nyquist frequency), which is what the front end makes of a user's low-rate file.
Background: a stretch of another recording (music, noise, a room) is mixed under the recording at a random level,
so the model learns to find its events among other sounds; the background must not contain the events counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import librosa
import numpy as np
import torch

from eventcount.config import TrainConfig
from eventcount.errors import EventcountError
from eventcount.features import resample
from eventcount.recordings import audio_duration, find_recordings, read_audio_span


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


def background_mixer(paths: Sequence[Path], share: float, level_db: Sequence[float], rate: float,
                     seed: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Mix a random stretch of a random background file under a `share` of training copies, at a level drawn
    uniformly from `level_db` (LOW, HIGH: dB of the background's RMS against the copy's; 0 = equally loud).
    A background shorter than the copy is repeated. None when there are no paths or `share` is 0."""
    if not 0 <= share <= 1:
        raise EventcountError(f"background_share: expected a share between 0 and 1, got {share}")
    if len(level_db) != 2 or level_db[0] > level_db[1]:
        raise EventcountError(f"background_db: expected LOW,HIGH with LOW <= HIGH, got {list(level_db)}")
    if not paths or share == 0:
        return None
    durations = [audio_duration(path) for path in paths]  # an unreadable background fails before training
    rng = np.random.default_rng([seed, 1])  # draws of its own, apart from band_limiter's

    def apply(samples: torch.Tensor) -> torch.Tensor:
        if rng.random() >= share:
            return samples
        pick = int(rng.integers(len(paths)))
        needed_s = samples.shape[-1] / rate
        start_s = float(rng.uniform(0, max(0.0, durations[pick] - needed_s)))
        background = _background_span(paths[pick], start_s, needed_s, rate, samples.shape[-1])
        loudness = float(samples.square().mean().sqrt())
        level = float(background.square().mean().sqrt())
        if level == 0 or loudness == 0:
            return samples
        gain = loudness / level * 10 ** (rng.uniform(*level_db) / 20)
        return samples + gain * background

    return apply


def _background_span(path: Path, start_s: float, duration_s: float, rate: float, n: int) -> torch.Tensor:
    """`n` mono samples at `rate` of a background file from `start_s` on, repeated if the file is shorter."""
    samples, file_rate = read_audio_span(path, start_s, duration_s)
    span = resample(torch.from_numpy(samples), file_rate, rate)
    if span.shape[-1] == 0:
        return torch.zeros(n)
    return span.repeat(-(-n // span.shape[-1]))[:n]


def training_augmentation(config: TrainConfig, rate: float, seed: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """What happens to each stretched training copy before its features: a background mixed under it
    (`background_mixer`), then the mix band-limited (`band_limiter`), as the config asks; None for neither."""
    steps = [background_mixer(find_recordings(config.background, kind="audio") if config.background else [],
                              config.background_share, config.background_db, rate, seed),
             band_limiter(config.band_limit, config.band_limit_rates_hz, rate, seed)]
    steps = [step for step in steps if step is not None]
    if not steps:
        return None

    def apply(samples: torch.Tensor) -> torch.Tensor:
        for step in steps:
            samples = step(samples)
        return samples

    return apply
