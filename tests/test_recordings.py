"""The recording layer: extension rules, discovery, event files beside recordings, and reading audio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from eventcount.errors import EventcountError
from eventcount.recordings import (
    event_file_for,
    find_recordings,
    is_event_file,
    is_sensor_file,
    iter_audio_blocks,
    read_samples,
    read_signal,
    recording_extensions,
    signal_duration,
)

RATE = 8000


def audio(path: Path, samples: np.ndarray | float = 0.1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.zeros(int(samples * RATE), np.float32) if isinstance(samples, float) else samples
    sf.write(path, data, RATE)
    return path


def touch(path: Path, text: str = "0.5\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_extension_rules() -> None:
    assert ".wav" in recording_extensions("audio") and ".csv" not in recording_extensions("audio")
    assert recording_extensions("sensor") == {".csv", ".npy"}
    assert ".npy" in recording_extensions(None) and ".csv" not in recording_extensions(None)
    assert is_sensor_file("walk.CSV") and is_sensor_file(Path("a/b.npy")) and not is_sensor_file("song.wav")
    assert is_event_file("song.events.tsv") and is_event_file("a.labels.txt") and not is_event_file("a.wav")
    with pytest.raises(EventcountError, match="unknown recording kind 'video'"):
        recording_extensions("video")


def test_find_recordings_searches_folders_sorted(tmp_path: Path) -> None:
    a = audio(tmp_path / "d" / "b.wav")
    b = audio(tmp_path / "d" / "sub" / "a.flac")
    touch(tmp_path / "d" / "notes.md")
    touch(tmp_path / "d" / ".hidden.wav")
    assert find_recordings([tmp_path / "d"]) == [a, b]
    assert find_recordings([b, tmp_path / "d"]) == [b, a]  # files as given, each once
    with pytest.raises(EventcountError, match="no such file"):
        find_recordings([tmp_path / "nope"])
    with pytest.raises(EventcountError, match="no recordings found"):
        find_recordings([tmp_path / "d" / "sub"], kind="sensor")


def test_find_recordings_skips_event_files(tmp_path: Path) -> None:
    walk = touch(tmp_path / "walk.csv", "t,x\n0,1\n1,2\n")
    touch(tmp_path / "walk.events.csv", "time_s\n0.5\n")
    touch(tmp_path / "walk.events.tsv")
    assert find_recordings([tmp_path], kind="sensor") == [walk]


def test_symlink_loops_are_named(tmp_path: Path) -> None:
    (tmp_path / "a.wav").symlink_to(tmp_path / "b.wav")
    (tmp_path / "b.wav").symlink_to(tmp_path / "a.wav")
    with pytest.raises(EventcountError, match=r"a\.wav: symbolic link loop"):
        find_recordings([tmp_path / "a.wav"])
    with pytest.raises(EventcountError, match=r"\.wav: symbolic link loop"):
        find_recordings([tmp_path])
    folder = tmp_path / "tree"
    audio(folder / "x.wav")
    (folder / "up").symlink_to(folder)
    with pytest.raises(EventcountError, match=r"tree/up: symbolic link loop"):
        find_recordings([folder])
    (tmp_path / "gone.wav").symlink_to(tmp_path / "missing.wav")
    with pytest.raises(EventcountError, match=r"gone\.wav: broken symbolic link"):
        find_recordings([tmp_path / "gone.wav"])


def test_linked_folders_are_followed_once(tmp_path: Path) -> None:
    x = audio(tmp_path / "real" / "x.wav")
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "link").symlink_to(tmp_path / "real")
    assert find_recordings([tmp_path / "top"]) == [tmp_path / "top" / "link" / "x.wav"]
    assert find_recordings([tmp_path]) == [x]  # the same folder reached twice is searched once


def test_event_file_beside_or_in_a_folder(tmp_path: Path) -> None:
    recording = audio(tmp_path / "audio" / "song.wav")
    beside = touch(tmp_path / "audio" / "song.txt")
    assert event_file_for(recording) == beside
    events = tmp_path / "events"
    touch(events / "song.txt")
    preferred = touch(events / "song.events.tsv")
    assert event_file_for(recording, events) == preferred


def test_event_file_with_dotted_recording_name(tmp_path: Path) -> None:
    (tmp_path / "song.take1.wav").touch()
    target = touch(tmp_path / "song.events.tsv")
    assert event_file_for(tmp_path / "song.take1.wav") == target


def test_event_file_missing(tmp_path: Path) -> None:
    (tmp_path / "song.wav").touch()
    with pytest.raises(EventcountError, match=r"song\.wav: no event file"):
        event_file_for(tmp_path / "song.wav", tmp_path)


def test_read_audio_whole_and_in_blocks(tmp_path: Path) -> None:
    data = np.sin(np.arange(RATE) / 10).astype(np.float32) * 0.5
    path = audio(tmp_path / "a.wav", data)
    signal = read_signal(path)
    assert signal.rate == RATE and signal.data.shape == (RATE, 1)
    blocks = [block for block, _ in iter_audio_blocks(path, 0.3)]
    np.testing.assert_allclose(np.concatenate(blocks), signal.data[:, 0], atol=1e-4)
    assert signal_duration(path) == pytest.approx(1.0)
    assert read_signal(path.read_bytes(), name="a.wav").data.shape == (RATE, 1)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_audio_with_nan_or_inf_samples_is_refused(tmp_path: Path, value: float) -> None:
    data = np.zeros(RATE, np.float32)
    data[RATE // 2] = value
    path = tmp_path / "bad.wav"
    sf.write(path, data, RATE, subtype="FLOAT")
    for read in (lambda: read_signal(path), lambda: list(iter_audio_blocks(path, 0.1))):
        with pytest.raises(EventcountError, match=r"bad\.wav: sample 4000 \(at 0\.500 s\) is NaN or infinite"):
            read()


def test_wav_cut_short_is_refused(tmp_path: Path) -> None:
    whole = audio(tmp_path / "whole.wav", 1.0)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: os.path.getsize(whole) // 2])
    message = r"cut\.wav: the file is cut short: its header promises 8000 samples \(1\.000 s\) but the file holds only"
    for read in (lambda: read_signal(cut), lambda: list(iter_audio_blocks(cut, 0.1)),
                 lambda: signal_duration(cut), lambda: read_signal(cut.read_bytes(), name="cut.wav")):
        with pytest.raises(EventcountError, match=message):
            read()
    assert read_signal(whole).data.shape == (RATE, 1)  # a whole file passes the check


def test_unreadable_audio(tmp_path: Path) -> None:
    path = touch(tmp_path / "fake.wav", "not audio")
    with pytest.raises(EventcountError, match=r"fake\.wav: cannot read audio"):
        read_signal(path)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
@pytest.mark.parametrize("channels", [1, 2])
def test_read_samples_equal_libsndfile_float(tmp_path: Path, subtype: str, channels: int) -> None:
    """16-bit PCM is scaled by eventcount, not by libsndfile: the values must be the same, to the bit."""
    rng = np.random.default_rng(0)
    data = rng.integers(-32768, 32768, size=(5000, channels)).astype(np.int16)
    data[0], data[1] = -32768, 32767
    path = tmp_path / f"a_{subtype}.wav"
    sf.write(path, data, 44100, subtype=subtype)
    expected = sf.read(path, dtype="float32", always_2d=True)[0]
    with sf.SoundFile(path) as handle:
        first, rest = read_samples(handle, 1234), read_samples(handle)
    assert first.dtype == rest.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([first, rest]), expected)
    blocks = np.concatenate([block for block, _ in iter_audio_blocks(path, 0.01)])
    np.testing.assert_array_equal(blocks, expected.mean(axis=1))
