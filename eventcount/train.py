"""Training: count labels (and optionally rough timestamps) -> a model file with tuned decoding thresholds."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eventcount import distributed
from eventcount.augment import training_augmentation
from eventcount.checkpoint import save_model
from eventcount.config import FrontendConfig, ModelSpec, TrainConfig
from eventcount.counting import initial_bias
from eventcount.dataset import ClipData, resolve_frontend
from eventcount.distributed import Ranks
from eventcount.errors import EventcountError
from eventcount.features import working_rate
from eventcount.labels import CountTable
from eventcount.network import CRNN
from eventcount.prepare import capacity_problems
from eventcount.recordings import signal_duration
from eventcount.threads import set_threads
from eventcount.thresholds import calibrate_lag, choose_thresholds, recording_probabilities
from eventcount.train_loop import StepReport, TrainLoop, grad_scaler, make_optimizer, ramp_steps
from eventcount.train_state import load_resume, resume_path

LOSSES = ("counts", "softloc", "ce")


@dataclass
class TrainResult:
    """What training produced: the resolved spec and config written into the model file, and its summary."""

    spec: ModelSpec
    config: TrainConfig
    summary: dict[str, Any]


@dataclass
class TrainInputs:
    """Where training reads besides the count table (all optional)."""

    val_table: CountTable | None = None
    events_dir: Path | None = None
    class_map: dict[str, str] | None = None
    val_events_dir: Path | None = None
    calibrate_lag_dir: Path | None = None


def split_validation(table: CountTable, fraction: float, seed: int) -> tuple[CountTable, CountTable]:
    """Hold out whole recordings (or clips when there is only one recording) for validation."""
    recordings = table.recordings()
    rng = random.Random(seed)
    if len(recordings) >= 2:
        held = set(rng.sample(recordings, max(1, round(fraction * len(recordings)))))
        val = [c for c in table.clips if c.path in held]
        train = [c for c in table.clips if c.path not in held]
    else:
        clips = table.clips[:]
        rng.shuffle(clips)
        n_val = max(1, round(fraction * len(clips)))
        val, train = clips[:n_val], clips[n_val:]
    if not train:
        raise EventcountError(f"{table.source}: too few clips to hold out a validation set; add clips or give --val")
    return CountTable(table.classes, train, table.source), CountTable(table.classes, val, table.source)


def perturb_events(data: ClipData, config: TrainConfig, rank: int = 0) -> None:
    """Label-noise simulation: move every *training* timestamp once, seeded (never applied to validation)."""
    if config.label_noise_s <= 0:
        return
    rng = np.random.default_rng([config.seed + 7919, rank] if rank else config.seed + 7919)
    scale = config.label_noise_s
    for rec in data.recordings.values():
        for name, times in (rec.events or {}).items():
            if config.label_noise_kind == "gaussian":
                noise = rng.normal(0, scale, times.size)
            elif config.label_noise_kind == "uniform":
                noise = rng.uniform(-scale, scale, times.size)
            elif config.label_noise_kind == "skewed":
                noise = rng.exponential(scale, times.size) - scale
            else:
                raise EventcountError(f"unknown label noise kind {config.label_noise_kind!r}; "
                                      "choose gaussian, uniform or skewed")
            rec.events[name] = np.sort(np.maximum(times + noise, 0.0))


def resolved_config(config: TrainConfig) -> TrainConfig:
    """A copy of `config` with its automatic values decided (device, SoftLoc ramp); checked."""
    if config.loss not in LOSSES:
        raise EventcountError(f"unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}")
    if config.steps < 1 or config.batch_size < 1:
        raise EventcountError(f"steps ({config.steps}) and batch size ({config.batch_size}) must be at least 1")
    ramp = ramp_steps(config)
    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return dataclasses.replace(config, alpha_ramp_steps=ramp, device=device,
                               stretch_factors=list(config.stretch_factors))


def train(
    table: CountTable,
    spec: ModelSpec,
    config: TrainConfig,
    out: str | Path,
    val_table: CountTable | None = None,
    events_dir: Path | None = None,
    class_map: dict[str, str] | None = None,
    val_events_dir: Path | None = None,
    calibrate_lag_dir: Path | None = None,
    resume: bool = False,
    on_step: Callable[[StepReport], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train a model on `table`, write it to `out` and return the resolved spec, config and training summary.

    `spec` and `config` are not changed; an existing `out` is replaced only with `overwrite` (or `resume`).
    Ctrl-C stops training early and still writes a usable model; `resume` continues from `<out>.resume`.
    Under torchrun (WORLD_SIZE set) every rank runs this: each reads its share of the clips and takes its share
    of each batch (`batch_size` is global); rank 0 validates, chooses thresholds and writes the model, and the
    other ranks return the same result.
    """
    config = resolved_config(config)
    out = Path(out)
    if out.exists() and not (overwrite or resume):
        raise EventcountError(f"{out} exists; use --overwrite to replace it")
    inputs = TrainInputs(val_table, events_dir, class_map, val_events_dir, calibrate_lag_dir)
    ranks = distributed.from_environment()
    device = distributed.rank_device(config.device, ranks)
    # one thread unless told otherwise: a second intra-op thread made 60 steps 3-7x slower on a busy 2-core
    # machine (BENCHMARKS.md); a training outlives any measure of idle cores taken at its start
    set_threads(config.num_threads or 1)
    if not ranks.main:  # rank 0 reports progress for the run
        on_step, on_stage = None, None
    with distributed.process_group(ranks, device):
        return _train(table, spec, config, out, inputs, resume, ranks, device, on_step,
                      on_stage or (lambda _: None))


