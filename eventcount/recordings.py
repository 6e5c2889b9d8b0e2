"""The recording layer: which files are recordings, finding them, their event files, and reading them.

Every command goes through here: `find_recordings` turns the paths a user gives into recording files,
`event_file_for` finds the event file beside (or for) a recording, and `read_signal` reads audio (soundfile),
a sensor CSV file (`eventcount.sensors`) or a `.npy` array into a `Signal`. Audio can also be streamed block by block
(`iter_audio_blocks`) so long files run in constant memory.
"""

from __future__ import annotations

import errno
import io
import os
import struct
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import soundfile as sf

from eventcount import sensors
from eventcount.config import SensorConfig
from eventcount.errors import EventcountError
from eventcount.signals import Signal
from eventcount.timestamps import fill_missing

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".opus", ".w64",
                              ".caf"})
SENSOR_EXTENSIONS = frozenset({".csv", ".npy"})
# event-file name endings, most specific first (so `a.events.tsv` is stem `a`, not `a.events`)
EVENT_SUFFIXES = (".events.tsv", ".events.csv", ".events.txt", ".labels.txt", ".tsv", ".txt", ".csv")


# ---------------------------------------------------------------------------------------------- names


def recording_extensions(kind: str | None) -> frozenset[str]:
    """File extensions searched for in folders: "audio" audio files, "sensor" `.csv` and `.npy`, None audio
    files and `.npy` arrays (a CSV file in a folder may be anything, so it needs kind "sensor")."""
    if kind == "audio":
        return AUDIO_EXTENSIONS
    if kind == "sensor":
        return SENSOR_EXTENSIONS
    if kind is None:
        return AUDIO_EXTENSIONS | {".npy"}
    raise EventcountError(f"unknown recording kind '{kind}'; expected audio or sensor")


def is_sensor_file(path: str | Path) -> bool:
    """Whether a file name looks like a sensor recording (CSV or .npy) rather than audio."""
    return Path(path).suffix.lower() in SENSOR_EXTENSIONS


def is_event_file(path: str | Path) -> bool:
    """Whether a file name is an event file's: `<stem>.events.<ext>`, an Audacity `.labels.txt`, or a
    plain `.tsv`/`.txt`/`.csv` (these last three can also be sensor recordings; see `find_recordings`)."""
    return Path(path).name.lower().endswith(EVENT_SUFFIXES)


def _named_as_events(path: Path) -> bool:
    """Named unambiguously as an event file (never a recording): `*.events.*` or `*.labels.txt`."""
    name = path.name.lower()
    return ".events." in name or name.endswith(".labels.txt")


# ---------------------------------------------------------------------------------------------- discovery


def find_recordings(sources: Iterable[str | Path], kind: str | None = None) -> list[Path]:
    """The recordings among `sources`: files as given, folders searched recursively (sorted).

    In folders only files with `recording_extensions(kind)` count; event files (`*.events.*`) and hidden
    files are skipped. A file given by name is taken whatever its extension. Each file appears once.
    Raises `EventcountError` naming the path for a missing path, a broken link or a symbolic link loop,
    and when nothing is found.
    """
    sources = [Path(s) for s in sources]
    extensions = recording_extensions(kind)
    found: dict[Path, None] = {}
    for source in sources:
        _check_path(source)
        if source.is_dir():
            found.update(dict.fromkeys(_search(source, extensions)))
        else:
            found[source] = None
    if not found:
        raise EventcountError(f"no recordings found in {', '.join(map(str, sources))} "
                              f"(looked for {', '.join(sorted(extensions))})")
    return list(found)


def _check_path(path: Path) -> None:
    """Raise a clear error when `path` cannot be opened: missing, a broken link, or a symbolic link loop."""
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise EventcountError(f"{path}: symbolic link loop (the link leads back to itself); "
                                  "point it at a real file or folder") from None
        if path.is_symlink():
            raise EventcountError(f"{path}: broken symbolic link (it points to {os.readlink(path)}, which does "
                                  "not exist)") from None
        if error.errno == errno.ENOENT:
            raise EventcountError(f"{path}: no such file or directory") from None
        raise EventcountError(f"{path}: {error.strerror or error}") from None


