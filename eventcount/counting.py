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
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

BACKEND_ENV = "EVENTCOUNT_COUNTING_BACKEND"
_BACKENDS = ("auto", "numba", "tree")
_REDUCTIONS = ("mean", "sum", "none")
_NEG = -1.0e30  # log(0) stand-in: -inf would give NaN gradients through logsumexp
_TINY = 1.0e-200  # rescale a DP vector whose total falls below this (a safety net: the tilt avoids it)
_MAX_NEWTON = 60
_SERIAL_WORK = 1_000_000  # below this many DP bin updates per batch the kernel runs on one thread
_DIRECT = 500.0  # beyond this |logit|, tilted probabilities come from exp(x + theta), not exp(theta)


def _user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "eventcount" / "numba"


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def _prepare_numba_cache() -> bool:
    """Find a writable place for numba's cache of the compiled kernels; False means compile without caching.

    Order: $NUMBA_CACHE_DIR if writable, the package's __pycache__ (numba's default), else a user cache
    directory, which is then set as NUMBA_CACHE_DIR (and in numba.config when numba is already imported).
    Numba raises at decoration time when no cache location is writable, so this must run before @njit.
    """
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured and _writable_dir(Path(configured)):
        return True
    if _writable_dir(Path(__file__).parent / "__pycache__"):
        return True
    cache_dir = _user_cache_dir()
    if configured or not _writable_dir(cache_dir):
        return False
    os.environ["NUMBA_CACHE_DIR"] = str(cache_dir)
    if "numba" in sys.modules:
        sys.modules["numba"].config.CACHE_DIR = str(cache_dir)
    return True


_CACHE = _prepare_numba_cache()

from numba import njit, prange  # noqa: E402  (after the cache directory is settled)

# ---------------------------------------------------------------------------------------------------------
# numba kernels (float64 inside; one sequence per prange iteration)
# ---------------------------------------------------------------------------------------------------------

# Reassociation lets LLVM vectorise the sums; no nnan/ninf, so the checks on tiny totals keep working.
_FAST = {"reassoc", "contract"}


@njit(cache=_CACHE)
def _sigmoid_pair(z: float) -> tuple[float, float]:
    """(sigmoid(z), sigmoid(-z)) without computing 1 - p."""
    e = math.exp(-abs(z))
    d = 1.0 / (1.0 + e)
    return (d, e * d) if z >= 0.0 else (e * d, d)


@njit(cache=_CACHE)
def _frame_probs(row: np.ndarray, x: np.ndarray, p: np.ndarray, q: np.ndarray) -> float:
    """x = row[:n] in float64 and p, q = sigmoid(x), sigmoid(-x), all [n]; return max |x|."""
    largest = 0.0
    for t in range(x.shape[0]):
        z = float(row[t])
        x[t] = z
        p[t], q[t] = _sigmoid_pair(z)
        largest = max(largest, abs(z))
    return largest


@njit(cache=_CACHE, fastmath=_FAST)
def _tilted_probs(
    x: np.ndarray, p: np.ndarray, q: np.ndarray, theta: float, direct: bool, pp: np.ndarray, qq: np.ndarray
) -> tuple[float, float]:
    """pp, qq [n] = sigmoid(+-(x + theta)); return their expected count and variance.

    From p, q and u = exp(theta) (divisions only, vectorised), or with one exp per frame when `direct`
    (logits so large that exp(theta) could overflow).
    """
    mean = 0.0
    var = 0.0
    if direct:
        for t in range(x.shape[0]):
            pp[t], qq[t] = _sigmoid_pair(x[t] + theta)
            mean += pp[t]
            var += pp[t] * qq[t]
        return mean, var
    u = math.exp(theta)
    for t in range(x.shape[0]):
        d = 1.0 / (q[t] + p[t] * u)
        a = p[t] * u * d
        b = q[t] * d
        pp[t] = a
        qq[t] = b
        mean += a
        var += a * b
    return mean, var


@njit(cache=_CACHE)
def _solve_tilt(
    x: np.ndarray, p: np.ndarray, q: np.ndarray, target: float, min_theta: float, direct: bool,
    pp: np.ndarray, qq: np.ndarray,
) -> float:
    """theta >= min_theta with tilted expected count near target (0 < target < n), by guarded Newton steps.

    Any theta is exact; it only has to keep Pr_theta(C = target) far from underflow, so the expected count
    may miss the target by half a count plus one standard deviation. On return pp, qq match theta.
    """
    n = x.shape[0]
    base = math.log(target / (n - target))
    lo = max(base - x.max(), min_theta)
    hi = base - x.min()
    theta = min(max(0.0, lo), hi) if lo < hi else lo
    for it in range(_MAX_NEWTON):
        mean, var = _tilted_probs(x, p, q, theta, direct, pp, qq)
        f = mean - target
        done = abs(f) <= 0.5 + math.sqrt(var) or (f > 0.0 and theta <= min_theta) or lo >= hi
        if done or it == _MAX_NEWTON - 1:
            break
        if f > 0.0:
            hi = theta
        else:
            lo = theta
        step = theta - f / var if var > 0.0 else lo
        theta = step if lo < step < hi else 0.5 * (lo + hi)
    return theta


