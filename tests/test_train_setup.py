"""Resolving training options: defaults, then `--config` YAML sections, then flags; one meaning of each default."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventcount.config import DEFAULT_STRETCH, NETWORK_SIZES, TrainConfig, stretch_factors
from eventcount.errors import EventcountError
from eventcount.labels import Clip, CountTable
from eventcount.train_setup import OptionError, lookahead_frames, parse_stretch, select_classes, training_setup


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_library_defaults() -> None:
    setup = training_setup()
    assert setup.train == TrainConfig()
    assert setup.network == NETWORK_SIZES["small"]
    assert setup.frontend.detection_delay_frames is None


def test_sections_then_flags_in_that_order(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "steps: 50\ntrain:\n  batch_size: 8\n  seed: 3\n"
                                        "frontend:\n  frame_rate: 50\n  n_mels: 24\n"
                                        "network:\n  rnn_hidden: 16\ndecode:\n  min_distance_s: 0.05\n")
    setup = training_setup(config, train={"seed": 7, "steps": None}, frontend={"n_mels": 32, "kind": None})
    assert (setup.train.steps, setup.train.batch_size, setup.train.seed) == (50, 8, 7)  # the flag wins
    assert (setup.frontend.frame_rate, setup.frontend.n_mels) == (50, 32)
    assert setup.network.rnn_hidden == 16 and setup.network.conv_channels == NETWORK_SIZES["small"].conv_channels
    assert setup.decode.min_distance_s == 0.05


def test_size_is_the_base_a_network_section_adjusts(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "network:\n  dropout: 0.3\n")
    setup = training_setup(config, size="large")
    assert setup.network.conv_channels == NETWORK_SIZES["large"].conv_channels
    assert setup.network.dropout == 0.3
    with pytest.raises(OptionError, match="--size"):
        training_setup(size="huge")


@pytest.mark.parametrize(("text", "where", "key"), [
    ("stepz: 5\n", "c.yaml", "stepz"),
    ("frontend:\n  frame_rat: 50\n", "c.yaml frontend", "frame_rat"),
    ("network:\n  hidden: 5\n", "c.yaml network", "hidden"),
    ("decode:\n  treshold: 0.4\n", "c.yaml decode", "treshold"),
])
def test_an_unknown_key_is_named_with_its_file_and_section(tmp_path: Path, text: str, where: str, key: str) -> None:
    config = write(tmp_path / "c.yaml", text)
    with pytest.raises(EventcountError, match=rf"{where}: unknown option\(s\) {key}; known: "):
        training_setup(config)


def test_a_section_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EventcountError, match="section 'train' must be a mapping"):
        training_setup(write(tmp_path / "c.yaml", "train: 5\n"))


def test_stretch_default_has_one_meaning() -> None:
    """The README's `--stretch 0.8,1.25` default, TrainConfig's factors and the flag's parse are the same."""
    assert TrainConfig().stretch_factors == stretch_factors(*DEFAULT_STRETCH) == parse_stretch("0.8,1.25")
    assert parse_stretch("0.8,1.25") == [0.8, 0.8944, 1.0, 1.118, 1.25]
    assert parse_stretch("off") == [1.0]
    assert training_setup(stretch="0.7,1.4").train.stretch_factors == [0.7, 0.8367, 1.0, 1.1832, 1.4]
    for bad in ("1.2,1.5", "0.8", "a,b"):
        with pytest.raises(OptionError, match="--stretch"):
            parse_stretch(bad)


def test_lookahead_in_whole_frames() -> None:
    assert lookahead_frames(0.03, 100.0) == 3
    assert training_setup(lookahead_s=0.06, frontend={"frame_rate": 50.0}).frontend.detection_delay_frames == 3
    with pytest.raises(OptionError, match="whole number of frames"):
        lookahead_frames(0.025, 100.0)


def test_sensor_flags_add_to_the_file_sensor_options(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "frontend:\n  kind: sensor\n  sensor:\n    columns: [x]\n")
    setup = training_setup(config, sensor={"rate": 100.0})
    sensor = setup.frontend.sensor
    get = sensor.get if isinstance(sensor, dict) else lambda k: getattr(sensor, k)
    assert get("columns") == ["x"] and get("rate") == 100.0


def test_class_subset_keeps_the_order_asked_for(tmp_path: Path) -> None:
    table = CountTable(["a", "b", "c"], [Clip(tmp_path / "x.wav", None, None, [1, 2, 3])])
    train, val = select_classes(table, table, ["c", "a"])
    assert train.classes == ["c", "a"] and train.clips[0].counts == [3, 1] and val.clips[0].counts == [3, 1]
    assert table.clips[0].counts == [1, 2, 3]
    with pytest.raises(OptionError, match="--classes: unknown class.*cowbell"):
        select_classes(table, None, ["cowbell"])
