"""Batch pseudo-labelling: many recordings -> one event file each plus a manifest; resumable, parallel, sharded.

`pseudo_label` lists files, folders and tar/zip archives (`eventcount.sources`), skips what an earlier run with
the same model already finished, labels the rest in worker processes (one model load each) and appends one
manifest line per recording from the main process only, after its event file has been written atomically. So
at any moment — after Ctrl-C, a crash or `kill -9` — every manifest "ok" line has its complete event file, and
re-running the same command finishes the rest. Each run also writes `shard-I-of-N.json` (the keys it was given)
so that `merge` can report recordings that no shard labelled.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventcount.atomic import atomic_write
from eventcount.checkpoint import file_sha256, read_model_file, resolve_model_path
from eventcount.errors import EventcountError
from eventcount.labelling import Settings, label_in_pool, label_in_process, problem_entry, remove_temp_files
from eventcount.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestEntry,
    MergeReport,
    merge_manifests,
    write_merged_manifest,
)
from eventcount.recordings import recording_extensions
from eventcount.sources import (
    DEFAULT_MAX_BYTES,
    Problem,
    Recording,
    list_recordings,
    output_name,
    select_shard,
)
from eventcount.writers import get_writer

SHARD_FILE = "shard-{index}-of-{count}.json"
_SHARD_FILE_PATTERN = re.compile(r"^shard-(\d+)-of-(\d+)\.json$")


@dataclass
class Summary:
    """What one run did. `listed`: recordings and problems in this shard; `already_done`: skipped as done by
    an earlier run; `to_do`: recordings this run set out to label; `ok`/`failed`/`passed_over`: manifest
    entries written with status ok/error/skipped; `audio_s`: seconds of audio labelled; `wall_s`: run time."""

    outdir: Path
    shard: tuple[int, int] | None = None
    listed: int = 0
    already_done: int = 0
    to_do: int = 0
    handled: int = 0
    ok: int = 0
    failed: int = 0
    passed_over: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    events: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False

    def add(self, entry: ManifestEntry) -> None:
        if entry.status == "ok":
            self.ok += 1
            self.audio_s += entry.duration_s or 0.0
            for label, count in entry.events.items():
                self.events[label] = self.events.get(label, 0) + count
        elif entry.status == "error":
            self.failed += 1
            self.failures.append(describe(entry))
        else:
            self.passed_over += 1
            self.skipped.append(describe(entry))


def describe(entry: ManifestEntry) -> str:
    """`key: message` for a report, without repeating a key the message already starts with."""
    return entry.message if entry.message.startswith(entry.key) else f"{entry.key}: {entry.message}"


def default_jobs() -> int:
    """The number of CPU cores this process may use."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


# ---------------------------------------------------------------- planning and the public entry point

@dataclass
class _Plan:
    todo: list[Recording]
    problems: list[Problem]
    keys: list[str]
    listed: int
    already_done: int
    warnings: list[str]


def _settings(model: str | Path | None, outdir: Path, fmt: str, tta: int, min_confidence: float,
              sensor_options: dict[str, Any] | None) -> tuple[Settings, str]:
    """Check the options and the model file (without building the network); also return the model's kind."""
    get_writer(fmt)
    if tta < 1:
        raise EventcountError(f"--tta {tta}: give 1 (one pass) or more")
    if not 0.0 <= min_confidence <= 1.0:
        raise EventcountError(f"--min-confidence {min_confidence}: give a value from 0 to 1")
    path = resolve_model_path(model)
    kind = str(read_model_file(path).get("frontend", {}).get("kind", "audio"))
    settings = Settings(str(path), path.stem, file_sha256(path), str(outdir), fmt, tta, min_confidence,
                        dict(sensor_options or {}))
    return settings, kind


def _plan(sources: Sequence[str | Path], settings: Settings, kind: str, shard: tuple[int, int] | None,
          overwrite: bool, glob: str | None) -> _Plan:
    extensions = recording_extensions(kind)
    recordings, problems = list_recordings(sources, extensions, glob, exclude=[settings.outdir])
    listed = len(recordings) + len(problems)
    if shard is not None:
        recordings, problems = select_shard(recordings, *shard), select_shard(problems, *shard)
    if not recordings and not problems:
        raise EventcountError(f"no recordings found in {', '.join(map(str, sources))} (looked for "
                              f"{', '.join(sorted(extensions))}{f' matching {glob!r}' if glob else ''})")
    contents = Manifest.in_dir(settings.outdir).read()
    suffix = get_writer(settings.fmt)[0]
    latest = contents.latest()
    done = set() if overwrite else {key for key in contents.done_keys(settings.model_sha256)
                                    if latest[key].output == output_name(key, suffix)}
    todo = [rec for rec in recordings if rec.key not in done]
    keys = [rec.key for rec in recordings] + [problem.key for problem in problems]
    return _Plan(todo, problems, keys, listed, len(recordings) - len(todo), contents.warnings)


def _prepare_outdir(outdir: Path, plan: _Plan, settings: Settings, shard: tuple[int, int] | None) -> None:
    """Create the folder, remove temporary files a killed run left for our outputs, record the shard's keys."""
    outdir.mkdir(parents=True, exist_ok=True)
    index, count = shard or (0, 1)
    shard_name = SHARD_FILE.format(index=index, count=count)
    suffix = get_writer(settings.fmt)[0]
    remove_temp_files(outdir, [output_name(rec.key, suffix) for rec in plan.todo] + [shard_name])
    record = {"format": "eventcount-pseudolabel-shard", "version": 1, "shard": [index, count],
              "listed": plan.listed, "keys": sorted(plan.keys)}
    with atomic_write(outdir / shard_name) as handle:
        json.dump(record, handle, ensure_ascii=False)


