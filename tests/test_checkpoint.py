"""Model files: save/load round trip, plain data loaded with weights_only, clear errors for foreign files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eventcount.checkpoint import FORMAT_VERSION, load_model, read_model_file, save_model
from eventcount.config import DecodeConfig, FrontendConfig, ModelSpec, NetworkConfig, SensorConfig
from eventcount.errors import EventcountError
from eventcount.network import CRNN

N_FEATURES = 12


def tiny_spec() -> ModelSpec:
    return ModelSpec(
        classes=["KD", "SD"],
        frontend=FrontendConfig(n_mels=N_FEATURES, norm_prior_mean=[0.5] * N_FEATURES, sensor=SensorConfig(channels=1)),
        network=NetworkConfig(conv_channels=[4], rnn="lstm", rnn_hidden=8),
        decode=DecodeConfig(threshold=0.4, thresholds={"SD": 0.7}, lag_s=0.01),
    )


def saved(tmp_path: Path) -> tuple[Path, CRNN, ModelSpec]:
    torch.manual_seed(0)
    spec = tiny_spec()
    model = CRNN(N_FEATURES, 2, spec.network).eval()
    model.set_output_bias(-3.0)
    path = tmp_path / "m.pt"
    save_model(path, model, spec, N_FEATURES, {"data": "none", "seed": 0, "scores": {"f": 0.5}})
    return path, model, spec


def test_round_trip_gives_equal_logits_and_spec(tmp_path: Path) -> None:
    path, model, spec = saved(tmp_path)
    loaded, loaded_spec, info = load_model(path)
    x = torch.randn(2, 2, 15, N_FEATURES)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model(x)[0])
    assert not loaded.training
    assert loaded_spec == spec
    assert info["training"]["scores"] == {"f": 0.5}
    assert info["format_version"] == FORMAT_VERSION
    assert len(info["sha256"]) == 64


def test_file_is_plain_data_loadable_with_weights_only(tmp_path: Path) -> None:
    path, _, _ = saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "eventcount-model"
    assert sorted(payload["state_dict"]) == sorted(CRNN(N_FEATURES, 2, tiny_spec().network).state_dict())


def test_save_leaves_no_temp_file(tmp_path: Path) -> None:
    saved(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_other_torch_file_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(EventcountError, match=r"other\.pt: not an eventcount model file"):
        load_model(path)


def test_random_bytes_are_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(EventcountError, match=r"noise\.pt: not an eventcount model file"):
        load_model(path)


CODE_RAN: list[str] = []


def _side_effect() -> dict:
    CODE_RAN.append("ran")
    return {"format": "eventcount-model", "format_version": 1}


class Payload:
    def __reduce__(self):
        return (_side_effect, ())


def test_pickled_code_never_runs(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save(Payload(), path)
    with pytest.raises(EventcountError, match="not an eventcount model file"):
        read_model_file(path)
    assert CODE_RAN == []


def test_newer_format_asks_for_an_upgrade(tmp_path: Path) -> None:
    path, _, _ = saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(EventcountError, match="newer than this eventcount supports.*upgrade"):
        load_model(path)


def test_damaged_model_file(tmp_path: Path) -> None:
    path, _, _ = saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    del payload["state_dict"]["head.bias"]
    torch.save(payload, path)
    with pytest.raises(EventcountError, match="damaged model file"):
        load_model(path)


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(EventcountError, match="not found"):
        load_model(tmp_path / "absent.pt")
