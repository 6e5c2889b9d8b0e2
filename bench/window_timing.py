"""Timing bias of counts-only training versus the count-window length, on the synthetic set.

    python bench/window_timing.py --window 0.25 [--hop 0.25] [--steps 1000] [--context 0.3] [--seed 0]

Generates 24 training and 6 test recordings (10 s each, `eventcount.synthetic`, seeds 1 and 2), makes
count labels with the given windows, trains from counts only and prints F1 at 50 ms and the mean timing
offset (estimate - reference) on the test recordings, with the training time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from eventcount.config import ModelSpec, TrainConfig
from eventcount.detection import Detector
from eventcount.evaluate import score_detector
from eventcount.prepare import make_count_table
from eventcount.synthetic import make_synthetic_set
from eventcount.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=float, default=0.25)
    parser.add_argument("--hop", type=float, default=None)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--context", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="training seed (the data are always the same)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train_files = make_synthetic_set(root / "train", 24, 10.0, seed=1)
        test_files = make_synthetic_set(root / "test", 6, 10.0, seed=2)
        table = make_count_table(train_files, window_s=args.window, hop_s=args.hop)
        config = TrainConfig(steps=args.steps, validate_every=max(1, args.steps // 2), num_threads=args.threads,
                             context_s=args.context, seed=args.seed)
        started = time.time()
        train(table, ModelSpec(classes=table.classes), config, root / "model.pt")
        seconds = time.time() - started
        report = score_detector(Detector.load(root / "model.pt"), test_files)
    print(json.dumps({"seed": args.seed, "window_s": args.window, "hop_s": args.hop or args.window, "steps": args.steps,
                      "context_s": args.context, "f_measure": round(report["micro"]["f_measure"], 4),
                      "offset_mean_ms": round(report["micro"]["offset_mean_s"] * 1000, 2),
                      "offset_std_ms": round(report["micro"]["offset_std_s"] * 1000, 2),
                      "train_s": round(seconds)}))


if __name__ == "__main__":
    main()
