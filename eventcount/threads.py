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
from dataclasses import dataclass

SAMPLE_S = 0.05


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


def plan(items: int = 1, threads: int | None = None, jobs: int | None = None) -> Plan:
    """Processes and threads for `items` independent pieces of work (files).

    Given values win. Otherwise the idle cores go to worker processes when there are several items (one thread
    each: parallel files scale better than intra-op threads), else to threads of this process.
    """
    free = max(1, int(idle_cores() + 0.5)) if threads is None or jobs is None else 1
    if jobs is None:
        jobs = max(1, min(items, free)) if threads is None else 1
    if threads is None:
        threads = free if jobs == 1 else 1
    return Plan(jobs=jobs, threads=threads)


def set_threads(threads: int) -> None:
    """Use `threads` threads for torch's and numba's parallel work in this process."""
    import torch

    torch.set_num_threads(threads)
    if "numba" not in sys.modules:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)  # read by numba at import; never changed after it
        return
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
