"""Benchmark of `eventcount pseudo-label`: throughput and peak memory for --jobs 1 and 2 on a generated archive.

    python bench/pseudolabel_speed.py                      # 200 x 30 s synthetic recordings, random-init model
    python bench/pseudolabel_speed.py --model drums.pt --recordings 400 --jobs 1,2,4
    python bench/pseudolabel_speed.py --recordings 20 --engines local,ray   # the Ray engine beside the local one

Prints a markdown table: audio hours labelled per wall-clock minute, and peak memory of the whole process tree
(the sum of the resident sizes of the command and its workers, sampled every 0.2 s; shared library pages are
counted once per process, so this overstates what the tree really holds), the largest single process, and the
largest worker (a local worker process or a Ray actor). A Ray run's wall time includes starting a local Ray.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from eventcount.synthetic import synthetic_recording

RATE = 16000
CLI = [sys.executable, "-c", "from eventcount.cli import app; app()"]  # what the `eventcount` script runs


def make_archive(path: Path, n: int, duration_s: float) -> None:
    """A .tar.gz of n synthetic drum-like wav recordings (16 kHz, 16-bit), in two folders."""
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for i in range(n):
            audio, _ = synthetic_recording(duration_s, RATE, seed=i)
            buffer = io.BytesIO()
            sf.write(buffer, audio, RATE, format="WAV", subtype="PCM_16")
            info = tarfile.TarInfo(f"set{i % 2}/rec{i:04d}.wav")
            info.size = buffer.tell()
            buffer.seek(0)
            archive.addfile(info, buffer)


def make_model(path: Path) -> None:
    """A random-init model with the default network size (the speed of a trained one, none of its skill)."""
    import torch

    from eventcount.checkpoint import save_model
    from eventcount.config import ModelSpec
    from eventcount.features import n_features
    from eventcount.network import CRNN

    torch.manual_seed(0)
    spec = ModelSpec(classes=["low", "mid", "high"])
    features = n_features(spec.frontend)
    save_model(path, CRNN(features, len(spec.classes), spec.network), spec, features, {"data": "random init"})


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _is_worker(pid: int) -> bool:
    """A local worker process (multiprocessing spawn) or a Ray actor of the labelling job."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"multiprocessing.spawn" in command or command.startswith(b"ray::LabelActor")


def tree_rss_mb(pid: int) -> tuple[float, float]:
    """Summed resident memory of a process and all its descendants, and the largest worker's (Linux /proc)."""
    total, worker, stack = 0.0, 0.0, [pid]
    while stack:
        current = stack.pop()
        rss = _rss_mb(current)
        total += rss
        worker = max(worker, rss) if current != pid and _is_worker(current) else worker
        stack += _children(current)
    return total, worker


@dataclass
class Run:
    engine: str
    jobs: int
    recordings: int
    audio_h: float
    wall_s: float
    tree_peak_mb: float
    process_peak_mb: float
    worker_peak_mb: float


def run_once(source: Path, model: str | Path, outdir: Path, jobs: int, extra: list[str] | None = None) -> Run:
    """Run the CLI in a subprocess (with `extra` options), sampling its process tree's memory while it runs."""
    command = [*CLI, "-q", "pseudo-label", str(source), "-m", str(model), "-o", str(outdir), "--jobs", str(jobs),
               *(extra or [])]
    peak, finished = [0.0, 0.0], threading.Event()
    with tempfile.TemporaryFile("w+") as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)

        def sample() -> None:
            while not finished.wait(0.2):
                peak[:] = map(max, peak, tree_rss_mb(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)  # its rusage covers the workers it waited for
        wall_s = time.perf_counter() - started
        finished.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"pseudo-label --jobs {jobs} failed ({process.returncode}):\n{errors.read()}")
    largest_mb = usage.ru_maxrss / 1024 / (1024 if sys.platform == "darwin" else 1)  # KiB on Linux, bytes on macOS
    engine = extra[extra.index("--engine") + 1] if extra and "--engine" in extra else "local"
    return Run(engine, jobs, *_manifest_totals(outdir), wall_s, peak[0], largest_mb, peak[1])


def _manifest_totals(outdir: Path) -> tuple[int, float]:
    from eventcount.pseudolabel.manifest import Manifest

    entries = [e for e in Manifest.in_dir(outdir).read().latest().values() if e.status == "ok"]
    return len(entries), sum(e.duration_s or 0.0 for e in entries) / 3600


def table(runs: list[Run]) -> str:
    lines = ["| engine | jobs | recordings | audio hours | wall s | audio h per wall min | peak RSS MB (tree) | "
             "largest process RSS MB | largest worker RSS MB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r.engine} | {r.jobs} | {r.recordings} | {r.audio_h:.2f} | {r.wall_s:.1f} | "
                     f"{r.audio_h / (r.wall_s / 60):.3f} | {r.tree_peak_mb:.0f} | {r.process_peak_mb:.0f} | "
                     f"{r.worker_peak_mb:.0f} |")
    return "\n".join(lines)


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {load}, "
            f"Python {platform.python_version()}, numpy {np.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per recording")
    parser.add_argument("--jobs", default="1,2", help="comma-separated --jobs values to time")
    parser.add_argument("--engines", default="local", help="comma-separated engines to time: local, ray")
    parser.add_argument("--rounds", type=int, default=1, help="run every setting this many times, alternated")
    parser.add_argument("--model", type=Path, help="a model file (default: random init, default size)")
    parser.add_argument("--workdir", type=Path, help="keep the archive and outputs here (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pseudolabel-bench-") as temp:
        work = args.workdir or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        archive, model = work / "recordings.tar.gz", args.model or work / "random.pt"
        started = time.perf_counter()
        make_archive(archive, args.recordings, args.duration)
        if args.model is None:
            make_model(model)
        print(f"generated {args.recordings} x {args.duration:g} s in {time.perf_counter() - started:.0f} s "
              f"({archive.stat().st_size / 1e6:.0f} MB archive)", file=sys.stderr)
        runs = []
        for round_ in range(args.rounds):  # alternated, so that a change in the machine's load hits every setting
            for engine in args.engines.split(","):
                for jobs in (int(j) for j in args.jobs.split(",")):
                    outdir = work / f"out-{engine}-{jobs}-{round_}"
                    runs.append(run_once(archive, model, outdir, jobs, ["--engine", engine]))
                    print(f"--engine {engine} --jobs {jobs}: {runs[-1].wall_s:.1f} s (load average "
                          f"{os.getloadavg()[0]:.1f})", file=sys.stderr)
    print(f"Machine: {machine()}\n")
    print(table(runs))


if __name__ == "__main__":
    main()
