"""What the page plays and draws of a clip: its audio as WAV bytes, a min/max envelope per channel, a spectrogram."""

from __future__ import annotations

import base64
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


def spectrogram(mono: np.ndarray, rate: float, columns: int = 400, bands: int = 64,
                range_db: float = 80.0) -> dict[str, Any]:
    """A log-power spectrogram for drawing: `columns` frames × `bands` log-spaced bands (30 Hz to half the
    rate), each cell 0..255 over the clip's top `range_db` decibels; `data` is base64, band by band from the
    lowest, each band's columns in time order."""
    n_fft = 1 << max(6, int(np.log2(0.025 * rate)))  # 12-25 ms
    hop = max(1, mono.size // columns)
    padded = np.pad(mono.astype(np.float64), (n_fft // 2, n_fft))
    starts = np.arange(columns) * hop
    frames = padded[starts[:, None] + np.arange(n_fft)] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # [columns, n_fft / 2 + 1]
    edges = np.unique(np.geomspace(30.0, rate / 2, bands + 1) * n_fft / rate).astype(np.int64)
    edges = np.clip(edges, 1, power.shape[1] - 1)
    pooled = np.maximum.reduceat(power, np.unique(edges), axis=1)[:, :-1]
    decibels = 10 * np.log10(pooled + 1e-12)
    scaled = np.clip((decibels - (decibels.max() - range_db)) / range_db, 0, 1)
    data = np.round(scaled.T * 255).astype(np.uint8)  # [bands, columns]
    return {"columns": int(data.shape[1]), "bands": int(data.shape[0]),
            "data": base64.b64encode(data.tobytes()).decode()}


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
        if self.clips.sensor(clip.recording):
            return {"rate": rate, "channels": envelope(data)}
        mono = data.mean(axis=1)
        return {"rate": rate, "channels": envelope(mono[:, None]), "spectrogram": spectrogram(mono, rate)}

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
