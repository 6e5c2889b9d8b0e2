"""Feature frontends: recordings -> normalised frames, and the one definition of frame time.

Frame t stands for the interval [t / frame_rate, (t + 1) / frame_rate): an event at time tau belongs to frame
floor(tau * frame_rate), and a detection at frame t is reported at the interval's centre. For audio, frame t is
the STFT window that *ends* with the samples of that interval, so frames are causal and the window never sees
the future. That window is tapered, so an event is first seen clearly `FrontendConfig.detection_delay()` frames
after the frame it falls in (1 for audio): training targets and clip labels use that *detection frame*
(`detection_frames`; `ClipData.clip_frames`), and decoding moves a detection back by the same amount.
Features have two channels: the normalised values and their first time difference.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
import torchaudio.functional as AF
from torch.nn import functional as F

from eventcount.config import FrontendConfig
from eventcount.errors import EventcountError
from eventcount.numba_cache import CACHE
from eventcount.signals import Signal

# isort: split
import numba  # (after the cache directory is settled)

LOG_FLOOR = 1e-4
VAR_FLOOR = 1e-2


def event_frames(times_s: np.ndarray, frame_rate: float) -> np.ndarray:
    """Frame index [n] (int64) that each event time (seconds) belongs to."""
    return np.floor(np.asarray(times_s, dtype=np.float64) * frame_rate + 1e-9).astype(np.int64)


def detection_frames(times_s: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """The frame [n] in which a causal model should report each event (its frame + the detection delay)."""
    return event_frames(times_s, config.frame_rate) + config.detection_delay()


def frame_times(frames: np.ndarray | int, frame_rate: float) -> np.ndarray:
    """Time in seconds that frame indices stand for (the centre of their interval); an int n -> frames 0..n-1."""
    if isinstance(frames, (int, np.integer)):
        frames = np.arange(frames)
    return (np.asarray(frames, dtype=np.float64) + 0.5) / frame_rate


def to_frame(time_s: float, frame_rate: float) -> int:
    """The frame boundary closest to a time in seconds (for clip starts and ends)."""
    return int(round(time_s * frame_rate))


def resample(samples: torch.Tensor, orig_rate: float, new_rate: float) -> torch.Tensor:
    """Resample along the last axis with torchaudio's band-limited resampler (rates may be non-integer)."""
    if orig_rate == new_rate:
        return samples
    return resample_ratio(samples, Fraction(new_rate / orig_rate).limit_denominator(1000))


def resample_ratio(samples: torch.Tensor, ratio: Fraction) -> torch.Tensor:
    """Resample by an exact ratio (output samples per input sample)."""
    if ratio == 1:
        return samples
    return sinc_resampler(ratio)(samples)


BANDS_PER_GROUP = 16
"""Mel bands that share one matrix product in `FeatureExtractor` (each group over the bins its bands cover)."""

PHASES_PER_GROUP = 32
"""Output phases that share one convolution in `sinc_resampler` (fewer: shorter kernels, more calls)."""


@functools.lru_cache(maxsize=64)
def sinc_resampler(ratio: Fraction) -> Callable[[torch.Tensor], torch.Tensor]:
    """torchaudio's `resample` by `ratio` (6 zero crossings, 0.99 roll-off, Hann window), its filter computed
    once and applied sparsely: equal to `torchaudio.functional.resample` to float rounding (~1e-7).

    torchaudio convolves the input with one filter per output phase over a span of `2 * width + den` input
    samples, though each phase's filter is zero but for about `2 * width` of them (44.1 -> 32 kHz: 18 of 459).
    Here phases are taken in groups of `PHASES_PER_GROUP`, each group convolved over only the span where its
    filters are non-zero: 7x fewer multiplications for 44.1 -> 32 kHz, the same products summed. (As matrix
    products of strided views it was 1.4x faster, but its sums then depend on the input's length: resampling
    block by block would no longer equal resampling the whole.)"""
    try:
        from torchaudio.functional.functional import _get_sinc_resample_kernel
    except ImportError:  # another torchaudio layout: its public function, filter computed each time
        return lambda samples: AF.resample(samples, ratio.denominator, ratio.numerator)
    old, new = ratio.denominator, ratio.numerator
    kernel, width = _get_sinc_resample_kernel(old, new, 1, 6, 0.99, "sinc_interp_hann", None,
                                              torch.device("cpu"), torch.float32)
    kernel = kernel[:, 0]  # [new, 2 * width + old]
    live = kernel.abs() > 1e-12 * kernel.abs().max()  # outside its window a filter is ~1e-23, not 0
    groups = [(lo, hi, kernel[first: first + PHASES_PER_GROUP, None, lo:hi].contiguous())
              for first, lo, hi in live_spans(live, PHASES_PER_GROUP)]

    def apply(samples: torch.Tensor) -> torch.Tensor:
        shape = samples.shape
        waves = F.pad(samples.reshape(-1, shape[-1]), (width, width + old))
        blocks = (waves.shape[1] - kernel.shape[1]) // old + 1
        spans = [(waves[:, None, lo: lo + (blocks - 1) * old + hi - lo], weights.to(waves.dtype))
                 for lo, hi, weights in groups]
        out = torch.cat([F.conv1d(span, weights, stride=old) for span, weights in spans], dim=1)  # [waves, new, blocks]
        out = out.transpose(1, 2).reshape(waves.shape[0], -1)[:, : math.ceil(new * shape[-1] / old)]
        return out.reshape(*shape[:-1], out.shape[-1])

    return apply


