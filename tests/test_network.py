"""The causal CRNN: shapes, causality, chunked processing with state, output bias."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eventcount.config import NetworkConfig
from eventcount.gru_kernel import gru_forward
from eventcount.network import CRNN, pool_features

N_FEATURES = 13  # odd, so the pooled width has to round up


def make_model(rnn: str = "gru", classes: int = 3, seed: int = 0, stride: int = 1) -> CRNN:
    torch.manual_seed(seed)
    config = NetworkConfig(conv_channels=[4, 8], rnn=rnn, rnn_hidden=16, dropout=0.5, rnn_stride=stride)
    model = CRNN(N_FEATURES, classes, config).eval()
    model.set_output_bias(-1.0)  # the random head starts near zero; make bias effects visible
    return model


def features(batch: int, frames: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 2, frames, N_FEATURES, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("width", "size"), [(13, 2), (12, 2), (13, 3), (1, 2), (5, 1)])
def test_pool_features_matches_max_pool(width: int, size: int) -> None:
    """The fast pooling is max_pool2d over features with ceil_mode (a short last group kept), values and
    gradients; ReLU after it equals ReLU before max_pool2d (the block's order before the change)."""
    x = torch.randn(2, 3, 4, width, generator=torch.Generator().manual_seed(width), requires_grad=True)
    expected = torch.nn.functional.max_pool2d(x, (1, size), ceil_mode=True)
    pooled = pool_features(x, size)
    assert torch.equal(pooled, expected)
    grad_fast, = torch.autograd.grad(torch.relu(pooled).sum(), x)
    grad_ref, = torch.autograd.grad(torch.relu(expected).sum(), x)
    assert torch.equal(grad_fast, grad_ref)
    assert torch.equal(torch.relu(pooled), torch.nn.functional.max_pool2d(torch.relu(x), (1, size), ceil_mode=True))


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_output_shape(rnn: str) -> None:
    logits, state = make_model(rnn, classes=5)(features(3, 17))
    assert logits.shape == (3, 17, 5)
    assert ("c" in state) == (rnn == "lstm")


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("t", [0, 1, 6, 7, 18])
def test_future_input_never_changes_past_logits(rnn: str, stride: int, t: int) -> None:
    """Changing frame t + 1 on leaves every logit before it unchanged; with `rnn_stride` 2 frames are read in
    pairs (2k, 2k + 1), so only the logits of pairs wholly before t + 1."""
    model = make_model(rnn, stride=stride)
    x = features(2, 20)
    changed = x.clone()
    changed[:, :, t + 1:] = torch.randn_like(changed[:, :, t + 1:]) * 10
    with torch.no_grad():
        before, _ = model(x)
        after, _ = model(changed)
    kept = (t + 1) - (t + 1) % stride
    assert torch.equal(before[:, :kept], after[:, :kept])
    if t + 1 < x.shape[2]:
        assert not torch.allclose(before[:, t + 1:], after[:, t + 1:])


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
@pytest.mark.parametrize("sizes", [[1] * 12, [2, 5, 5], [3, 1, 8], [12]])
def test_chunked_with_state_equals_one_pass(rnn: str, sizes: list[int]) -> None:
    model = make_model(rnn)
    x = features(2, sum(sizes))
    with torch.no_grad():
        whole, _ = model(x)
        state, pieces, start = None, [], 0
        for size in sizes:
            logits, state = model(x[:, :, start:start + size], state)
            pieces.append(logits)
            start += size
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-5, rtol=1e-5)


def test_chunks_without_state_differ() -> None:
    """The state is what makes chunking exact: dropping it must change the second chunk."""
    model = make_model()
    x = features(1, 10)
    with torch.no_grad():
        whole, _ = model(x)
        second, _ = model(x[:, :, 5:])
    assert not torch.allclose(second, whole[:, 5:], atol=1e-4)


def test_set_output_bias_shifts_every_logit() -> None:
    model = make_model()
    x = features(2, 6)
    with torch.no_grad():
        before, _ = model(x)
        model.set_output_bias(2.5)
        after, _ = model(x)
    assert torch.equal(model.head.bias, torch.full((3,), 2.5))
    torch.testing.assert_close(after - before, torch.full_like(before, 3.5))


def test_random_head_does_not_swamp_the_bias() -> None:
    """Small head weights at init: every starting probability stays near sigmoid(bias)."""
    model = make_model()
    model.set_output_bias(-4.0)
    with torch.no_grad():
        logits, _ = model(features(4, 50))
    assert (logits + 4.0).abs().max() < 1.0


