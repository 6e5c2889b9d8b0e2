"""Reading recordings: audio through soundfile, sensor files through `eventcount.sensors`."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from eventcount.errors import EventcountError


@dataclass
class Signal:
    """A uniformly sampled recording.

    data: float32 array [n_samples, channels]; rate: samples per second; source: where it came from
    (a path or an archive member), used in error messages.
    """

    data: np.ndarray
    rate: float
    source: str = ""

    @property
    def duration_s(self) -> float:
        return self.data.shape[0] / self.rate


AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".opus", ".w64", ".caf"}
SENSOR_EXTENSIONS = {".csv", ".npy", ".txt"}
SENSOR_RECORDING_EXTENSIONS = frozenset({".csv", ".npy"})  # what folders are searched for; .txt is too ambiguous


def recording_extensions(kind: str) -> set[str]:
    """File extensions a frontend of this kind ("audio" or "sensor") reads from folders."""
    return set(SENSOR_RECORDING_EXTENSIONS if kind == "sensor" else AUDIO_EXTENSIONS)


def is_sensor_file(name: str) -> bool:
    """Whether a file name looks like a sensor recording (CSV or .npy) rather than audio."""
    return Path(name).suffix.lower() in SENSOR_RECORDING_EXTENSIONS


def read_signal(
    source: str | Path | bytes, name: str | None = None, sensor_options: dict[str, Any] | None = None
) -> Signal:
    """Read a recording from a path or from bytes (an archive member); `name` decides the format for bytes.

    Audio goes through soundfile (any rate and channel count); `.csv`/`.npy` through `eventcount.sensors`
    with `sensor_options` (fields of `sensors.SensorOptions`).
    """
    label = str(name if name is not None else source)
    if is_sensor_file(label):
        return _read_sensor(source, label, sensor_options or {})
    return read_audio(source, label)


def read_audio(source: str | Path | bytes, label: str) -> Signal:
    """Read audio with soundfile as float32 [n, channels]; clear errors for unreadable or empty files."""
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        data, rate = sf.read(handle, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise EventcountError(f"{label}: cannot read audio ({_short(err)})") from None
    except OSError as err:
        raise EventcountError(f"{label}: cannot read audio ({err.strerror or err})") from None
    if data.shape[0] == 0:
        raise EventcountError(f"{label}: the recording contains no samples")
    if not np.isfinite(data).all():
        raise EventcountError(f"{label}: the audio contains NaN or infinite samples")
    return Signal(data, float(rate), label)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the audio header, without reading the samples."""
    info = _audio_info(path)
    return info.frames / info.samplerate


def audio_rate(path: str | Path) -> int:
    """Sample rate in Hz from the audio header."""
    return int(_audio_info(path).samplerate)


def _audio_info(path: str | Path):
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise EventcountError(f"{path}: cannot read audio ({_short(err)})") from None


def signal_duration(path: str | Path, sensor_options: dict[str, Any] | None = None) -> float:
    """Duration in seconds of any supported recording."""
    if is_sensor_file(str(path)):
        return read_signal(path, sensor_options=sensor_options).duration_s
    return audio_duration(path)


def iter_audio_blocks(path: str | Path, block_s: float) -> Iterator[tuple[np.ndarray, float]]:
    """Yield (mono float32 block, rate) pieces of an audio file, so long files run in constant memory."""
    try:
        with sf.SoundFile(str(path)) as handle:
            rate = float(handle.samplerate)
            if handle.frames == 0:
                raise EventcountError(f"{path}: the recording contains no samples")
            block = max(1, int(block_s * rate))
            for piece in handle.blocks(blocksize=block, dtype="float32", always_2d=True):
                yield piece.mean(axis=1), rate
    except (sf.LibsndfileError, RuntimeError) as err:
        raise EventcountError(f"{path}: cannot read audio ({_short(err)})") from None


def _read_sensor(source: str | Path | bytes, label: str, options: dict[str, Any]) -> Signal:
    from eventcount import sensors

    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    if label.lower().endswith(".npy"):
        return sensors.read_sensor_npy(handle, options.get("rate"), source=label)
    known = {f.name for f in dataclasses.fields(sensors.SensorOptions)}
    return sensors.read_sensor_csv(handle, sensors.SensorOptions(**{k: v for k, v in options.items() if k in known}),
                                   source=label)


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
