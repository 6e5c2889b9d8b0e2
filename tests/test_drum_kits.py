"""The drum example's Hydrogen kit player (examples/drums/hydrogen_kits.py), on small kits written here."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "drums"))
import hydrogen_kits  # noqa: E402  (the example's folder is not a package)

RATE = 16000


def write_kit(folder: Path, levels: dict[str, float], pitch_hz: float) -> hydrogen_kits.HydrogenKit:
    """A Hydrogen kit of decaying tones, one instrument per name in `levels` (peak level, linear)."""
    folder.mkdir()
    instruments = []
    t = np.arange(int(0.2 * RATE)) / RATE
    for i, (name, level) in enumerate(levels.items()):
        tone = level * np.sin(2 * np.pi * pitch_hz * (i + 1) * t) * np.exp(-t / 0.05)
        sf.write(folder / f"{i}.wav", np.concatenate([np.zeros(80), tone]), RATE)
        instruments.append(f"<instrument><name>{name}</name><layer><filename>{i}.wav</filename>"
                           "<min>0</min><max>1</max></layer></instrument>")
    (folder / "drumkit.xml").write_text(f"<drumkit_info><instrumentList>{''.join(instruments)}"
                                        "</instrumentList></drumkit_info>", encoding="utf-8")
    return hydrogen_kits.HydrogenKit(folder)


@pytest.fixture
def two_kits(tmp_path: Path) -> hydrogen_kits.MixedKit:
    loud_snare = write_kit(tmp_path / "a", {"Kick": 0.4, "Snare": 0.8, "Hi Hat Closed": 0.2}, 100.0)
    quiet_snare = write_kit(tmp_path / "b", {"Kick": 0.1, "Snare": 0.2, "Hi Hat Closed": 0.05}, 130.0)
    return hydrogen_kits.MixedKit((loud_snare, quiet_snare))


def test_mixed_kit_takes_each_part_from_one_kit_at_its_own_kits_balance(two_kits) -> None:
    sources = set()
    for seed in range(20):
        mapping = hydrogen_kits.mixed_note_map(two_kits, RATE, np.random.default_rng(seed))
        assert {35, 36, 37, 38, 40, 42, 44, 46} <= set(mapping)
        assert mapping[35].name == mapping[36].name  # a group comes from one kit
        kick, snare = mapping[36], mapping[38]
        for inst, level_vs_snare in ((kick, 0.5), (snare, 1.0), (mapping[42], 0.25)):
            peak = inst.gain * max(np.abs(layer.audio).max() for layer in inst.layers)
            assert peak == pytest.approx(level_vs_snare, rel=0.05)  # its own kit's snare at 1 (sampled peaks: 5 %)
        sources.add((kick.name.split("/")[0], snare.name.split("/")[0]))
    assert len(sources) == 4  # every combination of the two kits' kicks and snares turns up


def test_mixed_kit_labels_sit_on_the_hits(two_kits) -> None:
    hits = [(100, 36, 100), (400, 38, 90), (700, 42, 60)]
    audio, labels, _ = hydrogen_kits.render_hits(two_kits, hits, RATE, RATE, np.random.default_rng(3))
    assert [note for _, note in labels] == [36, 38, 42]
    for (ms, _, _), (time_s, _) in zip(hits, labels, strict=True):
        assert time_s == pytest.approx(ms / 1000 + 80 / RATE, abs=1e-3)  # the 80 silent samples before each tone
        start = round(time_s * RATE)
        assert np.abs(audio[start - 40:start - 2]).max() < 1e-3 < np.abs(audio[start:start + 80]).max()
