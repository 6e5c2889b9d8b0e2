"""`train --weight-average`: the saved weights are a moving average of the trained ones, kept across resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eventcount import train as training
from eventcount.checkpoint import load_model
from eventcount.config import ModelSpec, NetworkConfig, TrainConfig
from eventcount.errors import EventcountError
from eventcount.network import CRNN
from eventcount.prepare import make_count_table
from eventcount.synthetic import make_synthetic_set

SMALL = NetworkConfig(conv_channels=[4], rnn_hidden=8)


@pytest.mark.parametrize(("decay", "updates", "keep"), [(0.9, 1, 2 / 11), (0.5, 30, 0.5), (0.999, 30, 31 / 40)])
def test_average_moves_a_share_towards_the_current_weights(decay: float, updates: int, keep: float) -> None:
    """After `updates` updates (the first copies), one more keeps `keep` of the average: min(decay, (1+n)/(10+n))."""
    torch.manual_seed(0)
    model = CRNN(16, 2, SMALL)
    assert training.weight_average(model, 0.0) is None
    averaged = training.weight_average(model, decay)
    for _ in range(updates):
        averaged.update_parameters(model)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    averaged.update_parameters(model)
    for mean, old in zip(averaged.module.parameters(), before, strict=True):
        torch.testing.assert_close(mean, old + (1 - keep))


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("avg")
    files = make_synthetic_set(folder / "train", 4, 4.0, seed=1)
    return make_count_table(files, None, window_s=0.25)


def weights(path: Path) -> list[torch.Tensor]:
    return [p.detach() for p in load_model(path)[0].parameters()]


def run(table, out: Path, decay: float, steps: int = 6, **kwargs) -> dict:
    config = TrainConfig(steps=steps, batch_size=4, validate_every=3, val_fraction=0.25, seed=0,
                         weight_average=decay)
    return training.train(table, ModelSpec(classes=table.classes, network=SMALL), config, out, **kwargs)


def spy_on_averages(monkeypatch: pytest.MonkeyPatch) -> list:
    """Make `train` keep every weight average it makes in the returned list."""
    made = []
    real = training.weight_average

    def spy(model, decay):
        made.append(real(model, decay))
        return made[-1]

    monkeypatch.setattr(training, "weight_average", spy)
    return made


def test_the_average_is_what_is_saved(table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = spy_on_averages(monkeypatch)
    summary = run(table, tmp_path / "avg.pt", 0.5)
    monkeypatch.undo()
    run(table, tmp_path / "last.pt", 0.0)  # the same training, saving its last weights
    assert summary["config"]["weight_average"] == 0.5
    assert int(made[0].n_averaged) == 6
    saved, last = weights(tmp_path / "avg.pt"), weights(tmp_path / "last.pt")
    for got, mean in zip(saved, made[0].module.parameters(), strict=True):
        torch.testing.assert_close(got, mean.detach())
    assert any(not torch.equal(a, b) for a, b in zip(saved, last, strict=True))


def test_an_interrupted_training_resumes_its_average(table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m.pt"

    def stop_at_three(report) -> None:
        if report.step == 3:
            raise KeyboardInterrupt

    assert run(table, out, 0.5, on_step=stop_at_three)["interrupted"]
    state = torch.load(training.resume_path(out), weights_only=True)
    assert int(state["averaged"]["n_averaged"]) == 3
    made = spy_on_averages(monkeypatch)
    summary = run(table, out, 0.5, resume=True)
    assert int(made[0].n_averaged) == 6  # three steps before the interruption, three after
    assert not summary["interrupted"] and [h["step"] for h in summary["history"]] == [3, 6]
    assert not training.resume_path(out).exists()


def test_resuming_with_an_average_the_run_did_not_keep_is_refused(table, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"

    def stop_at_three(report) -> None:
        if report.step == 3:
            raise KeyboardInterrupt

    run(table, out, 0.0, on_step=stop_at_three)
    with pytest.raises(EventcountError, match="no weight average"):
        run(table, out, 0.5, resume=True)


def test_a_decay_of_one_is_refused(table, tmp_path: Path) -> None:
    with pytest.raises(EventcountError, match="weight_average"):
        run(table, tmp_path / "m.pt", 1.0)
