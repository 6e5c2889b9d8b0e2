"""The counting loss's numba kernels (CPU, float64): tilted prefix/suffix passes per (sequence, class).

`counting.counting_loss` wraps them for autograd; see its module docstring for the method. The compiled kernels
are cached on disk (`numba_cache` finds a writable place before numba's import).
"""

from __future__ import annotations

import math

import numpy as np

_TINY = 1.0e-200  # rescale a DP vector whose total falls below this (a safety net: the tilt avoids it)
_MAX_NEWTON = 60
_DIRECT = 500.0  # beyond this |logit|, tilted probabilities come from exp(x + theta), not exp(theta)


from eventcount.numba_cache import CACHE  # noqa: E402  (before numba's import)

# isort: split
from numba import njit, prange  # noqa: E402  (after the cache directory is settled)

# ---------------------------------------------------------------------------------------------------------
# numba kernels (float64 inside; one sequence per prange iteration)
# ---------------------------------------------------------------------------------------------------------

# Reassociation lets LLVM vectorise the sums; no nnan/ninf, so the checks on tiny totals keep working.
_FAST = {"reassoc", "contract"}


@njit(cache=CACHE)
def _sigmoid_pair(z: float) -> tuple[float, float]:
    """(sigmoid(z), sigmoid(-z)) without computing 1 - p."""
    e = math.exp(-abs(z))
    d = 1.0 / (1.0 + e)
    return (d, e * d) if z >= 0.0 else (e * d, d)


@njit(cache=CACHE)
def _frame_probs(row: np.ndarray, x: np.ndarray, p: np.ndarray, q: np.ndarray) -> float:
    """x = row[:n] in float64 and p, q = sigmoid(x), sigmoid(-x), all [n]; return max |x|."""
    largest = 0.0
    for t in range(x.shape[0]):
        z = float(row[t])
        x[t] = z
        p[t], q[t] = _sigmoid_pair(z)
        largest = max(largest, abs(z))
    return largest


@njit(cache=CACHE, fastmath=_FAST)
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


@njit(cache=CACHE)
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


@njit(cache=CACHE, fastmath=_FAST)
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


@njit(cache=CACHE, fastmath=_FAST)
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


@njit(cache=CACHE)
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


@njit(cache=CACHE, fastmath=_FAST)
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


@njit(cache=CACHE)
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


@njit(cache=CACHE)
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


@njit(cache=CACHE)
def _loss_item(
    i: int, x: np.ndarray, lengths: np.ndarray, labels: np.ndarray, overflow: np.ndarray, need_grad: bool,
    grad: np.ndarray, out: np.ndarray,
) -> None:
    """Sequence i = b * D + d of the batch: out[b, d] and grad[b, :, d]."""
    b, d = i // x.shape[2], i % x.shape[2]
    out[b, d] = _one_sequence(x[b, :, d], lengths[b], labels[b, d], overflow[b, d], need_grad, grad[b, :, d])


@njit(parallel=True, cache=CACHE)
def loss_kernel(
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


@njit(cache=CACHE)
def loss_kernel_serial(
    x: np.ndarray, lengths: np.ndarray, labels: np.ndarray, overflow: np.ndarray, need_grad: bool,
    grad: np.ndarray,
) -> np.ndarray:
    """`loss_kernel` on the calling thread: for small batches, where waking worker threads costs more."""
    out = np.empty((x.shape[0], x.shape[2]))
    for i in range(x.shape[0] * x.shape[2]):
        _loss_item(i, x, lengths, labels, overflow, need_grad, grad, out)
    return out


@njit(parallel=True, cache=CACHE)
def distribution_kernel(x: np.ndarray, lengths: np.ndarray, cmax: int) -> np.ndarray:
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
