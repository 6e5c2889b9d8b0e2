"""Configuration dataclasses: the one source of defaults for the library, the CLI and model files."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from eventcount.errors import EventcountError

DEFAULT_TOLERANCE_S = 0.05  # event matching window (the MIREX onset window): evaluation, thresholds, benches


@dataclass
class SensorConfig:
    """How to read a sensor recording (`eventcount.sensors`); stored in the model, so `detect` reads files as
    training did. The defaults suit CSV files with a header and a time column.

    columns: value columns by header name or 0-based index (as strings); None = every numeric column
        except the time and filter columns.
    time_column: name or index of the timestamps; None = a header such as time, time_s, t, timestamp_ns,
        "time (ms)" if there is one (files without a header then need `rate`).
    time_unit: "s", "ms", "us", "ns", or "auto" (the time column's name suffix: `_ms`, `(ns)`, ...; else s).
    rate: samples per second of a file without a time column (or a `.npy` array); with one, the rate to
        resample to (None = the typical rate of the timestamps).
    max_gap_s: a longer step between two timestamps is a gap, kept in `Signal.gaps` (see `Signal` for what
        detection does with it).
    max_disorder_s: rows out of order by at most this are sorted (with a warning); by more, an error.
    strict_timestamps: refuse repeated or out-of-order timestamps and gaps instead of repairing them.
    delimiter: ",", "\\t", ";", "whitespace", or None to detect it from the first line.
    magnitude: replace the value columns by their Euclidean norm (one channel; e.g. accelerometers).
    filter_column, filter_value: keep only the rows whose filter column equals this value (one sensor of
        several interleaved in a file).
    channels: value channels the model reads (set by training from its data; not a reading option).
    """

    columns: list[str] | None = None
    time_column: str | None = None
    time_unit: str = "auto"
    rate: float | None = None
    max_gap_s: float = 1.0
    max_disorder_s: float = 0.1
    strict_timestamps: bool = False
    delimiter: str | None = None
    magnitude: bool = False
    filter_column: str | None = None
    filter_value: str | None = None
    channels: int = 1

    def __post_init__(self) -> None:
        # YAML gives `columns: [2, 3]` or `filter_value: 2` as numbers; columns and values are matched as text
        if self.columns is not None:
            self.columns = [str(column) for column in self.columns]
        for name in ("time_column", "filter_column", "filter_value"):
            if getattr(self, name) is not None:
                setattr(self, name, str(getattr(self, name)))

    def updated(self, overrides: SensorConfig | Mapping[str, Any] | None) -> SensorConfig:
        """A copy with `overrides` on top: a mapping of the options given (e.g. from flags; unknown keys are
        an error naming them), or a whole `SensorConfig` that replaces this one."""
        if overrides is None:
            return dataclasses.replace(self)
        if isinstance(overrides, SensorConfig):
            return dataclasses.replace(overrides)
        return from_dict(SensorConfig, {**dataclasses.asdict(self), **overrides}, "sensor options")


@dataclass
class FrontendConfig:
    """How a recording becomes feature frames.

    kind "audio": mono log-mel at `sample_rate` with hop `sample_rate / frame_rate`; kind "sensor": the
    recording's channels resampled to `frame_rate * samples_per_frame` and grouped per frame.
    `low_n_fft` > 0 gives audio a finer spectrum below `low_f_max` (Hz), where kick drums and other low sounds
    differ by a few tens of Hz: there each frequency bin of a `low_n_fft`-sample window is a feature (from
    `f_min`), and the `n_mels` mel bands cover `low_f_max` to `f_max` (see `features.low_bins`).
    Frame t stands for the interval [t / frame_rate, (t + 1) / frame_rate) (see `features.frame_times`).
    """

    kind: str = "audio"
    frame_rate: float = 100.0
    sample_rate: int = 16000
    n_fft: int = 512
    n_mels: int = 48
    f_min: float = 30.0
    f_max: float = 8000.0
    low_n_fft: int = 0
    low_f_max: float = 0.0
    samples_per_frame: int = 4
    norm_time_s: float = 5.0
    norm_prior_mean: list[float] | None = None
    norm_prior_std: list[float] | None = None
    sensor: SensorConfig = field(default_factory=SensorConfig)
    detection_delay_frames: int | None = None

    def detection_delay(self) -> int:
        """Frames from the frame an event falls in to the first frame that clearly sees it.

        1 for audio: the causal window is Hann-tapered and ends with the frame's own samples, so an onset in
        the frame's last milliseconds is nearly invisible until the next frame. 0 for sensors (a frame holds
        its own samples untapered). `detection_delay_frames` overrides it.
        """
        if self.detection_delay_frames is not None:
            return self.detection_delay_frames
        return 1 if self.kind == "audio" else 0

    @property
    def detection_delay_s(self) -> float:
        """The detection delay in seconds (`detection_delay` frames at `frame_rate`): what decoding moves events
        back by before any calibrated lag."""
        return self.detection_delay() / self.frame_rate


@dataclass
class NetworkConfig:
    """Sizes of the causal CRNN (`network.CRNN`)."""

    conv_channels: list[int] = field(default_factory=lambda: [16, 32])
    conv_kernel_time: int = 3
    conv_kernel_freq: int = 3
    pool_freq: int = 2
    rnn: str = "gru"
    rnn_hidden: int = 64
    rnn_stride: int = 1  # frames per recurrent step: 2 runs the GRU at half the frame rate, two frames a step
    dropout: float = 0.1


NETWORK_SIZES: dict[str, NetworkConfig] = {
    "small": NetworkConfig(),
    "large": NetworkConfig(conv_channels=[32, 64], rnn_hidden=128),
}
DEFAULT_NETWORK_SIZE = "small"


@dataclass
class DecodeConfig:
    """Turning probabilities into event times (`decode.pick_events`)."""

    threshold: float = 0.5
    thresholds: dict[str, float] = field(default_factory=dict)
    min_distance_s: float = 0.03
    lag_s: float = 0.0


DEFAULT_STRETCH = (0.8, 1.25)  # the time-stretch range LOW, HIGH that training uses unless told otherwise


def stretch_factors(low: float, high: float) -> list[float]:
    """Time-stretch factors for a range LOW..HIGH (0 < LOW <= 1 <= HIGH): three geometric steps from LOW to 1
    and three from 1 to HIGH, so 0.8, 1.25 gives 0.8, 0.894, 1, 1.118, 1.25 (LOW = HIGH = 1: no stretch)."""
    if not 0 < low <= 1 <= high:
        raise EventcountError(f"stretch range {low:g},{high:g}: need 0 < LOW <= 1 <= HIGH")
    steps = [low ** (1 - i / 2) for i in range(3)] + [high ** (i / 2) for i in (1, 2)]
    return sorted({round(f, 4) for f in steps})


DEFAULT_MODEL = "drums"  # the shipped model that detect, listen and pseudo-label use without -m
DEFAULT_FORMAT = "tsv"  # event files written by detect, pseudo-label and annotate (`writers.get_writer`)


@dataclass(frozen=True)
class DetectSettings:
    """How to detect (`detection.detect_recording`): decoding (None: the model's own thresholds), test-time
    passes, a confidence floor, and sensor-reading options given by the user (over the model's)."""

    decode: DecodeConfig | None = None
    tta: int = 1
    min_confidence: float = 0.0
    sensor: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """Training options (`train.train`)."""

    loss: str = "counts"
    classes: list[str] | None = None
    cmax: int | None = None
    steps: int = 3000
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    context_s: float = 0.3
    stretch_factors: list[float] = field(default_factory=lambda: stretch_factors(*DEFAULT_STRETCH))
    band_limit: float = 0.0  # share of training copies heard as if recorded at a lower sample rate
    band_limit_rates_hz: list[float] | None = None  # LOW, HIGH of those rates (default: 1/4 to 3/4 of the front end's)
    background: list[str] = field(default_factory=list)  # audio files or folders mixed under training copies
    background_share: float = 0.5  # share of training copies that get a background
    background_db: list[float] = field(default_factory=lambda: [-10.0, 10.0])  # its level against the copy, LOW, HIGH
    val_fraction: float = 0.1
    validate_every: int = 250
    softness_s: float = 0.1
    alpha_start: float = 0.2
    alpha_end: float = 0.97  # label-noise bench, 100 ms noise: 0.9 (the paper) kept 96 % of the clean F1, 0.97 99 %
    alpha_ramp_steps: int | None = None
    edge_count_prior: bool = True
    label_noise_s: float = 0.0
    label_noise_kind: str = "gaussian"
    p_zero: float = 0.5
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = 1  # torch and numba threads per training process (None: also 1)


@dataclass
class ModelSpec:
    """Everything a model file stores besides the weights."""

    classes: list[str]
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)


T = TypeVar("T")


def from_dict(cls: type[T], values: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from a plain dict, rejecting unknown keys with a message naming them.

    A field whose type is a dataclass (e.g. `FrontendConfig.sensor`) is built the same way from a nested dict,
    so its unknown keys are rejected too, named with `where` and the field.
    """
    if not isinstance(values, Mapping):
        raise EventcountError(f"{where}: expected a mapping of option: value, got {values!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise EventcountError(f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _nested(hints[name], value, f"{where} {name}") for name, value in values.items()})


def _nested(hint: Any, value: Any, where: str) -> Any:
    """`value` built into the dataclass that `hint` names (alone or in a union with None), else unchanged."""
    for candidate in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(candidate) and isinstance(value, Mapping):
            return from_dict(candidate, value, where)
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (empty file -> {})."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise EventcountError(f"{path}: cannot read config file ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise EventcountError(f"{path}: not valid YAML ({err})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EventcountError(f"{path}: expected a mapping of option: value at the top level")
    return data
