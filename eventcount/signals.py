"""The `Signal` record: a uniformly sampled recording, what every reader returns and the features read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Signal:
    """A uniformly sampled recording.

    data: float32 array [n_samples, channels], sample i at i / rate seconds; rate: samples per second;
    source: where it came from (a path or an archive member), used in error messages.
    gaps: (start_s, end_s) stretches where the recording stopped (a sensor log's timestamps jump by more than
    `SensorConfig.max_gap_s`); empty for audio. The contract for everything that reads a Signal with gaps:
    - the samples strictly inside a gap are placeholders (linear interpolation between the last sample before
      and the first after), not measurements: never report an event inside a gap;
    - detection runs on each stretch between gaps on its own (`segments()`: fresh feature and network state,
      as if each stretch were its own file) and shifts the stretch's event times by its start;
    - `gaps` are given in the output (header or manifest) so a reader knows where nothing was looked for.
    Training may use the data whole: a gap has no events and its placeholders no jolts.
    """

    data: np.ndarray
    rate: float
    source: str = ""
    gaps: list[tuple[float, float]] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.data.shape[0] / self.rate

    def segments(self) -> list[tuple[float, Signal]]:
        """The stretches between gaps as (start in seconds, Signal without gaps); [(0.0, self)] without gaps.

        A stretch holds the samples from the first at or after a gap's end up to the last at or before the
        next gap's start (1 % of a sample's tolerance, as the sensor reader's grid), so it equals the
        recording that a file holding only that stretch's rows would give.
        """
        if not self.gaps:
            return [(0.0, self)]
        bounds, start = [], 0
        for gap_start, gap_end in self.gaps:
            bounds.append((start, math.floor(gap_start * self.rate + 0.01) + 1))
            start = math.ceil(gap_end * self.rate - 0.01)
        bounds.append((start, self.data.shape[0]))
        return [(i / self.rate, Signal(self.data[i:j], self.rate, self.source)) for i, j in bounds if j > i]

    def in_gap(self, time_s: float) -> bool:
        """Whether a time (seconds) falls strictly inside one of the gaps."""
        return any(start < time_s < end for start, end in self.gaps)
