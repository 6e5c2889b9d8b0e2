"""Summarise `eventcount evaluate --json` reports: per-recording counts and a small JSON of scores.

    python examples/scores.py report_150ms.json -o scores.json

Prints, per recording, the true and detected event counts and the count error |detected - true| / true,
then writes (with -o) a small JSON of scores:
  f1_<tol>ms      pooled F-measure of every report given (one per tolerance)
  offset_ms       mean timing offset (detected - true) of the matched events, first report
  count_error_pct mean over recordings of the absolute count error in %
  count_error_max_pct, recordings
examples/model_info.py records that JSON in a model file for `eventcount models list`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eventcount.atomic import atomic_write


def per_file_counts(report: dict) -> list[tuple[str, int, int]]:
    """(name, true count, detected count) per file of an evaluation report."""
    return [(f["name"], f["tp"] + f["fn"], f["tp"] + f["fp"]) for f in report["files"]]


def scores(reports: list[dict]) -> dict[str, float | int]:
    first = reports[0]
    out: dict[str, float | int] = {}
    for report in reports:
        out[f"f1_{report['tolerance_s'] * 1000:g}ms"] = round(report["micro"]["f_measure"], 4)
    offset = first["micro"]["offset_mean_s"]
    if offset is not None:
        out["offset_ms"] = round(offset * 1000, 1)
    errors = [abs(found - true) / true * 100 for _, true, found in per_file_counts(first) if true]
    out["count_error_pct"] = round(sum(errors) / len(errors), 2)
    out["count_error_max_pct"] = round(max(errors), 2)
    out["recordings"] = len(errors)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", type=Path, nargs="+", help="evaluate --json reports (first: per-file counts)")
    parser.add_argument("-o", "--output", type=Path, help="write the scores as JSON here")
    args = parser.parse_args()
    reports = [json.loads(p.read_text(encoding="utf-8")) for p in args.reports]
    print(f"{'recording':44s} {'true':>6s} {'found':>6s} {'error %':>8s}")
    for name, true, found in per_file_counts(reports[0]):
        error = f"{abs(found - true) / true * 100:8.2f}" if true else "       –"
        print(f"{name:44s} {true:6d} {found:6d} {error}")
    values = scores(reports)
    print(json.dumps(values))
    if args.output:
        with atomic_write(args.output) as handle:
            json.dump(values, handle, indent=2)
            handle.write("\n")


if __name__ == "__main__":
    main()
