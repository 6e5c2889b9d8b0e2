"""Training with 1 and 2 processes (torchrun, gloo, one thread each): steps per second and final F1.

    python bench/ddp_speed.py [--steps 300] [--batch-size 32] [--processes 1,2] [--repeats 1]

Makes the synthetic example's data (24 training and 6 test recordings of 10 s), prepares 0.25 s count clips,
then trains with each process count on the same global batch and seed, and scores each model on the test
recordings (F1 at 50 ms). Steps per second are the training loop's own (the model file's
`training.steps_per_second`: no start-up, features or threshold choice). Prints the load average beside
each figure: on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from eventcount.synthetic import make_synthetic_set

CLI = [sys.executable, "-m", "eventcount.cli", "-q"]


def environment() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def train(root: Path, processes: int, args: argparse.Namespace, out: Path) -> float:
    """Train with `processes` processes; returns the wall time of the whole command in seconds."""
    launcher = CLI if processes == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                           "--nproc_per_node", str(processes), "-m", "eventcount.cli", "-q"]
    command = [*launcher, "train", "--counts", root / "labels.csv", "-o", out, "--overwrite", "--steps",
               str(args.steps), "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
    started = time.time()
    subprocess.run([str(c) for c in command], check=True, env=environment())
    return time.time() - started


def f_measure(root: Path, model: Path) -> float:
    detected = root / f"{model.stem}_events"
    report = root / f"{model.stem}.json"
    subprocess.run([str(c) for c in [*CLI, "detect", root / "test", "-m", model, "-o", detected, "--overwrite"]],
                   check=True, env=environment())
    subprocess.run([str(c) for c in [*CLI, "evaluate", "--reference", root / "test", "--estimate", detected,
                                     "--json", report]], check=True, env=environment(), capture_output=True)
    return float(json.loads(report.read_text())["micro"]["f_measure"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch (split over the processes)")
    parser.add_argument("--processes", default="1,2", help="process counts to compare, comma-separated")
    parser.add_argument("--repeats", type=int, default=1, help="runs per process count (alternated)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_synthetic_set(root / "train", 24, 10.0, seed=1)
        make_synthetic_set(root / "test", 6, 10.0, seed=1001)
        subprocess.run([*CLI, "prepare", str(root / "train"), "-o", str(root / "labels.csv")], check=True,
                       env=environment())
        print(f"{'processes':>9} {'steps':>5} {'batch':>5} {'steps/s':>8} {'wall s':>7} {'F1':>6}  load average")
        for repeat in range(args.repeats):
            for processes in counts if repeat % 2 == 0 else counts[::-1]:
                load = os.getloadavg()[0]
                model = root / f"p{processes}_r{repeat}.pt"
                wall = train(root, processes, args, model)
                rate = torch.load(model, weights_only=True)["training"]["steps_per_second"]
                score = f_measure(root, model)
                print(f"{processes:>9} {args.steps:>5} {args.batch_size:>5} {rate:>8.2f} {wall:>7.1f} {score:>6.3f}"
                      f"  {load:.2f} -> {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
