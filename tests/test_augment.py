"""Augmentation: time stretch scales lengths and moves events to factor * t; band limiting removes what a lower
sample rate cannot hold and keeps the rest; a background is mixed in at the level asked; all keep counts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch

from eventcount.augment import (
    background_mixer,
    band_limit,
    band_limiter,
    stretch,
    stretch_times,
    training_augmentation,
)
from eventcount.config import TrainConfig
from eventcount.errors import EventcountError

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


def tone(freq_hz: float, rate: int, seconds: float = 1.0) -> torch.Tensor:
    t = np.arange(int(seconds * rate)) / rate
    return torch.from_numpy(np.sin(2 * np.pi * freq_hz * t).astype(np.float32))


def test_band_limit_removes_what_the_lower_rate_cannot_hold() -> None:
    """At 32 kHz heard as a 16 kHz recording: a 3 kHz tone passes, a 10 kHz tone is gone; length is kept."""
    low, high = tone(3000, 32000), tone(10000, 32000)
    kept, removed = band_limit(low, 32000, 16000), band_limit(high, 32000, 16000)
    assert kept.shape == low.shape and removed.shape == high.shape
    middle = slice(1000, -1000)  # away from the resampler's edge effects
    assert torch.allclose(kept[middle], low[middle], atol=2e-2)
    assert float(removed[middle].square().mean()) < 1e-4 * float(high[middle].square().mean())


def test_band_limiter_draws_whole_khz_rates_for_a_share_of_copies(monkeypatch) -> None:
    import eventcount.augment as augment

    drawn = []
    monkeypatch.setattr(augment, "band_limit", lambda samples, rate, low_rate: drawn.append(low_rate) or samples)
    apply = band_limiter(0.3, [8000, 24000], 32000, seed=0)
    samples = tone(1000, 32000, 0.1)
    for _ in range(1000):
        assert apply(samples) is samples
    assert 230 < len(drawn) < 370  # ~30 % of copies
    assert set(drawn) <= {1000.0 * k for k in range(8, 25)} and len(set(drawn)) > 10
    assert band_limiter(0.0, None, 32000, seed=0) is None


def test_band_limiter_default_rates_and_bad_settings() -> None:
    assert band_limiter(1.0, None, 32000, seed=0) is not None  # 8-24 kHz
    with pytest.raises(EventcountError, match="between 0 and 1"):
        band_limiter(1.5, None, 32000, seed=0)
    with pytest.raises(EventcountError, match="below the front end's 16000 Hz"):
        band_limiter(0.5, [8000, 16000], 16000, seed=0)
    with pytest.raises(EventcountError, match="LOW <= HIGH"):
        band_limiter(0.5, [9000, 8500], 32000, seed=0)


def test_training_copies_are_band_limited_before_their_features(tmp_path) -> None:
    """ClipData applies the augmentation to each stretched copy: a 16 kHz front end on noise heard as a 4 kHz
    recording has (nearly) constant features in the bands above 2 kHz, the untouched copy does not."""
    import soundfile as sf

    from eventcount.config import FrontendConfig
    from eventcount.dataset import ClipData
    from eventcount.features import FeatureExtractor
    from eventcount.prepare import make_count_table
    from eventcount.writers import write_events

    wav = tmp_path / "noise.wav"
    sf.write(wav, np.random.default_rng(0).normal(0, 0.1, 3 * 16000).astype(np.float32), 16000)
    write_events(tmp_path / "noise.events.tsv", [])
    table = make_count_table([wav], None, None, ["x"], window_s=1.0)
    frontend = FrontendConfig()
    plain = ClipData(table, frontend, [1.0])
    limited = ClipData(table, frontend, [1.0], augment=lambda x: band_limit(x, 16000, 4000))
    centres = FeatureExtractor(frontend).mel.argmax(dim=0).numpy() * 16000 / frontend.n_fft
    high = torch.from_numpy(centres > 2500)
    settled = slice(100, None)  # after the running normalisation has adapted
    spread = [d.recordings[wav].features[1.0][0, settled][:, high].float().std().item() for d in (plain, limited)]
    assert spread[0] > 0.2 and spread[1] < 0.1 * spread[0]


def write_tone(path, seconds: float, rate: int, hz: float = 440.0) -> None:
    sf.write(path, 0.3 * tone(hz, rate, seconds).numpy(), rate)


def rms(x: torch.Tensor) -> float:
    return float(x.double().square().mean().sqrt())


@pytest.mark.parametrize("level_db", [-6.0, 0.0, 12.0])
def test_background_is_mixed_in_at_the_level_drawn(tmp_path, level_db: float) -> None:
    write_tone(tmp_path / "music.wav", 3.0, 22050)  # another rate: resampled to the copy's
    samples = clicks()
    apply = background_mixer([tmp_path / "music.wav"], 1.0, [level_db, level_db], RATE, seed=0)
    mixed = apply(samples)
    assert mixed.shape == samples.shape
    added = mixed - samples
    assert rms(added) / rms(samples) == pytest.approx(10 ** (level_db / 20), rel=1e-4)
    spectrum = np.abs(np.fft.rfft(added.numpy()))
    assert np.fft.rfftfreq(added.numel(), 1 / RATE)[spectrum.argmax()] == pytest.approx(440, abs=1)


def test_a_short_background_repeats_and_a_share_of_copies_get_one(tmp_path) -> None:
    write_tone(tmp_path / "short.wav", 0.5, RATE)
    apply = background_mixer([tmp_path / "short.wav"], 0.5, [0, 0], RATE, seed=3)
    outputs = [apply(clicks()) for _ in range(200)]
    mixed = [out for out in outputs if not torch.equal(out, clicks())]
    assert 70 <= len(mixed) <= 130
    tail = (mixed[0] - clicks())[-RATE // 2:]
    assert rms(tail) > 0.5 * rms(mixed[0] - clicks())  # the 0.5 s file filled all 2.6 s


def test_background_settings_are_checked(tmp_path) -> None:
    write_tone(tmp_path / "a.wav", 1.0, RATE)
    assert background_mixer([], 1.0, [0, 0], RATE, seed=0) is None
    assert background_mixer([tmp_path / "a.wav"], 0.0, [0, 0], RATE, seed=0) is None
    with pytest.raises(EventcountError, match="background_share"):
        background_mixer([tmp_path / "a.wav"], 1.5, [0, 0], RATE, seed=0)
    with pytest.raises(EventcountError, match="background_db"):
        background_mixer([tmp_path / "a.wav"], 0.5, [6, -6], RATE, seed=0)
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(EventcountError, match="broken.wav"):
        background_mixer([tmp_path / "broken.wav"], 0.5, [0, 0], RATE, seed=0)


def test_training_augmentation_mixes_the_background_before_band_limiting(tmp_path) -> None:
    write_tone(tmp_path / "bright.wav", 3.0, RATE, hz=12000.0)
    config = TrainConfig(background=[str(tmp_path)], background_share=1.0, background_db=[0.0, 0.0], band_limit=1.0,
                         band_limit_rates_hz=[8000.0, 8000.0])
    def at_12khz(samples: torch.Tensor) -> float:
        spectrum = np.abs(np.fft.rfft(samples.numpy()))
        return float(spectrum[np.argmin(np.abs(np.fft.rfftfreq(samples.numel(), 1 / RATE) - 12000))])

    mixed_only = training_augmentation(dataclasses.replace(config, band_limit=0.0), RATE, seed=0)(clicks())
    both = training_augmentation(config, RATE, seed=0)(clicks())
    assert at_12khz(mixed_only) > 100 * at_12khz(clicks())  # the background is there...
    assert at_12khz(both) < 0.01 * at_12khz(mixed_only)  # ...and was band-limited with the recording
    assert training_augmentation(TrainConfig(), RATE, seed=0) is None
