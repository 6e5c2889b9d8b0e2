"""The one thread policy: how many worker processes and torch/numba threads a command uses on this machine.

A small recurrent network is latency-bound: intra-op threads help only while cores are free, and collapse when
other programs hold them (measured 2026-12-03 on 2 cores: `detect` 1.1x slower with two threads than with one
beside one busy process, up to 10x beside two). So the default is measured, not fixed: as many threads (or worker
processes, for several files) as there are idle cores right now, at least one; `--threads` / `--jobs` override.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

SAMPLE_S = 0.05
WORKER_AUDIO_S = 600.0
"""Audio one more worker process must get to pay for itself: starting one (spawn, import torch, load the model)
takes ~2 s, what one thread spends detecting several minutes of audio. Measured 2026-12-03 on 2 cores
(`bench/threads.py`, BENCHMARKS.md), after detection got faster (the GRU in chunks): six 150 s files 8.6-8.9 s
in one process against 9.9-10.5 s in two workers idle; eight 300 s files 15.3 s and 15.2 s idle, 17.0 s and 19.8 s
beside a busy process. So 15 minutes do not pay for a second worker and 40 minutes just do."""


@dataclass(frozen=True)
class Plan:
    """Worker processes, and torch/numba threads in each."""

    jobs: int
    threads: int


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def idle_cores(sample_s: float = SAMPLE_S) -> float:
    """Cores not busy right now: the idle share of CPU time over a short sample (/proc/stat), else the load
    average, times the number of cores."""
    cores = cpu_count()
    try:
        before = _cpu_times()
        time.sleep(sample_s)
        after = _cpu_times()
    except OSError:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return max(0.0, cores - load)
    total = sum(after) - sum(before)
    idle = (after[3] + after[4]) - (before[3] + before[4])  # idle + iowait
    return cores * idle / total if total > 0 else float(cores)


def _cpu_times() -> list[int]:
    with open("/proc/stat") as handle:
        return [int(x) for x in handle.readline().split()[1:]]


def plan(items: int = 1, threads: int | None = None, jobs: int | None = None,
         durations_s: Iterable[float | None] | None = None) -> Plan:
    """Processes and threads for `items` independent pieces of work (files) lasting `durations_s` (None: unknown).

    Given values win. Otherwise the idle cores go to worker processes when there are several items with enough
    audio to pay for starting them (one thread each: parallel files scale better than intra-op threads), else to
    threads of this process.
    """
    free = max(1, int(idle_cores() + 0.5)) if threads is None or jobs is None else 1
    if jobs is None:
        jobs = max(1, min(items, _workers_paid_for(durations_s, free))) if threads is None else 1
    if threads is None:
        threads = free if jobs == 1 else 1
    return Plan(jobs=jobs, threads=threads)


def _workers_paid_for(durations_s: Iterable[float | None] | None, most: int) -> int:
    """Worker processes the recordings' audio pays for (`WORKER_AUDIO_S` each), at most `most`; a recording of
    unknown length pays for one. Stops reading `durations_s` once `most` are paid for (it may be lazy)."""
    if durations_s is None:
        return most
    total = 0.0
    for seconds in durations_s:
        total += WORKER_AUDIO_S if seconds is None else seconds
        if total >= most * WORKER_AUDIO_S:
            return most
    return max(1, int(total // WORKER_AUDIO_S))


def set_threads(threads: int) -> None:
    """Use `threads` threads for torch's and numba's parallel work in this process."""
    import torch

    torch.set_num_threads(threads)
    if "numba" not in sys.modules:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)  # read by numba at import; never changed after it
        return
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
