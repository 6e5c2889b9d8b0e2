"""What every command shares: the Typer app, consoles, error handling, duration parsing and common options.

Heavy modules (torch, librosa) are imported inside the commands so `eventcount --help` is instant.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from eventcount import __version__
from eventcount.errors import EventcountError
from eventcount.units import parse_duration

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  help="Find when short events happen in recordings — learning from counts alone.")
models_app = typer.Typer(no_args_is_help=True, help="The shipped models.")
app.add_typer(models_app, name="models")
out = Console()
err = Console(stderr=True)  # what a command says while it works: silenced by -q
problems = Console(stderr=True)  # errors: never silenced
log = logging.getLogger("eventcount")


def error(message: str) -> None:
    """Print one error line (also with -q)."""
    problems.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # file names may hold [x]


def fail(message: str, code: int = 1) -> None:
    error(message)
    raise typer.Exit(code)


def run(function, *args, **kwargs):
    """Call a library function, turning user errors into one-line messages and exit code 1."""
    try:
        return function(*args, **kwargs)
    except EventcountError as error:
        fail(str(error))


def seconds(value: str | None, what: str) -> float | None:
    """Parse a duration option; a bad value is a usage error (exit 2)."""
    if value is None:
        return None
    try:
        return parse_duration(value, what)
    except EventcountError as error:
        raise typer.BadParameter(str(error).split(": ", 1)[1], param_hint=what) from None


def decibel_range(value: str | None, what: str) -> list[float] | None:
    """Parse a LOW,HIGH level range in dB (e.g. -6,12); a bad value is a usage error (exit 2)."""
    if value is None:
        return None
    try:
        low, high = (float(x.strip().removesuffix("dB").removesuffix("db")) for x in value.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected LOW,HIGH in dB such as -6,12, got {value!r}", param_hint=what) from None
    if low > high:
        raise typer.BadParameter(f"LOW must not be above HIGH, got {value!r}", param_hint=what)
    return [low, high]


def show_progress() -> bool:
    return out.is_terminal and log.level <= logging.INFO


def _print_version(value: bool) -> None:
    if value:
        out.print(f"eventcount {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Say more about what is happening.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                          callback=_print_version)] = False,
) -> None:
    """Find when short events happen in recordings — learning from counts alone."""
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    log.setLevel(level)
    err.quiet = quiet



def device_name(name: str) -> str:
    """`auto` -> cuda when available, else cpu; other names unchanged."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="Torch/numba threads per process.", min=1, show_default="as many as there are idle cores (1 per worker with --jobs)", rich_help_panel="Speed")]
JobsOpt = Annotated[int | None, typer.Option("--jobs", "-j", help="Worker processes (files in parallel).", min=1, show_default="the idle cores, when there are several files", rich_help_panel="Speed")]