def _search(folder: Path, extensions: frozenset[str]) -> list[Path]:
    """Recording files under `folder`, following symbolic links but never round a loop, sorted."""
    found: list[Path] = []
    visited: set[str] = set()

    def failed(error: OSError) -> None:
        raise EventcountError(f"{error.filename}: cannot list the folder ({error.strerror or error})")

    for root, dirs, files in os.walk(folder, onerror=failed, followlinks=True):
        real = os.path.realpath(root)
        visited.add(real)
        kept = []
        for name in sorted(dirs):
            target = os.path.realpath(os.path.join(root, name))
            if real == target or real.startswith(target + os.sep):
                raise EventcountError(f"{Path(root) / name}: symbolic link loop (it leads back to {target}, "
                                      "which contains it); remove the link or search a folder below it")
            if not name.startswith(".") and target not in visited:
                kept.append(name)
        dirs[:] = kept
        for name in files:
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in extensions or _named_as_events(path):
                continue
            _check_path(path)
            found.append(path)
    return sorted(found)


# ---------------------------------------------------------------------------------------------- event files


def event_file_for(recording: Path, folder: Path | None = None,
                   suffixes: tuple[str, ...] = EVENT_SUFFIXES) -> Path:
    """The event file of a recording: `<stem><suffix>` in `folder`, else beside the recording.

    Suffixes are tried most specific first; the stem is the name without its last extension, then without
    every extension (`song.take1.wav` finds `song.take1.events.tsv`, then `song.events.tsv`).
    """
    recording = Path(recording)
    folders = [folder, recording.parent] if folder is not None else [recording.parent]
    stem = recording.name.split(".")[0] if recording.suffix else recording.name
    for place in folders:
        for suffix in suffixes:
            for name in (recording.stem + suffix, stem + suffix):
                candidate = place / name
                if candidate.exists() and candidate != recording:
                    return candidate
    where = " or ".join(str(f) for f in folders)
    raise EventcountError(
        f"{recording}: no event file found in {where} (looked for {recording.stem}{{{','.join(suffixes)}}})"
    )


# ---------------------------------------------------------------------------------------------- reading


def read_signal(
    source: str | Path | bytes, name: str | None = None,
    sensor_options: SensorConfig | Mapping[str, Any] | None = None,
) -> Signal:
    """Read a recording from a path or from bytes (an archive member); `name` decides the format for bytes.

    Audio goes through soundfile (any rate and channel count); `.csv`/`.npy` through `eventcount.sensors`
    with `sensor_options` (a `SensorConfig`, or a mapping of its fields on top of the defaults).
    """
    label = str(name if name is not None else source)
    if is_sensor_file(label):
        return _read_sensor(source, label, _sensor_config(sensor_options))
    return read_audio(source, label)


def read_audio(source: str | Path | bytes, label: str) -> Signal:
    """Read audio with soundfile as float32 [n, channels]; clear errors for unreadable, truncated or empty
    files and for NaN or infinite samples."""
    _check_wav_size(source, label)
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with sf.SoundFile(handle) as audio:
            data = read_samples(audio)
            expected, rate = audio.frames, audio.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise EventcountError(f"{label}: cannot read audio ({_short(err)})") from None
    except OSError as err:
        raise EventcountError(f"{label}: cannot read audio ({err.strerror or err})") from None
    _check_length(label, data.shape[0], expected, rate)
    if data.shape[0] == 0:
        raise EventcountError(f"{label}: the recording contains no samples")
    _check_finite(label, data, 0, rate)
    return Signal(data, float(rate), label)


