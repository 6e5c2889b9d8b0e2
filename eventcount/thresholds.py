"""Choosing decoding settings on validation data: per-class thresholds and the optional lag calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from eventcount.config import DEFAULT_TOLERANCE_S, ModelSpec
from eventcount.dataset import ClipData, load_events
from eventcount.decode import class_threshold, pick_class, total_lag_s
from eventcount.errors import EventcountError
from eventcount.evaluate import match_counts
from eventcount.network import CRNN

THRESHOLD_GRID = np.round(np.arange(0.1, 0.96, 0.05), 2)
F1_TOLERANCE_S = DEFAULT_TOLERANCE_S
LAG_TOLERANCE_S = 0.1


def recording_probabilities(model: CRNN, data: ClipData) -> dict[Path, np.ndarray]:
    """Probabilities [T, D] of every recording in `data`, unstretched."""
    device = next(model.parameters()).device
    out = {}
    with torch.no_grad():
        for path, rec in data.recordings.items():
            logits, _ = model(rec.features[1.0].float()[None].to(device))
            out[path] = torch.sigmoid(logits[0]).double().cpu().numpy()
    return out


def _count_error(data: ClipData, times: dict[Path, np.ndarray], d: int) -> float:
    error = 0.0
    for clip in data.clips:
        t = times[clip.path]
        start = clip.start_s or 0.0
        end = clip.end_s if clip.end_s is not None else np.inf
        error += abs(int(((t >= start) & (t < end)).sum()) - clip.counts[d])
    return error


def _f1(data: ClipData, times: dict[Path, np.ndarray], name: str) -> float:
    total = None
    for path, rec in data.recordings.items():
        counts = match_counts(rec.events.get(name, np.empty(0)), times[path], F1_TOLERANCE_S)
        total = counts if total is None else total + counts
    return float(total.scores()["f_measure"])


def choose_thresholds(probs: dict[Path, np.ndarray], spec: ModelSpec, data: ClipData,
                      by_f1: bool) -> tuple[dict, dict]:
    """Per-class thresholds maximising F1 at 50 ms (if `by_f1`, needs event times) or count agreement.

    `probs` are the recordings' probabilities (`recording_probabilities`).
    Returns ({class: threshold}, {class: {"threshold", "criterion", "value"}}).
    """
    rate, dec = spec.frontend.frame_rate, spec.decode
    lag_s = total_lag_s(dec, rate, spec.frontend.detection_delay())
    thresholds, scores = {}, {}
    for d, name in enumerate(spec.classes):
        results = []
        for threshold in THRESHOLD_GRID:
            times = {p: pick_class(pr[:, d], rate, threshold, dec.min_distance_s, lag_s)[0]
                     for p, pr in probs.items()}
            value = _f1(data, times, name) if by_f1 else -_count_error(data, times, d)
            results.append((value, -abs(threshold - 0.5), float(threshold)))
        best = max(results)
        thresholds[name] = best[2]
        criterion = "f_measure" if by_f1 else "minus_count_error"
        scores[name] = {"threshold": best[2], "criterion": criterion, "value": best[0]}
    return thresholds, scores


def calibrate_lag(probs: dict[Path, np.ndarray], spec: ModelSpec, events_dir: Path,
                  class_map: dict[str, str] | None) -> float:
    """The median timing offset (estimate - reference) on validation recordings with timestamps in `events_dir`."""
    offsets: list[float] = []
    delay_s = spec.frontend.detection_delay_s
    for path, pr in probs.items():
        try:
            events = load_events(path, events_dir, spec.classes, class_map)
        except EventcountError:
            continue
        for d, name in enumerate(spec.classes):
            times = pick_class(pr[:, d], spec.frontend.frame_rate, class_threshold(spec.decode, name),
                               spec.decode.min_distance_s, delay_s)[0]
            offsets += match_counts(events.get(name, np.empty(0)), times, LAG_TOLERANCE_S).offsets_s
    if not offsets:
        raise EventcountError(f"--calibrate-lag: no validation recording has matching timestamps in {events_dir}")
    return float(np.median(offsets))
