"""Training losses: counting (weak labels), SoftLoc (rough timestamps) and stepwise cross-entropy (exact ones).

All take logits [B, T, D] and optional `lengths` [B]: frames at or beyond a sequence's length are ignored.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from eventcount.counting import counting_loss


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


def uncertain_counting_loss(
    logits: torch.Tensor,
    low: torch.Tensor,
    log_weights: torch.Tensor,
    lengths: torch.Tensor | None = None,
    cmax: int | None = None,
) -> torch.Tensor:
    """-log sum_k w_k Pr(C = low + k), averaged: the counting loss when the label count itself is uncertain.

    low [B, D] integers; log_weights [B, D, K] log-probabilities of the counts low .. low + K - 1 (-inf for
    impossible ones). With one certain count it equals `counting_loss`; with `cmax`, counts above it score
    Pr(C >= cmax).
    """
    frames = lengths.to(low.device) if lengths is not None else torch.full_like(low[:, 0], logits.shape[1])
    frames = frames[:, None].expand_as(low)
    terms = []
    for k in range(log_weights.shape[-1]):
        counts = low + k
        weight = log_weights[..., k].masked_fill(counts > frames, -math.inf)  # more events than frames: impossible
        if k and torch.isneginf(weight).all():
            continue  # no clip has this count: its term is exp(-inf) = 0, skip the counting pass
        counts = torch.minimum(counts, frames)
        if cmax is not None:
            counts = counts.clamp(max=cmax)  # "cmax or more"
        terms.append(weight - counting_loss(logits, counts, lengths, cmax=cmax, reduction="none"))
    return -torch.logsumexp(torch.stack(terms, dim=-1), dim=-1).mean()


def softloc_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    lengths: torch.Tensor | None = None,
    softness_frames: float = 10.0,
    alpha: float = 0.5,
    cmax: int | None = None,
    count_prior: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """SoftLoc: (1 - alpha) * L_SLL + alpha * counting loss, averaged over sequences and classes.

    L_SLL = sum_t ((G * y)_t - (G * p)_t)^2 with G a Gaussian of std `softness_frames`; targets y are 0/1
    event frames [B, T, D] (possibly misaligned), p = sigmoid(logits). The counting term uses y's counts, or,
    given `count_prior` (low, log_weights) as for `uncertain_counting_loss`, a distribution over counts.
    """
    mask = frame_mask(lengths, logits.shape[0], logits.shape[1], logits.device)[..., None]
    kernel = gaussian_kernel(softness_frames)
    probs = torch.sigmoid(logits) * mask
    diff = (smooth(targets.float() * mask, kernel) - smooth(probs, kernel)) * mask
    sll = diff.square().sum(dim=1).mean()
    if alpha == 0:
        return (1 - alpha) * sll
    if count_prior is not None:
        low, log_weights = (t.to(logits.device) for t in count_prior)
        return (1 - alpha) * sll + alpha * uncertain_counting_loss(logits, low, log_weights, lengths, cmax)
    counts = (targets * mask).sum(dim=1).round().long()
    return (1 - alpha) * sll + alpha * counting_loss(logits, counts, lengths, cmax=cmax)


def ce_loss(logits: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Stepwise binary cross-entropy against 0/1 event frames, averaged over valid frames and classes."""
    mask = frame_mask(lengths, logits.shape[0], logits.shape[1], logits.device)[..., None].expand_as(logits)
    losses = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none")
    return (losses * mask).sum() / mask.sum().clamp_min(1)


def alpha_schedule(step: int, ramp_steps: int, start: float, end: float) -> float:
    """SoftLoc's weight of the counting term: linear from `start` to `end` over `ramp_steps`, then `end`."""
    if ramp_steps <= 0:
        return end
    return start + (end - start) * min(1.0, max(0, step) / ramp_steps)
