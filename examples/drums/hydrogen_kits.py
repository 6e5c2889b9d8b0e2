"""Real sampled drum kits in Hydrogen's format (Debian `hydrogen-drumkits`), played without a synthesiser.

A kit folder holds `drumkit.xml` and the samples it names. Each instrument is given General MIDI drum
notes by its name ("Kick", "Hi Hat Closed", "Snare Rimshot", ...); a note is played by mixing the sample
of the layer that matches the hit's velocity into the output at the hit's sample. Open hi-hats are choked
by the next hi-hat hit, as on a real kit. The label of a hit is its MIDI time plus the delay from the start
of its sample to the sample's onset (the first crossing of -20 dB below the peak, as for the soundfonts),
so labels are exact by construction.

With `vary`, each file also gets its own version of the kit (`Variation`): every instrument is re-pitched
(resampled, which also stretches its decay), re-balanced in level and, sometimes, damped, so that a dozen
sampled kits stand for many more. The onsets of the changed samples are measured again, so labels stay exact.
A `MixedKit` goes further: each file takes each part of the kit (kick, snare, hi-hats, toms, cymbals) from a
different kit.

Kits without a kick, a snare and a hi-hat (hand percussion, djembes) can still serve as *distractors*:
their hits are mixed in at random times and are not labelled.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from onsets import hit_onset

HYDROGEN_DIR = Path("/usr/share/hydrogen/data/drumkits")
CHOKE_FADE_S = 0.01

# Instrument kinds, recognised from instrument names (first match wins; order matters).
KIND_PATTERNS = [
    ("hh_pedal", r"(hat|hh).*(pedal|\bpd\b|foot)|pedal.*(hat|hh)"),
    ("hh_open", r"(hat|hh).*(open|\bop\b|semi)|open.*(hat|hh)|\bohh\b"),
    ("hh_closed", r"(hat|hh).*(clos|\bcl\b|tight)|clos.*(hat|hh)"),
    ("hh", r"hi.?hat|\bhh\b|\bhat\b"),
    ("stick", r"stick|rim ?click|cross ?stick"),
    ("snare", r"snare|\bsd\b"),
    ("kick", r"kick|bass ?drum|\bbd\b"),
    ("tom", r"\btom"),
    ("ride", r"ride"),
    ("crash", r"crash|china|splash|cymbal"),
    ("clap", r"clap"),
    ("cowbell", r"cowbell|bell"),
    ("tambourine", r"tamb"),
]
SKIP = re.compile(r"roll|swish|choke|flink|zap|fx|whistle", re.IGNORECASE)

# General MIDI drum note -> instrument kinds that can play it, in order of preference.
NOTE_KINDS = {
    35: ["kick"], 36: ["kick"],
    37: ["stick", "snare"], 38: ["snare"], 40: ["snare"],
    42: ["hh_closed", "hh", "hh_pedal"], 44: ["hh_pedal", "hh_closed", "hh"], 46: ["hh_open", "hh", "hh_closed"],
    **{n: ["tom"] for n in (41, 43, 45, 47, 48, 50)},
    49: ["crash", "ride"], 52: ["crash", "ride"], 55: ["crash", "ride"], 57: ["crash", "ride"],
    51: ["ride", "crash"], 59: ["ride", "crash"], 53: ["ride", "cowbell"],
    39: ["clap", "snare"], 54: ["tambourine"], 56: ["cowbell"],
}
REQUIRED_NOTES = (36, 38, 42)
# The parts of a kit that `MixedKit` takes from different kits: GM notes played by one source kit each.
NOTE_GROUPS = {
    "kick": (35, 36), "snare": (37, 38, 39, 40), "hi-hat": (42, 44, 46), "toms": (41, 43, 45, 47, 48, 50),
    "cymbals": (49, 51, 52, 53, 55, 57, 59), "percussion": (54, 56),
}
HI_HAT_NOTES = (42, 44, 46)


@dataclass(frozen=True)
class HydrogenKit:
    """A Hydrogen drum kit folder; its samples are loaded (and cached) per output rate by `load_kit`."""

    folder: Path

    @property
    def name(self) -> str:
        return "h2-" + re.sub(r"[^A-Za-z0-9]+", "", self.folder.name)


@dataclass(frozen=True)
class MixedKit:
    """Several Hydrogen kits played as one: each file takes its kick, its snare, its hi-hats, its toms and its
    cymbals from a kit drawn at random among them (`mixed_note_map`), so a dozen kits make many more."""

    kits: tuple[HydrogenKit, ...]

    @property
    def name(self) -> str:
        return "mixed"


@dataclass(frozen=True)
class Layer:
    """One sample of an instrument for velocities in [low, high] (0..1), with its onset delay in seconds."""

    low: float
    high: float
    audio: np.ndarray
    onset_s: float


@dataclass(frozen=True)
class Instrument:
    name: str
    kind: str | None
    gain: float
    layers: tuple[Layer, ...]

    def layer(self, velocity: float, rng: np.random.Generator) -> Layer:
        fitting = [la for la in self.layers if la.low <= velocity <= la.high] or list(self.layers)
        return fitting[int(rng.integers(len(fitting)))]


def find_kit(spec: str) -> HydrogenKit:
    """A kit from a folder path or the name of a folder in HYDROGEN_DIR; ValueError if it has no drumkit.xml."""
    folder = Path(spec)
    if not (folder / "drumkit.xml").is_file():
        folder = HYDROGEN_DIR / spec
    if not (folder / "drumkit.xml").is_file():
        raise ValueError(f"no Hydrogen drum kit (drumkit.xml) at {spec} or {folder}; install the Debian package "
                         "`hydrogen-drumkits` or give a kit folder")
    return HydrogenKit(folder)


def instrument_kind(name: str) -> str | None:
    if SKIP.search(name):
        return None
    for kind, pattern in KIND_PATTERNS:
        if re.search(pattern, name, re.IGNORECASE):
            return kind
    return None


def _text(node: ET.Element, tag: str, default: str = "") -> str:
    found = node.find(tag)
    return found.text.strip() if found is not None and found.text else default


def _strip_namespaces(root: ET.Element) -> ET.Element:
    for node in root.iter():
        node.tag = node.tag.rsplit("}", 1)[-1]
    return root


def read_sample(path: Path, rate: int) -> np.ndarray:
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    return librosa.resample(audio, orig_sr=sr, target_sr=rate, res_type="soxr_hq") if sr != rate else audio


@functools.lru_cache(maxsize=32)
def load_kit(kit: HydrogenKit, rate: int) -> tuple[Instrument, ...]:
    """The kit's instruments with their samples resampled to `rate` (silent or missing samples dropped)."""
    root = _strip_namespaces(ET.parse(kit.folder / "drumkit.xml").getroot())
    instruments = []
    for node in root.iter("instrument"):
        name = _text(node, "name")
        layer_nodes = list(node.iter("layer")) or [node]  # old kits name one sample on the instrument itself
        layers = []
        for layer in layer_nodes:
            filename = _text(layer, "filename")
            path = kit.folder / filename
            if not filename or not path.is_file() or _text(node, "isMuted") == "true":
                continue
            audio = read_sample(path, rate) * float(_text(layer, "gain", "1"))
            delay = hit_onset(audio, rate, 0.0, (audio.size + 1) / rate)
            if delay is not None:
                layers.append(Layer(float(_text(layer, "min", "0")), float(_text(layer, "max", "1")), audio, delay))
        if layers:
            gain = float(_text(node, "volume", "1")) * float(_text(node, "gain", "1"))
            instruments.append(Instrument(name, instrument_kind(name), gain, tuple(layers)))
    return tuple(instruments)


