"""Evaluation: reference vs estimated event times per file and class, with mir_eval's onset matching."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eventcount.annotations import events_by_class, read_events
from eventcount.atomic import atomic_write
from eventcount.config import DEFAULT_TOLERANCE_S
from eventcount.errors import EventcountError
from eventcount.recordings import EVENT_SUFFIXES, is_event_file

log = logging.getLogger("eventcount")

MAX_TOLERANCE_S = 10.0


def check_tolerance(tolerance_s: float) -> float:
    """A matching window that can make sense: more than 0, at most MAX_TOLERANCE_S."""
    if not 0 < tolerance_s <= MAX_TOLERANCE_S:
        raise EventcountError(f"tolerance: expected more than 0 and at most {MAX_TOLERANCE_S:g} s, "
                              f"got {tolerance_s:g} s")
    return tolerance_s


@dataclass
class Counts:
    """Matching totals for one (file, class) or any pooled set, with the timing offsets of matched hits."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    offsets_s: list[float] = field(default_factory=list)

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.offsets_s + other.offsets_s)

    @property
    def empty(self) -> bool:
        return self.tp + self.fp + self.fn == 0

    def scores(self) -> dict[str, float | int | None]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f_measure = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        offsets = np.asarray(self.offsets_s)
        return {
            "tp": self.tp, "fp": self.fp, "fn": self.fn,
            "precision": precision, "recall": recall, "f_measure": f_measure,
            "offset_mean_s": float(offsets.mean()) if offsets.size else None,
            "offset_std_s": float(offsets.std()) if offsets.size else None,
        }


def match_counts(reference_s: np.ndarray, estimate_s: np.ndarray, tolerance_s: float = DEFAULT_TOLERANCE_S) -> Counts:
    """Match two sorted time arrays one-to-one within +-tolerance (mir_eval.util.match_events).

    mir_eval's validators cap times at 30,000 s; matching is called directly so long recordings work.
    """
    reference_s = np.sort(np.asarray(reference_s, dtype=np.float64))
    estimate_s = np.sort(np.asarray(estimate_s, dtype=np.float64))
    pairs = []
    if reference_s.size and estimate_s.size:
        import mir_eval  # slow to import: only when there is something to match

        pairs = mir_eval.util.match_events(reference_s, estimate_s, tolerance_s)
    offsets = [float(estimate_s[j] - reference_s[i]) for i, j in pairs]
    return Counts(len(pairs), estimate_s.size - len(pairs), reference_s.size - len(pairs), offsets)


def _mean(scores: list[dict]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in ("precision", "recall", "f_measure"):
        out[key] = float(np.mean([s[key] for s in scores])) if scores else None
    offsets = [s["offset_mean_s"] for s in scores if s["offset_mean_s"] is not None]
    out["offset_mean_s"] = float(np.mean(offsets)) if offsets else None
    return out


def evaluate(files: list[tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]], classes: list[str],
             tolerance_s: float) -> dict:
    """Score files given as (name, reference per class, estimate per class).

    Returns {"tolerance_s", "mean", "micro", "per_class": {c: {"mean", "micro"}}, "files": [...]}: "mean"
    averages per-file scores over files, "micro" pools all matches. A (file, class) with no reference and
    no estimate is left out of means.
    """
    per_file = []
    for name, reference, estimate in files:
        counts = {c: match_counts(reference.get(c, np.empty(0)), estimate.get(c, np.empty(0)), tolerance_s)
                  for c in classes}
        per_file.append((name, counts))
    report: dict = {"tolerance_s": tolerance_s, "classes": classes, "per_class": {}, "files": []}
    for c in classes:
        cells = [counts[c] for _, counts in per_file if not counts[c].empty]
        report["per_class"][c] = {"mean": _mean([x.scores() for x in cells]), "micro": sum(cells, Counts()).scores()}
    file_totals = []
    for name, counts in per_file:
        total = sum(counts.values(), Counts())
        file_totals.append(total)
        report["files"].append({"name": name, **total.scores(),
                                "per_class": {c: counts[c].scores() for c in classes}})
    report["mean"] = _mean([t.scores() for t in file_totals if not t.empty])
    report["micro"] = sum(file_totals, Counts()).scores()
    return report


