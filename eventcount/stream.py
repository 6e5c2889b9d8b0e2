"""The streaming detector: blocks of samples in, events out as soon as they are decided (`Detector.stream`).

A stream is the file path cut into pieces: the same push resampler (`detection.Resampler`), the same front end
and network with carried state (`detection.ActivationStream`) and a decoder that decides each event once no
later frame can change it (`decode.StreamDecoder`). So its events equal `detect_recording`'s on the same
recording, whatever the block sizes; what the stream adds is latency (`EventStream.latency_s`).
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np

from eventcount.annotations import Event
from eventcount.config import DetectSettings
from eventcount.decode import StreamDecoder
from eventcount.detection import ActivationStream, Detector, Resampler
from eventcount.errors import EventcountError
from eventcount.features import working_rate
from eventcount.stream_input import open_pcm_stream
from eventcount.writers import get_writer, write_events


class EventStream:
    """Detects events in a live signal: `feed(block)` returns the events decided so far, `finish()` the rest.

    Blocks are float samples at `sample_rate`, [n] or [n, channels]; audio is mixed to mono (as files are),
    sensor channels are kept. Times are seconds from the first sample fed.
    """

    def __init__(self, detector: Detector, sample_rate: float, channels: int = 1,
                 settings: DetectSettings | None = None) -> None:
        settings = settings or DetectSettings()
        if settings.tta > 1:
            raise EventcountError("--tta needs the whole recording (stretched copies); a stream runs one pass")
        if not (sample_rate > 0 and channels >= 1):
            raise EventcountError(f"a stream needs a positive sample rate and channel count, not {sample_rate:g} Hz "
                                  f"and {channels} channel(s)")
        spec = detector.spec
        if spec.frontend.kind != "audio" and channels != detector.channels:
            raise EventcountError(f"model {detector.name} reads {detector.channels} sensor channel(s), the stream has "
                                  f"{channels}; choose the columns (--columns) or their norm (--magnitude)")
        self.sample_rate, self.channels = float(sample_rate), channels
        self.audio = spec.frontend.kind == "audio"
        self.resampler = Resampler(sample_rate, working_rate(spec.frontend))
        self.activations = ActivationStream(detector)
        self.decoder = StreamDecoder(spec.frontend.frame_rate, list(spec.classes), settings.decode or spec.decode,
                                     spec.frontend.detection_delay())
        self.min_confidence = settings.min_confidence
        self.frame_rate = spec.frontend.frame_rate
        self.lookahead_frames = spec.frontend.detection_delay()
        self.stride_frames = spec.network.rnn_stride - 1
        self.samples = 0
        self.finished = False

    @property
    def duration_s(self) -> float:
        """Seconds of signal fed so far."""
        return self.samples / self.sample_rate

    @property
    def latency_s(self) -> float:
        """How long after an event its decision can come at the earliest (compute and block size not counted):
        the model's lookahead (detection delay), the frames the decoder waits for a stronger peak nearby, the
        half frame from an event's time to the end of its frame, the frames a recurrent step reads beyond it
        (`rnn_stride` - 1) and the resampling filter's look-ahead."""
        frames = self.lookahead_frames + self.decoder.decision_frames + 0.5 + self.stride_frames
        margin = 0 if self.resampler.ratio == 1 else self.resampler.margin / self.sample_rate
        return frames / self.frame_rate + margin

    def feed(self, block: np.ndarray) -> list[Event]:
        """Take the next block of samples; returns the events decided now (sorted by time)."""
        if self.finished:
            raise EventcountError("the stream is finished; start a new one")
        samples = self._samples(block)
        self.samples += samples.shape[-1]
        return self._decode(self.decoder.push(self.activations.push(self.resampler.push(samples))))

    def finish(self) -> list[Event]:
        """The end of the signal: flush the resampler, run the model's lookahead of silence (as the file path
        does) and release the decoder's last peaks. Returns the remaining events; later calls return []."""
        if self.finished or self.samples == 0:
            self.finished = True
            return []
        self.finished = True
        probs = np.concatenate([self.activations.push(self.resampler.flush()), self.activations.finish()])
        return self._decode(self.decoder.push(probs) + self.decoder.finish())

    def _samples(self, block: np.ndarray) -> np.ndarray:
        """A block as the front end takes it: mono [n] for audio, [channels, n] for sensors (float32)."""
        data = np.asarray(block, dtype=np.float32)
        if data.ndim == 1 and self.channels == 1:
            data = data[:, None]
        if data.ndim != 2 or data.shape[1] != self.channels:
            raise EventcountError(f"a block of shape {tuple(data.shape)}; this stream takes [n] or "
                                  f"[n, {self.channels}] samples")
        bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
        if bad.size:
            at = self.samples + int(bad[0])
            raise EventcountError(f"sample {at} (at {at / self.sample_rate:.3f} s) is NaN or infinite")
        return data.mean(axis=1) if self.audio else np.ascontiguousarray(data.T)

    def _decode(self, events: list[Event]) -> list[Event]:
        return [e for e in events if e.confidence is None or e.confidence >= self.min_confidence]


