"""The whole loop through the CLI on synthetic data: counts only -> train -> detect -> evaluate.

Slow (about a minute or two on 2 cores); CI runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventcount.cli import app
from eventcount.synthetic import make_synthetic_set

runner = CliRunner()


def invoke(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("e2e")
    make_synthetic_set(root / "train", 24, 10.0, seed=1)
    make_synthetic_set(root / "test", 6, 10.0, seed=2)
    invoke("prepare", root / "train", "-o", root / "labels.csv")
    invoke("train", "--counts", root / "labels.csv", "-o", root / "model.pt", "--steps", 500, "--seed", 0)
    return {"root": root, "model": root / "model.pt"}


@pytest.mark.slow
def test_counts_only_model_finds_held_out_events_on_time(trained):
    root = trained["root"]
    invoke("detect", root / "test", "-m", trained["model"], "-o", root / "detected")
    invoke("evaluate", "--reference", root / "test", "--estimate", root / "detected", "--json", root / "r.json")
    report = json.loads((root / "r.json").read_text())
    assert report["mean"]["f_measure"] >= 0.9, report["per_class"]
    assert abs(report["micro"]["offset_mean_s"]) <= 0.010, report["micro"]


@pytest.mark.slow
def test_model_file_records_what_it_needs(trained):
    import torch

    payload = torch.load(trained["model"], weights_only=True)
    assert payload["classes"] == ["high", "low", "mid"]
    assert set(payload["decode"]["thresholds"]) == {"high", "low", "mid"}
    assert payload["training"]["loss"] == "counts"
    assert payload["training"]["validation"]["count_accuracy"] > 0.5


@pytest.mark.slow
def test_tta_and_stdout(trained):
    root = trained["root"]
    text = invoke("detect", root / "test" / "clip000.wav", "-m", trained["model"], "--tta", 3)
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(lines) > 10
    assert all(line.split("\t")[1] in {"high", "low", "mid"} for line in lines)