@njit(cache=_CACHE, fastmath=_FAST)
def _log_normaliser(x: np.ndarray, p: np.ndarray, q: np.ndarray, theta: float, direct: bool) -> float:
    """sum_t log(q_t + p_t exp(theta)) over [n] frames (= sum softplus(x + theta) - softplus(x)).

    Each factor lies between 1 and exp(theta), so products of 600/|theta| factors cannot overflow: one log
    per chunk instead of one per frame.
    """
    n = x.shape[0]
    total = 0.0
    if direct:
        for t in range(n):
            z = x[t] + theta
            total += max(z, 0.0) - max(x[t], 0.0) + math.log1p(math.exp(-abs(z))) - math.log1p(math.exp(-abs(x[t])))
        return total
    u = math.exp(theta)
    chunk = max(1, int(min(600.0 / max(abs(theta), 1e-3), n)))
    for start in range(0, n, chunk):
        prod = 1.0
        for t in range(start, min(start + chunk, n)):
            prod *= q[t] + p[t] * u
        total += math.log(prod)
    return total


@njit(cache=_CACHE, fastmath=_FAST)
def _prefix_step(dist: np.ndarray, src: int, dst: int, p: float, q: float, top: float) -> float:
    """One frame of the prefix DP, row src -> row dst of dist [rows, last + 1]; return the new row's total.

    Bins below `last` are exact; bin `last` keeps `top` of its own mass. Plain 2-D indexing (no row views)
    lets LLVM vectorise the loop.
    """
    last = dist.shape[1] - 1
    if last == 0:
        dist[dst, 0] = top * dist[src, 0]
        return dist[dst, 0]
    dist[dst, 0] = q * dist[src, 0]
    total = dist[dst, 0]
    for k in range(1, last):
        v = q * dist[src, k] + p * dist[src, k - 1]
        dist[dst, k] = v
        total += v
    dist[dst, last] = top * dist[src, last] + p * dist[src, last - 1]
    return total + dist[dst, last]


@njit(cache=_CACHE)
def _forward(pp: np.ndarray, qq: np.ndarray, decay: float, hist: np.ndarray, logscale: np.ndarray) -> None:
    """Prefix DP: hist[t % rows] = scaled Pr_theta(count of frames < t = k), k = 0..last; logscale[t] its log scale.

    The top bin `last` is the label bin: mass leaving it is dropped (exact label, decay 0) or kept with the
    weight exp(-theta) per extra event (overflow label, decay = exp(-theta)).
    """
    rows, width = hist.shape
    hist[0, :] = 0.0
    hist[0, 0] = 1.0
    logscale[0] = 0.0
    for t in range(pp.shape[0]):
        dst = (t + 1) % rows
        total = _prefix_step(hist, t % rows, dst, pp[t], qq[t], qq[t] + pp[t] * decay)
        logscale[t + 1] = logscale[t]
        if 0.0 < total < _TINY:  # 0: every remaining path is below double range
            for k in range(width):
                hist[dst, k] /= total
            logscale[t + 1] += math.log(total)


@njit(cache=_CACHE, fastmath=_FAST)
def _suffix_step(hist: np.ndarray, t: int, rev: np.ndarray, p: float, q: float) -> tuple[float, float]:
    """Return (sum_k hist[t, k] * rev[k], new total of rev) and add frame (p, q) to the suffix rev [last].

    rev[i] = scaled Pr_theta(suffix count = last - 1 - i): reversed, so the dot product with the prefix
    row gives Pr_theta(C_-t = last - 1) up to scale. One loop does both (rev[i + 1] is read before it changes).
    """
    m = rev.shape[0]
    dot = 0.0
    total = 0.0
    for i in range(m - 1):
        r = rev[i]
        dot += hist[t, i] * r
        v = q * r + p * rev[i + 1]
        rev[i] = v
        total += v
    r = rev[m - 1]
    rev[m - 1] = q * r
    return dot + hist[t, m - 1] * r, total + rev[m - 1]


@njit(cache=_CACHE)
def _backward(
    p: np.ndarray, q: np.ndarray, pp: np.ndarray, qq: np.ndarray, hist: np.ndarray, logscale: np.ndarray,
    overflow: bool, grad: np.ndarray,
) -> None:
    """grad[t] = d(-log Pr)/d logit_t for the n frames, from the stored prefixes and a suffix pass.

    With R_t = p'_t Pr_theta(C_-t = last - 1) / Pr_theta(label bin): exact label p_t - R_t (R_t is
    Pr(b_t = 1 | C = c)); overflow label -q_t R_t (d Pr(C >= m) = p_t q_t Pr(C_-t = m - 1) d logit_t).
    """
    n = pp.shape[0]
    last = hist.shape[1] - 1
    log_total = math.log(hist[n, last]) + logscale[n]
    rev = np.zeros(last)
    if last > 0:
        rev[last - 1] = 1.0
    log_rev = 0.0
    exponent = 0.0
    factor = math.exp(-log_total)
    for t in range(n - 1, -1, -1):
        ratio = 0.0
        if last > 0:
            if logscale[t] + log_rev != exponent:
                exponent = logscale[t] + log_rev
                factor = math.exp(exponent - log_total)
            dot, total = _suffix_step(hist, t, rev, pp[t], qq[t])
            ratio = pp[t] * dot * factor
            if 0.0 < total < _TINY:
                rev /= total
                log_rev += math.log(total)
        grad[t] = -q[t] * ratio if overflow else p[t] - ratio


