"""Detecting events in recordings: a loaded model (`Detector`) and the one function that detects a recording.

`detect_recording` is what `detect`, `pseudo-label` (every engine), `annotate`'s pre-fill, the bench scripts and
the tests call: file -> probabilities [T, D] (streamed in blocks, so memory does not grow with length) -> events.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from eventcount.annotations import Event
from eventcount.atomic import atomic_write
from eventcount.augment import stretch
from eventcount.checkpoint import load_model
from eventcount.config import DEFAULT_FORMAT, DecodeConfig, DetectSettings, ModelSpec
from eventcount.decode import pick_events
from eventcount.errors import EventcountError
from eventcount.features import FeatureExtractor, FeatureState, sinc_resampler, working_rate
from eventcount.network import CRNN
from eventcount.recordings import audio_rate, is_sensor_file, iter_audio_blocks, read_signal, signal_duration
from eventcount.signals import Signal
from eventcount.writers import get_writer, write_events

if TYPE_CHECKING:
    from eventcount.stream import EventStream

BLOCK_S = 20.0  # audio read per step when detecting a file: ~150 MB of working memory (60 s: ~450 MB)


def tta_factors(n: int) -> list[float]:
    """Stretch factors for n test-time passes: geometric, from 0.84 to 1.19, 1.0 included when n is odd."""
    if n <= 1:
        return [1.0]
    return [float(2.0 ** x) for x in np.linspace(-0.25, 0.25, n)]


def unstretch(probs: np.ndarray, factor: float, n_frames: int) -> np.ndarray:
    """Map probabilities [T', D] computed on a copy stretched by `factor` back to n_frames original frames.

    Each stretched frame's mass goes to its original time, split linearly between the two nearest frames,
    so the expected count is preserved.
    """
    if factor == 1.0:
        return probs[:n_frames]
    position = (np.arange(probs.shape[0]) + 0.5) / factor - 0.5
    lower = np.floor(position).astype(np.int64)
    upper_weight = (position - lower)[:, None]
    out = np.zeros((n_frames + 1, probs.shape[1]))
    for index, weight in ((lower, 1 - upper_weight), (lower + 1, upper_weight)):
        valid = (index >= 0) & (index < n_frames)
        np.add.at(out, index[valid], probs[valid] * weight[valid])
    return out[:n_frames]


class Detector:
    """A loaded model with its frontend and decoding defaults."""

    def __init__(self, model: CRNN, spec: ModelSpec, info: dict | None = None, device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.spec = spec
        self.info = info or {}
        self.device = device
        self.channels = self.spec.frontend.sensor.channels

    @classmethod
    def load(cls, name: str | Path | None = None, device: str = "cpu") -> Detector:
        model, spec, info = load_model(name)
        return cls(model, spec, info, device)

    @property
    def frame_rate(self) -> float:
        return self.spec.frontend.frame_rate

    @property
    def name(self) -> str:
        return Path(self.info.get("path", "model")).stem

    def _run(self, features: torch.Tensor, state: dict | None = None) -> tuple[np.ndarray, dict]:
        if features.shape[1] == 0:  # shorter than a frame (e.g. a stretched copy of a tiny file)
            return np.zeros((0, len(self.spec.classes))), state or {}
        with torch.inference_mode():
            logits, state = self.model(features[None].to(self.device), state)
        return torch.sigmoid(logits[0]).double().cpu().numpy(), state

    def end_padding(self, extractor: FeatureExtractor) -> int:
        """Silent samples run after a recording's end, so that hits in its last moments reach the frame
        the model reports them in (the front end's detection delay; see `FrontendConfig.detection_delay`)."""
        return self.spec.frontend.detection_delay() * extractor.hop

    def activations(self, signal: Signal, tta: int = 1) -> np.ndarray:
        """Probabilities [T, D] for a whole in-memory recording, averaged over `tta` stretched passes.

        T covers the recording and the detection delay's frames after it (`end_padding`)."""
        extractor = FeatureExtractor(self.spec.frontend, self.channels)
        samples = torch.nn.functional.pad(extractor.prepare(signal), (0, self.end_padding(extractor)))
        n_frames = samples.shape[-1] // extractor.hop
        rate = working_rate(self.spec.frontend)
        passes = [unstretch(self._run(extractor(stretch(samples, rate, f)))[0], f, n_frames)
                  for f in tta_factors(tta)]
        return np.mean(passes, axis=0)

    def stream_activations(self, path: str | Path, block_s: float = BLOCK_S) -> np.ndarray:
        """Probabilities [T, D] for an audio file read block by block: memory does not grow with its length."""
        activations = ActivationStream(self)
        pieces = [activations.push(samples) for samples in _resampled_blocks(path, activations.rate, block_s)]
        return np.concatenate([*pieces, activations.finish()])

    def stream(self, sample_rate: float, channels: int = 1, settings: DetectSettings | None = None) -> EventStream:
        """A live detector: feed it blocks of samples as they arrive and it returns the events decided so far;
        the events equal `detect_recording`'s on the same recording, whatever the block sizes."""
        from eventcount.stream import EventStream

        return EventStream(self, sample_rate, channels, settings or DetectSettings())

    def low_rate_note(self, path: str | Path) -> str | None:
        """A warning when an audio file's sample rate is below the model's: the top of the band the model
        listens to is then missing (a 16 kHz file has nothing above 8 kHz, where hi-hats are loudest)."""
        frontend = self.spec.frontend
        if frontend.kind != "audio" or is_sensor_file(str(path)):
            return None
        try:
            rate = audio_rate(path)
        except EventcountError:
            return None  # unreadable: detection reports it
        if rate >= frontend.sample_rate:
            return None
        return (f"{path} is sampled at {rate} Hz, so it has nothing above {rate / 2:g} Hz; model {self.name} "
                f"listens up to {min(frontend.f_max, frontend.sample_rate / 2):g} Hz and may miss bright sounds "
                "(hi-hats); use the original recording if it has a higher rate")

    def decode(self, probs: np.ndarray, config: DecodeConfig | None = None) -> list[Event]:
        return pick_events(probs, self.frame_rate, self.spec.classes, config or self.spec.decode,
                           self.spec.frontend.detection_delay())


class ActivationStream:
    """Working-rate samples -> probabilities [n, D], chunk by chunk: the front end and the network carry their
    state, so the chunks' probabilities together equal one pass over the whole recording."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.extractor = FeatureExtractor(detector.spec.frontend, detector.channels)
        self.rate = working_rate(detector.spec.frontend)
        self.feature_state, self.network_state = FeatureState(), {}
        self.n_classes = len(detector.spec.classes)

    def push(self, samples: torch.Tensor) -> np.ndarray:
        """Samples [n] (audio) or [channels, n] (sensors) at the working rate -> the frames they complete."""
        return self._recur(self._encode(samples), final=False)

    def finish(self) -> np.ndarray:
        """The frames still waiting and those of the silence run after the end (`Detector.end_padding`)."""
        tail = self.feature_state.tail
        shape = (*(tail.shape[:-1] if tail is not None else ()), self.detector.end_padding(self.extractor))
        return self._recur(self._encode(torch.zeros(shape)), final=True)

    def _encode(self, samples: torch.Tensor) -> torch.Tensor | None:
        """The convolutions' output [1, n, I] for the frames these samples complete (None: no frame)."""
        features, self.feature_state = self.extractor.process(samples, self.feature_state)
        if not features.shape[1]:
            return None
        with torch.inference_mode():
            sequence, conv_state = self.detector.model.encode(features[None].to(self.detector.device),
                                                              self.network_state)
        self.network_state.update(conv_state)
        return sequence

    def _recur(self, sequence: torch.Tensor | None, final: bool) -> np.ndarray:
        waiting = self.network_state.get("waiting")  # frames a recurrent step still lacks (rnn_stride > 1)
        if sequence is None:
            if not (final and waiting is not None and waiting.shape[1]):
                return np.zeros((0, self.n_classes))
            sequence = waiting[:, :0]
        with torch.inference_mode():
            logits, rnn_state = self.detector.model.recur(sequence, self.network_state, final)
        self.network_state.update(rnn_state)
        return torch.sigmoid(logits[0]).double().cpu().numpy()


def resample_margin(ratio: Fraction) -> int:
    """Input samples the resampling filter reads beyond an output sample's position, on either side: the sinc
    kernel's half width plus one input block (torchaudio's `resample`: 6 zero crossings, 0.99 roll-off; the
    filter for output block k spans input [k * den - width, k * den + den + width))."""
    width = math.ceil(6 * ratio.denominator / (min(ratio.numerator, ratio.denominator) * 0.99))
    return width + ratio.denominator + 1


class Resampler:
    """Push-style resampling to `new_rate`: the outputs of every `push` and the final `flush`, joined, equal
    resampling the whole signal at once (`features.resample`), whatever the block sizes (one sample too).

    The buffer always starts on an input sample that maps to a whole output sample, and output is emitted
    only where the resampling filter saw real input on both sides (`resample_margin`), except at the ends.
    """

    def __init__(self, rate: float, new_rate: float) -> None:
        self.ratio = Fraction(new_rate / rate).limit_denominator(1000)
        self.margin = resample_margin(self.ratio)
        self.buffer: np.ndarray | None = None
        self.buffer_start = 0  # input sample index of buffer[..., 0]
        self.emitted = 0  # output samples given out so far
        self._resample = sinc_resampler(self.ratio)

    def push(self, block: np.ndarray) -> torch.Tensor:
        """Input samples [n] or [channels, n] -> the output samples now final ([m] or [channels, m])."""
        block = np.ascontiguousarray(block, dtype=np.float32)
        if self.ratio == 1:
            return torch.from_numpy(block.copy())
        self.buffer = block if self.buffer is None else np.concatenate([self.buffer, block], axis=-1)
        num, den = self.ratio.numerator, self.ratio.denominator
        safe_end = (self.buffer_start + self.buffer.shape[-1] - self.margin) * num // den
        if safe_end <= self.emitted:
            return torch.zeros((*block.shape[:-1], 0))
        out = self._span(self.emitted, safe_end)
        self.emitted = safe_end
        keep_from = max(0, self.emitted * den // num - self.margin)
        keep_from -= keep_from % den
        self.buffer, self.buffer_start = self.buffer[..., keep_from - self.buffer_start:], keep_from
        return out

    def flush(self) -> torch.Tensor:
        """The output samples left at the end of the input."""
        if self.buffer is None or not self.buffer.shape[-1]:
            return torch.zeros(0) if self.buffer is None else torch.zeros((*self.buffer.shape[:-1], 0))
        out = self._span(self.emitted, None)
        self.buffer = self.buffer[..., :0]
        return out

    def _span(self, first: int, end: int | None) -> torch.Tensor:
        """Output samples [first, end) of the whole signal's resampling, from the buffer."""
        out = self._resample(torch.from_numpy(self.buffer))
        offset = self.buffer_start * self.ratio.numerator // self.ratio.denominator
        return out[..., first - offset: None if end is None else end - offset]


def _resampled_blocks(path: str | Path, new_rate: float, block_s: float) -> Iterator[torch.Tensor]:
    """Mono audio blocks resampled to `new_rate`, equal to resampling the whole file at once."""
    resampler = None
    for block, rate in iter_audio_blocks(path, block_s):
        resampler = resampler or Resampler(rate, new_rate)
        yield resampler.push(block)
    if resampler is not None:
        yield resampler.flush()


def save_activations(path: str | Path, probs: np.ndarray, frame_rate: float, classes: list[str],
                     delay_frames: int = 0) -> None:
    """Write activations (.npz: probabilities [T, D], frame_rate, classes, detection_delay_frames) atomically."""
    with atomic_write(path, "wb") as handle:
        np.savez_compressed(handle, probabilities=probs.astype(np.float32), frame_rate=frame_rate,
                            classes=np.asarray(classes), detection_delay_frames=delay_frames)


def load_activations(path: str | Path) -> tuple[np.ndarray, float, list[str], int]:
    """(probabilities, frame_rate, classes, detection delay in frames): what `decode.pick_events` needs."""
    with np.load(path, allow_pickle=False) as data:
        delay = int(data["detection_delay_frames"]) if "detection_delay_frames" in data else 0
        return data["probabilities"], float(data["frame_rate"]), [str(c) for c in data["classes"]], delay


@dataclass
class Detection:
    """What detecting one recording gives: events (seconds) and the probabilities they were decoded from."""

    events: list[Event]
    probabilities: np.ndarray  # [T, D]
    frame_rate: float
    classes: list[str]
    duration_s: float
    delay_frames: int = 0
    gaps: list[tuple[float, float]] = field(default_factory=list)  # (start_s, end_s) where nothing was looked for

    def counts(self) -> dict[str, int]:
        """Events per class (every class listed, zero included)."""
        counts = dict.fromkeys(self.classes, 0)
        for event in self.events:
            counts[event.label] = counts.get(event.label, 0) + 1
        return counts


def detect_recording(detector: Detector, path: str | Path, settings: DetectSettings | None = None,
                     label: str | None = None) -> Detection:
    """Detect the events of one recording file.

    `label` names the recording in errors (e.g. an archive member whose bytes were spooled to `path`).
    Raises EventcountError for an unreadable, empty or too short recording.
    """
    name = label or str(path)
    try:
        return _detect(detector, str(path), settings or DetectSettings())
    except EventcountError as error:
        if label is None:
            raise
        raise EventcountError(str(error).replace(str(path), name)) from None


def _detect(detector: Detector, path: str, settings: DetectSettings) -> Detection:
    sensor = detector.spec.frontend.sensor.updated(settings.sensor)
    if settings.tta <= 1 and not is_sensor_file(path):  # streamed in blocks: memory flat in the file's length
        duration_s = _check_duration(path, signal_duration(path, sensor), detector.frame_rate)
        probs, gaps = detector.stream_activations(path), []
        events = detector.decode(probs, settings.decode)
    else:
        signal = read_signal(path, sensor_options=sensor)
        duration_s = _check_duration(path, signal.duration_s, detector.frame_rate)
        probs, events = _detect_segments(detector, signal, settings)
        gaps = list(signal.gaps)
    events = [e for e in events if e.confidence is None or e.confidence >= settings.min_confidence]
    return Detection(events, probs, detector.frame_rate, list(detector.spec.classes), duration_s,
                     detector.spec.frontend.detection_delay(), gaps)


def _check_duration(path: str, duration_s: float, frame_rate: float) -> float:
    if duration_s == 0:
        raise EventcountError(f"{path}: the recording contains no samples")
    if duration_s * frame_rate < 1:
        raise EventcountError(f"{path}: too short to detect events in ({duration_s * 1000:.1f} ms, less than one "
                              f"frame of {1000 / frame_rate:g} ms)")
    return duration_s


def _detect_segments(detector: Detector, signal: Signal, settings: DetectSettings) -> tuple[np.ndarray, list[Event]]:
    """Each stretch between the recording's gaps detected on its own (`Signal.segments`): events shifted by the
    stretch's start, probabilities placed on the whole recording's frames (zero inside gaps)."""
    parts, events = [], []
    for start_s, part in signal.segments():
        if part.duration_s * detector.frame_rate < 1:
            continue  # a stretch shorter than a frame holds nothing to detect
        probs = detector.activations(part, settings.tta)
        parts.append((int(round(start_s * detector.frame_rate)), probs))
        events += [replace(e, time_s=e.time_s + start_s) for e in detector.decode(probs, settings.decode)]
    n_frames = max((offset + probs.shape[0] for offset, probs in parts), default=0)
    whole = np.zeros((n_frames, len(detector.spec.classes)))
    for offset, probs in parts:
        whole[offset: offset + probs.shape[0]] = np.maximum(whole[offset: offset + probs.shape[0]], probs)
    return whole, sorted(events, key=lambda e: (e.time_s, e.label))


def write_detection(detection: Detection, target: str | Path, fmt: str = DEFAULT_FORMAT) -> None:
    """Write a detection's events to `target` in format `fmt`, atomically."""
    write_events(target, detection.events, fmt, duration_s=detection.duration_s, gaps=detection.gaps)


def detection_text(detection: Detection, fmt: str = DEFAULT_FORMAT) -> str:
    """A detection's events as text (for standard output); binary formats need a file."""
    content = get_writer(fmt)[1](detection.events, duration_s=detection.duration_s, gaps=detection.gaps)
    if isinstance(content, bytes):
        raise EventcountError(f"format {fmt} is binary; give -o FILE")
    return content


def save_detection_activations(detection: Detection, path: str | Path) -> None:
    """Write a detection's probabilities as activations (.npz), atomically."""
    save_activations(path, detection.probabilities, detection.frame_rate, detection.classes, detection.delay_frames)


def output_path(folder: Path, recording: Path, fmt: str) -> Path:
    """`<folder>/<stem><format suffix>`: where a recording's events go in an output folder."""
    return folder / f"{recording.stem}{get_writer(fmt)[0]}"
