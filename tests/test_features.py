"""Feature frontends: the frame-time convention, chunked == whole extraction, causality, shapes, impulse timing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from eventcount.config import FrontendConfig
from eventcount.errors import EventcountError
from eventcount.features import (
    LOG_FLOOR,
    VAR_FLOOR,
    FeatureExtractor,
    FeatureState,
    event_frames,
    fit_norm_prior,
    frame_times,
    hop_samples,
    low_bins,
    n_features,
    resample,
    running_standardise,
    to_frame,
)
from eventcount.signals import Signal
from tests.test_augment import tone

AUDIO = FrontendConfig(sample_rate=16000, frame_rate=100.0, n_fft=512, n_mels=24)
AUDIO_LOW = FrontendConfig(sample_rate=16000, frame_rate=100.0, n_fft=512, n_mels=24, low_n_fft=2048, low_f_max=250.0)
AUDIO_CONFIGS = pytest.mark.parametrize("audio", [AUDIO, AUDIO_LOW], ids=["mel", "fine-low"])
SENSOR = FrontendConfig(kind="sensor", frame_rate=50.0, samples_per_frame=4)
SENSOR_CHANNELS = 3


def noise(n: int, seed: int = 0, scale: float = 0.1) -> torch.Tensor:
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32))


def sensor_samples(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal((SENSOR_CHANNELS, n)).astype(np.float32))


def chunked(extractor: FeatureExtractor, samples: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Run `process` over consecutive chunks of the given sizes (the rest in one last chunk)."""
    state, pieces, start = FeatureState(), [], 0
    for size in [*sizes, samples.shape[-1]]:
        piece = samples[..., start:start + size]
        start += piece.shape[-1]
        features, state = extractor.process(piece, state)
        pieces.append(features)
    return torch.cat(pieces, dim=1)


# --- the frame-time convention -------------------------------------------------------------------------------

def test_event_frames_floor_of_time_times_rate() -> None:
    times = np.array([0.0, 0.0099, 0.01, 0.0149, 0.29, 1.2345])
    assert event_frames(times, 100.0).tolist() == [0, 0, 1, 1, 29, 123]


def test_event_frames_exact_boundaries_are_not_lost_to_rounding() -> None:
    # k / 100 is not exactly representable; every one must still land in frame k
    k = np.arange(0, 5000)
    assert np.array_equal(event_frames(k / 100.0, 100.0), k)


def test_frame_times_are_interval_centres() -> None:
    assert np.allclose(frame_times(3, 100.0), [0.005, 0.015, 0.025])
    assert np.allclose(frame_times(np.array([10, 20]), 50.0), [0.21, 0.41])


def test_event_time_round_trips_through_its_frame_centre() -> None:
    times = np.random.default_rng(1).uniform(0, 100, 500)
    centres = frame_times(event_frames(times, 100.0), 100.0)
    assert np.all(np.abs(centres - times) <= 0.005 + 1e-12)


def test_to_frame_is_the_nearest_boundary() -> None:
    assert to_frame(0.014, 100.0) == 1
    assert to_frame(0.016, 100.0) == 2
    assert to_frame(1.5, 100.0) == 150


def test_hop_must_be_integer() -> None:
    assert hop_samples(AUDIO) == 160
    with pytest.raises(EventcountError, match="frame_rate"):
        hop_samples(FrontendConfig(sample_rate=16000, frame_rate=300.0))


# --- shapes ---------------------------------------------------------------------------------------------------

@AUDIO_CONFIGS
def test_audio_output_shape(audio: FrontendConfig) -> None:
    extractor = FeatureExtractor(audio)
    features = extractor(noise(16000 + 123))
    assert features.shape == (2, 100, n_features(audio))
    assert features.dtype == torch.float32


def test_sensor_output_shape() -> None:
    extractor = FeatureExtractor(SENSOR, SENSOR_CHANNELS)
    features = extractor(sensor_samples(4 * 50 + 3))
    assert features.shape == (2, 50, SENSOR_CHANNELS * SENSOR.samples_per_frame)
    assert features.shape[2] == n_features(SENSOR, SENSOR_CHANNELS)


def test_prepare_mixes_audio_to_mono_and_resamples() -> None:
    extractor = FeatureExtractor(AUDIO)
    stereo = np.random.default_rng(0).standard_normal((44100, 2)).astype(np.float32)
    samples = extractor.prepare(Signal(stereo, 44100.0))
    assert samples.ndim == 1
    assert abs(samples.numel() - 16000) <= 1


def test_prepare_resamples_sensor_channels_to_the_working_rate() -> None:
    extractor = FeatureExtractor(SENSOR, SENSOR_CHANNELS)
    data = np.random.default_rng(0).standard_normal((100, SENSOR_CHANNELS)).astype(np.float32)
    samples = extractor.prepare(Signal(data, 100.0))  # 1 s at 100 Hz -> 200 Hz working rate
    assert samples.shape == (SENSOR_CHANNELS, 200)


