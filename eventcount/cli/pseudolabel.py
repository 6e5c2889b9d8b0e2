"""`eventcount pseudo-label`: label folders and archives in batch (resumable, parallel, shardable)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from eventcount.cli.common import (
    app,
    err,
    log,
    run,
    show_progress,
)
from eventcount.cli.sensor_flags import sensor_flags
from eventcount.config import DEFAULT_FORMAT, DEFAULT_MODEL, DetectSettings
from eventcount.errors import EventcountError


@app.command("pseudo-label")
@sensor_flags
def pseudo_label(
    sources: Annotated[list[Path], typer.Argument(help="Recordings, folders and .tar/.tar.gz/.tgz/.zip archives; with --merge: the shards' output folders.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder (with --merge: a folder or a .jsonl file for the merged manifest).")],
    model: Annotated[str | None, typer.Option("-m", "--model", help="Shipped model name (see `eventcount models list`) or a .pt file.", show_default=DEFAULT_MODEL)] = None,
    jobs: Annotated[int | None, typer.Option(help="Worker processes, or Ray actors with --engine ray.", show_default="the idle CPU cores; with Ray, one per CPU of the cluster", min=1)] = None,
    shard: Annotated[str | None, typer.Option(help="Label only part INDEX/COUNT of the recordings, INDEX 0-based (e.g. 0/4 ... 3/4).", show_default="all")] = None,
    fmt: Annotated[str, typer.Option("--format", help="tsv, csv, audacity, jams or midi.")] = DEFAULT_FORMAT,
    tta: Annotated[int, typer.Option(help="Average this many time-stretched passes (more accurate, slower).", min=1)] = DetectSettings.tta,
    min_confidence: Annotated[float, typer.Option(help="Drop events less confident than this (0 to 1).", min=0.0, max=1.0)] = 0.0,
    overwrite: Annotated[bool, typer.Option(help="Label everything again (default: skip what an earlier run with this model finished). Needed after changing --tta or --min-confidence.")] = False,
    glob: Annotated[str | None, typer.Option(help="Only paths inside a folder or archive that match, e.g. 'disc1/*.wav'.", show_default="every recording")] = None,
    max_size: Annotated[str, typer.Option(help="Largest recording read, once decompressed (guards against compression bombs), e.g. 500MB.")] = "2GB",
    merge: Annotated[bool, typer.Option("--merge", help="Combine the manifests of the shard output folders given as SOURCES; report missing and duplicate recordings.")] = False,
    engine: Annotated[str, typer.Option(help="local (worker processes on this machine) or ray (actors on a Ray cluster; pip install \"eventcount[ray]\").")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="With --engine ray: the cluster to join, e.g. auto or ray://head:10001.", show_default="start a local Ray")] = None,
    sensor: dict | None = None,
) -> None:
    """Label every recording in folders and tar/zip archives: resumable, parallel, shardable.

    Writes one event file per recording under OUTPUT, mirroring the sources (`<archive name>/<member path>`),
    and `manifest.jsonl`. Re-running the same command after a crash or Ctrl-C finishes the rest.

    Examples:

    * `eventcount pseudo-label songs.tar.gz more/ -m drums.pt -o labels/`
    * `eventcount pseudo-label songs.tar.gz -m drums.pt -o part0/ --shard 0/2` (and `1/2` on another machine)
    * `eventcount pseudo-label --merge part0/ part1/ -o all/`
    """
    if merge:
        _merge_shards(sources, output)
    from eventcount.pseudolabel import parse_shard
    from eventcount.units import parse_size

    options = {"jobs": jobs, "shard": _usage(parse_shard, shard, "--shard") if shard else None, "fmt": fmt,
               "tta": tta, "min_confidence": min_confidence, "overwrite": overwrite, "glob": glob,
               "max_bytes": _usage(parse_size, max_size, "--max-size"), "engine": engine, "ray_address": ray_address,
               "sensor_options": sensor or {}}
    summary = _label_with_progress(sources, model, output, options)
    _print_label_summary(summary)
    if summary.interrupted:
        err.print("interrupted: everything listed as done is complete; run the same command again to resume")
        raise typer.Exit(130)
    raise typer.Exit(1 if summary.failed else 0)


def _usage(parse, value: str, hint: str):
    """Parse an option's value; a bad value is a usage error (exit 2)."""
    try:
        return parse(value)
    except EventcountError as error:
        raise typer.BadParameter(str(error).split(": ", 1)[-1], param_hint=hint) from None