def _train(table: CountTable, spec: ModelSpec, config: TrainConfig, out: Path, inputs: TrainInputs, resume: bool,
           ranks: Ranks, device: str, on_step, stage) -> TrainResult:
    val_table = inputs.val_table
    if val_table is None:
        table, val_table = split_validation(table, config.val_fraction, config.seed)
    max_count = max(max(c.counts) for c in table.clips)
    if config.cmax is not None and max_count > config.cmax:
        raise EventcountError(f"cmax {config.cmax} is below the largest count in the labels ({max_count})")
    state = distributed.on_main(lambda: load_resume(out), ranks) if resume else None
    stage(f"reading {len(table.recordings())} training recordings")
    frontend, hours = distributed.on_main(lambda: _resolve_data(spec, table, val_table, config), ranks)
    frontend.detection_delay_frames = frontend.detection_delay()  # stored explicitly in the model file
    spec = ModelSpec(list(spec.classes), frontend, dataclasses.replace(spec.network),
                     dataclasses.replace(spec.decode))
    timed = config.loss != "counts"
    shard = distributed.shard_table(table, ranks)
    stage(f"computing features of {len(shard.recordings())} training recordings")
    augment = training_augmentation(config, working_rate(frontend), config.seed + ranks.rank)
    train_data = ClipData(shard, frontend, config.stretch_factors, timed, inputs.events_dir, inputs.class_map,
                          augment=augment)
    perturb_events(train_data, config, ranks.rank)
    val_data = None
    if ranks.main:
        stage(f"computing features of {len(val_table.recordings())} validation recordings")
        val_data = ClipData(val_table, frontend, [1.0], timed or inputs.val_events_dir is not None,
                            inputs.val_events_dir or inputs.events_dir, inputs.class_map)
    torch.manual_seed(config.seed)
    model = CRNN(train_data.n_features, len(spec.classes), spec.network)
    typical = int(np.median([b - a for a, b in (train_data.clip_frames(c, 1.0) for c in train_data.clips)]))
    model.set_output_bias(initial_bias(max(1, typical), config.p_zero))
    model.to(device)
    optimizer, scheduler = make_optimizer(model, config)
    scaler = grad_scaler(device)
    step, history = _restore(state, model, optimizer, scheduler, scaler) if state else (0, [])
    loop = TrainLoop(distributed.wrap(model, ranks, device), model, optimizer, scheduler, scaler, config, spec,
                     ranks, device, out)
    started = time.time()
    interrupted = loop.run(train_data, val_data, step, history, on_step)
    loop_s = time.time() - started
    if interrupted and not ranks.main:
        return TrainResult(spec, config, {"interrupted": True})
    run_info = {"data": _data_summary(table, val_table, hours), "processes": ranks.world,
                "steps_per_second": round((loop.reached - step) / max(loop_s, 1e-9), 3)}
    finish = lambda: _finish(model, spec, config, train_data.n_features, val_data, inputs, run_info,  # noqa: E731
                             history, started, interrupted, out, stage)
    if interrupted:  # no collective after Ctrl-C: another rank may be gone already
        return finish()
    return distributed.on_main(finish, ranks)


