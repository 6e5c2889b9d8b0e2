"""The pseudo-label manifest: crash-safe appends, tolerant reading, resuming, merging shard manifests."""

from __future__ import annotations

import json
from pathlib import Path

from eventcount.pseudolabel.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestEntry,
    merge_manifests,
    write_merged_manifest,
)
from eventcount.pseudolabel.shards import select_shard
from eventcount.pseudolabel.sources import Problem, label_path, list_recordings


def entry(key: str, status: str = "ok", sha: str = "m1", output: str | None = None, **extra) -> ManifestEntry:
    return ManifestEntry(key, source="src", status=status, model="drums", model_sha256=sha,
                         output=output if output is not None else f"{key}.tsv", **extra)


def done(outdir: Path, key: str, sha: str = "m1") -> ManifestEntry:
    """Write an output file for `key` in `outdir` and record it as ok there."""
    (outdir / f"{key}.tsv").parent.mkdir(parents=True, exist_ok=True)
    (outdir / f"{key}.tsv").write_text("0.5\tkick\n")
    made = entry(key, sha=sha)
    Manifest.in_dir(outdir).append(made)
    return made


def test_entries_round_trip_one_line_each(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "out" / MANIFEST_NAME)
    first = entry("dir/ä\nb.wav", events={"kick": 3}, duration_s=1.5, seconds=0.2, message="fine")
    odd = entry("dir/\udcff.wav")  # a file name that is not valid UTF-8, as os.fsdecode gives it
    manifest.append(first)
    manifest.append(odd)
    lines = manifest.path.read_bytes().splitlines()
    assert len(lines) == 2 and json.loads(lines[0].decode())["events"] == {"kick": 3}
    contents = manifest.read()
    assert contents.entries == [first, odd] and contents.warnings == []


def test_a_truncated_last_line_is_skipped_and_the_next_append_is_intact(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / MANIFEST_NAME)
    manifest.append(entry("a.wav"))
    manifest.append(entry("b.wav"))
    with open(manifest.path, "ab") as handle:
        handle.write(entry("c.wav").to_line()[:25])  # what a power cut mid-write could leave
    contents = manifest.read()
    assert [e.key for e in contents.entries] == ["a.wav", "b.wav"]
    assert len(contents.warnings) == 1 and "line 3: incomplete last line" in contents.warnings[0]
    manifest.append(entry("d.wav"))
    contents = manifest.read()
    assert [e.key for e in contents.entries] == ["a.wav", "b.wav", "d.wav"]
    assert len(contents.warnings) == 1 and "line 3: not an entry" in contents.warnings[0]


def test_lines_that_are_not_entries_are_reported(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    path.write_text('[1, 2]\n{"key": "a.wav"}\n{"key": "a.wav", "source": "s", "status": "done"}\n\n'
                    '{"key": "b.wav", "source": "s", "future_field": 1}\n')
    contents = Manifest(path).read()
    assert [e.key for e in contents.entries] == ["b.wav"]
    assert [w.split(": ", 1)[0] for w in contents.warnings] == [f"{path}, line {n}" for n in (1, 2, 3)]


def test_done_keys_need_ok_latest_entry_existing_output_and_same_model(tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = Manifest.in_dir(out)
    for key in ["a", "b", "c", "d"]:
        done(out, key)
    manifest.append(entry("b", status="error", output=""))  # a later failure supersedes
    manifest.append(entry("e", status="error", output=""))
    manifest.append(entry("e"))  # ok after a retry, but its output was never written
    (out / "c.tsv").unlink()
    done(out, "d", sha="m2")
    assert manifest.done_keys() == {"a", "d"}
    assert manifest.done_keys(model_sha256="m1") == {"a"}
    assert Manifest(tmp_path / "none.jsonl").done_keys() == set()


def test_problem_becomes_a_skipped_entry() -> None:
    made = ManifestEntry.from_problem(Problem("z.zip/../x.wav", "z.zip", "../x.wav", "unsafe"), "drums", "m1")
    assert (made.key, made.member, made.status, made.message, made.output) == (
        "z.zip/../x.wav", "../x.wav", "skipped", "unsafe", None)


def test_merge_lists_duplicates_failures_and_missing(tmp_path: Path) -> None:
    shard0, shard1 = tmp_path / "s0", tmp_path / "s1"
    done(shard0, "a")
    done(shard0, "dup")
    done(shard1, "dup")
    Manifest.in_dir(shard0).append(entry("retried", status="error", output=""))
    done(shard1, "retried")
    Manifest.in_dir(shard1).append(entry("broken", status="error", output=""))
    report = merge_manifests([shard0, shard1, tmp_path / "s2"], expected_keys={"a", "dup", "retried", "broken", "lost"})
    assert list(report.entries) == ["a", "broken", "dup", "retried"]
    assert report.duplicates == {"dup": [shard0, shard1]}
    assert report.origins["dup"] == shard0 and report.origins["retried"] == shard1
    assert [e.key for e in report.with_status("error")] == ["broken"]
    assert report.missing == ["lost"]
    assert len(report.warnings) == 1 and "s2" in report.warnings[0]
    assert not report.all_ok
    assert report.summary().startswith("4 recordings: 3 ok, 1 error, 0 skipped; 1 done in several shards, 1 missing")


def test_merged_manifest_points_at_the_shard_outputs(tmp_path: Path) -> None:
    done(tmp_path / "s0", "x/a")
    done(tmp_path / "s1", "x/b")
    (tmp_path / "s1" / "x" / "b.tsv").unlink()
    report = merge_manifests([tmp_path / "s0", tmp_path / "s1" / MANIFEST_NAME])
    assert report.missing_outputs == ["x/b"]
    merged = tmp_path / "all" / MANIFEST_NAME
    write_merged_manifest(report, merged)
    assert [e.output for e in Manifest(merged).read().entries] == ["../s0/x/a.tsv", "../s1/x/b.tsv"]
    assert Manifest(merged).done_keys() == {"x/a"}


def test_sharded_run_merges_to_the_full_listing(tmp_path: Path) -> None:
    for i in range(20):
        (tmp_path / "data" / f"{i}.wav").parent.mkdir(exist_ok=True)
        (tmp_path / "data" / f"{i}.wav").write_bytes(b"x")
    recordings, _ = list_recordings([tmp_path / "data"], {".wav"})
    outdirs = [tmp_path / f"shard{i}" for i in range(3)]
    for index, outdir in enumerate(outdirs):
        for rec in select_shard(recordings, index, len(outdirs)):
            path = label_path(outdir, rec.key, ".events.tsv")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
            Manifest.in_dir(outdir).append(ManifestEntry(
                rec.key, rec.source, rec.member, output=path.relative_to(outdir).as_posix()))
    report = merge_manifests(outdirs, expected_keys={rec.key for rec in recordings})
    assert report.all_ok and len(report.entries) == 20
