"""How long after an event `eventcount detect -` prints it, when the recording arrives through a pipe in real time.

    python bench/stream_latency.py [--seconds 60] [--block 10ms] [--rate 44100] [-m drums | -m steps]

A writer sends a recording to `eventcount detect -` on its standard input at real-time pace and notes the
wall time each piece was written; a reader thread notes the wall time each event line appears on standard
output. Per event, the delay is from the write of the piece holding the true event time (the generated
recording's event nearest the printed time, within the tolerance; else the printed time) to its line; a
model that times events late on this signal (`mean_time_error_ms`, printed minus true time) also decides late.
- audio models (`drums`): a generated drum-like recording (`eventcount.synthetic`, three kinds of hits) as a
  WAV stream of unknown length (sizes 0xFFFFFFFF, as `sox ... -t wav -` writes), in `--block` pieces;
- sensor models (`steps`): a generated accelerometer walk (irregular ~100 Hz nanosecond timestamps, a step
  every 0.55 s as a bump of the vertical axis) as CSV lines, each row written at its own timestamp.
Before the recording the writer waits until the detector has loaded and read a first piece, then sends 2 s of
quiet to warm it up. CPU use is the detector process's user + system time while the recording streamed,
divided by the recording's duration.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time

import numpy as np

from eventcount.synthetic import synthetic_recording
from eventcount.units import parse_duration

PREROLL_S = 2.0


def wav_header(rate: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return b"RIFF\xff\xff\xff\xffWAVEfmt " + struct.pack("<I", 16) + fmt + b"data\xff\xff\xff\xff"


def audio_pieces(seconds: float, rate: int, block_s: float) -> tuple[bytes, list[tuple[float, bytes]], np.ndarray]:
    """(bytes to send first, [(stream time s, bytes)], event times in stream time) for a drum-like recording."""
    block = max(1, round(block_s * rate))
    audio, reference = synthetic_recording(seconds, rate, seed=11, rate_hz=3.0)
    lead = block + int(PREROLL_S * rate)
    pcm = np.concatenate([np.zeros(lead, "<i2"), (np.clip(audio, -1, 1) * 32767).astype("<i2")])
    pieces = [(i / rate, pcm[i:i + block].tobytes()) for i in range(block, len(pcm), block)]
    return wav_header(rate) + pcm[:block].tobytes(), pieces, np.array([e.time_s for e in reference]) + lead / rate


def walk_pieces(seconds: float) -> tuple[bytes, list[tuple[float, bytes]], np.ndarray]:
    """The same for an accelerometer walk as CSV rows (time in ns, index, x, y, z)."""
    rng = np.random.default_rng(11)
    times = np.cumsum(rng.uniform(0.008, 0.012, int((seconds + PREROLL_S + 1) * 100)))
    times -= times[0]
    steps = np.arange(PREROLL_S + 1.0, times[-1] - 0.3, 0.55)
    bumps = sum(np.exp(-((times - s) / 0.05) ** 2) for s in steps)
    xyz = 0.3 * rng.standard_normal((len(times), 3)) + np.stack([0 * times, 0 * times, 9.8 + 6 * bumps], axis=1)
    rows = [f"{1_700_000_000_000_000_000 + int(t * 1e9)},{i},{x:.5f},{y:.5f},{z:.5f}\n".encode()
            for i, (t, (x, y, z)) in enumerate(zip(times, xyz, strict=True))]
    first = b"ts,idx,x,y,z\n" + b"".join(rows[:25])
    return first, [(float(t), row) for t, row in zip(times[25:], rows[25:], strict=True)], steps


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pending_bytes(fd: int) -> int:
    """Bytes written to the pipe and not yet read by the detector."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def stream_through(model: str, first: bytes, pieces: list[tuple[float, bytes]], warm_s: float
                   ) -> tuple[list[tuple[float, str]], np.ndarray, np.ndarray, float]:
    """Send the pieces at real-time pace; returns (printed lines with wall times, piece stream times, their
    write times, detector CPU seconds from `warm_s` of stream time on)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "eventcount", "detect", "-", "-m", model],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0)
    printed: list[tuple[float, str]] = []

    def read_lines() -> None:
        for line in child.stdout:
            printed.append((time.monotonic(), line.decode().rstrip("\n")))

    reader = threading.Thread(target=read_lines, daemon=True)
    reader.start()
    fd = child.stdin.fileno()
    os.write(fd, first)
    while pending_bytes(fd):  # the detector loads torch and the model, then reads
        time.sleep(0.01)
    origin = time.monotonic() - pieces[0][0]
    written, cpu_start = [], None
    for at, data in pieces:
        if cpu_start is None and at >= warm_s:
            cpu_start = cpu_seconds(child.pid)
        time.sleep(max(0.0, origin + at - time.monotonic()))
        os.write(fd, data)
        written.append(time.monotonic())
    cpu_used = cpu_seconds(child.pid) - cpu_start
    child.stdin.close()
    child.wait()
    reader.join()
    return printed, np.array([at for at, _ in pieces]), np.array(written), cpu_used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--block", default="10ms", help="audio: the piece size")
    parser.add_argument("--rate", type=int, default=44100, help="audio: the sample rate")
    parser.add_argument("-m", "--model", default="drums", help="drums (audio) or steps (accelerometer CSV)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.model == "steps":
        (first, pieces, onsets), tolerance, warm_s = walk_pieces(args.seconds), 0.15, PREROLL_S
    else:
        block_s = parse_duration(args.block, "--block")
        (first, pieces, onsets), tolerance = audio_pieces(args.seconds, args.rate, block_s), 0.05
        warm_s = onsets.min() if onsets.size else PREROLL_S
    printed, starts, written, cpu_used = stream_through(args.model, first, pieces, warm_s)

    delays, offsets, matched = [], [], 0
    for when, line in printed:
        if line.startswith("#"):
            continue
        heard = float(line.split("\t")[0])
        nearest = onsets[np.argmin(np.abs(onsets - heard))] if onsets.size else heard
        if abs(nearest - heard) <= tolerance:
            offsets.append(heard - nearest)
            heard, matched = nearest, matched + 1
        if heard < warm_s:
            continue
        piece = max(0, int(np.searchsorted(starts, heard, side="right")) - 1)
        delays.append(when - written[piece])
    delays_ms = sorted(1000 * d for d in delays)
    figures = {
        "model": args.model, "rate_hz": None if args.model == "steps" else args.rate,
        "block_ms": None if args.model == "steps" else 1000 * parse_duration(args.block, "--block"),
        "seconds": args.seconds, "events": len(delays), "matched_to_true_events": matched,
        "mean_time_error_ms": round(1000 * float(np.mean(offsets)), 1) if offsets else None,
        "median_ms": round(statistics.median(delays_ms), 1),
        "p95_ms": round(delays_ms[min(len(delays_ms) - 1, int(0.95 * len(delays_ms)))], 1),
        "max_ms": round(delays_ms[-1], 1), "cpu_share": round(cpu_used / args.seconds, 3),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(figures, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=1)


if __name__ == "__main__":
    main()
