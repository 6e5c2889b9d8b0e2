"""The `eventcount` command line: parse options, build configs, call one library function, show the result.

Heavy modules (torch, librosa) are imported inside the commands so `eventcount --help` is instant.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from eventcount import __version__
from eventcount.config import DecodeConfig, FrontendConfig, NetworkConfig, TrainConfig
from eventcount.errors import EventcountError
from eventcount.units import parse_duration

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  help="Find when short events happen in recordings — learning from counts alone.")
models_app = typer.Typer(no_args_is_help=True, help="The shipped models.")
app.add_typer(models_app, name="models")
out = Console()
err = Console(stderr=True)
log = logging.getLogger("eventcount")

NETWORK_SIZES = {
    "small": NetworkConfig(),
    "large": NetworkConfig(conv_channels=[32, 64], rnn_hidden=128),
}


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def run(function, *args, **kwargs):
    """Call a library function, turning user errors into one-line messages and exit code 1."""
    try:
        return function(*args, **kwargs)
    except EventcountError as error:
        fail(str(error))


def seconds(value: str | None, what: str) -> float | None:
    """Parse a duration option; a bad value is a usage error (exit 2)."""
    if value is None:
        return None
    try:
        return parse_duration(value, what)
    except EventcountError as error:
        raise typer.BadParameter(str(error).split(": ", 1)[1], param_hint=what) from None


def show_progress() -> bool:
    return out.is_terminal and log.level <= logging.INFO


def _print_version(value: bool) -> None:
    if value:
        out.print(f"eventcount {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Say more about what is happening.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                          callback=_print_version)] = False,
) -> None:
    """Find when short events happen in recordings — learning from counts alone."""
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    log.setLevel(level)


# ---------------------------------------------------------------- sensor options shared by commands

def sensor_options(columns: str | None, time_column: str | None, time_unit: str | None, rate: float | None,
                   max_gap: str | None, magnitude: bool | None) -> dict[str, Any]:
    """The sensor-reading options a user gave (only those given)."""
    options: dict[str, Any] = {}
    if columns:
        options["columns"] = [c.strip() for c in columns.split(",") if c.strip()]
    if time_column:
        options["time_column"] = time_column
    if time_unit:
        options["time_unit"] = time_unit
    if rate:
        options["rate"] = rate
    if max_gap:
        options["max_gap_s"] = seconds(max_gap, "--max-gap")
    if magnitude:
        options["magnitude"] = True
    return options


ColumnsOpt = Annotated[str | None, typer.Option(help="Sensor CSV: value columns (names or 0-based indices, comma-separated).", rich_help_panel="Sensor files")]
TimeColumnOpt = Annotated[str | None, typer.Option(help="Sensor CSV: the time column.", rich_help_panel="Sensor files")]
TimeUnitOpt = Annotated[str | None, typer.Option(help="Sensor CSV: unit of the time column (s, ms, us, ns, auto).", rich_help_panel="Sensor files")]
RateOpt = Annotated[float | None, typer.Option(help="Sensor: samples per second (no time column, or .npy).", rich_help_panel="Sensor files")]
MaxGapOpt = Annotated[str | None, typer.Option(help="Sensor CSV: longest allowed gap between timestamps (e.g. 1s).", rich_help_panel="Sensor files")]
MagnitudeOpt = Annotated[bool, typer.Option(help="Sensor: use the Euclidean norm of the value columns.", rich_help_panel="Sensor files")]


# ---------------------------------------------------------------- prepare

@app.command()
def prepare(
    sources: Annotated[list[Path] | None, typer.Argument(help="Recordings or folders of recordings.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Count labels CSV to write.")] = None,
    events: Annotated[Path | None, typer.Option(help="Folder holding <stem>.events.tsv (or .txt/.csv) per recording; default: beside each recording.")] = None,
    class_map: Annotated[Path | None, typer.Option(help="YAML mapping raw labels to classes, e.g. `KD: [35, 36]`.")] = None,
    classes: Annotated[str | None, typer.Option(help="Comma-separated classes to count (default: all mapped/seen).")] = None,
    window: Annotated[str, typer.Option(help="Clip length (e.g. 0.25s); 0 = whole files. Short clips keep the timing unbiased.")] = "0.25s",
    hop: Annotated[str | None, typer.Option(help="Step between clip starts (default: the window).")] = None,
    check: Annotated[Path | None, typer.Option(help="Check a hand-written count sheet instead.")] = None,
    columns: ColumnsOpt = None, time_column: TimeColumnOpt = None, time_unit: TimeUnitOpt = None,
    rate: RateOpt = None, max_gap: MaxGapOpt = None, magnitude: MagnitudeOpt = False,
) -> None:
    """Turn timestamps into count-only clip labels, or check a count sheet.

    Examples:

    * `eventcount prepare songs/ --events annotations/ --class-map drums.yaml -o labels.csv`
    * `eventcount prepare --check labels.csv`
    """
    from eventcount.annotations import read_class_map
    from eventcount.labels import read_count_table, write_count_table
    from eventcount.prepare import RECORDING_EXTENSIONS, check_count_table, expand_sources, make_count_table

    options = sensor_options(columns, time_column, time_unit, rate, max_gap, magnitude)
    if check is not None:
        table = run(read_count_table, check)
        summary = run(check_count_table, table, options)
        _print_summary(summary, table.classes)
        for problem in summary.problems:
            err.print(f"[red]problem:[/] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(1 if summary.problems else 0)
    if not sources or output is None:
        raise typer.BadParameter("give recordings and -o labels.csv (or --check labels.csv)")
    window_s = seconds(window, "--window")
    mapping = run(read_class_map, class_map) if class_map else None
    wanted = [c.strip() for c in classes.split(",")] if classes else None
    extensions = RECORDING_EXTENSIONS | ({".csv"} if options else set())
    recordings = [p for p in run(expand_sources, sources, extensions) if ".events." not in p.name]
    table = run(make_count_table, recordings, events, mapping, wanted, window_s or None, seconds(hop, "--hop"), options)
    run(write_count_table, output, table)
    _print_summary(run(check_count_table, table, options), table.classes)
    err.print(f"wrote {len(table.clips)} clips to {output}")


def _print_summary(summary, classes: list[str]) -> None:
    from rich.table import Table

    table = Table(title="Count labels", show_header=False)
    table.add_row("recordings", str(summary.recordings))
    table.add_row("clips", str(summary.clips))
    table.add_row("total duration", f"{summary.duration_s / 60:.1f} min")
    for name in classes:
        table.add_row(f"events: {name}", str(summary.events[name]))
    table.add_row("largest count", f"{summary.max_count} (suggested --cmax {summary.suggested_cmax})")
    err.print(table)


# ---------------------------------------------------------------- train

def _stretch_factors(text: str | None) -> list[float] | None:
    if text is None:
        return None
    if text.strip().lower() in ("none", "off", "1", "1.0"):
        return [1.0]
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise typer.BadParameter("expected LOW,HIGH such as 0.8,1.25 (or 'off')", param_hint="--stretch") from None
    if not 0 < lo <= 1 <= hi:
        raise typer.BadParameter("need 0 < LOW <= 1 <= HIGH", param_hint="--stretch")
    import numpy as np

    factors = np.concatenate([np.geomspace(lo, 1, 3), np.geomspace(1, hi, 3)[1:]])
    return sorted({round(float(f), 4) for f in factors})


def _configs(config_file: Path | None, size: str | None) -> tuple[TrainConfig, FrontendConfig, NetworkConfig,
                                                                  DecodeConfig]:
    from eventcount.config import from_dict, load_yaml

    data = run(load_yaml, config_file) if config_file else {}
    sections = {k: data.pop(k) for k in ("frontend", "network", "decode", "train") if k in data}
    train_values = {**data, **sections.get("train", {})}
    network = dataclasses.replace(NETWORK_SIZES[size or "small"])
    if "network" in sections:
        network = run(from_dict, NetworkConfig, {**dataclasses.asdict(network), **sections["network"]}, "network")
    frontend = run(from_dict, FrontendConfig, sections.get("frontend", {}), f"{config_file} frontend")
    decode = run(from_dict, DecodeConfig, sections.get("decode", {}), f"{config_file} decode")
    return run(from_dict, TrainConfig, train_values, f"{config_file}"), frontend, network, decode


@app.command()
def train(
    counts: Annotated[Path, typer.Option(help="Count labels CSV (from `prepare` or written by hand).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model file to write (.pt).")],
    config: Annotated[Path | None, typer.Option(help="YAML with `train:`, `frontend:`, `network:` sections; flags win.")] = None,
    loss: Annotated[str | None, typer.Option(help="counts (weak labels), softloc (rough timestamps) or ce (exact timestamps).")] = None,
    events: Annotated[Path | None, typer.Option(help="Folder of timestamp files for softloc and ce (default: beside each recording).")] = None,
    class_map: Annotated[Path | None, typer.Option(help="YAML mapping raw timestamp labels to classes.")] = None,
    classes: Annotated[str | None, typer.Option(help="Train only these classes (comma-separated).")] = None,
    val: Annotated[Path | None, typer.Option(help="Validation count labels (default: hold out recordings).")] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Fraction of recordings held out when --val is not given.")] = None,
    val_events: Annotated[Path | None, typer.Option(help="Timestamps of validation recordings: thresholds then maximise F1.")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimisation steps.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Clips per step.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (AdamW).")] = None,
    cmax: Annotated[int | None, typer.Option(help="Count truncation (default: exact).")] = None,
    size: Annotated[str | None, typer.Option(help="Network size: small (drums) or large.")] = None,
    frontend: Annotated[str | None, typer.Option(help="audio or sensor.")] = None,
    frame_rate: Annotated[float | None, typer.Option(help="Frames per second.")] = None,
    context: Annotated[str | None, typer.Option(help="Unlabelled context before each clip (stops late firing).")] = None,
    lookahead: Annotated[str | None, typer.Option(help="How long after a hit the model may wait before reporting it, e.g. 60ms (audio default: one frame).")] = None,
    stretch: Annotated[str | None, typer.Option(help="Time-stretch range LOW,HIGH (e.g. 0.8,1.25) or off.")] = None,
    band_limit: Annotated[float | None, typer.Option(help="Share of training copies heard as if recorded at a random lower sample rate, e.g. 0.3 (for models that must also work on low-rate files).", min=0.0, max=1.0)] = None,
    softness: Annotated[str | None, typer.Option(help="SoftLoc smoothing width (std), e.g. 100ms.")] = None,
    alpha_start: Annotated[float | None, typer.Option(help="SoftLoc: weight of the counting term at the start.")] = None,
    alpha_end: Annotated[float | None, typer.Option(help="SoftLoc: weight of the counting term at the end.")] = None,
    label_noise: Annotated[str | None, typer.Option(help="Experiment: move each training timestamp by noise of this size.")] = None,
    label_noise_kind: Annotated[str | None, typer.Option(help="gaussian, uniform or skewed.")] = None,
    calibrate_lag: Annotated[Path | None, typer.Option(help="Opt-in: estimate a constant lag from timestamps in this folder (validation recordings) and store it.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or auto.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run (reads OUTPUT.resume).")] = False,
    columns: ColumnsOpt = None, time_column: TimeColumnOpt = None, time_unit: TimeUnitOpt = None,
    rate: RateOpt = None, max_gap: MaxGapOpt = None, magnitude: MagnitudeOpt = False,
) -> None:
    """Train a detector from counts (or rough timestamps).

    Examples:

    * `eventcount train --counts labels.csv -o drums.pt`
    * `eventcount train --counts labels.csv --events ann/ --loss softloc --softness 100ms -o m.pt`
    """
    from eventcount.annotations import read_class_map
    from eventcount.config import ModelSpec
    from eventcount.labels import read_count_table

    train_cfg, frontend_cfg, network_cfg, decode_cfg = _configs(config, size)
    flags = {"loss": loss, "steps": steps, "batch_size": batch_size, "learning_rate": lr, "cmax": cmax,
             "val_fraction": val_fraction, "seed": seed, "device": device, "num_threads": threads,
             "context_s": seconds(context, "--context"), "stretch_factors": _stretch_factors(stretch),
             "band_limit": band_limit,
             "softness_s": seconds(softness, "--softness"), "alpha_start": alpha_start, "alpha_end": alpha_end,
             "label_noise_s": seconds(label_noise, "--label-noise"), "label_noise_kind": label_noise_kind}
    train_cfg = dataclasses.replace(train_cfg, **{k: v for k, v in flags.items() if v is not None})
    train_cfg.device = _device(train_cfg.device)
    if frontend:
        frontend_cfg.kind = frontend
    if frame_rate:
        frontend_cfg.frame_rate = frame_rate
    if lookahead is not None:
        frontend_cfg.detection_delay_frames = _lookahead_frames(seconds(lookahead, "--lookahead"), frontend_cfg.frame_rate)
    frontend_cfg.sensor.update(sensor_options(columns, time_column, time_unit, rate, max_gap, magnitude))
    table = run(read_count_table, counts)
    val_table = run(read_count_table, val) if val else None
    table, val_table = _select_classes(table, val_table, classes)
    spec = ModelSpec(classes=table.classes, frontend=frontend_cfg, network=network_cfg, decode=decode_cfg)
    mapping = run(read_class_map, class_map) if class_map else None
    summary = _run_training(table, spec, train_cfg, output, val_table, events, mapping, val_events, calibrate_lag,
                            resume)
    _print_training(summary, output)
    raise typer.Exit(0)


def _lookahead_frames(lookahead_s: float, frame_rate: float) -> int:
    """--lookahead in whole frames (the model file stores `detection_delay_frames`)."""
    frames = lookahead_s * frame_rate
    if lookahead_s < 0 or abs(frames - round(frames)) > 1e-6:
        fail(f"--lookahead: expected a whole number of frames at {frame_rate:g} frames/s (e.g. "
             f"{3 / frame_rate * 1000:g}ms), not {lookahead_s * 1000:g} ms", 2)
    return int(round(frames))


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _select_classes(table, val_table, classes: str | None):
    from eventcount.labels import CountTable

    if not classes:
        return table, val_table
    wanted = [c.strip() for c in classes.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in table.classes]
    if unknown:
        fail(f"--classes: unknown class(es) {', '.join(unknown)}; the labels have {', '.join(table.classes)}", 2)

    def subset(t):
        if t is None:
            return None
        idx = [t.classes.index(c) for c in wanted]
        clips = [dataclasses.replace(c, counts=[c.counts[i] for i in idx]) for c in t.clips]
        return CountTable(wanted, clips, t.source)

    return subset(table), subset(val_table)


def _run_training(table, spec, cfg, output, val_table, events, mapping, val_events, calibrate, resume):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from eventcount.train import train as train_model

    progress = Progress(TextColumn("[bold]training"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=err, disable=not show_progress())
    with progress:
        task = progress.add_task("train", total=cfg.steps, info="")
        state = {"val": ""}

        def on_step(report) -> None:
            if report.validation:
                v = report.validation
                state["val"] = f"val loss {v['loss']:.3f} count acc {v['count_accuracy']:.3f}"
                log.info("step %d: loss %.4f, %s", report.step, report.loss, state["val"])
            progress.update(task, completed=report.step, info=f"loss {report.loss:.3f}  {state['val']}")

        return run(train_model, table, spec, cfg, output, val_table, events, mapping, val_events, calibrate, resume,
                   on_step, lambda message: log.info(message))


def _print_training(summary: dict, output: Path) -> None:
    v = summary.get("validation", {})
    note = " (interrupted: a usable model was saved; continue with --resume)" if summary["interrupted"] else ""
    err.print(f"wrote {output} after {summary['seconds']:.0f} s{note}")
    if v:
        err.print(f"validation: count accuracy {v['count_accuracy']:.3f}, count MAE {v['count_mae']:.3f}")
    thresholds = ", ".join(f"{k} {d['threshold']:.2f}" for k, d in summary["thresholds"].items())
    err.print(f"thresholds: {thresholds}")


# ---------------------------------------------------------------- detect

@app.command()
def detect(
    inputs: Annotated[list[Path], typer.Argument(help="Recordings or folders of recordings.")],
    model: Annotated[str | None, typer.Option("-m", "--model", help="Shipped model name (see `eventcount models list`) or a .pt file.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output file (one input, with an extension) or folder.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="tsv, csv, audacity, jams or midi.")] = "tsv",
    threshold: Annotated[float | None, typer.Option(help="Detection threshold for every class (default: the model's).")] = None,
    tta: Annotated[int, typer.Option(help="Average this many time-stretched passes (more accurate, slower).")] = 1,
    save_activations: Annotated[bool, typer.Option(help="Also write <stem>.activations.npz (probabilities).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    columns: ColumnsOpt = None, time_column: TimeColumnOpt = None, time_unit: TimeUnitOpt = None,
    rate: RateOpt = None, max_gap: MaxGapOpt = None, magnitude: MagnitudeOpt = False,
) -> None:
    """Detect events with a trained model.

    Examples:

    * `eventcount detect song.wav` — default drum model, events to stdout
    * `eventcount detect songs/ -m my.pt -o events/ --tta 5`
    """
    from eventcount.detect import detect_file, output_path
    from eventcount.inference import Detector
    from eventcount.prepare import expand_sources
    from eventcount.signals import recording_extensions

    detector = run(Detector.load, model, _device(device))
    decode = dataclasses.replace(detector.spec.decode)
    if threshold is not None:
        decode.threshold, decode.thresholds = threshold, {}
    options = sensor_options(columns, time_column, time_unit, rate, max_gap, magnitude)
    files = run(expand_sources, inputs, recording_extensions(detector.spec.frontend.kind))
    single = len(files) == 1 and not inputs[0].is_dir()
    if not single and output is None:
        raise typer.BadParameter("several inputs need -o FOLDER for the event files", param_hint="-o")
    failures = 0
    for path in files:
        target = None
        if output is not None:
            to_file = single and not output.is_dir() and output.suffix != ""
            target = output if to_file else output_path(output, path, fmt)
            if target.exists() and not overwrite:
                err.print(f"[red]error:[/] {target} exists; use --overwrite to replace it", highlight=False)
                failures += 1
                continue
        if note := detector.low_rate_note(path):
            err.print(f"[yellow]warning:[/] {note}", highlight=False, soft_wrap=True)
        try:
            text = detect_file(detector, path, decode, fmt, target, tta, save_activations, options)
        except EventcountError as error:
            err.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
            failures += 1
            continue
        if text is not None:
            sys.stdout.write(text)
    if failures:
        err.print(f"{failures} of {len(files)} recordings failed")
        raise typer.Exit(1)


# ---------------------------------------------------------------- evaluate

@app.command()
def evaluate(
    reference: Annotated[Path, typer.Option(help="Reference event file or folder.")],
    estimate: Annotated[Path, typer.Option(help="Estimated event file or folder (paired by file stem).")],
    tolerance: Annotated[str, typer.Option(help="Matching window, e.g. 50ms.")] = "50ms",
    classes: Annotated[str | None, typer.Option(help="Only these classes (comma-separated).")] = None,
    class_map: Annotated[Path | None, typer.Option(help="YAML mapping raw reference labels to classes.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report as JSON.")] = None,
) -> None:
    """Score detections against reference timestamps (mir_eval onset matching).

    Example: `eventcount evaluate --reference ref/ --estimate est/ --tolerance 50ms --json report.json`
    """
    from eventcount.annotations import read_class_map
    from eventcount.evaluate import evaluate_paths, write_report

    tolerance_s = seconds(tolerance, "--tolerance")
    wanted = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    mapping = run(read_class_map, class_map) if class_map else None
    report = run(evaluate_paths, reference, estimate, tolerance_s, wanted, mapping)
    _print_report(report)
    if json_out:
        run(write_report, json_out, report)


def _fmt(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "–" if value is None else f"{value * scale:.{digits}f}"


def _print_report(report: dict) -> None:
    from rich.table import Table

    table = Table(title=f"Evaluation at ±{report['tolerance_s'] * 1000:g} ms ({len(report['files'])} files)")
    for column in ("class", "TP", "FP", "FN", "precision", "recall", "F", "F (file mean)", "offset ms", "offset std ms"):
        table.add_column(column, justify="right" if column != "class" else "left")
    rows = [(name, r) for name, r in report["per_class"].items()] + [("all", {"micro": report["micro"], "mean": report["mean"]})]
    for name, r in rows:
        m = r["micro"]
        table.add_row(name, str(m["tp"]), str(m["fp"]), str(m["fn"]), _fmt(m["precision"]), _fmt(m["recall"]),
                      _fmt(m["f_measure"]), _fmt(r["mean"]["f_measure"]), _fmt(m["offset_mean_s"], 1000, 1),
                      _fmt(m["offset_std_s"], 1000, 1))
    out.print(table)


# ---------------------------------------------------------------- pseudo-label

@app.command("pseudo-label")
def pseudo_label(
    sources: Annotated[list[Path], typer.Argument(help="Recordings, folders and .tar/.tar.gz/.tgz/.zip archives; with --merge: the shards' output folders.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder (with --merge: a folder or a .jsonl file for the merged manifest).")],
    model: Annotated[str | None, typer.Option("-m", "--model", help="Shipped model name (see `eventcount models list`) or a .pt file.")] = None,
    jobs: Annotated[int | None, typer.Option(help="Worker processes (default: the number of CPU cores).", min=1)] = None,
    shard: Annotated[str | None, typer.Option(help="Label only part INDEX/COUNT of the recordings, INDEX 0-based (e.g. 0/4 ... 3/4).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="tsv, csv, audacity, jams or midi.")] = "tsv",
    tta: Annotated[int, typer.Option(help="Average this many time-stretched passes (more accurate, slower).", min=1)] = 1,
    min_confidence: Annotated[float, typer.Option(help="Drop events less confident than this (0 to 1).", min=0.0, max=1.0)] = 0.0,
    overwrite: Annotated[bool, typer.Option(help="Label everything again (default: skip what an earlier run with this model finished). Needed after changing --tta or --min-confidence.")] = False,
    glob: Annotated[str | None, typer.Option(help="Only paths inside a folder or archive that match, e.g. 'disc1/*.wav'.")] = None,
    max_size: Annotated[str, typer.Option(help="Largest recording read, once decompressed (guards against compression bombs), e.g. 500MB.")] = "2GB",
    merge: Annotated[bool, typer.Option("--merge", help="Combine the manifests of the shard output folders given as SOURCES; report missing and duplicate recordings.")] = False,
    columns: ColumnsOpt = None, time_column: TimeColumnOpt = None, time_unit: TimeUnitOpt = None,
    rate: RateOpt = None, max_gap: MaxGapOpt = None, magnitude: MagnitudeOpt = False,
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
    from eventcount.sources import parse_shard
    from eventcount.units import parse_size

    options = {"jobs": jobs, "shard": _usage(parse_shard, shard, "--shard") if shard else None, "fmt": fmt,
               "tta": tta, "min_confidence": min_confidence, "overwrite": overwrite, "glob": glob,
               "max_bytes": _usage(parse_size, max_size, "--max-size"),
               "sensor_options": sensor_options(columns, time_column, time_unit, rate, max_gap, magnitude)}
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
    for line in lines[:limit]:
        err.print(f"[{style}]{kind}:[/] {line}", highlight=False, soft_wrap=True)
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


# ---------------------------------------------------------------- models

@models_app.command("list")
def models_list() -> None:
    """Show the shipped models with their classes, training data and measured scores."""
    from rich.table import Table

    from eventcount.checkpoint import list_models

    table = Table(title="Shipped models (use with -m NAME)")
    for column in ("name", "classes", "trained on", "scores"):
        table.add_column(column)
    for info in run(list_models):
        scores = ", ".join(f"{k} {v}" for k, v in info["scores"].items())
        table.add_row(info["name"], ", ".join(info["classes"]), str(info["data"]), scores)
    out.print(table)


if __name__ == "__main__":
    app()
