"""Resolving a training run's options: library defaults, then `--config` YAML sections, then flags.

Everything the `train` command decides before training starts lives here (network sizes, the stretch range,
the lookahead in frames, the class subset, the device), so the CLI only parses flags and calls
`training_setup` and `train.train`. Light imports only: the CLI imports this at start-up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventcount.config import (
    DEFAULT_NETWORK_SIZE,
    NETWORK_SIZES,
    DecodeConfig,
    FrontendConfig,
    ModelSpec,
    NetworkConfig,
    TrainConfig,
    from_dict,
    load_yaml,
    stretch_factors,
)
from eventcount.errors import EventcountError
from eventcount.labels import CountTable

SECTIONS = ("train", "frontend", "network", "decode")
NO_STRETCH = ("none", "off", "1", "1.0")


class OptionError(EventcountError):
    """A bad option value: a usage error (the CLI exits with status 2)."""


@dataclass
class TrainSetup:
    """The resolved configs of one training run (defaults < YAML < flags)."""

    train: TrainConfig
    frontend: FrontendConfig
    network: NetworkConfig
    decode: DecodeConfig

    def spec(self, classes: list[str]) -> ModelSpec:
        """A model spec for `classes` (copies: training never writes into this setup)."""
        return ModelSpec(list(classes), dataclasses.replace(self.frontend), dataclasses.replace(self.network),
                         dataclasses.replace(self.decode))


def parse_stretch(text: str) -> list[float]:
    """`--stretch LOW,HIGH` (e.g. 0.8,1.25) or off -> the factor list (`config.stretch_factors`)."""
    if text.strip().lower() in NO_STRETCH:
        return [1.0]
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise OptionError(f"--stretch: expected LOW,HIGH such as 0.8,1.25 (or 'off'), got {text!r}") from None
    try:
        return stretch_factors(low, high)
    except EventcountError as err:
        raise OptionError(f"--stretch: {err}") from None


def lookahead_frames(lookahead_s: float, frame_rate: float) -> int:
    """`--lookahead` in whole frames (what a model file stores as `detection_delay_frames`)."""
    frames = lookahead_s * frame_rate
    if lookahead_s < 0 or abs(frames - round(frames)) > 1e-6:
        raise OptionError(f"--lookahead: expected a whole number of frames at {frame_rate:g} frames/s (e.g. "
                          f"{3 / frame_rate * 1000:g}ms), not {lookahead_s * 1000:g} ms")
    return int(round(frames))


def resolve_device(name: str) -> str:
    """`auto` -> cuda when available, else cpu; other names unchanged."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sections(config_file: Path | None) -> dict[str, dict[str, Any]]:
    """A config file's sections; top-level keys that are not sections belong to `train`."""
    data = load_yaml(config_file) if config_file else {}
    sections: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        section = data.pop(name, None) or {}
        if not isinstance(section, dict):
            raise EventcountError(f"{config_file}: section {name!r} must be a mapping of option: value")
        sections[name] = section
    sections["train"] = {**data, **sections["train"]}
    return sections


def _merged(cls: type, base: Any, *layers: dict[str, Any], where: str) -> Any:
    """`base` with each layer's keys replaced in turn (None values in a layer mean 'not given')."""
    values = dataclasses.asdict(base)
    for layer in layers:
        values.update({k: v for k, v in layer.items() if v is not None})
    unknown = {k: v for layer in layers for k, v in layer.items() if k not in values}
    return from_dict(cls, {**values, **unknown}, where)


def training_setup(
    config_file: str | Path | None = None,
    *,
    size: str | None = None,
    train: dict[str, Any] | None = None,
    frontend: dict[str, Any] | None = None,
    stretch: str | None = None,
    lookahead_s: float | None = None,
    sensor: dict[str, Any] | None = None,
) -> TrainSetup:
    """Resolve a run's configs: library defaults, then the YAML file's sections, then the flags, in that order.

    `size` picks the base network (`config.NETWORK_SIZES`), which a `network:` section adjusts. `train` and
    `frontend` hold flag values by config field (None = not given); `stretch` is `--stretch`'s text,
    `lookahead_s` `--lookahead`, `sensor` the sensor-reading options given as flags. Unknown keys in the file
    or the flags raise `EventcountError` naming the file, the section and the known keys.
    """
    config_file = Path(config_file) if config_file else None
    where = str(config_file) if config_file else "options"
    sections = _sections(config_file)
    if size is not None and size not in NETWORK_SIZES:
        raise OptionError(f"--size: expected one of {', '.join(NETWORK_SIZES)}, got {size!r}")
    base = NETWORK_SIZES[size or DEFAULT_NETWORK_SIZE]
    network = _merged(NetworkConfig, base, sections["network"], where=f"{where} network")
    decode = _merged(DecodeConfig, DecodeConfig(), sections["decode"], where=f"{where} decode")
    train_flags = dict(train or {})
    if stretch is not None:
        train_flags["stretch_factors"] = parse_stretch(stretch)
    train_config = _merged(TrainConfig, TrainConfig(), sections["train"], train_flags, where=where)
    train_config.device = resolve_device(train_config.device)
    front = _merged(FrontendConfig, FrontendConfig(), sections["frontend"], frontend or {},
                    where=f"{where} frontend")
    if lookahead_s is not None:
        front.detection_delay_frames = lookahead_frames(lookahead_s, front.frame_rate)
    if sensor:
        front.sensor = _with_sensor_options(front.sensor, sensor)
    return TrainSetup(train_config, front, network, decode)


def _with_sensor_options(current: Any, options: dict[str, Any]) -> Any:
    """The front end's sensor settings with flag values on top (a dict or a typed sensor config)."""
    if dataclasses.is_dataclass(current):
        return dataclasses.replace(current, **options)
    return {**current, **options}


def select_classes(table: CountTable, val_table: CountTable | None,
                   classes: list[str] | None) -> tuple[CountTable, CountTable | None]:
    """The count tables restricted to `classes` (in that order); None or [] keeps every class."""
    if not classes:
        return table, val_table
    unknown = [c for c in classes if c not in table.classes]
    if unknown:
        raise OptionError(f"--classes: unknown class(es) {', '.join(unknown)}; the labels have "
                          f"{', '.join(table.classes)}")
    return table.subset(classes), val_table.subset(classes) if val_table is not None else None
