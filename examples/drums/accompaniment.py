"""Accompaniment for drum renderings: POP909 song arrangements played with General MIDI instruments.

A POP909 song folder (`../shared/data/pop909-midi/NNN/`) holds `NNN.mid` (tracks MELODY, BRIDGE and PIANO, all
program 0), `chord_midi.txt` (start_s, end_s, chord) and `beat_midi.txt` (time_s, downbeat flag, ...). For one drum
performance, `accompaniment_midi` takes a stretch of a song starting on a downbeat, time-scales it so that its beat
period matches the performance's tempo (or half or twice it, whichever needs the smaller change), gives every track a
random General MIDI program (pianos, electric pianos, guitars, organs, strings, synths, ...) and adds a bass line made
from the chord roots (or the slash chord's bass note). `render` plays it with fluidsynth; `mix_under` mixes it under
the drums at a drum-to-accompaniment level. The drums' labels are left as they are: accompaniment onsets that
coincide with drum hits are kept, as in real songs.
"""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

TRACKS = ("MELODY", "BRIDGE", "PIANO")
# General MIDI programs (0-based) per part. Melody lines: keys, plucked, bowed, blown and synth leads;
# the piano part: keys, guitars, organs, strings and pads; the bass: acoustic, electric and synth basses.
LEAD_PROGRAMS = (0, 1, 4, 5, 6, 11, 16, 24, 25, 26, 27, 40, 48, 52, 56, 61, 64, 65, 66, 71, 73, 80, 81, 82, 85, 87)
CHORD_PROGRAMS = (0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 24, 25, 26, 27, 28, 29, 30, 46, 48, 49, 50, 51, 88, 89,
                  90, 91, 92, 94, 95)
BASS_PROGRAMS = (32, 33, 34, 35, 36, 37, 38, 39)
TRACK_CHANCE = {"MELODY": 0.75, "BRIDGE": 0.6, "PIANO": 0.9, "BASS": 0.85}
PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)


@dataclass(frozen=True)
class Setup:
    """What to accompany drum files with: song folders, soundfonts, the share of files and the level range (dB of
    accompaniment against the drums' RMS)."""

    songs: tuple[Path, ...]
    soundfonts: tuple[Path, ...]
    share: float
    level_db: tuple[float, float]
    fluidsynth: str


@dataclass(frozen=True)
class Song:
    """One POP909 song: timed channel messages per track, chords as (start_s, end_s, bass pitch class), beats."""

    name: str
    tracks: dict[str, list[tuple[float, mido.Message]]]
    chords: list[tuple[float, float, int]]
    beats: np.ndarray
    downbeats: np.ndarray

    @property
    def beat_period_s(self) -> float:
        return float(np.median(np.diff(self.beats)))


def song_folders(root: Path, ids: str) -> list[Path]:
    """The song folders of `root` whose numbers fall in `ids` ("1-809", "810-909" or "1-10,20")."""
    wanted: set[int] = set()
    for part in ids.split(","):
        first, _, last = part.strip().partition("-")
        wanted.update(range(int(first), int(last or first) + 1))
    folders = [root / f"{n:03d}" for n in sorted(wanted)]
    missing = [f for f in folders if not (f / f"{f.name}.mid").is_file()]
    if missing:
        raise ValueError(f"POP909 song {missing[0]} not found (no {missing[0].name}.mid)")
    return folders


@functools.lru_cache(maxsize=4)
def load_song(folder: Path) -> Song:
    """Read a POP909 song folder."""
    tracks: dict[str, list[tuple[float, mido.Message]]] = {}
    midi = mido.MidiFile(folder / f"{folder.name}.mid")
    for index, track in enumerate(midi.tracks):
        if track.name in TRACKS:
            tracks[track.name] = timed_messages(midi, index)
    chords = []
    for line in (folder / "chord_midi.txt").read_text().splitlines():
        start, end, chord = line.split()[:3]
        bass = chord_bass(chord)
        if bass is not None:
            chords.append((float(start), float(end), bass))
    beat_rows = np.loadtxt(folder / "beat_midi.txt", ndmin=2)
    return Song(folder.name, tracks, chords, beat_rows[:, 0], beat_rows[beat_rows[:, 1] == 1, 0])


