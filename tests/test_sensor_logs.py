"""Sensor logs as phones and wearables write them, through the shipped `steps` model end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eventcount.checkpoint import read_model_file
from eventcount.config import DetectSettings, SensorConfig
from eventcount.detection import Detector, detect_recording, write_detection
from eventcount.errors import EventcountError
from eventcount.recordings import read_signal

# events the `steps` model found in `walk_log()` before the sensor options became a typed SensorConfig
STEPS_BEFORE = [1.6598, 2.22, 2.7798, 3.3, 3.865, 4.4598, 5.0191, 5.5397, 6.0601, 6.6203, 7.2198, 7.7003, 8.3,
                8.8598, 9.4199, 9.9799, 10.5399, 11.0999, 11.6601, 12.2197, 12.78, 13.3, 13.8605, 14.4598, 14.98,
                15.539, 16.0603, 16.6594, 17.2199, 17.74, 18.3001, 18.86, 19.4212]
OXFORD = SensorConfig(columns=["2", "3", "4"], time_column="0", time_unit="ns", magnitude=True)  # the steps model's


def walk_log(seconds: float = 20.0, rate: float = 100.0, step_hz: float = 1.8, seed: int = 0) -> np.ndarray:
    """Rows (t_ns, ax, ay, az) of an accelerometer on a walker: a jolt at every step plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    steps = np.arange(1.0, seconds - 0.5, 1 / step_hz)
    steps = steps + rng.normal(0, 0.02, int(np.ceil((seconds - 1.5) * step_hz)))[: len(steps)]
    jolts = [6.0 * np.exp(-0.5 * ((t - s) / 0.04) ** 2) - 2.5 * np.exp(-0.5 * ((t - s - 0.15) / 0.08) ** 2)
             for s in steps]
    magnitude = 9.81 + sum(jolts)
    magnitude += rng.normal(0, 0.3, t.size)
    ax, ay = rng.normal(0, 0.2, t.size), rng.normal(0, 0.2, t.size)
    az = np.sqrt(np.maximum(magnitude ** 2 - ax ** 2 - ay ** 2, 0))
    return np.column_stack([1e9 + t * 1e9, ax, ay, az])


def write_log(path: Path, rows: np.ndarray, kinds: list[int] | None = None) -> Path:
    """Rows as the Oxford files hold them: t_ns, sensor type, ax, ay, az; no header."""
    kinds = kinds or [1] * len(rows)
    lines = [f"{int(r[0])},{k},{r[1]:.5f},{r[2]:.5f},{r[3]:.5f}\n" for r, k in zip(rows, kinds, strict=True)]
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module")
def steps() -> Detector:
    return Detector.load("steps")


def times(detector: Detector, path: Path, **sensor: object) -> list[float]:
    return [e.time_s for e in detect_recording(detector, path, DetectSettings(sensor=dict(sensor))).events]


def test_shipped_model_with_a_sensor_dict_loads_typed_and_detects_as_before(steps: Detector, tmp_path: Path) -> None:
    stored = read_model_file(Path(steps.info["path"]))["frontend"]["sensor"]
    assert isinstance(stored, dict)  # written before SensorConfig existed
    assert steps.spec.frontend.sensor == OXFORD
    found = times(steps, write_log(tmp_path / "walk.csv", walk_log()))
    np.testing.assert_allclose(found, STEPS_BEFORE, atol=1e-3)


def read(path: Path, **options: object):
    """The log read as the `steps` model reads it, with `options` on top."""
    return read_signal(path, sensor_options=OXFORD.updated(options))


def segment_events(detector: Detector, signal) -> list[float]:
    """Detection as `Signal`'s contract asks: each stretch between gaps on its own, times shifted by its start."""
    return [start + e.time_s for start, part in signal.segments() for e in detector.decode(detector.activations(part))]


def assert_repaired(steps: Detector, tmp_path: Path, caplog: pytest.LogCaptureFixture, messy_rows: np.ndarray,
                    warning: str) -> None:
    """The messy log gives one warning, the clean log's data exactly, and the clean log's events."""
    clean = write_log(tmp_path / "clean.csv", walk_log())
    messy = write_log(tmp_path / "messy.csv", messy_rows)
    with caplog.at_level("WARNING"):
        signal = read(messy)
        read(messy)  # a command may read a file twice (duration, then data): still one warning
    assert [r.getMessage() for r in caplog.records] == [f"{messy}: {warning}"]
    np.testing.assert_array_equal(signal.data, read(clean).data)
    assert times(steps, messy) == times(steps, clean) == segment_events(steps, signal)


