"""`eventcount prepare`: timestamps -> count labels, or check a count sheet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eventcount.cli.common import (
    app,
    err,
    fail,
    run,
    seconds,
)
from eventcount.cli.sensor_flags import sensor_flags


@app.command()
@sensor_flags
def prepare(
    sources: Annotated[list[Path] | None, typer.Argument(help="Recordings or folders of recordings.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Count labels CSV to write.", show_default="none: needed unless --check")] = None,
    events: Annotated[Path | None, typer.Option(help="Folder holding <stem>.events.tsv (or .txt/.csv) per recording.", show_default="beside each recording")] = None,
    class_map: Annotated[Path | None, typer.Option(help="YAML mapping raw labels to classes, e.g. `KD: [35, 36]`.", show_default="none: labels are the classes")] = None,
    classes: Annotated[str | None, typer.Option(help="Comma-separated classes to count.", show_default="all mapped or seen")] = None,
    window: Annotated[str, typer.Option(help="Clip length (e.g. 0.25s); 0 = whole files. Short clips keep the timing unbiased.")] = "0.25s",
    hop: Annotated[str | None, typer.Option(help="Step between clip starts.", show_default="the window")] = None,
    check: Annotated[Path | None, typer.Option(help="Check a hand-written count sheet instead.", show_default="off")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    sensor: dict | None = None,
) -> None:
    """Turn timestamps into count-only clip labels, or check a count sheet.

    Examples:

    * `eventcount prepare songs/ --events annotations/ --class-map drums.yaml -o labels.csv`
    * `eventcount prepare --check labels.csv`
    """
    from eventcount.annotations import read_class_map
    from eventcount.labels import read_count_table, write_count_table
    from eventcount.prepare import check_count_table, make_count_table
    from eventcount.recordings import find_recordings

    options = sensor or {}
    if check is not None:
        table = run(read_count_table, check)
        summary = run(check_count_table, table, options)
        _print_summary(summary, table.classes)
        for problem in summary.problems:
            err.print(f"[red]problem:[/] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(1 if summary.problems else 0)
    if not sources or output is None:
        raise typer.BadParameter("give recordings and -o labels.csv (or --check labels.csv)")
    if output.exists() and not overwrite:
        fail(f"{output} exists; use --overwrite to replace it")
    window_s = seconds(window, "--window")
    mapping = run(read_class_map, class_map) if class_map else None
    wanted = [c.strip() for c in classes.split(",")] if classes else None
    recordings = run(find_recordings, sources, "sensor" if options else None)
    table = run(make_count_table, recordings, events, mapping, wanted, window_s or None, seconds(hop, "--hop"), options)
    run(write_count_table, output, table)
    _print_summary(run(check_count_table, table, options), table.classes)
    err.print(f"wrote {len(table.clips)} clips to {output}")


def _print_summary(summary, classes: list[str]) -> None:
    from rich.table import Table

    table = Table(title="Count labels", show_header=False)
    table.add_row("recordings", str(summary.recordings))
    table.add_row("clips", str(summary.clips))
    table.add_row("total duration", f"{summary.duration_s / 60:.1f} min")
    for name in classes:
        table.add_row(f"events: {name}", str(summary.events[name]))
    table.add_row("largest count", f"{summary.max_count} (suggested --cmax {summary.suggested_cmax})")
    err.print(table)

