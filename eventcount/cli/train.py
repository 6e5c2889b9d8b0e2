"""`eventcount train`: fit a detector from count labels (or rough timestamps).

Options are resolved by `eventcount.train_setup.training_setup` (defaults, then `--config`, then flags);
the defaults shown in `--help` are the library's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eventcount.cli.common import (
    app,
    decibel_range,
    err,
    fail,
    log,
    run,
    seconds,
    show_progress,
)
from eventcount.cli.sensor_flags import sensor_flags
from eventcount.config import DEFAULT_NETWORK_SIZE, DEFAULT_STRETCH, NETWORK_SIZES, FrontendConfig, TrainConfig
from eventcount.errors import EventcountError
from eventcount.train_setup import OptionError, select_classes, training_setup

TRAIN, FRONTEND = TrainConfig(), FrontendConfig()


@app.command()
@sensor_flags
def train(
    counts: Annotated[Path, typer.Option(help="Count labels CSV (from `prepare` or written by hand).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model file to write (.pt).")],
    config: Annotated[Path | None, typer.Option(help="YAML with `train:`, `frontend:`, `network:`, `decode:` sections; flags win.", show_default="none")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model file.")] = False,
    loss: Annotated[str | None, typer.Option(help="counts (weak labels), softloc (rough timestamps) or ce (exact timestamps).", show_default=str(TRAIN.loss))] = None,
    events: Annotated[Path | None, typer.Option(help="Folder of timestamp files for softloc and ce.", show_default="beside each recording")] = None,
    class_map: Annotated[Path | None, typer.Option(help="YAML mapping raw timestamp labels to classes.", show_default="none")] = None,
    classes: Annotated[str | None, typer.Option(help="Train only these classes (comma-separated).", show_default="all")] = None,
    val: Annotated[Path | None, typer.Option(help="Validation count labels.", show_default="hold out --val-fraction of the recordings")] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Fraction of recordings held out when --val is not given.", show_default=str(TRAIN.val_fraction))] = None,
    val_events: Annotated[Path | None, typer.Option(help="Timestamps of validation recordings: thresholds then maximise F1.", show_default="none: thresholds match the counts")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimisation steps.", show_default=str(TRAIN.steps))] = None,
    batch_size: Annotated[int | None, typer.Option(help="Clips per step (over all processes under torchrun).", show_default=str(TRAIN.batch_size))] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (AdamW).", show_default=str(TRAIN.learning_rate))] = None,
    cmax: Annotated[int | None, typer.Option(help="Count truncation.", show_default="none: exact")] = None,
    size: Annotated[str | None, typer.Option(help=f"Network size: {' or '.join(NETWORK_SIZES)}; a `network:` section adjusts it.", show_default=DEFAULT_NETWORK_SIZE)] = None,
    frontend: Annotated[str | None, typer.Option(help="audio or sensor.", show_default=str(FRONTEND.kind))] = None,
    frame_rate: Annotated[float | None, typer.Option(help="Frames per second.", show_default=str(FRONTEND.frame_rate))] = None,
    samples_per_frame: Annotated[int | None, typer.Option(help="Sensor: samples per frame (the sensor is resampled to frame rate x this).", show_default=str(FRONTEND.samples_per_frame), min=1)] = None,
    context: Annotated[str | None, typer.Option(help="Unlabelled context before each clip (stops late firing).", show_default=str(f"{TRAIN.context_s}s"))] = None,
    lookahead: Annotated[str | None, typer.Option(help="How long after a hit the model may wait before reporting it, e.g. 60ms.", show_default="one frame for audio, none for sensors")] = None,
    stretch: Annotated[str | None, typer.Option(help="Time-stretch range LOW,HIGH or off.", show_default=str(",".join(map(str, DEFAULT_STRETCH))))] = None,
    band_limit: Annotated[float | None, typer.Option(help="Share of training copies heard as if recorded at a random lower sample rate, e.g. 0.3 (for models that must also work on low-rate files).", show_default=str(TRAIN.band_limit), min=0.0, max=1.0)] = None,
    background: Annotated[list[Path] | None, typer.Option(metavar="PATH", help="Audio file or folder to mix under training recordings (music, noise, rooms: sounds without the events counted); repeatable.", show_default="none")] = None,
    background_share: Annotated[float | None, typer.Option(help="Share of training copies that get a background.", show_default=str(TRAIN.background_share), min=0.0, max=1.0)] = None,
    background_db: Annotated[str | None, typer.Option(help="Background level against the recording, dB LOW,HIGH (0: equally loud).", show_default=",".join(f"{x:g}" for x in TRAIN.background_db))] = None,
    softness: Annotated[str | None, typer.Option(help="SoftLoc smoothing width (std).", show_default=str(f"{TRAIN.softness_s}s"))] = None,
    alpha_start: Annotated[float | None, typer.Option(help="SoftLoc: weight of the counting term at the start.", show_default=str(TRAIN.alpha_start))] = None,
    alpha_end: Annotated[float | None, typer.Option(help="SoftLoc: weight of the counting term at the end.", show_default=str(TRAIN.alpha_end))] = None,
    label_noise: Annotated[str | None, typer.Option(help="Experiment: move each training timestamp by noise of this size.", show_default="none")] = None,
    label_noise_kind: Annotated[str | None, typer.Option(help="gaussian, uniform or skewed.", show_default=str(TRAIN.label_noise_kind))] = None,
    calibrate_lag: Annotated[Path | None, typer.Option(help="Opt-in: estimate a constant lag from timestamps in this folder (validation recordings) and store it.", show_default="off")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.", show_default=str(TRAIN.seed))] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or auto (cuda trains with mixed precision).", show_default=str(TRAIN.device))] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch and the counting loss, per process.", show_default=str(TRAIN.num_threads))] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run (reads OUTPUT.resume).")] = False,
    sensor: dict | None = None,
) -> None:
    """Train a detector from counts (or rough timestamps).

    Examples:

    * `eventcount train --counts labels.csv -o drums.pt`
    * `eventcount train --counts labels.csv --events ann/ --loss softloc --softness 100ms -o m.pt`
    * `torchrun --nproc-per-node 2 "$(which eventcount)" train --counts labels.csv -o m.pt` (several processes)
    """
    from eventcount.annotations import read_class_map
    from eventcount.distributed import from_environment
    from eventcount.labels import read_count_table

    flags = {"loss": loss, "steps": steps, "batch_size": batch_size, "learning_rate": lr, "cmax": cmax,
             "val_fraction": val_fraction, "seed": seed, "device": device, "num_threads": threads,
             "context_s": seconds(context, "--context"), "band_limit": band_limit,
             "background": [str(p) for p in background] if background else None,
             "background_share": background_share, "background_db": decibel_range(background_db, "--background-db"),
             "softness_s": seconds(softness, "--softness"), "alpha_start": alpha_start, "alpha_end": alpha_end,
             "label_noise_s": seconds(label_noise, "--label-noise"), "label_noise_kind": label_noise_kind}
    try:
        setup = training_setup(config, size=size, train=flags, frontend={"kind": frontend, "frame_rate": frame_rate,
                                                                          "samples_per_frame": samples_per_frame},
                               stretch=stretch, lookahead_s=seconds(lookahead, "--lookahead"),
                               sensor=sensor or {})
        table = run(read_count_table, counts)
        val_table = run(read_count_table, val) if val else None
        wanted = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
        table, val_table = select_classes(table, val_table, wanted)
    except OptionError as error:
        fail(str(error), 2)
    except EventcountError as error:
        fail(str(error))
    mapping = run(read_class_map, class_map) if class_map else None
    result = _run_training(table, setup.spec(table.classes), setup.train, output, val_table, events, mapping,
                           val_events, calibrate_lag, resume, overwrite)
    if from_environment().main:  # under torchrun, rank 0 speaks for the run
        _print_training(result.summary, output)
    raise typer.Exit(0)


def _run_training(table, spec, cfg, output, val_table, events, mapping, val_events, calibrate, resume, overwrite):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from eventcount.distributed import from_environment
    from eventcount.train import train as train_model

    progress = Progress(TextColumn("[bold]training"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=err, disable=not show_progress() or not from_environment().main)
    with progress:
        task = progress.add_task("train", total=cfg.steps, info="")
        state = {"val": ""}

        def on_step(report) -> None:
            if report.validation:
                v = report.validation
                state["val"] = f"val loss {v['loss']:.3f} count acc {v['count_accuracy']:.3f}"
                log.info("step %d: loss %.4f, %s", report.step, report.loss, state["val"])
            progress.update(task, completed=report.step, info=f"loss {report.loss:.3f}  {state['val']}")

        return run(train_model, table, spec, cfg, output, val_table, events, mapping, val_events, calibrate, resume,
                   on_step, lambda message: log.info(message), overwrite=overwrite)


def _print_training(summary: dict, output: Path) -> None:
    v = summary.get("validation", {})
    note = " (interrupted: a usable model was saved; continue with --resume)" if summary["interrupted"] else ""
    err.print(f"wrote {output} after {summary['seconds']:.0f} s{note}")
    if v:
        err.print(f"validation: count accuracy {v['count_accuracy']:.3f}, count MAE {v['count_mae']:.3f}")
    thresholds = ", ".join(f"{k} {d['threshold']:.2f}" for k, d in summary["thresholds"].items())
    err.print(f"thresholds: {thresholds}")
