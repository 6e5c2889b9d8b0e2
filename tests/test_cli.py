"""The command line: help, bad input gives one-line errors with exit codes 1/2, nothing partial left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from eventcount.cli import app
from eventcount.synthetic import make_synthetic_set

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, text


def test_help_is_fast_and_does_not_import_torch():
    code = "import sys; from eventcount.cli import app; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_every_command_has_help():
    for command in ("prepare", "train", "detect", "evaluate", "pseudo-label", "annotate", "listen", "models"):
        result = invoke(command, "--help")
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_bad_tolerance_is_a_usage_error(tmp_path: Path):
    ref = tmp_path / "a.events.tsv"
    ref.write_text("1.0\tkick\n")
    result = invoke("evaluate", "--reference", ref, "--estimate", ref, "--tolerance", "fifty")
    assert_one_line_error(result, 2, "fifty")


def test_unknown_class_in_evaluate(tmp_path: Path):
    ref = tmp_path / "a.events.tsv"
    ref.write_text("1.0\tkick\n")
    result = invoke("evaluate", "--reference", ref, "--estimate", ref, "--classes", "snare")
    assert_one_line_error(result, 1, "unknown class", "snare", "kick")


def test_evaluate_writes_json(tmp_path: Path):
    ref, est = tmp_path / "ref", tmp_path / "est"
    ref.mkdir()
    est.mkdir()
    (ref / "song.events.tsv").write_text("1.0\tkick\n2.0\tkick\n")
    (est / "song.events.tsv").write_text("1.01\tkick\n3.0\tkick\n")
    result = invoke("evaluate", "--reference", ref, "--estimate", est, "--tolerance", "50ms",
                    "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["micro"]["tp"] == 1 and report["micro"]["fp"] == 1 and report["micro"]["fn"] == 1
    assert abs(report["micro"]["offset_mean_s"] - 0.01) < 1e-9
    assert set(report["per_class"]["kick"]) == {"mean", "micro"}


def test_labels_with_missing_column(tmp_path: Path):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,start_s,kick\na.wav,0,1\n")
    result = invoke("train", "--counts", csv, "-o", tmp_path / "m.pt")
    assert_one_line_error(result, 1, "labels.csv:1", "end_s")
    assert not (tmp_path / "m.pt").exists()


def test_labels_with_non_integer_count(tmp_path: Path):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,start_s,end_s,kick\na.wav,0,1,1.5\n")
    result = invoke("prepare", "--check", csv)
    assert_one_line_error(result, 1, "labels.csv:2", "integer", "1.5")


def test_check_reports_missing_and_short_recordings(tmp_path: Path):
    sf.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    csv = tmp_path / "labels.csv"
    csv.write_text("path,start_s,end_s,kick\na.wav,0,0.5,1\na.wav,0.5,2.0,0\nmissing.wav,,,3\n")
    result = invoke("prepare", "--check", csv)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "labels.csv:3" in text and "only 1.000 s long" in text
    assert "labels.csv:4" in text and "not found" in text


def test_unknown_class_in_train(tmp_path: Path):
    paths = make_synthetic_set(tmp_path / "data", 2, duration_s=2.0)
    assert invoke("prepare", *paths, "-o", tmp_path / "labels.csv").exit_code == 0
    result = invoke("train", "--counts", tmp_path / "labels.csv", "-o", tmp_path / "m.pt", "--classes", "cowbell")
    assert_one_line_error(result, 2, "cowbell", "low")


def test_corrupt_and_empty_audio(tmp_path: Path, tiny_model: Path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    good = make_synthetic_set(tmp_path / "good", 1, duration_s=2.0)[0]
    result = invoke("detect", corrupt, empty, good, "-m", tiny_model, "-o", tmp_path / "out")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "corrupt.wav: cannot read audio" in text
    assert "empty.wav" in text and "2 of 3 recordings failed" in text
    assert (tmp_path / "out" / "clip000.events.tsv").exists()
    assert not (tmp_path / "out" / "corrupt.events.tsv").exists()


def test_model_that_is_not_ours(tmp_path: Path):
    wav = make_synthetic_set(tmp_path, 1, duration_s=1.0)[0]
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    result = invoke("detect", wav, "-m", foreign)
    assert_one_line_error(result, 1, "not an eventcount model file")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    assert_one_line_error(invoke("detect", wav, "-m", junk), 1, "not an eventcount model file")


def test_model_from_a_newer_eventcount(tmp_path: Path, tiny_model: Path):
    payload = torch.load(tiny_model, weights_only=True)
    payload["format_version"] = 99
    newer = tmp_path / "newer.pt"
    torch.save(payload, newer)
    wav = make_synthetic_set(tmp_path, 1, duration_s=1.0)[0]
    assert_one_line_error(invoke("detect", wav, "-m", newer), 1, "newer", "upgrade")


def test_detect_never_overwrites(tmp_path: Path, tiny_model: Path):
    wav = make_synthetic_set(tmp_path, 1, duration_s=1.0)[0]
    target = tmp_path / "out.tsv"
    target.write_text("keep me\n")
    result = invoke("detect", wav, "-m", tiny_model, "-o", target)
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert target.read_text() == "keep me\n"
    assert invoke("detect", wav, "-m", tiny_model, "-o", target, "--overwrite").exit_code == 0
    assert target.read_text().startswith("# time_s")


def train_two_steps(tmp_path: Path, *flags: str) -> dict:
    """Count labels for three short synthetic recordings, two training steps with `flags`; the model file's payload."""
    paths = make_synthetic_set(tmp_path / "data", 3, duration_s=2.0)
    assert invoke("prepare", *paths, "-o", tmp_path / "labels.csv").exit_code == 0
    result = invoke("train", "--counts", tmp_path / "labels.csv", "-o", tmp_path / "m.pt", "--steps", "2",
                    "--stretch", "off", *flags)
    assert result.exit_code == 0, result.output
    return torch.load(tmp_path / "m.pt", weights_only=True)