def live_spans(live: torch.Tensor, size: int) -> list[tuple[int, int, int]]:
    """For each group of `size` rows of a boolean matrix, (first row, lo, hi): the columns [lo, hi) outside
    which all the group's rows are False. Filters that are zero but for a band are applied group by group over
    their band only."""
    spans = []
    for first in range(0, live.shape[0], size):
        columns = torch.nonzero(live[first: first + size].any(dim=0))[:, 0]
        lo, hi = (int(columns[0]), int(columns[-1]) + 1) if columns.numel() else (0, 0)
        spans.append((first, lo, hi))
    return spans


def hop_samples(config: FrontendConfig) -> int:
    """Samples per frame at the frontend's working rate; it must be an integer."""
    rate = working_rate(config)
    hop = rate / config.frame_rate
    if abs(hop - round(hop)) > 1e-9:
        raise EventcountError(f"frame_rate {config.frame_rate} must divide sample_rate {config.sample_rate}")
    return int(round(hop))


def working_rate(config: FrontendConfig) -> float:
    """Sample rate the frontend works at (audio: sample_rate; sensors: frame_rate * samples_per_frame)."""
    return float(config.sample_rate) if config.kind == "audio" else config.frame_rate * config.samples_per_frame


def n_features(config: FrontendConfig, channels: int = 1) -> int:
    """Feature bins per frame and channel (the F of [2, T, F])."""
    if config.kind != "audio":
        return channels * config.samples_per_frame
    return len(low_bins(config)) + config.n_mels


def low_bins(config: FrontendConfig) -> np.ndarray:
    """The frequency bins of the `low_n_fft`-sample window that are features of their own: those from `f_min`
    up to `low_f_max` (none when `low_n_fft` is 0). At 32 kHz a 2,048 window has bins 15.6 Hz apart, where
    80 mel bands from 30 Hz are 46 Hz apart and a 1,024 window's bins 31 Hz."""
    if not config.low_n_fft:
        return np.zeros(0, np.int64)
    if config.low_n_fft < 0:
        raise EventcountError(f"frontend low_n_fft must be 0 (off) or a window in samples, got {config.low_n_fft}")
    if not config.f_min < config.low_f_max < config.f_max:
        raise EventcountError(f"frontend low_f_max {config.low_f_max:g} Hz must lie between f_min "
                              f"{config.f_min:g} and f_max {config.f_max:g}")
    spacing = config.sample_rate / config.low_n_fft
    bins = np.arange(math.ceil(config.f_min / spacing), math.ceil(config.low_f_max / spacing))
    if bins.size == 0:
        raise EventcountError(f"frontend low_n_fft {config.low_n_fft}: its bins are {spacing:g} Hz apart, so none "
                              f"lies between f_min {config.f_min:g} and low_f_max {config.low_f_max:g} Hz")
    return bins


def low_dft(config: FrontendConfig) -> torch.Tensor | None:
    """Hann-windowed DFT kernels [2 * bins, 1, low_n_fft] (cosines, then sines) of `low_bins`, or None."""
    bins = low_bins(config)
    if bins.size == 0:
        return None
    n = config.low_n_fft
    phase = 2 * math.pi * torch.outer(torch.from_numpy(bins).double(), torch.arange(n, dtype=torch.float64)) / n
    window = torch.hann_window(n, dtype=torch.float64)
    kernels = torch.cat([torch.cos(phase), torch.sin(phase)]) * window
    return kernels.float()[:, None, :].contiguous()


