"""Training losses: counting (weak labels), SoftLoc (rough timestamps) and stepwise cross-entropy (exact ones).

All take logits [B, T, D] and optional `lengths` [B]: frames at or beyond a sequence's length are ignored.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from eventcount.counting import count_distribution, counting_loss, initial_bias

__all__ = [
    "alpha_schedule", "ce_loss", "count_distribution", "counting_loss", "gaussian_kernel", "initial_bias",
    "softloc_loss",
]


def frame_mask(lengths: torch.Tensor | None, batch: int, frames: int, device: torch.device) -> torch.Tensor:
    """[B, T] float mask: 1 inside each sequence's length, 0 beyond."""
    if lengths is None:
        return torch.ones(batch, frames, device=device)
    return (torch.arange(frames, device=device)[None, :] < lengths.to(device)[:, None]).float()


def gaussian_kernel(softness_frames: float) -> torch.Tensor:
    """Normalised Gaussian kernel [2r + 1] with standard deviation `softness_frames`, truncated at r = 4 sigma."""
    if softness_frames <= 0:
        return torch.ones(1)
    radius = max(1, math.ceil(4 * softness_frames))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / softness_frames) ** 2)
    return (kernel / kernel.sum()).float()


def smooth(values: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve [B, T, D] along time with a symmetric kernel (zero beyond the ends)."""
    b, t, d = values.shape
    flat = values.permute(0, 2, 1).reshape(b * d, 1, t)
    radius = kernel.numel() // 2
    out = F.conv1d(flat, kernel.to(values)[None, None], padding=radius)
    return out.reshape(b, d, t).permute(0, 2, 1)


def softloc_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    lengths: torch.Tensor | None = None,
    softness_frames: float = 10.0,
    alpha: float = 0.5,
    cmax: int | None = None,
) -> torch.Tensor:
    """SoftLoc: (1 - alpha) * L_SLL + alpha * counting loss, averaged over sequences and classes.

    L_SLL = sum_t ((G * y)_t - (G * p)_t)^2 with G a Gaussian of std `softness_frames`; targets y are 0/1
    event frames [B, T, D] (possibly misaligned), p = sigmoid(logits). The counting term uses y's counts.
    """
    mask = frame_mask(lengths, logits.shape[0], logits.shape[1], logits.device)[..., None]
    kernel = gaussian_kernel(softness_frames)
    probs = torch.sigmoid(logits) * mask
    diff = (smooth(targets.float() * mask, kernel) - smooth(probs, kernel)) * mask
    sll = diff.square().sum(dim=1).mean()
    counts = (targets * mask).sum(dim=1).round().long()
    if alpha == 0:
        return (1 - alpha) * sll
    return (1 - alpha) * sll + alpha * counting_loss(logits, counts, lengths, cmax=cmax)


def ce_loss(logits: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Stepwise binary cross-entropy against 0/1 event frames, averaged over valid frames and classes."""
    mask = frame_mask(lengths, logits.shape[0], logits.shape[1], logits.device)[..., None].expand_as(logits)
    losses = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none")
    return (losses * mask).sum() / mask.sum().clamp_min(1)


def alpha_schedule(step: int, ramp_steps: int, start: float = 0.2, end: float = 0.9) -> float:
    """SoftLoc's weight of the counting term: linear from `start` to `end` over `ramp_steps`, then `end`."""
    if ramp_steps <= 0:
        return end
    return start + (end - start) * min(1.0, max(0, step) / ramp_steps)
