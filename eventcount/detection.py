"""Detecting events in recordings: a loaded model (`Detector`) and the one function that detects a recording.

`detect_recording` is what `detect`, `pseudo-label` (every engine), `annotate`'s pre-fill, the bench scripts and
the tests call: file -> probabilities [T, D] (streamed in blocks, so memory does not grow with length) -> events.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from eventcount.annotations import Event
from eventcount.atomic import atomic_write
from eventcount.augment import stretch
from eventcount.checkpoint import load_model
from eventcount.config import DecodeConfig, ModelSpec
from eventcount.decode import pick_events
from eventcount.errors import EventcountError
from eventcount.features import FeatureExtractor, FeatureState, resample_ratio, working_rate
from eventcount.network import CRNN
from eventcount.recordings import audio_rate, is_sensor_file, iter_audio_blocks, read_signal, signal_duration
from eventcount.signals import Signal
from eventcount.writers import get_writer, write_events

BLOCK_S = 60.0
RESAMPLE_MARGIN = 512


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
        extractor = FeatureExtractor(self.spec.frontend, self.channels)
        feature_state, network_state, pieces = FeatureState(), None, []
        blocks = _resampled_blocks(path, working_rate(self.spec.frontend), block_s)
        for samples in itertools.chain(blocks, [torch.zeros(self.end_padding(extractor))]):
            features, feature_state = extractor.process(samples, feature_state)
            if features.shape[1]:
                probs, network_state = self._run(features, network_state)
                pieces.append(probs)
        return np.concatenate(pieces) if pieces else np.zeros((0, len(self.spec.classes)))

    def file_activations(self, path: str | Path, tta: int = 1, sensor_options: dict | None = None) -> np.ndarray:
        """Probabilities for a file: streamed for audio with one pass, else read whole."""
        if tta <= 1 and not is_sensor_file(str(path)):
            return self.stream_activations(path)
        options = self.spec.frontend.sensor.updated(sensor_options)
        return self.activations(read_signal(path, sensor_options=options), tta)

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


def _resampled_blocks(path: str | Path, new_rate: float, block_s: float) -> Iterator[torch.Tensor]:
    """Mono audio blocks resampled to `new_rate`, equal to resampling the whole file at once.

    The buffer always starts on an input sample that maps to a whole output sample, and output is emitted
    only where the resampling filter saw real input on both sides (RESAMPLE_MARGIN), except at the ends.
    """
    buffer, buffer_start, emitted, ratio = np.zeros(0, np.float32), 0, 0, None
    for block, rate in iter_audio_blocks(path, block_s):
        ratio = Fraction(new_rate / rate).limit_denominator(1000)
        buffer = np.concatenate([buffer, block])
        safe_end = (buffer_start + buffer.size - RESAMPLE_MARGIN) * ratio.numerator // ratio.denominator
        if safe_end <= emitted:
            continue
        yield _resample_span(buffer, buffer_start, ratio, emitted, safe_end)
        emitted = safe_end
        keep_from = max(0, (emitted * ratio.denominator // ratio.numerator - RESAMPLE_MARGIN))
        keep_from -= keep_from % ratio.denominator
        buffer, buffer_start = buffer[keep_from - buffer_start:], keep_from
    if ratio is not None and buffer.size:
        yield _resample_span(buffer, buffer_start, ratio, emitted, None)


def _resample_span(buffer: np.ndarray, buffer_start: int, ratio: Fraction, first: int, end: int | None) -> torch.Tensor:
    """Output samples [first, end) of the whole file's resampling, from a buffer starting at input buffer_start."""
    out = resample_ratio(torch.from_numpy(buffer), ratio)
    offset = buffer_start * ratio.numerator // ratio.denominator
    return out[first - offset: None if end is None else end - offset]


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


@dataclass(frozen=True)
class DetectSettings:
    """How to detect: decoding (None: the model's own thresholds), test-time passes, a confidence floor, and
    sensor-reading options that override the model's."""

    decode: DecodeConfig | None = None
    tta: int = 1
    min_confidence: float = 0.0
    sensor: dict = field(default_factory=dict)


@dataclass
class Detection:
    """What detecting one recording gives: events (seconds) and the probabilities they were decoded from."""

    events: list[Event]
    probabilities: np.ndarray  # [T, D]
    frame_rate: float
    classes: list[str]
    duration_s: float
    delay_frames: int = 0

    def counts(self) -> dict[str, int]:
        """Events per class (every class listed, zero included)."""
        counts = dict.fromkeys(self.classes, 0)
        for event in self.events:
            counts[event.label] = counts.get(event.label, 0) + 1
        return counts


def detect_recording(detector: Detector, path: str | Path, settings: DetectSettings = DetectSettings(),
                     label: str | None = None) -> Detection:
    """Detect the events of one recording file.

    `label` names the recording in errors (e.g. an archive member whose bytes were spooled to `path`).
    Raises EventcountError for an unreadable, empty or too short recording.
    """
    name = label or str(path)
    try:
        return _detect(detector, str(path), settings)
    except EventcountError as error:
        if label is None:
            raise
        raise EventcountError(str(error).replace(str(path), name)) from None


def _detect(detector: Detector, path: str, settings: DetectSettings) -> Detection:
    sensor = detector.spec.frontend.sensor.updated(settings.sensor)
    duration_s = signal_duration(path, sensor)
    if duration_s == 0:
        raise EventcountError(f"{path}: the recording contains no samples")
    if duration_s * detector.frame_rate < 1:
        raise EventcountError(f"{path}: too short to detect events in ({duration_s * 1000:.1f} ms, less than one "
                              f"frame of {1000 / detector.frame_rate:g} ms)")
    probs = detector.file_activations(path, settings.tta, sensor)
    events = [e for e in detector.decode(probs, settings.decode)
              if e.confidence is None or e.confidence >= settings.min_confidence]
    return Detection(events, probs, detector.frame_rate, list(detector.spec.classes), duration_s,
                     detector.spec.frontend.detection_delay())


def write_detection(detection: Detection, target: str | Path, fmt: str = "tsv") -> None:
    """Write a detection's events to `target` in format `fmt`, atomically."""
    write_events(target, detection.events, fmt, duration_s=detection.duration_s)


def detection_text(detection: Detection, fmt: str = "tsv") -> str:
    """A detection's events as text (for standard output); binary formats need a file."""
    content = get_writer(fmt)[1](detection.events, duration_s=detection.duration_s)
    if isinstance(content, bytes):
        raise EventcountError(f"format {fmt} is binary; give -o FILE")
    return content


def save_detection_activations(detection: Detection, path: str | Path) -> None:
    """Write a detection's probabilities as activations (.npz), atomically."""
    save_activations(path, detection.probabilities, detection.frame_rate, detection.classes, detection.delay_frames)


def output_path(folder: Path, recording: Path, fmt: str) -> Path:
    """`<folder>/<stem><format suffix>`: where a recording's events go in an output folder."""
    return folder / f"{recording.stem}{get_writer(fmt)[0]}"
