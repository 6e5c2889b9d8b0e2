"""Render the Groove MIDI drum performances to labelled audio for a kick/snare/hi-hat detector.

Each performance is rewritten onto a 1 ms MIDI grid (General MIDI drum channel 10, Roland-only
hi-hat edge notes mapped to their GM equivalents), rendered with the `fluidsynth` command line
synthesiser and one soundfont drum kit, resampled, peak-normalised and optionally augmented
(gain, EQ, room reverb, noise). Beside every `<stem>.wav` goes `<stem>.events.tsv` with every
drum hit: `time_s<TAB>GM note`. `classes.yaml` maps those notes to the KD/SD/HH classes.

Label times are corrected for the synthesiser: fluidsynth starts a note at the first 64-sample
block after its MIDI time plus one block, and each drum sample takes a little while to rise. The
script measures that delay for every kit and note with a calibration render (isolated hits at
random times) and adds it to the labels, so a label sits where the audio of the hit reaches
-20 dB of its peak. See README.md beside this file for usage and the data sets built with it.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as taf
import yaml
from accompaniment import Setup, accompany, song_folders
from hydrogen_kits import HydrogenKit, MixedKit, distractor_hits, find_kit, is_drum_kit, render_hits
from onsets import hit_onset
from scipy.signal import fftconvolve

try:
    import mido
    import pedalboard
except ImportError as missing:
    sys.exit(f"error: render_groove.py needs the `{missing.name}` package: pip install -e \".[examples]\" "
             "(mido reads the Groove MIDI files, pedalboard compresses augmented files)")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
CLASSES_YAML = Path(__file__).resolve().with_name("classes.yaml")

DRUM_CHANNEL = 9  # MIDI channel 10, the General MIDI percussion channel
PERCUSSION_BANK = 128
ROLAND_TO_GM = {22: 42, 26: 46, 58: 43}  # TD-11 hi-hat closed/open edge, tom 3 rim
RENDER_RATE = 48000  # fluidsynth's rate
BLOCK = 64  # fluidsynth's internal block length in samples: notes start on block boundaries
SYNTH_GAIN = 0.5
TAIL_S = 1.0  # audio kept after the last hit
PEAK = 10 ** (-1 / 20)  # peak level after normalisation (-1 dBFS)
CALIBRATION_NOTES = tuple(range(35, 60))
CALIBRATION_REPEATS = 4


@dataclass(frozen=True)
class Kit:
    """A drum kit: a soundfont and the preset to play it with.

    Bank 128 is General MIDI's percussion bank, played on channel 10. Some drum soundfonts (the AVL kits of
    Debian's `avldrums.lv2-soundfont`) keep their kit in bank 0, which fluidsynth plays only on a melodic
    channel; such kits are played on channel 1 with the same GM note numbers.
    """

    soundfont: Path
    program: int = 0
    bank: int = PERCUSSION_BANK

    @property
    def name(self) -> str:
        bank = f"-b{self.bank}" if self.bank != PERCUSSION_BANK else ""
        return self.soundfont.stem + bank + (f"-p{self.program}" if self.program else "")

    @property
    def channel(self) -> int:
        return DRUM_CHANNEL if self.bank == PERCUSSION_BANK else 0


@dataclass(frozen=True)
class Performance:
    """One Groove MIDI file and its row of info.csv."""

    stem: str
    midi: Path
    style: str
    bpm: int
    beat_type: str


@dataclass(frozen=True)
class Score:
    """A performance on a 1 ms grid: channel messages as (ms, message), hits as (ms, note, velocity)."""

    messages: list[tuple[int, mido.Message]]
    hits: list[tuple[int, int, int]]

    @property
    def last_hit_ms(self) -> int:
        return max((ms for ms, _, _ in self.hits), default=0)


AnyKit = Kit | HydrogenKit | MixedKit
Pick = tuple[Performance, AnyKit]


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to render one performance with one kit."""

    performance: Performance
    kit: AnyKit
    latency: dict[int, list[float]]
    out_dir: Path
    sample_rate: int
    subtype: str
    augment: bool
    seed: int
    overwrite: bool
    fluidsynth: str | None
    distractors: tuple[HydrogenKit, ...] = ()
    distractor_prob: float = 0.0
    vary_instruments: bool = False
    accompaniment: Setup | None = None

    @property
    def stem(self) -> str:
        return f"{self.performance.stem}__{self.kit.name}"