def run_stream(stream: EventStream, blocks: Iterable[np.ndarray], emit: Callable[[list[Event]], None]) -> bool:
    """Feed `blocks` to `stream`, handing each batch of decided events to `emit`, then finish the stream.

    Ctrl-C (SIGINT) ends the input like the end of the stream and the final events are still emitted: it
    interrupts a wait for the next block at once, and otherwise lets the current block be fed and its events
    emitted first, so no batch is half written. Returns whether the input was interrupted.
    """
    state = {"waiting": False, "stop": False}

    def on_sigint(signum: int, frame: object) -> None:
        state["stop"] = True
        if state["waiting"]:
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: Ctrl-C is the main thread's business
        previous = None
    try:
        source = iter(blocks)
        while not state["stop"]:
            state["waiting"] = True
            try:
                block = next(source)
            except StopIteration:
                break
            except KeyboardInterrupt:
                state["stop"] = True
                break
            finally:
                state["waiting"] = False
            emit(stream.feed(block))
        emit(stream.finish())
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return state["stop"]


STREAM_FORMATS = ("tsv", "csv", "audacity")  # one line per event: written as events are decided


class EventSink:
    """Where a stream's events go as they are decided: lines on a text stream or appended to a file, flushed
    at once (`STREAM_FORMATS`); formats that need the whole list (jams, midi) are written to `target` when the
    stream ends, atomically. A file is created with the first event (or at `close`), so a stream that fails
    before any event leaves no file (`discard`)."""

    def __init__(self, fmt: str, target: Path | None = None, out: TextIO | None = None, overwrite: bool = False):
        _, self.render = get_writer(fmt)
        self.fmt, self.target, self.out = fmt, target, out
        self.events: list[Event] = []  # kept only for the whole-list formats (a live session may run for hours)
        self.count = 0
        self.lines = fmt in STREAM_FORMATS
        if not self.lines and target is None:
            raise EventcountError(f"format {fmt} needs the whole list of events; give -o FILE (written when the "
                                  "stream ends) or use one of " + ", ".join(STREAM_FORMATS))
        if target is not None and target.exists() and not overwrite:
            raise EventcountError(f"{target} exists; use --overwrite to replace it")
        self.header = str(self.render([])) if self.lines else ""
        self.handle: TextIO | None = None
        if self.lines and target is None:
            self._start(out)

    def _start(self, handle: TextIO | None) -> None:
        self.handle = handle if handle is not None else open(self.target, "w", encoding="utf-8")  # noqa: SIM115
        self.handle.write(self.header)
        self.handle.flush()

    def write(self, events: list[Event]) -> None:
        """Hand on a batch of decided events."""
        self.count += len(events)
        if not self.lines:
            self.events += events
            return
        if not events:
            return
        if self.handle is None:
            self._start(None)
        self.handle.write("".join(str(self.render([e]))[len(self.header):] for e in events))
        self.handle.flush()

    def close(self, duration_s: float | None = None) -> None:
        """The stream ended: close the file (created now if no event came), or write the whole-list format."""
        if self.target is None:
            return
        if not self.lines:
            write_events(self.target, self.events, self.fmt, duration_s=duration_s)
            return
        if self.handle is None:
            self._start(None)
        self.handle.close()

    def discard(self) -> None:
        """The stream failed before any event: remove the file begun for it, if any."""
        if self.target is not None and self.handle is not None and not self.count:
            self.handle.close()
            self.target.unlink(missing_ok=True)
            self.handle = None


def detect_pipe(detector: Detector, source: BinaryIO, sink: EventSink, settings: DetectSettings | None = None,
                name: str = "standard input", channels: int | None = None,
                sample_format: str | None = None) -> EventStream:
    """Detect events in a recording arriving on a byte stream, handing them to `sink` as they are decided, until
    the stream ends or Ctrl-C. Audio models read a WAV stream, or raw PCM when `sample_format` is given (at
    `settings.sensor["rate"]`, the `--rate` option); sensor models read CSV lines (`eventcount.sensor_stream`).
    Returns the finished stream."""
    settings = settings or DetectSettings()
    try:
        if detector.spec.frontend.kind == "audio":
            layout, blocks = open_pcm_stream(source, name, settings.sensor.get("rate"), channels, sample_format)
            stream = detector.stream(layout.rate, layout.channels, settings)
        else:
            stream, blocks = _sensor_stream(detector, source, settings, name)
        run_stream(stream, blocks, sink.write)
        if stream.samples == 0:
            raise EventcountError(f"{name}: the stream contains no samples")
    except EventcountError:
        sink.discard()
        raise
    sink.close(stream.duration_s)
    return stream


def _sensor_stream(detector: Detector, source: BinaryIO, settings: DetectSettings, name: str
                   ) -> tuple[EventStream, Iterator[np.ndarray]]:
    """A stream for CSV lines: the lines up to the choice of columns are read first (it fixes the channels)."""
    from eventcount.sensor_stream import CsvGrid, csv_blocks

    options = detector.spec.frontend.sensor.updated(settings.sensor)
    grid = CsvGrid(options, options.rate or working_rate(detector.spec.frontend), name)
    blocks = csv_blocks(source, grid)
    first = [next(blocks)]
    while grid.channels is None:
        first.append(next(blocks))  # csv_blocks ends with finish(), which chooses the columns or raises
    return detector.stream(grid.rate, grid.channels, settings), itertools.chain(first, blocks)
