"""Reading a live signal from a byte stream (standard input): a WAV stream of unknown length or raw PCM.

What `sox ... -t wav -` and `ffmpeg ... -f wav -` write is a RIFF header whose sizes are 0 or 0xFFFFFFFF (they
cannot seek back to fill them in), then samples until the pipe closes. The header is parsed here with `struct`
(a few fields, exactly), and samples are handed on as soon as they arrive (`read1`), so a stream's latency is
not a buffer's. Samples become float32 as soundfile reads them (integers divided by 2^(bits-1)), so a stream
gives the same numbers as the file it was piped from.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from eventcount.errors import EventcountError

RAW_FORMATS = {"s16le": ("<i2", 2.0 ** 15), "s32le": ("<i4", 2.0 ** 31), "f32le": ("<f4", 1.0)}
UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # what a writer that cannot seek puts in the RIFF and data sizes
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
READ_BYTES = 1 << 16


@dataclass(frozen=True)
class PcmFormat:
    """How samples are laid out in the bytes: interleaved frames of `channels` samples of `width` bytes."""

    rate: float
    channels: int
    kind: str  # "int", "uint8" or "float"
    width: int  # bytes per sample

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.width

    def decode(self, raw: bytes) -> np.ndarray:
        """Whole frames of bytes -> float32 [n, channels]."""
        if self.kind == "float":
            data = np.frombuffer(raw, f"<f{self.width}").astype(np.float32)
        elif self.kind == "uint8":
            data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
        elif self.width == 3:  # 24-bit: widen to int32 with the sign of the top byte
            b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
            data = (((b[:, 2] << 24) | (b[:, 1] << 16) | (b[:, 0] << 8)) >> 8).astype(np.float32) / 2.0 ** 23
        else:
            data = np.frombuffer(raw, f"<i{self.width}").astype(np.float32) / np.float32(2.0 ** (8 * self.width - 1))
        return data.reshape(-1, self.channels)


def raw_format(rate: float | None, channels: int, sample_format: str) -> PcmFormat:
    """The layout of headerless PCM from the options (`--rate`, `--channels`, `--sample-format`)."""
    if sample_format not in RAW_FORMATS:
        raise EventcountError(f"sample format '{sample_format}' is not one of {', '.join(RAW_FORMATS)}")
    if rate is None or not rate > 0:
        raise EventcountError("raw PCM on standard input needs its sample rate: give --rate")
    if channels < 1:
        raise EventcountError(f"--channels must be at least 1, not {channels}")
    code, _ = RAW_FORMATS[sample_format]
    return PcmFormat(float(rate), channels, "float" if code[1] == "f" else "int", int(code[2]))


def read_wav_header(stream: BinaryIO, name: str) -> tuple[PcmFormat, int | None]:
    """Read a RIFF WAVE header up to the start of the samples: (layout, bytes of samples or None if unknown)."""
    riff = _read_exactly(stream, 12)
    if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        shown = "nothing" if not riff else repr(riff[:12])
        raise EventcountError(f"{name}: not a WAV stream (it starts with {shown}); for raw PCM give --rate, "
                              "--channels and --sample-format")
    layout = None
    while True:
        head = _read_exactly(stream, 8)
        if len(head) < 8:
            raise EventcountError(f"{name}: the WAV stream ends before its data chunk")
        chunk, size = head[:4], struct.unpack("<I", head[4:])[0]
        if chunk == b"data":
            if layout is None:
                raise EventcountError(f"{name}: the WAV stream has no 'fmt ' chunk before its data")
            return layout, None if size in UNKNOWN_SIZES else size
        body = _read_exactly(stream, size + (size & 1))
        if len(body) < size:
            raise EventcountError(f"{name}: the WAV stream ends inside its '{chunk.decode('latin-1')}' chunk")
        if chunk == b"fmt ":
            layout = _wav_layout(body[:size], name)


def _wav_layout(fmt: bytes, name: str) -> PcmFormat:
    if len(fmt) < 16:
        raise EventcountError(f"{name}: the WAV 'fmt ' chunk is {len(fmt)} bytes long, less than 16")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # the sub-format GUID starts with the plain format tag
    width = bits // 8
    if channels < 1 or rate < 1 or bits % 8:
        raise EventcountError(f"{name}: a WAV header with {channels} channel(s) at {rate} Hz and {bits} bits "
                              "per sample is not usable")
    if tag == _PCM and width in (1, 2, 3, 4):
        return PcmFormat(float(rate), channels, "uint8" if width == 1 else "int", width)
    if tag == _FLOAT and width in (4, 8):
        return PcmFormat(float(rate), channels, "float", width)
    raise EventcountError(f"{name}: WAV format {tag:#x} with {bits} bits per sample is not supported (use 8-32 "
                          "bit integer or 32/64-bit float PCM)")


def pcm_blocks(stream: BinaryIO, layout: PcmFormat, limit: int | None = None) -> Iterator[np.ndarray]:
    """Blocks of float32 samples [n, channels] as the bytes arrive, up to `limit` bytes (None: to the end)."""
    carry, left = b"", limit
    read = getattr(stream, "read1", stream.read)
    while left is None or left > 0:
        raw = read(READ_BYTES if left is None else min(READ_BYTES, left))
        if not raw:
            return
        if left is not None:
            left -= len(raw)
        raw = carry + raw
        whole = len(raw) - len(raw) % layout.frame_bytes
        carry = raw[whole:]
        if whole:
            yield layout.decode(raw[:whole])


def open_pcm_stream(stream: BinaryIO, name: str, rate: float | None = None, channels: int | None = None,
                    sample_format: str | None = None) -> tuple[PcmFormat, Iterator[np.ndarray]]:
    """A byte stream as (layout, blocks): raw PCM when a sample format is given, else a WAV stream."""
    if sample_format is not None:
        layout = raw_format(rate, channels or 1, sample_format)
        return layout, pcm_blocks(stream, layout)
    layout, size = read_wav_header(stream, name)
    return layout, pcm_blocks(stream, layout, size)


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """`size` bytes, or fewer only at the end of the stream (a pipe may hand them over in pieces)."""
    parts, got = [], 0
    while got < size:
        part = stream.read(size - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)
