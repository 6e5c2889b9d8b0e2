"""SoftLoc learns true event times from timestamps that are each off by +-40 ms (symmetric noise).

A constant bias (every label 40 ms late) cannot be undone by any loss: the network would learn the biased
times. Symmetric noise averages out, which is what this checks. Slow (a real training run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eventcount.annotations import Event, events_by_class, read_events
from eventcount.config import ModelSpec, TrainConfig
from eventcount.detection import Detector, detect_recording
from eventcount.evaluate import Counts, match_counts
from eventcount.prepare import make_count_table
from eventcount.recordings import event_file_for
from eventcount.synthetic import make_synthetic_set
from eventcount.train import train
from eventcount.writers import write_events

SHIFT_S = 0.040


def shift_labels(paths: list[Path], folder: Path, seed: int) -> None:
    """Write each recording's events, every one moved by +40 ms or -40 ms (equal odds), into `folder`."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for path in paths:
        events = read_events(event_file_for(path))
        moved = [Event(max(0.0, e.time_s + SHIFT_S * rng.choice([-1, 1])), e.label) for e in events]
        write_events(folder / f"{path.stem}.events.tsv", sorted(moved, key=lambda e: e.time_s))


@pytest.mark.slow
def test_softloc_recovers_true_times_from_symmetric_label_noise(tmp_path: Path):
    train_files = make_synthetic_set(tmp_path / "train", 24, 10.0, seed=1)
    test_files = make_synthetic_set(tmp_path / "test", 4, 10.0, seed=2)
    shift_labels(train_files, tmp_path / "noisy", seed=3)
    table = make_count_table(train_files, tmp_path / "noisy", window_s=0.25)
    config = TrainConfig(loss="softloc", steps=500, softness_s=0.05, seed=0)
    train(table, ModelSpec(classes=table.classes), config, tmp_path / "m.pt", events_dir=tmp_path / "noisy")
    detector = Detector.load(tmp_path / "m.pt")
    total = Counts()
    for path in test_files:
        reference = events_by_class(read_events(event_file_for(path)))
        estimate = events_by_class(detect_recording(detector, path).events, detector.spec.classes)
        for name in detector.spec.classes:
            total = total + match_counts(reference[name], estimate[name], 0.05)
    errors = np.abs(total.offsets_s)
    assert total.scores()["f_measure"] >= 0.9, total.scores()
    # every training label was 40 ms off; the detections are within 20 ms of the truth
    assert abs(np.mean(total.offsets_s)) <= 0.020, total.scores()
    assert np.median(errors) <= 0.020 and np.mean(errors <= 0.020) >= 0.8, total.scores()
