"""Split MIT-BIH record 100 (minutes 0-20) into a training part (0-15 min) and a test part (15-20 min).

    python examples/heartbeats/make_data.py ../shared/data/mitbih-100 work/heartbeats

writes, under the output folder,
  train/record100_0-15min.csv     time_s, MLII_mV, V5_mV (time 0 = the part's first sample)
  test/record100_15-20min.csv
  events/{train,test}/<stem>.events.tsv   one `time_s<TAB>beat` line per annotated beat (all beat symbols, N and A),
                                          in seconds from the part's first sample
The event files live in their own folder so that `evaluate` never mistakes a recording CSV for an event file.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

RECORD = "record100_0-20min.csv"
BEATS = "beats_0-20min.csv"
SPLIT_S = 900.0  # minute 15
# MIT-BIH annotation symbols that mark a heartbeat (non-beat annotations such as '+', '~', '|' are dropped)
BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")


def read_record(folder: Path) -> tuple[list[str], np.ndarray]:
    """(header, float rows [n, 3]) of the ECG CSV."""
    with open(folder / RECORD, encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
        lines = handle.read().splitlines()
    values = np.loadtxt(lines, delimiter=",", dtype=np.float64, ndmin=2)
    return header, values


def read_beats(folder: Path) -> np.ndarray:
    with open(folder / BEATS, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return np.array([float(r["time_s"]) for r in rows if r["symbol"].strip() in BEAT_SYMBOLS])


def write_part(out: Path, name: str, header: list[str], values: np.ndarray, beats: np.ndarray,
               start_s: float, end_s: float) -> None:
    keep = (values[:, 0] >= start_s - 1e-9) & (values[:, 0] < end_s - 1e-9)
    part = values[keep]
    t0 = part[0, 0]
    part_name = "train" if start_s < SPLIT_S else "test"
    recording = out / part_name / f"{name}.csv"
    recording.parent.mkdir(parents=True, exist_ok=True)
    with open(recording, "w", encoding="utf-8") as handle:
        handle.write(",".join(header) + "\n")
        for row in part:
            handle.write(f"{row[0] - t0:.6f},{row[1]:.3f},{row[2]:.3f}\n")
    times = beats[(beats >= t0) & (beats < part[-1, 0])] - t0
    events = out / "events" / part_name / f"{name}.events.tsv"
    events.parent.mkdir(parents=True, exist_ok=True)
    events.write_text("".join(f"{t:.4f}\tbeat\n" for t in times), encoding="utf-8")
    print(f"{recording}: {part[-1, 0] - t0 + 1 / 360:.1f} s, {times.size} beats")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="the mitbih-100 folder of the shared data")
    parser.add_argument("out", type=Path, help="output folder")
    args = parser.parse_args()
    header, values = read_record(args.data)
    beats = read_beats(args.data)
    write_part(args.out, "record100_0-15min", header, values, beats, 0.0, SPLIT_S)
    write_part(args.out, "record100_15-20min", header, values, beats, SPLIT_S, 1200.0)


if __name__ == "__main__":
    main()
