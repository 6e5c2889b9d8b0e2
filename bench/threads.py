"""Thread policy: wall time of each command with 1 and 2 torch threads and with the default, idle and while
another CPU-bound process runs (the bench starts that load itself).

    python bench/threads.py [--repeats 3] [--commands detect,pseudo-label,pseudo-label-long,pseudo-label-40min,...]

Each run is a fresh `eventcount` process, as a user would start it. Figures: the median wall time per setting;
the default should be within 15 % of the best setting in both conditions. `pseudo-label` labels four 30 s files
(too little audio to pay for a second worker), `pseudo-label-long` six of 150 s, `pseudo-label-40min` eight of
300 s. The synthetic recordings are made in a temporary folder (no data needed).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

from eventcount.synthetic import make_synthetic_set, synthetic_recording

THREADS = {"1 thread": ["--threads", "1"], "2 threads": ["--threads", "2"], "default": []}
JOBS = {"1 thread": ["--jobs", "1"], "2 threads": ["--jobs", "2"], "default": []}  # one thread per worker
SETTINGS = {"detect": THREADS, "train": THREADS, "pseudo-label": JOBS, "pseudo-label-long": JOBS,
            "pseudo-label-40min": JOBS, "evaluate": {"default": []}}


def make_inputs(root: Path) -> dict[str, list[str]]:
    """The command lines to time (without the thread flags), after preparing their inputs."""
    audio, _ = synthetic_recording(120.0, 44100, seed=0)
    sf.write(root / "two_minutes.wav", audio, 44100)
    folder = root / "batch"
    make_synthetic_set(folder, 4, 30.0, seed=3)  # recordings with their reference event files
    make_synthetic_set(root / "long", 6, 150.0, seed=4)  # 15 minutes
    make_synthetic_set(root / "forty", 8, 300.0, seed=5)  # 40 minutes
    make_synthetic_set(root / "train", 8, 10.0, seed=1)
    subprocess.run(["eventcount", "-q", "prepare", str(root / "train"), "-o", str(root / "labels.csv")], check=True)
    subprocess.run(["eventcount", "-q", "detect", str(root / "batch"), "-o", str(root / "estimate"), "--threads", "1"],
                   check=True)
    return {
        "detect": ["detect", str(root / "two_minutes.wav"), "-o", str(root / "out.tsv"), "--overwrite"],
        "pseudo-label": ["pseudo-label", str(folder), "-o", str(root / "labels"), "--overwrite"],
        "pseudo-label-long": ["pseudo-label", str(root / "long"), "-o", str(root / "labels"), "--overwrite"],
        "pseudo-label-40min": ["pseudo-label", str(root / "forty"), "-o", str(root / "labels"), "--overwrite"],
        "train": ["train", "--counts", str(root / "labels.csv"), "--steps", "40", "-o", str(root / "m.pt"),
                  "--overwrite"],
        "evaluate": ["evaluate", "--reference", str(root / "batch"), "--estimate", str(root / "estimate")],
    }


def wall(args: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    started = time.perf_counter()
    subprocess.run(["eventcount", "-q", *args], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def busy_process() -> subprocess.Popen:
    """Another program holding one core (a pure-Python loop)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--commands", default="detect,pseudo-label,pseudo-label-long,pseudo-label-40min,train,evaluate")
    args = parser.parse_args()
    wanted = args.commands.split(",")
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.2f}; "
          f"median of {args.repeats} runs, wall seconds")
    print("| command | condition | 1 thread (or job) | 2 threads (or jobs) | default | default vs best |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        commands = make_inputs(Path(tmp))
        for condition in ("idle", "one busy process"):
            load = busy_process() if condition != "idle" else None
            try:
                time.sleep(1.0 if load else 0.0)
                for name in wanted:
                    times = {label: statistics.median(wall(commands[name] + flags) for _ in range(args.repeats))
                             for label, flags in SETTINGS[name].items()}
                    best = min(times.values())
                    cells = [f"{times[k]:.2f}" if k in times else "–" for k in ("1 thread", "2 threads", "default")]
                    print(f"| {name} | {condition} | {' | '.join(cells)} | {times['default'] / best - 1:+.0%} |",
                          flush=True)
            finally:
                if load:
                    load.kill()


if __name__ == "__main__":
    main()
