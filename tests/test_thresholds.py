"""Choosing decoding thresholds on validation data (count agreement or F1) and the opt-in lag calibration."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from eventcount.annotations import Event
from eventcount.config import ModelSpec
from eventcount.errors import EventcountError
from eventcount.labels import Clip
from eventcount.thresholds import calibrate_lag, choose_thresholds
from eventcount.writers import write_events

RATE = 100.0
FRAMES = 1000  # 10 s
TRUE = np.arange(20) * 45 + 20  # frames of the true events
DECOYS = TRUE[:10] + 20  # frames of false peaks, away from every true event


def event_times(frames: np.ndarray) -> np.ndarray:
    """Times whose event frame is `frames` (frame centres)."""
    return (frames + 0.5) / RATE


def probabilities(true_p: float, decoy_p: float, late_frames: int = 0) -> np.ndarray:
    """[T, 1]: a one-frame spike at each true event's detection frame (one frame later, the audio front end's
    delay, plus `late_frames`) and at each decoy."""
    probs = np.zeros((FRAMES, 1))
    probs[TRUE + 1 + late_frames, 0] = true_p
    probs[DECOYS + 1, 0] = decoy_p
    return probs


def validation(path: Path, counts: list[int]) -> SimpleNamespace:
    """What `choose_thresholds` reads of a `ClipData`: clips (two halves) and each recording's events."""
    clips = [Clip(path, 0.0, 5.0, [counts[0]]), Clip(path, 5.0, 10.0, [counts[1]])]
    recording = SimpleNamespace(events={"a": event_times(TRUE)})
    return SimpleNamespace(clips=clips, recordings={path: recording})


def true_counts() -> list[int]:
    times = event_times(TRUE)
    return [int((times < 5.0).sum()), int((times >= 5.0).sum())]


def test_count_agreement_picks_the_threshold_nearest_half_that_counts_right(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    spec = ModelSpec(["a"])
    thresholds, scores = choose_thresholds({path: probabilities(0.9, 0.6)}, spec, validation(path, true_counts()),
                                           by_f1=False)
    # every threshold in (0.6, 0.9] counts right; of those, 0.65 is nearest 0.5
    assert thresholds == {"a": 0.65}
    assert scores["a"] == {"threshold": 0.65, "criterion": "minus_count_error", "value": 0.0}
    assert spec.decode.thresholds == {}  # the spec given is not written to


def test_f1_with_validation_events_ignores_the_counts(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    spec = ModelSpec(["a"])
    data = validation(path, [0, 0])  # counts that say "nothing here": the count criterion would pick 0.5
    probs = {path: probabilities(0.4, 0.3)}
    assert choose_thresholds(probs, spec, data, by_f1=False)[0] == {"a": 0.5}
    thresholds, scores = choose_thresholds(probs, spec, data, by_f1=True)
    assert thresholds == {"a": 0.4}
    assert scores["a"]["criterion"] == "f_measure" and scores["a"]["value"] == pytest.approx(1.0)


def test_calibrate_lag_measures_a_constant_late_firing(tmp_path: Path) -> None:
    events = tmp_path / "events"
    events.mkdir()
    path = tmp_path / "rec.wav"
    write_events(events / "rec.events.tsv", [Event(float(t), "a") for t in event_times(TRUE)])
    lag = calibrate_lag({path: probabilities(0.9, 0.0, late_frames=3)}, ModelSpec(["a"]), events, None)
    assert lag == pytest.approx(0.03, abs=1e-9)


def test_calibrate_lag_without_matching_timestamps_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EventcountError, match="--calibrate-lag: no validation recording"):
        calibrate_lag({tmp_path / "rec.wav": probabilities(0.9, 0.0)}, ModelSpec(["a"]), tmp_path, None)