def pseudo_label(
    sources: Sequence[str | Path],
    model: str | Path | None,
    outdir: str | Path,
    *,
    jobs: int | None = None,
    shard: tuple[int, int] | None = None,
    fmt: str = "tsv",
    tta: int = 1,
    min_confidence: float = 0.0,
    overwrite: bool = False,
    glob: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    sensor_options: dict[str, Any] | None = None,
    on_progress: Callable[[Summary], None] | None = None,
) -> Summary:
    """Label every recording in `sources` with `model`, writing `outdir/<key stem><format suffix>` each.

    Recordings already labelled in `outdir` by the same model file (sha256) and format are skipped unless
    `overwrite`. `jobs` worker processes (default: the CPU count; 1 runs in this process) label the rest;
    `shard` (index, count) keeps a deterministic part of the listing. Events below `min_confidence` are
    dropped. Members over `max_bytes` are refused. `on_progress` is called after each recording handled.
    Ctrl-C stops the workers and returns the summary so far with `interrupted` set; re-running resumes.
    """
    outdir = Path(outdir)
    settings, kind = _settings(model, outdir, fmt, tta, min_confidence, sensor_options)
    plan = _plan(sources, settings, kind, shard, overwrite, glob)
    _prepare_outdir(outdir, plan, settings, shard)
    summary = Summary(outdir, shard, len(plan.keys), plan.already_done, len(plan.todo), warnings=plan.warnings)
    manifest = Manifest.in_dir(outdir)
    started = time.perf_counter()
    for problem in plan.problems:
        _record(manifest, summary, problem_entry(problem, settings))
    workers = max(1, min(jobs or default_jobs(), len(plan.todo)))
    run = (label_in_process(plan.todo, settings, max_bytes) if workers == 1
           else label_in_pool(plan.todo, settings, workers, max_bytes))
    try:
        with closing(run) as entries:
            for entry in entries:
                _record(manifest, summary, entry)
                summary.handled += 1
                summary.wall_s = time.perf_counter() - started
                if on_progress is not None:
                    on_progress(summary)
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.wall_s = time.perf_counter() - started
    return summary


def _record(manifest: Manifest, summary: Summary, entry: ManifestEntry) -> None:
    manifest.append(entry)
    summary.add(entry)


# ---------------------------------------------------------------- merging shards

@dataclass
class MergeResult:
    """Shard manifests combined (see manifest.MergeReport), plus shards that no given folder holds."""

    report: MergeReport
    path: Path
    missing_shards: list[str] = field(default_factory=list)
    without_manifest: list[Path] = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        return self.report.all_ok and not self.missing_shards and not self.without_manifest


def _shard_records(folder: Path, warnings: list[str]) -> list[dict[str, Any]]:
    records = []
    for path in sorted(folder.glob("shard-*-of-*.json")):
        if not _SHARD_FILE_PATTERN.match(path.name):
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            record["shard"] = tuple(int(x) for x in record["shard"])
            record["keys"] = [str(key) for key in record["keys"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.append(f"{path}: unreadable shard record ({exc}); its missing recordings cannot be named")
            continue
        records.append(record)
    return records


def _missing_shards(records: list[dict[str, Any]], warnings: list[str]) -> list[str]:
    seen: dict[int, set[int]] = {}
    for record in records:
        index, count = record["shard"]
        seen.setdefault(count, set()).add(index)
    if len(seen) > 1:
        warnings.append(f"the folders hold shards of different splits ({', '.join(f'/{n}' for n in sorted(seen))})")
    if len({record["listed"] for record in records}) > 1:
        warnings.append("the shards listed different numbers of recordings: did the sources change between runs?")
    return [f"{index}/{count}" for count, found in sorted(seen.items()) for index in range(count)
            if index not in found]


def merge(outdirs: Sequence[str | Path], out: str | Path) -> MergeResult:
    """Combine the manifests of shard output folders into `out` (a folder, or a `.jsonl` manifest path).

    Recordings that a shard was given but did not label are reported missing, and so are whole shards of
    the split (e.g. 1/3) that none of the folders holds. Event files stay where they are: the merged
    manifest's `output` paths point at them.
    """
    out = Path(out)
    target = out if out.suffix == ".jsonl" else out / MANIFEST_NAME
    folders = [Path(item) if Path(item).is_dir() else Path(item).parent for item in outdirs]
    if target.resolve() in {(folder / MANIFEST_NAME).resolve() for folder in folders}:
        raise EventcountError(f"-o {out}: that is one of the manifests being merged; choose another place")
    warnings: list[str] = []
    records = [record for folder in folders for record in _shard_records(folder, warnings)]
    expected = {key for record in records for key in record["keys"]} if records else None
    report = merge_manifests(outdirs, expected)
    report.warnings += warnings
    missing_shards = _missing_shards(records, report.warnings)
    write_merged_manifest(report, target)
    without = [Path(item) for item in outdirs if not (Path(item) / MANIFEST_NAME if Path(item).is_dir()
                                                       else Path(item)).is_file()]
    return MergeResult(report, target, missing_shards, without)
