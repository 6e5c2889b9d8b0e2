"""Training data: count-label clips over cached, augmented feature frames, served as padded batches."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.special
import torch

from eventcount.annotations import events_by_class, read_events
from eventcount.augment import stretch
from eventcount.config import FrontendConfig
from eventcount.features import FeatureExtractor, detection_frames, fit_norm_prior, working_rate
from eventcount.labels import Clip, CountTable, clip_frame_range
from eventcount.recordings import event_file_for, read_signal, signal_duration

NORM_PRIOR_RECORDINGS = 24
EDGE_COUNT_BINS = 6  # counts kept of an uncertain clip count (the most likely ones; the rest is negligible)


@dataclass
class Batch:
    """Model input [B, 2, C + T, F] whose first C frames are unlabelled context; labels cover the rest.

    counts [B, D]; lengths [B] (labelled frames); targets [B, T, D] 0/1 event frames or None;
    count_prior: the distribution of each clip's count when its timestamps are uncertain (`edge_count_distribution`).
    """

    features: torch.Tensor
    context: int
    counts: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor | None
    count_prior: tuple[torch.Tensor, torch.Tensor] | None = None


def edge_count_distribution(times_s: np.ndarray, start_s: float, end_s: float, softness_s: float,
                            bins: int = EDGE_COUNT_BINS) -> tuple[int, np.ndarray]:
    """How many of the true events lie in [start_s, end_s) when each timestamp is off by Gaussian noise of
    std `softness_s`: (low, probabilities of the counts low .. low + bins - 1).

    Each timestamp's event is inside with probability Phi((end - t) / s) - Phi((start - t) / s); the count is
    their Poisson-binomial sum. Timestamps near an edge make it uncertain, the others are certain.
    """
    times_s = np.asarray(times_s, dtype=np.float64)
    if softness_s <= 0:
        inside = int(np.sum((times_s >= start_s) & (times_s < end_s)))
        return inside, np.eye(bins)[0]
    near = times_s[(times_s > start_s - 6 * softness_s) & (times_s < end_s + 6 * softness_s)]
    p_inside = scipy.special.ndtr((end_s - near) / softness_s) - scipy.special.ndtr((start_s - near) / softness_s)
    sure = int(np.sum(p_inside > 1 - 1e-9))
    dist = np.ones(1)
    for p in p_inside[(p_inside > 1e-9) & (p_inside <= 1 - 1e-9)]:
        dist = np.convolve(dist, [1.0 - p, p])
    first = int(np.clip(np.argmax(dist) - bins // 2, 0, max(0, dist.size - bins)))
    kept = np.zeros(bins)
    part = dist[first: first + bins]
    kept[: part.size] = part / part.sum()
    return sure + first, kept


@dataclass
class Recording:
    """One recording's features per stretch factor ([2, T, F] float16) and, if known, its event times."""

    path: Path
    duration_s: float
    features: dict[float, torch.Tensor]
    events: dict[str, np.ndarray] | None = None


def load_events(path: Path, events_dir: Path | None, classes: list[str], class_map: dict[str, str] | None):
    """Event times per class for a recording, from its event file in `events_dir` (None: beside it)."""
    return events_by_class(read_events(event_file_for(path, events_dir)), classes, class_map)


def sensor_channels(frontend: FrontendConfig) -> int:
    """Channels a front end reads: the sensor's (resolved by `resolve_frontend`), 1 for audio."""
    return frontend.sensor.channels if frontend.kind == "sensor" else 1


def resolve_frontend(frontend: FrontendConfig, paths: list[Path], fit_prior: bool) -> FrontendConfig:
    """A copy of `frontend` with what the training data decides: a sensor's channel count (from the first
    recording) and, with `fit_prior`, the normalisation prior of the first `NORM_PRIOR_RECORDINGS` recordings.
    Every recording is checked to be readable first, so a bad file is named before features are computed."""
    frontend = copy.deepcopy(frontend)
    for path in paths:
        signal_duration(path, frontend.sensor)
    if frontend.kind == "sensor":
        frontend.sensor.channels = int(read_signal(paths[0], sensor_options=frontend.sensor).data.shape[1])
    if fit_prior:
        extractor = FeatureExtractor(frontend, sensor_channels(frontend))
        samples = [extractor.prepare(read_signal(p, sensor_options=frontend.sensor))
                   for p in paths[:NORM_PRIOR_RECORDINGS]]
        fit_norm_prior(frontend, extractor, samples)
    return frontend


