"""`eventcount detect`: events in recordings with a trained model."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import typer

from eventcount.cli.common import (
    JobsOpt,
    ThreadsOpt,
    app,
    device_name,
    err,
    error,
    run,
)
from eventcount.cli.sensor_flags import sensor_flags
from eventcount.config import DEFAULT_FORMAT, DEFAULT_MODEL, DetectSettings


@app.command()
@sensor_flags
def detect(
    inputs: Annotated[list[Path], typer.Argument(help="Recordings or folders of recordings; - reads a stream from standard input (WAV, raw PCM or sensor CSV lines).")],
    model: Annotated[str | None, typer.Option("-m", "--model", help="Shipped model name (see `eventcount models list`) or a .pt file.", show_default=DEFAULT_MODEL)] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output file (one input, with an extension) or folder.", show_default="standard output")] = None,
    fmt: Annotated[str, typer.Option("--format", help="tsv, csv, audacity, jams or midi.")] = DEFAULT_FORMAT,
    threshold: Annotated[float | None, typer.Option(help="Detection threshold for every class, between 0 and 1.", show_default="the model's")] = None,
    tta: Annotated[int, typer.Option(help="Average this many time-stretched passes (more accurate, slower).", min=1)] = DetectSettings.tta,
    save_activations: Annotated[bool, typer.Option(help="Also write the probabilities: <name>.activations.npz beside each event file (named after -o FILE).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    threads: ThreadsOpt = None, jobs: JobsOpt = None,
    sensor: dict | None = None,
    channels: Annotated[int, typer.Option(help="Raw PCM on standard input: interleaved channels.", min=1, rich_help_panel="Standard input (-)")] = 1,
    sample_format: Annotated[str | None, typer.Option(help="Raw PCM on standard input: s16le, s32le or f32le, at --rate; without it standard input is a WAV stream.", show_default="a WAV stream", rich_help_panel="Standard input (-)")] = None,
) -> None:
    """Detect events with a trained model.

    Examples:

    * `eventcount detect song.wav` — default drum model, events to stdout
    * `eventcount detect songs/ -m my.pt -o events/ --tta 5 -j 2`
    * `sox -d -t wav - | eventcount detect -` — live: each event printed as soon as it is decided
    * `eventcount detect - --rate 44100 --channels 2 --sample-format s16le < take.raw`
    """
    from eventcount.batch import detect_all, make_jobs
    from eventcount.detection import Detector
    from eventcount.recordings import duration_hint, find_recordings
    from eventcount.threads import plan

    if threshold is not None and not 0 < threshold < 1:
        raise typer.BadParameter(f"expected a probability between 0 and 1 (exclusive), not {threshold:g}", param_hint="--threshold")
    detector = run(Detector.load, model, device_name(device))
    decode = None if threshold is None else dataclasses.replace(detector.spec.decode, threshold=threshold, thresholds={})
    settings = DetectSettings(decode=decode, tta=tta,
                              sensor=sensor or {})
    if [str(p) for p in inputs] == ["-"]:
        if save_activations or (jobs or 1) > 1:
            raise typer.BadParameter("a stream from standard input is one recording, detected as it arrives; "
                                     "--save-activations and --jobs need files", param_hint="-")
        _detect_stdin(detector, settings, output, fmt, overwrite, channels, sample_format, threads)
        return
    files = run(find_recordings, inputs, detector.spec.frontend.kind)
    single = len(files) == 1 and not inputs[0].is_dir()
    if not single and output is None:
        raise typer.BadParameter("several inputs need -o FOLDER for the event files", param_hint="-o")
    to_file = single and output is not None and not output.is_dir() and output.suffix != ""
    todo, failures = [], 0
    for job in make_jobs(files, output, fmt, to_file, save_activations):
        if job.target is not None and job.target.exists() and not overwrite:
            error(f"{job.target} exists; use --overwrite to replace it")
            failures += 1
        else:
            todo.append(job)
    work = plan(len(todo), threads, jobs, durations_s=(duration_hint(job.recording) for job in todo))
    for result in run(lambda: list(detect_all(detector, todo, settings, work.jobs, work.threads))):
        if result.warning:
            err.print(f"[yellow]warning:[/] {result.warning}", highlight=False, soft_wrap=True)
        if result.error:
            error(result.error)
            failures += 1
        elif result.text is not None:
            sys.stdout.write(result.text)
            sys.stdout.flush()
    if failures:
        if len(files) > 1:
            error(f"{failures} of {len(files)} recordings failed")
        raise typer.Exit(1)


def _detect_stdin(detector, settings: DetectSettings, output: Path | None, fmt: str, overwrite: bool, channels: int,
                  sample_format: str | None, threads: int | None) -> None:
    """`detect -`: events from a stream on standard input, each line printed as soon as it is decided."""
    from eventcount.stream import EventSink, detect_pipe
    from eventcount.threads import set_threads

    set_threads(threads or 1)  # a few frames at a time: the one-thread policy of threads.py
    sink = run(EventSink, fmt, output, sys.stdout, overwrite)
    run(detect_pipe, detector, sys.stdin.buffer, sink, settings, "standard input", channels, sample_format)
