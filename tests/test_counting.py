"""Tests for eventcount.counting: exactness against enumeration, stability, truncation, both backends."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from eventcount import counting, counting_kernels
from eventcount.counting import count_distribution, counting_loss, initial_bias

BACKENDS = ["numba", "tree"]


def _random_case(
    batch: int, frames: int, classes: int, seed: int, scale: float = 3.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 logits [B, T, D] and lengths [B] (the first sequence uses all frames)."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, frames, classes, generator=gen, dtype=torch.float64) * scale
    lengths = torch.randint(1, frames + 1, (batch,), generator=gen)
    lengths[0] = frames
    return logits, lengths


def _enumerated_nll(logits: torch.Tensor, count: int, cmax: int | None) -> torch.Tensor:
    """-log Pr(C = count) (Pr(C >= cmax) when count == cmax) by summing all 2^T outcomes; logits [T]."""
    frames = logits.shape[0]
    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=frames)), dtype=logits.dtype)
    log_prob = bits @ torch.nn.functional.logsigmoid(logits) + (1 - bits) @ torch.nn.functional.logsigmoid(-logits)
    totals = bits.sum(dim=1)
    hit = totals >= count if cmax is not None and count == cmax else totals == count
    return -torch.logsumexp(log_prob[hit], dim=0)


def _log_space_reference(logits: np.ndarray, lengths: np.ndarray, cmax: int) -> np.ndarray:
    """float64 log Pr per bin [B, D, cmax + 1] (last bin = tail) by the frame-by-frame recursion in log space."""
    batch, frames, classes = logits.shape
    log_p = -np.logaddexp(0.0, -logits)
    log_q = -np.logaddexp(0.0, logits)
    dist = np.full((batch, classes, cmax + 1), -np.inf)
    dist[..., 0] = 0.0
    for t in range(frames):
        valid = (t < lengths)[:, None, None]
        moved = np.full_like(dist, -np.inf)
        moved[..., 1:] = dist[..., :-1] + log_p[:, t, :, None]
        new = np.logaddexp(dist + log_q[:, t, :, None], moved)
        new[..., -1] = np.logaddexp(dist[..., -1], moved[..., -1])  # the tail bin absorbs
        dist = np.where(valid, new, dist)
    return dist


def _loss_and_grad(
    logits: torch.Tensor, counts: torch.Tensor, backend: str, **kwargs: object
) -> tuple[torch.Tensor, torch.Tensor]:
    x = logits.detach().clone().requires_grad_(True)
    loss = counting_loss(x, counts, backend=backend, reduction="none", **kwargs)
    loss.sum().backward()
    return loss.detach(), x.grad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cmax", [None, 4, 10])
def test_matches_enumeration_of_all_outcomes(backend: str, cmax: int | None) -> None:
    logits, lengths = _random_case(2, 10, 2, seed=1)
    for count in range(0, 11):
        if cmax is not None and count > cmax:
            continue
        counts = torch.tensor([[count, min(count, 3)], [min(count, 2), 0]])
        loss, grad = _loss_and_grad(logits, counts, backend, lengths=lengths, cmax=cmax)
        for b, d in itertools.product(range(2), range(2)):
            x = logits[b, : lengths[b], d].clone().requires_grad_(True)
            expected = _enumerated_nll(x, int(counts[b, d]), cmax)
            expected.backward()
            assert loss[b, d].item() == pytest.approx(expected.item(), rel=1e-10, abs=1e-10)
            torch.testing.assert_close(grad[b, : lengths[b], d], x.grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_long_sequences_in_float32_match_float64_reference(backend: str) -> None:
    logits, lengths = _random_case(2, 2000, 3, seed=2, scale=2.0)
    logits -= 6.0  # about 20-60 events per sequence
    cmax = 40
    reference = _log_space_reference(logits.numpy(), lengths.numpy(), cmax)
    gen = torch.Generator().manual_seed(3)
    counts = torch.randint(0, cmax + 1, (2, 3), generator=gen)
    counts[0, 0], counts[1, 0] = cmax, 0
    loss = counting_loss(logits.float(), counts, lengths=lengths, cmax=cmax, reduction="none", backend=backend)
    expected = -np.take_along_axis(reference, counts.numpy()[..., None], axis=-1)[..., 0]
    assert np.all(expected > 1.0)
    np.testing.assert_allclose(loss.double().numpy(), expected, rtol=1e-5)


def test_float32_gradients_match_float64() -> None:
    logits, lengths = _random_case(2, 2000, 2, seed=4)
    counts = torch.tensor([[3, 40], [0, 17]])
    _, grad64 = _loss_and_grad(logits, counts, "tree", lengths=lengths)
    _, grad32 = _loss_and_grad(logits.float(), counts, "numba", lengths=lengths)
    torch.testing.assert_close(grad32.double(), grad64, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cmax", [None, 3])
def test_gradcheck(backend: str, cmax: int | None) -> None:
    logits, _ = _random_case(2, 7, 2, seed=5, scale=2.0)
    lengths = torch.tensor([7, 5])
    counts = torch.tensor([[3, 0], [1, 2]])
    x = logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: counting_loss(z, counts, lengths=lengths, cmax=cmax, reduction="none", backend=backend), (x,)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_beyond_length_are_ignored(backend: str) -> None:
    logits, _ = _random_case(2, 30, 2, seed=6)
    lengths = torch.tensor([30, 12])
    counts = torch.tensor([[5, 2], [3, 0]])
    loss, grad = _loss_and_grad(logits, counts, backend, lengths=lengths)
    changed = logits.clone()
    changed[1, 12:] = 50.0
    loss_changed, _ = _loss_and_grad(changed, counts, backend, lengths=lengths)
    short, _ = _loss_and_grad(logits[1:, :12], counts[1:], backend)
    torch.testing.assert_close(loss, loss_changed)
    torch.testing.assert_close(loss[1:], short)
    assert torch.all(grad[1, 12:] == 0)
    assert torch.all(grad[1, :12] != 0)


def _closed_form(logits: torch.Tensor, all_fire: bool) -> torch.Tensor:
    """-log Pr(no frame fires) or -log Pr(every frame fires), per [B, D], in float64."""
    sign = -1.0 if all_fire else 1.0
    return torch.nn.functional.softplus(sign * logits.double()).sum(dim=1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("value", "frames", "all_fire"),
    [(0.0, 10_000, False), (16.0, 200, False), (30.0, 200, False), (-16.0, 200, True), (-30.0, 200, True)],
)
def test_extreme_counts_are_finite_and_exact(backend: str, value: float, frames: int, all_fire: bool) -> None:
    logits = torch.full((1, frames, 1), value, dtype=torch.float32)
    counts = torch.tensor([[frames if all_fire else 0]])
    loss, grad = _loss_and_grad(logits, counts, backend)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    expected = _closed_form(logits, all_fire)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-6, atol=0.0)
    expected_grad = -torch.sigmoid(-logits) if all_fire else torch.sigmoid(logits)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", [-30.0, -16.0, 16.0, 30.0])
def test_confident_logits_with_any_label_are_finite(backend: str, value: float) -> None:
    logits = torch.full((1, 300, 1), value)
    logits[0, ::7] = -value  # a few frames disagree
    for count, cmax in [(0, None), (1, None), (43, None), (150, None), (300, None), (12, 12), (200, 200)]:
        loss, grad = _loss_and_grad(logits, torch.tensor([[count]]), backend, cmax=cmax)
        assert torch.isfinite(loss).all() and torch.isfinite(grad).all(), (count, cmax)
        reference = _log_space_reference(logits.double().numpy(), np.array([300]), cmax or 300)
        assert loss.item() == pytest.approx(-reference[0, 0, count], rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_huge_logits_stay_exact(backend: str) -> None:
    """|logit| up to 2000: exp(theta) would overflow, and ten sure events at the end leave the suffix pass
    with a total of exactly 0 (every remaining path is below double range), which must not become 0/0."""
    logits = torch.cat([torch.full((10,), 500.0), torch.full((10,), 2000.0)]).double().view(1, 20, 1)
    reference = _log_space_reference(logits.numpy(), np.array([20]), 20)[0, 0]
    for count in (0, 3, 10, 15, 19):
        loss, grad = _loss_and_grad(logits, torch.tensor([[count]]), backend)
        assert loss.item() == pytest.approx(-reference[count], rel=1e-12)
        expected_grad = 1.0 if count < 10 else 1.0 - (count - 10) / 10
        assert grad[0, 0, 0].item() == pytest.approx(expected_grad, rel=1e-9)
        assert torch.all(torch.isfinite(grad))


def test_untilted_passes_rescale_instead_of_underflowing() -> None:
    """The kernel's prefix and suffix passes alone (no tilt): 3000 fair coins, exactly one head."""
    n = 3000
    half = np.full(n, 0.5)
    hist, logscale, grad = np.empty((n + 1, 2)), np.empty(n + 1), np.empty(n)
    counting_kernels._forward(half, half, 0.0, hist, logscale)
    log_prob = math.log(hist[n, 1]) + logscale[n]
    assert log_prob == pytest.approx(math.log(n) + n * math.log(0.5), rel=1e-12)
    counting_kernels._backward(half, half, half, half, hist, logscale, False, grad)
    np.testing.assert_allclose(grad, 0.5 - 1.0 / n, rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unlikely_overflow_label_pushes_logits_up(backend: str) -> None:
    logits = torch.full((1, 100, 1), -30.0)
    loss, grad = _loss_and_grad(logits, torch.tensor([[5]]), backend, cmax=5)
    expected = 5 * 30.0 - math.log(math.comb(100, 5))  # Pr(C >= 5) ~ C(100, 5) e^-150
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert torch.all(grad < 0)
    torch.testing.assert_close(grad.sum(), torch.tensor(-5.0), rtol=1e-4, atol=0.0)


def test_truncation_puts_the_tail_in_the_last_bin() -> None:
    logits, _ = _random_case(3, 40, 2, seed=7, scale=1.5)
    lengths = torch.tensor([40, 9, 23])
    full = count_distribution(logits, lengths)
    cut = count_distribution(logits, lengths, cmax=6)
    assert full.shape == (3, 2, 41) and cut.shape == (3, 2, 7)
    torch.testing.assert_close(cut[..., :6], full[..., :6])
    torch.testing.assert_close(cut[..., 6], full[..., 6:].sum(-1))
    torch.testing.assert_close(cut.sum(-1), torch.ones(3, 2, dtype=torch.float64))
    counts = torch.full((3, 2), 6)
    for backend in BACKENDS:
        loss = counting_loss(logits, counts, lengths=lengths, cmax=6, reduction="none", backend=backend)
        torch.testing.assert_close(torch.exp(-loss), cut[..., 6])


def test_count_distribution_matches_enumeration() -> None:
    logits, _ = _random_case(1, 8, 1, seed=8)
    dist = count_distribution(logits.float(), cmax=5)[0, 0]
    for count in range(6):
        expected = torch.exp(-_enumerated_nll(logits[0, :, 0], count, 5))
        assert dist[count].item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cmax_zero_means_certain(backend: str) -> None:
    logits, lengths = _random_case(2, 9, 3, seed=14)
    loss, grad = _loss_and_grad(logits, torch.zeros(2, 3, dtype=torch.int64), backend, lengths=lengths, cmax=0)
    torch.testing.assert_close(loss, torch.zeros_like(loss), atol=1e-12, rtol=0.0)
    torch.testing.assert_close(grad, torch.zeros_like(grad), atol=1e-12, rtol=0.0)


def test_count_above_cmax_raises_value_error() -> None:
    counts = torch.tensor([[1, 2], [3, 9]])
    with pytest.raises(ValueError, match=r"counts\[1, 1\] = 9 exceeds cmax = 5"):
        counting_loss(torch.zeros(2, 20, 2), counts, cmax=5)


def test_impossible_and_negative_counts_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"counts\[1, 0\] = 11 exceeds the number of valid frames"):
        counting_loss(torch.zeros(2, 20, 1), torch.tensor([[3], [11]]), lengths=torch.tensor([20, 10]))
    with pytest.raises(ValueError, match=r"counts\[0, 0\] = -1 is negative"):
        counting_loss(torch.zeros(1, 20, 1), torch.tensor([[-1]]))
    with pytest.raises(ValueError, match="lengths"):
        counting_loss(torch.zeros(1, 20, 1), torch.tensor([[1]]), lengths=torch.tensor([21]))


