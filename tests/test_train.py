"""Training as a library call: a resolved spec returned (inputs untouched), resume, overwrite, label noise."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from eventcount.checkpoint import load_model
from eventcount.config import ModelSpec, NetworkConfig, TrainConfig
from eventcount.errors import EventcountError
from eventcount.labels import CountTable
from eventcount.prepare import make_count_table
from eventcount.synthetic import make_synthetic_set
from eventcount.train import StepReport, perturb_events, train
from eventcount.train_state import resume_path

TINY = NetworkConfig(conv_channels=[4], rnn_hidden=8)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> CountTable:
    folder = tmp_path_factory.mktemp("data")
    return make_count_table(make_synthetic_set(folder, 4, 3.0, seed=5), window_s=0.5)


def config(**changes) -> TrainConfig:
    return dataclasses.replace(TrainConfig(steps=12, batch_size=6, validate_every=4, seed=1, val_fraction=0.25,
                                           num_threads=1),
                               **changes)


def test_training_returns_the_resolved_spec_and_leaves_its_inputs_alone(table: CountTable, tmp_path: Path) -> None:
    spec, cfg = ModelSpec(table.classes, network=TINY), config(device="auto")
    before = (dataclasses.asdict(spec), dataclasses.asdict(cfg))
    result = train(table, spec, cfg, tmp_path / "m.pt")
    assert (dataclasses.asdict(spec), dataclasses.asdict(cfg)) == before
    assert result.config.device == "cpu" and result.config.alpha_ramp_steps == int(0.8 * 12)
    assert set(result.spec.decode.thresholds) == set(table.classes)
    assert result.spec.frontend.norm_prior_mean is not None
    assert result.spec.frontend.detection_delay_frames == 1  # the audio default, stored explicitly
    _, stored, payload = load_model(tmp_path / "m.pt")
    assert stored == result.spec
    assert payload["training"] == result.summary and result.summary["history"][-1]["step"] == 12


def test_a_model_with_a_recurrent_stride_trains_saves_and_detects(table: CountTable, tmp_path: Path) -> None:
    """rnn_stride 2 through training, the model file and detection (streamed equals whole)."""
    from eventcount.detection import Detector
    from eventcount.recordings import read_signal

    network = dataclasses.replace(TINY, rnn_stride=2)
    train(table, ModelSpec(table.classes, network=network), config(), tmp_path / "m.pt")
    model, stored, _ = load_model(tmp_path / "m.pt")
    assert stored.network.rnn_stride == 2 and model.head.out_features == 2 * len(table.classes)
    detector = Detector.load(tmp_path / "m.pt")
    recording = table.clips[0].path
    probs = detector.stream_activations(recording)
    np.testing.assert_allclose(probs, detector.activations(read_signal(recording)), atol=2e-6)


def test_an_existing_model_is_replaced_only_when_asked(table: CountTable, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    out.write_bytes(b"precious")
    with pytest.raises(EventcountError, match="m.pt exists; use --overwrite"):
        train(table, ModelSpec(table.classes, network=TINY), config(), out)
    assert out.read_bytes() == b"precious"
    train(table, ModelSpec(table.classes, network=TINY), config(steps=2), out, overwrite=True)
    assert load_model(out)[1].classes == table.classes


def test_an_interrupted_run_resumes_to_the_same_model(table: CountTable, tmp_path: Path) -> None:
    spec = ModelSpec(table.classes, network=TINY)
    whole = train(table, spec, config(), tmp_path / "whole.pt")

    def stop_at_six(report: StepReport) -> None:
        if report.step == 6:
            raise KeyboardInterrupt

    out = tmp_path / "parts.pt"
    first = train(table, spec, config(), out, on_step=stop_at_six)
    assert first.summary["interrupted"] and resume_path(out).exists() and out.exists()
    resumed = train(table, spec, config(), out, resume=True)
    assert not resumed.summary["interrupted"] and not resume_path(out).exists()
    assert [h["step"] for h in resumed.summary["history"]] == [4, 8, 12]
    assert resumed.summary["history"] == whole.summary["history"]
    a, b = load_model(tmp_path / "whole.pt")[0].state_dict(), load_model(out)[0].state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_resume_without_a_resume_state_is_a_clear_error(table: CountTable, tmp_path: Path) -> None:
    with pytest.raises(EventcountError, match="no interrupted training to resume"):
        train(table, ModelSpec(table.classes, network=TINY), config(), tmp_path / "m.pt", resume=True)


def test_calibrated_lag_is_stored_in_the_returned_spec_and_the_file(table: CountTable, tmp_path: Path) -> None:
    events = table.clips[0].path.parent  # the timestamps beside the recordings
    try:
        result = train(table, ModelSpec(table.classes, network=TINY), config(steps=40), tmp_path / "m.pt",
                       calibrate_lag_dir=events)
    except EventcountError as err:  # a 40-step model may find nothing at all to match: a clear error
        assert "--calibrate-lag" in str(err)
        return
    assert result.spec.decode.lag_s == result.summary["calibrated_lag_s"]
    assert load_model(tmp_path / "m.pt")[1].decode.lag_s == result.spec.decode.lag_s


def noisy_data(times: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(recordings={Path("r.wav"): SimpleNamespace(events={"a": times.copy()})})


@pytest.mark.parametrize("kind", ["gaussian", "uniform", "skewed"])
def test_label_noise_moves_each_timestamp_by_noise_of_the_given_size(kind: str) -> None:
    times = np.linspace(1.0, 100_000.0, 20000)  # 5 s apart
    data = noisy_data(times)
    perturb_events(data, TrainConfig(label_noise_s=0.05, label_noise_kind=kind, seed=4))
    moved = data.recordings[Path("r.wav")].events["a"]
    shift = np.sort(moved) - times  # the noise is far smaller than the gap between events: order kept
    assert np.all(np.diff(moved) >= 0)
    assert abs(shift.mean()) < 0.002 and shift.std() == pytest.approx({"gaussian": 0.05, "uniform": 0.05 / 3 ** 0.5,
                                                                       "skewed": 0.05}[kind], rel=0.05)
    again = noisy_data(times)
    perturb_events(again, TrainConfig(label_noise_s=0.05, label_noise_kind=kind, seed=4))
    np.testing.assert_array_equal(again.recordings[Path("r.wav")].events["a"], moved)  # seeded


def test_label_noise_off_and_unknown_kinds() -> None:
    data = noisy_data(np.array([1.0, 2.0]))
    perturb_events(data, TrainConfig())
    np.testing.assert_array_equal(data.recordings[Path("r.wav")].events["a"], [1.0, 2.0])
    with pytest.raises(EventcountError, match="unknown label noise kind 'pink'"):
        perturb_events(data, TrainConfig(label_noise_s=0.01, label_noise_kind="pink"))