def iter_audio_blocks(path: str | Path, block_s: float) -> Iterator[tuple[np.ndarray, float]]:
    """Yield (mono float32 block, rate) pieces of an audio file, so long files run in constant memory.

    Raises `EventcountError` for NaN or infinite samples and for a file shorter than its header says.
    """
    _check_wav_size(path, str(path))
    try:
        with sf.SoundFile(str(path)) as handle:
            rate = float(handle.samplerate)
            if handle.frames == 0:
                raise EventcountError(f"{path}: the recording contains no samples")
            block, done = max(1, int(block_s * rate)), 0
            while (piece := read_samples(handle, block)).shape[0]:
                _check_finite(str(path), piece, done, rate)
                done += piece.shape[0]
                yield mono(piece), rate
            _check_length(str(path), done, handle.frames, rate)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise EventcountError(f"{path}: cannot read audio ({_short(err)})") from None


def read_audio_span(path: str | Path, start_s: float, duration_s: float) -> tuple[np.ndarray, float]:
    """(mono float32 samples, rate) of `duration_s` seconds of an audio file from `start_s` on (less at its end)."""
    _check_wav_size(path, str(path))
    try:
        with sf.SoundFile(str(path)) as handle:
            rate = float(handle.samplerate)
            first = min(int(start_s * rate), handle.frames)
            handle.seek(first)
            data = read_samples(handle, int(np.ceil(duration_s * rate)))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise EventcountError(f"{path}: cannot read audio ({_short(err)})") from None
    _check_finite(str(path), data, first, rate)
    return mono(data), rate


def read_samples(handle: sf.SoundFile, frames: int = -1) -> np.ndarray:
    """The next `frames` (all: -1) of an open sound file as float32 [n, channels], full scale +-1.

    16-bit PCM is read as integers and scaled here: libsndfile's own conversion to float took 7.5 ms a minute
    of 44.1 kHz audio, this 1-2 ms, with the same values (x / 32768 is exact in float32; 2026-12-03)."""
    if handle.subtype != "PCM_16":
        return handle.read(frames, dtype="float32", always_2d=True)
    data = handle.read(frames, dtype="int16", always_2d=True).astype(np.float32)
    data *= np.float32(1 / 32768)
    return data


