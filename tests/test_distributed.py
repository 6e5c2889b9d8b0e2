"""Training under torchrun: ranks from the environment, each rank's share, and a two-process run that learns as
well as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eventcount.distributed import Ranks, from_environment, local_batch_size, on_main, shard_table
from eventcount.errors import EventcountError
from eventcount.labels import Clip, CountTable
from eventcount.synthetic import make_synthetic_set


def test_ranks_come_from_torchrun_variables() -> None:
    assert from_environment({}) == Ranks(0, 1, 0)
    assert from_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Ranks(3, 4, 1)
    assert not Ranks().active and Ranks(1, 2).active and not Ranks(1, 2).main
    with pytest.raises(EventcountError, match="RANK 4 must be in 0..WORLD_SIZE-1"):
        from_environment({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(EventcountError, match="whole numbers"):
        from_environment({"RANK": "x", "WORLD_SIZE": "2"})


def test_a_global_batch_is_split_over_ranks() -> None:
    assert [local_batch_size(32, Ranks(r, 3)) for r in range(3)] == [11, 11, 10]
    assert local_batch_size(32, Ranks()) == 32
    with pytest.raises(EventcountError, match="batch size 2 is smaller than the number of processes"):
        local_batch_size(2, Ranks(0, 4))


def clips(sizes: dict[str, int]) -> CountTable:
    return CountTable(["a"], [Clip(Path(name), float(i), float(i + 1), [1]) for name, n in sizes.items()
                              for i in range(n)])


def test_each_rank_reads_whole_recordings_and_every_clip_is_read_once() -> None:
    table = clips({"a.wav": 10, "b.wav": 4, "c.wav": 3, "d.wav": 3})
    shards = [shard_table(table, Ranks(r, 2)) for r in range(2)]
    assert sorted(len(s.clips) for s in shards) == [10, 10]
    assert not set(shards[0].recordings()) & set(shards[1].recordings())
    assert sorted((c.path, c.start_s) for s in shards for c in s.clips) == sorted((c.path, c.start_s)
                                                                                 for c in table.clips)
    few = clips({"a.wav": 5})  # fewer recordings than ranks: clips are dealt out instead
    assert [len(shard_table(few, Ranks(r, 2)).clips) for r in range(2)] == [3, 2]
    assert shard_table(table, Ranks()) is table


def test_on_main_in_one_process_just_calls() -> None:
    assert on_main(lambda: 42, Ranks()) == 42


def f_measure(root: Path, model: Path, env: dict[str, str]) -> float:
    cli = [sys.executable, "-m", "eventcount.cli", "-q"]
    subprocess.run([*cli, "detect", root / "test", "-m", model, "-o", root / model.stem], check=True, env=env)
    subprocess.run([*cli, "evaluate", "--reference", root / "test", "--estimate", root / model.stem,
                    "--json", root / f"{model.stem}.json"], check=True, env=env, capture_output=True)
    return json.loads((root / f"{model.stem}.json").read_text())["micro"]["f_measure"]


@pytest.mark.slow
def test_two_processes_learn_as_well_as_one(tmp_path: Path) -> None:
    """The same global batch over one and two gloo processes (torchrun --standalone): the same F1 within noise."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
           "PYTHONFAULTHANDLER": "1"}  # should a rank abort, its Python stack is in the test's output
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    make_synthetic_set(tmp_path / "train", 10, 5.0, seed=1)
    make_synthetic_set(tmp_path / "test", 3, 5.0, seed=2)
    cli = [sys.executable, "-m", "eventcount.cli", "-q"]
    subprocess.run([*cli, "prepare", tmp_path / "train", "-o", tmp_path / "labels.csv"], check=True, env=env)
    args = ["train", "--counts", tmp_path / "labels.csv", "--steps", "150", "--batch-size", "16", "--seed", "0"]
    subprocess.run([*cli, *args, "-o", tmp_path / "one.pt"], check=True, env=env)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "eventcount.cli", "-q"]
    subprocess.run([*torchrun, *args, "-o", tmp_path / "two.pt"], check=True, env=env)
    one, two = f_measure(tmp_path, tmp_path / "one.pt", env), f_measure(tmp_path, tmp_path / "two.pt", env)
    assert one >= 0.8 and abs(two - one) <= 0.1, (one, two)
    payload = torch.load(tmp_path / "two.pt", weights_only=True)
    assert payload["training"]["processes"] == 2 and payload["training"]["history"][-1]["step"] == 150
    assert payload["training"]["data"]["train_clips"] == torch.load(tmp_path / "one.pt", weights_only=True)[
        "training"]["data"]["train_clips"]
    assert not (tmp_path / "two.pt.resume").exists()