def event_file_stem(path: Path) -> str:
    """A recording's stem from its event file name (`song.events.tsv` -> `song`)."""
    name = path.name
    for suffix in EVENT_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _event_files(path: Path) -> dict[str, Path]:
    if path.is_file():
        return {event_file_stem(path): path}
    if not path.is_dir():
        raise EventcountError(f"{path}: no such file or directory")
    files: dict[str, Path] = {}
    for candidate in sorted(path.rglob("*"), key=_suffix_rank):
        if candidate.is_file() and is_event_file(candidate) and \
                not candidate.name.startswith("."):
            files.setdefault(str(candidate.parent.relative_to(path) / event_file_stem(candidate)), candidate)
    return files


def _suffix_rank(path: Path) -> tuple[int, str]:
    """Sort key: the most specific event-file suffix first, so `walk.events.tsv` wins over a recording
    `walk.csv` (a sensor file) in the same folder."""
    name = path.name.lower()
    rank = next((i for i, suffix in enumerate(EVENT_SUFFIXES) if name.endswith(suffix)), len(EVENT_SUFFIXES))
    return rank, str(path)


def pair_event_files(reference: Path, estimate: Path) -> list[tuple[str, Path, Path]]:
    """(name, reference file, estimate file) pairs: two files, or two folders matched by stem."""
    if reference.is_file() and estimate.is_file():
        return [(event_file_stem(reference), reference, estimate)]
    refs, ests = _event_files(reference), _event_files(estimate)
    names = sorted(set(refs) & set(ests))
    if not names:
        raise EventcountError(f"no event files with matching names in {reference} and {estimate}")
    unmatched = sorted(set(refs) - set(ests))
    missed = [n for n in unmatched if _named_as_events(refs[n])]
    if missed:
        log.warning("%d reference event files have no estimate (counted as all missed): %s", len(missed),
                    ", ".join(missed[:5]))
    ignored = sorted(set(unmatched) - set(missed))
    if ignored:
        log.info("ignored %d files without a counterpart: %s", len(ignored), ", ".join(ignored[:5]))
    return [(n, refs[n], ests.get(n)) for n in sorted(set(names) | set(missed))]


def _named_as_events(path: Path) -> bool:
    """Whether a file is named as an event file (`.events.*`, `.labels.txt`) rather than any text file."""
    return any(tag in path.name.lower() for tag in (".events.", ".labels."))


def evaluate_paths(reference: Path, estimate: Path, tolerance_s: float = DEFAULT_TOLERANCE_S,
                   classes: list[str] | None = None, class_map: dict[str, str] | None = None) -> dict:
    """Read and score event files; `classes` defaults to every class in the references."""
    check_tolerance(tolerance_s)
    files = []
    for name, ref_path, est_path in pair_event_files(reference, estimate):
        ref = events_by_class(read_events(ref_path), None, class_map)
        est = events_by_class(read_events(est_path)) if est_path is not None else {}
        files.append((name, ref, est))
    known = sorted({c for _, ref, est in files for c in (*ref, *est)})
    if classes:
        unknown = [c for c in classes if c not in known]
        if unknown:
            raise EventcountError(f"--classes: unknown class(es) {', '.join(unknown)}; "
                                  f"the files have {', '.join(known) or 'no events'}")
    chosen = classes or sorted({c for _, ref, _ in files for c in ref}) or known
    return evaluate(files, chosen, tolerance_s)


def write_report(path: Path, report: dict) -> None:
    with atomic_write(path) as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")


def score_detector(detector, recordings: list[Path], events_dir: Path | None = None,
                   tolerance_s: float = DEFAULT_TOLERANCE_S, classes: list[str] | None = None,
                   class_map: dict[str, str] | None = None, settings=None) -> dict:
    """Detect each recording (`detection.detect_recording`) and score it against its reference event file
    (beside it, or in `events_dir`): the report of `evaluate`. `classes` default to the model's."""
    from eventcount.config import DetectSettings
    from eventcount.detection import detect_recording
    from eventcount.recordings import event_file_for

    check_tolerance(tolerance_s)
    classes = classes or list(detector.spec.classes)
    files = []
    for path in recordings:
        reference = events_by_class(read_events(event_file_for(Path(path), events_dir)), classes, class_map)
        detection = detect_recording(detector, path, settings or DetectSettings())
        files.append((Path(path).stem, reference, events_by_class(detection.events, classes)))
    return evaluate(files, classes, tolerance_s)