@njit(cache=_CACHE)
def _one_sequence(
    row: np.ndarray, n: int, label: int, overflow: bool, need_grad: bool, grad_row: np.ndarray
) -> float:
    """-log Pr(C = label) (Pr(C >= label) when overflow) over the first n frames of row; fills grad_row."""
    grad_row[:] = 0.0
    if n == 0:
        return 0.0
    x, p, q, pp, qq = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    direct = _frame_probs(row, x, p, q) > _DIRECT
    target = min(max(float(label), 0.5), n - 0.5)
    theta = _solve_tilt(x, p, q, target, 0.0 if overflow else -np.inf, direct, pp, qq)
    hist = np.empty((n + 1 if need_grad else 2, label + 1))
    logscale = np.empty(n + 1)
    _forward(pp, qq, math.exp(-theta) if overflow else 0.0, hist, logscale)
    log_w = math.log(hist[n % hist.shape[0], label]) + logscale[n]
    if need_grad:
        _backward(p, q, pp, qq, hist, logscale, overflow, grad_row[:n])
    return theta * label - log_w - _log_normaliser(x, p, q, theta, direct)


@njit(cache=_CACHE)
def _loss_item(
    i: int, x: np.ndarray, lengths: np.ndarray, labels: np.ndarray, overflow: np.ndarray, need_grad: bool,
    grad: np.ndarray, out: np.ndarray,
) -> None:
    """Sequence i = b * D + d of the batch: out[b, d] and grad[b, :, d]."""
    b, d = i // x.shape[2], i % x.shape[2]
    out[b, d] = _one_sequence(x[b, :, d], lengths[b], labels[b, d], overflow[b, d], need_grad, grad[b, :, d])


@njit(parallel=True, cache=_CACHE)
def _loss_kernel(
    x: np.ndarray, lengths: np.ndarray, labels: np.ndarray, overflow: np.ndarray, need_grad: bool,
    grad: np.ndarray,
) -> np.ndarray:
    """Losses [B, D] (float64) for logits x [B, T, D]; fills grad [B, T, D] (or [B, 0, D] without need_grad).

    lengths [B], labels [B, D] (the label bin), overflow [B, D] (label means "label or more").
    """
    out = np.empty((x.shape[0], x.shape[2]))
    for i in prange(x.shape[0] * x.shape[2]):
        _loss_item(i, x, lengths, labels, overflow, need_grad, grad, out)
    return out


@njit(cache=_CACHE)
def _loss_kernel_serial(
    x: np.ndarray, lengths: np.ndarray, labels: np.ndarray, overflow: np.ndarray, need_grad: bool,
    grad: np.ndarray,
) -> np.ndarray:
    """`_loss_kernel` on the calling thread: for small batches, where waking worker threads costs more."""
    out = np.empty((x.shape[0], x.shape[2]))
    for i in range(x.shape[0] * x.shape[2]):
        _loss_item(i, x, lengths, labels, overflow, need_grad, grad, out)
    return out


@njit(parallel=True, cache=_CACHE)
def _distribution_kernel(x: np.ndarray, lengths: np.ndarray, cmax: int) -> np.ndarray:
    """Pr(C = k) for k < cmax and Pr(C >= cmax) in the last bin: [B, D, cmax + 1] float64 for x [B, T, D]."""
    batch, _, classes = x.shape
    out = np.empty((batch, classes, cmax + 1))
    for i in prange(batch * classes):
        b, d = i // classes, i % classes
        buf = np.zeros((2, cmax + 1))
        buf[0, 0] = 1.0
        for t in range(lengths[b]):
            p, q = _sigmoid_pair(float(x[b, t, d]))
            _prefix_step(buf, t % 2, (t + 1) % 2, p, q, 1.0)
        out[b, d] = buf[lengths[b] % 2]
    return out


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
def _torch_threads_kept() -> Iterator[None]:
    """Restore torch's intra-op thread count after a numba launch: numba's OpenMP layer shares the runtime
    with torch and sets the thread count to numba's own on its first parallel launch."""
    threads = torch.get_num_threads()
    try:
        yield
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
        kernel = _loss_kernel_serial if small else _loss_kernel
        with _torch_threads_kept():
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
    with _torch_threads_kept():
        dist = _distribution_kernel(_as_numpy(logits), frame_counts.cpu().numpy(), top)
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
