"""`listen` without a sound card: a fake input stream plays a generated signal; missing pieces are one-line errors."""

from __future__ import annotations

import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import require
from typer.testing import CliRunner

from eventcount.cli import app
from eventcount.detection import Detector, detect_recording
from eventcount.errors import EventcountError
from eventcount.listen import choose_device, listen
from eventcount.synthetic import synthetic_recording

runner = CliRunner()


class FakeInputStream:
    """`sounddevice.InputStream`'s interface: calls `callback(indata [n, channels], frames, time, status)` from
    its own thread with blocks of a signal (then silence), at real-time pace when `pace` is set."""

    signal = np.zeros(0, np.float32)
    pace = False
    opened: list[dict] = []

    def __init__(self, samplerate: float, channels: int, blocksize: int, dtype: str, device, callback) -> None:
        FakeInputStream.opened.append({"samplerate": samplerate, "channels": channels, "device": device})
        self.rate, self.channels, self.blocksize, self.callback = samplerate, channels, blocksize, callback
        self.running = threading.Event()
        self.thread = threading.Thread(target=self._play, daemon=True)

    def _play(self) -> None:
        start, position = time.monotonic(), 0
        while self.running.is_set():
            block = self.signal[position:position + self.blocksize]
            block = np.pad(block, (0, self.blocksize - len(block)))
            self.callback(np.repeat(block[:, None], self.channels, axis=1), self.blocksize, None, None)
            position += self.blocksize
            if self.pace:
                time.sleep(max(0.0, start + position / self.rate - time.monotonic()))
            elif position > len(self.signal) + self.rate:
                time.sleep(0.001)  # silence after the signal: no need to hurry

    def __enter__(self) -> FakeInputStream:
        self.running.set()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running.clear()
        self.thread.join()


@pytest.fixture
def tiny(tiny_model: Path) -> Detector:
    return Detector.load(tiny_model)


def clip(path: Path, rate: int, duration_s: float = 1.5) -> np.ndarray:
    audio, _ = synthetic_recording(duration_s, rate, 5, rate_hz=4)
    sf.write(path, audio, rate, subtype="FLOAT")
    return audio


@pytest.mark.parametrize("rate", [16000, 44100])
def test_listen_gives_the_events_of_the_same_recording(tiny: Detector, tmp_path: Path, rate: int) -> None:
    FakeInputStream.signal = clip(tmp_path / "clip.wav", rate)
    found: list = []
    heard = listen(tiny, found.extend, device="fake", duration_s=1.5, sample_rate=rate, input_stream=FakeInputStream)
    expected = detect_recording(tiny, tmp_path / "clip.wav").events
    assert expected and heard.device == "fake" and heard.stream.duration_s == pytest.approx(1.5)
    assert [e.label for e in found] == [e.label for e in expected]
    assert np.allclose([e.time_s for e in found], [e.time_s for e in expected], atol=1e-3)


def test_listen_stops_when_asked_and_flushes(tiny: Detector, tmp_path: Path) -> None:
    FakeInputStream.signal, FakeInputStream.pace = clip(tmp_path / "clip.wav", 16000, 0.6), True
    stop, found, starts = threading.Event(), [], []
    threading.Timer(1.0, stop.set).start()
    try:
        heard = listen(tiny, found.extend, input_stream=FakeInputStream, stop=stop,
                       on_start=lambda name, stream: starts.append(name))
    finally:
        FakeInputStream.pace = False
    assert starts == ["input"] and 0.5 < heard.stream.duration_s < 3
    assert heard.stream.finished


def fake_sounddevice(devices: list[dict], default: int = -1) -> types.ModuleType:
    module = types.ModuleType("sounddevice")
    module.query_devices = lambda: devices
    module.default = types.SimpleNamespace(device=[default, -1])
    module.InputStream = FakeInputStream

    def check_input_settings(device, samplerate, channels, dtype):
        if samplerate != devices[device]["default_samplerate"]:
            raise ValueError("Invalid sample rate")

    module.check_input_settings = check_input_settings
    return module


MICS = [{"name": "Speakers", "max_input_channels": 0, "default_samplerate": 48000.0},
        {"name": "USB Mic", "max_input_channels": 1, "default_samplerate": 16000.0},
        {"name": "Line In", "max_input_channels": 2, "default_samplerate": 44100.0}]


def test_choose_device_by_index_name_and_default() -> None:
    sd = fake_sounddevice(MICS, default=2)
    assert choose_device(None, sd).name == "Line In"
    assert choose_device("1", sd).name == "USB Mic"
    assert choose_device("usb", sd).index == 1
    with pytest.raises(EventcountError, match="no input device matches --device 'Speakers'.*1: USB Mic"):
        choose_device("Speakers", sd)


def test_cli_listen_shows_and_writes_events(tiny_model: Path, tmp_path: Path, monkeypatch) -> None:
    FakeInputStream.signal, FakeInputStream.opened = clip(tmp_path / "clip.wav", 44100), []
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(MICS, default=1))
    target = tmp_path / "live.events.tsv"
    result = runner.invoke(app, ["listen", "-m", str(tiny_model), "--device", "Line", "--duration", "1.5s",
                                 "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert FakeInputStream.opened[-1] == {"samplerate": 44100.0, "channels": 1, "device": 2}  # not 16 kHz: not offered
    assert "listening on Line In at 44100 Hz" in result.output
    lines = target.read_text().splitlines()
    assert lines[0].startswith("# time_s") and len(lines) > 2
    assert lines[1].split("\t")[1] in result.output
    listed = runner.invoke(app, ["listen", "--list-devices"])
    assert "1: USB Mic" in listed.output and "(default)" in listed.output and "Speakers" not in listed.output


def assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2  # rich may wrap once
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, text


def test_listen_without_an_input_device_is_one_line(tiny_model: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(MICS[:1]))
    assert_one_line_error(runner.invoke(app, ["listen", "-m", str(tiny_model)]), "no audio input device")


def test_listen_without_sounddevice_says_what_to_install(tiny_model: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as if not installed
    assert_one_line_error(runner.invoke(app, ["listen", "-m", str(tiny_model)]), 'pip install "eventcount[listen]"')


def test_real_sounddevice_without_a_microphone(tiny_model: Path) -> None:
    """What CI has: sounddevice and PortAudio installed, no sound card."""
    sd = require("sounddevice")  # the `listen` extra (CI has it, with PortAudio)
    if any(d["max_input_channels"] > 0 for d in sd.query_devices()):
        pytest.skip("this machine has an input device")
    assert_one_line_error(runner.invoke(app, ["listen", "-m", str(tiny_model)]), "no audio input device")


def test_listen_refuses_sensor_models() -> None:
    with pytest.raises(EventcountError, match="sensor"):
        listen(Detector.load("steps"), print, input_stream=FakeInputStream)

