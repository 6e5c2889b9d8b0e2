"""Shared fixtures: a tiny random-initialised model file (like demucs's smoke-test model); optional extras."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest
import torch

from eventcount.checkpoint import save_model
from eventcount.config import ModelSpec, NetworkConfig
from eventcount.features import n_features
from eventcount.network import CRNN


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    spec = ModelSpec(classes=["low", "mid", "high"], network=NetworkConfig(conv_channels=[4], rnn_hidden=8))
    model = CRNN(n_features(spec.frontend), 3, spec.network)
    path = tmp_path / "tiny.pt"
    save_model(path, model, spec, n_features(spec.frontend), {"data": "random init"})
    return path


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    """Run torch on one thread in every test: the tests use tiny tensors, and on a busy 2-core machine two
    intra-op threads made a tiny CRNN forward pass ~100x slower (0.2-0.6 s instead of 2 ms). Set per test
    because numba's OpenMP layer (the counting loss) resets the shared thread count on its first launch."""
    torch.set_num_threads(1)


def require(module: str, *programs: str) -> ModuleType:
    """An optional extra's module (and programs) for a test: the test is skipped where they are missing, but
    with EVENTCOUNT_REQUIRE_EXTRAS=1 (CI, `.ci/run`) a missing extra fails it, so those tests always run there."""
    missing = [p for p in programs if shutil.which(p) is None]
    try:
        imported = importlib.import_module(module)
    except ImportError:
        missing.insert(0, module)
    if missing:
        message = f"optional extra not installed: {', '.join(missing)}"
        if os.environ.get("EVENTCOUNT_REQUIRE_EXTRAS"):
            pytest.fail(message + " (EVENTCOUNT_REQUIRE_EXTRAS is set)")
        pytest.skip(message, allow_module_level=True)  # also at a module's top (test_ray_engine)
    return imported
