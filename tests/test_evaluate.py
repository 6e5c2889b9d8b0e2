"""Evaluation: one-to-one matching, report structure, long recordings, pairing event files by stem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eventcount.annotations import Event
from eventcount.errors import EventcountError
from eventcount.evaluate import (
    check_tolerance,
    evaluate,
    evaluate_paths,
    event_file_stem,
    match_counts,
    pair_event_files,
    score_detector,
    write_report,
)
from eventcount.writers import write_events


def test_match_counts_tp_fp_fn_and_signed_offsets() -> None:
    reference = np.array([1.0, 2.0, 3.0])
    estimate = np.array([5.0, 2.97, 1.03, 2.5])  # unsorted on purpose
    counts = match_counts(reference, estimate, tolerance_s=0.05)
    assert (counts.tp, counts.fp, counts.fn) == (2, 2, 1)
    assert sorted(counts.offsets_s) == pytest.approx([-0.03, 0.03])
    late = match_counts(np.array([1.0]), np.array([1.04]), 0.05)
    assert late.offsets_s == pytest.approx([0.04])  # estimate minus reference: late is positive


def test_match_counts_is_one_to_one() -> None:
    counts = match_counts(np.array([1.0]), np.array([0.99, 1.0, 1.01]), 0.05)
    assert (counts.tp, counts.fp, counts.fn) == (1, 2, 0)


def test_match_counts_tolerance_edge() -> None:
    assert match_counts(np.array([1.0]), np.array([1.049]), 0.05).tp == 1
    assert match_counts(np.array([1.0]), np.array([1.051]), 0.05).tp == 0


def test_match_counts_with_empty_sides() -> None:
    nothing_found = match_counts(np.array([1.0, 2.0]), np.empty(0), 0.05)
    assert (nothing_found.tp, nothing_found.fp, nothing_found.fn) == (0, 0, 2)
    nothing_there = match_counts(np.empty(0), np.array([1.0]), 0.05)
    assert (nothing_there.tp, nothing_there.fp, nothing_there.fn) == (0, 1, 0)


def test_times_above_thirty_thousand_seconds() -> None:
    counts = match_counts(np.array([40_000.0, 86_000.5]), np.array([40_000.01, 86_000.52]), 0.05)
    assert counts.tp == 2
    report = evaluate([("day", {"a": np.array([40_000.0])}, {"a": np.array([40_000.01])})], ["a"], 0.05)
    assert report["micro"]["f_measure"] == 1.0


def test_evaluate_report_structure_and_values() -> None:
    files = [
        ("one", {"a": np.array([1.0, 2.0]), "b": np.array([1.5])}, {"a": np.array([1.01, 2.01]), "b": np.empty(0)}),
        ("two", {"a": np.array([1.0])}, {"a": np.array([3.0])}),
    ]
    report = evaluate(files, ["a", "b"], tolerance_s=0.05)
    assert report["tolerance_s"] == 0.05
    assert set(report) >= {"tolerance_s", "mean", "micro", "per_class", "files"}
    assert set(report["per_class"]) == {"a", "b"}
    for cls in ("a", "b"):
        assert set(report["per_class"][cls]) == {"mean", "micro"}
    assert [f["name"] for f in report["files"]] == ["one", "two"]
    assert report["micro"]["tp"] == 2 and report["micro"]["fp"] == 1 and report["micro"]["fn"] == 2
    assert report["micro"]["precision"] == pytest.approx(2 / 3)
    assert report["micro"]["recall"] == pytest.approx(0.5)
    assert report["micro"]["offset_mean_s"] == pytest.approx(0.01)
    # file "one": P 1, R 2/3; file "two": P 0, R 0 -> mean F = (0.8 + 0) / 2
    assert report["mean"]["f_measure"] == pytest.approx(0.4)
    assert report["per_class"]["a"]["micro"]["tp"] == 2
    json.dumps(report)  # plain data only


def test_a_class_absent_from_a_file_is_left_out_of_means() -> None:
    files = [
        ("one", {"a": np.array([1.0]), "b": np.array([2.0])}, {"a": np.array([1.0]), "b": np.array([2.0])}),
        ("two", {"a": np.array([1.0])}, {"a": np.array([1.0])}),  # no b at all: not a zero score
    ]
    report = evaluate(files, ["a", "b"], 0.05)
    assert report["per_class"]["b"]["mean"]["f_measure"] == 1.0
    assert report["mean"]["f_measure"] == 1.0


def test_event_file_stem() -> None:
    assert event_file_stem(Path("x/song.events.tsv")) == "song"
    assert event_file_stem(Path("song.labels.txt")) == "song"
    assert event_file_stem(Path("song.csv")) == "song"


def write(path: Path, times: list[float], label: str = "kd", fmt: str = "tsv") -> None:
    write_events(path, [Event(t, label) for t in times], fmt)


def test_evaluate_paths_pairs_by_stem_across_folders(tmp_path: Path) -> None:
    ref, est = tmp_path / "ref", tmp_path / "est"
    write(ref / "a.events.tsv", [1.0, 2.0])
    write(ref / "sub" / "b.events.tsv", [0.5])
    write(est / "a.events.csv", [1.01, 2.02], fmt="csv")
    write(est / "sub" / "b.txt", [0.9])
    write(est / "extra.events.tsv", [3.0])  # no reference: ignored
    pairs = pair_event_files(ref, est)
    assert [name for name, _, _ in pairs] == ["a", "sub/b"]
    report = evaluate_paths(ref, est, tolerance_s=0.05)
    by_name = {f["name"]: f for f in report["files"]}
    assert set(by_name) == {"a", "sub/b"}
    assert (by_name["a"]["tp"], by_name["a"]["fp"], by_name["a"]["fn"]) == (2, 0, 0)
    assert (by_name["sub/b"]["tp"], by_name["sub/b"]["fp"], by_name["sub/b"]["fn"]) == (0, 1, 1)
    assert report["classes"] == ["kd"]


def test_event_files_win_over_sensor_recordings_of_the_same_stem(tmp_path: Path) -> None:
    ref, est = tmp_path / "ref", tmp_path / "est"
    (ref / "walk.csv").parent.mkdir(parents=True)
    (ref / "walk.csv").write_text("time_s,x\n0,1\n0.01,2\n0.02,3\n", encoding="utf-8")  # the recording
    write(ref / "walk.events.tsv", [1.0])
    write(est / "walk.events.tsv", [1.0])
    assert pair_event_files(ref, est) == [("walk", ref / "walk.events.tsv", est / "walk.events.tsv")]
    assert evaluate_paths(ref, est, 0.05)["micro"]["tp"] == 1


def test_evaluate_paths_counts_a_missing_estimate_as_missed(tmp_path: Path) -> None:
    ref, est = tmp_path / "ref", tmp_path / "est"
    write(ref / "a.events.tsv", [1.0])
    write(ref / "b.events.tsv", [1.0, 2.0])
    write(est / "a.events.tsv", [1.0])
    report = evaluate_paths(ref, est, 0.05)
    assert report["micro"]["tp"] == 1 and report["micro"]["fn"] == 2


def test_evaluate_paths_with_two_files_and_class_map(tmp_path: Path) -> None:
    write(tmp_path / "ref.events.tsv", [1.0], label="36")
    write(tmp_path / "est.events.tsv", [1.0], label="KD")
    report = evaluate_paths(tmp_path / "ref.events.tsv", tmp_path / "est.events.tsv", 0.05, class_map={"36": "KD"})
    assert report["classes"] == ["KD"] and report["micro"]["tp"] == 1


def test_evaluate_paths_errors(tmp_path: Path) -> None:
    write(tmp_path / "ref" / "a.events.tsv", [1.0])
    write(tmp_path / "est" / "z.events.tsv", [1.0])
    with pytest.raises(EventcountError, match="no event files with matching names"):
        evaluate_paths(tmp_path / "ref", tmp_path / "est", 0.05)
    write(tmp_path / "est" / "a.events.tsv", [1.0])
    with pytest.raises(EventcountError, match="unknown class"):
        evaluate_paths(tmp_path / "ref", tmp_path / "est", 0.05, classes=["nope"])


def test_write_report_round_trip(tmp_path: Path) -> None:
    report = evaluate([("f", {"a": np.array([1.0])}, {"a": np.array([1.0])})], ["a"], 0.05)
    write_report(tmp_path / "report.json", report)
    assert json.loads((tmp_path / "report.json").read_text()) == report


@pytest.mark.parametrize("tolerance_s", [0.0, -0.05, 1e9])
def test_tolerance_must_be_positive_and_sensible(tolerance_s: float, tmp_path: Path) -> None:
    with pytest.raises(EventcountError, match="tolerance: expected more than 0"):
        check_tolerance(tolerance_s)
    write_events(tmp_path / "a.events.tsv", [Event(1.0, "x")])
    with pytest.raises(EventcountError, match="tolerance"):
        evaluate_paths(tmp_path / "a.events.tsv", tmp_path / "a.events.tsv", tolerance_s)


def test_score_detector_equals_detect_then_evaluate(tmp_path: Path) -> None:
    """The one scoring helper gives the report of writing the detections and evaluating the files."""
    import shutil

    from eventcount.detection import Detector, detect_recording, write_detection

    example = Path(__file__).parent.parent / "examples" / "audio"
    shutil.copy(example / "groove_example.flac", tmp_path / "song.flac")
    shutil.copy(example / "groove_example.events.tsv", tmp_path / "song.events.tsv")
    detector = Detector.load("drums")
    report = score_detector(detector, [tmp_path / "song.flac"])
    (tmp_path / "est").mkdir()
    write_detection(detect_recording(detector, tmp_path / "song.flac"), tmp_path / "est" / "song.events.tsv")
    expected = evaluate_paths(tmp_path / "song.events.tsv", tmp_path / "est" / "song.events.tsv",
                              classes=list(detector.spec.classes))
    for key in ("tp", "fp", "fn", "f_measure"):
        assert report["micro"][key] == expected["micro"][key]
    # event files keep times to 0.1 ms
    assert report["micro"]["offset_mean_s"] == pytest.approx(expected["micro"]["offset_mean_s"], abs=1e-4)
    assert report["micro"]["tp"] > 50  # the example's hits are found: the comparison is not of two empty reports
