"""The optimisation steps of one training process: batches, the loss, mixed precision, validation, saving."""

from __future__ import annotations

import contextlib
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from eventcount import distributed, losses
from eventcount.config import ModelSpec, TrainConfig
from eventcount.counting import counting_loss
from eventcount.dataset import Batch, ClipData
from eventcount.distributed import Ranks
from eventcount.network import CRNN
from eventcount.train_state import save_resume


@dataclass
class StepReport:
    """What the progress display shows after a step."""

    step: int
    total: int
    loss: float
    validation: dict[str, float] = field(default_factory=dict)


def compute_loss(config: TrainConfig, logits: torch.Tensor, batch: Batch, step: int, frame_rate: float) -> torch.Tensor:
    """The configured loss on the labelled part of a batch's logits."""
    labelled = logits[:, batch.context:]
    lengths = batch.lengths.to(logits.device)
    if config.loss == "counts":
        return counting_loss(labelled, batch.counts.to(logits.device), lengths, cmax=config.cmax)
    targets = batch.targets.to(logits.device)
    if config.loss == "ce":
        return losses.ce_loss(labelled, targets, lengths)
    alpha = losses.alpha_schedule(step, ramp_steps(config), config.alpha_start, config.alpha_end)
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
            total_loss += float(counting_loss(labelled, batch.counts.to(device), batch.lengths.to(device),
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


def ramp_steps(config: TrainConfig) -> int:
    """Steps over which SoftLoc's counting weight ramps from alpha_start to alpha_end (default: 80 % of all)."""
    return config.alpha_ramp_steps if config.alpha_ramp_steps is not None else int(0.8 * config.steps)


def grad_scaler(device: str):
    """A gradient scaler for float16 autocast (CUDA without bfloat16), else None."""
    if _amp_dtype(device) != torch.float16:
        return None
    return torch.amp.GradScaler("cuda")


def _amp_dtype(device: str) -> torch.dtype | None:
    """Mixed precision for the network on CUDA: bfloat16 where the GPU has it, else float16; none on CPU."""
    if not device.startswith("cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class TrainLoop:
    """The optimisation steps of one rank: sample its share of a batch, forward (mixed precision on CUDA),
    the loss in full precision, backward (gradients averaged over ranks by DDP), validate and save on rank 0."""

    def __init__(self, model, raw_model: CRNN, optimizer, scheduler, scaler, config: TrainConfig,
                 spec: ModelSpec, ranks: Ranks, device: str, out: Path) -> None:
        self.model, self.raw_model = model, raw_model
        self.optimizer, self.scheduler, self.scaler = optimizer, scheduler, scaler
        self.config, self.spec, self.ranks, self.device, self.out = config, spec, ranks, device, out
        self.context = int(round(config.context_s * spec.frontend.frame_rate))
        self.local_batch = distributed.local_batch_size(config.batch_size, ranks)
        self.amp_dtype = _amp_dtype(device)

    def run(self, train_data: ClipData, val_data: ClipData | None, step: int, history: list, on_step) -> bool:
        """Steps from `step` to `config.steps`; True if Ctrl-C stopped them (the resume state is then saved)."""
        config = self.config
        self.reached = step
        self.model.train()
        try:
            with distributed.terminate_as_interrupt(self.ranks):
                while step < config.steps:
                    loss = self.step(train_data, step)
                    step = self.reached = step + 1
                    report = StepReport(step, config.steps, loss)
                    if self.ranks.main and (step % config.validate_every == 0 or step == config.steps):
                        report.validation = validate(self.raw_model, val_data, config, self.context, self.device)
                        history.append({"step": step, "train_loss": loss, **report.validation})
                        self.save(step, history)
                    if on_step:
                        on_step(report)
        except KeyboardInterrupt:
            if self.ranks.main:
                self.save(step, history)
            return True
        return False

    def step(self, data: ClipData, step: int) -> float:
        """One optimisation step; its random choices depend only on (seed, rank, step), so a resumed run
        takes the same steps as an uninterrupted one."""
        config = self.config
        rng = random.Random(f"{config.seed}:{self.ranks.rank}:{step}")
        torch.manual_seed((config.seed * 1_000_003 + step) * 4096 + self.ranks.rank)
        indices = [rng.randrange(len(data.clips)) for _ in range(self.local_batch)]
        factors = [rng.choice(config.stretch_factors) for _ in indices]
        edge_softness = config.softness_s if config.loss == "softloc" and config.edge_count_prior else None
        batch = data.batch(indices, factors, self.context, config.loss != "counts", edge_softness)
        mixed = torch.autocast("cuda", dtype=self.amp_dtype) if self.amp_dtype else contextlib.nullcontext()
        with mixed:  # the network only: the loss below runs in full precision
            logits, _ = self.model(batch.features.to(self.device))
        loss = compute_loss(config, logits.float(), batch, step, self.spec.frontend.frame_rate)
        scaled = loss * (self.local_batch * self.ranks.world / config.batch_size)  # DDP averages over ranks
        self.optimizer.zero_grad()
        if self.scaler is not None:
            self.scaler.scale(scaled).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            scaled.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        return loss.item()

    def save(self, step: int, history: list) -> None:
        save_resume(self.out, self.raw_model, self.optimizer, self.scheduler, self.scaler, step, history)
