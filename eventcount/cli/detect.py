"""`eventcount detect`: events in recordings with a trained model."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import typer

from eventcount.cli.common import (
    ColumnsOpt,
    MagnitudeOpt,
    MaxGapOpt,
    RateOpt,
    TimeColumnOpt,
    TimeUnitOpt,
    app,
    device_name,
    err,
    run,
    sensor_options,
)
from eventcount.errors import EventcountError


@app.command()
def detect(
    inputs: Annotated[list[Path], typer.Argument(help="Recordings or folders of recordings.")],
    model: Annotated[str | None, typer.Option("-m", "--model", help="Shipped model name (see `eventcount models list`) or a .pt file.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output file (one input, with an extension) or folder.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="tsv, csv, audacity, jams or midi.")] = "tsv",
    threshold: Annotated[float | None, typer.Option(help="Detection threshold for every class (default: the model's).")] = None,
    tta: Annotated[int, typer.Option(help="Average this many time-stretched passes (more accurate, slower).")] = 1,
    save_activations: Annotated[bool, typer.Option(help="Also write <stem>.activations.npz (probabilities).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    columns: ColumnsOpt = None, time_column: TimeColumnOpt = None, time_unit: TimeUnitOpt = None,
    rate: RateOpt = None, max_gap: MaxGapOpt = None, magnitude: MagnitudeOpt = False,
) -> None:
    """Detect events with a trained model.

    Examples:

    * `eventcount detect song.wav` — default drum model, events to stdout
    * `eventcount detect songs/ -m my.pt -o events/ --tta 5`
    """
    from eventcount.detect import detect_file, output_path
    from eventcount.inference import Detector
    from eventcount.recordings import find_recordings

    detector = run(Detector.load, model, device_name(device))
    decode = dataclasses.replace(detector.spec.decode)
    if threshold is not None:
        decode.threshold, decode.thresholds = threshold, {}
    options = sensor_options(columns, time_column, time_unit, rate, max_gap, magnitude)
    files = run(find_recordings, inputs, detector.spec.frontend.kind)
    single = len(files) == 1 and not inputs[0].is_dir()
    if not single and output is None:
        raise typer.BadParameter("several inputs need -o FOLDER for the event files", param_hint="-o")
    failures = 0
    for path in files:
        target = None
        if output is not None:
            to_file = single and not output.is_dir() and output.suffix != ""
            target = output if to_file else output_path(output, path, fmt)
            if target.exists() and not overwrite:
                err.print(f"[red]error:[/] {target} exists; use --overwrite to replace it", highlight=False)
                failures += 1
                continue
        if note := detector.low_rate_note(path):
            err.print(f"[yellow]warning:[/] {note}", highlight=False, soft_wrap=True)
        try:
            text = detect_file(detector, path, decode, fmt, target, tta, save_activations, options)
        except EventcountError as error:
            err.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
            failures += 1
            continue
        if text is not None:
            sys.stdout.write(text)
    if failures:
        err.print(f"{failures} of {len(files)} recordings failed")
        raise typer.Exit(1)

