"""Training: count labels (and optionally rough timestamps) -> a model file with tuned decoding thresholds."""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eventcount import losses
from eventcount.atomic import atomic_write
from eventcount.augment import band_limiter
from eventcount.checkpoint import save_model
from eventcount.config import ModelSpec, TrainConfig
from eventcount.dataset import Batch, ClipData
from eventcount.errors import EventcountError
from eventcount.features import working_rate
from eventcount.labels import CountTable
from eventcount.network import CRNN
from eventcount.thresholds import calibrate_lag, choose_thresholds, recording_probabilities

LOSSES = ("counts", "softloc", "ce")


@dataclass
class StepReport:
    """What the progress display shows after a step."""

    step: int
    total: int
    loss: float
    validation: dict[str, float] = field(default_factory=dict)


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


def perturb_events(data: ClipData, config: TrainConfig) -> None:
    """Label-noise simulation: move every *training* timestamp once, seeded (never applied to validation)."""
    if config.label_noise_s <= 0:
        return
    rng = np.random.default_rng(config.seed + 7919)
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


def compute_loss(config: TrainConfig, logits: torch.Tensor, batch: Batch, step: int, frame_rate: float) -> torch.Tensor:
    """The configured loss on the labelled part of a batch's logits."""
    labelled = logits[:, batch.context:]
    lengths = batch.lengths.to(logits.device)
    if config.loss == "counts":
        return losses.counting_loss(labelled, batch.counts.to(logits.device), lengths, cmax=config.cmax)
    targets = batch.targets.to(logits.device)
    if config.loss == "ce":
        return losses.ce_loss(labelled, targets, lengths)
    ramp = config.alpha_ramp_steps if config.alpha_ramp_steps is not None else int(0.8 * config.steps)
    alpha = losses.alpha_schedule(step, ramp, config.alpha_start, config.alpha_end)
    return losses.softloc_loss(labelled, targets, lengths, config.softness_s * frame_rate, alpha, cmax=config.cmax,
                               count_prior=batch.count_prior)


def validate(model: CRNN, data: ClipData, config: TrainConfig, context: int, device: str) -> dict[str, float]:
    """Counting loss, count accuracy (rounded expected count == label) and mean absolute count error."""
    model.eval()
    total_loss, hits, abs_err, n = 0.0, 0, 0.0, 0
    with torch.no_grad():
        for start in range(0, len(data.clips), config.batch_size):
            indices = list(range(start, min(start + config.batch_size, len(data.clips))))
            batch = data.batch(indices, [1.0] * len(indices), context, with_targets=False)
            logits, _ = model(batch.features.to(device))
            labelled = logits[:, batch.context:]
            total_loss += float(losses.counting_loss(labelled, batch.counts.to(device), batch.lengths.to(device),
                                                     reduction="sum"))
            mask = losses.frame_mask(batch.lengths, labelled.shape[0], labelled.shape[1], labelled.device)
            expected = (torch.sigmoid(labelled) * mask[..., None]).sum(1).cpu()
            hits += int((expected.round() == batch.counts).sum())
            abs_err += float((expected - batch.counts).abs().sum())
            n += batch.counts.numel()
    model.train()
    return {"loss": total_loss / n, "count_accuracy": hits / n, "count_mae": abs_err / n}


