"""Sensor logs as phones and wearables write them, through the shipped `steps` model end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eventcount.checkpoint import read_model_file
from eventcount.config import SensorConfig
from eventcount.detection import Detector, detect_recording

# events the `steps` model found in `walk_log()` before the sensor options became a typed SensorConfig
STEPS_BEFORE = [1.6598, 2.22, 2.7798, 3.3, 3.865, 4.4598, 5.0191, 5.5397, 6.0601, 6.6203, 7.2198, 7.7003, 8.3,
                8.8598, 9.4199, 9.9799, 10.5399, 11.0999, 11.6601, 12.2197, 12.78, 13.3, 13.8605, 14.4598, 14.98,
                15.539, 16.0603, 16.6594, 17.2199, 17.74, 18.3001, 18.86, 19.4212]


def walk_log(seconds: float = 20.0, rate: float = 100.0, step_hz: float = 1.8, seed: int = 0) -> np.ndarray:
    """Rows (t_ns, ax, ay, az) of an accelerometer on a walker: a jolt at every step plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    steps = np.arange(1.0, seconds - 0.5, 1 / step_hz)
    steps = steps + rng.normal(0, 0.02, int(np.ceil((seconds - 1.5) * step_hz)))[: len(steps)]
    magnitude = 9.81 + sum(6.0 * np.exp(-0.5 * ((t - s) / 0.04) ** 2) - 2.5 * np.exp(-0.5 * ((t - s - 0.15) / 0.08) ** 2)
                           for s in steps)
    magnitude += rng.normal(0, 0.3, t.size)
    ax, ay = rng.normal(0, 0.2, t.size), rng.normal(0, 0.2, t.size)
    az = np.sqrt(np.maximum(magnitude ** 2 - ax ** 2 - ay ** 2, 0))
    return np.column_stack([1e9 + t * 1e9, ax, ay, az])


def write_log(path: Path, rows: np.ndarray, kinds: list[int] | None = None) -> Path:
    """Rows as the Oxford files hold them: t_ns, sensor type, ax, ay, az; no header."""
    kinds = kinds or [1] * len(rows)
    path.write_text("".join(f"{int(r[0])},{k},{r[1]:.5f},{r[2]:.5f},{r[3]:.5f}\n" for r, k in zip(rows, kinds)))
    return path


@pytest.fixture(scope="module")
def steps() -> Detector:
    return Detector.load("steps")


def times(detector: Detector, path: Path, **sensor: object) -> list[float]:
    from eventcount.detection import DetectSettings

    return [e.time_s for e in detect_recording(detector, path, DetectSettings(sensor=dict(sensor))).events]


def test_shipped_model_with_a_sensor_dict_loads_typed_and_detects_as_before(steps: Detector, tmp_path: Path) -> None:
    stored = read_model_file(Path(steps.info["path"]))["frontend"]["sensor"]
    assert isinstance(stored, dict)  # written before SensorConfig existed
    assert steps.spec.frontend.sensor == SensorConfig(columns=["2", "3", "4"], time_column="0", time_unit="ns",
                                                      magnitude=True, channels=1)
    found = times(steps, write_log(tmp_path / "walk.csv", walk_log()))
    np.testing.assert_allclose(found, STEPS_BEFORE, atol=1e-3)