def timed_messages(midi: mido.MidiFile, index: int) -> list[tuple[float, mido.Message]]:
    """Note and sustain-pedal messages of one track with their times in seconds (from the file's tempo map)."""
    seconds, out = 0.0, []
    merged = mido.merge_tracks([midi.tracks[0], midi.tracks[index]]) if index else midi.tracks[0]
    tempo = 500000
    for msg in merged:
        seconds += mido.tick2second(msg.time, midi.ticks_per_beat, tempo)
        if msg.type == "set_tempo":
            tempo = msg.tempo
        elif msg.type in ("note_on", "note_off") or (msg.type == "control_change" and msg.control == 64):
            out.append((seconds, msg))
    return out


def chord_bass(chord: str) -> int | None:
    """Pitch class of a chord's bass note ("C#:maj" -> 1, "A:min/b3" -> 0); None for "N" (no chord)."""
    match = re.fullmatch(r"([A-G])([#b]?):([^/]*)(?:/([#b]*)(\d+))?", chord)
    if match is None:
        return None
    root = PITCH_CLASS[match[1]] + {"#": 1, "b": -1, "": 0}[match[2]]
    if match[5]:
        degree = int(match[5])
        root += MAJOR_SCALE[(degree - 1) % 7] + match[4].count("#") - match[4].count("b")
    return root % 12


def time_scale(song: Song, bpm: float) -> float:
    """The factor that maps the song's beat period onto the drums' (60/bpm, or half or twice it)."""
    target = 60.0 / bpm
    return min((target * k / song.beat_period_s for k in (0.5, 1.0, 2.0)), key=lambda s: abs(np.log(s)))


def accompaniment_midi(song: Song, bpm: float, duration_s: float, rng: np.random.Generator
                       ) -> tuple[mido.MidiFile, dict]:
    """A 1 ms-grid MIDI file of `duration_s` seconds of `song` at the drums' tempo, with random programs."""
    scale = time_scale(song, bpm)
    downbeats = song.downbeats if song.downbeats.size else song.beats
    fits = downbeats[downbeats + duration_s / scale <= song.beats[-1]]
    start = float(rng.choice(fits if fits.size else downbeats[:1]))
    parts = [p for p in (*TRACKS, "BASS") if rng.random() < TRACK_CHANCE[p]] or ["PIANO"]
    events: list[tuple[int, mido.Message]] = []
    programs = {}
    for channel, part in enumerate(parts):
        pool = BASS_PROGRAMS if part == "BASS" else CHORD_PROGRAMS if part == "PIANO" else LEAD_PROGRAMS
        programs[part] = int(rng.choice(pool))
        events.append((0, mido.Message("program_change", channel=channel, program=programs[part])))
        events.append((0, mido.Message("control_change", channel=channel, control=7, value=int(rng.integers(70, 128)))))
        timed = bass_line(song, rng) if part == "BASS" else song.tracks.get(part, [])
        for t, msg in timed:
            ms = round((t - start) * scale * 1000)
            if 0 <= ms <= duration_s * 1000:
                events.append((ms, msg.copy(channel=channel, time=0)))
    end_ms = round(duration_s * 1000)
    for channel in range(len(parts)):  # release everything at the end, or fluidsynth renders held notes forever
        events += [(end_ms, mido.Message("control_change", channel=channel, control=c, value=0)) for c in (64, 120)]
    midi = mido.MidiFile(type=0, ticks_per_beat=1000)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=1_000_000, time=0)])
    now = 0
    for ms, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=ms - now))
        now = ms
    track.append(mido.MetaMessage("end_of_track", time=max(0, end_ms - now)))
    midi.tracks.append(track)
    return midi, {"song": song.name, "start_s": round(start, 3), "time_scale": round(scale, 4), "programs": programs}


