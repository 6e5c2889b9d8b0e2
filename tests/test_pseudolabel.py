"""Batch pseudo-labelling: sources mirrored, bad members reported, nothing outside OUTDIR, resume, shards, jobs."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from eventcount.annotations import read_events
from eventcount.cli import app
from eventcount.dataset import load_events
from eventcount.pseudolabel import pseudo_label
from eventcount.pseudolabel.manifest import MANIFEST_NAME, Manifest
from eventcount.recordings import event_file_for
from eventcount.synthetic import make_synthetic_set
from eventcount.units import parse_size

runner = CliRunner()
CLI = [sys.executable, "-c", "from eventcount.cli import app; app()"]


def invoke(*args: object, code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


def label(*args: object, code: int = 0) -> str:
    return invoke("pseudo-label", *args, code=code)


def make_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def wavs(folder: Path, n: int, duration_s: float = 1.0, seed: int = 0) -> list[Path]:
    """n small wav files (their .events.tsv companions removed: they are not recordings)."""
    paths = make_synthetic_set(folder, n, duration_s, seed=seed)
    for path in folder.glob("*.events.tsv"):
        path.unlink()
    return paths


def wav_bytes(n_samples: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(n_samples, np.float32), 16000, format="WAV")
    return buffer.getvalue()


def files(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under root (hidden ones included) by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in skip}


def latest(outdir: Path) -> dict:
    return Manifest.in_dir(outdir).read().latest()


EVENT_FILES = (MANIFEST_NAME, "shard-0-of-1.json")


def test_folder_tar_and_zip_are_mirrored_under_outdir(tmp_path: Path, tiny_model: Path) -> None:
    a, b = wavs(tmp_path / "data", 2)
    (tmp_path / "data" / "sub").mkdir()
    shutil.copy(b, tmp_path / "data" / "sub" / "b.wav")
    make_tar(tmp_path / "songs.tar.gz", [("disc1/a.wav", a.read_bytes()), ("b.wav", b.read_bytes())])
    make_zip(tmp_path / "more.zip", [("x/a.wav", a.read_bytes())])
    out = tmp_path / "out"
    label(tmp_path / "data", tmp_path / "songs.tar.gz", tmp_path / "more.zip", "-m", tiny_model, "-o", out,
          "--jobs", 1)
    outputs = files(out, EVENT_FILES)
    assert sorted(outputs) == ["data/clip000.events.tsv", "data/clip001.events.tsv", "data/sub/b.events.tsv",
                               "more.zip/x/a.events.tsv", "songs.tar.gz/b.events.tsv",
                               "songs.tar.gz/disc1/a.events.tsv"]
    # the same recording gives the same events whether it is a file or an archive member
    assert outputs["data/clip000.events.tsv"] == outputs["songs.tar.gz/disc1/a.events.tsv"]
    assert outputs["data/clip000.events.tsv"] == outputs["more.zip/x/a.events.tsv"]
    entries = latest(out)
    assert len(entries) == 6 and all(e.status == "ok" for e in entries.values())
    tar_entry = entries["songs.tar.gz/disc1/a.wav"]
    assert tar_entry.member == "disc1/a.wav" and tar_entry.source == str(tmp_path / "songs.tar.gz")
    assert tar_entry.duration_s == pytest.approx(1.0) and tar_entry.model == "tiny"
    events = read_events(out / tar_entry.output)
    assert sum(tar_entry.events.values()) == len(events) > 0


def test_bad_members_are_reported_and_the_run_carries_on(tmp_path: Path, tiny_model: Path) -> None:
    good = wavs(tmp_path / "data", 2)
    members = [("good0.wav", good[0].read_bytes()), ("corrupt.wav", b"RIFF\x00\x00\x00\x00WAVEjunkjunk"),
               ("empty.wav", b""), ("no_samples.wav", wav_bytes(0)), ("tiny.wav", wav_bytes(10)),
               ("notaudio.flac", b"this is text, not FLAC " * 20), ("good1.wav", good[1].read_bytes())]
    out = tmp_path / "out"
    text = label(make_tar(tmp_path / "mixed.tar.gz", members), "-m", tiny_model, "-o", out, "--jobs", 1, code=1)
    for needle in ("corrupt.wav: cannot read audio", "empty.wav: cannot read audio", "notaudio.flac: cannot read",
                   "no_samples.wav: the recording contains no samples", "tiny.wav: too short"):
        assert needle in text
    entries = latest(out)
    assert {k: e.status for k, e in entries.items()} == {
        "mixed.tar.gz/good0.wav": "ok", "mixed.tar.gz/corrupt.wav": "error", "mixed.tar.gz/empty.wav": "error",
        "mixed.tar.gz/no_samples.wav": "error", "mixed.tar.gz/tiny.wav": "error",
        "mixed.tar.gz/notaudio.flac": "error", "mixed.tar.gz/good1.wav": "ok"}
    assert all(e.message and e.output is None for e in entries.values() if e.status == "error")
    assert sorted(files(out, EVENT_FILES)) == ["mixed.tar.gz/good0.events.tsv", "mixed.tar.gz/good1.events.tsv"]
    # a member larger than --max-size is refused, not read
    label(tmp_path / "mixed.tar.gz", "-m", tiny_model, "-o", tmp_path / "small", "--jobs", 1, "--glob", "good*",
          "--max-size", "1KB", code=1)
    assert all("limit" in e.message for e in latest(tmp_path / "small").values())


def test_unsafe_members_and_links_never_write_outside_outdir(tmp_path: Path, tiny_model: Path) -> None:
    audio = wavs(tmp_path / "data", 1)[0].read_bytes()
    archive = make_tar(tmp_path / "evil.tar", [("../../escape.wav", audio), ("/tmp/abs.wav", audio),
                                                ("ok.wav", audio)])
    with tarfile.open(archive, "a") as handle:
        link = tarfile.TarInfo("link.wav")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        handle.addfile(link)
    make_zip(tmp_path / "evil.zip", [("../up.wav", audio), ("dir/../../up2.wav", audio), ("fine.wav", audio)])
    out = tmp_path / "out"
    before = {p for p in tmp_path.rglob("*") if p != out and out not in p.parents}
    label(archive, tmp_path / "evil.zip", "-m", tiny_model, "-o", out, "--jobs", 1)
    assert {p for p in tmp_path.rglob("*") if p != out and out not in p.parents} == before
    statuses = {k: e.status for k, e in latest(out).items()}
    assert statuses == {"evil.tar/../../escape.wav": "skipped", "evil.tar//tmp/abs.wav": "skipped",
                        "evil.tar/ok.wav": "ok", "evil.tar/link.wav": "skipped", "evil.zip/../up.wav": "skipped",
                        "evil.zip/dir/../../up2.wav": "skipped", "evil.zip/fine.wav": "ok"}
    assert all(out in p.resolve().parents for p in out.rglob("*.tsv"))


def test_links_planted_in_outdir_are_not_followed(tmp_path: Path, tiny_model: Path) -> None:
    wavs(tmp_path / "data", 1)
    wavs(tmp_path / "more", 1)
    (tmp_path / "elsewhere").mkdir()
    stale = tmp_path / "elsewhere" / ".clip000.events.tsv.abcd1234.tmp"
    stale.write_text("not ours")
    (tmp_path / "out" / "more").mkdir(parents=True)
    (tmp_path / "out" / "data").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "out" / "more" / "clip000.events.tsv").symlink_to(tmp_path / "target.tsv")
    text = label(tmp_path / "data", tmp_path / "more", "-m", tiny_model, "-o", tmp_path / "out", "--jobs", 1,
                 code=1)
    assert "outside" in text
    assert [p.name for p in (tmp_path / "elsewhere").iterdir()] == [stale.name]
    assert not (tmp_path / "target.tsv").exists()
    assert {e.status for e in latest(tmp_path / "out").values()} == {"error"}


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path: Path, tiny_model: Path) -> None:
    wavs(tmp_path / "data", 30, duration_s=2.0)
    args = [tmp_path / "data", "-m", tiny_model, "--jobs", 1]
    label(*args, "-o", tmp_path / "reference")
    killed = tmp_path / "killed"
    process = subprocess.Popen([*CLI, "pseudo-label", *map(str, args), "-o", str(killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest, deadline = killed / MANIFEST_NAME, time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if manifest.exists() and manifest.read_bytes().count(b"\n") >= 10:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert len(Manifest(manifest).read().entries) < 30, "the run finished before it could be killed"
    label(*args, "-o", killed)
    assert files(killed, EVENT_FILES) == files(tmp_path / "reference", EVENT_FILES)
    contents = Manifest(manifest).read()
    assert not contents.warnings or all("incomplete last line" in w for w in contents.warnings)
    state = contents.latest()
    assert sorted(state) == sorted(f"data/clip{i:03d}.wav" for i in range(30))
    assert all(entry.status == "ok" for entry in state.values())
    # done keys survive: a third run labels nothing
    assert pseudo_label([tmp_path / "data"], tiny_model, killed, jobs=1).to_do == 0


def test_shards_partition_the_outputs_and_merge_finds_nothing_missing(tmp_path: Path, tiny_model: Path) -> None:
    wavs(tmp_path / "data", 8)
    make_tar(tmp_path / "songs.tar.gz", [(f"m{i}.wav", p.read_bytes())
                                         for i, p in enumerate(sorted((tmp_path / "data").glob("*.wav"))[:4])])
    sources = [tmp_path / "data", tmp_path / "songs.tar.gz"]
    label(*sources, "-m", tiny_model, "-o", tmp_path / "whole", "--jobs", 1)
    shards = [tmp_path / f"s{i}" for i in range(3)]
    for index, outdir in enumerate(shards):
        label(*sources, "-m", tiny_model, "-o", outdir, "--jobs", 1, "--shard", f"{index}/3")
    parts = [files(outdir, (MANIFEST_NAME, f"shard-{i}-of-3.json")) for i, outdir in enumerate(shards)]
    assert sum(len(part) for part in parts) == 12
    assert {k: v for part in parts for k, v in part.items()} == files(tmp_path / "whole", EVENT_FILES)
    text = label("--merge", *shards, "-o", tmp_path / "merged")
    assert "missing │ 0" in text and "done in several shards │ 0" in text and "ok │ 12" in text
    merged = Manifest(tmp_path / "merged" / MANIFEST_NAME).read()
    assert len(merged.entries) == 12 and len(merged.done_keys()) == 12
    text = label("--merge", shards[0], shards[2], "-o", tmp_path / "partial.jsonl", code=1)
    assert "missing shard: 1/3" in text


def test_two_jobs_give_the_same_outputs_as_one(tmp_path: Path, tiny_model: Path) -> None:
    audio = wavs(tmp_path / "data", 3)
    make_zip(tmp_path / "z.zip", [(p.name, p.read_bytes()) for p in audio])
    sources = [tmp_path / "data", tmp_path / "z.zip"]
    label(*sources, "-m", tiny_model, "-o", tmp_path / "one", "--jobs", 1)
    label(*sources, "-m", tiny_model, "-o", tmp_path / "two", "--jobs", 2)
    assert files(tmp_path / "two", EVENT_FILES) == files(tmp_path / "one", EVENT_FILES)
    assert len(files(tmp_path / "one", EVENT_FILES)) == 6
    assert sorted(latest(tmp_path / "two")) == sorted(latest(tmp_path / "one"))


def test_resume_skips_done_work_and_redoes_what_changed(tmp_path: Path, tiny_model: Path) -> None:
    wavs(tmp_path / "data", 3)
    out = tmp_path / "out"
    assert pseudo_label([tmp_path / "data"], tiny_model, out, jobs=1).ok == 3
    stale = out / "data" / ".clip000.events.tsv.abcd_123.tmp"  # what a killed atomic write leaves
    stale.write_text("half")
    (out / "data" / "clip001.events.tsv").unlink()
    again = pseudo_label([tmp_path / "data"], tiny_model, out, jobs=1)
    assert (again.already_done, again.ok) == (2, 1)
    assert pseudo_label([tmp_path / "data"], tiny_model, out, jobs=1, overwrite=True).ok == 3
    csv = pseudo_label([tmp_path / "data"], tiny_model, out, jobs=1, fmt="csv", min_confidence=0.99)
    assert csv.ok == 3  # another format is not done yet
    assert not stale.exists()
    for path in (out / "data").glob("*.events.csv"):
        assert all(e.confidence >= 0.99 for e in read_events(path))


@pytest.fixture
def pseudo_labelled(tmp_path: Path, tiny_model: Path) -> tuple[Path, Path]:
    """A folder of recordings and the folder of their pseudo-labels (OUTDIR/<folder name>)."""
    wavs(tmp_path / "data", 3, duration_s=2.0)
    label(tmp_path / "data", "-m", tiny_model, "-o", tmp_path / "pseudo", "--jobs", 1)
    return tmp_path / "data", tmp_path / "pseudo" / "data"


def test_pseudo_labels_are_an_events_folder(pseudo_labelled: tuple[Path, Path], tmp_path: Path) -> None:
    """Close the loop: what `train --events DIR` reads (find_event_file + read_events) finds every recording."""
    data, events = pseudo_labelled
    for recording in sorted(data.glob("*.wav")):
        found = event_file_for(recording, events)
        assert found == events / f"{recording.stem}.events.tsv"
        assert load_events(recording, events, ["low", "mid", "high"], None)
    invoke("prepare", data, "--events", events, "-o", tmp_path / "labels.csv")


@pytest.mark.slow
def test_pseudo_labels_train_a_student_model(pseudo_labelled: tuple[Path, Path], tmp_path: Path) -> None:
    data, events = pseudo_labelled
    invoke("prepare", data, "--events", events, "-o", tmp_path / "labels.csv")
    invoke("train", "--counts", tmp_path / "labels.csv", "--events", events, "--loss", "ce", "--steps", 2,
           "--batch-size", 2, "--val-fraction", 0.34, "-o", tmp_path / "student.pt")
    assert (tmp_path / "student.pt").exists()


def test_usage_errors(tmp_path: Path, tiny_model: Path) -> None:
    wavs(tmp_path / "data", 1)
    invoke("pseudo-label", tmp_path / "data", "-m", tiny_model, "-o", tmp_path / "o", "--shard", "3/3", code=2)
    invoke("pseudo-label", tmp_path / "data", "-m", tiny_model, "-o", tmp_path / "o", "--max-size", "2XB", code=2)
    text = label(tmp_path / "nothing", "-m", tiny_model, "-o", tmp_path / "o", code=1)
    assert "nothing does not exist" in text
    text = label(tmp_path / "data", "-m", tmp_path / "missing.pt", "-o", tmp_path / "o", code=1)
    assert "missing.pt" in text and "not found" in text
    text = label(tmp_path / "data", "-m", tiny_model, "-o", tmp_path / "o2", "--engine", "spark", code=1)
    assert "--engine spark: choose local or ray" in text and not (tmp_path / "o2").exists()
    assert parse_size("2GB") == 2 * 1024**3 and parse_size("1.5k") == 1536 and parse_size("100") == 100
