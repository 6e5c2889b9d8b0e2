"""The Ray engine of `pseudo-label`: the same outputs, manifest and exit code as the local engine; killed workers."""

from __future__ import annotations

import logging
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import require

from eventcount.pseudolabel import pseudo_label
from eventcount.pseudolabel.manifest import MANIFEST_NAME, Manifest
from eventcount.pseudolabel.ray_engine import TEST_EXIT_ON, TEST_EXIT_ONCE
from tests.test_pseudolabel import files, label, make_tar, wav_bytes, wavs

pytestmark = pytest.mark.slow  # a Ray cluster takes seconds to start; CI still runs these
ray = require("ray")  # the `ray` extra: skipped without it, except in CI (EVENTCOUNT_REQUIRE_EXTRAS)


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One small local cluster for the module (label_on_ray uses a cluster that is already initialised)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield
    ray.shutdown()


def manifest_state(outdir: Path) -> dict[str, dict]:
    """Each key's latest entry without its timing; also checks that no key was recorded twice."""
    entries = Manifest.in_dir(outdir).read().entries
    assert len({e.key for e in entries}) == len(entries), "a recording was recorded twice"
    return {e.key: {**asdict(e), "seconds": None} for e in entries}


def sources(tmp_path: Path) -> list[Path]:
    """A folder of three recordings and a tar with two good members, a corrupt one, a too-short one and an
    unsafe name."""
    audio = wavs(tmp_path / "data", 3)
    members = [("a.wav", audio[0].read_bytes()), ("corrupt.wav", b"RIFF\x00\x00\x00\x00WAVEjunkjunk"),
               ("../escape.wav", audio[1].read_bytes()), ("tiny.wav", wav_bytes(10)),
               ("sub/b.wav", audio[2].read_bytes())]
    return [tmp_path / "data", make_tar(tmp_path / "mixed.tar.gz", members)]


def test_ray_engine_gives_the_local_engines_outputs_manifest_and_exit_code(tmp_path: Path, tiny_model: Path) -> None:
    inputs = sources(tmp_path)
    label(*inputs, "-m", tiny_model, "-o", tmp_path / "local", "--jobs", 1, code=1)
    text = label(*inputs, "-m", tiny_model, "-o", tmp_path / "ray", "--engine", "ray", "--jobs", 2, code=1)
    assert "corrupt.wav: cannot read audio" in text and "tiny.wav: too short" in text
    assert files(tmp_path / "ray", (MANIFEST_NAME,)) == files(tmp_path / "local", (MANIFEST_NAME,))
    assert len(files(tmp_path / "ray", (MANIFEST_NAME,))) == 6  # 5 event files and the shard record
    state = manifest_state(tmp_path / "ray")
    assert state == manifest_state(tmp_path / "local")
    assert {k: e["status"] for k, e in state.items() if e["status"] != "ok"} == {
        "mixed.tar.gz/corrupt.wav": "error", "mixed.tar.gz/tiny.wav": "error",
        "mixed.tar.gz/../escape.wav": "skipped"}
    assert not (tmp_path / "escape.wav").exists() and not (tmp_path / "ray" / "escape.events.tsv").exists()
    # resuming on Ray: only what failed is left to do
    again = pseudo_label(inputs, tiny_model, tmp_path / "ray", engine="ray", jobs=2)
    assert (again.to_do, again.already_done) == (2, 5)  # the two that failed are tried again


def test_a_worker_killed_once_loses_nothing(tmp_path: Path, tiny_model: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker labelling clip002 exits abruptly, once: the recording is retried on a fresh worker."""
    wavs(tmp_path / "data", 4)
    assert pseudo_label([tmp_path / "data"], tiny_model, tmp_path / "local", jobs=1).ok == 4
    monkeypatch.setenv(TEST_EXIT_ON, "data/clip002.wav")
    monkeypatch.setenv(TEST_EXIT_ONCE, str(tmp_path / "exited-once"))
    summary = pseudo_label([tmp_path / "data"], tiny_model, tmp_path / "retried", engine="ray", jobs=2)
    assert (tmp_path / "exited-once").exists(), "the worker never exited: the test tested nothing"
    assert (summary.ok, summary.failed) == (4, 0)
    assert files(tmp_path / "retried", (MANIFEST_NAME,)) == files(tmp_path / "local", (MANIFEST_NAME,))
    assert manifest_state(tmp_path / "retried") == manifest_state(tmp_path / "local")


def test_a_recording_that_kills_its_worker_every_time_is_reported(tmp_path: Path, tiny_model: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Reported after one retry, the others labelled; a re-run labels just that one."""
    wavs(tmp_path / "data", 4)
    monkeypatch.setenv(TEST_EXIT_ON, "data/clip002.wav")
    summary = pseudo_label([tmp_path / "data"], tiny_model, tmp_path / "out", engine="ray", jobs=2)
    assert (summary.ok, summary.failed) == (3, 1)
    state = manifest_state(tmp_path / "out")
    assert sorted(state) == [f"data/clip{i:03d}.wav" for i in range(4)]
    assert state["data/clip002.wav"]["status"] == "error" and "died" in state["data/clip002.wav"]["message"]
    monkeypatch.delenv(TEST_EXIT_ON)
    again = pseudo_label([tmp_path / "data"], tiny_model, tmp_path / "out", engine="ray", jobs=2)
    assert (again.to_do, again.ok) == (1, 1)
    assert {e.status for e in Manifest.in_dir(tmp_path / "out").read().latest().values()} == {"ok"}


def test_without_ray_the_message_says_what_to_install(tmp_path: Path, tiny_model: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    wavs(tmp_path / "data", 1)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when Ray is not installed
    text = label(tmp_path / "data", "-m", tiny_model, "-o", tmp_path / "out", "--engine", "ray", code=1)
    assert 'pip install "eventcount[ray]"' in text
    assert not (tmp_path / "out").exists()
