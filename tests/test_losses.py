"""SoftLoc and cross-entropy losses, the Gaussian kernel, the alpha schedule and frame masks.

The counting loss has its own tests (tests/test_counting.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eventcount.counting import counting_loss
from eventcount.dataset import edge_count_distribution
from eventcount.losses import (
    alpha_schedule,
    ce_loss,
    frame_mask,
    gaussian_kernel,
    softloc_loss,
    uncertain_counting_loss,
)


def sharp(targets: torch.Tensor, magnitude: float = 30.0) -> torch.Tensor:
    """Logits +magnitude at target frames, -magnitude elsewhere."""
    return (targets.double() * 2 - 1) * magnitude


def event_targets(batch: int = 2, frames: int = 60, classes: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    targets = torch.zeros(batch, frames, classes)
    for b in range(batch):
        for d in range(classes):
            targets[b, torch.randperm(frames - 10, generator=generator)[:4] + 5, d] = 1
    return targets.double()


# --- gaussian_kernel ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.3, 10.0])
def test_kernel_sums_to_one_is_symmetric_and_truncated_at_four_sigma(sigma: float) -> None:
    kernel = gaussian_kernel(sigma)
    radius = math.ceil(4 * sigma)
    assert kernel.numel() == 2 * radius + 1
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(kernel, kernel.flip(0))
    assert kernel.argmax().item() == radius


def test_kernel_has_the_requested_width() -> None:
    kernel = gaussian_kernel(5.0).double()
    offsets = torch.arange(kernel.numel(), dtype=torch.float64) - kernel.numel() // 2
    assert (kernel * offsets**2).sum().sqrt().item() == pytest.approx(5.0, rel=0.01)


def test_zero_softness_is_the_identity_kernel() -> None:
    assert torch.equal(gaussian_kernel(0.0), torch.ones(1))


# --- frame_mask -----------------------------------------------------------------------------------------------

def test_frame_mask() -> None:
    mask = frame_mask(torch.tensor([3, 0, 5]), 3, 5, torch.device("cpu"))
    assert mask.tolist() == [[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert torch.equal(frame_mask(None, 2, 4, torch.device("cpu")), torch.ones(2, 4))


# --- softloc_loss ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9])
def test_softloc_is_zero_for_a_perfect_sharp_prediction(alpha: float) -> None:
    targets = event_targets()
    loss = softloc_loss(sharp(targets), targets, softness_frames=3.0, alpha=alpha)
    assert 0 <= loss.item() < 1e-6


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_softloc_grows_with_the_timing_error(alpha: float) -> None:
    targets = event_targets(frames=80)
    losses = [softloc_loss(sharp(targets.roll(shift, dims=1)), targets, softness_frames=3.0, alpha=alpha).item()
              for shift in (0, 1, 3, 6)]
    assert losses == sorted(losses)
    assert losses[1] > 1e-3


def test_softloc_matches_a_numpy_reference() -> None:
    """L_SLL = sum_t ((G*y)_t - (G*p)_t)^2 with zero padding, averaged over sequences and classes."""
    targets = event_targets(batch=2, frames=40, classes=3)
    logits = torch.randn(2, 40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    loss = softloc_loss(logits, targets, softness_frames=2.0, alpha=0.0).item()
    kernel = gaussian_kernel(2.0).double().numpy()
    probs, y = torch.sigmoid(logits).numpy(), targets.numpy()
    expected = np.mean([
        np.sum((np.convolve(y[b, :, d], kernel, "same") - np.convolve(probs[b, :, d], kernel, "same")) ** 2)
        for b in range(2) for d in range(3)
    ])
    assert loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_softloc_gradient_is_exactly_zero_beyond_lengths(alpha: float) -> None:
    targets = event_targets(frames=50)
    targets[:, 40:] = 1  # labels beyond the length must not matter either
    lengths = torch.tensor([40, 27])
    logits = torch.randn(2, 50, 2, dtype=torch.float64, requires_grad=True)
    softloc_loss(logits, targets, lengths, softness_frames=4.0, alpha=alpha).backward()
    for b, length in enumerate(lengths.tolist()):
        assert torch.count_nonzero(logits.grad[b, length:]) == 0
        assert torch.count_nonzero(logits.grad[b, :length]) > 0


def test_softloc_ignores_everything_beyond_lengths() -> None:
    targets = event_targets(frames=50)
    lengths = torch.tensor([40, 27])
    logits = torch.randn(2, 50, 2, dtype=torch.float64)
    other_logits, other_targets = logits.clone(), targets.clone()
    other_logits[0, 40:], other_logits[1, 27:] = 30.0, -30.0
    other_targets[0, 40:], other_targets[1, 27:] = 1.0, 1.0
    a = softloc_loss(logits, targets, lengths, softness_frames=4.0, alpha=0.5)
    b = softloc_loss(other_logits, other_targets, lengths, softness_frames=4.0, alpha=0.5)
    assert a.item() == pytest.approx(b.item(), rel=1e-9)


# --- ce_loss --------------------------------------------------------------------------------------------------

def test_ce_loss_equals_mean_binary_cross_entropy() -> None:
    logits = torch.tensor([[[0.0], [2.0]]], dtype=torch.float64)
    targets = torch.tensor([[[1.0], [0.0]]], dtype=torch.float64)
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert ce_loss(logits, targets).item() == pytest.approx(expected)


def test_ce_loss_masks_frames_beyond_lengths() -> None:
    logits = torch.randn(2, 30, 3, dtype=torch.float64, requires_grad=True)
    targets = (torch.rand(2, 30, 3) > 0.8).double()
    lengths = torch.tensor([30, 12])
    loss = ce_loss(logits, targets, lengths)
    loss.backward()
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    manual = torch.cat([
        bce(logits[0], targets[0], reduction="none").flatten(),
        bce(logits[1, :12], targets[1, :12], reduction="none").flatten(),
    ]).mean()
    assert loss.item() == pytest.approx(manual.item())
    assert torch.count_nonzero(logits.grad[1, 12:]) == 0
    assert torch.count_nonzero(logits.grad[1, :12]) > 0


def test_ce_loss_with_all_zero_lengths_is_zero_not_nan() -> None:
    loss = ce_loss(torch.randn(2, 5, 1), torch.zeros(2, 5, 1), torch.tensor([0, 0]))
    assert loss.item() == 0.0


# --- alpha_schedule -------------------------------------------------------------------------------------------

def test_alpha_schedule_endpoints_and_middle() -> None:
    assert alpha_schedule(0, 100, 0.2, 0.9) == pytest.approx(0.2)
    assert alpha_schedule(50, 100, 0.2, 0.9) == pytest.approx(0.55)
    assert alpha_schedule(100, 100, 0.2, 0.9) == pytest.approx(0.9)
    assert alpha_schedule(10_000, 100, 0.2, 0.9) == pytest.approx(0.9)
    assert alpha_schedule(-5, 100, 0.2, 0.9) == pytest.approx(0.2)
    assert alpha_schedule(3, 0, 0.2, 0.9) == pytest.approx(0.9)
    assert alpha_schedule(5, 10, start=0.0, end=1.0) == pytest.approx(0.5)


def test_edge_count_distribution_is_certain_away_from_the_edges() -> None:
    low, weights = edge_count_distribution(np.array([0.3, 0.5, 0.7, 1.8]), 0.0, 1.0, 0.02)
    assert low == 3 and weights[0] == pytest.approx(1.0)
    assert edge_count_distribution(np.array([0.99, 1.01]), 0.0, 1.0, 0.0)[0] == 1  # no softness: exact count


def test_edge_count_distribution_splits_timestamps_on_an_edge() -> None:
    # one timestamp on each edge, one well inside: 1, 2 or 3 events with odds 1:2:1
    low, weights = edge_count_distribution(np.array([0.0, 0.5, 1.0]), 0.0, 1.0, 0.05)
    assert weights.sum() == pytest.approx(1.0)
    assert low == 1 and weights[:3] == pytest.approx([0.25, 0.5, 0.25])


def test_uncertain_counting_loss_mixes_count_likelihoods() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 30, 2)
    lengths = torch.tensor([30, 20])
    low = torch.tensor([[1, 2], [0, 3]])
    certain = torch.full((2, 2, 4), -math.inf)
    certain[..., 0] = 0.0
    assert uncertain_counting_loss(logits, low, certain, lengths).item() == pytest.approx(
        counting_loss(logits, low, lengths).item(), rel=1e-6)
    halves = certain.clone()
    halves[..., :2] = math.log(0.5)
    likelihood = 0.5 * torch.exp(-counting_loss(logits, low, lengths, reduction="none")) + 0.5 * torch.exp(
        -counting_loss(logits, low + 1, lengths, reduction="none"))
    assert uncertain_counting_loss(logits, low, halves, lengths).item() == pytest.approx(
        -likelihood.log().mean().item(), rel=1e-5)


def test_uncertain_count_gradient_is_exactly_zero_beyond_lengths() -> None:
    targets = event_targets(frames=50)
    lengths = torch.tensor([40, 27])
    logits = torch.randn(2, 50, 2, dtype=torch.float64, requires_grad=True)
    low = torch.tensor([[1, 0], [2, 1]])
    log_weights = torch.log(torch.tensor([[[0.3, 0.7, 0.0], [0.5, 0.25, 0.25]]] * 2))
    softloc_loss(logits, targets, lengths, softness_frames=4.0, alpha=0.9, count_prior=(low, log_weights)).backward()
    for b, length in enumerate(lengths.tolist()):
        assert torch.count_nonzero(logits.grad[b, length:]) == 0
        assert torch.count_nonzero(logits.grad[b, :length]) > 0


def test_uncertain_counts_above_cmax_score_the_overflow_bin() -> None:
    torch.manual_seed(1)
    logits = torch.randn(1, 20, 1) - 3.0  # few expected events: Pr(C >= 2) well below 1
    weights = torch.log(torch.tensor([[[0.5, 0.5]]]))
    loss = uncertain_counting_loss(logits, torch.tensor([[2]]), weights, cmax=2)
    expected = counting_loss(logits, torch.tensor([[2]]), cmax=2).item()  # both counts are "2 or more"
    assert loss.item() == pytest.approx(expected, abs=1e-6)