@pytest.mark.parametrize(("frames", "p_zero"), [(1, 0.3), (150, 0.5), (400, 0.9), (100_000, 0.01)])
def test_initial_bias_gives_the_requested_probability_of_no_event(frames: int, p_zero: float) -> None:
    bias = initial_bias(frames, p_zero)
    logits = torch.full((1, frames, 1), bias, dtype=torch.float64)
    loss = counting_loss(logits, torch.zeros(1, 1, dtype=torch.int64))
    assert math.exp(-loss.item()) == pytest.approx(p_zero, rel=1e-9)


def test_reductions() -> None:
    logits, lengths = _random_case(3, 25, 4, seed=9)
    counts = torch.randint(0, 5, (3, 4), generator=torch.Generator().manual_seed(10))
    per_item = counting_loss(logits, counts, lengths=lengths, reduction="none")
    assert per_item.shape == (3, 4)
    torch.testing.assert_close(counting_loss(logits, counts, lengths=lengths), per_item.mean())
    torch.testing.assert_close(counting_loss(logits, counts, lengths=lengths, reduction="sum"), per_item.sum())
    with pytest.raises(ValueError, match="reduction"):
        counting_loss(logits, counts, reduction="max")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tree_backend_equals_numba_backend(dtype: torch.dtype) -> None:
    logits, lengths = _random_case(3, 37, 4, seed=11, scale=5.0)
    logits = logits.to(dtype)
    counts = torch.minimum(
        torch.randint(0, 7, (3, 4), generator=torch.Generator().manual_seed(12)), lengths[:, None]
    )
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    for cmax in (None, 6):
        loss_n, grad_n = _loss_and_grad(logits, counts, "numba", lengths=lengths, cmax=cmax)
        loss_t, grad_t = _loss_and_grad(logits, counts, "tree", lengths=lengths, cmax=cmax)
        torch.testing.assert_close(loss_n, loss_t, **tol)
        torch.testing.assert_close(grad_n, grad_t, **tol)


