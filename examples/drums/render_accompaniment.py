"""Render POP909 song stretches without drums, as background audio for `eventcount train --background`.

    python examples/drums/render_accompaniment.py --out DIR [--files 60] [--seconds 60] [--songs 1-809]
        [--soundfont SF2 ...] [--tempo 70,160] [--seed 0] [--jobs 2]

Each file is a random stretch of a random song at a random tempo, played with random General MIDI instruments and a
bass line from its chord roots (`accompaniment.py`), peak-normalised, mono, 32 kHz. `train --background DIR` mixes
such files under training recordings at random levels, so every stretched copy of a drum rendering can get its own
song without rendering the drums again. Files that exist already are kept (re-run to add more).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accompaniment import accompaniment_midi, load_song, render, song_folders  # noqa: E402
from render_groove import DEFAULT_SOUNDFONT, require_fluidsynth  # noqa: E402

RATE = 32000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--pop909", type=Path, default=Path(__file__).resolve().parents[3] / "shared/data/pop909-midi",
                   help="POP909 MIDI folder (default: ../shared/data/pop909-midi)")
    p.add_argument("--songs", default="1-809", help="song numbers to draw from (default 1-809: 810-909 are held out)")
    p.add_argument("--soundfont", action="append", dest="soundfonts", type=Path, metavar="PATH",
                   help="General MIDI soundfont to play the songs with (repeat to vary; default FluidR3_GM)")
    p.add_argument("--files", type=int, default=60, help="number of files")
    p.add_argument("--seconds", type=float, default=60.0, help="length of each file")
    p.add_argument("--tempo", default="70,160", metavar="LO,HI", help="tempo range in beats per minute")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="parallel rendering processes")
    return p.parse_args(argv)


def render_one(job: tuple[int, argparse.Namespace, list[Path], str]) -> str:
    index, args, songs, exe = job
    path = args.out / f"accompaniment_{args.seed}_{index:04d}.wav"
    if path.exists():
        return f"{path.name}: kept"
    rng = np.random.default_rng([args.seed, index])
    low, high = (float(x) for x in args.tempo.split(","))
    song = load_song(songs[int(rng.integers(len(songs)))])
    midi, params = accompaniment_midi(song, float(rng.uniform(low, high)), args.seconds, rng)
    soundfonts = args.soundfonts or [Path(DEFAULT_SOUNDFONT)]
    soundfont = soundfonts[int(rng.integers(len(soundfonts)))]
    audio = render(exe, soundfont, midi, RATE, effects=bool(rng.random() < 0.25))[: int(args.seconds * RATE)]
    peak = float(np.abs(audio).max())
    if peak == 0:
        return f"{path.name}: silent, skipped"
    partial = path.with_name(path.stem + ".partial.wav")
    sf.write(partial, 0.9 * audio / peak, RATE, subtype="PCM_16")
    partial.replace(path)
    return f"{path.name}: song {params['song']}, {soundfont.stem}, {', '.join(map(str, params['programs'].values()))}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    songs = song_folders(args.pop909, args.songs)
    exe = require_fluidsynth()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(i, args, songs, exe) for i in range(args.files)]
    with ProcessPoolExecutor(args.jobs) as pool:
        for line in pool.map(render_one, jobs):
            print(line, flush=True)


if __name__ == "__main__":
    main()
