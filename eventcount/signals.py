"""The `Signal` record: a uniformly sampled recording, what every reader returns and the features read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
