"""The counting loss: exact, stable -log Pr(C = count) for sums of independent Bernoulli frames.

For each sequence b and class d the count C is the sum over valid frames t of independent
Bernoulli(sigmoid(logits[b, t, d])) variables (a Poisson-binomial distribution). `counting_loss` returns
`-log Pr(C = counts[b, d])` with its exact gradient; `count_distribution` returns Pr(C = k) for k <= cmax.

Two backends compute the same numbers:

* **numba** (CPU, the default there): a fused kernel in float64. Per sequence an exponential tilt theta
  is Newton-solved so the tilted expected count is near the label (within half a count plus one standard
  deviation; theta >= 0 for an overflow label), then held fixed; the identity
  `Pr(C=c) = Pr_theta(C=c) * exp(-theta*c) * prod_t(q_t + p_t*exp(theta))` holds for any theta, so the tilt
  only keeps the needed bins away from underflow. Only bins 0..c are kept; the gradient w.r.t. logit t is
  `p_t - Pr(b_t = 1 | C = c)` from a prefix pass and a suffix pass.
* **tree** (CUDA, the default there): a log-depth tree of truncated polynomial products in log space with
  PyTorch autograd: log2(T) levels of ~10 tensor ops each, instead of ~7 ops per frame for a loop.

With truncation (`cmax`), bins 0..cmax-1 are exact and bin cmax holds Pr(C >= cmax): a label equal to
cmax means "cmax or more". The overflow bin is computed without cancellation: the top bin absorbs mass,
and under a positive tilt the absorbed mass carries the weight exp(-theta * (j - cmax)).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Iterator

import numba
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from eventcount.counting_kernels import distribution_kernel, loss_kernel, loss_kernel_serial

BACKEND_ENV = "EVENTCOUNT_COUNTING_BACKEND"
_BACKENDS = ("auto", "numba", "tree")
_REDUCTIONS = ("mean", "sum", "none")
_NEG = -1.0e30  # log(0) stand-in: -inf would give NaN gradients through logsumexp
_SERIAL_WORK = 1_000_000  # below this many DP bin updates per batch the kernel runs on one thread



# ---------------------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------------------


def _frame_lengths(logits: Tensor, lengths: Tensor | None) -> Tensor:
    """Valid frames per sequence as int64 [B] on logits' device; checks shape and range."""
    batch, frames = logits.shape[0], logits.shape[1]
    if lengths is None:
        return torch.full((batch,), frames, dtype=torch.int64, device=logits.device)
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape [B] = [{batch}], got {list(lengths.shape)}")
    lengths = lengths.to(device=logits.device, dtype=torch.int64)
    bad = (lengths < 0) | (lengths > frames)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        raise ValueError(f"lengths[{row}] = {int(lengths[row])} is outside 0..T = 0..{frames}")
    return lengths


def _first_bad(mask: Tensor) -> tuple[int, int] | None:
    """(row, class) of the first True in a [B, D] mask, or None."""
    if not bool(mask.any()):
        return None
    row, col = mask.nonzero()[0].tolist()
    return row, col


def _check_counts(counts: Tensor, frame_counts: Tensor, shape: tuple[int, int], cmax: int | None) -> Tensor:
    """counts as int64 [B, D]; ValueError naming the (row, class) of a negative, too large or impossible count."""
    if tuple(counts.shape) != shape:
        raise ValueError(f"counts must have shape [B, D] = {list(shape)}, got {list(counts.shape)}")
    if counts.is_floating_point() and bool((counts != counts.round()).any()):
        raise ValueError("counts must be whole numbers")
    counts = counts.to(device=frame_counts.device, dtype=torch.int64)
    if cmax is not None and cmax < 0:
        raise ValueError(f"cmax must be >= 0, got {cmax}")
    checks = [(counts < 0, "is negative")]
    if cmax is not None:
        checks.append((counts > cmax, f"exceeds cmax = {cmax} (the last bin means 'cmax or more')"))
    checks.append((counts > frame_counts[:, None], "exceeds the number of valid frames"))
    for mask, why in checks:
        bad = _first_bad(mask)
        if bad is not None:
            row, col = bad
            raise ValueError(
                f"counts[{row}, {col}] = {int(counts[row, col])} {why} "
                f"(sequence {row} has {int(frame_counts[row])} valid frames; {int(mask.sum())} such entries)"
            )
    return counts


