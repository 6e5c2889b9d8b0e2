"""Which hits a model misses: recall per GM note, per MIDI velocity band, for a hit's second of two within
100 ms and per rise of the energy in the class's frequency band at the hit.

    python examples/drums/recall_by_velocity.py /work/data/groove32/val_heldout DETECTED_DIR --class KD

REFERENCE is a folder written by render_groove.py (its manifest.csv names each file's MIDI performance);
DETECTED_DIR holds `eventcount detect` output for its recordings. Hits are matched with mir_eval at 50 ms.

The rise is how much the energy in the class's band (KD 30-150 Hz, SD 150-1000 Hz, HH 6-16 kHz; STFT of
2048 samples, 5 ms hop) grows from the 40-10 ms before the labelled onset to the 30 ms after it, in dB: a hit
under the decay of a louder one, or too soft to be heard over the rest of the kit, rises by 3 dB or less.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import librosa
import mir_eval
import numpy as np
import render_groove as rg

from eventcount.annotations import events_by_class, read_events
from eventcount.evaluate import event_file_stem
from eventcount.recordings import mono, read_audio

BANDS = ((0, 20), (20, 40), (40, 60), (60, 80), (80, 100), (100, 128))
RISES_DB = ((-np.inf, 0.0), (0.0, 3.0), (3.0, 6.0), (6.0, 10.0), (10.0, np.inf))
CLASS_BANDS_HZ = {"KD": (30.0, 150.0), "SD": (150.0, 1000.0), "HH": (6000.0, 16000.0)}
HOP_S = 0.005


def band_rise_db(audio_path: Path, onsets_s: np.ndarray, band_hz: tuple[float, float]) -> np.ndarray:
    """Per onset: the most energy in `band_hz` over the 30 ms from it, over the most in 40-10 ms before it, dB."""
    signal = read_audio(audio_path, str(audio_path))
    hop = int(round(HOP_S * signal.rate))
    power = np.abs(librosa.stft(mono(signal.data), n_fft=2048, hop_length=hop)) ** 2
    freqs = librosa.fft_frequencies(sr=signal.rate, n_fft=2048)
    energy = 10 * np.log10(power[(freqs >= band_hz[0]) & (freqs < band_hz[1])].sum(axis=0) + 1e-10)
    frames = np.clip(np.round(onsets_s / HOP_S).astype(int), 8, energy.size - 6)
    return np.array([energy[f:f + 6].max() - energy[f - 8:f - 2].max() for f in frames])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reference", type=Path)
    p.add_argument("detected", type=Path)
    p.add_argument("--class", dest="name", default="KD")
    p.add_argument("--groove", type=Path, default=rg.default_groove_dir())
    args = p.parse_args()
    notes = {n for n, c in rg.read_class_map(rg.CLASSES_YAML).items() if c == args.name}
    detected = {event_file_stem(f): f for f in args.detected.iterdir()}
    velocities, found, close, hit_notes, rises = [], [], [], [], []
    for row in csv.DictReader((args.reference / "manifest.csv").open(newline="", encoding="utf-8")):
        hits = sorted((ms, vel) for ms, note, vel in rg.read_score(args.groove / "midi" / row["midi"]).hits
                      if note in notes)
        labels = read_events(args.reference / f"{row['stem']}.events.tsv")
        labelled = sorted((e.time_s, int(e.label)) for e in labels if int(e.label) in notes)
        times = np.array([t for t, _ in labelled])
        if row["stem"] not in detected or len(times) != len(hits):
            continue
        estimate = events_by_class(read_events(detected[row["stem"]]), [args.name])[args.name]
        hit = np.zeros(len(times), bool)
        hit[[i for i, _ in mir_eval.util.match_events(times, estimate, 0.05)]] = True
        velocities += [vel for _, vel in hits]
        found += list(hit)
        close += list(np.diff(times, prepend=-1.0) < 0.1)
        hit_notes += [note for _, note in labelled]
        if args.name in CLASS_BANDS_HZ:
            rises += list(band_rise_db(args.reference / f"{row['stem']}.wav", times, CLASS_BANDS_HZ[args.name]))
    velocities, found, close, hit_notes = np.array(velocities), np.array(found), np.array(close), np.array(hit_notes)
    print(f"{args.name}: {found.size} hits, recall {found.mean():.3f}")
    for note in sorted(set(hit_notes.tolist())):
        of_note = hit_notes == note
        print(f"  note {note}: {of_note.sum():6d} hits ({of_note.mean():.0%}), recall {found[of_note].mean():.3f}")
    for low, high in BANDS:
        band = (velocities >= low) & (velocities < high)
        print(f"  velocity {low:3d}-{high - 1:3d}: {band.sum():6d} hits ({band.mean():.0%}), "
              f"recall {found[band].mean() if band.any() else float('nan'):.3f}")
    print(f"  second of two hits within 100 ms: {close.sum()} hits, recall {found[close].mean():.3f}, "
          f"median velocity {np.median(velocities[close]) if close.any() else float('nan'):.0f}")
    if rises:
        rises = np.array(rises)
        low, high = CLASS_BANDS_HZ[args.name]
        print(f"  by rise of the energy at {low:g}-{high:g} Hz at the hit:")
        for low_db, high_db in RISES_DB:
            band = (rises >= low_db) & (rises < high_db)
            print(f"    {low_db:5.0f} to {high_db:3.0f} dB: {band.sum():6d} hits ({band.mean():.0%}), "
                  f"recall {found[band].mean() if band.any() else float('nan'):.3f}")


if __name__ == "__main__":
    main()