@dataclass
class Result:
    """What one job produced."""

    stem: str
    kit: str
    duration_s: float
    labels: Counter = field(default_factory=Counter)
    skipped: bool = False
    augment: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groove", type=Path, default=default_groove_dir(),
                   help="Groove MIDI folder with info.csv and midi/ (default: $EVENTCOUNT_GROOVE or "
                        "../shared/data/groove-midi beside the repository)")
    p.add_argument("--split", choices=("train", "validation"), default="train")
    p.add_argument("--soundfont", action="append", dest="soundfonts", metavar="PATH[@[BANK:]PROGRAM]",
                   help="soundfont (.sf2/.sf3), optionally with a drum preset number (e.g. @16 Power kit) and "
                        "bank (default 128, the GM percussion bank; e.g. @0:0 for a kit in bank 0); "
                        f"repeatable (default: {DEFAULT_SOUNDFONT})")
    p.add_argument("--hydrogen-kit", action="append", dest="hydrogen_kits", default=[], metavar="NAME|DIR",
                   help="a real sampled kit in Hydrogen's format: a folder with drumkit.xml, or a kit name from "
                        "the Debian package hydrogen-drumkits (e.g. 'The Black Pearl 1.0'); repeatable")
    p.add_argument("--distractors", action="append", default=[], metavar="NAME|DIR",
                   help="a Hydrogen kit (e.g. 'Gimme A Hand 1.0') whose hits are mixed in at random times, "
                        "unlabelled; repeatable")
    p.add_argument("--distractor-prob", type=float, default=0.5,
                   help="fraction of files that get distractor hits (with --distractors)")
    p.add_argument("--all-kits", action="store_true",
                   help="render every performance with every soundfont (default: one each, in turn)")
    p.add_argument("--limit", type=int, help="at most this many performances")
    p.add_argument("--max-duration", type=float, metavar="S",
                   help="stop once the rendered audio reaches this many seconds in total")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--sample-rate", type=int, default=32000,
                   help="output rate (default 32000: hi-hats have most of their energy above 8 kHz)")
    p.add_argument("--subtype", choices=("PCM_16", "FLOAT"), default="PCM_16", help="wav sample format")
    p.add_argument("--seed", type=int, default=0, help="seed of the performance order, kits and augmentation")
    p.add_argument("--jobs", type=int, default=1, help="parallel rendering processes")
    p.add_argument("--augment", action="store_true", help="random gain, EQ, room reverb and noise per file")
    p.add_argument("--vary-instruments", action="store_true",
                   help="Hydrogen kits: re-pitch (+-4 semitones), re-level (+-6 dB) and sometimes damp each "
                        "instrument, per file")
    p.add_argument("--mix-kits", action="store_true",
                   help="play the Hydrogen kits as one mixed kit: each file takes its kick, snare, hi-hats, toms "
                        "and cymbals from a random one of them (soundfont kits stay whole)")
    p.add_argument("--overwrite", action="store_true", help="re-render files that already exist")
    p.add_argument("--accompaniment", type=Path, metavar="DIR",
                   help="POP909 folder (song folders 001-909): mix song arrangements played with General MIDI "
                        "instruments under the drums, at the performance's tempo (accompaniment.py)")
    p.add_argument("--songs", default="1-809", help="POP909 song numbers to take, e.g. 1-809 (default) or 810-909")
    p.add_argument("--accompaniment-soundfont", action="append", dest="accompaniment_soundfonts", metavar="PATH",
                   help=f"soundfont for the accompaniment's instruments; repeatable (default: {DEFAULT_SOUNDFONT})")
    p.add_argument("--accompaniment-share", type=float, default=0.7, help="share of files with accompaniment")
    p.add_argument("--accompaniment-db", default="-6,12", metavar="LO,HI",
                   help="accompaniment level against the drums' RMS, dB, drawn per file (default -6,12; 0,0: equal)")
    return p.parse_args(argv)


def default_groove_dir() -> Path:
    env = os.environ.get("EVENTCOUNT_GROOVE")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "groove-midi"


