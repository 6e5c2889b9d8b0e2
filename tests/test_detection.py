"""Running a model: unstretching TTA passes, stretch factors, streamed == whole activations, saved activations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from eventcount.config import FrontendConfig, ModelSpec, NetworkConfig
from eventcount.detection import Detector, load_activations, save_activations, tta_factors, unstretch
from eventcount.features import n_features
from eventcount.network import CRNN
from eventcount.recordings import read_signal

# --- unstretch and tta_factors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.84, 1.19, 1.5])
def test_unstretch_preserves_total_mass(factor: float) -> None:
    n_frames = 200
    probs = np.random.default_rng(0).uniform(0, 0.2, (int(n_frames * factor), 3))
    probs[:2] = probs[-2:] = 0  # the outermost frames may map half a frame beyond the ends
    out = unstretch(probs, factor, n_frames)
    assert out.shape == (n_frames, 3)
    np.testing.assert_allclose(out.sum(axis=0), probs.sum(axis=0))


@pytest.mark.parametrize(("factor", "j"), [(1.19, 100), (0.84, 37), (1.25, 61), (2.0, 10)])
def test_unstretch_maps_a_spike_to_its_original_time(factor: float, j: int) -> None:
    probs = np.zeros((int(200 * factor), 1))
    probs[j] = 0.8
    out = unstretch(probs, factor, 200)[:, 0]
    assert out.sum() == pytest.approx(0.8)
    assert np.count_nonzero(out) <= 2
    centre = (np.arange(200) * out).sum() / out.sum()
    assert centre == pytest.approx((j + 0.5) / factor - 0.5)


def test_unstretch_with_factor_one_only_trims() -> None:
    probs = np.random.default_rng(1).uniform(size=(12, 2))
    assert np.array_equal(unstretch(probs, 1.0, 10), probs[:10])


def test_tta_factors() -> None:
    assert tta_factors(0) == tta_factors(1) == [1.0]
    assert tta_factors(3) == pytest.approx([2 ** -0.25, 1.0, 2 ** 0.25])
    five = np.array(tta_factors(5))
    assert five[2] == pytest.approx(1.0)
    assert np.allclose(five[1:] / five[:-1], five[1] / five[0])  # geometric
    assert np.allclose(five * five[::-1], 1.0)  # symmetric around 1 in log
    assert 1.0 not in tta_factors(4) and len(tta_factors(4)) == 4


# --- a tiny random-init detector ----------------------------------------------------------------------------------

DELAY = FrontendConfig().detection_delay()  # audio: 1 frame; activations run that many frames past the end


@pytest.fixture(scope="module", params=[1, 2], ids=["rnn-stride-1", "rnn-stride-2"])
def detector(request: pytest.FixtureRequest) -> Detector:
    torch.manual_seed(0)
    spec = ModelSpec(classes=["a", "b"], frontend=FrontendConfig(n_mels=16),
                     network=NetworkConfig(conv_channels=[4], rnn_hidden=8, rnn_stride=request.param))
    model = CRNN(n_features(spec.frontend), 2, spec.network)
    with torch.no_grad():
        model.head.weight.mul_(30)  # make the output depend visibly on the input
    return Detector(model, spec)


def write_wav(path: Path, rate: int, channels: int = 1, duration_s: float = 3.05) -> Path:
    """Quiet noise with four decaying bursts."""
    rng = np.random.default_rng(2)
    audio = rng.standard_normal((int(duration_s * rate), channels)) * 0.01
    for time_s in (0.3, 1.1, 1.9, 2.6):
        start = int(time_s * rate)
        burst = rng.standard_normal((2000, 1)) * np.exp(-np.arange(2000) / 300)[:, None]
        audio[start:start + 2000] += burst[: max(0, audio.shape[0] - start)]
    sf.write(path, audio.astype(np.float32), rate)
    return path


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wav(tmp_path_factory.mktemp("audio") / "clip.wav", 44100)


@pytest.mark.parametrize(("rate", "channels", "block_s"), [
    (44100, 1, 0.05), (44100, 1, 0.37), (16000, 1, 0.1), (22050, 2, 0.2), (48000, 1, 10.0),
])
def test_streamed_equals_whole(detector: Detector, tmp_path: Path, rate: int, channels: int, block_s: float) -> None:
    path = write_wav(tmp_path / "clip.wav", rate, channels)
    whole = detector.activations(read_signal(path))
    streamed = detector.stream_activations(path, block_s=block_s)
    assert whole.shape == (305 + DELAY, 2)  # the recording's frames and the detection delay's after it
    assert streamed.shape == whole.shape
    assert whole.std(axis=0).min() > 1e-3  # not a constant output that would trivially match
    np.testing.assert_allclose(streamed, whole, atol=2e-6)


def test_activations_run_the_detection_delay_past_the_end(tmp_path: Path) -> None:
    """A model that reports a hit 3 frames after it gets 3 frames of silence after the recording, streamed or not,
    so the frames that would report a hit in its last 30 ms exist."""
    torch.manual_seed(0)
    spec = ModelSpec(classes=["a"], frontend=FrontendConfig(n_mels=16, detection_delay_frames=3),
                     network=NetworkConfig(conv_channels=[4], rnn_hidden=8))
    late = Detector(CRNN(n_features(spec.frontend), 1, spec.network), spec)
    path = write_wav(tmp_path / "clip.wav", 16000)
    whole = late.activations(read_signal(path))
    assert whole.shape == (305 + 3, 1)
    np.testing.assert_allclose(late.stream_activations(path, block_s=0.37), whole, atol=2e-6)


@pytest.mark.parametrize("duration_s", [0.005, 0.0137, 0.2])
def test_streamed_equals_whole_for_short_files(detector: Detector, tmp_path: Path, duration_s: float) -> None:
    path = write_wav(tmp_path / "short.wav", 44100, duration_s=duration_s)
    whole = detector.activations(read_signal(path))
    streamed = detector.stream_activations(path, block_s=0.01)
    assert streamed.shape == whole.shape == (int(duration_s * 100) + DELAY, 2)
    np.testing.assert_allclose(streamed, whole, atol=2e-6)


@pytest.mark.parametrize("duration_s", [0.005, 0.011])
def test_tta_on_recordings_of_at_most_one_frame(detector: Detector, tmp_path: Path, duration_s: float) -> None:
    """A stretched copy of a one-frame recording can have no frame at all; that must not crash the network."""
    path = write_wav(tmp_path / "short.wav", 44100, duration_s=duration_s)
    probs = detector.activations(read_signal(path), tta=3)
    assert probs.shape == (int(duration_s * 100) + DELAY, 2)


def test_streamed_activations_equal_the_whole_recording(detector: Detector, wav: Path) -> None:
    np.testing.assert_allclose(detector.stream_activations(wav), detector.activations(read_signal(wav)), atol=1e-5)


def test_tta_activations_keep_the_frame_count(detector: Detector, wav: Path) -> None:
    single = detector.activations(read_signal(wav))
    averaged = detector.activations(read_signal(wav), tta=3)
    assert averaged.shape == single.shape
    assert np.all((averaged >= 0) & (averaged <= 1))
    assert not np.allclose(averaged, single)


def test_activations_round_trip(tmp_path: Path) -> None:
    probs = np.random.default_rng(3).uniform(size=(50, 2)).astype(np.float32)
    save_activations(tmp_path / "song.npz", probs, 100.0, ["a", "b"], delay_frames=1)
    loaded, frame_rate, classes, delay = load_activations(tmp_path / "song.npz")
    assert np.array_equal(loaded, probs) and frame_rate == 100.0 and classes == ["a", "b"] and delay == 1