@pytest.mark.parametrize(("batch", "steps", "hidden_size"), [(1, 3000, 128), (3, 257, 8), (2, 1, 5)])
def test_compiled_gru_equals_torch(batch: int, steps: int, hidden_size: int) -> None:
    """The numba GRU gives torch's outputs and final state, from zeros and from a given state, saturated gates
    included (large inputs)."""
    torch.manual_seed(steps)
    gru = torch.nn.GRU(6, hidden_size, batch_first=True)
    x = torch.randn(batch, steps, 6) * 4
    start = torch.randn(1, batch, hidden_size) * 0.5
    with torch.inference_mode():
        for hidden in (None, start):
            expected, expected_state = gru(x, hidden)
            got, state = gru_forward(gru, x, hidden)
            torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)
            torch.testing.assert_close(state, expected_state, atol=2e-5, rtol=0)


def test_compiled_exp_is_within_float_rounding() -> None:
    """The GRU's vectorised exp: within 2e-7 of e^v over float32's range, exact powers of two included."""
    from eventcount.gru_kernel import exp_into

    values = np.concatenate([np.linspace(-87, 88, 100_001), np.arange(-80, 81) * np.log(2)]).astype(np.float32)
    mantissa, power = np.empty_like(values), np.empty(values.shape, np.int32)
    exp_into(values, mantissa, power)
    expected = np.exp(values.astype(np.float64))
    assert np.max(np.abs(mantissa * power.view(np.float32) / expected - 1)) < 2e-7


def test_compiled_gru_follows_changed_weights() -> None:
    """The transposed hidden weights are kept between calls, but not once the weights change in place (a training
    step, `load_state_dict`) or are replaced."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(6, 8, batch_first=True)
    x = torch.randn(1, 50, 6)
    with torch.no_grad():
        for change in (lambda: gru.weight_hh_l0.mul_(-0.5),
                       lambda: gru.load_state_dict({**gru.state_dict(), "weight_hh_l0": torch.randn(24, 8)}),
                       lambda: setattr(gru, "weight_hh_l0", torch.nn.Parameter(torch.randn(24, 8)))):
            gru_forward(gru, x, None)
            change()
            torch.testing.assert_close(gru_forward(gru, x, None)[0], gru(x)[0], atol=2e-5, rtol=0)


def test_inference_uses_the_compiled_gru_and_training_torchs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without gradients the CRNN's logits equal those of torch's GRU; with gradients torch's GRU runs."""
    from eventcount import gru_kernel

    model = make_model().eval()
    x = features(2, 80)
    calls = []
    compiled_forward = gru_kernel.gru_forward
    monkeypatch.setattr(gru_kernel, "gru_forward", lambda *args: calls.append(1) or compiled_forward(*args))
    with torch.no_grad():
        compiled, _ = model(x)
    assert calls  # the compiled GRU ran
    monkeypatch.setattr(gru_kernel, "gru_forward", lambda *args: pytest.fail("compiled GRU used with gradients"))
    reference, _ = model(x)
    torch.testing.assert_close(compiled, reference.detach(), atol=2e-5, rtol=0)


def test_without_gradients_the_model_gives_the_same_logits() -> None:
    """Inference (the compiled GRU) and training (torch's GRU, gradients on) agree on a long input."""
    model = make_model()
    x = features(1, 3000)
    with torch.no_grad():
        inference, _ = model(x)
    whole, _ = model(x)
    torch.testing.assert_close(inference, whole.detach(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
@pytest.mark.parametrize("frames", [16, 17, 1])
def test_a_recurrent_stride_of_two_gives_every_frame_a_logit(rnn: str, frames: int) -> None:
    logits, _ = make_model(rnn, classes=5, stride=2)(features(3, frames))
    assert logits.shape == (3, frames, 5)


@pytest.mark.parametrize("sizes", [[1] * 13, [2, 5, 6], [3, 1, 8, 1], [13]])
def test_stride_two_in_pieces_equals_one_pass(sizes: list[int]) -> None:
    """Pieces of any length: a frame left without its pair waits in the state; the final call completes the
    last pair with zeros, as one pass over the whole input does."""
    model = make_model(stride=2)
    x = features(1, sum(sizes))
    with torch.no_grad():
        whole, _ = model(x)
        state, pieces, start = None, [], 0
        for i, size in enumerate(sizes):
            logits, state = model(x[:, :, start:start + size], state, final=i == len(sizes) - 1)
            pieces.append(logits)
            start += size
    assert sum(p.shape[1] for p in pieces[:-1]) == sum(sizes[:-1]) - sum(sizes[:-1]) % 2
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-5, rtol=1e-5)
