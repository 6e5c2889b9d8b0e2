"""Live detection from a microphone: an input stream (sounddevice / PortAudio) feeding `Detector.stream`.

sounddevice is an optional extra (`pip install "eventcount[listen]"`); without it, or without an input
device, `listen` stops with one line saying what is missing. The input stream's callback runs on PortAudio's
thread and only queues copies of the blocks; detection runs on the calling thread, so a slow block delays
events but never the recording (an overflow is counted and reported at the end).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from eventcount.annotations import Event
from eventcount.config import DetectSettings
from eventcount.detection import Detector
from eventcount.errors import EventcountError
from eventcount.stream import EventStream, run_stream

INSTALL_HINT = 'pip install "eventcount[listen]"'


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_rate: float
    is_default: bool = False


def sounddevice() -> Any:
    """The sounddevice module, or an error saying what to install."""
    try:
        import sounddevice as sd
    except ImportError:
        raise EventcountError(f"listening needs the sounddevice package: {INSTALL_HINT}") from None
    except OSError as error:  # the package is there, the PortAudio library is not
        raise EventcountError(f"sounddevice cannot load the PortAudio library ({error}); install it (Debian/Ubuntu: "
                              "apt-get install libportaudio2, macOS: brew install portaudio)") from None
    return sd


def input_devices(sd: Any = None) -> list[InputDevice]:
    """The devices that can record (PortAudio's list, inputs only)."""
    sd = sd or sounddevice()
    try:
        devices = list(sd.query_devices())
        default = sd.default.device[0] if isinstance(sd.default.device, (list, tuple)) else sd.default.device
    except Exception as error:  # noqa: BLE001  (PortAudioError, or an error from a broken host API)
        raise EventcountError(f"cannot list audio devices ({error})") from None
    return [InputDevice(i, str(d["name"]), int(d["max_input_channels"]), float(d["default_samplerate"]), i == default)
            for i, d in enumerate(devices) if d["max_input_channels"] > 0]


def choose_device(spec: str | None, sd: Any = None) -> InputDevice:
    """The input device for `--device` (an index, or a part of a name; None: the system's default input)."""
    devices = input_devices(sd)
    if not devices:
        raise EventcountError("no audio input device: PortAudio finds no microphone or line input on this machine; "
                              "connect one (or check that this user may record) and see --list-devices")
    if spec is None:
        default = [d for d in devices if d.is_default]
        return default[0] if default else devices[0]
    if spec.strip().isdigit():
        found = [d for d in devices if d.index == int(spec)]
    else:
        found = [d for d in devices if spec.lower() in d.name.lower()]
    if len(found) != 1:
        listing = "; ".join(f"{d.index}: {d.name}" for d in devices)
        what = "no input device" if not found else f"{len(found)} input devices"
        raise EventcountError(f"{what} matches --device {spec!r}; the input devices are {listing}")
    return found[0]


@dataclass
class Listened:
    """What a listening session gives: the finished stream (duration, rate) and the input overflows."""

    stream: EventStream
    device: str
    overflows: int = 0


def listen(detector: Detector, on_events: Callable[[list[Event]], None], device: str | None = None,
           settings: DetectSettings | None = None, block_s: float = 0.01, duration_s: float | None = None,
           sample_rate: float | None = None, input_stream: Callable[..., Any] | None = None,
           stop: threading.Event | None = None, on_start: Callable[[str, EventStream], None] | None = None,
           ) -> Listened:
    """Detect events from a microphone until Ctrl-C, `stop` is set, or `duration_s` seconds were heard;
    `on_events` gets each batch of events as soon as they are decided (times: seconds from the start), and
    `on_start` the device's name and the stream once recording starts.

    The rate is `sample_rate`, else the model's when the device takes it, else the device's own.
    `input_stream` replaces `sounddevice.InputStream` (same keyword arguments and callback), e.g. to play a
    recording in tests; then `device` is passed to it as it is.
    """
    if detector.spec.frontend.kind != "audio":
        raise EventcountError(f"model {detector.name} reads sensor signals, not sound; choose an audio model")
    if input_stream is None:
        sd = sounddevice()
        chosen = choose_device(device, sd)
        input_stream, device_id, name = sd.InputStream, chosen.index, chosen.name
        rate = sample_rate or _rate(sd, chosen, detector)
    else:
        device_id, name = device, str(device or "input")
        rate = sample_rate or float(detector.spec.frontend.sample_rate)
    stream = detector.stream(rate, 1, settings)
    blocks: queue.Queue[np.ndarray] = queue.Queue()
    overflows = [0]

    def callback(indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        if status:
            overflows[0] += 1
        blocks.put(indata.copy())

    try:
        source = input_stream(samplerate=rate, channels=1, blocksize=max(1, round(block_s * rate)),
                              dtype="float32", device=device_id, callback=callback)
    except Exception as error:  # noqa: BLE001  (sounddevice.PortAudioError and friends)
        raise EventcountError(f"cannot open the audio input ({error})") from None
    with source:
        if on_start is not None:
            on_start(name, stream)
        run_stream(stream, _heard(blocks, rate, duration_s, stop or threading.Event()), on_events)
    return Listened(stream, name, overflows[0])


def _heard(blocks: queue.Queue[np.ndarray], rate: float, duration_s: float | None,
           stop: threading.Event) -> Iterator[np.ndarray]:
    """The queued blocks, cut at `duration_s`, until `stop` is set."""
    left = None if duration_s is None else int(round(duration_s * rate))
    while not stop.is_set() and (left is None or left > 0):
        try:
            block = blocks.get(timeout=0.1)
        except queue.Empty:
            continue
        if left is not None:
            block, left = block[:left], left - len(block)
        yield block


def _rate(sd: Any, device: InputDevice, detector: Detector) -> float:
    """The model's own rate when the device offers it (no resampling, less delay), else the device's."""
    wanted = float(detector.spec.frontend.sample_rate)
    try:
        sd.check_input_settings(device=device.index, samplerate=wanted, channels=1, dtype="float32")
        return wanted
    except Exception:  # noqa: BLE001  (the device does not take that rate)
        return device.default_rate