@dataclass(frozen=True)
class Variation:
    """How one file changes one instrument: pitch (semitones, by resampling), level (dB), damping (s or 0)."""

    semitones: float
    level_db: float
    damping_s: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Variation:
        damping = float(rng.uniform(0.04, 0.3)) if rng.random() < 0.4 else 0.0
        return cls(round(float(rng.uniform(-4, 4)), 2), round(float(rng.uniform(-6, 6)), 2), round(damping, 3))

    def apply(self, layer: Layer, rate: int) -> Layer:
        """The layer's sample re-pitched, re-levelled and damped, with its onset measured again."""
        speed = 2 ** (self.semitones / 12)
        audio = librosa.resample(layer.audio, orig_sr=rate, target_sr=rate / speed, res_type="soxr_hq")
        audio = audio * 10 ** (self.level_db / 20)
        if self.damping_s > 0:
            audio = audio * np.exp(-np.arange(audio.size) / (self.damping_s * rate))
        onset = hit_onset(audio, rate, 0.0, (audio.size + 1) / rate)
        return Layer(layer.low, layer.high, audio, layer.onset_s / speed if onset is None else onset)


def note_map(instruments: tuple[Instrument, ...], rng: np.random.Generator) -> dict[int, Instrument]:
    """One instrument per GM note (a random one where the kit has several of the preferred kind)."""
    by_kind: dict[str, list[Instrument]] = {}
    for inst in instruments:
        if inst.kind:
            by_kind.setdefault(inst.kind, []).append(inst)
    chosen_kind: dict[str, Instrument] = {kind: insts[int(rng.integers(len(insts)))] for kind, insts in by_kind.items()}
    mapping = {}
    for note, kinds in NOTE_KINDS.items():
        for kind in kinds:
            if kind in chosen_kind:
                mapping[note] = chosen_kind[kind]
                break
    return mapping


