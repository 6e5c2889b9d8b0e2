"""Lay the Oxford step data out for eventcount: one named link per recording, step times as event files.

    python examples/footsteps/make_data.py ../shared/data/oxford-steps/optimisation work/footsteps

Every recording folder holds `accelerometer.csv` (no header: timestamp_ns, sensor type, ax, ay, az in m/s^2)
and `steps_gt_seconds.txt` (one step per line, seconds from the first accelerometer sample). As all the
recordings share the file name `accelerometer.csv`, each gets a link named after its folder:

  train/<folder>.csv, test/<folder>.csv      links to the original accelerometer.csv (nothing is copied)
  events/train/<folder>.events.tsv, events/test/...   `time_s<TAB>step` per step

Split: the walker named in --test-walker (default Dario: 12 recordings, Samsung phone, six placements) is
held out whole; every other walker trains. Folders without accelerometer data (`_Patient_*`) are skipped.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np


def recordings(data: Path) -> list[Path]:
    """Recording folders that hold both an accelerometer file and step times, sorted."""
    return sorted(p for p in data.iterdir()
                  if (p / "accelerometer.csv").is_file() and (p / "steps_gt_seconds.txt").is_file())


def walker(folder: Path) -> str:
    """`Samsung_Dario_Hard_InHand_1` -> `Dario` (phone, walker, floor, placement, take)."""
    return folder.name.split("_")[1]


def link(target: Path, link_path: Path) -> None:
    link_path.parent.mkdir(parents=True, exist_ok=True)
    if link_path.is_symlink() or link_path.exists():
        link_path.unlink()
    os.symlink(target.resolve(), link_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="the oxford-steps/optimisation folder of the shared data")
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--test-walker", default="Dario", help="walker whose recordings are held out")
    args = parser.parse_args()
    folders = recordings(args.data)
    if not any(walker(f) == args.test_walker for f in folders):
        parser.error(f"no recordings of walker {args.test_walker!r} in {args.data}")
    counts = {"train": 0, "test": 0}
    for folder in folders:
        part = "test" if walker(folder) == args.test_walker else "train"
        link(folder / "accelerometer.csv", args.out / part / f"{folder.name}.csv")
        steps = np.loadtxt(folder / "steps_gt_seconds.txt", ndmin=1)
        events = args.out / "events" / part / f"{folder.name}.events.tsv"
        events.parent.mkdir(parents=True, exist_ok=True)
        events.write_text("".join(f"{t:.4f}\tstep\n" for t in np.sort(steps)), encoding="utf-8")
        counts[part] += 1
    print(f"{counts['train']} training and {counts['test']} test recordings (walker {args.test_walker}) "
          f"under {args.out}")


if __name__ == "__main__":
    main()
