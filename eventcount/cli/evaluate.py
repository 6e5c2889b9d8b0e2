"""`eventcount evaluate`: score detections against reference timestamps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eventcount.cli.common import app, out, run, seconds
from eventcount.config import DEFAULT_TOLERANCE_S
from eventcount.errors import EventcountError


@app.command()
def evaluate(
    reference: Annotated[Path, typer.Option(help="Reference event file or folder.")],
    estimate: Annotated[Path, typer.Option(help="Estimated event file or folder (paired by file stem).")],
    tolerance: Annotated[str, typer.Option(help="Matching window, e.g. 50ms (at most 10 s).")] = f"{DEFAULT_TOLERANCE_S * 1000:g}ms",
    classes: Annotated[str | None, typer.Option(help="Only these classes (comma-separated).", show_default="every class in the references")] = None,
    class_map: Annotated[Path | None, typer.Option(help="YAML mapping raw reference labels to classes.", show_default="labels are classes")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report as JSON.", show_default="no JSON")] = None,
) -> None:
    """Score detections against reference timestamps (mir_eval onset matching).

    Example: `eventcount evaluate --reference ref/ --estimate est/ --tolerance 50ms --json report.json`
    """
    from eventcount.annotations import read_class_map
    from eventcount.evaluate import check_tolerance, evaluate_paths, write_report

    try:
        tolerance_s = check_tolerance(seconds(tolerance, "--tolerance"))
    except EventcountError as error:
        raise typer.BadParameter(str(error).split(": ", 1)[1], param_hint="--tolerance") from None
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