def parse_kit(spec: str) -> Kit:
    path, _, preset = spec.partition("@")
    bank, _, program = preset.rpartition(":")
    try:
        kit = Kit(Path(path), int(program or 0), int(bank) if bank else PERCUSSION_BANK)
    except ValueError:
        sys.exit(f"error: --soundfont {spec}: expected PATH, PATH@PROGRAM or PATH@BANK:PROGRAM with whole numbers")
    if not kit.soundfont.is_file():
        sys.exit(f"error: soundfont {kit.soundfont} not found")
    return kit


def parse_hydrogen_kit(spec: str, rate: int, drums: bool) -> HydrogenKit:
    try:
        kit = find_kit(spec)
    except ValueError as error:
        sys.exit(f"error: {error}")
    if drums and not is_drum_kit(kit, rate):
        sys.exit(f"error: Hydrogen kit {kit.folder} has no kick, snare or hi-hat that its instrument names "
                 "reveal; use it with --distractors instead")
    return kit


def accompaniment_setup(args: argparse.Namespace) -> Setup | None:
    """The --accompaniment options, checked."""
    if args.accompaniment is None:
        return None
    try:
        songs = song_folders(args.accompaniment, args.songs)
        low, high = (float(x) for x in args.accompaniment_db.split(","))
    except ValueError as error:
        sys.exit(f"error: --accompaniment {args.accompaniment} --songs {args.songs} --accompaniment-db "
                 f"{args.accompaniment_db}: {error}")
    soundfonts = tuple(Path(s) for s in args.accompaniment_soundfonts or [DEFAULT_SOUNDFONT])
    for soundfont in soundfonts:
        if not soundfont.is_file():
            sys.exit(f"error: accompaniment soundfont {soundfont} not found")
    return Setup(tuple(songs), soundfonts, args.accompaniment_share, (low, high), require_fluidsynth())


def require_fluidsynth() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        sys.exit("error: the `fluidsynth` command is missing: install the Debian package `fluidsynth` "
                 "and a soundfont package such as `fluid-soundfont-gm`")
    return exe


# --------------------------------------------------------------------------- MIDI


def load_performances(groove: Path, split: str) -> list[Performance]:
    """The performances of a split, in info.csv's id order."""
    info = groove / "info.csv"
    if not info.is_file():
        sys.exit(f"error: {info} not found (give the Groove MIDI folder with --groove or $EVENTCOUNT_GROOVE)")
    with info.open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == split]
    return sorted((to_performance(groove, r) for r in rows), key=lambda p: p.stem)


def to_performance(groove: Path, row: dict[str, str]) -> Performance:
    return Performance(stem=row["id"].replace("/", "_"), midi=groove / "midi" / row["midi_filename"],
                       style=row["style"], bpm=int(row["bpm"]), beat_type=row["beat_type"])


def read_score(path: Path) -> Score:
    """Channel messages of a MIDI file on a 1 ms grid, moved to the drum channel and mapped to GM notes."""
    messages: list[tuple[int, mido.Message]] = []
    seconds = 0.0
    for msg in mido.MidiFile(path):  # msg.time: seconds since the previous message, from the tempo map
        seconds += msg.time
        if msg.is_meta or not hasattr(msg, "channel") or msg.type == "program_change":
            continue
        messages.append((round(seconds * 1000), to_gm(msg)))
    hits = [(ms, m.note, m.velocity) for ms, m in messages if m.type == "note_on" and m.velocity > 0]
    return Score(messages, hits)


def to_gm(msg: mido.Message) -> mido.Message:
    msg = msg.copy(channel=DRUM_CHANNEL, time=0)
    if hasattr(msg, "note"):
        msg = msg.copy(note=ROLAND_TO_GM.get(msg.note, msg.note))
    return msg


def score_duration(score: Score) -> float:
    return score.last_hit_ms / 1000 + TAIL_S


