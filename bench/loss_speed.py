"""Forward+backward time of the counting loss: numba kernel vs a naive log-space autograd loop (and the tree).

Run: `python bench/loss_speed.py` (add `--repeats N`, `--torch-threads N`). Prints a markdown table of
median wall-clock times after a warm-up; each entry is measured in a fresh process. Inputs: logits ~ N(-3, 2^2),
counts uniform in 0..cmax (so 1/(cmax+1) of them are the "cmax or more" label), all frames valid.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numba
import torch
import torch.nn.functional as F

from eventcount.counting import counting_loss

SIZES = [(32, 150, 30), (2816, 400, 42), (32, 1500, 100)]  # (B*D, T, cmax)
CLASSES = {32: 8, 2816: 11}  # D for each B*D, so B = B*D / D


def naive_counting_loss(logits: torch.Tensor, counts: torch.Tensor, cmax: int) -> torch.Tensor:
    """Reference: the frame-by-frame recursion in log space with autograd, ~7 small ops per frame.

    logits [B, T, D], counts [B, D] <= cmax (cmax = "cmax or more"); returns the mean -log Pr.
    """
    log_p, log_q = F.logsigmoid(logits), F.logsigmoid(-logits)
    dist = torch.full((*counts.shape, cmax + 1), -1.0e30, dtype=logits.dtype)
    dist[..., 0] = 0.0
    for lp, lq in zip(log_p.unbind(1), log_q.unbind(1), strict=True):
        moved = dist[..., :-1] + lp.unsqueeze(-1)
        stayed = dist[..., :-1] + lq.unsqueeze(-1)
        body = torch.logaddexp(stayed[..., 1:], moved[..., :-1])
        tail = torch.logaddexp(dist[..., -1:], moved[..., -1:])  # the last bin absorbs
        dist = torch.cat([stayed[..., :1], body, tail], dim=-1)
    return -dist.gather(-1, counts.unsqueeze(-1)).mean()


LossFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
METHODS: dict[str, LossFn] = {
    "numba": lambda x, counts, cmax: counting_loss(x, counts, cmax=cmax, backend="numba"),
    "naive": naive_counting_loss,
    "tree": lambda x, counts, cmax: counting_loss(x, counts, cmax=cmax, backend="tree"),
}


def median_ms(
    loss_fn: LossFn, logits: torch.Tensor, counts: torch.Tensor, cmax: int, repeats: int
) -> tuple[float, float]:
    """Median wall-clock and process-CPU milliseconds of forward+backward over `repeats` runs after a warm-up.

    CPU time counts all threads; on an otherwise idle machine wall ~ CPU / threads for the numba kernel.
    """
    wall, cpu = [], []
    for run in range(repeats + 1):
        x = logits.detach().requires_grad_(True)
        start, start_cpu = time.perf_counter(), time.process_time()
        loss_fn(x, counts, cmax).backward()
        if run:
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def inputs(n_seq: int, frames: int, cmax: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    classes = CLASSES[n_seq]
    logits = torch.randn(n_seq // classes, frames, classes, generator=gen) * 2.0 - 3.0
    counts = torch.randint(0, cmax + 1, (n_seq // classes, classes), generator=gen)
    return logits, counts


def measure_in_subprocess(method: str, size: int, repeats: int, torch_threads: int) -> tuple[float, float]:
    """(wall, CPU) medians from a fresh interpreter, so that one measurement's memory and thread-pool state
    (e.g. the naive loop's 1 GB autograd graph) cannot slow down the next."""
    command = [sys.executable, __file__, "--measure", method, str(size), "--repeats", str(repeats)]
    command += ["--torch-threads", str(torch_threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    wall, cpu = json.loads(result.stdout.strip().splitlines()[-1])
    return wall, cpu


def measure(method: str, size: int, repeats: int) -> None:
    """Print [wall, cpu] (ms) of one method at SIZES[size] as JSON; checks it agrees with the naive loop."""
    n_seq, frames, cmax = SIZES[size]
    logits, counts = inputs(n_seq, frames, cmax)
    if method != "naive":
        with torch.no_grad():
            agree = METHODS[method](logits, counts, cmax) / naive_counting_loss(logits, counts, cmax)
        assert abs(agree.item() - 1.0) < 1e-4, agree
    print(json.dumps(median_ms(METHODS[method], logits, counts, cmax, repeats)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per entry (median reported)")
    parser.add_argument(
        "--torch-threads", type=int, default=1,
        help="torch intra-op threads for the naive loop and the tree (0: torch's default). Default 1: on a busy "
        "machine torch's OpenMP workers stall on each of the many small ops (40x slower here with 2 threads)",
    )
    parser.add_argument("--measure", nargs=2, metavar=("METHOD", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.measure:
        measure(args.measure[0], int(args.measure[1]), args.repeats)
        return
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, numba {numba.__version__}, Python {platform.python_version()}")
    print(f"CPUs: {os.cpu_count()} (torch threads {torch.get_num_threads()}, numba threads "
          f"{numba.get_num_threads()}); load average before: {load}; each entry in a fresh process\n")
    print(
        "| B*D | T | cmax | counting_loss (ms) | naive log-space loop (ms) | speed-up | tree path on CPU (ms) "
        "| counting_loss CPU time, all threads (ms) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, (n_seq, frames, cmax) in enumerate(SIZES):
        ms = {name: measure_in_subprocess(name, size, args.repeats, args.torch_threads) for name in METHODS}
        (fast, fast_cpu), naive, tree = ms["numba"], ms["naive"][0], ms["tree"][0]
        print(
            f"| {n_seq} | {frames} | {cmax} | {fast:.1f} | {naive:.1f} | {naive / fast:.0f}x | {tree:.1f} "
            f"| {fast_cpu:.1f} |"
        )
    step_ms = crnn_step_ms(args.repeats)
    print(f"\nFor context: one training step of the default CRNN (forward + backward + AdamW) on 32 sequences x "
          f"400 frames x 88 classes (B*D = 2816) with the counting loss: {step_ms:.0f} ms")
    print(f"load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


def crnn_step_ms(repeats: int) -> float:
    """Median wall time of one CRNN training step at B=32, T=400, D=88 (the middle size), in ms."""
    from eventcount.config import NetworkConfig
    from eventcount.counting import counting_loss
    from eventcount.network import CRNN

    torch.manual_seed(0)
    model = CRNN(48, 88, NetworkConfig())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    features = torch.randn(32, 2, 400, 48)
    counts = torch.randint(0, 42, (32, 88))
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        logits, _ = model(features)
        loss = counting_loss(logits, counts, cmax=42)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[1:])


if __name__ == "__main__":
    main()
