"""A GRU's forward pass without gradients, its recurrence compiled by numba (installed already: librosa needs it).

On one CPU thread torch's GRU spends most of a step dispatching a dozen small operators (~20 us a step for the
drum model's 128 units, 2026-12-03). Here the input projection stays one torch matrix product over all steps and
the recurrence is one compiled loop: the hidden matrix-vector product, then the gates.
Results equal `torch.nn.GRU`'s to float32 rounding (~1e-6). The first call after installing compiles the loop
(~1 s); numba then caches it on disk.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from eventcount.numba_cache import CACHE  # before numba's import

# isort: split
import numba  # (after the cache directory is settled)


def gru_forward(rnn: nn.GRU, x: torch.Tensor, hidden: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """`rnn(x, hidden)` for a one-layer, unidirectional, batch-first GRU: x [B, T, I], hidden [1, B, H] or None."""
    batch, steps, size = x.shape[0], x.shape[1], rnn.hidden_size
    inputs = F.linear(x.float(), rnn.weight_ih_l0, rnn.bias_ih_l0).numpy()  # [B, T, 3H], one product for all steps
    weight_t = _transposed(rnn)
    bias = rnn.bias_hh_l0.detach().numpy()
    start = np.zeros((batch, size), np.float32) if hidden is None else hidden[0].float().numpy()
    out = np.empty((batch, steps, size), np.float32)
    for row in range(batch):
        out[row] = recurrence(inputs[row], weight_t, bias, np.ascontiguousarray(start[row]))
    last = out[:, -1] if steps else start
    return torch.from_numpy(out), torch.from_numpy(np.ascontiguousarray(last))[None]


_TRANSPOSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _transposed(rnn: nn.GRU) -> np.ndarray:
    """The hidden weights [3H, H] as a contiguous [H, 3H] array, made again only when they changed (another
    tensor or a new version): a live stream calls `gru_forward` for each 10 ms block, and the copy cost more than
    the step (50-90 us)."""
    weight = rnn.weight_hh_l0
    cached = _TRANSPOSED.get(rnn)
    if cached is None or cached[0] is not weight or cached[1] != weight._version:
        cached = weight, weight._version, np.ascontiguousarray(weight.detach().numpy().T)
        _TRANSPOSED[rnn] = cached
    return cached[2]


@numba.njit(cache=CACHE, nogil=True)
def recurrence(inputs: np.ndarray, weight_t: np.ndarray, bias: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The GRU's steps in torch's gate order (reset, update, new): inputs [T, 3H] already projected, weight_t
    [H, 3H] (the hidden weights transposed), bias [3H] -> hidden states [T, H]. tanh(v) is computed as
    2 / (1 + e^-2v) - 1: float32 `tanh` ran one value at a time, 4x slower than the vectorised `exp`."""
    steps, size = inputs.shape[0], start.shape[0]
    one, two = np.float32(1.0), np.float32(2.0)
    out = np.empty((steps, size), np.float32)
    h = start.copy()
    hidden = np.empty(3 * size, np.float32)
    for t in range(steps):  # plain loops, no slice assignments: numba compiled this in 0.8 s instead of 4.9 s
        for j in range(3 * size):
            hidden[j] = bias[j]
        for k in range(size):  # hidden += weight_t[k] * h[k]: contiguous rows, vectorised
            hk = h[k]
            for j in range(3 * size):
                hidden[j] += weight_t[k, j] * hk
        for j in range(size):
            reset = one / (one + np.exp(-(inputs[t, j] + hidden[j])))
            update = one / (one + np.exp(-(inputs[t, size + j] + hidden[size + j])))
            new = two / (one + np.exp(-two * (inputs[t, 2 * size + j] + reset * hidden[2 * size + j]))) - one
            h[j] = (one - update) * new + update * h[j]
            out[t, j] = h[j]
    return out
