"""`eventcount annotate`: count clips in the browser, writing the count table (and tap event files) as you go."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from eventcount.cli.common import (
    app,
    device_name,
    out,
    run,
    seconds,
)
from eventcount.cli.sensor_flags import sensor_flags


@app.command()
@sensor_flags
def annotate(
    recordings: Annotated[list[Path], typer.Argument(help="Recordings or folders of recordings to count.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Count labels CSV to write (resumed if it exists).")],
    classes: Annotated[str | None, typer.Option(help="Comma-separated classes to count, e.g. KD,SD,HH .", show_default="the CSV's, else the model's")] = None,
    window: Annotated[str, typer.Option(help="Clip length, e.g. 2s.")] = "2s",
    events: Annotated[Path | None, typer.Option(help="Folder for the taps' `<stem>.events.tsv` ; `train --events` reads it.", show_default="beside the CSV")] = None,
    model: Annotated[str | None, typer.Option("-m", "--model", help="Propose this model's counts (shipped name or .pt file); you correct them.", show_default="none: no proposals")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; the default is this computer only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = 0,
    browser: Annotated[bool, typer.Option("--browser/--no-browser", help="Open the page in the web browser.")] = True,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto (for -m).")] = "cpu",
    sensor: dict | None = None,
) -> None:
    """Count events clip by clip in a local web page: listen (or look at a sensor plot), type counts or tap along.

    Every answer is saved at once; run the same command again to carry on at the first clip without a count.

    Examples:

    * `eventcount annotate songs/ --classes KD,SD,HH --window 2s -o labels.csv`
    * `eventcount annotate songs/ -m drums -o labels.csv` — the model proposes, you correct
    """
    from eventcount.annotate import open_annotation, serve

    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    window_s = seconds(window, "--window")
    options = sensor or {}
    annotation = run(open_annotation, recordings, output, names, window_s, events, model, options,
                     device_name(device) if model else "cpu")
    session = annotation.session
    out.print(f"{len(annotation.clips.clips)} clips of {len(annotation.clips.recordings)} recording(s), "
              f"{session.answered()} counted already; answers go to {session.output}", highlight=False, soft_wrap=True)

    def ready(url: str) -> None:
        out.print(f"Counting at {url}  (Ctrl-C stops; every answer is already saved)", highlight=False, soft_wrap=True)
        sys.stdout.flush()

    run(serve, annotation, host, port, browser, ready)
