"""The one onset rule of the drum renderings: the first crossing of -20 dB below a hit's peak."""

from __future__ import annotations

import numpy as np

ONSET_DB = -20.0  # a hit's onset: first sample within this many dB of the hit's peak


def hit_onset(audio: np.ndarray, rate: int, start_s: float, window_s: float = 0.1) -> float | None:
    """Time (s) of the first crossing, after `start_s`, of ONSET_DB below the hit's peak; None if silent.

    The crossing is interpolated between samples.
    """
    first = int(start_s * rate)
    segment = np.abs(audio[first:first + int(window_s * rate)])
    peak = float(segment.max(initial=0.0))
    if peak < 1e-5:
        return None
    threshold = peak * 10 ** (ONSET_DB / 20)
    i = int(np.argmax(segment >= threshold))
    below = segment[i - 1] if i else 0.0
    return (first + i - 1 + (threshold - below) / (segment[i] - below)) / rate