def _resolve_backend(backend: str, device: torch.device) -> str:
    """'numba' or 'tree': an explicit choice, else $EVENTCOUNT_COUNTING_BACKEND, else tree on CUDA only."""
    if backend == "auto":
        backend = os.environ.get(BACKEND_ENV, "auto") or "auto"
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS} (or ${BACKEND_ENV}), got {backend!r}")
    if backend == "auto":
        return "tree" if device.type == "cuda" else "numba"
    return backend


# ---------------------------------------------------------------------------------------------------------
# numba backend (autograd wrapper)
# ---------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _torch_threads() -> Iterator[int]:
    """Run numba's parallel kernels on as many threads as torch uses (the process's one thread setting) and
    yield that count. Torch's count is restored afterwards: numba's OpenMP layer shares the runtime with torch
    and sets the thread count to numba's own on its first parallel launch."""
    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield threads
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _as_numpy(logits: Tensor) -> np.ndarray:
    """[B, T, D] tensor -> C-contiguous float64 numpy array (one kernel signature to compile).

    Conversions here and in the autograd wrapper use numpy on purpose: single-threaded, they cannot stall
    on torch's OpenMP workers when the machine is busy.
    """
    x = logits.detach().cpu()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return np.ascontiguousarray(x.numpy(), dtype=np.float64)