def test_repeated_timestamps_are_merged_with_one_warning(steps: Detector, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    rows = walk_log()
    repeated = np.insert(rows, [100, 500, 501, 1700], rows[[99, 499, 500, 1699]], axis=0)  # batched duplicates
    assert_repaired(steps, tmp_path, caplog, repeated,
                    "merged 4 row(s) repeating the timestamp of the row before (values averaged)")
    averaged = rows.copy()
    averaged[1000, 1:] += 1.0
    pair = np.insert(averaged, 1001, rows[1000], axis=0)  # same time, different values: their mean is kept
    merged = read(write_log(tmp_path / "pair.csv", pair))
    assert merged.data.shape == (len(rows), 1)
    assert merged.data[1000, 0] == pytest.approx(np.linalg.norm(rows[1000, 1:] + 0.5), abs=1e-4)


def test_rows_slightly_out_of_order_are_sorted(steps: Detector, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    shuffled = walk_log()
    for k in (50, 900, 1500):  # a row written after the next two (20 ms late), as batched sensors do
        shuffled[[k, k + 1, k + 2]] = shuffled[[k + 1, k + 2, k]]
    assert_repaired(steps, tmp_path, caplog, shuffled, "sorted 3 row(s) that were out of order by up to 20 ms")


def test_badly_disordered_rows_are_an_error_naming_the_lines(tmp_path: Path) -> None:
    rows = walk_log()
    moved = np.insert(np.delete(rows, 100, axis=0), 400, rows[100], axis=0)  # 1 s late
    messy = write_log(tmp_path / "messy.csv", moved)
    with pytest.raises(EventcountError, match=r"messy\.csv, line 401: timestamp 2000000000 is 3 s before "
                                              r"5000000000 on line 400; rows more than 0\.1 s out of order"):
        read(messy)
    assert read(messy, max_disorder_s=5.0).data.shape == read(write_log(tmp_path / "c.csv", rows)).data.shape
    with pytest.raises(EventcountError, match=r"line 3: timestamp .* is not after .* on line 2; .*strict"):
        read(write_log(tmp_path / "dup.csv", np.insert(rows, 1, rows[1], axis=0)), strict_timestamps=True)


def test_a_long_gap_splits_the_recording_and_holds_no_event(steps: Detector, tmp_path: Path) -> None:
    rows = walk_log(seconds=30.0)
    before, after = rows[:1000], rows[1300:]  # the phone stopped sampling from 10 s to 13 s
    with_gap = write_log(tmp_path / "gap.csv", np.concatenate([before, after]))
    signal = read(with_gap)
    assert signal.gaps == [pytest.approx((9.99, 13.0))]
    (first_start, first), (second_start, second) = signal.segments()
    assert (first_start, second_start) == (0.0, pytest.approx(13.0))
    np.testing.assert_array_equal(first.data, read(write_log(tmp_path / "a.csv", before)).data)
    np.testing.assert_allclose(second.data, read(write_log(tmp_path / "b.csv", after)).data, atol=1e-5)
    found = segment_events(steps, signal)
    parts = times(steps, tmp_path / "a.csv") + [13.0 + t for t in times(steps, tmp_path / "b.csv")]
    np.testing.assert_allclose(found, parts, atol=1e-9)
    assert not any(signal.in_gap(t) for t in found) and len(found) > 40
    assert times(steps, with_gap) == pytest.approx(parts, abs=1e-9)  # what detect does: stretch by stretch
    detection = detect_recording(steps, with_gap)
    assert detection.gaps == signal.gaps
    assert not detection.probabilities[1000:1300].any()  # nothing was looked for inside the gap
    write_detection(detection, tmp_path / "gap.events.tsv")
    assert (tmp_path / "gap.events.tsv").read_text().startswith("# gap\t9.9900\t13.0000\n")
    with pytest.raises(EventcountError, match=r"gap\.csv, line 1001: the timestamps jump by 3\.01 s after line "
                                              r"1000, more than the allowed gap of 1 s"):
        read(with_gap, strict_timestamps=True)
    assert read(with_gap, max_gap_s=5.0).gaps == []


def test_two_interleaved_sensors_choose_one_by_a_column(steps: Detector, tmp_path: Path) -> None:
    rows = walk_log()
    gyro = rows.copy()
    gyro[:, 0] += 3e6  # its own clock, 3 ms after the accelerometer's
    gyro[:, 1:] *= 0.01
    both = np.empty((2 * len(rows), 4))
    both[0::2], both[1::2] = rows, gyro
    kinds = [1, 4] * len(rows)
    clean = write_log(tmp_path / "clean.csv", rows)
    mixed = write_log(tmp_path / "mixed.csv", both, kinds)
    signal = read(mixed, filter_column="1", filter_value="1")
    np.testing.assert_array_equal(signal.data, read(clean).data)
    assert times(steps, mixed, filter_column="1", filter_value="1") == times(steps, clean)


def test_cli_chooses_an_interleaved_sensor_and_keeps_strict_behaviour_on_request(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from eventcount.cli import app

    rows = walk_log()
    clean = write_log(tmp_path / "clean.csv", rows)
    both = np.repeat(rows, 2, axis=0)
    both[1::2, 0] += 3e6
    mixed = write_log(tmp_path / "mixed.csv", both, [1, 4] * len(rows))
    runner = CliRunner()
    expected = runner.invoke(app, ["detect", str(clean), "-m", "steps"])
    chosen = runner.invoke(app, ["detect", str(mixed), "-m", "steps", "--filter-column", "1", "--filter-value", "1"])
    assert expected.exit_code == chosen.exit_code == 0
    assert chosen.stdout == expected.stdout and expected.stdout.count("step") == len(STEPS_BEFORE)
    repeated = write_log(tmp_path / "repeated.csv", np.insert(rows, 10, rows[10], axis=0))
    strict = runner.invoke(app, ["detect", str(repeated), "-m", "steps", "--strict-timestamps"])
    assert strict.exit_code == 1
    assert "repeated.csv, line 12: timestamp 1100000000 is not after 1100000000 on line 11" in strict.output
    assert runner.invoke(app, ["detect", str(repeated), "-m", "steps"]).stdout == expected.stdout
