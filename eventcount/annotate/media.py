"""What the page plays and draws of a clip: its audio as WAV bytes and a min/max envelope per channel."""

from __future__ import annotations

import io
import threading
from typing import Any

import numpy as np
import soundfile as sf

from eventcount.annotate.clips import ClipList, ClipRef
from eventcount.errors import EventcountError
from eventcount.recordings import read_signal
from eventcount.signals import Signal

COLUMNS = 800  # envelope points per channel: about one per pixel of the page's canvas
SENSOR_CACHE = 4  # sensor files are read whole; keep the last few


def envelope(data: np.ndarray, columns: int = COLUMNS) -> list[dict[str, list[float]]]:
    """Per channel of data [n, channels], the minimum and maximum of each of `columns` equal slices."""
    n = data.shape[0]
    if n == 0:
        return [{"min": [], "max": []} for _ in range(data.shape[1])]
    starts = np.linspace(0, n, min(columns, n) + 1).astype(np.int64)[:-1]
    return [{"min": np.round(np.minimum.reduceat(data[:, c], starts).astype(np.float64), 5).tolist(),
             "max": np.round(np.maximum.reduceat(data[:, c], starts).astype(np.float64), 5).tolist()}
            for c in range(data.shape[1])]


class MediaReader:
    """Reads clip segments of a session's recordings: audio by frame range, sensor files whole (cached)."""

    def __init__(self, clips: ClipList, sensor_options: dict[str, Any] | None = None) -> None:
        self.clips = clips
        self.sensor_options = sensor_options or {}
        self._signals: dict[int, Signal] = {}
        self._lock = threading.Lock()

    def segment(self, clip: ClipRef) -> tuple[np.ndarray, float]:
        """The clip's samples [n, channels] (float32) and their rate."""
        path = self.clips.recordings[clip.recording]
        if self.clips.sensor(clip.recording):
            signal = self._sensor(clip.recording)
            return signal.data[round(clip.start_s * signal.rate): round(clip.end_s * signal.rate)], signal.rate
        try:
            rate = sf.info(str(path)).samplerate
            data, _ = sf.read(str(path), start=round(clip.start_s * rate), stop=round(clip.end_s * rate),
                              dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            raise EventcountError(f"{path}: cannot read audio ({err})") from None
        return data, float(rate)

    def _sensor(self, recording: int) -> Signal:
        with self._lock:
            if recording not in self._signals:
                if len(self._signals) >= SENSOR_CACHE:
                    self._signals.pop(next(iter(self._signals)))
                self._signals[recording] = read_signal(self.clips.recordings[recording],
                                                       sensor_options=self.sensor_options)
            return self._signals[recording]

    def plot(self, clip: ClipRef) -> dict[str, Any]:
        """What the canvas draws: the envelope (audio: of the mono mix; sensors: every channel)."""
        data, rate = self.segment(clip)
        if not self.clips.sensor(clip.recording):
            data = data.mean(axis=1, keepdims=True)
        return {"rate": rate, "channels": envelope(data)}

    def wav(self, clip: ClipRef) -> bytes:
        """The clip's audio as 16-bit WAV (more than two channels are mixed down to one)."""
        if self.clips.sensor(clip.recording):
            raise EventcountError(f"{self.clips.recordings[clip.recording].name} is a sensor recording: no audio")
        data, rate = self.segment(clip)
        if data.shape[1] > 2:
            data = data.mean(axis=1, keepdims=True)
        buffer = io.BytesIO()
        sf.write(buffer, data, int(rate), format="WAV", subtype="PCM_16")
        return buffer.getvalue()