def _label_with_progress(sources: list[Path], model: str | None, output: Path, options: dict[str, Any]):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from eventcount.pseudolabel import pseudo_label as label_all

    progress = Progress(TextColumn("[bold]pseudo-labelling"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[speed]}"), TimeElapsedColumn(), TextColumn("ETA"),
                        TimeRemainingColumn(), console=err, disable=not show_progress())
    with progress:
        task = progress.add_task("label", total=None, speed="")

        def on_progress(summary) -> None:
            wall_s = max(summary.wall_s, 1e-9)
            speed = f"{summary.handled / wall_s:.1f} rec/s  {summary.audio_s / 3600 / wall_s:.3g} audio h/s"
            progress.update(task, total=summary.to_do, completed=summary.handled, speed=speed)

        return run(label_all, sources, model, output, on_progress=on_progress, **options)


def _print_problems(kind: str, style: str, lines: list[str], limit: int = 20) -> None:
    from rich.markup import escape

    for line in lines[:limit]:  # keys and messages may hold [brackets]: printed, not read as markup
        err.print(f"[{style}]{kind}:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if len(lines) > limit:
        err.print(f"... and {len(lines) - limit} more {kind} (see the manifest)")


def _print_label_summary(summary) -> None:
    from rich.table import Table

    _print_problems("failed", "red", summary.failures)
    if log.level > logging.INFO:
        return
    _print_problems("warning", "yellow", summary.warnings)
    _print_problems("skipped", "yellow", summary.skipped)
    hours, minutes = summary.audio_s / 3600, max(summary.wall_s, 1e-9) / 60
    shard = f" (shard {summary.shard[0]}/{summary.shard[1]})" if summary.shard else ""
    table = Table(title=f"Pseudo-labels in {summary.outdir}{shard}", show_header=False)
    table.add_row("recordings listed", str(summary.listed))
    table.add_row("done by an earlier run", str(summary.already_done))
    table.add_row("labelled now", str(summary.ok))
    table.add_row("failed", str(summary.failed))
    table.add_row("skipped (links, unsafe or clashing names, ...)", str(summary.passed_over))
    table.add_row("audio labelled", f"{hours:.2f} h in {summary.wall_s:.1f} s ({hours / minutes:.3g} audio h/min)")
    for name, count in summary.events.items():
        table.add_row(f"events: {name}", str(count))
    err.print(table)


def _merge_shards(folders: list[Path], output: Path) -> None:
    from rich.table import Table

    from eventcount.pseudolabel import describe
    from eventcount.pseudolabel import merge as merge_all

    result = run(merge_all, folders, output)
    report = result.report
    _print_problems("warning", "yellow", report.warnings)
    _print_problems("missing shard", "red", result.missing_shards)
    _print_problems("missing", "red", report.missing)
    _print_problems("done in several shards", "red", [f"{k}: {', '.join(map(str, v))}" for k, v in report.duplicates.items()])
    _print_problems("output missing", "red", report.missing_outputs)
    _print_problems("failed", "red", [describe(e) for e in report.with_status("error")])
    table = Table(title=f"Merged manifest {result.path}", show_header=False)
    for status in ("ok", "error", "skipped"):
        table.add_row(status, str(len(report.with_status(status))))
    table.add_row("missing", str(len(report.missing)))
    table.add_row("missing shards", str(len(result.missing_shards)))
    table.add_row("done in several shards", str(len(report.duplicates)))
    table.add_row("outputs missing", str(len(report.missing_outputs)))
    table.add_row("folders without a manifest", str(len(result.without_manifest)))
    err.print(table)
    raise typer.Exit(0 if result.all_ok else 1)

