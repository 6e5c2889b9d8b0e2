"""A GRU's forward pass without gradients, its recurrence compiled by numba (installed already: librosa needs it).

On one CPU thread torch's GRU spends most of a step dispatching a dozen small operators (~20 us a step for the
drum model's 128 units, 2026-12-03). Here the input projection stays one torch matrix product over all steps and
the recurrence is one compiled loop: the hidden matrix-vector product, then the gates.
Results equal `torch.nn.GRU`'s to float32 rounding (~1e-6). The first call after installing compiles the loop
(1-2 s); numba then caches it on disk.
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
    [H, 3H] (the hidden weights transposed), bias [3H] -> hidden states [T, H]. The gates are computed from
    `exp` only (tanh(v) = 2 / (1 + e^-2v) - 1), a whole gate vector at a time with `exp_into`."""
    steps, size = inputs.shape[0], start.shape[0]
    one, two = np.float32(1.0), np.float32(2.0)
    out = np.empty((steps, size), np.float32)
    h = start.copy()
    hidden = np.empty(3 * size, np.float32)
    gates = np.empty(2 * size, np.float32)  # reset and update
    candidate = np.empty(size, np.float32)
    mantissa, power = np.empty(2 * size, np.float32), np.empty(2 * size, np.int32)
    scale = power.view(np.float32)  # 2^n of each value, as `exp_into` writes it
    for t in range(steps):  # plain loops, no slice assignments: numba compiles them in about a second
        for j in range(3 * size):
            hidden[j] = bias[j]
        for k in range(0, size - size % 4, 4):  # hidden += weight_t[k] * h[k], four rows at a time (1.3x)
            h0, h1, h2, h3 = h[k], h[k + 1], h[k + 2], h[k + 3]
            for j in range(3 * size):
                hidden[j] += (weight_t[k, j] * h0 + weight_t[k + 1, j] * h1 + weight_t[k + 2, j] * h2
                              + weight_t[k + 3, j] * h3)
        for k in range(size - size % 4, size):
            for j in range(3 * size):
                hidden[j] += weight_t[k, j] * h[k]
        for j in range(2 * size):
            gates[j] = -(inputs[t, j] + hidden[j])
        exp_into(gates, mantissa, power)
        for j in range(2 * size):
            gates[j] = one / (one + mantissa[j] * scale[j])
        for j in range(size):
            candidate[j] = -two * (inputs[t, 2 * size + j] + gates[j] * hidden[2 * size + j])
        exp_into(candidate, mantissa, power)
        for j in range(size):
            new = two / (one + mantissa[j] * scale[j]) - one
            update = gates[size + j]
            h[j] = (one - update) * new + update * h[j]
            out[t, j] = h[j]
    return out


LOG2_E = np.float32(1.4426950408889634)
LN2_HIGH, LN2_LOW = np.float32(0.693359375), np.float32(-2.12194440e-4)  # ln 2 in two parts (Cody-Waite)


@numba.njit(cache=CACHE, nogil=True, inline="always")
def exp_into(values: np.ndarray, mantissa: np.ndarray, power: np.ndarray) -> None:
    """e^v for the float32 `values` as mantissa * (power's bits read as float32, 2^n): Cephes' `expf`
    (v = n ln 2 + r, a degree-7 polynomial for e^r; within 8.1e-8 of e^v, v clipped to [-87, 88]). Here numba's
    np.exp is a call to the C library value by value; this loop is vectorised, and the GRU of a minute of
    audio took 29-33 ms instead of 47-51 ms (one thread, 2026-12-04)."""
    for i in range(values.shape[0]):
        v = min(max(values[i], np.float32(-87.0)), np.float32(88.0))
        n = np.floor(v * LOG2_E + np.float32(0.5))
        r = v - n * LN2_HIGH - n * LN2_LOW
        p = np.float32(1.9875691500e-4)
        p = p * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        mantissa[i] = p * r * r + r + np.float32(1.0)
        power[i] = (np.int32(n) + np.int32(127)) << np.int32(23)
