"""The resume state of an interrupted training run (`<model>.resume`): step, history, weights, optimiser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from eventcount.atomic import atomic_write
from eventcount.errors import EventcountError


def resume_path(out: Path) -> Path:
    """Where the resume state of a run writing `out` lives."""
    return out.with_name(out.name + ".resume")


def save_resume(out: Path, model: torch.nn.Module, optimizer, scheduler, scaler, step: int, history: list) -> None:
    """Write the resume state atomically (plain data, loadable with weights_only=True)."""
    state = {"step": step, "history": history, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler is not None else {}}
    with atomic_write(resume_path(out), "wb") as handle:
        torch.save(state, handle)


def load_resume(out: Path) -> dict[str, Any]:
    """The resume state of `out`'s run; a clear error when there is none or it is damaged."""
    path = resume_path(out)
    if not path.exists():
        raise EventcountError(f"{path}: no interrupted training to resume (run without --resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return {key: state[key] for key in ("step", "history", "model", "optimizer", "scheduler")} | {
            "scaler": state.get("scaler", {})}
    except Exception as err:  # torch raises many types for damaged files
        raise EventcountError(f"{path}: damaged resume state ({type(err).__name__}); delete it and train again") \
            from None
