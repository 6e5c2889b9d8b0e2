"""Decoding probabilities into event times: click trains at known times, split hits, distances, thresholds, lag."""

from __future__ import annotations

import numpy as np
import pytest

from eventcount.config import DecodeConfig
from eventcount.decode import local_mass, peak_frames, pick_class, pick_events
from eventcount.features import event_frames

FPS = 100.0


def click_train(times_s: np.ndarray, n_frames: int, height: float = 0.95) -> np.ndarray:
    probs = np.full(n_frames, 0.01)
    probs[event_frames(times_s, FPS)] = height
    return probs


def test_click_train_found_within_a_frame() -> None:
    times = np.array([0.123, 0.5, 0.777, 1.2049, 2.3])
    found, confidence = pick_class(click_train(times, 300), FPS, threshold=0.5, min_distance_s=0.03)
    assert found.shape == times.shape
    assert np.abs(found - times).max() <= 1 / FPS
    assert np.all((confidence > 0.9) & (confidence <= 1.0))


def test_detection_is_reported_at_the_frame_centre() -> None:
    found, _ = pick_class(click_train(np.array([0.5]), 100), FPS, 0.5, 0.03)
    assert found.tolist() == pytest.approx([0.505])


def test_hit_split_over_two_frames_gives_one_event_between_them() -> None:
    probs = np.zeros(100)
    probs[40] = probs[41] = 0.45  # neither frame reaches 0.5 alone; their local mass does
    found, confidence = pick_class(probs, FPS, threshold=0.5, min_distance_s=0.0)
    assert found.tolist() == pytest.approx([0.41])  # the boundary between frames 40 and 41
    assert confidence.tolist() == pytest.approx([0.9])


def test_below_threshold_is_not_an_event() -> None:
    found, _ = pick_class(click_train(np.array([0.3]), 100, height=0.4), FPS, 0.5, 0.03)
    assert found.size == 0


def test_min_distance_keeps_the_stronger_of_two_close_peaks() -> None:
    probs = np.zeros(100)
    probs[[30, 32]] = [0.6, 0.9]
    found, _ = pick_class(probs, FPS, threshold=0.5, min_distance_s=0.03)
    assert found.tolist() == pytest.approx([0.325])
    found, _ = pick_class(probs, FPS, threshold=0.5, min_distance_s=0.01)
    assert found.tolist() == pytest.approx([0.305, 0.325])


def test_peaks_far_apart_are_all_kept() -> None:
    probs = np.zeros(100)
    probs[[10, 20, 30]] = 0.8
    assert peak_frames(probs, 0.5, min_distance=5).tolist() == [10, 20, 30]


def test_local_mass_sums_three_frames() -> None:
    assert local_mass(np.array([1.0, 2.0, 4.0, 8.0])).tolist() == [3.0, 7.0, 14.0, 12.0]


def test_thresholds_per_class() -> None:
    probs = np.zeros((100, 2))
    probs[20, 0] = probs[20, 1] = 0.7
    config = DecodeConfig(threshold=0.5, thresholds={"hh": 0.8})
    events = pick_events(probs, FPS, ["kd", "hh"], config)
    assert [(e.label, round(e.time_s, 3)) for e in events] == [("kd", 0.205)]
    events = pick_events(probs, FPS, ["kd", "hh"], DecodeConfig(threshold=0.5))
    assert sorted(e.label for e in events) == ["hh", "kd"]


def test_lag_shifts_times_and_drops_negative_ones() -> None:
    probs = click_train(np.array([0.01, 0.5, 1.0]), 200)
    plain, _ = pick_class(probs, FPS, 0.5, 0.03)
    lagged, _ = pick_class(probs, FPS, 0.5, 0.03, lag_s=0.05)
    assert lagged.tolist() == pytest.approx((plain[1:] - 0.05).tolist())


def test_pick_events_sorted_by_time_across_classes() -> None:
    probs = np.zeros((200, 2))
    probs[[150, 50], 0] = 0.9
    probs[100, 1] = 0.9
    events = pick_events(probs, FPS, ["a", "b"], DecodeConfig())
    assert [e.label for e in events] == ["a", "b", "a"]
    assert [e.time_s for e in events] == sorted(e.time_s for e in events)


def test_no_frames_and_no_peaks_give_no_events() -> None:
    assert pick_events(np.zeros((0, 2)), FPS, ["a", "b"], DecodeConfig()) == []
    assert pick_events(np.zeros((50, 2)), FPS, ["a", "b"], DecodeConfig()) == []