def test_second_channel_is_the_time_difference() -> None:
    samples = torch.ones(1, 200)
    samples[0, 40:] = 3.0  # a step at the first sample of frame 10 (4 samples per frame)
    features = FeatureExtractor(SENSOR, 1)(samples)
    moved = features[1].abs().amax(dim=1)
    assert torch.nonzero(moved).flatten().tolist() == [10]



def test_running_standardise_equals_scipy_filters() -> None:
    """The compiled normalisation gives, to the bit, the two one-pole `scipy.signal.lfilter` passes it replaced
    (moving mean, moving variance of the deviation from the mean before each frame), and the state after."""
    import scipy.signal

    rng = np.random.default_rng(0)
    raw = rng.standard_normal((300, 7)) * 3.0 - 5.0
    a = 1.0 - np.exp(-1.0 / 500.0)
    mean0, var0, previous = rng.standard_normal(7), rng.uniform(0.5, 2.0, 7), rng.standard_normal(7)
    mean, _ = scipy.signal.lfilter([a], [1, -(1 - a)], raw, axis=0, zi=((1 - a) * mean0)[None])
    deviation2 = (raw - np.vstack([mean0[None], mean[:-1]])) ** 2
    var, _ = scipy.signal.lfilter([a * (1 - a)], [1, -(1 - a)], deviation2, axis=0, zi=((1 - a) * var0)[None])
    scale = 1.0 / np.sqrt(np.maximum(var, VAR_FLOOR))
    expected = np.stack([(raw - mean) * scale, np.diff(raw, axis=0, prepend=previous[None]) * scale]).astype(np.float32)
    state = mean0.copy(), var0.copy(), previous.copy()
    got = running_standardise(raw, a, *state)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(state[0], mean[-1])
    np.testing.assert_array_equal(state[1], var[-1])
    np.testing.assert_array_equal(state[2], raw[-1])

# --- chunked == whole -----------------------------------------------------------------------------------------

