"""Detection speed in x real time: eventcount (one pass and --tta 5) next to librosa.onset.onset_detect.

    python bench/detect_speed.py [--model drums] [--model OTHER ...] [--files N] [--seconds S] [--repeats R]
                                 [--tta 5] [AUDIO ...]

Without AUDIO files it generates N synthetic recordings of S seconds. Each tool reads the file from disk,
computes its features, and returns event times; figures are total audio seconds / total wall seconds. With R
repeats the methods take turns R times and each row gives the best (and the median) of its R timings, so a
shared machine's slow moments touch every method alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch

from eventcount.config import DetectSettings
from eventcount.detection import Detector, detect_recording
from eventcount.synthetic import synthetic_recording


def make_files(folder: Path, n: int, seconds: float) -> list[Path]:
    paths = []
    for i in range(n):
        audio, _ = synthetic_recording(seconds, 44100, seed=i)
        path = folder / f"bench{i:02d}.wav"
        sf.write(path, audio, 44100)
        paths.append(path)
    return paths


def time_eventcount(detector: Detector, paths: list[Path], tta: int) -> float:
    start = time.perf_counter()
    for path in paths:
        detect_recording(detector, path, DetectSettings(tta=tta))
    return time.perf_counter() - start


def time_librosa(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        y, sr = librosa.load(path, sr=22050, mono=True)
        librosa.onset.onset_detect(y=y, sr=sr, units="time")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", nargs="*", type=Path)
    parser.add_argument("--model", action="append", help="a model name or file; repeat to compare (default: drums)")
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of timings (best and median reported)")
    parser.add_argument("--tta", type=int, default=5, help="also time --tta N (0: not)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.model or ["drums"]
    detectors = {name: Detector.load(name) for name in models}
    with tempfile.TemporaryDirectory() as tmp:
        paths = args.audio or make_files(Path(tmp), args.files, args.seconds)
        total = sum(sf.info(str(p)).duration for p in paths)
        methods = {}
        for name, detector in detectors.items():
            label = "eventcount detect" + (f" ({name})" if len(models) > 1 else "")
            methods[label] = lambda d=detector: time_eventcount(d, paths, 1)
            if args.tta > 1:
                methods[f"{label} --tta {args.tta}"] = lambda d=detector: time_eventcount(d, paths, args.tta)
        methods["librosa.onset.onset_detect"] = lambda: time_librosa(paths)
        for detector in detectors.values():
            time_eventcount(detector, paths[:1], 1)  # warm-up
        time_librosa(paths[:1])
        timings: dict[str, list[float]] = {label: [] for label in methods}
        for _ in range(args.repeats):
            for label, run in methods.items():
                timings[label].append(run())
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {len(paths)} files, {total:.0f} s of audio; models {', '.join(models)}; "
          f"best of {args.repeats} (median in brackets)")
    print("| method | wall s | x real time | vs librosa |")
    print("|---|---|---|---|")
    librosa_best = total / min(timings["librosa.onset.onset_detect"])
    for label, seconds in timings.items():
        best, median = total / min(seconds), total / float(np.median(seconds))
        print(f"| {label} | {min(seconds):.2f} | {best:.0f} ({median:.0f}) | {best / librosa_best:.2f} |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
