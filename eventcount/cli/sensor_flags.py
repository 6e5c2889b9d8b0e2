"""The sensor-reading flags (`--columns`, `--filter-column`, `--max-gap`, ...): declared once, for every command.

A command that reads recordings takes them with the `sensor_flags` decorator and receives what the user gave
as its `sensor` argument: a dict of `SensorConfig` fields, empty when no flag was given, for
`SensorConfig.updated` to put on top of a model's stored options (detect, pseudo-label) or of the library's
defaults (prepare, train).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from eventcount.cli.common import seconds
from eventcount.config import SensorConfig

PANEL = "Sensor files (default: the model's stored options, else the library's)"
_DEFAULT = SensorConfig()


def _option(help_text: str, default: str) -> typer.models.OptionInfo:
    return typer.Option(help=help_text, rich_help_panel=PANEL, show_default=default)


FLAGS: dict[str, tuple[Any, Any]] = {  # name: (annotation, default)
    "columns": (Annotated[str | None, _option("CSV value columns (names or 0-based indices, comma-separated).",
                                              "every numeric column")], None),
    "time_column": (Annotated[str | None, _option("CSV time column (name or 0-based index).",
                                                  "a column named like time, t or timestamp_ns")], None),
    "time_unit": (Annotated[str | None, _option("Unit of the time column: s, ms, us, ns or auto (from its name).",
                                                _DEFAULT.time_unit)], None),
    "rate": (Annotated[float | None, _option("Samples per second: of a file without a time column or a .npy array; "
                                             "else the rate to resample to.", "the timestamps' typical rate")],
             None),
    "max_gap": (Annotated[str | None, _option("A longer step between timestamps is a gap in the recording (marked, "
                                              "with a warning; see --strict-timestamps).", f"{_DEFAULT.max_gap_s:g}s")], None),
    "max_disorder": (Annotated[str | None, _option("Rows out of order by at most this are sorted (with a warning); "
                                                   "by more, an error.", f"{_DEFAULT.max_disorder_s:g}s")], None),
    "strict_timestamps": (Annotated[bool | None, _option("Refuse repeated or out-of-order timestamps and gaps "
                                                         "instead of repairing them.", "no")], None),
    "filter_column": (Annotated[str | None, _option("Keep only the rows whose value in this column (e.g. the sensor "
                                                    "type of interleaved sensors) is --filter-value.",
                                                    "none: every row")], None),
    "filter_value": (Annotated[str | None, _option("The value of --filter-column of the rows to keep.", "none")],
                     None),
    "magnitude": (Annotated[bool | None, _option("Use the Euclidean norm of the value columns (one channel).",
                                                 "no")], None),
    "delimiter": (Annotated[str | None, _option("CSV delimiter: ',', ';', tab or whitespace.",
                                                "guessed from the first line")], None),
}


def sensor_options(columns: str | None = None, time_column: str | None = None, time_unit: str | None = None,
                   rate: float | None = None, max_gap: str | None = None, max_disorder: str | None = None,
                   strict_timestamps: bool | None = None, filter_column: str | None = None,
                   filter_value: str | None = None, magnitude: bool | None = None, delimiter: str | None = None
                   ) -> dict[str, Any]:
    """The `SensorConfig` fields the flags gave (only those given): the one translation of the flags."""
    given = {
        "columns": [c.strip() for c in columns.split(",") if c.strip()] if columns else None,
        "time_column": time_column, "time_unit": time_unit, "rate": rate,
        "max_gap_s": seconds(max_gap, "--max-gap"), "max_disorder_s": seconds(max_disorder, "--max-disorder"),
        "strict_timestamps": strict_timestamps, "filter_column": filter_column,
        "filter_value": filter_value, "magnitude": magnitude, "delimiter": delimiter,
    }
    return {name: value for name, value in given.items() if value is not None}


def sensor_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a Typer command the sensor flags; it receives them as its `sensor` argument (see the module)."""
    signature = inspect.signature(command, eval_str=True)
    hints = typing.get_type_hints(command, include_extras=True)
    kept = [p.replace(annotation=hints.get(p.name, p.annotation))
            for p in signature.parameters.values() if p.name != "sensor"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
             for name, (annotation, default) in FLAGS.items()]

    @functools.wraps(command)
    def with_sensor(*args: Any, **kwargs: Any) -> Any:
        flags = {name: kwargs.pop(name, default) for name, (_, default) in FLAGS.items()}
        return command(*args, sensor=sensor_options(**flags), **kwargs)

    with_sensor.__signature__ = signature.replace(parameters=kept + added)  # type: ignore[attr-defined]
    with_sensor.__annotations__ = {p.name: p.annotation for p in kept + added}
    return with_sensor