class ClipData:
    """The clips of a count table with the features of their recordings, ready for batching.

    `frontend` is used as given (see `resolve_frontend` for the prior and a sensor's channels); it is never
    written to.
    """

    def __init__(self, table: CountTable, frontend: FrontendConfig, factors: list[float],
                 with_events: bool = False, events_dir: Path | None = None,
                 class_map: dict[str, str] | None = None, progress=None,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.table = table
        self.frontend = frontend
        self.factors = factors
        self.recordings: dict[Path, Recording] = {}
        paths = table.recordings()
        for path in paths:  # an unreadable file fails now, before any features are computed
            signal_duration(path, frontend.sensor)
        self.channels = sensor_channels(frontend)
        extractor = FeatureExtractor(frontend, self.channels)
        rate = working_rate(frontend)
        augment = augment or (lambda samples: samples)
        for i, path in enumerate(paths):  # one recording's samples in memory at a time
            samples = extractor.prepare(read_signal(path, sensor_options=frontend.sensor))
            feats = {f: extractor(augment(stretch(samples, rate, f))).half() for f in factors}
            events = load_events(path, events_dir, table.classes, class_map) if with_events else None
            self.recordings[path] = Recording(path, samples.shape[-1] / rate, feats, events)
            if progress:
                progress(i + 1, len(paths))
        self.clips = list(table.clips)

    @property
    def n_features(self) -> int:
        return next(iter(next(iter(self.recordings.values())).features.values())).shape[2]

    def clip_frames(self, clip: Clip, factor: float) -> tuple[int, int]:
        """Labelled frame range [a, b) of a clip in the copy stretched by `factor`: the detection frames of
        its interval (shifted by the front end's detection delay, as the targets are)."""
        n = self.recordings[clip.path].features[factor].shape[1]
        return clip_frame_range(clip.start_s, clip.end_s, n, self.frontend.frame_rate,
                                self.frontend.detection_delay(), factor)

    def batch(self, indices: list[int], factors: list[float], context: int, with_targets: bool,
              edge_softness_s: float | None = None) -> Batch:
        """Assemble clips `indices` (each stretched by its factor) into a padded batch; with `edge_softness_s`
        (and targets) each clip's count is a distribution (`edge_count_distribution`) instead of a number."""
        pieces, lengths, targets, priors = [], [], [], []
        for index, factor in zip(indices, factors, strict=True):
            clip = self.clips[index]
            a, b = self.clip_frames(clip, factor)
            feats = self.recordings[clip.path].features[factor]
            have = min(context, a)
            piece = feats[:, a - have: b].float()
            pieces.append(torch.nn.functional.pad(piece, (0, 0, context - have, 0)))
            lengths.append(b - a)
            if with_targets:
                targets.append(self._targets(clip, factor, a, b))
                if edge_softness_s is not None:
                    priors.append(self._count_prior(clip, factor, a, b, edge_softness_s * factor))
        width = max(p.shape[1] for p in pieces)
        x = torch.stack([torch.nn.functional.pad(p, (0, 0, 0, width - p.shape[1])) for p in pieces])
        counts = torch.tensor([self.clips[i].counts for i in indices], dtype=torch.long)
        y = None
        if with_targets:
            y = torch.zeros(len(indices), width - context, len(self.table.classes))
            for row, target in enumerate(targets):
                y[row, : target.shape[0]] = target
        prior = None
        if priors:
            prior = (torch.tensor([[low for low, _ in p] for p in priors], dtype=torch.long),
                     torch.tensor(np.array([[w for _, w in p] for p in priors])).float().log())
        return Batch(x, context, counts, torch.tensor(lengths), y, prior)

    def _count_prior(self, clip: Clip, factor: float, a: int, b: int, softness_s: float):
        """Per class (low, weights) of the clip's count given its uncertain timestamps (stretched times)."""
        events = self.recordings[clip.path].events or {}
        rate, delay = self.frontend.frame_rate, self.frontend.detection_delay()
        start, end = (a - delay) / rate, (b - delay) / rate  # the event times whose detection frame is in [a, b)
        return [edge_count_distribution(events.get(name, np.empty(0)) * factor, start, end, softness_s)
                for name in self.table.classes]

    def _targets(self, clip: Clip, factor: float, a: int, b: int) -> torch.Tensor:
        events = self.recordings[clip.path].events
        if events is None:
            raise ValueError(f"{clip.path}: no event times loaded (give --events)")
        target = torch.zeros(b - a, len(self.table.classes))
        for d, name in enumerate(self.table.classes):
            frames = detection_frames(events.get(name, np.empty(0)) * factor, self.frontend) - a
            frames = frames[(frames >= 0) & (frames < b - a)]
            target[frames, d] = 1.0
        return target