def mono(data: np.ndarray) -> np.ndarray:
    """[n, channels] -> [n]: the mean of the channels (a view of the only one for mono)."""
    return data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the audio header, without reading the samples."""
    info = _audio_info(path)
    return info.frames / info.samplerate


def duration_hint(path: str | Path) -> float | None:
    """Seconds of an audio file from its header, None for other recordings or an unreadable header (for
    planning work only: reading the recording reports its problems)."""
    if Path(path).suffix.lower() not in AUDIO_EXTENSIONS:
        return None
    try:
        return audio_duration(path)
    except EventcountError:
        return None


def audio_rate(path: str | Path) -> int:
    """Sample rate in Hz from the audio header."""
    return int(_audio_info(path).samplerate)


def signal_duration(path: str | Path, sensor_options: SensorConfig | Mapping[str, Any] | None = None) -> float:
    """Duration in seconds of any supported recording (audio: from the header; a WAV file's checked
    against the file's size)."""
    if is_sensor_file(path):
        return read_signal(path, sensor_options=sensor_options).duration_s
    info = _audio_info(path)
    _check_wav_size(path, str(path))
    return info.frames / info.samplerate


def _audio_info(path: str | Path) -> Any:
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise EventcountError(f"{path}: cannot read audio ({_short(err)})") from None


def _check_wav_size(source: str | Path | bytes, label: str) -> None:
    """A WAV file's `data` chunk must fit in the file: libsndfile silently reads a cut-short file as a
    shorter one, so compare the size the header promises with the bytes that follow it."""
    if not (isinstance(source, bytes) or str(source).lower().endswith((".wav", ".wave"))):
        return
    try:
        with (io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")) as handle:
            size = handle.seek(0, io.SEEK_END)
            handle.seek(0)
            riff = handle.read(12)
            if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
                return  # not a plain RIFF WAVE file (RF64, or not WAV at all): soundfile judges it
            block_align, position = 0, 12
            while position + 8 <= size:
                handle.seek(position)
                chunk, length = handle.read(4), struct.unpack("<I", handle.read(4))[0]
                if chunk == b"fmt ":
                    block_align = struct.unpack("<H", handle.read(14)[12:14])[0]
                elif chunk == b"data":
                    held = size - position - 8
                    if block_align and length not in (0, 0xFFFFFFFF) and length > held:  # 0/-1: size unknown
                        _check_length(label, held // block_align, length // block_align, _wav_rate(source))
                    return
                position += 8 + length + (length & 1)
    except (OSError, struct.error):
        return  # unreadable: soundfile reports it


def _wav_rate(source: str | Path | bytes) -> float:
    return float(sf.info(io.BytesIO(source) if isinstance(source, bytes) else str(source)).samplerate)


def _check_length(label: str, read: int, expected: int, rate: float) -> None:
    if read < expected:
        raise EventcountError(f"{label}: the file is cut short: its header promises {expected} samples "
                              f"({expected / rate:.3f} s) but the file holds only {read} ({read / rate:.3f} s); "
                              "re-export or re-copy it")


def _check_finite(label: str, data: np.ndarray, offset: int, rate: float) -> None:
    """NaN or infinite samples make every detection vanish silently: name the first one."""
    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if bad.size:
        first = offset + int(bad[0])
        raise EventcountError(f"{label}: sample {first} (at {first / rate:.3f} s) is NaN or infinite; the file is "
                              "damaged or not audio")


def _read_sensor(source: str | Path | bytes, label: str, options: SensorConfig) -> Signal:
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    if label.lower().endswith(".npy"):
        return read_npy(handle, options.rate, source=label)
    return sensors.read_sensor_csv(handle, options, source=label)


def _sensor_config(options: SensorConfig | Mapping[str, Any] | None) -> SensorConfig:
    """The sensor config to read with: as given, or the defaults with a mapping of options on top."""
    return options if isinstance(options, SensorConfig) else SensorConfig().updated(options)


def read_npy(
    path_or_file: str | os.PathLike[str] | IO[bytes], rate: float | None, source: str = ""
) -> Signal:
    """Read a `.npy` array [n_samples] or [n_samples, channels] sampled at `rate` (samples per second).

    NaN samples are filled by linear interpolation (and counted in a warning); time 0 = the first sample.
    """
    name = source or str(getattr(path_or_file, "name", path_or_file))
    if rate is None:
        raise EventcountError(f"{name}: a .npy array has no timestamps; give its sampling rate with --rate")
    sensors.check_rate(rate)
    values = _npy_values(_load_npy(path_or_file, name), name)
    bad = np.argwhere(np.isinf(values))
    if bad.size:
        raise EventcountError(f"{name}: sample {bad[0][0]}, channel {bad[0][1]} is infinite; "
                              "replace it by NaN (to be interpolated) or a finite value")
    labels = [f"channel {j}" for j in range(values.shape[1])]
    fill_missing(values, np.arange(len(values), dtype=np.float64), labels, name)
    return Signal(np.ascontiguousarray(values, dtype=np.float32), float(rate), name)


def _load_npy(path_or_file: str | os.PathLike[str] | IO[bytes], name: str) -> np.ndarray:
    try:
        loaded = np.load(path_or_file, allow_pickle=False)
    except OSError as error:
        raise EventcountError(f"{name}: cannot read the file ({error.strerror or error})") from error
    except ValueError as error:
        raise EventcountError(f"{name}: not a .npy array of numbers ({error})") from error
    if not isinstance(loaded, np.ndarray):
        loaded.close()
        raise EventcountError(f"{name}: an .npz archive, not one array; save a single array with numpy.save")
    return loaded


def _npy_values(array: np.ndarray, name: str) -> np.ndarray:
    """The array as float64 [n_samples, channels], checked."""
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
            or array.dtype == np.bool_):
        raise EventcountError(f"{name}: holds {array.dtype} values; a sensor array must hold real numbers")
    if array.ndim not in (1, 2):
        raise EventcountError(f"{name}: array of shape {array.shape}; expected [n_samples] or "
                              "[n_samples, channels]")
    if len(array) < 2 or array.size == 0:
        raise EventcountError(f"{name}: array of shape {array.shape} has fewer than two samples or no channel")
    return np.array(array, dtype=np.float64).reshape(len(array), -1)


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
