"""F1 per class over a range of detection thresholds, from saved activations of one model or the average of
several (a seed ensemble): is a held-out kit's gap a matter of thresholds or of what the model hears?

    eventcount detect /work/data/groove32/val_heldout -m drums -o ACT --save-activations
    python examples/drums/threshold_sweep.py /work/data/groove32/val_heldout ACT [ACT2 ...]

REFERENCE holds `<stem>.events.tsv` files (as written by render_groove.py); each ACT folder holds the
`<stem>.activations.npz` files of one model. Hits are pooled per class and matched with mir_eval at 50 ms.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from eventcount.annotations import events_by_class, read_class_map, read_events
from eventcount.config import DecodeConfig
from eventcount.decode import pick_events
from eventcount.detection import load_activations
from eventcount.evaluate import evaluate, event_file_stem

CLASSES_YAML = Path(__file__).with_name("classes.yaml")


def mean_activations(folders: list[Path], stem: str) -> tuple[np.ndarray, float, list[str], int]:
    """The activations of `stem` averaged over the models whose activations lie in `folders`."""
    loaded = [load_activations(folder / f"{stem}.activations.npz") for folder in folders]
    n_frames = min(len(probs) for probs, *_ in loaded)
    _, frame_rate, classes, delay = loaded[0]
    return np.mean([probs[:n_frames] for probs, *_ in loaded], axis=0), frame_rate, classes, delay


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reference", type=Path)
    p.add_argument("activations", type=Path, nargs="+")
    p.add_argument("--classes", default="KD,SD,HH")
    p.add_argument("--thresholds", default="0.3,0.35,0.4,0.45,0.5,0.55,0.6")
    args = p.parse_args()
    classes = args.classes.split(",")
    class_map = read_class_map(CLASSES_YAML)
    recordings = []
    for reference in sorted(args.reference.glob("*.events.tsv")):
        stem = event_file_stem(reference)
        truth = events_by_class(read_events(reference), classes, class_map)
        recordings.append((stem, truth, mean_activations(args.activations, stem)))
    print(f"{len(recordings)} recordings, {len(args.activations)} model(s)")
    for threshold in (float(t) for t in args.thresholds.split(",")):
        decode = DecodeConfig(threshold=threshold)
        files = [(stem, truth, events_by_class(pick_events(probs, rate, names, decode, delay), classes))
                 for stem, truth, (probs, rate, names, delay) in recordings]
        report = evaluate(files, classes, 0.05)
        scores = [report["per_class"][c]["micro"]["f_measure"] for c in classes]
        print(f"threshold {threshold:.2f}: " + " ".join(f"{c} {s:.3f}" for c, s in zip(classes, scores, strict=True))
              + f"  mean {np.mean(scores):.3f}")


if __name__ == "__main__":
    main()
