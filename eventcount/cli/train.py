"""`eventcount train`: fit a detector from count labels (or rough timestamps)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from eventcount.cli.common import (
    NETWORK_SIZES,
    ColumnsOpt,
    MagnitudeOpt,
    MaxGapOpt,
    RateOpt,
    TimeColumnOpt,
    TimeUnitOpt,
    app,
    device_name,
    err,
    fail,
    log,
    run,
    seconds,
    sensor_options,
    show_progress,
)
from eventcount.config import DecodeConfig, FrontendConfig, NetworkConfig, TrainConfig


def _stretch_factors(text: str | None) -> list[float] | None:
    if text is None:
        return None
    if text.strip().lower() in ("none", "off", "1", "1.0"):
        return [1.0]
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise typer.BadParameter("expected LOW,HIGH such as 0.8,1.25 (or 'off')", param_hint="--stretch") from None
    if not 0 < lo <= 1 <= hi:
        raise typer.BadParameter("need 0 < LOW <= 1 <= HIGH", param_hint="--stretch")
    import numpy as np

    factors = np.concatenate([np.geomspace(lo, 1, 3), np.geomspace(1, hi, 3)[1:]])
    return sorted({round(float(f), 4) for f in factors})


def _configs(config_file: Path | None, size: str | None) -> tuple[TrainConfig, FrontendConfig, NetworkConfig,
                                                                  DecodeConfig]:
    from eventcount.config import from_dict, load_yaml

    data = run(load_yaml, config_file) if config_file else {}
    sections = {k: data.pop(k) for k in ("frontend", "network", "decode", "train") if k in data}
    train_values = {**data, **sections.get("train", {})}
    network = dataclasses.replace(NETWORK_SIZES[size or "small"])
    if "network" in sections:
        network = run(from_dict, NetworkConfig, {**dataclasses.asdict(network), **sections["network"]}, "network")
    frontend = run(from_dict, FrontendConfig, sections.get("frontend", {}), f"{config_file} frontend")
    decode = run(from_dict, DecodeConfig, sections.get("decode", {}), f"{config_file} decode")
    return run(from_dict, TrainConfig, train_values, f"{config_file}"), frontend, network, decode


@app.command()
def train(
    counts: Annotated[Path, typer.Option(help="Count labels CSV (from `prepare` or written by hand).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model file to write (.pt).")],
    config: Annotated[Path | None, typer.Option(help="YAML with `train:`, `frontend:`, `network:` sections; flags win.")] = None,
    loss: Annotated[str | None, typer.Option(help="counts (weak labels), softloc (rough timestamps) or ce (exact timestamps).")] = None,
    events: Annotated[Path | None, typer.Option(help="Folder of timestamp files for softloc and ce (default: beside each recording).")] = None,
    class_map: Annotated[Path | None, typer.Option(help="YAML mapping raw timestamp labels to classes.")] = None,
    classes: Annotated[str | None, typer.Option(help="Train only these classes (comma-separated).")] = None,
    val: Annotated[Path | None, typer.Option(help="Validation count labels (default: hold out recordings).")] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Fraction of recordings held out when --val is not given.")] = None,
    val_events: Annotated[Path | None, typer.Option(help="Timestamps of validation recordings: thresholds then maximise F1.")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimisation steps.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Clips per step.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (AdamW).")] = None,
    cmax: Annotated[int | None, typer.Option(help="Count truncation (default: exact).")] = None,
    size: Annotated[str | None, typer.Option(help="Network size: small (drums) or large.")] = None,
    frontend: Annotated[str | None, typer.Option(help="audio or sensor.")] = None,
    frame_rate: Annotated[float | None, typer.Option(help="Frames per second.")] = None,
    context: Annotated[str | None, typer.Option(help="Unlabelled context before each clip (stops late firing).")] = None,
    lookahead: Annotated[str | None, typer.Option(help="How long after a hit the model may wait before reporting it, e.g. 60ms (audio default: one frame).")] = None,
    stretch: Annotated[str | None, typer.Option(help="Time-stretch range LOW,HIGH (e.g. 0.8,1.25) or off.")] = None,
    band_limit: Annotated[float | None, typer.Option(help="Share of training copies heard as if recorded at a random lower sample rate, e.g. 0.3 (for models that must also work on low-rate files).", min=0.0, max=1.0)] = None,
    softness: Annotated[str | None, typer.Option(help="SoftLoc smoothing width (std), e.g. 100ms.")] = None,
    alpha_start: Annotated[float | None, typer.Option(help="SoftLoc: weight of the counting term at the start.")] = None,
    alpha_end: Annotated[float | None, typer.Option(help="SoftLoc: weight of the counting term at the end.")] = None,
    label_noise: Annotated[str | None, typer.Option(help="Experiment: move each training timestamp by noise of this size.")] = None,
    label_noise_kind: Annotated[str | None, typer.Option(help="gaussian, uniform or skewed.")] = None,
    calibrate_lag: Annotated[Path | None, typer.Option(help="Opt-in: estimate a constant lag from timestamps in this folder (validation recordings) and store it.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or auto.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run (reads OUTPUT.resume).")] = False,
    columns: ColumnsOpt = None, time_column: TimeColumnOpt = None, time_unit: TimeUnitOpt = None,
    rate: RateOpt = None, max_gap: MaxGapOpt = None, magnitude: MagnitudeOpt = False,
) -> None:
    """Train a detector from counts (or rough timestamps).

    Examples:

    * `eventcount train --counts labels.csv -o drums.pt`
    * `eventcount train --counts labels.csv --events ann/ --loss softloc --softness 100ms -o m.pt`
    """
    from eventcount.annotations import read_class_map
    from eventcount.config import ModelSpec
    from eventcount.labels import read_count_table

    train_cfg, frontend_cfg, network_cfg, decode_cfg = _configs(config, size)
    flags = {"loss": loss, "steps": steps, "batch_size": batch_size, "learning_rate": lr, "cmax": cmax,
             "val_fraction": val_fraction, "seed": seed, "device": device, "num_threads": threads,
             "context_s": seconds(context, "--context"), "stretch_factors": _stretch_factors(stretch),
             "band_limit": band_limit,
             "softness_s": seconds(softness, "--softness"), "alpha_start": alpha_start, "alpha_end": alpha_end,
             "label_noise_s": seconds(label_noise, "--label-noise"), "label_noise_kind": label_noise_kind}
    train_cfg = dataclasses.replace(train_cfg, **{k: v for k, v in flags.items() if v is not None})
    train_cfg.device = device_name(train_cfg.device)
    if frontend:
        frontend_cfg.kind = frontend
    if frame_rate:
        frontend_cfg.frame_rate = frame_rate
    if lookahead is not None:
        frontend_cfg.detection_delay_frames = _lookahead_frames(seconds(lookahead, "--lookahead"), frontend_cfg.frame_rate)
    frontend_cfg.sensor.update(sensor_options(columns, time_column, time_unit, rate, max_gap, magnitude))
    table = run(read_count_table, counts)
    val_table = run(read_count_table, val) if val else None
    table, val_table = _select_classes(table, val_table, classes)
    spec = ModelSpec(classes=table.classes, frontend=frontend_cfg, network=network_cfg, decode=decode_cfg)
    mapping = run(read_class_map, class_map) if class_map else None
    summary = _run_training(table, spec, train_cfg, output, val_table, events, mapping, val_events, calibrate_lag,
                            resume)
    _print_training(summary, output)
    raise typer.Exit(0)


def _lookahead_frames(lookahead_s: float, frame_rate: float) -> int:
    """--lookahead in whole frames (the model file stores `detection_delay_frames`)."""
    frames = lookahead_s * frame_rate
    if lookahead_s < 0 or abs(frames - round(frames)) > 1e-6:
        fail(f"--lookahead: expected a whole number of frames at {frame_rate:g} frames/s (e.g. "
             f"{3 / frame_rate * 1000:g}ms), not {lookahead_s * 1000:g} ms", 2)
    return int(round(frames))


def _select_classes(table, val_table, classes: str | None):
    from eventcount.labels import CountTable

    if not classes:
        return table, val_table
    wanted = [c.strip() for c in classes.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in table.classes]
    if unknown:
        fail(f"--classes: unknown class(es) {', '.join(unknown)}; the labels have {', '.join(table.classes)}", 2)

    def subset(t):
        if t is None:
            return None
        idx = [t.classes.index(c) for c in wanted]
        clips = [dataclasses.replace(c, counts=[c.counts[i] for i in idx]) for c in t.clips]
        return CountTable(wanted, clips, t.source)

    return subset(table), subset(val_table)


def _run_training(table, spec, cfg, output, val_table, events, mapping, val_events, calibrate, resume):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from eventcount.train import train as train_model

    progress = Progress(TextColumn("[bold]training"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=err, disable=not show_progress())
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
                   on_step, lambda message: log.info(message))


def _print_training(summary: dict, output: Path) -> None:
    v = summary.get("validation", {})
    note = " (interrupted: a usable model was saved; continue with --resume)" if summary["interrupted"] else ""
    err.print(f"wrote {output} after {summary['seconds']:.0f} s{note}")
    if v:
        err.print(f"validation: count accuracy {v['count_accuracy']:.3f}, count MAE {v['count_mae']:.3f}")
    thresholds = ", ".join(f"{k} {d['threshold']:.2f}" for k, d in summary["thresholds"].items())
    err.print(f"thresholds: {thresholds}")