def test_lookahead_is_stored_in_frames(tmp_path: Path):
    payload = train_two_steps(tmp_path, "--lookahead", "30ms")
    assert payload["frontend"]["detection_delay_frames"] == 3


def test_lookahead_between_frames_is_refused(tmp_path: Path):
    paths = make_synthetic_set(tmp_path / "data", 2, duration_s=2.0)
    assert invoke("prepare", *paths, "-o", tmp_path / "labels.csv").exit_code == 0
    result = invoke("train", "--counts", tmp_path / "labels.csv", "-o", tmp_path / "m.pt", "--lookahead", "25ms")
    assert_one_line_error(result, 2, "--lookahead", "whole number of frames", "25 ms")
    assert not (tmp_path / "m.pt").exists()


def test_detect_warns_when_a_file_lacks_the_band_the_model_reads(tmp_path: Path):
    """A 16 kHz file given to a model that reads up to 16 kHz (32 kHz front end) gets a warning naming it;
    a 32 kHz file does not, and both are still detected."""
    from eventcount.checkpoint import save_model
    from eventcount.config import FrontendConfig, ModelSpec, NetworkConfig
    from eventcount.features import n_features
    from eventcount.network import CRNN

    frontend = FrontendConfig(sample_rate=32000, n_fft=1024, f_max=16000, n_mels=24)
    spec = ModelSpec(classes=["hat"], frontend=frontend, network=NetworkConfig(conv_channels=[4], rnn_hidden=8))
    model = tmp_path / "wide.pt"
    save_model(model, CRNN(n_features(frontend), 1, spec.network), spec, n_features(frontend), {})
    noise = np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)
    sf.write(tmp_path / "narrow.wav", noise[:16000], 16000)
    sf.write(tmp_path / "wide.wav", noise, 32000)
    narrow = invoke("detect", tmp_path / "narrow.wav", "-m", model, "-o", tmp_path / "narrow.tsv")
    assert narrow.exit_code == 0, narrow.output
    text = " ".join(narrow.output.split())
    assert "warning:" in text and "narrow.wav is sampled at 16000 Hz" in text and "nothing above 8000 Hz" in text
    wide = invoke("detect", tmp_path / "wide.wav", "-m", model, "-o", tmp_path / "wide.tsv")
    assert wide.exit_code == 0 and "warning" not in wide.output
    assert (tmp_path / "narrow.tsv").exists() and (tmp_path / "wide.tsv").exists()


def test_band_limit_is_a_training_option_stored_with_the_model(tmp_path: Path):
    payload = train_two_steps(tmp_path, "--band-limit", "0.5")
    assert payload["training"]["config"]["band_limit"] == 0.5
    bad = invoke("train", "--counts", tmp_path / "labels.csv", "-o", tmp_path / "bad.pt", "--band-limit", "2")
    assert bad.exit_code == 2 and "--band-limit" in bad.output
    assert not (tmp_path / "bad.pt").exists()