def build_midi(messages: Iterable[tuple[int, mido.Message]], kit: Kit, end_ms: int) -> mido.MidiFile:
    """A type 0 MIDI file whose tick is 1 ms, playing `messages` with `kit`'s preset on its channel."""
    midi = mido.MidiFile(type=0, ticks_per_beat=1000)
    channel = kit.channel
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=1_000_000, time=0)])
    if channel != DRUM_CHANNEL:  # select the bank; drop note-offs, which would cut the drum sample short here
        track.append(mido.Message("control_change", channel=channel, control=0, value=kit.bank, time=0))
        messages = [(ms, m) for ms, m in messages if not is_note_off(m)]
    track.append(mido.Message("program_change", channel=channel, program=kit.program, time=0))
    now = 0
    for ms, msg in sorted((m for m in messages if m[0] <= end_ms), key=lambda m: m[0]):
        track.append(msg.copy(channel=channel, time=ms - now))
        now = ms
    track.append(mido.MetaMessage("end_of_track", time=end_ms - now))
    midi.tracks.append(track)
    return midi


def is_note_off(msg: mido.Message) -> bool:
    return msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0)


# --------------------------------------------------------------------------- synthesis and timing


def run_fluidsynth(exe: str, kit: Kit, midi: mido.MidiFile, workdir: Path) -> np.ndarray:
    """Render a MIDI file with fluidsynth (no reverb or chorus) to a mono float array at RENDER_RATE."""
    mid_path, wav_path = workdir / "in.mid", workdir / "out.wav"
    midi.save(mid_path)
    cmd = [exe, "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", str(SYNTH_GAIN), "-r", str(RENDER_RATE),
           "-O", "float", "-T", "wav", "-F", str(wav_path), str(kit.soundfont), str(mid_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not wav_path.is_file():
        raise RuntimeError(f"fluidsynth failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    audio, rate = sf.read(wav_path, dtype="float32", always_2d=True)
    assert rate == RENDER_RATE, rate
    return audio.mean(axis=1)


def note_start_sample(ms: int) -> int:
    """The sample at the start of the block in which fluidsynth's MIDI player sends an event at `ms`.

    With a 1 ms tick, the player sends an event in the first block whose start time in whole
    milliseconds has reached the event's time.
    """
    blocks = -(-ms * RENDER_RATE // (1000 * BLOCK))  # ceil
    return blocks * BLOCK


def to_rate(audio: np.ndarray, rate: int) -> np.ndarray:
    """Resample fluidsynth's output (linear phase: no delay)."""
    if rate == RENDER_RATE:
        return audio
    return librosa.resample(audio, orig_sr=RENDER_RATE, target_sr=rate, res_type="soxr_hq")


def calibration_midi(rng: np.random.Generator, kit: Kit) -> tuple[mido.MidiFile, list[tuple[int, int, int]]]:
    """Isolated hits (each after an all-sound-off 80 ms earlier) of every note at every velocity, and
    CALIBRATION_REPEATS more at velocity 100, in random order at random times."""
    hits = [(note, vel) for note in CALIBRATION_NOTES for vel in range(1, 128)]
    hits += [(note, 100) for note in CALIBRATION_NOTES for _ in range(CALIBRATION_REPEATS)]
    messages, times, now = [], [], 0
    for i in rng.permutation(len(hits)):
        note, velocity = hits[i]
        now += int(rng.integers(200, 300))
        messages.append((now - 80, mido.Message("control_change", channel=DRUM_CHANNEL, control=120)))
        messages.append((now, mido.Message("note_on", channel=DRUM_CHANNEL, note=note, velocity=velocity)))
        messages.append((now + 60, mido.Message("note_off", channel=DRUM_CHANNEL, note=note)))
        times.append((now, note, velocity))
    return build_midi(messages, kit, now + 500), times


def calibrate(exe: str, kit: Kit, seed: int, rate: int) -> dict:
    """Measure the delay from the block fluidsynth starts a hit in to the hit's onset, per note and velocity,
    in the audio resampled to `rate` (band-limiting moves the onset of bright sounds by up to ~0.5 ms).

    Returns the kit's entry of calibration.json; `latency_s[note][velocity]` is what labels use.
    """
    midi, times = calibration_midi(np.random.default_rng(seed), kit)
    with tempfile.TemporaryDirectory() as tmp:
        audio = to_rate(run_fluidsynth(exe, kit, midi, Path(tmp)), rate)
    delays: dict[int, dict[int, list[float]]] = {}
    for ms, note, velocity in times:
        start = note_start_sample(ms) / RENDER_RATE
        onset = hit_onset(audio, rate, start)
        if onset is not None:
            delays.setdefault(note, {}).setdefault(velocity, []).append(onset - start)
    if not delays:
        sys.exit(f"error: kit {kit.name} played no sound on any note {CALIBRATION_NOTES[0]}-{CALIBRATION_NOTES[-1]}; "
                 "is its preset in another bank? (--soundfont PATH@BANK:PROGRAM, e.g. @0:0)")
    latency = {note: fill_velocities(by_vel) for note, by_vel in delays.items()}
    wait = np.mean([note_start_sample(ms) / RENDER_RATE - ms / 1000 for ms, _, _ in times])
    return {"kit": kit.name, "soundfont": str(kit.soundfont), "bank": kit.bank, "program": kit.program,
            "sample_rate": rate,
            "onset_after_midi_ms": {n: round(1e3 * (float(np.median(v[1:])) + wait), 3) for n, v in latency.items()},
            "velocity_range_ms": {n: round(1e3 * float(np.ptp(v[1:])), 3) for n, v in latency.items()},
            "repeat_range_ms": {n: round(1e3 * float(np.ptp(d.get(100, [0.0]))), 3) for n, d in delays.items()},
            "silent_notes": [n for n in CALIBRATION_NOTES if n not in latency],
            "latency_s": latency}


def fill_velocities(by_velocity: dict[int, list[float]], half_width: int = 4) -> list[float]:
    """A 128-entry table, index = velocity, of delays: the median over velocities within `half_width`
    (single hits of noisy sounds such as hi-hats jitter by ~0.5 ms at 16 kHz); velocities that stayed
    silent take the nearest."""
    measured = sorted(by_velocity)
    table = []
    for v in range(128):
        near = [m for m in measured if abs(m - v) <= half_width] or [min(measured, key=lambda m: abs(m - v))]
        table.append(round(float(np.median([d for m in near for d in by_velocity[m]])), 7))
    return table


def label_time(ms: int, note: int, velocity: int, latency: dict[int, list[float]]) -> float:
    """Seconds from the start of the audio to the onset of a hit sent at `ms`."""
    table = latency.get(note)
    delay = table[velocity] if table else float(np.median([t[100] for t in latency.values()]))
    return note_start_sample(ms) / RENDER_RATE + delay


# --------------------------------------------------------------------------- augmentation


def augment(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Random EQ, compression, room reverb, noise and gain. Labels stay valid: nothing here delays the dry signal."""
    params: dict = {}
    if rng.random() < 0.8:
        audio, params["eq"] = random_eq(audio, sr, rng)
    if rng.random() < 0.5:
        audio, params["compressor"] = compress(audio, sr, rng)
    if rng.random() < 0.7:
        audio, params["reverb"] = room_reverb(audio, sr, rng)
    audio = peak_normalise(audio)
    if rng.random() < 0.8:
        audio, params["noise"] = add_noise(audio, rng)
        audio = peak_normalise(audio)
    params["gain_db"] = float(rng.uniform(-12.0, 0.0))
    return audio * 10 ** (params["gain_db"] / 20), params


def random_eq(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """One or two random biquads: low shelf, high shelf or peaking filter, +-12 dB."""
    scale = 1 / 16  # torchaudio's lfilter clamps to [-1, 1]: keep headroom for boosts
    wave = torch.from_numpy(audio.astype(np.float32) * scale)[None]
    filters = []
    for _ in range(int(rng.integers(1, 3))):
        kind, gain = str(rng.choice(["low_shelf", "high_shelf", "peak"])), float(rng.uniform(-12, 12))
        if kind == "low_shelf":
            freq = float(rng.uniform(60, 300))
            wave = taf.bass_biquad(wave, sr, gain, central_freq=freq)
        elif kind == "high_shelf":
            freq = float(rng.uniform(2000, min(8000, 0.4 * sr)))
            wave = taf.treble_biquad(wave, sr, gain, central_freq=freq)
        else:
            freq, q = float(rng.uniform(150, min(6000, 0.4 * sr))), float(rng.uniform(0.5, 2.0))
            wave = taf.equalizer_biquad(wave, sr, freq, gain, Q=q)
        filters.append({"type": kind, "freq_hz": round(freq, 1), "gain_db": round(gain, 2)})
    return wave[0].numpy() / scale, filters


def compress(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Pedalboard's compressor (no lookahead, so no delay): threshold 6-24 dB below the peak, ratio 2-8,
    attack 1-30 ms, release 50-300 ms, as a mix bus is often squashed."""
    peak_db = 20 * np.log10(max(float(np.max(np.abs(audio), initial=0.0)), 1e-9))
    settings = {"threshold_db": round(peak_db - float(rng.uniform(6, 24)), 2),
                "ratio": round(float(rng.uniform(2, 8)), 2),
                "attack_ms": round(float(rng.uniform(1, 30)), 2), "release_ms": round(float(rng.uniform(50, 300)), 1)}
    out = pedalboard.Compressor(**settings)(audio.astype(np.float32)[None], sr)[0]
    return out.astype(np.float64), settings


def room_reverb(audio: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Mix in the signal convolved with exponentially decaying noise (RT60 0.1-0.6 s)."""
    rt60, wet = float(rng.uniform(0.1, 0.6)), float(rng.uniform(0.1, 0.5))
    t = np.arange(int(rt60 * sr)) / sr
    ir = rng.standard_normal(t.size) * 10 ** (-3 * t / rt60)  # -60 dB at rt60
    ir[0] = 0.0  # the direct sound is the dry path
    ir /= np.sqrt(np.sum(ir**2))
    tail = fftconvolve(audio, ir)[: audio.size]
    return (1 - wet) * audio + wet * tail, {"rt60_s": round(rt60, 3), "wet": round(wet, 3)}


def add_noise(audio: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """White or pink noise at a random SNR of 20-40 dB (against the whole file's RMS)."""
    colour, snr = str(rng.choice(["white", "pink"])), float(rng.uniform(20, 40))
    noise = rng.standard_normal(audio.size)
    if colour == "pink":
        noise = pink(noise)
    rms = np.sqrt(np.mean(audio**2))
    noise *= rms / np.sqrt(np.mean(noise**2)) * 10 ** (-snr / 20)
    return audio + noise, {"colour": colour, "snr_db": round(snr, 2)}


def pink(white: np.ndarray) -> np.ndarray:
    """Shape white noise to a 1/f power spectrum."""
    spectrum = np.fft.rfft(white)
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(f), n=white.size)


def peak_normalise(audio: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(audio), initial=0.0))
    return audio * (PEAK / peak) if peak > 0 else audio


# --------------------------------------------------------------------------- one file


def file_seed(seed: int, stem: str) -> list[int]:
    return [seed, zlib.crc32(stem.encode())]


def render_job(job: Job) -> Result:
    """Render one performance with one kit and write `<stem>.wav` and `<stem>.events.tsv`."""
    wav, tsv = job.out_dir / f"{job.stem}.wav", job.out_dir / f"{job.stem}.events.tsv"
    if not job.overwrite and wav.is_file() and tsv.is_file():
        return existing_result(job, wav, tsv)
    score = read_score(job.performance.midi)
    rng = np.random.default_rng(file_seed(job.seed, job.stem))
    params: dict = {}
    if isinstance(job.kit, HydrogenKit | MixedKit):
        n_samples = round((score.last_hit_ms / 1000 + TAIL_S) * job.sample_rate)
        audio, labels, variations = render_hits(job.kit, score.hits, job.sample_rate, n_samples, rng,
                                                job.vary_instruments)
        labels.sort()
        if variations:
            params["instruments"] = {name: dataclasses.asdict(v) for name, v in variations.items()}
    else:
        labels = sorted((label_time(ms, note, vel, job.latency), note) for ms, note, vel in score.hits)
        end_s = (labels[-1][0] if labels else 0.0) + TAIL_S
        midi = build_midi(score.messages, job.kit, score.last_hit_ms + int(1000 * TAIL_S) + 500)
        with tempfile.TemporaryDirectory() as tmp:
            audio = run_fluidsynth(job.fluidsynth, job.kit, midi, Path(tmp))
        audio = to_rate(fit_length(audio, round(end_s * RENDER_RATE)), job.sample_rate)
    audio = peak_normalise(audio)
    if job.distractors and rng.random() < job.distractor_prob:
        audio, params["distractors"] = add_distractors(audio, job, rng)
    if job.accompaniment is not None:
        rng_song = np.random.default_rng([*file_seed(job.seed, job.stem), 1])  # leaves the drums' draws alone
        audio, song = accompany(audio, job.performance.bpm, job.sample_rate, job.accompaniment, rng_song)
        if song is not None:
            params["accompaniment"] = song
            audio = peak_normalise(audio)
    if job.augment:
        audio, augmented = augment(audio, job.sample_rate, rng)
        params.update(augmented)
    write_wav(wav, audio, job.sample_rate, job.subtype)
    write_events(tsv, labels, job)
    return Result(job.stem, job.kit.name, audio.size / job.sample_rate, Counter(n for _, n in labels),
                  augment=params)


def add_distractors(audio: np.ndarray, job: Job, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Mix in unlabelled hits of a random distractor kit, 6-20 dB below the drums (RMS), and renormalise."""
    kit = job.distractors[int(rng.integers(len(job.distractors)))]
    extra = distractor_hits(kit, job.sample_rate, audio.size / job.sample_rate, rng)
    level_db = float(rng.uniform(-20, -6))
    rms = np.sqrt(np.mean(extra**2))
    if rms > 0:
        audio = peak_normalise(audio + extra * np.sqrt(np.mean(audio**2)) / rms * 10 ** (level_db / 20))
    return audio, {"kit": kit.name, "level_db": round(level_db, 2)}


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    return audio[:n] if audio.size >= n else np.pad(audio, (0, n - audio.size))


def write_wav(path: Path, audio: np.ndarray, sr: int, subtype: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, np.clip(audio, -1.0, 1.0).astype(np.float32), sr, subtype=subtype, format="WAV")
    os.replace(tmp, path)


def write_events(path: Path, labels: list[tuple[float, int]], job: Job) -> None:
    lines = [f"# Groove MIDI {job.performance.midi.name} rendered with {job.kit.name}; "
             "label: General MIDI drum note; time_s: onset of the hit in the audio",
             "# time_s\tlabel", *(f"{t:.6f}\t{note}" for t, note in labels)]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def existing_result(job: Job, wav: Path, tsv: Path) -> Result:
    notes = [line.split("\t")[1] for line in tsv.read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    return Result(job.stem, job.kit.name, sf.info(wav).duration, Counter(int(n) for n in notes), skipped=True)


def init_worker() -> None:
    torch.set_num_threads(1)


# --------------------------------------------------------------------------- selection and summary


def select(performances: list[Performance], kits: list[AnyKit], args: argparse.Namespace) -> list[Pick]:
    """Performances in a seeded random order with their kits (in turn, or all), up to the limits."""
    order = np.random.default_rng(args.seed).permutation(len(performances))
    chosen: list[Pick] = []
    total = 0.0
    for i, index in enumerate(order):
        if args.limit is not None and i >= args.limit:
            break
        if args.max_duration is not None and total >= args.max_duration:
            break
        perf = performances[index]
        its_kits = kits if args.all_kits else [kits[i % len(kits)]]
        chosen.extend((perf, kit) for kit in its_kits)
        total += score_duration(read_score(perf.midi)) * len(its_kits)
    return chosen


def mixed(kits: list[AnyKit]) -> list[AnyKit]:
    """The soundfont kits and one `MixedKit` of all the Hydrogen kits (`--mix-kits`)."""
    hydrogen = tuple(k for k in kits if isinstance(k, HydrogenKit))
    if len(hydrogen) < 2:
        sys.exit(f"error: --mix-kits needs two or more --hydrogen-kit, got {len(hydrogen)}")
    return [k for k in kits if not isinstance(k, HydrogenKit)] + [MixedKit(hydrogen)]


def read_class_map(path: Path) -> dict[int, str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {int(note): name for name, notes in data.items() for note in notes}


def summarise(results: list[Result], class_map: dict[int, str], seconds: float) -> str:
    total = sum(r.duration_s for r in results)
    per_class: Counter = Counter()
    per_kit: Counter = Counter()
    for r in results:
        per_kit[r.kit] += r.duration_s
        for note, count in r.labels.items():
            per_class[class_map.get(note, "other")] += count
    classes = sorted(set(class_map.values()))
    lines = [f"{len(results)} files ({sum(r.skipped for r in results)} already there), "
             f"{total / 3600:.2f} h of audio, rendered in {seconds / 60:.1f} min",
             "events: " + ", ".join(f"{c} {per_class[c]}" for c in [*classes, "other"]),
             "per kit: " + ", ".join(f"{k} {d / 3600:.2f} h" for k, d in sorted(per_kit.items()))]
    return "\n".join(lines)


def write_manifest(out_dir: Path, jobs: list[Job], results: list[Result]) -> None:
    with (out_dir / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stem", "midi", "kit", "style", "bpm", "beat_type", "duration_s", "hits", "augment"])
        for job, r in zip(jobs, results, strict=True):
            p = job.performance
            midi = p.midi.relative_to(p.midi.parents[2]).as_posix()  # drummerN/sessionM/<file>.mid
            writer.writerow([r.stem, midi, r.kit, p.style, p.bpm, p.beat_type, f"{r.duration_s:.3f}",
                             sum(r.labels.values()), json.dumps(r.augment) if r.augment else ""])


def carry_augment(out_dir: Path, results: list[Result]) -> None:
    """Keep the augmentation settings of files left as they were from the previous manifest."""
    path = out_dir / "manifest.csv"
    if not path.is_file():
        return
    with path.open(newline="", encoding="utf-8") as handle:
        old = {row["stem"]: row["augment"] for row in csv.DictReader(handle)}
    for r in results:
        if r.skipped and old.get(r.stem):
            r.augment = json.loads(old[r.stem])


def print_calibration(cal: dict) -> None:
    offsets, spread = cal["onset_after_midi_ms"], cal["velocity_range_ms"]
    shown = ", ".join(f"{n}: {offsets[n]:.2f}" + (f" (+-{spread[n] / 2:.2f} by velocity)" if spread[n] > 0.1 else "")
                      for n in (35, 36, 37, 38, 40, 42, 44, 46) if n in offsets)
    print(f"kit {cal['kit']}: audio onset after MIDI time, ms: {shown}; same hit at random times varies by "
          f"<= {max(cal['repeat_range_ms'].values()):.2f} ms; silent notes: {cal['silent_notes'] or 'none'}")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    soundfonts = args.soundfonts or ([] if args.hydrogen_kits else [DEFAULT_SOUNDFONT])
    exe = require_fluidsynth() if soundfonts else None
    kits: list[AnyKit] = [parse_kit(s) for s in soundfonts]
    kits += [parse_hydrogen_kit(s, args.sample_rate, drums=True) for s in args.hydrogen_kits]
    distractors = tuple(parse_hydrogen_kit(s, args.sample_rate, drums=False) for s in args.distractors)
    performances = load_performances(args.groove, args.split)
    setup = accompaniment_setup(args)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    calibrations = {kit: calibrate(exe, kit, args.seed, args.sample_rate) for kit in kits if isinstance(kit, Kit)}
    for cal in calibrations.values():
        print_calibration(cal)
    sampled = [{"kit": kit.name, "hydrogen_kit": str(kit.folder), "labels": "onset of each hit's sample"}
               for kit in kits if isinstance(kit, HydrogenKit)]
    (args.out / "calibration.json").write_text(json.dumps([*calibrations.values(), *sampled], indent=1) + "\n")
    if args.mix_kits:
        kits = mixed(kits)
    shutil.copy(CLASSES_YAML, args.out / "classes.yaml")
    jobs = [Job(perf, kit, calibrations[kit]["latency_s"] if kit in calibrations else {}, args.out, args.sample_rate,
                args.subtype, args.augment, args.seed, args.overwrite, exe, distractors, args.distractor_prob,
                args.vary_instruments, setup)
            for perf, kit in select(performances, kits, args)]
    print(f"rendering {len(jobs)} files to {args.out} with {args.jobs} process(es)", flush=True)
    with multiprocessing.Pool(args.jobs, initializer=init_worker) as pool:
        results = []
        for i, result in enumerate(pool.imap(render_job, jobs), start=1):
            results.append(result)
            if i % 25 == 0 or i == len(jobs):
                print(f"  {i}/{len(jobs)} files, {time.monotonic() - started:.0f} s", flush=True)
    carry_augment(args.out, results)
    write_manifest(args.out, jobs, results)
    print(summarise(results, read_class_map(CLASSES_YAML), time.monotonic() - started))


if __name__ == "__main__":
    main()
