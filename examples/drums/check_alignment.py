"""Check that the labels of files written by render_groove.py sit on the hits in the audio.

Two checks per file:

* librosa: onsets detected in the written audio (spectral flux, 1 ms hop) against the labels
  (hits closer than 30 ms merged): matched fraction and the detected-minus-label time.
* solo: the performance is rendered again with one class (KD, SD or HH) alone; for every hit with
  no other hit of the class in the 150 ms before it, the onset (first sample within -20 dB of the
  hit's peak) is compared with its label. This measures the synthesiser timing over whole
  performances, and the class's level against the full mix shows whether it is audible.

    python examples/drums/check_alignment.py /work/data/groove32/val_heldout --files 3
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import librosa
import numpy as np
import render_groove as rg
import soundfile as sf
from hydrogen_kits import HydrogenKit, MixedKit, render_hits


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="output folder of render_groove.py")
    p.add_argument("--groove", type=Path, default=rg.default_groove_dir())
    p.add_argument("--files", type=int, default=3, help="check this many files (the longest ones)")
    p.add_argument("--seed", type=int, default=0, help="the --seed the files were rendered with")
    return p.parse_args()


def read_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")]
    return np.array([float(t) for t, _ in rows]), np.array([int(n) for _, n in rows])


def merge_close(times: np.ndarray, gap: float = 0.03) -> np.ndarray:
    """The first time of every group of times closer than `gap` to their predecessor."""
    times = np.sort(times)
    keep = np.concatenate([[True], np.diff(times) >= gap]) if times.size else times.astype(bool)
    return times[keep]


def librosa_check(audio: np.ndarray, sr: int, labels: np.ndarray) -> str:
    """librosa onsets (32 ms window, 1 ms hop, backtracked to the rise) against the starts of hit groups."""
    hop = sr // 1000
    envelope = librosa.onset.onset_strength(y=audio, sr=sr, hop_length=hop, n_fft=512)
    onsets = librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=hop, units="time",
                                        backtrack=True)
    starts = merge_close(labels)
    if onsets.size < 2 or not starts.size:
        return "librosa: too few onsets"
    after = np.clip(np.searchsorted(onsets, starts), 1, onsets.size - 1)
    diff = np.where(np.abs(onsets[after] - starts) < np.abs(onsets[after - 1] - starts),
                    onsets[after] - starts, onsets[after - 1] - starts)
    found = np.abs(diff) < 0.025
    precision = np.mean(np.min(np.abs(onsets[:, None] - starts[None]), axis=1) < 0.025)
    q10, q50, q90 = np.percentile(diff[found], [10, 50, 90]) * 1e3
    return (f"librosa: {found.mean():.0%} of {starts.size} hit groups have an onset within 25 ms, "
            f"{precision:.0%} of {onsets.size} onsets are near a label; onset - label ms: median {q50:+.2f} "
            f"(10%..90% {q10:+.2f}..{q90:+.2f})")


def solo_audio(kit: rg.AnyKit, midi: Path, notes: set[int], sr: int, n: int, stem: str, seed: int,
               vary: bool = False) -> np.ndarray:
    """The performance rendered with only `notes` (and the hi-hat pedal controller), as written."""
    score = rg.read_score(midi)
    if isinstance(kit, HydrogenKit | MixedKit):  # same seed as the file: the same instruments (and variations) play
        hits = [h for h in score.hits if h[1] in notes]
        return render_hits(kit, hits, sr, n, np.random.default_rng(rg.file_seed(seed, stem)), vary)[0]
    keep = [(ms, m) for ms, m in score.messages if not hasattr(m, "note") or m.note in notes]
    end = score.last_hit_ms + int(1000 * rg.TAIL_S) + 500
    with tempfile.TemporaryDirectory() as tmp:
        audio = rg.run_fluidsynth(rg.require_fluidsynth(), kit, rg.build_midi(keep, kit, end), Path(tmp))
    return rg.fit_length(rg.to_rate(audio, sr), n)


def solo_check(audio: np.ndarray, full: np.ndarray, sr: int, times: np.ndarray) -> str:
    """Onset (ONSET_DB rule) minus label of hits with no hit of the class in the 150 ms before them, and
    the class's share of the mix: overall and above 4 kHz."""
    errors = []
    for i, t in enumerate(times):
        following = times[i + 1] - t if i + 1 < times.size else 1.0
        if (i and t - times[i - 1] < 0.15) or following < 0.01:
            continue
        window = min(0.05, following - 0.001)
        before = np.abs(audio[max(0, int((t - 0.005) * sr)):max(0, int((t - 0.001) * sr))])
        onset = rg.hit_onset(audio, sr, max(0.0, t - 0.001), window)
        peak = np.abs(audio[int(t * sr):int((t + window) * sr)]).max(initial=0.0)
        if onset is None or before.max(initial=0.0) >= peak / 10:
            continue  # silent, or the class is still ringing from an earlier hit
        errors.append(onset - t)
    if not errors:
        return "no isolated hits"
    err = np.array(errors) * 1e3
    level = 10 * np.log10(np.mean(audio**2) / np.mean(full**2))
    high = 10 * np.log10(high_energy(audio, sr) / high_energy(full, sr))
    return (f"{len(err)} isolated hits, onset - label ms: median {np.median(err):+.3f}, "
            f"95% within {np.percentile(np.abs(err), 95):.3f}, max {np.max(np.abs(err)):.3f}; "
            f"level vs mix {level:+.1f} dB, above 4 kHz {high:+.1f} dB")


def high_energy(audio: np.ndarray, sr: int, cutoff: float = 4000.0) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    return float(spectrum[np.fft.rfftfreq(audio.size, 1 / sr) >= cutoff].sum())


def check_file(folder: Path, row: dict, kits: dict[str, rg.AnyKit], groove: Path, classes: dict[int, str],
               seed: int) -> None:
    audio, sr = sf.read(folder / f"{row['stem']}.wav", dtype="float32")
    times, notes = read_labels(folder / f"{row['stem']}.events.tsv")
    print(f"{row['stem']} ({float(row['duration_s']):.0f} s, augment: {bool(row['augment'])})")
    print("  " + librosa_check(audio, sr, times))
    kit, midi = kits[row["kit"]], groove / "midi" / row["midi"]
    vary = "instruments" in json.loads(row["augment"] or "{}")
    full = solo_audio(kit, midi, set(range(128)), sr, audio.size, row["stem"], seed, vary)
    for name in sorted(set(classes.values())):
        wanted = {n for n, c in classes.items() if c == name}
        solo = solo_audio(kit, midi, wanted, sr, audio.size, row["stem"], seed, vary)
        print(f"  solo {name}: " + solo_check(solo, full, sr, times[np.isin(notes, list(wanted))]))


def main() -> None:
    args = parse_args()
    with (args.folder / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: -float(r["duration_s"]))
    calibration = json.loads((args.folder / "calibration.json").read_text(encoding="utf-8"))
    kits = {c["kit"]: HydrogenKit(Path(c["hydrogen_kit"])) if "hydrogen_kit" in c
            else rg.Kit(Path(c["soundfont"]), c["program"]) for c in calibration}
    kits["mixed"] = MixedKit(tuple(k for k in kits.values() if isinstance(k, HydrogenKit)))  # --mix-kits
    classes = rg.read_class_map(rg.CLASSES_YAML)
    for row in rows[: args.files]:
        check_file(args.folder, row, kits, args.groove, classes, args.seed)


if __name__ == "__main__":
    main()
