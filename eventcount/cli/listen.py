"""`eventcount listen`: events from a microphone, shown as they happen."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from eventcount.cli.common import app, device_name, err, out, run, seconds
from eventcount.config import DEFAULT_FORMAT, DEFAULT_MODEL


@app.command()
def listen(
    model: Annotated[str | None, typer.Option("-m", "--model", help="Shipped model name or a .pt file (an audio model).", show_default=DEFAULT_MODEL)] = None,
    input_device: Annotated[str | None, typer.Option("--device", help="Input device: its index or part of its name (see --list-devices).", show_default="the system's default input")] = None,
    list_devices: Annotated[bool, typer.Option("--list-devices", help="List the input devices and exit.")] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Also write the events to this file as they come (tsv/csv/audacity; jams/midi when listening stops).", show_default="none: the screen only")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Format of -o FILE: tsv, csv, audacity, jams or midi.")] = DEFAULT_FORMAT,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing -o FILE.")] = False,
    threshold: Annotated[float | None, typer.Option(help="Detection threshold for every class, between 0 and 1.", show_default="the model's")] = None,
    duration: Annotated[str | None, typer.Option(help="Stop after this long (e.g. 30s).", show_default="until Ctrl-C")] = None,
    block: Annotated[str, typer.Option(help="Audio block size: shorter blocks, events sooner, more CPU.")] = "10ms",
    model_device: Annotated[str, typer.Option("--model-device", help="Where the model runs: cpu, cuda or auto.")] = "cpu",
) -> None:
    """Detect events from a microphone and show each one as soon as it is decided; Ctrl-C stops.

    Needs the `listen` extra: `pip install "eventcount[listen]"` (sounddevice and PortAudio).

    Examples:

    * `eventcount listen` — the default drum model on the default microphone
    * `eventcount listen --device USB -o session.events.tsv`
    """
    from eventcount.config import DetectSettings
    from eventcount.detection import Detector
    from eventcount.listen import input_devices
    from eventcount.listen import listen as listen_to
    from eventcount.stream import EventSink
    from eventcount.threads import set_threads

    if list_devices:
        devices = run(input_devices)
        if not devices:
            err.print("no input devices: PortAudio finds no microphone or line input on this machine")
        for found in devices:
            mark = " (default)" if found.is_default else ""
            out.print(f"{found.index}: {found.name} — {found.channels} channel(s), {found.default_rate:g} Hz{mark}",
                      highlight=False)
        return
    if threshold is not None and not 0 < threshold < 1:
        raise typer.BadParameter(f"expected a probability between 0 and 1 (exclusive), not {threshold:g}", param_hint="--threshold")
    block_s, duration_s = seconds(block, "--block"), seconds(duration, "--duration")
    set_threads(1)
    detector = run(Detector.load, model, device_name(model_device))
    decode = None if threshold is None else dataclasses.replace(detector.spec.decode, threshold=threshold, thresholds={})
    sink = run(EventSink, fmt, output, None, overwrite) if output is not None else None

    def started(name: str, stream) -> None:
        err.print(f"listening on {name} at {stream.sample_rate:g} Hz with model {detector.name}: events about "
                  f"{1000 * stream.latency_s:.0f} ms after they happen; Ctrl-C stops", highlight=False)

    def show(events) -> None:
        for event in events:
            confidence = "" if event.confidence is None else f"  {event.confidence:.2f}"
            out.print(f"{event.time_s:9.3f} s  [bold]{event.label}[/]{confidence}", highlight=False)
        out.file.flush()  # at once, also when standard output is a pipe
        if sink is not None:
            sink.write(events)

    heard = run(listen_to, detector, show, input_device, DetectSettings(decode=decode), block_s, duration_s,
                on_start=started)
    if sink is not None:
        run(sink.close, heard.stream.duration_s)
    if heard.overflows:
        err.print(f"[yellow]warning:[/] the input overflowed {heard.overflows} time(s): detection fell behind and "
                  "some audio was lost (try a longer --block)", highlight=False)