def make_optimizer(model: CRNN, config: TrainConfig):
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = min(100, config.steps // 10 + 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, config.steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def resume_path(out: Path) -> Path:
    return out.with_name(out.name + ".resume")


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
) -> dict[str, Any]:
    """Train a model on `table` and write it to `out`; returns the training summary stored in the file.

    Ctrl-C stops training early and still writes a usable model; `resume` continues from `<out>.resume`.
    """
    out = Path(out)
    stage = on_stage or (lambda _: None)
    if config.loss not in LOSSES:
        raise EventcountError(f"unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}")
    torch.manual_seed(config.seed)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    if val_table is None:
        table, val_table = split_validation(table, config.val_fraction, config.seed)
    timed = config.loss != "counts"
    stage(f"computing features of {len(table.recordings())} training recordings")
    augment = band_limiter(config.band_limit, config.band_limit_rates_hz, working_rate(spec.frontend), config.seed)
    train_data = ClipData(table, spec.frontend, config.stretch_factors, timed, events_dir, class_map, fit_prior=True,
                          augment=augment)
    perturb_events(train_data, config)
    stage(f"computing features of {len(val_table.recordings())} validation recordings")
    timed_validation = timed or val_events_dir is not None
    val_data = ClipData(val_table, spec.frontend, [1.0], timed_validation, val_events_dir or events_dir, class_map)
    max_count = max(max(c.counts) for c in table.clips)
    if config.cmax is not None and max_count > config.cmax:
        raise EventcountError(f"cmax {config.cmax} is below the largest count in the labels ({max_count})")
    model = CRNN(train_data.n_features, len(spec.classes), spec.network).to(config.device)
    context = int(round(config.context_s * spec.frontend.frame_rate))
    clip_frames = [train_data.clip_frames(c, 1.0) for c in train_data.clips]
    typical = int(np.median([b - a for a, b in clip_frames]))
    model.set_output_bias(losses.initial_bias(max(1, typical), config.p_zero))
    optimizer, scheduler = make_optimizer(model, config)
    step, history = 0, []
    if resume:
        step, history = _load_resume(out, model, optimizer, scheduler)
    started = time.time()
    interrupted = _train_loop(model, optimizer, scheduler, train_data, val_data, config, spec, context, step,
                              history, out, on_step)
    stage("choosing decoding thresholds on the validation data")
    model.eval()
    val_probs = recording_probabilities(model, val_data)
    summary = _finish(val_probs, spec, config, train_data, val_data, history, started, interrupted,
                      timed_validation)
    save_model(out, model, spec, train_data.n_features, summary)  # kept even if the calibration below fails
    if not interrupted:
        resume_path(out).unlink(missing_ok=True)
    if calibrate_lag_dir is not None:
        spec.decode.lag_s = calibrate_lag(val_probs, spec, calibrate_lag_dir, class_map)
        summary["calibrated_lag_s"] = spec.decode.lag_s
        save_model(out, model, spec, train_data.n_features, summary)
    return summary


def _train_loop(model, optimizer, scheduler, train_data, val_data, config, spec, context, step, history, out,
                on_step) -> bool:
    rng = random.Random(config.seed + step)
    model.train()
    needs_targets = config.loss != "counts"
    edge_softness = config.softness_s if config.loss == "softloc" and config.edge_count_prior else None
    try:
        while step < config.steps:
            indices = [rng.randrange(len(train_data.clips)) for _ in range(config.batch_size)]
            factors = [rng.choice(config.stretch_factors) for _ in indices]
            batch = train_data.batch(indices, factors, context, needs_targets, edge_softness)
            logits, _ = model(batch.features.to(config.device))
            loss = compute_loss(config, logits, batch, step, spec.frontend.frame_rate)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            report = StepReport(step, config.steps, loss.item())
            if step % config.validate_every == 0 or step == config.steps:
                report.validation = validate(model, val_data, config, context, config.device)
                history.append({"step": step, "train_loss": loss.item(), **report.validation})
                _save_resume(out, model, optimizer, scheduler, step, history)
            if on_step:
                on_step(report)
    except KeyboardInterrupt:
        _save_resume(out, model, optimizer, scheduler, step, history)
        return True
    return False


def _finish(val_probs, spec, config, train_data, val_data, history, started, interrupted, timed_validation) -> dict:
    thresholds, threshold_scores = choose_thresholds(val_probs, spec, val_data, by_f1=timed_validation)
    spec.decode.thresholds = thresholds
    return {
        "loss": config.loss,
        "config": dataclasses.asdict(config),
        "data": {
            "labels": str(train_data.table.source or ""),
            "train_recordings": len(train_data.recordings),
            "train_clips": len(train_data.clips),
            "validation_recordings": len(val_data.recordings),
            "validation_clips": len(val_data.clips),
            "train_hours": round(sum(r.duration_s for r in train_data.recordings.values()) / 3600, 4),
        },
        "history": history,
        "validation": history[-1] if history else {},
        "thresholds": threshold_scores,
        "seconds": round(time.time() - started, 1),
        "interrupted": interrupted,
    }


def _save_resume(out: Path, model, optimizer, scheduler, step: int, history: list) -> None:
    state = {"step": step, "history": history, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict()}
    with atomic_write(resume_path(out), "wb") as handle:
        torch.save(state, handle)


def _load_resume(out: Path, model, optimizer, scheduler) -> tuple[int, list]:
    path = resume_path(out)
    if not path.exists():
        raise EventcountError(f"{path}: no interrupted training to resume (run without --resume)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["step"]), list(state["history"])
