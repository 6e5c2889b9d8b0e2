"""How much of each drum's energy lies above a frequency: why the drum model listens up to 16 kHz.

    python examples/drums/spectrum.py /usr/share/sounds/sf2/TimGM6mb.sf2 /usr/share/sounds/sf2/FluidR3_GM.sf2

Renders one hit of kick (36), snare (38), closed, pedal and open hi-hat (42, 44, 46) at velocity 100 with each
soundfont (fluidsynth at 48 kHz, as render_groove.py does) and prints the share of each hit's energy (its first
0.5 s) above 8 kHz (the top of a 16 kHz recording) and above 11 kHz.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import mido
import numpy as np
import render_groove as rg

NOTES = (36, 38, 42, 44, 46)
SPACING_MS = 1000
HIT_S = 0.5
EDGES_HZ = (8000, 11000)


def hits_midi(kit: rg.Kit) -> mido.MidiFile:
    messages = []
    for i, note in enumerate(NOTES):
        messages.append((i * SPACING_MS, mido.Message("note_on", channel=rg.DRUM_CHANNEL, note=note, velocity=100)))
        messages.append((i * SPACING_MS + 900, mido.Message("note_off", channel=rg.DRUM_CHANNEL, note=note)))
    return rg.build_midi(messages, kit, len(NOTES) * SPACING_MS)


def energy_above(hit: np.ndarray, rate: int, edge_hz: float) -> float:
    power = np.abs(np.fft.rfft(hit)) ** 2
    freqs = np.fft.rfftfreq(hit.size, 1 / rate)
    return float(power[freqs > edge_hz].sum() / max(power.sum(), 1e-20))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("soundfonts", nargs="+", metavar="PATH[@[BANK:]PROGRAM]")
    args = p.parse_args()
    exe = rg.require_fluidsynth()
    print("kit | " + " | ".join(f"{n} >{e // 1000} kHz" for n in NOTES for e in EDGES_HZ))
    for spec in args.soundfonts:
        kit = rg.parse_kit(spec)
        with tempfile.TemporaryDirectory() as tmp:
            audio = rg.run_fluidsynth(exe, kit, hits_midi(kit), Path(tmp))
        shares = []
        for i in range(len(NOTES)):
            start = rg.note_start_sample(i * SPACING_MS)
            hit = audio[start: start + int(HIT_S * rg.RENDER_RATE)]
            shares += [energy_above(hit, rg.RENDER_RATE, edge) for edge in EDGES_HZ]
        print(kit.name + " | " + " | ".join(f"{s:.2f}" for s in shares))


if __name__ == "__main__":
    main()
