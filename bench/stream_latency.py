"""How long after a hit `eventcount detect -` prints it, when audio arrives through a pipe in real time.

    python bench/stream_latency.py [--seconds 60] [--block 10ms] [--rate 44100] [-m drums]

A writer sends a WAV stream of unknown length (sizes 0xFFFFFFFF, as `sox ... -t wav -` writes) to
`eventcount detect -` on its standard input, one block at a time at real-time pace, and notes the wall time
each block was written; a reader thread notes the wall time each event line appears on standard output. Per
event, the delay is from the write of the block holding the hit's true onset (the generated recording's
timestamp nearest the printed time, within 50 ms; else the printed time) to its line. The recording is
generated (`eventcount.synthetic`: three kinds of drum-like hits). Before it the writer waits until the
detector has loaded and read a first block, then sends 2 s of silence to warm it up. CPU use is the detector
process's user + system time while the recording streamed, divided by the recording's duration.
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

from eventcount.stream import EventStream  # noqa: F401  (fail early if the package is missing)
from eventcount.synthetic import synthetic_recording
from eventcount.units import parse_duration

PREROLL_S = 2.0


def wav_header(rate: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return b"RIFF\xff\xff\xff\xffWAVEfmt " + struct.pack("<I", 16) + fmt + b"data\xff\xff\xff\xff"


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pending_bytes(fd: int) -> int:
    """Bytes written to the pipe and not yet read by the detector."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--block", default="10ms")
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("-m", "--model", default="drums")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    block = max(1, round(parse_duration(args.block, "--block") * args.rate))
    audio, reference = synthetic_recording(args.seconds, args.rate, seed=11, rate_hz=3.0)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    onsets = np.array([e.time_s for e in reference])

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "eventcount", "detect", "-", "-m", args.model],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0)
    printed: list[tuple[float, str]] = []

    def read_lines() -> None:
        for line in child.stdout:
            printed.append((time.monotonic(), line.decode().rstrip("\n")))

    reader = threading.Thread(target=read_lines, daemon=True)
    reader.start()
    fd = child.stdin.fileno()
    os.write(fd, wav_header(args.rate) + bytes(2 * block))
    while pending_bytes(fd):  # the detector loads torch and the model, then reads
        time.sleep(0.01)
    silence = np.zeros(int(PREROLL_S * args.rate), "<i2")
    stream = np.concatenate([silence, pcm])
    offset = block  # samples sent before the pre-roll
    written = []
    start = time.monotonic()
    cpu_start = None
    for i in range(0, len(stream), block):
        if i >= len(silence) and cpu_start is None:
            cpu_start = cpu_seconds(child.pid)
        time.sleep(max(0.0, start + i / args.rate - time.monotonic()))
        os.write(fd, stream[i:i + block].tobytes())
        written.append(time.monotonic())
    cpu_used = cpu_seconds(child.pid) - cpu_start
    child.stdin.close()
    child.wait()
    reader.join()

    delays, matched = [], 0
    for when, line in printed:
        if line.startswith("#"):
            continue
        time_s = float(line.split("\t")[0])
        heard = time_s - (offset + len(silence)) / args.rate
        if heard < 0:
            continue
        nearest = onsets[np.argmin(np.abs(onsets - heard))] if onsets.size else heard
        if abs(nearest - heard) <= 0.05:
            heard, matched = nearest, matched + 1
        block_index = int((heard * args.rate + len(silence)) // block)
        delays.append(when - written[min(block_index, len(written) - 1)])
    delays_ms = sorted(1000 * d for d in delays)
    figures = {
        "model": args.model, "rate_hz": args.rate, "block_ms": 1000 * block / args.rate, "seconds": args.seconds,
        "events": len(delays), "matched_to_onsets": matched,
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
