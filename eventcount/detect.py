"""Detecting events in one file: activations -> events -> written file or text for stdout."""

from __future__ import annotations

from pathlib import Path

from eventcount.config import DecodeConfig
from eventcount.inference import Detector, save_activations
from eventcount.writers import get_writer, write_events


def output_path(folder: Path, recording: Path, fmt: str) -> Path:
    """`<folder>/<stem><format suffix>` for a recording."""
    suffix, _ = get_writer(fmt)
    return folder / f"{recording.stem}{suffix}"


def detect_file(detector: Detector, path: Path, decode: DecodeConfig, fmt: str = "tsv", target: Path | None = None,
                tta: int = 1, activations: bool = False, sensor_options: dict | None = None) -> str | None:
    """Detect events in `path`; write them to `target` (atomically) or return them as text.

    With `activations`, also write `<stem>.activations.npz` beside the target (or in the current folder).
    """
    _, writer = get_writer(fmt)
    probs = detector.file_activations(path, tta, sensor_options)
    events = detector.decode(probs, decode)
    if activations:
        folder = target.parent if target is not None else Path(".")
        save_activations(folder / f"{path.stem}.activations.npz", probs, detector.frame_rate, detector.spec.classes,
                         detector.spec.frontend.detection_delay())
    options = {"duration_s": probs.shape[0] / detector.frame_rate}
    if target is not None:
        write_events(target, events, fmt, **options)
        return None
    content = writer(events, **options)
    if isinstance(content, bytes):
        from eventcount.errors import EventcountError

        raise EventcountError(f"format {fmt} is binary; give -o FILE")
    return content
