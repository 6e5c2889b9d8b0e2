"""The pseudo-labelling job: plan (list, shard, skip what is done), label with an engine, record, summarise.

`pseudo_label` lists files, folders and tar/zip archives (`sources`), skips what an earlier run with the same
model already finished, labels the rest with an engine — local worker processes (`workers`) or Ray actors
(`ray_engine`), one model load each, both calling `labeller.Labeller` — and appends one manifest line per
recording from this process only, after its event file has been written atomically. So at any moment — after
Ctrl-C, a crash or `kill -9` — every manifest "ok" line has its complete event file, and re-running the same
command finishes the rest. Each run also writes `shard-I-of-N.json` (the keys it was given; see `shards`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eventcount.errors import EventcountError
from eventcount.pseudolabel.labeller import LabelSettings, problem_entry, remove_temp_files
from eventcount.pseudolabel.manifest import Manifest, ManifestEntry
from eventcount.pseudolabel.shards import select_shard, shard_file_name, write_shard_record
from eventcount.pseudolabel.sources import Problem, SourceItem, label_name, list_recordings
from eventcount.pseudolabel.spool import DEFAULT_MAX_BYTES, spool_folder
from eventcount.recordings import duration_hint, recording_extensions
from eventcount.writers import get_writer

Engine = Literal["local", "ray"]
ENGINES: tuple[Engine, ...] = ("local", "ray")
DEFAULT_ENGINE: Engine = "local"


@dataclass
class RunSummary:
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


# ---------------------------------------------------------------- planning and the public entry point

@dataclass
class _Plan:
    todo: list[SourceItem]
    problems: list[Problem]
    keys: list[str]
    listed: int
    already_done: int
    warnings: list[str]


def _settings(model: str | Path | None, outdir: Path, fmt: str, tta: int, min_confidence: float,
              sensor_options: dict[str, Any] | None) -> tuple[LabelSettings, str]:
    """Check the options and the model file (without building the network); also return the model's kind."""
    from eventcount.checkpoint import file_sha256, read_model_file, resolve_model_path

    get_writer(fmt)
    if tta < 1:
        raise EventcountError(f"--tta {tta}: give 1 (one pass) or more")
    if not 0.0 <= min_confidence <= 1.0:
        raise EventcountError(f"--min-confidence {min_confidence}: give a value from 0 to 1")
    path = resolve_model_path(model)
    kind = str(read_model_file(path).get("frontend", {}).get("kind", "audio"))
    settings = LabelSettings(str(path), path.stem, file_sha256(path), str(outdir), fmt, tta, min_confidence,
                             dict(sensor_options or {}))
    return settings, kind


def _plan(sources: Sequence[str | Path], settings: LabelSettings, kind: str, shard: tuple[int, int] | None,
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
                                    if latest[key].output == label_name(key, suffix)}
    todo = [rec for rec in recordings if rec.key not in done]
    keys = [rec.key for rec in recordings] + [problem.key for problem in problems]
    return _Plan(todo, problems, keys, listed, len(recordings) - len(todo), contents.warnings)


def _prepare_outdir(outdir: Path, plan: _Plan, settings: LabelSettings, shard: tuple[int, int] | None) -> None:
    """Create the folder, remove temporary files a killed run left for our outputs, record the shard's keys."""
    outdir.mkdir(parents=True, exist_ok=True)
    suffix = get_writer(settings.fmt)[0]
    remove_temp_files(outdir, [label_name(rec.key, suffix) for rec in plan.todo] + [shard_file_name(shard)])
    write_shard_record(outdir, shard, plan.listed, plan.keys)


def spool_path(outdir: Path, shard: tuple[int, int] | None) -> Path:
    """Where a run copies archive members for its workers to read: inside OUT, so that it is on the same disk
    as the outputs (and shared wherever OUT is shared, as a multi-node Ray cluster needs), one per shard."""
    return outdir / f".spool-{shard_file_name(shard).removesuffix('.json')}"


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
    engine: Engine = DEFAULT_ENGINE,
    ray_address: str | None = None,
    on_progress: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Label every recording in `sources` with `model`, writing `outdir/<key stem><format suffix>` each.

    Recordings already labelled in `outdir` by the same model file (sha256) and format are skipped unless
    `overwrite`. The rest are labelled by `jobs` workers: local processes (default: `threads.plan`, the idle
    cores; 1 runs in this process), or with `engine="ray"` actors on the Ray cluster at `ray_address` (a local
    one when None; default: one per CPU of the cluster). `shard` (index, count) keeps a deterministic part of
    the listing. Events below `min_confidence` are dropped. Members over `max_bytes` are refused. `on_progress`
    is called after each recording handled. Ctrl-C stops the workers and returns the summary so far with
    `interrupted` set; re-running resumes.
    """
    if engine not in ENGINES:
        raise EventcountError(f"--engine {engine}: choose {' or '.join(ENGINES)}")
    if engine == "ray":
        from eventcount.pseudolabel.ray_engine import check_ray

        check_ray()
    outdir = Path(outdir)
    settings, kind = _settings(model, outdir, fmt, tta, min_confidence, sensor_options)
    plan = _plan(sources, settings, kind, shard, overwrite, glob)
    _prepare_outdir(outdir, plan, settings, shard)
    summary = RunSummary(outdir, shard, len(plan.keys), plan.already_done, len(plan.todo), warnings=plan.warnings)
    manifest = Manifest.in_dir(outdir)
    started = time.perf_counter()
    for problem in plan.problems:
        _record(manifest, summary, problem_entry(problem, settings))
    try:
        with spool_folder(spool_path(outdir, shard)) as spool:
            with closing(_entries(engine, plan.todo, settings, jobs, spool, max_bytes, ray_address)) as entries:
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


def _entries(engine: Engine, todo: list[SourceItem], settings: LabelSettings, jobs: int | None, spool: Path,
             max_bytes: int, ray_address: str | None) -> Iterator[ManifestEntry]:
    if engine == "ray":
        from eventcount.pseudolabel.ray_engine import label_on_ray

        return label_on_ray(todo, settings, jobs, spool, max_bytes, ray_address)
    from eventcount.pseudolabel.workers import label_in_pool, label_in_process
    from eventcount.threads import plan

    durations = (None if item.member else duration_hint(item.source) for item in todo)  # members: unknown
    workers = plan(len(todo), jobs=min(jobs, max(1, len(todo))) if jobs else None, durations_s=durations)
    if workers.jobs == 1:
        return label_in_process(todo, settings, spool, max_bytes, workers.threads)
    return label_in_pool(todo, settings, workers.jobs, spool, max_bytes)


def _record(manifest: Manifest, summary: RunSummary, entry: ManifestEntry) -> None:
    manifest.append(entry)
    summary.add(entry)