@AUDIO_CONFIGS
@pytest.mark.parametrize("sizes", [[1], [159, 161, 1000], [512, 3, 7000], [100] * 40, [16000]])
def test_audio_chunked_equals_whole(audio: FrontendConfig, sizes: list[int]) -> None:
    extractor = FeatureExtractor(audio)
    samples = noise(16000 + 77, seed=2)
    whole = extractor(samples)
    parts = chunked(extractor, samples, sizes)
    assert parts.shape == whole.shape
    torch.testing.assert_close(parts, whole, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("sizes", [[1], [3, 5, 7, 11], [4] * 30, [199]])
def test_sensor_chunked_equals_whole(sizes: list[int]) -> None:
    extractor = FeatureExtractor(SENSOR, SENSOR_CHANNELS)
    samples = sensor_samples(401, seed=3)
    whole = extractor(samples)
    parts = chunked(extractor, samples, sizes)
    assert parts.shape == whole.shape
    torch.testing.assert_close(parts, whole, atol=1e-5, rtol=1e-5)


def test_chunked_equals_whole_with_a_normalisation_prior() -> None:
    config = FrontendConfig(sample_rate=16000, frame_rate=100.0, n_fft=512, n_mels=24)
    extractor = FeatureExtractor(config)
    fit_norm_prior(config, extractor, [noise(8000, seed=8), noise(4000, seed=9, scale=0.5)])
    assert len(config.norm_prior_mean) == len(config.norm_prior_std) == 24
    samples = noise(8000, seed=10)
    whole = extractor(samples)
    torch.testing.assert_close(chunked(extractor, samples, [5, 300, 1234]), whole, atol=2e-4, rtol=1e-4)
    without_prior = FeatureExtractor(AUDIO)(samples)
    assert not torch.allclose(whole[:, :5], without_prior[:, :5], atol=1e-2)  # the prior is used from frame 0


# --- causality ------------------------------------------------------------------------------------------------

@AUDIO_CONFIGS
@pytest.mark.parametrize("t_s", [0.2, 0.5137, 0.73])
def test_audio_future_samples_never_change_finished_frames(audio: FrontendConfig, t_s: float) -> None:
    extractor = FeatureExtractor(audio)
    samples = noise(16000, seed=4)
    cut = int(round(t_s * audio.sample_rate))
    changed = samples.clone()
    changed[cut:] = noise(16000 - cut, seed=5, scale=1.0)
    before, after = extractor(samples), extractor(changed)
    finished = int(np.floor(t_s * audio.frame_rate + 1e-9))  # frames 0..finished-1 end at or before t
    assert torch.equal(before[:, :finished], after[:, :finished])
    assert not torch.equal(before[:, finished:], after[:, finished:])


@pytest.mark.parametrize("t_s", [0.2, 0.51, 0.77])
def test_sensor_future_samples_never_change_finished_frames(t_s: float) -> None:
    extractor = FeatureExtractor(SENSOR, SENSOR_CHANNELS)
    rate = SENSOR.frame_rate * SENSOR.samples_per_frame
    samples = sensor_samples(200, seed=6)
    cut = int(round(t_s * rate))
    changed = samples.clone()
    changed[:, cut:] += 5.0
    before, after = extractor(samples), extractor(changed)
    finished = int(np.floor(cut / rate * SENSOR.frame_rate + 1e-9))
    assert torch.equal(before[:, :finished], after[:, :finished])
    assert not torch.equal(before[:, finished:], after[:, finished:])


# --- an impulse shows up in the frame its time belongs to, never earlier ----------------------------------------

@AUDIO_CONFIGS
@pytest.mark.parametrize("position_in_frame", [0.0, 0.25, 0.5])
def test_impulse_first_changes_features_in_its_own_frame(audio: FrontendConfig, position_in_frame: float) -> None:
    extractor = FeatureExtractor(audio)
    hop = hop_samples(audio)
    quiet = noise(32000, seed=7, scale=1e-3)
    index = int(round((123 + position_in_frame) * hop))
    loud = quiet.clone()
    loud[index] = 1.0
    change = (extractor(loud) - extractor(quiet)).abs().amax(dim=(0, 2)).numpy()
    expected = int(event_frames(np.array([index / audio.sample_rate]), audio.frame_rate)[0])
    assert expected == 123
    assert change[:expected].max() == 0, "a frame before the impulse's own frame saw it"
    assert np.flatnonzero(change > 1.0)[0] == expected


@pytest.mark.parametrize(("orig_rate", "new_rate"), [(44100, 32000), (48000, 32000), (22050, 32000), (16000, 32000),
                                                     (32000, 31968), (7, 3)])
@pytest.mark.parametrize("length", [1, 5, 441, 10007])
def test_resample_equals_torchaudio(orig_rate: int, new_rate: int, length: int) -> None:
    """The sparse application of the resampling filter gives torchaudio's numbers (to float rounding)."""
    samples = torch.randn(2, length, generator=torch.Generator().manual_seed(length))
    expected = AF.resample(samples, orig_rate, new_rate)
    got = resample(samples, orig_rate, new_rate)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


# --- the finer low spectrum (`low_n_fft`) ---------------------------------------------------------------------

def test_low_bins_tell_apart_tones_that_share_a_mel_band() -> None:
    """Two tones 8 Hz apart (bins 6 and 7 of a 2,048 window at 16 kHz) light different low features, and
    the mel bands start at low_f_max, above both."""
    extractor = FeatureExtractor(AUDIO_LOW)
    bins = low_bins(AUDIO_LOW)
    spacing = AUDIO_LOW.sample_rate / AUDIO_LOW.low_n_fft
    assert bins[0] * spacing >= AUDIO_LOW.f_min and (bins[-1] + 1) * spacing >= AUDIO_LOW.low_f_max > bins[-1] * spacing
    loudest = []
    for frequency in (6 * spacing, 7 * spacing):
        raw, _ = extractor._raw_frames(tone(frequency, AUDIO_LOW.sample_rate) * 0.5, None)
        steady = raw[-10:]
        loudest.append(int(bins[steady[:, : len(bins)].mean(axis=0).argmax()]))
        assert steady[:, : len(bins)].max() > steady[:, len(bins):].max() + 3  # the mel bands barely hear it
    assert loudest == [6, 7]
    mel_peaks_hz = extractor.mel.argmax(dim=0).numpy() * AUDIO_LOW.sample_rate / AUDIO_LOW.n_fft
    assert mel_peaks_hz.min() >= AUDIO_LOW.low_f_max - AUDIO_LOW.sample_rate / AUDIO_LOW.n_fft


def test_low_power_equals_the_fft_of_the_long_window() -> None:
    extractor = FeatureExtractor(AUDIO_LOW)
    samples = noise(8000, seed=11)
    raw, _ = extractor._raw_frames(samples, None)
    n, hop, span = AUDIO_LOW.low_n_fft, hop_samples(AUDIO_LOW), extractor.span
    padded = torch.cat([torch.zeros(span - hop), samples])
    frames = padded.unfold(0, n, hop) * torch.hann_window(n)
    power = torch.fft.rfft(frames.double()).abs().square()[:, low_bins(AUDIO_LOW)]
    np.testing.assert_allclose(raw[:, : len(low_bins(AUDIO_LOW))], np.log(power.numpy() + LOG_FLOOR), atol=1e-3)


@pytest.mark.parametrize(("low_n_fft", "low_f_max", "message"), [(2048, 20.0, "between f_min"),
                                                                (2048, 9000.0, "between f_min"),
                                                                (512, 31.0, "none lies"),  # bins 31.25 Hz apart
                                                                (-2048, 300.0, "window in samples")])
def test_a_low_band_that_cannot_work_is_refused(low_n_fft: int, low_f_max: float, message: str) -> None:
    config = FrontendConfig(sample_rate=16000, n_fft=512, n_mels=24, low_n_fft=low_n_fft, low_f_max=low_f_max)
    with pytest.raises(EventcountError, match=message):
        FeatureExtractor(config)
