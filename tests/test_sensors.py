"""Tests for eventcount.sensors: CSV and .npy sensor files into uniformly sampled Signals."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest

from eventcount.config import SensorConfig
from eventcount.errors import EventcountError
from eventcount.recordings import read_npy
from eventcount.sensors import read_sensor_csv


def write(tmp_path: Path, text: str, name: str = "rec.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def table(times: np.ndarray, values: np.ndarray, header: str | None = None, delimiter: str = ",",
          time_format: str = "{:.9g}") -> str:
    lines = [header] if header is not None else []
    for t, row in zip(times, values, strict=True):
        lines.append(delimiter.join([time_format.format(t), *(f"{v:.9g}" for v in row)]))
    return "\n".join(lines) + "\n"


def uniform(n: int = 50, rate: float = 100.0, channels: int = 2) -> tuple[np.ndarray, np.ndarray]:
    times = np.arange(n) / rate
    return times, np.stack([np.sin(times * (j + 1)) + j for j in range(channels)], axis=1)


def error_text(path: Path | io.StringIO, options: SensorConfig | None = None, **kwargs: str) -> str:
    with pytest.raises(EventcountError) as caught:
        read_sensor_csv(path, options or SensorConfig(), **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------- good files


def test_header_with_time_column(tmp_path: Path) -> None:
    times, values = uniform()
    signal = read_sensor_csv(write(tmp_path, table(times, values, "time_s,ax,ay")))
    assert signal.rate == pytest.approx(100.0)
    assert signal.data.dtype == np.float32 and signal.data.shape == (50, 2)
    np.testing.assert_allclose(signal.data, values, atol=1e-6)
    assert signal.source.endswith("rec.csv")


def test_no_header_with_rate(tmp_path: Path) -> None:
    _, values = uniform(channels=3)
    path = write(tmp_path, "\n".join(",".join(f"{v:.9g}" for v in row) for row in values))
    signal = read_sensor_csv(path, SensorConfig(rate=250.0))
    assert signal.rate == 250.0
    np.testing.assert_allclose(signal.data, values, atol=1e-6)
    picked = read_sensor_csv(path, SensorConfig(rate=250.0, columns=["2", "0"]))
    np.testing.assert_allclose(picked.data, values[:, [2, 0]], atol=1e-6)


@pytest.mark.parametrize("unit, scale", [("s", 1.0), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)])
def test_time_units_from_option_and_from_name(tmp_path: Path, unit: str, scale: float) -> None:
    times, values = uniform(rate=50.0)
    stamps = 12.5 + times  # a clock that does not start at 0
    text = table(stamps * scale, values, header=None, time_format="{:.0f}" if unit == "ns" else "{:.9g}")
    by_option = read_sensor_csv(write(tmp_path, text), SensorConfig(time_column="0", time_unit=unit))
    named = read_sensor_csv(write(tmp_path, f"timestamp_{unit},x,y\n" + text, "named.csv"))
    for signal in (by_option, named):
        assert signal.rate == pytest.approx(50.0)
        assert signal.data.shape == (50, 2)
        np.testing.assert_allclose(signal.data, values, atol=1e-5)


def test_time_unit_in_brackets(tmp_path: Path) -> None:
    times, values = uniform(rate=20.0)
    signal = read_sensor_csv(write(tmp_path, table(times * 1e3, values, "Time (ms),x,y")))
    assert signal.rate == pytest.approx(20.0)


def test_epoch_nanoseconds_keep_their_precision(tmp_path: Path) -> None:
    stamps = 1_700_000_000_000_000_000 + np.arange(40) * 2_500_000  # 400 Hz
    values = np.arange(40.0)[:, None]
    text = "".join(f"{t},{v[0]:g}\n" for t, v in zip(stamps, values, strict=True))
    signal = read_sensor_csv(write(tmp_path, text), SensorConfig(time_column="0", time_unit="ns"))
    assert signal.rate == pytest.approx(400.0, rel=1e-6)
    np.testing.assert_allclose(signal.data[:, 0], values[:, 0], atol=1e-3)


def test_irregular_timestamps_are_resampled_from_the_first_timestamp(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stamps = 3.0 + np.cumsum(rng.uniform(0.002, 0.008, 800))  # ~200 Hz with jitter
    ramp, sine = 2.0 * stamps - 1.0, np.sin(2 * np.pi * 2.0 * stamps)
    path = write(tmp_path, table(stamps, np.stack([ramp, sine], axis=1), "t,ramp,sine"))
    signal = read_sensor_csv(path, SensorConfig(rate=100.0))
    assert signal.rate == 100.0
    grid = stamps[0] + np.arange(len(signal.data)) / 100.0
    assert grid[-1] <= stamps[-1] < grid[-1] + 0.01
    np.testing.assert_allclose(signal.data[:, 0], 2.0 * grid - 1.0, atol=1e-4)
    np.testing.assert_allclose(signal.data[:, 1], np.sin(2 * np.pi * 2.0 * grid), atol=5e-3)


def test_typical_rate_ignores_rounding_and_dropped_samples(tmp_path: Path) -> None:
    times = np.arange(2000) / 360.0
    keep = np.ones(len(times), bool)
    keep[100:103] = False  # three dropped samples
    text = table(times[keep], np.zeros((keep.sum(), 1)), "time_s,v", time_format="{:.6f}")
    signal = read_sensor_csv(write(tmp_path, text))
    assert signal.rate == pytest.approx(360.0, rel=1e-5)
    assert len(signal.data) == 2000


def test_magnitude(tmp_path: Path) -> None:
    times, values = uniform(channels=3)
    signal = read_sensor_csv(write(tmp_path, table(times, values, "time,x,y,z")),
                             SensorConfig(magnitude=True))
    assert signal.data.shape == (50, 1)
    np.testing.assert_allclose(signal.data[:, 0], np.linalg.norm(values, axis=1), rtol=1e-5)


def test_phone_format_filter_numeric_column(tmp_path: Path) -> None:
    """timestamp_ns, sensor type, ax, ay, az without a header, as phone loggers write it."""
    stamps = 263239144953734 + np.arange(60) * 5_035_400
    lines = [f"{t},{2 if k % 3 else 9},{k},{-k},1.5" for k, t in enumerate(stamps)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    options = SensorConfig(time_column="0", time_unit="ns", filter_column="1", filter_value="2")
    signal = read_sensor_csv(path, options)
    assert signal.data.shape[1] == 3  # the filter column is not a value column
    assert signal.rate == pytest.approx(1e9 / 5_035_400, rel=1e-3)
    kept = np.array([k for k in range(60) if k % 3])
    expected = np.interp(np.arange(len(signal.data)) / signal.rate, (kept - 1) * 5_035_400e-9, kept)
    np.testing.assert_allclose(signal.data[:, 0], expected, atol=1e-4)


def test_filter_text_column_with_quoted_header(tmp_path: Path) -> None:
    rows = ["time_s,\"sensor type\",value"]
    rows += [f"{k * 0.01:.2f},{'acc' if k % 2 == 0 else 'gyro'},{k}" for k in range(20)]
    path = write(tmp_path, "\n".join(rows))
    signal = read_sensor_csv(path, SensorConfig(filter_column="sensor type", filter_value="acc"))
    assert signal.rate == pytest.approx(50.0)
    np.testing.assert_allclose(signal.data[:, 0], np.arange(0, 20, 2), atol=1e-5)
    message = error_text(path, SensorConfig(filter_column="sensor type", filter_value="mag"))
    assert "no rows where column 'sensor type' equals 'mag'" in message and "'acc', 'gyro'" in message


@pytest.mark.parametrize("delimiter", ["\t", ";", " ", "   "])
def test_delimiters(tmp_path: Path, delimiter: str) -> None:
    times, values = uniform()
    header = delimiter.join(["time_s", "a", "b"])
    signal = read_sensor_csv(write(tmp_path, table(times, values, header, delimiter=delimiter)))
    np.testing.assert_allclose(signal.data, values, atol=1e-6)


def test_comments_blank_lines_crlf_and_stream(tmp_path: Path) -> None:
    text = "# exported by a logger\r\n\r\ntime_ms,v\r\n0,1\r\n# pause\r\n10,2 # note\r\n\r\n20,3\r\n"
    signal = read_sensor_csv(io.StringIO(text), source="stream.csv")
    assert signal.source == "stream.csv" and signal.rate == pytest.approx(100.0)
    np.testing.assert_allclose(signal.data[:, 0], [1, 2, 3])
    from_bytes = read_sensor_csv(io.BytesIO(("\ufeff" + text).encode()), source="b.csv")
    np.testing.assert_allclose(from_bytes.data, signal.data)


def test_default_columns_skip_text_and_empty_columns(tmp_path: Path) -> None:
    text = "time,label,x,\n0,walk,1,\n0.5,walk,2,\n1.0,run,3,\n"
    signal = read_sensor_csv(write(tmp_path, text))
    assert signal.data.shape == (3, 1)


def test_missing_values_are_interpolated_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    text = "t,x,y\n0,0,10\n1,,NA\n2,2,nan\n3,3,40\n4,,50\n"
    with caplog.at_level(logging.WARNING, logger="eventcount"):
        signal = read_sensor_csv(write(tmp_path, text))
    np.testing.assert_allclose(signal.data, [[0, 10], [1, 20], [2, 30], [3, 40], [3, 50]])
    assert "filled 4 missing value(s)" in caplog.text and "column 'x': 2" in caplog.text
    assert "rec.csv" in caplog.text


def test_missing_values_with_irregular_timestamps(tmp_path: Path) -> None:
    text = "t,x\n0,0\n0.1,\n0.4,4\n0.5,5\n"
    signal = read_sensor_csv(write(tmp_path, text), SensorConfig(rate=10.0))
    np.testing.assert_allclose(signal.data[:, 0], [0, 1, 2, 3, 4, 5], atol=1e-5)


def test_large_gap_within_limit_is_resampled(tmp_path: Path) -> None:
    text = "t,x\n0,0\n0.1,1\n0.9,9\n1.0,10\n"
    signal = read_sensor_csv(write(tmp_path, text))
    np.testing.assert_allclose(signal.data[:, 0], np.arange(11), atol=1e-5)


# ---------------------------------------------------------------------------------------------- bad files


STRICT = SensorConfig(strict_timestamps=True)


def test_strict_gap_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "time,x\n0,1\n0.01,1\n2.5,1\n2.51,1\n")
    message = error_text(path, STRICT)
    assert message.startswith(f"{path}, line 4:") and "jump by 2.49 s after line 3" in message
    assert "--max-gap" in message and "--time-unit" in message
    assert read_sensor_csv(path, SensorConfig(max_gap_s=3.0, strict_timestamps=True)).data.shape == (252, 1)


def test_strict_gap_in_declared_unit_has_no_unit_hint(tmp_path: Path) -> None:
    message = error_text(write(tmp_path, "time_ms,x\n0,1\n10,1\n5000,1\n"), STRICT)
    assert "line 4" in message and "--time-unit" not in message


def test_timestamps_in_a_unit_taken_for_seconds_are_not_read_as_gaps(tmp_path: Path) -> None:
    message = error_text(write(tmp_path, "stamp,x\n0,1\n10,1\n20,1\n30,1\n", "t.csv"),
                         SensorConfig(time_column="stamp"))
    assert "most steps between timestamps (3 of 3) are longer than the allowed gap of 1 s" in message
    assert "--time-unit" in message


def test_bad_cell_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "# comment\ntime_s,ax,ay\n0,1,2\n0.01,1,oops\n0.02,1,2\n")
    message = error_text(path)
    assert message.startswith(f"{path}, line 4, column 'ay': 'oops' is not a number")


def test_text_timestamp_is_explained(tmp_path: Path) -> None:
    message = error_text(write(tmp_path, "time,x\n2024-01-01T10:00:00,1\n2024-01-01T10:00:01,2\n"))
    assert "line 2, column 'time': '2024-01-01T10:00:00' is not a number" in message
    assert "timestamps must be numbers" in message


def test_text_in_numeric_filter_column_matches_nothing(tmp_path: Path) -> None:
    text = "t,kind,x\n0,3,0\n0.1,3,1\n0.15,gyro,99\n0.2,3,2\n"
    signal = read_sensor_csv(write(tmp_path, text), SensorConfig(filter_column="kind", filter_value="3.0"))
    np.testing.assert_allclose(signal.data[:, 0], [0, 1, 2], atol=1e-5)


def test_bad_cell_without_header(tmp_path: Path) -> None:
    message = error_text(write(tmp_path, "1,2\n3,x\n"), SensorConfig(rate=10.0))
    assert "line 2, column 1 (counting from 0): 'x'" in message


@pytest.mark.parametrize("text, line", [("t,x\n0,1\n0.2,1\n0.1,1\n", 4), ("t,x\n0,1\n0.1,1\n0.1,2\n", 4)])
def test_strict_decreasing_or_duplicate_timestamps(tmp_path: Path, text: str, line: int) -> None:
    message = error_text(write(tmp_path, text), STRICT)
    assert f"line {line}: timestamp" in message and f"on line {line - 1}" in message
    assert "must increase" in message


def test_missing_timestamp(tmp_path: Path) -> None:
    assert "line 3: the timestamp is missing" in error_text(write(tmp_path, "t,x\n0,1\n,2\n0.2,3\n"))


@pytest.mark.parametrize("text, expected", [
    ("", "no data rows"),
    ("# only a comment\n\n", "no data rows"),
    ("time_s,x\n", "no data rows"),
    ("time_s,x\n0,1\n", "only one data row (line 2)"),
])
def test_too_few_rows(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    message = error_text(path)
    assert message.startswith(str(path)) and expected in message


def test_empty_column(tmp_path: Path) -> None:
    message = error_text(write(tmp_path, "t,x,y\n0,1,\n1,2,\n"), SensorConfig(columns=["x", "y"]))
    assert "column 'y' has no values" in message


def test_unknown_column_lists_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "time_s,ax,ay\n0,1,2\n1,1,2\n")
    message = error_text(path, SensorConfig(columns=["az"]))
    assert "no column 'az'" in message and "'time_s', 'ax', 'ay'" in message
    headerless = error_text(write(tmp_path, "0,1\n1,2\n", "n.csv"), SensorConfig(columns=["5"], rate=1.0))
    assert "no column '5'" in headerless and "0 to 1" in headerless


def test_column_names_ignore_case(tmp_path: Path) -> None:
    path = write(tmp_path, "Time,AX\n0,1\n1,2\n")
    assert read_sensor_csv(path, SensorConfig(columns=["ax"], time_column="TIME")).data.shape == (2, 1)


def test_short_line(tmp_path: Path) -> None:
    message = error_text(write(tmp_path, "t,x,y\n0,1,2\n1,2\n2,3,4\n"))
    assert "line 3: 2 field(s) separated by commas, expected at least 3" in message


def test_infinite_value(tmp_path: Path) -> None:
    assert "line 3, column 'x': 'inf'" in error_text(write(tmp_path, "t,x\n0,1\n1,inf\n"))


def test_no_time_column_and_no_rate(tmp_path: Path) -> None:
    message = error_text(write(tmp_path, "a,b\n1,2\n3,4\n"))
    assert "no time column" in message and "--rate" in message and "'a', 'b'" in message


def test_missing_file_and_binary_file(tmp_path: Path) -> None:
    assert "cannot read the file" in error_text(tmp_path / "absent.csv")
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    assert "not a UTF-8 text file" in error_text(binary)


@pytest.mark.parametrize("options", [
    SensorConfig(time_unit="min"), SensorConfig(rate=0.0), SensorConfig(max_gap_s=0.0),
    SensorConfig(filter_column="x"), SensorConfig(delimiter="::"), SensorConfig(columns=[]),
])
def test_bad_options(tmp_path: Path, options: SensorConfig) -> None:
    error_text(write(tmp_path, "t,x\n0,1\n1,2\n"), options)


# ---------------------------------------------------------------------------------------------- npy


def test_npy_one_and_two_dimensional(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(10, dtype=np.int16))
    one = read_npy(tmp_path / "a.npy", 100.0)
    assert one.data.shape == (10, 1) and one.data.dtype == np.float32 and one.rate == 100.0
    np.save(tmp_path / "b.npy", np.ones((10, 3)))
    assert read_npy(tmp_path / "b.npy", 50).data.shape == (10, 3)


def test_npy_missing_values_filled(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    np.save(tmp_path / "a.npy", np.array([[0.0, np.nan], [np.nan, 1.0], [2.0, 2.0]]))
    with caplog.at_level(logging.WARNING, logger="eventcount"):
        signal = read_npy(tmp_path / "a.npy", 10.0)
    np.testing.assert_allclose(signal.data, [[0, 1], [1, 1], [2, 2]])
    assert "filled 2 missing value(s)" in caplog.text


@pytest.mark.parametrize("array, expected", [
    (np.zeros((2, 2, 2)), "expected [n_samples]"),
    (np.array(["a", "b"]), "real numbers"),
    (np.zeros(1), "fewer than two samples"),
    (np.zeros(0), "fewer than two samples"),
    (np.zeros((5, 0)), "no channel"),
    (np.array([1.0, np.inf]), "sample 1, channel 0 is infinite"),
    (np.array([[1.0, np.nan], [2.0, np.nan]]), "channel 1 has no values"),
])
def test_npy_errors(tmp_path: Path, array: np.ndarray, expected: str) -> None:
    np.save(tmp_path / "a.npy", array)
    with pytest.raises(EventcountError, match=expected.replace("[", r"\[")):
        read_npy(tmp_path / "a.npy", 10.0)


def test_npy_needs_a_rate_and_a_real_file(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros(5))
    with pytest.raises(EventcountError, match="give its sampling rate with --rate"):
        read_npy(tmp_path / "a.npy", None)
    (tmp_path / "b.npy").write_text("not numpy")
    with pytest.raises(EventcountError, match="b.npy: not a .npy array"):
        read_npy(tmp_path / "b.npy", 10.0)
    with pytest.raises(EventcountError, match="cannot read the file"):
        read_npy(tmp_path / "c.npy", 10.0)


def test_sensor_config_rejects_misspelled_keys_and_coerces_numbers(tmp_path: Path) -> None:
    from eventcount.config import FrontendConfig, from_dict, load_yaml

    path = write(tmp_path, "kind: sensor\nsensor:\n  colums: [2, 3]\n", "model.yaml")
    with pytest.raises(EventcountError, match=r"model\.yaml frontend sensor: unknown option\(s\) colums; known: "
                                              r"channels, columns, .*time_unit"):
        from_dict(FrontendConfig, load_yaml(path), f"{path} frontend")
    config = from_dict(FrontendConfig, {"sensor": {"columns": [2, 3], "time_column": 0, "filter_value": 4}})
    assert config.sensor == SensorConfig(columns=["2", "3"], time_column="0", filter_value="4")
    with pytest.raises(EventcountError, match="sensor options: unknown option"):
        SensorConfig().updated({"max_gap": 2.0})


def test_sensor_config_updated_keeps_what_is_not_given() -> None:
    stored = SensorConfig(columns=["2"], time_unit="ns", magnitude=True, channels=1)
    assert stored.updated({"time_unit": "ms"}) == SensorConfig(columns=["2"], time_unit="ms", magnitude=True)
    assert stored.updated(None) == stored and stored.updated(None) is not stored
    assert stored.updated(SensorConfig(rate=50.0)) == SensorConfig(rate=50.0)