def bass_line(song: Song, rng: np.random.Generator) -> list[tuple[float, mido.Message]]:
    """Bass notes on the chords' bass pitch classes: held per chord, or on every beat, half beat or two beats."""
    pattern = str(rng.choice(["held", "beats", "eighths", "halves"]))
    low = int(rng.integers(28, 36))  # lowest bass note (E1..B1)
    step = {"beats": 1.0, "eighths": 0.5, "halves": 2.0}.get(pattern)
    out: list[tuple[float, mido.Message]] = []
    for start, end, pitch_class in song.chords:
        note = low + (pitch_class - low) % 12
        if step is None:
            onsets = [start]
        else:
            inside = song.beats[(song.beats >= start - 1e-3) & (song.beats < end - 1e-3)]
            grid = np.concatenate([inside, inside + 0.5 * song.beat_period_s]) if step == 0.5 else inside[:: int(step)]
            onsets = sorted(grid[grid < end - 0.05].tolist()) or [start]
        ends = [*onsets[1:], end]
        for i, (on, off) in enumerate(zip(onsets, ends, strict=True)):
            octave = 12 if pattern == "eighths" and i % 2 else 0
            velocity = int(np.clip(rng.normal(95, 10), 50, 127))
            out.append((on, mido.Message("note_on", note=note + octave, velocity=velocity)))
            out.append((max(on + 0.02, off - 0.03), mido.Message("note_off", note=note + octave)))
    return sorted(out, key=lambda e: e[0])


def render(exe: str, soundfont: Path, midi: mido.MidiFile, rate: int, effects: bool) -> np.ndarray:
    """Play a MIDI file with fluidsynth at `rate` (its reverb and chorus on or off) to mono float audio."""
    with tempfile.TemporaryDirectory() as tmp:
        mid_path, wav_path = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        midi.save(mid_path)
        switch = "1" if effects else "0"
        cmd = [exe, "-n", "-i", "-q", "-R", switch, "-C", switch, "-g", "0.5", "-r", str(rate),
               "-O", "float", "-T", "wav", "-F", str(wav_path), str(soundfont), str(mid_path)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
        if done.returncode != 0 or not wav_path.is_file():
            raise RuntimeError(f"fluidsynth failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        audio, _ = sf.read(wav_path, dtype="float32", always_2d=True)
    return audio.mean(axis=1)


def mix_under(drums: np.ndarray, accompaniment: np.ndarray, level_db: float) -> np.ndarray:
    """Drums plus the accompaniment scaled to `level_db` dB against the drums' RMS (0: equal RMS)."""
    accompaniment = accompaniment[: drums.size]
    accompaniment = np.pad(accompaniment, (0, drums.size - accompaniment.size))
    rms_drums, rms_acc = np.sqrt(np.mean(drums**2)), np.sqrt(np.mean(accompaniment**2))
    if rms_acc == 0:
        return drums
    return drums + accompaniment * (rms_drums / rms_acc) * 10 ** (level_db / 20)


def accompany(drums: np.ndarray, bpm: float, rate: int, setup: Setup, rng: np.random.Generator
              ) -> tuple[np.ndarray, dict | None]:
    """With probability `setup.share`, mix a random song stretch at a random level under the drums."""
    if rng.random() >= setup.share:
        return drums, None
    song = load_song(setup.songs[int(rng.integers(len(setup.songs)))])
    midi, params = accompaniment_midi(song, bpm, drums.size / rate, rng)
    soundfont = setup.soundfonts[int(rng.integers(len(setup.soundfonts)))]
    effects = bool(rng.random() < 0.25)
    level = float(rng.uniform(*setup.level_db))
    audio = render(setup.fluidsynth, soundfont, midi, rate, effects)
    params.update(soundfont=soundfont.stem, effects=effects, level_db=round(level, 2))
    return mix_under(drums, audio, level), params
