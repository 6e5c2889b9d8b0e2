"""Model files: plain-data dictionaries (configs, class names, state dict) loaded with weights_only=True."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
from pathlib import Path
from typing import Any

import torch

from eventcount import __version__
from eventcount.atomic import atomic_write
from eventcount.config import DEFAULT_MODEL, DecodeConfig, FrontendConfig, ModelSpec, NetworkConfig, from_dict
from eventcount.errors import EventcountError
from eventcount.network import CRNN

FORMAT = "eventcount-model"
FORMAT_VERSION = 1
MODELS_DIR = Path(str(importlib.resources.files("eventcount.models")))  # the repository's models/ folder


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    return {"classes": list(spec.classes), "frontend": dataclasses.asdict(spec.frontend),
            "network": dataclasses.asdict(spec.network), "decode": dataclasses.asdict(spec.decode)}


def save_model(path: str | Path, model: CRNN, spec: ModelSpec, n_features: int, training: dict[str, Any]) -> None:
    """Write a model file atomically."""
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__,
        **spec_to_dict(spec), "n_features": n_features, "training": training,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


def resolve_model_path(name: str | Path | None) -> Path:
    """A shipped model name (`drums`, `steps`) or a path -> the model file's path."""
    name = str(name or DEFAULT_MODEL)
    shipped = MODELS_DIR / f"{name}.pt"
    if "/" not in name and not name.endswith(".pt") and shipped.exists():
        return shipped
    path = Path(name)
    if path.exists():
        return path
    names = ", ".join(sorted(p.stem for p in MODELS_DIR.glob("*.pt"))) or "none installed"
    raise EventcountError(f"model {name!r} not found: not a file and not a shipped model (shipped: {names})")


def read_model_file(path: str | Path) -> dict[str, Any]:
    """Load and check a model file's dictionary (no code runs: weights_only=True)."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise EventcountError(f"{path}: model file not found") from None
    except Exception as err:  # torch raises many types for foreign or damaged files
        raise EventcountError(f"{path}: not an eventcount model file ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise EventcountError(f"{path}: not an eventcount model file")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise EventcountError(f"{path}: model format {version} is newer than this eventcount supports "
                              f"({FORMAT_VERSION}); upgrade eventcount")
    return payload


def load_model(name: str | Path | None = None) -> tuple[CRNN, ModelSpec, dict[str, Any]]:
    """(network in eval mode, spec, the whole file dict) for a model name or path."""
    path = resolve_model_path(name)
    payload = read_model_file(path)
    try:
        spec = ModelSpec(
            classes=list(payload["classes"]),
            frontend=from_dict(FrontendConfig, {"detection_delay_frames": 0, **payload["frontend"]},
                               f"{path} frontend"),  # files from before the detection delay: none
            network=from_dict(NetworkConfig, payload["network"], f"{path} network"),
            decode=from_dict(DecodeConfig, payload["decode"], f"{path} decode"),
        )
        model = CRNN(payload["n_features"], len(spec.classes), spec.network)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, TypeError) as err:
        raise EventcountError(f"{path}: damaged model file ({type(err).__name__}: {err})") from None
    payload["path"] = str(path)
    payload["sha256"] = file_sha256(path)
    return model.eval(), spec, payload


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_models() -> list[dict[str, Any]]:
    """Summaries of the shipped models: name, classes, training data, measured scores."""
    out = []
    for path in sorted(MODELS_DIR.glob("*.pt")):
        payload = read_model_file(path)
        training = payload.get("training", {})
        out.append({"name": path.stem, "classes": payload["classes"], "data": training.get("data", ""),
                    "scores": training.get("scores", {}), "path": str(path)})
    return out
