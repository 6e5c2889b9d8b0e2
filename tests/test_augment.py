"""Time-stretch augmentation: lengths scale, events move to factor * t, counts are kept."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from eventcount.augment import stretch, stretch_times

RATE = 44100
TIMES_S = np.array([0.4, 0.9, 1.5, 2.0])


def clicks(duration_s: float = 2.6) -> torch.Tensor:
    samples = np.zeros(int(duration_s * RATE), np.float32)
    samples[np.round(TIMES_S * RATE).astype(int)] = 1.0
    return torch.from_numpy(samples)


def energy_envelope(samples: torch.Tensor, width: int = 2001) -> np.ndarray:
    return np.convolve(samples.numpy().astype(np.float64) ** 2, np.hanning(width), mode="same")


def found_times(samples: torch.Tensor, expected_s: np.ndarray, window_s: float = 0.15) -> np.ndarray:
    """The envelope's argmax in a window around each expected time, in seconds."""
    envelope, half = energy_envelope(samples), int(window_s * RATE)
    out = []
    for time_s in expected_s:
        centre = int(round(time_s * RATE))
        lo = max(0, centre - half)
        out.append((lo + np.argmax(envelope[lo:centre + half])) / RATE)
    return np.array(out)


@pytest.mark.parametrize("factor", [0.8, 1.1, 1.25])
def test_resampling_scales_length_and_moves_events(factor: float) -> None:
    samples = clicks()
    out = stretch(samples, RATE, factor)
    assert abs(out.numel() - factor * samples.numel()) <= 2
    expected = stretch_times(TIMES_S, factor)
    assert np.allclose(expected, TIMES_S * factor)
    assert np.abs(found_times(out, expected) - expected).max() <= 1e-3


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_resampling_keeps_counts(factor: float) -> None:
    out = stretch(clicks(), RATE, factor)
    envelope = energy_envelope(out)
    peaks, _ = scipy.signal.find_peaks(envelope, height=0.2 * envelope.max(), distance=int(0.2 * RATE))
    assert len(peaks) == len(TIMES_S)
    assert np.allclose(peaks / RATE, TIMES_S * factor, atol=1e-3)


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_preserve_pitch_scales_length_and_moves_events(factor: float) -> None:
    samples = clicks()
    out = stretch(samples, RATE, factor, preserve_pitch=True)
    assert abs(out.numel() - factor * samples.numel()) <= 2
    expected = TIMES_S * factor
    # the phase vocoder (2048-sample frames) smears a click over about +-23 ms
    assert np.abs(found_times(out, expected) - expected).max() <= 0.025
    # every event is still there: each window holds far more energy than the gaps between events
    envelope = energy_envelope(out)
    in_windows = [envelope[int((t - 0.05) * RATE):int((t + 0.05) * RATE)].max() for t in expected]
    gaps = [envelope[int((a + 0.12) * RATE):int((b - 0.12) * RATE)].max()
            for a, b in zip(expected[:-1], expected[1:], strict=True)]
    assert min(in_windows) > 20 * max(gaps)


def test_factor_one_is_identity_and_nonpositive_is_rejected() -> None:
    samples = clicks()
    assert stretch(samples, RATE, 1.0) is samples
    with pytest.raises(ValueError, match="positive"):
        stretch(samples, RATE, 0.0)


def test_stretch_keeps_leading_dimensions() -> None:
    samples = torch.stack([clicks(), -clicks()])
    out = stretch(samples, RATE, 1.25)
    assert out.shape[0] == 2
    assert abs(out.shape[1] - 1.25 * samples.shape[1]) <= 2
