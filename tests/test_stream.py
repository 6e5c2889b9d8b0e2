"""Streaming detection: events from a stream equal `detect_recording`'s on the same file, whatever the blocks."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from typer.testing import CliRunner

from eventcount.cli import app
from eventcount.config import DecodeConfig, DetectSettings
from eventcount.decode import StreamDecoder, pick_events
from eventcount.detection import Detector, Resampler, detect_recording
from eventcount.errors import EventcountError
from eventcount.stream import EventSink, run_stream
from eventcount.stream_input import open_pcm_stream
from eventcount.synthetic import synthetic_recording

runner = CliRunner()


def feed(detector: Detector, data: np.ndarray, rate: float, block: int, settings=None) -> list:
    """All events of a stream fed `data` [n, channels] in blocks of `block` samples, in the order given."""
    stream = detector.stream(rate, data.shape[1], settings)
    events = []
    for start in range(0, len(data), block):
        events += stream.feed(data[start:start + block])
    return events + stream.finish()


def assert_same_events(found: list, expected: list) -> None:
    """Same classes in the same order, times within 1 ms, confidences to float rounding."""
    assert [e.label for e in found] == [e.label for e in expected]
    for a, b in zip(found, expected, strict=True):
        assert abs(a.time_s - b.time_s) < 1e-3
        assert a.confidence == pytest.approx(b.confidence, abs=1e-5)


def write_clip(path: Path, rate: int, duration_s: float, channels: int = 1, seed: int = 3) -> np.ndarray:
    """A generated drum-like clip written as 16-bit WAV; returns the samples as soundfile reads them back."""
    audio, _ = synthetic_recording(duration_s, rate, seed, rate_hz=4)
    if channels == 2:
        audio = np.stack([audio, 0.5 * audio[::-1]], axis=1)
    sf.write(path, audio, rate, subtype="PCM_16")
    return sf.read(path, dtype="float32", always_2d=True)[0]


# ---------------------------------------------------------------------------------------------- decoder


@pytest.mark.parametrize("seed", range(4))
def test_stream_decoder_equals_pick_events_in_any_chunks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c"]
    for _ in range(60):
        probs = rng.random((int(rng.integers(1, 150)), 3)) ** int(rng.integers(1, 8))
        if rng.random() < 0.3:
            probs = np.round(probs, 1)  # ties between neighbours
        config = DecodeConfig(threshold=float(rng.uniform(0.1, 1.5)), lag_s=float(rng.choice([0.0, 0.02, -0.03])),
                              min_distance_s=float(rng.choice([0.0, 0.01, 0.03, 0.08])))
        delay = int(rng.integers(0, 7))
        decoder, found, start = StreamDecoder(100.0, classes, config, delay), [], 0
        while start < len(probs):
            size = int(rng.integers(0, 5))
            found += decoder.push(probs[start:start + size])
            start += size
        assert found + decoder.finish() == pick_events(probs, 100.0, classes, config, delay)


def test_stream_decoder_decides_min_distance_frames_after_a_peak() -> None:
    probs = np.zeros((40, 1))
    probs[10, 0] = 0.9
    decoder = StreamDecoder(100.0, ["x"], DecodeConfig(threshold=0.5, min_distance_s=0.03))
    assert decoder.push(probs[:13]) == []  # frames 0..12: the peak at 10 may still give way to one at 11 or 12
    events = decoder.push(probs[13:14])
    assert [e.time_s for e in events] == pytest.approx([0.105])


# ---------------------------------------------------------------------------------------------- resampler


@pytest.mark.parametrize(("rate", "new_rate"), [(44100, 32000), (8000, 32000), (48000, 16000), (200, 200), (150, 200)])
@pytest.mark.parametrize("block", [1, 7, 333, 4097])
def test_resampler_equals_whole_signal_resampling(rate: int, new_rate: int, block: int) -> None:
    signal = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3001)).astype(np.float32))
    resampler = Resampler(rate, new_rate)
    pieces = [resampler.push(signal[:, i:i + block].numpy()) for i in range(0, signal.shape[1], block)]
    joined = torch.cat([*pieces, resampler.flush()], dim=1)
    whole = signal if rate == new_rate else AF.resample(signal, rate, new_rate)
    assert torch.equal(joined, whole)


# ---------------------------------------------------------------------------------------------- detector


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Detector:
    from eventcount.checkpoint import save_model
    from eventcount.config import ModelSpec, NetworkConfig
    from eventcount.features import n_features
    from eventcount.network import CRNN

    torch.manual_seed(0)
    spec = ModelSpec(classes=["low", "mid", "high"], network=NetworkConfig(conv_channels=[4], rnn_hidden=8))
    spec.decode.threshold = 0.3
    model = CRNN(n_features(spec.frontend), 3, spec.network)
    with torch.no_grad():
        model.head.bias.fill_(-1.0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(path, model, spec, n_features(spec.frontend), {"data": "random init"})
    return Detector.load(path)


@pytest.mark.parametrize("block", [1, 7, 333, 4097, 22050])
def test_tiny_model_stream_equals_file(tiny: Detector, tmp_path: Path, block: int) -> None:
    data = write_clip(tmp_path / "clip.wav", 22050, 0.6 if block == 1 else 1.5, channels=2)
    expected = detect_recording(tiny, tmp_path / "clip.wav").events
    assert len(expected) > 3
    assert_same_events(feed(tiny, data, 22050, block), expected)


@pytest.fixture(scope="module")
def drums() -> Detector:
    return Detector.load("drums")


@pytest.mark.slow
@pytest.mark.parametrize(("rate", "channels", "duration_s", "block"),
                         [(44100, 2, 2.0, 333), (44100, 2, 2.0, 4097), (44100, 2, 2.0, 44100), (8000, 1, 0.5, 1),
                          (8000, 1, 1.0, 7)])
def test_drum_model_stream_equals_file(drums: Detector, tmp_path: Path, rate: int, channels: int,
                                       duration_s: float, block: int) -> None:
    data = write_clip(tmp_path / "clip.wav", rate, duration_s, channels)
    expected = detect_recording(drums, tmp_path / "clip.wav").events
    assert expected
    assert_same_events(feed(drums, data, rate, block), expected)


def test_stream_keeps_min_confidence_and_refuses_tta(tiny: Detector, tmp_path: Path) -> None:
    data = write_clip(tmp_path / "clip.wav", 16000, 1.0)
    settings = DetectSettings(min_confidence=0.6)
    expected = detect_recording(tiny, tmp_path / "clip.wav", settings).events
    assert_same_events(feed(tiny, data, 16000, 500, settings), expected)
    with pytest.raises(EventcountError, match="tta"):
        tiny.stream(16000, 1, DetectSettings(tta=3))


def test_stream_rejects_blocks_of_the_wrong_shape_and_nan(tiny: Detector) -> None:
    stream = tiny.stream(16000, 2)
    with pytest.raises(EventcountError, match=r"\[n, 2\]"):
        stream.feed(np.zeros((10, 3)))
    with pytest.raises(EventcountError, match="sample 5 .* NaN"):
        stream.feed(np.r_[np.zeros(5), np.nan, np.zeros(4)].repeat(2).reshape(10, 2))


def test_ctrl_c_ends_the_input_and_flushes_the_final_events(tiny: Detector, tmp_path: Path) -> None:
    data = write_clip(tmp_path / "clip.wav", 16000, 1.0)
    expected = feed(tiny, data, 16000, 1600)

    def blocks():
        yield from (data[i:i + 1600] for i in range(0, len(data), 1600))
        raise KeyboardInterrupt

    found: list = []
    assert run_stream(tiny.stream(16000), blocks(), found.extend) is True
    assert found == expected


# ---------------------------------------------------------------------------------------------- standard input


def wav_stream(data: np.ndarray, rate: int, size_field: int, extra_chunk: bool = True) -> bytes:
    """A 16-bit WAV stream as a pipe writer makes it: RIFF and data sizes `size_field` (0 or 0xFFFFFFFF)."""
    pcm = np.clip(np.round(data * 32768), -32768, 32767).astype("<i2").tobytes()
    channels = data.shape[1]
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:
        chunks += b"LIST" + struct.pack("<I", 5) + b"abcde\x00"  # odd length: padded to even
    return b"RIFF" + struct.pack("<I", size_field) + b"WAVE" + chunks + b"data" + struct.pack("<I", size_field) + pcm


@pytest.mark.parametrize("size_field", [0, 0xFFFFFFFF])
def test_wav_stream_of_unknown_length_reads_as_the_file(tmp_path: Path, size_field: int) -> None:
    data = write_clip(tmp_path / "clip.wav", 16000, 0.5, channels=2)
    layout, blocks = open_pcm_stream(io.BytesIO(wav_stream(data, 16000, size_field)), "stdin")
    assert (layout.rate, layout.channels) == (16000, 2)
    assert np.array_equal(np.concatenate(list(blocks)), data)


@pytest.mark.parametrize(("sample_format", "dtype", "scale"), [("s16le", "<i2", 2 ** 15), ("s32le", "<i4", 2 ** 31),
                                                               ("f32le", "<f4", 1)])
def test_raw_pcm_reads_as_the_file(tmp_path: Path, sample_format: str, dtype: str, scale: int) -> None:
    data = write_clip(tmp_path / "clip.wav", 16000, 0.3, channels=2)
    raw = (data.astype(np.float64) * scale).astype(dtype).tobytes()
    layout, blocks = open_pcm_stream(io.BytesIO(raw), "stdin", 16000, 2, sample_format)
    assert np.array_equal(np.concatenate(list(blocks)), data)


def test_not_a_wav_stream_says_what_to_give() -> None:
    with pytest.raises(EventcountError, match="not a WAV stream.*--sample-format"):
        open_pcm_stream(io.BytesIO(b"hello world, no header"), "standard input")


def detect_cli(*args: str, stdin: bytes = b""):
    return runner.invoke(app, ["detect", *map(str, args)], input=stdin)


@pytest.mark.parametrize("size_field", [0, 0xFFFFFFFF])
def test_detect_dash_prints_what_detect_file_prints(tiny: Detector, tmp_path: Path, size_field: int) -> None:
    data = write_clip(tmp_path / "clip.wav", 22050, 1.0, channels=2)
    model = tiny.info["path"]
    whole = detect_cli(tmp_path / "clip.wav", "-m", model)
    streamed = detect_cli("-", "-m", model, stdin=wav_stream(data, 22050, size_field))
    assert whole.exit_code == 0 and streamed.exit_code == 0, streamed.output
    assert streamed.stdout == whole.stdout and whole.stdout.count("\n") > 3


def test_detect_dash_raw_pcm_and_csv(tiny: Detector, tmp_path: Path) -> None:
    data = write_clip(tmp_path / "clip.wav", 16000, 1.0)
    model = tiny.info["path"]
    whole = detect_cli(tmp_path / "clip.wav", "-m", model, "--format", "csv")
    raw = (data * 2 ** 15).astype("<i2").tobytes()
    streamed = detect_cli("-", "-m", model, "--format", "csv", "--rate", "16000", "--sample-format", "s16le",
                          stdin=raw)
    assert streamed.exit_code == 0, streamed.output
    assert streamed.stdout == whole.stdout


def test_detect_dash_whole_list_formats_need_a_file(tiny: Detector, tmp_path: Path) -> None:
    data = write_clip(tmp_path / "clip.wav", 16000, 1.0)
    model = tiny.info["path"]
    refused = detect_cli("-", "-m", model, "--format", "jams", stdin=wav_stream(data, 16000, 0))
    assert refused.exit_code == 1 and "-o FILE" in refused.output and "Traceback" not in refused.output
    written = detect_cli("-", "-m", model, "--format", "jams", "-o", tmp_path / "out.jams",
                         stdin=wav_stream(data, 16000, 0))
    assert written.exit_code == 0, written.output
    whole = detect_cli(tmp_path / "clip.wav", "-m", model, "--format", "jams", "-o", tmp_path / "whole.jams")
    assert whole.exit_code == 0
    assert (tmp_path / "out.jams").read_text() == (tmp_path / "whole.jams").read_text()


def test_detect_dash_bad_streams_are_one_line_errors(tiny: Detector) -> None:
    model = tiny.info["path"]
    for stdin, needle in ((b"", "not a WAV stream"), (b"RIFF\0\0\0\0WAVEdata\0\0\0\0", "no 'fmt ' chunk"),
                          (wav_stream(np.zeros((0, 1)), 16000, 0), "contains no samples")):
        result = detect_cli("-", "-m", model, stdin=stdin)
        assert result.exit_code == 1, result.output
        assert needle in result.output and "Traceback" not in result.output


def test_event_sink_appends_lines_to_a_file(tmp_path: Path) -> None:
    from eventcount.annotations import Event

    target = tmp_path / "live.events.tsv"
    sink = EventSink("tsv", target)
    sink.write([Event(0.5, "KD", 0.9)])
    assert target.read_text() == "# time_s\tlabel\tconfidence\n0.5000\tKD\t0.900\n"  # flushed at once
    sink.close()
    with pytest.raises(EventcountError, match="exists"):
        EventSink("tsv", target)


def test_detect_dash_that_fails_leaves_no_file(tiny: Detector, tmp_path: Path) -> None:
    target = tmp_path / "out.events.tsv"
    result = detect_cli("-", "-m", tiny.info["path"], "-o", target, stdin=b"not audio")
    assert result.exit_code == 1 and "not a WAV stream" in result.output
    assert not target.exists()
    data = write_clip(tmp_path / "clip.wav", 16000, 0.5)
    written = detect_cli("-", "-m", tiny.info["path"], "-o", target, stdin=wav_stream(data, 16000, 0))
    assert written.exit_code == 0 and written.stdout == ""
    assert target.read_text() == detect_cli(tmp_path / "clip.wav", "-m", tiny.info["path"]).stdout


# ---------------------------------------------------------------------------------------------- sensors


def walk_csv(path: Path, seconds: float = 25.0, seed: int = 1, missing_every: int = 97) -> str:
    """A phone-like accelerometer log: irregular nanosecond timestamps, steps as bumps, some empty cells."""
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(0.008, 0.012, int(seconds * 100)))
    times -= times[0]
    bumps = sum(np.exp(-((times - s) / 0.05) ** 2) for s in np.arange(0.5, times[-1], 0.55))
    noise = 0.3 * rng.standard_normal((len(times), 3))
    xyz = noise + np.stack([0 * times, 0 * times, 9.8 + 6 * bumps], axis=1)
    lines = ["ts,idx,x,y,z"]
    for i, t in enumerate(times):
        cells = [f"{v:.5f}" for v in xyz[i]]
        if missing_every and i % missing_every == 5:
            cells[1] = ""
        lines.append(f"{1_700_000_000_000_000_000 + int(t * 1e9)},{i}," + ",".join(cells))
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


class Trickle(io.BytesIO):
    """A pipe that hands over at most `chunk` bytes per read."""

    def __init__(self, data: bytes, chunk: int) -> None:
        super().__init__(data)
        self.chunk = chunk

    def read1(self, size: int = -1) -> bytes:
        return super().read(min(self.chunk, size if size > 0 else self.chunk))


@pytest.mark.parametrize("chunk", [1, 333, 1 << 20])
@pytest.mark.parametrize("rate", [200, 150])
def test_sensor_grid_equals_the_file_reader(tmp_path: Path, chunk: int, rate: float) -> None:
    from eventcount.config import SensorConfig
    from eventcount.recordings import read_signal
    from eventcount.sensor_stream import CsvGrid, csv_blocks

    text = walk_csv(tmp_path / "walk.csv", seconds=4.0)
    options = SensorConfig(columns=["2", "3", "4"], time_column="0", time_unit="ns", rate=rate)
    grid = CsvGrid(options, rate)
    streamed = np.concatenate([b for b in csv_blocks(Trickle(text.encode(), chunk), grid) if b.size])
    assert np.array_equal(streamed, read_signal(tmp_path / "walk.csv", sensor_options=options).data)


@pytest.mark.parametrize("chunk", [1, 4097, 1 << 20])
@pytest.mark.parametrize("rate", [200, 150])
def test_step_model_stream_equals_detect_file(tmp_path: Path, chunk: int, rate: float) -> None:
    from eventcount.stream import detect_pipe

    steps = Detector.load("steps")
    text = walk_csv(tmp_path / "walk.csv")
    settings = DetectSettings(sensor={"rate": rate})
    expected = detect_recording(steps, tmp_path / "walk.csv", settings).events
    assert len(expected) > 20
    out = io.StringIO()
    detect_pipe(steps, Trickle(text.encode(), chunk), EventSink("tsv", out=out), settings)
    from eventcount.writers import to_tsv

    assert out.getvalue() == to_tsv(expected)


def test_sensor_stream_needs_the_model_channels() -> None:
    with pytest.raises(EventcountError, match="reads 1 sensor channel.*has 3.*--magnitude"):
        Detector.load("steps").stream(200, 3)


def test_sensor_stream_errors_name_the_line(tmp_path: Path) -> None:
    from eventcount.config import SensorConfig
    from eventcount.sensor_stream import CsvGrid, csv_blocks

    options = SensorConfig(time_column="t", rate=100)
    text = "t,x\n" + "".join(f"{i / 100},{i}\n" for i in range(30)) + "0.1,5\n"
    with pytest.raises(EventcountError, match="line 32: timestamp 0.1 is not after"):
        list(csv_blocks(io.BytesIO(text.encode()), CsvGrid(options, 100)))
    gappy = SensorConfig(time_column="t", max_gap_s=0.5)
    rows = [f"{i / 100},{i}\n" for i in range(30)] + ["0.9,1\n"]
    with pytest.raises(EventcountError, match="line 32: timestamp 0.9 comes 0.61 s after .* --max-gap 0.5 s"):
        list(csv_blocks(io.BytesIO(("t,x\n" + "".join(rows)).encode()), CsvGrid(gappy, 100)))
    assert sum(map(len, csv_blocks(io.BytesIO(("t,x\n" + "".join(rows[:30])).encode()), CsvGrid(gappy, 100)))) == 30
    with pytest.raises(EventcountError, match="line 3, column 'x': 'abc' is not a number"):
        list(csv_blocks(io.BytesIO(b"t,x\n0,1\n0.01,abc\n" + b"".join(b"%d,1\n" % i for i in range(1, 30))),
                        CsvGrid(options, 100)))


@pytest.mark.slow
def test_ctrl_c_on_detect_dash_flushes_and_exits_0(tiny: Detector, tmp_path: Path) -> None:
    """A real SIGINT to `eventcount detect -` while it waits for more audio: the events of what it heard,
    as `detect FILE` gives them for that audio, and exit status 0."""
    import fcntl
    import os
    import signal
    import subprocess
    import sys
    import termios
    import time

    data = write_clip(tmp_path / "clip.wav", 16000, 1.0)
    model = str(tiny.info["path"])
    expected = detect_cli(tmp_path / "clip.wav", "-m", model).stdout
    child = subprocess.Popen([sys.executable, "-m", "eventcount", "detect", "-", "-m", model],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdin.write(wav_stream(data, 16000, 0xFFFFFFFF))
    child.stdin.flush()
    deadline = time.monotonic() + 120
    while struct.unpack("i", fcntl.ioctl(child.stdin.fileno(), termios.FIONREAD, b"\0" * 4))[0]:
        assert time.monotonic() < deadline, "the detector never read its input"
        time.sleep(0.05)
    time.sleep(1.0)  # it has read everything and waits for more
    os.kill(child.pid, signal.SIGINT)
    out, errors = child.communicate(timeout=60)
    assert child.returncode == 0, errors.decode()
    assert out.decode() == expected and "Traceback" not in errors.decode()