def _resolve_data(spec: ModelSpec, table: CountTable, val_table: CountTable,
                  config: TrainConfig) -> tuple[FrontendConfig, float]:
    """The front end resolved on the training recordings (`resolve_frontend`) and their total hours; refuses
    a clip whose count its frames cannot hold (as `prepare --check` reports it), before any features."""
    frontend = resolve_frontend(spec.frontend, table.recordings(), fit_prior=True)
    durations = {p: signal_duration(p, frontend.sensor) for p in table.recordings()}
    val_durations = {p: signal_duration(p, frontend.sensor) for p in val_table.recordings()}
    problems = capacity_problems(table, durations, frontend) + capacity_problems(val_table, val_durations, frontend)
    if not problems and min(config.stretch_factors) < 1:
        problems = capacity_problems(table, durations, frontend, min(config.stretch_factors))
    if problems:
        more = f" ({len(problems) - 1} more such counts)" if len(problems) > 1 else ""
        raise EventcountError(problems[0] + more)
    return frontend, sum(durations.values()) / 3600


def _data_summary(table: CountTable, val_table: CountTable, hours: float) -> dict[str, Any]:
    return {"labels": str(table.source or ""), "train_recordings": len(table.recordings()),
            "train_clips": len(table.clips), "validation_recordings": len(val_table.recordings()),
            "validation_clips": len(val_table.clips), "train_hours": round(hours, 4)}


def _restore(state: dict, model, optimizer, scheduler, scaler) -> tuple[int, list]:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return int(state["step"]), list(state["history"])


def _finish(model: CRNN, spec: ModelSpec, config: TrainConfig, n_features: int, val_data: ClipData,
            inputs: TrainInputs, run_info: dict[str, Any], history: list, started: float, interrupted: bool, out: Path,
            stage) -> TrainResult:
    """Rank 0: choose thresholds (and the lag) on the validation data and write the model file."""
    stage("choosing decoding thresholds on the validation data")
    model.eval()
    val_probs = recording_probabilities(model, val_data)
    by_f1 = config.loss != "counts" or inputs.val_events_dir is not None
    thresholds, threshold_scores = choose_thresholds(val_probs, spec, val_data, by_f1=by_f1)
    spec = dataclasses.replace(spec, decode=dataclasses.replace(spec.decode, thresholds=thresholds))
    summary = {"loss": config.loss, "config": dataclasses.asdict(config), **run_info, "history": history,
               "validation": history[-1] if history else {}, "thresholds": threshold_scores,
               "seconds": round(time.time() - started, 1), "interrupted": interrupted}
    save_model(out, model, spec, n_features, summary)  # kept even if the calibration below fails
    if not interrupted:
        resume_path(out).unlink(missing_ok=True)
    if inputs.calibrate_lag_dir is not None:
        lag_s = calibrate_lag(val_probs, spec, inputs.calibrate_lag_dir, inputs.class_map)
        spec = dataclasses.replace(spec, decode=dataclasses.replace(spec.decode, lag_s=lag_s))
        summary["calibrated_lag_s"] = lag_s
        save_model(out, model, spec, n_features, summary)
    return TrainResult(spec, config, summary)