@dataclass
class FeatureState:
    """What a chunked extractor carries from one chunk to the next."""

    tail: torch.Tensor | None = None
    mean: np.ndarray | None = None
    var: np.ndarray | None = None
    previous: np.ndarray | None = None


class FeatureExtractor:
    """Turns working-rate samples into [2, T, F] feature frames, whole or chunk by chunk with equal results."""

    def __init__(self, config: FrontendConfig, channels: int = 1) -> None:
        self.config = config
        self.channels = channels
        self.hop = hop_samples(config)
        if config.kind == "audio":
            self.window = torch.hann_window(config.n_fft)
            self.low_dft = low_dft(config)
            self.span = max(config.n_fft, config.low_n_fft)  # samples that one frame sees
            mel_min = config.low_f_max if self.low_dft is not None else config.f_min
            self.mel = AF.melscale_fbanks(
                config.n_fft // 2 + 1, mel_min, min(config.f_max, config.sample_rate / 2),
                config.n_mels, config.sample_rate, norm="slaney", mel_scale="slaney",
            )
            self.mel_bands = [(first, lo, self.mel[lo:hi, first: first + BANDS_PER_GROUP])
                              for first, lo, hi in live_spans(self.mel.T != 0, BANDS_PER_GROUP)]
        self.alpha = 1.0 - math.exp(-1.0 / (config.norm_time_s * config.frame_rate))

    def prepare(self, signal: Signal) -> torch.Tensor:
        """A Signal -> working-rate samples: [n] mono for audio, [channels, n] for sensors."""
        data = torch.from_numpy(np.ascontiguousarray(signal.data, dtype=np.float32))
        if self.config.kind == "audio":
            return resample(data.mean(dim=1), signal.rate, working_rate(self.config))
        return resample(data.T.contiguous(), signal.rate, working_rate(self.config))

    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        """Whole recording: working-rate samples -> features [2, T, F] (float32)."""
        features, _ = self.process(samples, FeatureState())
        return features

    def process(self, samples: torch.Tensor, state: FeatureState) -> tuple[torch.Tensor, FeatureState]:
        """One chunk of working-rate samples -> (features [2, T, F], new state)."""
        raw, tail = self._raw_frames(samples, state.tail)
        values, mean, var, previous = self._normalise(raw, state)
        return values, FeatureState(tail=tail, mean=mean, var=var, previous=previous)

    def _raw_frames(self, samples: torch.Tensor, tail: torch.Tensor | None) -> tuple[np.ndarray, torch.Tensor]:
        if self.config.kind == "audio":
            return self._log_mel(samples, tail)
        return self._sensor_frames(samples, tail)

    def _log_mel(self, samples: torch.Tensor, tail: torch.Tensor | None) -> tuple[np.ndarray, torch.Tensor]:
        n_fft, hop, span = self.config.n_fft, self.hop, self.span
        if tail is None:
            tail = torch.zeros(span - hop)
        x = torch.cat([tail, samples.float()])
        n_frames = max(0, (x.numel() - (span - hop)) // hop)
        if n_frames == 0:
            return np.zeros((0, n_features(self.config)), np.float32), x
        # torch.stft's numbers, frames as rows: with the power summed from the real and imaginary parts as
        # two strided views, the log-mel of a minute took 22 ms instead of 25-27 ms (one thread, 2026-12-04)
        seen = x[: n_frames * hop + span - hop]
        frames = seen[span - n_fft:].unfold(0, n_fft, hop) * self.window
        parts = torch.view_as_real(torch.fft.rfft(frames)).reshape(n_frames, -1).square_()
        power = parts[:, 0::2] + parts[:, 1::2]
        bands = torch.empty(n_frames, self.mel.shape[1])
        for first, lo, weights in self.mel_bands:  # each group of bands over its bins only: 7.0 -> 3.0 ms a minute
            bands[:, first: first + weights.shape[1]] = power[:, lo: lo + weights.shape[0]] @ weights
        if self.low_dft is not None:
            bands = torch.cat([self._low_power(seen), bands], dim=1)
        return torch.log(bands.clamp_min_(0).add_(LOG_FLOOR)).numpy(), x[n_frames * hop:]

    def _low_power(self, seen: torch.Tensor) -> torch.Tensor:
        """Power [T, bins] of the `low_bins` of each frame's `low_n_fft`-sample window (ending where the frame's
        short window ends). A DFT of those bins only, as one strided convolution rather than a second FFT: the
        drum model's 18 bins of a 2,048 window made its features of a minute of audio 46.5 ms instead of 28.3
        (one thread; `bench/detect_speed.py --stages`, 2026-12-05)."""
        start = self.span - self.config.low_n_fft
        parts = F.conv1d(seen[None, None, start:], self.low_dft, stride=self.hop)[0].square_()  # [2 * bins, T]
        half = parts.shape[0] // 2
        return (parts[:half] + parts[half:]).T

    def _sensor_frames(self, samples: torch.Tensor, tail: torch.Tensor | None) -> tuple[np.ndarray, torch.Tensor]:
        x = samples.float() if tail is None else torch.cat([tail, samples.float()], dim=1)
        n_frames = x.shape[1] // self.hop
        frames = x[:, : n_frames * self.hop].reshape(x.shape[0], n_frames, self.hop)
        raw = frames.permute(1, 0, 2).reshape(n_frames, x.shape[0] * self.hop)
        return raw.numpy(), x[:, n_frames * self.hop:]

    def _normalise(self, raw: np.ndarray, state: FeatureState):
        """Causal running standardisation per bin (exponential moving mean and variance) + time difference."""
        raw = raw.astype(np.float64)
        n_bins = raw.shape[1]
        mean0, var0 = self._initial_stats(raw, state, n_bins)
        if raw.shape[0] == 0:
            empty = torch.zeros(2, 0, n_bins)
            return empty, state.mean, state.var, state.previous
        mean, var = mean0.copy(), var0.copy()
        previous = (raw[0] if state.previous is None else state.previous).copy()
        values = running_standardise(raw, self.alpha, mean, var, previous)
        return torch.from_numpy(values), mean, var, previous

    def _initial_stats(self, raw: np.ndarray, state: FeatureState, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
        if state.mean is not None:
            return state.mean, state.var
        cfg = self.config
        if cfg.norm_prior_mean is not None and len(cfg.norm_prior_mean) == n_bins:
            return np.asarray(cfg.norm_prior_mean, np.float64), np.square(np.asarray(cfg.norm_prior_std, np.float64))
        first = raw[0] if raw.shape[0] else np.zeros(n_bins)
        return first.copy(), np.ones(n_bins)


@numba.njit(cache=CACHE, nogil=True)
def running_standardise(raw: np.ndarray, alpha: float, mean: np.ndarray, var: np.ndarray,
                        previous: np.ndarray) -> np.ndarray:
    """Frames raw [T, F] (float64) -> [2, T, F] float32: each bin less its exponential moving mean, and its
    difference from the frame before, both over the moving standard deviation. mean, var and previous [F] hold
    the state before the first frame and are updated in place to the state after the last. The arithmetic is
    `scipy.signal.lfilter`'s for the two one-pole filters, so results are the same to the bit; one pass over
    the frames, and no import of scipy.signal (1.5 s).
    """
    keep = 1.0 - alpha
    gain = alpha * keep
    out = np.empty((2, raw.shape[0], raw.shape[1]), np.float32)
    for t in range(raw.shape[0]):
        for f in range(raw.shape[1]):
            x = raw[t, f]
            deviation = x - mean[f]  # from the mean before this frame
            mean[f] = alpha * x + keep * mean[f]
            var[f] = gain * (deviation * deviation) + keep * var[f]
            scale = 1.0 / np.sqrt(max(var[f], VAR_FLOOR))
            out[0, t, f] = (x - mean[f]) * scale
            out[1, t, f] = (x - previous[f]) * scale
            previous[f] = x
    return out


def fit_norm_prior(config: FrontendConfig, extractor: FeatureExtractor, samples: list[torch.Tensor]) -> None:
    """Set the normalisation prior (per-bin mean and std of the raw frames) from a few recordings."""
    raws = [extractor._raw_frames(s, None)[0] for s in samples]
    raw = np.concatenate([r for r in raws if r.shape[0]], axis=0)
    config.norm_prior_mean = raw.mean(axis=0).round(5).tolist()
    config.norm_prior_std = np.maximum(raw.std(axis=0), math.sqrt(VAR_FLOOR)).round(5).tolist()
