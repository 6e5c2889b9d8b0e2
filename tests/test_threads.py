"""The thread policy: worker processes only where the audio pays for starting them, threads otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from eventcount import threads
from eventcount.recordings import duration_hint
from eventcount.threads import WORKER_AUDIO_S, Plan, plan


@pytest.fixture
def two_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "idle_cores", lambda sample_s=threads.SAMPLE_S: 2.0)


def test_given_values_win(two_idle_cores: None) -> None:
    assert plan(8, threads=3, jobs=4) == Plan(jobs=4, threads=3)
    assert plan(8, threads=3) == Plan(jobs=1, threads=3)
    assert plan(8, jobs=2, durations_s=[1.0] * 8) == Plan(jobs=2, threads=1)


def test_little_audio_runs_in_one_process_with_the_idle_cores_as_threads(two_idle_cores: None) -> None:
    assert plan(4, durations_s=[30.0] * 4) == Plan(jobs=1, threads=2)


def test_enough_audio_gets_one_worker_per_idle_core(two_idle_cores: None) -> None:
    assert plan(4, durations_s=[WORKER_AUDIO_S / 2] * 4) == Plan(jobs=2, threads=1)
    assert plan(1, durations_s=[10 * WORKER_AUDIO_S]) == Plan(jobs=1, threads=2)  # one file: one process


def test_unknown_lengths_each_pay_for_a_worker(two_idle_cores: None) -> None:
    assert plan(3, durations_s=[None, 1.0, 1.0]) == Plan(jobs=1, threads=2)
    assert plan(3, durations_s=[None, None, 1.0]) == Plan(jobs=2, threads=1)
    assert plan(3) == Plan(jobs=2, threads=1)


def test_durations_are_read_only_until_the_workers_are_paid_for(two_idle_cores: None) -> None:
    read = []

    def durations():
        for index in range(1000):
            read.append(index)
            yield WORKER_AUDIO_S

    assert plan(1000, durations_s=durations()) == Plan(jobs=2, threads=1)
    assert len(read) == 2


def test_duration_hint(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", np.zeros(16000 * 3, dtype=np.float32), 16000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF nonsense")
    (tmp_path / "steps.csv").write_text("time,x\n0,1\n")
    assert duration_hint(tmp_path / "a.wav") == pytest.approx(3.0)
    assert duration_hint(tmp_path / "broken.wav") is None
    assert duration_hint(tmp_path / "steps.csv") is None
