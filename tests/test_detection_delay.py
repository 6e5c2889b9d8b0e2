"""The detection delay: audio events are trained and decoded one frame after the frame they fall in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from eventcount.annotations import Event
from eventcount.checkpoint import load_model, save_model
from eventcount.config import DecodeConfig, FrontendConfig, ModelSpec
from eventcount.dataset import ClipData
from eventcount.decode import pick_events
from eventcount.network import CRNN
from eventcount.prepare import make_count_table
from eventcount.writers import write_events

FPS = 100.0


def test_delay_is_one_frame_for_audio_and_none_for_sensors() -> None:
    assert FrontendConfig().detection_delay() == 1
    assert FrontendConfig(kind="sensor").detection_delay() == 0
    assert FrontendConfig(detection_delay_frames=2).detection_delay() == 2


def quarter_second_clips(folder: Path, times_s: list[float]) -> ClipData:
    """One second of quiet noise with events of class "x" at `times_s`, as 0.25 s clips with their events."""
    wav = folder / "a.wav"
    sf.write(wav, np.random.default_rng(0).normal(0, 0.01, 16000).astype(np.float32), 16000)
    write_events(folder / "a.events.tsv", [Event(t, "x") for t in times_s])
    table = make_count_table([wav], None, None, ["x"], window_s=0.25)
    return ClipData(table, FrontendConfig(), [1.0], with_events=True)


def test_targets_and_clip_frames_use_the_detection_frame(tmp_path: Path) -> None:
    data = quarter_second_clips(tmp_path, [0.123, 0.395])
    batch = data.batch([0, 1], [1.0, 1.0], context=0, with_targets=True)
    first, second = data.clip_frames(data.clips[0], 1.0), data.clip_frames(data.clips[1], 1.0)
    assert first == (1, 26) and second == (26, 51)  # the frames that report events of [0, 0.25) and [0.25, 0.5)
    assert torch.nonzero(batch.targets[0, :, 0]).flatten().tolist() == [13 - first[0]]  # 0.123 s: frame 12 + 1
    assert torch.nonzero(batch.targets[1, :, 0]).flatten().tolist() == [40 - second[0]]  # 0.395 s: frame 39 + 1
    assert batch.counts.flatten().tolist() == [1, 1]


def test_decoding_moves_detections_back_by_the_delay() -> None:
    probs = np.zeros((100, 1))
    probs[13, 0] = 0.9
    plain = pick_events(probs, FPS, ["x"], DecodeConfig())
    delayed = pick_events(probs, FPS, ["x"], DecodeConfig(), delay_frames=1)
    assert plain[0].time_s == pytest.approx(0.135)
    assert delayed[0].time_s == pytest.approx(0.125)  # the centre of frame 12, where the event at 0.123 s is


def test_model_files_from_before_the_delay_keep_decoding_without_it(tmp_path: Path) -> None:
    spec = ModelSpec(classes=["x"], frontend=FrontendConfig(n_mels=8))
    path = tmp_path / "old.pt"
    save_model(path, CRNN(8, 1, spec.network), spec, 8, {})
    payload = torch.load(path, weights_only=True)
    del payload["frontend"]["detection_delay_frames"]
    torch.save(payload, path)
    assert load_model(path)[1].frontend.detection_delay() == 0
    save_model(path, CRNN(8, 1, spec.network), spec, 8, {})
    assert load_model(path)[1].frontend.detection_delay() == 1


def test_clip_count_prior_splits_a_timestamp_on_the_edge(tmp_path: Path) -> None:
    # 0.25 s sits on the edge between the first two clips; 0.1 s is well inside the first
    data = quarter_second_clips(tmp_path, [0.1, 0.25])
    sharp = data.batch([0, 1], [1.0, 1.0], context=0, with_targets=True)
    assert sharp.count_prior is None and sharp.targets.sum(dim=1)[:, 0].tolist() == [1.0, 1.0]
    batch = data.batch([0, 1], [1.0, 1.0], context=0, with_targets=True, edge_softness_s=0.02)
    low, log_weights = batch.count_prior
    weights = log_weights.exp()

    def probability(row: int, count: int) -> float:
        k = count - int(low[row, 0])
        return float(weights[row, 0, k]) if 0 <= k < weights.shape[-1] else 0.0

    # first clip: 1 or 2 events; second: 0 or 1, with equal odds
    assert [probability(0, c) for c in (0, 1, 2)] == pytest.approx([0.0, 0.5, 0.5], abs=1e-6)
    assert [probability(1, c) for c in (0, 1, 2)] == pytest.approx([0.5, 0.5, 0.0], abs=1e-6)
