"""Benchmark of `eventcount pseudo-label` peak memory against recording length: one silent file, --jobs 1.

    python bench/pseudolabel_memory.py                         # 1, 10, 30, 60 min; plain file and tar member
    python bench/pseudolabel_memory.py --minutes 1,10 --engine ray

Each recording is a silent 44.1 kHz stereo 16-bit WAV (written in blocks, so generating it needs little
memory), labelled once as a plain file and once as the only member of an uncompressed tar, with the shipped
drum model unless --model is given. Memory: the whole process tree's resident size (the command and every
process it started), sampled every 0.2 s, and the largest single process's peak (wait4's ru_maxrss, exact).
With --jobs 1 and the local engine there is one process, so the second figure is the exact peak. Prints a
markdown table; the recordings are deleted afterwards.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from pseudolabel_speed import machine, run_once  # noqa: E402  (a sibling bench script)

RATE = 44100


def write_silence(path: Path, minutes: float) -> None:
    """A silent stereo 16-bit WAV of `minutes`, written one minute at a time."""
    block = np.zeros((RATE * 60, 2), np.float32)
    with sf.SoundFile(path, "w", RATE, 2, subtype="PCM_16") as handle:
        whole, rest = divmod(round(minutes * 60 * RATE), RATE * 60)
        for _ in range(whole):
            handle.write(block)
        handle.write(block[:rest])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", default="1,10,30,60", help="comma-separated recording lengths")
    parser.add_argument("--model", default="drums", help="a shipped model name or a .pt file")
    parser.add_argument("--engine", default="local", help="local or ray")
    parser.add_argument("--workdir", type=Path, help="where to write the recordings (default: a temp dir)")
    args = parser.parse_args()
    rows = ["| minutes | source | wall s | peak RSS MB (tree, sampled) | largest process peak MB |",
            "|---:|---|---:|---:|---:|"]
    with tempfile.TemporaryDirectory(prefix="pseudolabel-memory-", dir=args.workdir) as temp:
        work = Path(temp)
        for minutes in (float(m) for m in args.minutes.split(",")):
            folder = work / f"{minutes:g}min"
            folder.mkdir()
            wav = folder / "silence.wav"
            write_silence(wav, minutes)
            archive = work / f"{minutes:g}min.tar"
            with tarfile.open(archive, "w") as handle:
                handle.add(wav, arcname="silence.wav")
            for label, source in (("file", wav), ("tar member", archive)):
                run = run_once(source, args.model, work / f"out-{minutes:g}-{label[0]}", 1,
                               ["--engine", args.engine])
                rows.append(f"| {minutes:g} | {label} | {run.wall_s:.1f} | {run.tree_peak_mb:.0f} | "
                            f"{run.process_peak_mb:.0f} |")
                print(rows[-1], file=sys.stderr)
            wav.unlink()
            archive.unlink()
    print(f"Machine: {machine()}; engine {args.engine}; {time.strftime('%Y-%m-%d')}\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
