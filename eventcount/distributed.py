"""Multi-process training under torchrun: the process group, each rank's share of clips, rank-0-only work.

torchrun (or `python -m torch.distributed.run`) starts one process per rank and tells it its place through
the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Without those variables training
runs in one process and nothing here does any communication.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from eventcount.errors import EventcountError
from eventcount.labels import CountTable

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place in a run: rank (0 = the one that validates and writes), world size, local rank."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when there are other processes to talk to."""
        return self.world > 1


def from_environment(environ: dict[str, str] | None = None) -> Ranks:
    """The ranks torchrun set (RANK, WORLD_SIZE, LOCAL_RANK); one process when WORLD_SIZE is unset."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return Ranks()
    try:
        ranks = Ranks(int(env.get("RANK", "0")), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")))
    except ValueError:
        raise EventcountError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (they are set by torchrun)") \
            from None
    if ranks.world < 1 or not 0 <= ranks.rank < ranks.world:
        raise EventcountError(f"RANK {ranks.rank} must be in 0..WORLD_SIZE-1 (WORLD_SIZE {ranks.world})")
    return ranks


def rank_device(device: str, ranks: Ranks) -> str:
    """The device this rank trains on: its own GPU (`cuda:LOCAL_RANK`) under torchrun, else `device`."""
    if device == "cuda" and ranks.active:
        return f"cuda:{ranks.local_rank}"
    return device


@contextlib.contextmanager
def process_group(ranks: Ranks, device: str) -> Iterator[None]:
    """Join the run's process group (NCCL on CUDA, gloo on CPU) for the duration, unless one already exists."""
    import torch.distributed as dist

    if not ranks.active or dist.is_initialized():
        yield
        return
    if device.startswith("cuda"):
        torch.cuda.set_device(ranks.local_rank)
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", rank=ranks.rank,
                            world_size=ranks.world)
    try:
        yield
        # leave in step: no rank closes its connections while a peer may still read from them (a gloo rank aborted
        # with "terminate called without an active exception" in one CI run of 2026-12-03; not reproduced since)
        gc.collect()  # no DDP wrapper left holding the group
        with contextlib.suppress(RuntimeError):  # a peer already gone (Ctrl-C): nothing to wait for
            if device.startswith("cuda"):
                dist.barrier()
            else:
                dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def terminate_as_interrupt(ranks: Ranks) -> Iterator[None]:
    """Under torchrun, turn SIGTERM (what the launcher sends its workers on Ctrl-C) into KeyboardInterrupt,
    so an interrupted rank 0 still saves its resume state and a usable model."""
    if not ranks.active:
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def local_batch_size(batch_size: int, ranks: Ranks) -> int:
    """This rank's share of a global batch (the first `batch_size % world` ranks take one more)."""
    if batch_size < ranks.world:
        raise EventcountError(f"batch size {batch_size} is smaller than the number of processes ({ranks.world})")
    return batch_size // ranks.world + (1 if ranks.rank < batch_size % ranks.world else 0)


def shard_table(table: CountTable, ranks: Ranks) -> CountTable:
    """This rank's clips: whole recordings dealt out so ranks hold about as many clips each (largest first),
    or every world-th clip when there are fewer recordings than ranks."""
    if not ranks.active:
        return table
    recordings = table.recordings()
    if len(recordings) < ranks.world:
        return CountTable(table.classes, table.clips[ranks.rank::ranks.world], table.source)
    sizes: dict = {}
    for clip in table.clips:
        sizes[clip.path] = sizes.get(clip.path, 0) + 1
    load = [0] * ranks.world
    owner = {}
    for path in sorted(recordings, key=lambda p: (-sizes[p], recordings.index(p))):
        rank = load.index(min(load))
        owner[path] = rank
        load[rank] += sizes[path]
    return CountTable(table.classes, [c for c in table.clips if owner[c.path] == ranks.rank], table.source)


def on_main(function: Callable[[], T], ranks: Ranks) -> T:
    """Run `function` on rank 0 only and hand its result (or its error message) to every rank."""
    if not ranks.active:
        return function()
    import torch.distributed as dist

    box: list[Any] = [None]
    error: BaseException | None = None
    if ranks.main:
        try:
            box[0] = ("ok", function())
        except Exception as err:  # any failure must reach the waiting ranks, or they wait forever
            error, box[0] = err, ("error", str(err) or type(err).__name__)
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    status, value = box[0]
    if status == "error":
        raise EventcountError(f"rank 0 failed: {value}")
    return value


def wrap(model: torch.nn.Module, ranks: Ranks, device: str) -> torch.nn.Module:
    """The model as DistributedDataParallel when there are several ranks (rank 0's weights win), else as is."""
    if not ranks.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ranks.local_rank] if device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=device_ids)  # the CRNN has no buffers to keep in step
