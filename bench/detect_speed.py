"""Detection speed in x real time: eventcount (one pass and --tta 5) next to librosa.onset.onset_detect.

    python bench/detect_speed.py [--model drums] [--model OTHER ...] [--files N] [--seconds S] [--repeats R]
                                 [--tta 5] [--stages] [AUDIO ...]

Without AUDIO files it generates N synthetic recordings of S seconds. Each tool reads the file from disk,
computes its features, and returns event times; figures are total audio seconds / total wall seconds. With R
repeats the methods take turns R times and each row gives the best (and the median) of its R timings, so a
shared machine's slow moments touch every method alike. `--stages` adds where a pass spends its time.
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
from eventcount.detection import BLOCK_S, Detector, Resampler, detect_recording
from eventcount.features import FeatureExtractor, working_rate
from eventcount.recordings import iter_audio_blocks
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


def stage_seconds(detector: Detector, paths: list[Path]) -> dict[str, float]:
    """Where one pass spends its time, summed over the files: the steps of `Detector.stream_activations` and
    decoding, each timed on its own over a whole file."""
    totals = dict.fromkeys(["read", "resample", "features", "convolutions", "recurrent layer + head", "decode"], 0.0)
    rate = working_rate(detector.spec.frontend)
    for path in paths:
        clock = time.perf_counter()
        blocks = [block for block, _ in iter_audio_blocks(path, BLOCK_S)]
        totals["read"] += time.perf_counter() - clock
        clock = time.perf_counter()
        resampler = Resampler(sf.info(str(path)).samplerate, rate)
        samples = torch.cat([*(resampler.push(block) for block in blocks), resampler.flush()])
        totals["resample"] += time.perf_counter() - clock
        clock = time.perf_counter()
        features = FeatureExtractor(detector.spec.frontend)(samples)
        totals["features"] += time.perf_counter() - clock
        with torch.inference_mode():
            clock = time.perf_counter()
            sequence, _ = detector.model.encode(features[None])
            totals["convolutions"] += time.perf_counter() - clock
            clock = time.perf_counter()
            logits, _ = detector.model.recur(sequence)
            probs = torch.sigmoid(logits[0]).double().numpy()
            totals["recurrent layer + head"] += time.perf_counter() - clock
        clock = time.perf_counter()
        detector.decode(probs)
        totals["decode"] += time.perf_counter() - clock
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", nargs="*", type=Path)
    parser.add_argument("--model", action="append", help="a model name or file; repeat to compare (default: drums)")
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of timings (best and median reported)")
    parser.add_argument("--tta", type=int, default=5, help="also time --tta N (0: not)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--stages", action="store_true", help="also print where a pass spends its time")
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
        stages = {name: [stage_seconds(d, paths) for _ in range(args.repeats)] for name, d in detectors.items()
                  if args.stages}
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {len(paths)} files, {total:.0f} s of audio; models {', '.join(models)}; "
          f"best of {args.repeats} (median in brackets)")
    print("| method | wall s | x real time | vs librosa |")
    print("|---|---|---|---|")
    librosa_best = total / min(timings["librosa.onset.onset_detect"])
    for label, seconds in timings.items():
        best, median = total / min(seconds), total / float(np.median(seconds))
        print(f"| {label} | {min(seconds):.2f} | {best:.0f} ({median:.0f}) | {best / librosa_best:.2f} |")
    if args.stages:
        for name, runs in stages.items():
            print(f"\nstages of one pass, {name} (best of {args.repeats}, ms per minute of audio):")
            for stage in runs[0]:
                print(f"  {stage:24s} {min(run[stage] for run in runs) / total * 60e3:6.1f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