def test_backend_can_be_forced_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = counting._tree_log_distribution

    def spy(*args: object) -> torch.Tensor:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(counting, "_tree_log_distribution", spy)
    monkeypatch.setenv(counting.BACKEND_ENV, "tree")
    counting_loss(torch.zeros(1, 5, 1), torch.tensor([[2]]))
    assert calls
    monkeypatch.setenv(counting.BACKEND_ENV, "numba")
    counting_loss(torch.zeros(1, 5, 1), torch.tensor([[2]]))
    assert len(calls) == 1
    monkeypatch.setenv(counting.BACKEND_ENV, "gpu")
    with pytest.raises(ValueError, match="backend"):
        counting_loss(torch.zeros(1, 5, 1), torch.tensor([[2]]))


def test_forward_without_gradient_gives_the_same_loss() -> None:
    logits, lengths = _random_case(2, 50, 3, seed=13)
    counts = torch.tensor([[1, 2, 3], [0, 4, 1]])
    with torch.no_grad():
        plain = counting_loss(logits, counts, lengths=lengths, reduction="none")
    loss, _ = _loss_and_grad(logits, counts, "numba", lengths=lengths)
    torch.testing.assert_close(plain, loss)


def test_torch_thread_count_is_left_alone() -> None:
    """numba's OpenMP layer resets torch's thread count on its first launch: run in a fresh process."""
    code = (
        "import torch\n"
        "from eventcount.counting import count_distribution, counting_loss\n"
        "torch.set_num_threads(1)\n"
        "counting_loss(torch.zeros(2, 30, 3), torch.ones(2, 3, dtype=torch.int64))\n"
        "count_distribution(torch.zeros(2, 30, 3), cmax=3)\n"
        "print(torch.get_num_threads())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "1"


def test_numba_follows_the_torch_thread_count() -> None:
    """The counting kernel takes threads from the process's one setting (torch's), in a fresh process."""
    code = (
        "import numba, torch\n"
        "from eventcount.counting import counting_loss\n"
        "for n in (1, 2, 1):\n"
        "    torch.set_num_threads(n)\n"
        "    counting_loss(torch.zeros(64, 400, 4), torch.ones(64, 4, dtype=torch.int64) * 30)\n"
        "    print(numba.get_num_threads(), torch.get_num_threads())\n"
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.split("\n")[:3] == ["1 1", "2 2", "1 1"]


def test_parallel_kernel_equals_serial_kernel() -> None:
    """A batch above the serial-work threshold (threads) gives what its halves give (one thread each)."""
    torch.set_num_threads(2)  # with one thread the serial kernel runs
    logits, lengths = _random_case(64, 400, 4, seed=15)
    counts = torch.randint(0, 41, (64, 4), generator=torch.Generator().manual_seed(16))
    counts = torch.minimum(counts, lengths[:, None])
    halves = (slice(0, 32), slice(32, 64))
    work = [int((lengths[h, None] * (counts[h] + 1)).sum()) for h in halves]
    assert max(work) < counting._SERIAL_WORK < sum(work)
    loss, grad = _loss_and_grad(logits, counts, "numba", lengths=lengths)
    for half in halves:
        part_loss, part_grad = _loss_and_grad(logits[half], counts[half], "numba", lengths=lengths[half])
        torch.testing.assert_close(loss[half], part_loss, rtol=0.0, atol=0.0)
        torch.testing.assert_close(grad[half], part_grad, rtol=0.0, atol=0.0)
