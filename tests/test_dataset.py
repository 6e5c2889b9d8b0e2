"""Training data: recordings are read one at a time, and a bad one is reported before any work is done."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from eventcount.config import FrontendConfig
from eventcount.dataset import ClipData, resolve_frontend
from eventcount.errors import EventcountError
from eventcount.features import FeatureExtractor, fit_norm_prior
from eventcount.labels import Clip, CountTable


def noise_files(folder: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = folder / f"r{i}.wav"
        level = 0.01 * (i + 1)
        sf.write(path, np.random.default_rng(i).normal(0, level, 8000).astype(np.float32), 16000)
        paths.append(path)
    return paths


def whole_clips(paths: list[Path]) -> CountTable:
    return CountTable(["x"], [Clip(path, None, None, [0]) for path in paths])


def test_features_and_prior_are_those_of_each_recording_read_alone(tmp_path: Path) -> None:
    paths = noise_files(tmp_path, 3)
    given = FrontendConfig()
    frontend = resolve_frontend(given, paths, fit_prior=True)
    assert given.norm_prior_mean is None  # the caller's config is never written to
    data = ClipData(whole_clips(paths), frontend, [1.0])

    expected_frontend = FrontendConfig()
    extractor = FeatureExtractor(expected_frontend)
    samples = [torch.from_numpy(sf.read(p, dtype="float32")[0]) for p in paths]
    fit_norm_prior(expected_frontend, extractor, samples)
    assert frontend.norm_prior_mean == expected_frontend.norm_prior_mean
    extractor = FeatureExtractor(expected_frontend)
    for path, x in zip(paths, samples, strict=True):
        torch.testing.assert_close(data.recordings[path].features[1.0], extractor(x).half())


def test_an_unreadable_recording_is_named_before_features_are_computed(tmp_path: Path) -> None:
    paths = noise_files(tmp_path, 2)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    read = []

    def progress(done: int, total: int) -> None:
        read.append(done)

    with pytest.raises(EventcountError, match="broken.wav"):
        ClipData(whole_clips([*paths, bad]), FrontendConfig(), [1.0], progress=progress)
    assert read == []