def mixed_note_map(kit: MixedKit, rate: int, rng: np.random.Generator) -> dict[int, Instrument]:
    """One instrument per GM note, each of `NOTE_GROUPS` from a kit drawn among those that can play it.

    Each instrument keeps its level against its own kit's snare, and the snares are brought to one level, so
    each part sits against the snare as in its own kit (`--vary-instruments` then re-levels each, +-6 dB).
    Instruments are named `KIT/INSTRUMENT`.
    """
    maps = [note_map(load_kit(k, rate), rng) for k in kit.kits]
    mapping: dict[int, Instrument] = {}
    for notes in NOTE_GROUPS.values():
        able = [i for i, m in enumerate(maps) if any(n in m for n in notes) and 38 in m]
        if not able:
            continue
        i = able[int(rng.integers(len(able)))]
        snare = maps[i][38]
        snare_peak = snare.gain * max(float(np.abs(la.audio).max()) for la in snare.layers)
        for n in notes:
            if n in maps[i]:
                inst = maps[i][n]
                mapping[n] = dataclasses.replace(inst, name=f"{kit.kits[i].name}/{inst.name}",
                                                 gain=inst.gain / max(snare_peak, 1e-6))
    return mapping


def is_drum_kit(kit: HydrogenKit, rate: int) -> bool:
    """True if the kit can play a kick, a snare and a hi-hat."""
    mapping = note_map(load_kit(kit, rate), np.random.default_rng(0))
    return all(note in mapping for note in REQUIRED_NOTES)


def render_hits(kit: HydrogenKit | MixedKit, hits: list[tuple[int, int, int]], rate: int, n_samples: int,
                rng: np.random.Generator, vary: bool = False,
                ) -> tuple[np.ndarray, list[tuple[float, int]], dict[str, Variation]]:
    """Play (ms, GM note, velocity) hits with the kit: mono audio of `n_samples`, (onset_s, note) labels and
    the variation of each instrument played (empty unless `vary`).

    Notes the kit cannot play are left out of the audio and of the labels.
    """
    mapping = mixed_note_map(kit, rate, rng) if isinstance(kit, MixedKit) else note_map(load_kit(kit, rate), rng)
    variations: dict[str, Variation] = {}
    for inst in mapping.values() if vary else ():
        if inst.name not in variations:
            variations[inst.name] = Variation.draw(rng)
    varied: dict[int, Layer] = {}
    audio = np.zeros(n_samples, dtype=np.float64)
    labels: list[tuple[float, int]] = []
    hat_starts = sorted(round(ms * rate / 1000) for ms, note, _ in hits if note in HI_HAT_NOTES and note in mapping)
    for ms, note, velocity in sorted(hits):
        inst = mapping.get(note)
        if inst is None:
            continue
        start = round(ms * rate / 1000)
        if start >= n_samples:
            continue
        layer = inst.layer(velocity / 127, rng)
        if vary:
            if id(layer) not in varied:
                varied[id(layer)] = variations[inst.name].apply(layer, rate)
            layer = varied[id(layer)]
        sample = layer.audio * (inst.gain * velocity / 127)
        if note in HI_HAT_NOTES:
            sample = choke(sample, start, hat_starts, rate)
        end = min(n_samples, start + sample.size)
        audio[start:end] += sample[: end - start]
        labels.append((max(0.0, start / rate + layer.onset_s), note))  # a sample at full level from its start
    return audio, labels, variations


def choke(sample: np.ndarray, start: int, hat_starts: list[int], rate: int) -> np.ndarray:
    """Cut a hi-hat sample off (with a short fade) where the next hi-hat hit begins."""
    later = [s for s in hat_starts if s > start]
    if not later or later[0] - start >= sample.size:
        return sample
    keep = later[0] - start
    fade = min(int(CHOKE_FADE_S * rate), sample.size - keep)
    out = sample[: keep + fade].copy()
    out[keep:] *= np.linspace(1.0, 0.0, fade, endpoint=False)
    return out


def distractor_hits(kit: HydrogenKit, rate: int, duration_s: float, rng: np.random.Generator,
                    rate_per_s: tuple[float, float] = (0.3, 2.0)) -> np.ndarray:
    """Random hits of any instrument of `kit` at random times: audio of `duration_s`, never labelled."""
    instruments = load_kit(kit, rate)
    n_samples = round(duration_s * rate)
    audio = np.zeros(n_samples)
    count = rng.poisson(rng.uniform(*rate_per_s) * duration_s)
    for _ in range(count):
        inst = instruments[int(rng.integers(len(instruments)))]
        velocity = float(rng.uniform(0.3, 1.0))
        sample = inst.layer(velocity, rng).audio * inst.gain * velocity
        start = int(rng.integers(n_samples))
        end = min(n_samples, start + sample.size)
        audio[start:end] += sample[: end - start]
    return audio