class _NumbaCountingLoss(torch.autograd.Function):
    """Per (sequence, class) loss [B, D]; the gradient is computed with the forward pass and scaled later."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, logits: Tensor, counts: Tensor, lengths: Tensor, overflow: Tensor
    ) -> Tensor:
        x = _as_numpy(logits)
        batch, frames, classes = x.shape
        need_grad = bool(ctx.needs_input_grad[0])
        grad = np.empty((batch, frames if need_grad else 0, classes))
        lengths, counts = lengths.cpu(), counts.cpu()
        small = int((lengths[:, None] * (counts + 1)).sum()) < _SERIAL_WORK
        with _torch_threads() as threads:
            kernel = loss_kernel_serial if small or threads == 1 else loss_kernel
            loss = kernel(x, lengths.numpy(), counts.numpy(), overflow.cpu().numpy(), need_grad, grad)
        if need_grad:
            ctx.grad = grad if logits.dtype == torch.float64 else grad.astype(np.float32)
            ctx.device, ctx.dtype = logits.device, logits.dtype
        return torch.from_numpy(loss).to(device=logits.device, dtype=logits.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_loss: Tensor
    ) -> tuple[Tensor, None, None, None]:
        scale = grad_loss.detach().cpu().numpy()[:, None, :].astype(ctx.grad.dtype, copy=False)
        grad = torch.from_numpy(ctx.grad * scale)
        return grad.to(device=ctx.device, dtype=ctx.dtype), None, None, None


# ---------------------------------------------------------------------------------------------------------
# tree backend (pure PyTorch, log space)
# ---------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _combine_index(size: int, out_size: int, device: torch.device) -> Tensor:
    """Index [out_size, size] into cat([b, tail(b), NEG]) so that row k, column i picks the partner of a[i]."""
    k = torch.arange(out_size, device=device)[:, None]
    i = torch.arange(size, device=device)[None, :]
    j = k - i
    exact = torch.where((j >= 0) & (j < size), j, torch.full_like(j, 2 * size))
    tail = torch.where(j < size, size + j.clamp(min=0), torch.full_like(j, 2 * size))
    return torch.where(k == out_size - 1, tail, exact)


def _combine(a: Tensor, b: Tensor, cmax: int) -> Tensor:
    """Log-distribution of the sum of two independent counts, truncated with a tail bin at cmax.

    a, b: [..., s] log-probabilities whose last bin is log Pr(count >= s - 1). Returns [..., min(2s-1, cmax+1)].
    """
    size = a.shape[-1]
    out_size = min(2 * size - 1, cmax + 1)
    tail = torch.logcumsumexp(b.flip(-1), dim=-1).flip(-1)  # tail[m] = log Pr(count_b >= m)
    ext = torch.cat([b, tail, torch.full_like(b[..., :1], _NEG)], dim=-1)
    partners = ext[..., _combine_index(size, out_size, a.device)]
    return torch.logsumexp(a.unsqueeze(-2) + partners, dim=-1).clamp(min=_NEG)


def _leaves(logits: Tensor, lengths: Tensor, cmax: int) -> Tensor:
    """Per-frame log-distributions [B, D, T, min(cmax,1)+1]; frames beyond a length are log [1, 0]."""
    x = logits.transpose(1, 2)
    if cmax == 0:  # one bin, Pr(C >= 0) = 1; keep the graph so backward gives zeros
        return (x * 0.0).unsqueeze(-1)
    log_q, log_p = F.logsigmoid(-x), F.logsigmoid(x)
    valid = torch.arange(x.shape[-1], device=x.device)[None, None, :] < lengths[:, None, None]
    return torch.stack([log_q.masked_fill(~valid, 0.0), log_p.masked_fill(~valid, _NEG)], dim=-1)


def _tree_log_distribution(logits: Tensor, lengths: Tensor, cmax: int) -> Tensor:
    """log Pr(C = k), k < cmax, and log Pr(C >= cmax): [B, D, cmax + 1], by pairwise products over frames.

    Half-precision logits are computed in float32 (the log(0) stand-in needs float32's range).
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    nodes = _leaves(logits, lengths, cmax)
    while nodes.shape[-2] > 1:
        if nodes.shape[-2] % 2:
            identity = torch.full_like(nodes[..., :1, :], _NEG)
            identity[..., 0] = 0.0
            nodes = torch.cat([nodes, identity], dim=-2)
        nodes = _combine(nodes[..., 0::2, :], nodes[..., 1::2, :], cmax)
    root = nodes[..., 0, :]
    missing = cmax + 1 - root.shape[-1]
    return F.pad(root, (0, missing), value=_NEG) if missing > 0 else root


# ---------------------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------------------


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def counting_loss(
    logits: Tensor,
    counts: Tensor,
    lengths: Tensor | None = None,
    cmax: int | None = None,
    reduction: str = "mean",
    *,
    backend: str = "auto",
) -> Tensor:
    """-log Pr(C = count) for C = sum over valid frames of Bernoulli(sigmoid(logits)), exact and stable.

    logits: [B, T, D] float (pre-sigmoid). counts: [B, D] integers >= 0. lengths: [B] integers (frames
    t >= lengths[b] are ignored and get zero gradient); None = all T frames.
    cmax: None = no truncation; else counts <= cmax and a count equal to cmax means "cmax or more"
    (Pr(C >= cmax)). reduction: "mean" | "sum" | "none" ([B, D]).
    backend: "numba" (CPU kernel), "tree" (log-depth PyTorch, for CUDA) or "auto" ($EVENTCOUNT_COUNTING_BACKEND,
    else tree on CUDA and numba elsewhere). Raises ValueError for a count above cmax, a negative count or one
    above the number of valid frames (naming the row and class).
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape [B, T, D], got {list(logits.shape)}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    frame_counts = _frame_lengths(logits, lengths)
    counts = _check_counts(counts, frame_counts, (logits.shape[0], logits.shape[2]), cmax)
    if _resolve_backend(backend, logits.device) == "tree":
        top = cmax if cmax is not None else int(counts.max()) + 1 if counts.numel() else 1
        log_dist = _tree_log_distribution(logits, frame_counts, top)
        loss = -log_dist.gather(-1, counts.unsqueeze(-1)).squeeze(-1)
    else:
        overflow = counts == cmax if cmax is not None else torch.zeros_like(counts, dtype=torch.bool)
        loss = _NumbaCountingLoss.apply(logits, counts, frame_counts, overflow)
    return _reduce(loss, reduction)


@torch.no_grad()
def count_distribution(logits: Tensor, lengths: Tensor | None = None, cmax: int | None = None) -> Tensor:
    """Pr(C = k) for k < cmax and Pr(C >= cmax) in the last bin: float64 [B, D, cmax + 1], no gradient.

    logits: [B, T, D]; lengths: [B] or None; cmax None = T (the whole distribution). Uses the numba kernel
    on the CPU and the log-space tree on CUDA; the result is on logits' device.
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape [B, T, D], got {list(logits.shape)}")
    frame_counts = _frame_lengths(logits, lengths)
    top = logits.shape[1] if cmax is None else cmax
    if top < 0:
        raise ValueError(f"cmax must be >= 0, got {cmax}")
    if logits.device.type == "cuda":
        return _tree_log_distribution(logits.double(), frame_counts, top).exp()
    with _torch_threads():
        dist = distribution_kernel(_as_numpy(logits), frame_counts.cpu().numpy(), top)
    return torch.from_numpy(dist).to(logits.device)


def initial_bias(n_frames: int, p_zero: float) -> float:
    """Output bias b with Pr(C = 0) = p_zero when all n_frames logits equal b: logit(1 - p_zero**(1/n_frames)).

    Computed as log(-expm1(l)) - l with l = log(p_zero) / n_frames, which stays accurate for long sequences.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if not 0.0 < p_zero < 1.0:
        raise ValueError(f"p_zero must be strictly between 0 and 1, got {p_zero}")
    log_q = math.log(p_zero) / n_frames
    return math.log(-math.expm1(log_q)) - log_q