def test_background_is_a_training_option_stored_with_the_model(tmp_path: Path):
    music = make_synthetic_set(tmp_path / "music", 1, duration_s=1.0)[0]
    payload = train_two_steps(tmp_path, "--background", str(music), "--background-share", "1",
                              "--background-db=-6,3")
    config = payload["training"]["config"]
    assert config["background"] == [str(music)] and config["background_db"] == [-6.0, 3.0]
    bad = invoke("train", "--counts", tmp_path / "labels.csv", "-o", tmp_path / "bad.pt", "--background", str(music),
                 "--background-db", "loud")
    assert bad.exit_code == 2 and "--background-db" in bad.output
    missing = invoke("train", "--counts", tmp_path / "labels.csv", "-o", tmp_path / "bad.pt", "--background",
                     str(tmp_path / "nowhere"))
    assert missing.exit_code == 1 and "nowhere" in missing.output and "Traceback" not in missing.output
    assert not (tmp_path / "bad.pt").exists()


def test_a_count_the_clip_cannot_hold_is_reported_by_check_and_refused_by_train(tmp_path: Path):
    paths = make_synthetic_set(tmp_path / "data", 3, duration_s=2.0)
    labels = tmp_path / "labels.csv"
    rows = [f"{p},0,0.25,{30 if i == 1 else 1},0,0" for i, p in enumerate(paths)]
    labels.write_text("path,start_s,end_s,high,low,mid\n" + "\n".join(rows) + "\n")
    expected = f"{labels}:3: class 'high' count 30 is more than the clip can hold (at most 25"
    check = invoke("prepare", "--check", labels)
    assert check.exit_code == 1 and expected in " ".join(check.output.split())
    result = invoke("train", "--counts", labels, "-o", tmp_path / "m.pt", "--steps", "2", "--val-fraction", "0.01",
                    "--val", labels)
    assert_one_line_error(result, 1, expected)
    assert not (tmp_path / "m.pt").exists()


def test_prepare_and_train_never_overwrite_without_being_asked(tmp_path: Path):
    paths = make_synthetic_set(tmp_path / "data", 3, duration_s=2.0)
    labels, model = tmp_path / "labels.csv", tmp_path / "m.pt"
    labels.write_text("keep me\n")
    assert_one_line_error(invoke("prepare", *paths, "-o", labels), 1, "labels.csv exists; use --overwrite")
    assert labels.read_text() == "keep me\n"
    assert invoke("prepare", *paths, "-o", labels, "--overwrite").exit_code == 0
    model.write_text("keep me too\n")
    result = invoke("train", "--counts", labels, "-o", model, "--steps", "2")
    assert_one_line_error(result, 1, "m.pt exists; use --overwrite")
    assert model.read_text() == "keep me too\n"
    assert invoke("train", "--counts", labels, "-o", model, "--steps", "2", "--overwrite").exit_code == 0
    assert torch.load(model, weights_only=True)["format"] == "eventcount-model"


def test_train_config_file_sections_and_flags(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  steps: 3\n  seed: 5\nnetwork:\n  rnn_hidden: 8\n")
    payload = train_two_steps(tmp_path, "--config", config)  # --steps 2 on the command line wins
    assert payload["training"]["config"]["steps"] == 2 and payload["training"]["config"]["seed"] == 5
    assert payload["network"]["rnn_hidden"] == 8
    config.write_text("train:\n  stepz: 3\n")
    result = invoke("train", "--counts", tmp_path / "labels.csv", "-o", tmp_path / "bad.pt", "--config", config)
    assert_one_line_error(result, 1, "c.yaml: unknown option(s) stepz; known:")


@pytest.mark.slow
def test_quiet_says_nothing_but_results(tmp_path: Path):
    """-q: no tables, progress or notes on standard error from any command that succeeds."""
    make_synthetic_set(tmp_path / "rec", 2, 3.0, seed=1)
    cli = [sys.executable, "-m", "eventcount", "-q"]
    commands = [
        ["prepare", tmp_path / "rec", "-o", tmp_path / "labels.csv"],
        ["prepare", "--check", tmp_path / "labels.csv"],
        ["train", "--counts", tmp_path / "labels.csv", "--steps", "2", "--batch-size", "4", "-o", tmp_path / "m.pt"],
        ["detect", tmp_path / "rec", "-m", tmp_path / "m.pt", "-o", tmp_path / "est"],
        ["evaluate", "--reference", tmp_path / "rec", "--estimate", tmp_path / "est", "--json", tmp_path / "r.json"],
        ["pseudo-label", tmp_path / "rec", "-m", tmp_path / "m.pt", "-o", tmp_path / "labelled", "--jobs", "1"],
    ]
    for command in commands:
        result = subprocess.run([*cli, *map(str, command)], capture_output=True, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, (command[0], result.stderr)
        assert result.stderr == "", (command[0], result.stderr)
