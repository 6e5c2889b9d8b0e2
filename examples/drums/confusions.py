"""What a model's false detections fall on: another class's hit, another drum (GM note), a second detection
of a found hit, or nothing.

    python examples/drums/confusions.py /work/data/groove32/val_heldout DETECTED_DIR

REFERENCE is a folder written by render_groove.py (`<stem>.events.tsv` with GM notes); DETECTED_DIR holds
`eventcount detect` output for its recordings. Detections are matched to their class's hits with mir_eval
at 50 ms; each unmatched one is then put with the nearest reference hit within 50 ms.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import mir_eval
import numpy as np
import render_groove as rg

from eventcount.annotations import events_by_class, read_events
from eventcount.evaluate import event_file_stem

TOLERANCE_S = 0.05


def false_detections(times: np.ndarray, notes: np.ndarray, estimate: np.ndarray, name: str,
                     classes: dict[int, str]) -> Counter:
    """Per unmatched detection of class `name`: what the nearest reference hit within the tolerance is."""
    own = np.isin(notes, [n for n, c in classes.items() if c == name])
    matched = {j for _, j in mir_eval.util.match_events(np.sort(times[own]), estimate, TOLERANCE_S)}
    found = Counter()
    for j, t in enumerate(estimate):
        if j in matched:
            continue
        distance = np.abs(times - t)
        others = np.where(own, np.inf, distance)
        if others.size and others.min() <= TOLERANCE_S:
            note = int(notes[np.argmin(others)])
            found[classes.get(note, f"note {note}")] += 1
        elif distance.size and distance.min() <= TOLERANCE_S:
            found[f"another {name} detection of a {name} hit"] += 1
        else:
            found["no hit"] += 1
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reference", type=Path)
    p.add_argument("detected", type=Path)
    args = p.parse_args()
    classes = rg.read_class_map(rg.CLASSES_YAML)
    names = sorted(set(classes.values()))
    totals = {name: Counter() for name in names}
    for path in sorted(args.detected.iterdir()):
        reference = args.reference / f"{event_file_stem(path)}.events.tsv"
        if not reference.is_file():
            continue
        labels = read_events(reference)
        times = np.array([e.time_s for e in labels])
        notes = np.array([int(e.label) for e in labels])
        estimate = events_by_class(read_events(path), names)
        for name in names:
            totals[name] += false_detections(times, notes, estimate[name], name, classes)
    for name, found in totals.items():
        parts = ", ".join(f"{what} {n}" for what, n in found.most_common())
        print(f"{name}: {sum(found.values())} false detections: {parts}")


if __name__ == "__main__":
    main()
