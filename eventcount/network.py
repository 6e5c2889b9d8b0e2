"""The causal CRNN: feature frames [B, 2, T, F] -> event logits [B, T, D], whole or chunk by chunk."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from eventcount import gru_kernel
from eventcount.config import NetworkConfig

State = dict[str, torch.Tensor]


class CausalConvBlock(nn.Module):
    """Conv over (time, feature) padded on the left of time only, max-pool over features only, ReLU.

    The convolution runs on channels-last tensors: oneDNN's kernels for them were 1.6-4x faster on CPU here
    (2026-12-03, one thread) with the same results to float rounding."""

    def __init__(self, in_channels: int, out_channels: int, config: NetworkConfig) -> None:
        super().__init__()
        self.context = config.conv_kernel_time - 1
        self.pool = config.pool_freq
        kernel = (config.conv_kernel_time, config.conv_kernel_freq)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=(0, config.conv_kernel_freq // 2))

    def forward(self, x: torch.Tensor, past: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T, F]; past: the previous chunk's last `context` frames (None = zeros)."""
        if past is None:
            past = x.new_zeros(x.shape[0], x.shape[1], self.context, x.shape[3]).to(memory_format=torch.channels_last)
        padded = torch.cat([past, x], dim=2)
        new_past = padded[:, :, padded.shape[2] - self.context:]
        return pool_features(self.conv(padded), self.pool).relu_(), new_past  # in place: the pooled tensor is new


def pool_features(x: torch.Tensor, size: int) -> torch.Tensor:
    """Max over non-overlapping groups of `size` features (the last axis; a short last group is kept), as
    `max_pool2d(x, (1, size), ceil_mode=True)` but several times faster on CPU."""
    if size == 1:
        return x
    if x.shape[-1] % size:
        x = F.pad(x, (0, -x.shape[-1] % size), value=float("-inf"))
    pooled = x[..., 0::size]
    for offset in range(1, size):
        pooled = torch.maximum(pooled, x[..., offset::size])
    return pooled


class CRNN(nn.Module):
    """Causal convolutional-recurrent network emitting one logit per frame and class.

    `forward(x, state)` with x [B, 2, T, F] returns (logits [B, T, D], state); feeding a long input in
    chunks with the returned state gives the same logits as one pass over the whole input.
    """

    def __init__(self, n_features: int, n_classes: int, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        channels = [2, *config.conv_channels]
        self.blocks = nn.ModuleList(CausalConvBlock(a, b, config) for a, b in zip(channels, channels[1:], strict=False))
        width = n_features
        for _ in config.conv_channels:
            width = -(-width // config.pool_freq)
        rnn_type = {"gru": nn.GRU, "lstm": nn.LSTM}[config.rnn]
        self.stride = config.rnn_stride
        self.rnn = rnn_type(channels[-1] * width * self.stride, config.rnn_hidden, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.rnn_hidden, n_classes * self.stride)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.head.weight, gain=0.1)

    def set_output_bias(self, value: float) -> None:
        """Initialise every class's output bias (see `counting.initial_bias`)."""
        with torch.no_grad():
            self.head.bias.fill_(value)

    def forward(self, x: torch.Tensor, state: State | None = None, final: bool = True) -> tuple[torch.Tensor, State]:
        """x [B, 2, T, F] -> (logits [B, T, D], state); see `recur` for `final`."""
        state = state or {}
        sequence, conv_state = self.encode(x, state)
        logits, rnn_state = self.recur(sequence, state, final)
        return logits, {**conv_state, **rnn_state}

    def encode(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """The convolutions: x [B, 2, T, F] -> the recurrent layer's input [B, T, I], and their state."""
        state = state or {}
        new_state: State = {}
        x = x.contiguous(memory_format=torch.channels_last)
        for i, block in enumerate(self.blocks):
            x, new_state[f"conv{i}"] = block(x, state.get(f"conv{i}"))
        b, c, t, f = x.shape
        return x.permute(0, 2, 1, 3).reshape(b, t, c * f), new_state

    def recur(self, sequence: torch.Tensor, state: State | None = None,
              final: bool = True) -> tuple[torch.Tensor, State]:
        """The recurrent layer and the head: [B, T, I] -> (logits [B, n, D], its state). Without gradients on
        the CPU, a GRU runs as `gru_kernel.gru_forward` (same results, 2x faster on one thread).

        With `rnn_stride` s > 1 each step reads s frames and the head gives the logits of all s, so the logit
        of a frame also sees the rest of its group (at most s - 1 frames ahead). Frames that do not fill a
        group wait in the state for the next call (n < T), unless `final`: then the group is completed with
        zeros and every frame gets its logit (n = T plus any frames that waited).
        """
        state = state or {}
        new_state: State = {}
        n_frames = sequence.shape[1]
        steps = sequence
        if self.stride > 1:
            if "waiting" in state:
                sequence = torch.cat([state["waiting"], sequence], dim=1)
                n_frames = sequence.shape[1]
            if final:  # complete the last group with zeros; all frames get their logits
                sequence = F.pad(sequence, (0, 0, 0, -n_frames % self.stride))
            else:  # a group's frames wait until it is complete
                n_frames -= n_frames % self.stride
            b, t, i = sequence.shape
            used = t - t % self.stride
            new_state["waiting"] = sequence[:, used:]
            steps = sequence[:, :used].reshape(b, used // self.stride, i * self.stride)
        hidden = self._rnn_state(state)
        if not steps.shape[1]:
            x = steps.new_zeros(steps.shape[0], 0, self.rnn.hidden_size)
        elif isinstance(self.rnn, nn.GRU) and not torch.is_grad_enabled() and steps.device.type == "cpu":
            x, hidden = gru_kernel.gru_forward(self.rnn, steps, hidden)
        else:
            x, hidden = self.rnn(steps, hidden)
        if hidden is not None:
            new_state.update(zip(("h", "c"), hidden, strict=True) if isinstance(hidden, tuple) else {"h": hidden})
        logits = self.head(self.dropout(x))
        logits = logits.reshape(logits.shape[0], -1, logits.shape[2] // self.stride)
        return logits[:, :n_frames], new_state

    def _rnn_state(self, state: State):
        if "h" not in state:
            return None
        return (state["h"], state["c"]) if "c" in state else state["h"]
