"""Forward+backward time of the counting loss: numba kernel vs a naive log-space autograd loop (and the tree).

Run: `python bench/loss_speed.py` (add `--repeats N`). Prints a markdown table of median wall-clock times
after a warm-up. Inputs: logits ~ N(-3, 2^2), counts uniform in 0..cmax (so 1/(cmax+1) of them are the
"cmax or more" label), all frames valid.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per entry (median reported)")
    parser.add_argument("--torch-threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, numba {numba.__version__}, Python {platform.python_version()}")
    print(f"CPUs: {os.cpu_count()} (torch threads {torch.get_num_threads()}, numba threads "
          f"{numba.get_num_threads()}); load average before: {load}\n")
    print(
        "| B*D | T | cmax | counting_loss (ms) | naive log-space loop (ms) | speed-up | tree path on CPU (ms) "
        "| counting_loss CPU time, all threads (ms) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for n_seq, frames, cmax in SIZES:
        logits, counts = inputs(n_seq, frames, cmax)
        with torch.no_grad():  # both compute the same number
            agree = counting_loss(logits, counts, cmax=cmax) / naive_counting_loss(logits, counts, cmax)
        assert abs(agree.item() - 1.0) < 1e-4, agree
        fast, fast_cpu = median_ms(METHODS["numba"], logits, counts, cmax, args.repeats)
        naive, _ = median_ms(METHODS["naive"], logits, counts, cmax, args.repeats)
        rows.append((n_seq, frames, cmax, fast, naive, fast_cpu))
    for n_seq, frames, cmax, fast, naive, fast_cpu in rows:  # the tree last: its large buffers disturb timings
        tree, _ = median_ms(METHODS["tree"], *inputs(n_seq, frames, cmax), cmax, args.repeats)
        print(
            f"| {n_seq} | {frames} | {cmax} | {fast:.1f} | {naive:.1f} | {naive / fast:.0f}x | {tree:.1f} "
            f"| {fast_cpu:.1f} |"
        )
    print(f"\nload average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
