"""Label-noise robustness: counts vs cross-entropy vs SoftLoc when training timestamps are misaligned.

    python bench/label_noise.py --train DIR --val DIR --test DIR --class-map classes.yaml [--out DIR]
    python bench/label_noise.py --report DIR/results.json [...] [--report-seeds N]   # table of (partial) runs

For sigma in {0, 50, 100, 150, 200} ms every training timestamp is moved once by Gaussian noise (seeded;
validation and test timestamps stay clean), then `ce` and `softloc` are trained on the same clips; `counts`
uses no timestamps, so it is trained once. Each model is scored on the clean test timestamps at 50 ms, next
to the F1 of the noisy training labels themselves used as predictions. Prints a markdown table.
When --test is the --val folder, the test files are the ones after the first --val-files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import yaml

from eventcount.annotations import events_by_class, read_class_map, read_events
from eventcount.config import DEFAULT_TOLERANCE_S, ModelSpec, TrainConfig
from eventcount.detection import Detector
from eventcount.evaluate import evaluate, score_detector
from eventcount.prepare import DEFAULT_WINDOW_S, make_count_table
from eventcount.recordings import event_file_for
from eventcount.train import train

SIGMAS_MS = (0, 50, 100, 150, 200)
# --losses names besides the losses themselves: softloc whose counting term takes each clip's count from its
# timestamps as they are (before the count distribution over uncertain clip edges became the default)
VARIANTS = {"softloc_plain": ("softloc", {"edge_count_prior": False})}


def recordings(folder: Path, limit: int, skip: int = 0) -> list[Path]:
    return sorted(folder.glob("*.wav"))[skip: skip + limit]


def score(model: Path, files: list[Path], class_map: dict[str, str], classes: list[str]) -> float:
    report = score_detector(Detector.load(model), files, classes=classes, class_map=class_map)
    return report["mean"]["f_measure"]


def noisy_label_f1(files: list[Path], class_map: dict[str, str], classes: list[str], sigma_s: float,
                   seed: int = 0) -> float:
    """F1 of the perturbed timestamps against the clean ones (what the labels alone would score)."""
    rng = np.random.default_rng(7919 + seed)
    scored = []
    for path in files:
        reference = events_by_class(read_events(event_file_for(path)), classes, class_map)
        noisy = {c: np.sort(np.maximum(t + rng.normal(0, sigma_s, t.size), 0)) for c, t in reference.items()}
        scored.append((path.stem, reference, noisy))
    return evaluate(scored, classes, DEFAULT_TOLERANCE_S)["mean"]["f_measure"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path)
    parser.add_argument("--val", type=Path)
    parser.add_argument("--test", type=Path)
    parser.add_argument("--class-map", type=Path)
    parser.add_argument("--out", type=Path, default=Path("label_noise_runs"))
    parser.add_argument("--train-files", type=int, default=60)
    parser.add_argument("--val-files", type=int, default=12)
    parser.add_argument("--test-files", type=int, default=30)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--sigmas", default=",".join(map(str, SIGMAS_MS)))
    parser.add_argument("--losses", default="counts,ce,softloc",
                        help="comma-separated: counts, ce, softloc, softloc_plain (softloc counting the clip "
                             "timestamps as they are, without the uncertain-edge count distribution)")
    parser.add_argument("--seeds", default="0", help="comma-separated; the table shows the mean over seeds")
    parser.add_argument("--window", type=float, default=DEFAULT_WINDOW_S, help="counts clip length, seconds")
    parser.add_argument("--window-timestamps", type=float, default=DEFAULT_WINDOW_S,
                        help="clip length for ce and softloc, seconds")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="a TrainConfig option for every run, e.g. alpha_end=0.97 (repeatable)")
    parser.add_argument("--report", type=Path, nargs="+", metavar="RESULTS_JSON",
                        help="only print the table of finished or interrupted runs' results.json files "
                             "(several: runs of other seeds, pooled)")
    parser.add_argument("--report-seeds", type=int, help="with --report: use the first N seeds of each cell")
    args = parser.parse_args()
    if args.report:
        pooled: dict[str, dict[int, list[float]]] = {}
        for path in args.report:
            for loss, row in json.loads(path.read_text(encoding="utf-8")).items():
                for sigma, values in row.items():
                    pooled.setdefault(loss, {}).setdefault(int(sigma), []).extend(values)
        print_table(pooled, args.report_seeds)
        return
    if not all((args.train, args.val, args.test, args.class_map)):
        parser.error("--train, --val, --test and --class-map are required (or --report)")
    class_map = read_class_map(args.class_map)
    classes = list(dict.fromkeys(class_map.values()))
    train_files = recordings(args.train, args.train_files)
    tables = {w: make_count_table(train_files, None, class_map, classes, window_s=w)
              for w in {args.window, args.window_timestamps}}
    val_table = make_count_table(recordings(args.val, args.val_files), None, class_map, classes)
    test_files = recordings(args.test, args.test_files, args.val_files if args.test == args.val else 0)
    args.out.mkdir(parents=True, exist_ok=True)
    sigmas = [int(s) for s in args.sigmas.split(",")]
    losses = args.losses.split(",")
    results: dict[str, dict[int, list[float]]] = {name: {s: [] for s in sigmas}
                                                  for name in [*losses, "noisy labels"]}
    for seed in (int(s) for s in args.seeds.split(",")):
        base = TrainConfig(steps=args.steps, seed=seed, validate_every=max(1, args.steps // 4),
                           **train_options(args.set))
        for sigma_ms in sigmas:
            for loss in losses:
                if loss == "counts" and sigma_ms != sigmas[0]:  # uses no timestamps: one run per seed
                    results[loss][sigma_ms].append(results[loss][sigmas[0]][-1])
                    continue
                name, options = VARIANTS.get(loss, (loss, {}))
                config = dataclasses.replace(base, loss=name, label_noise_s=sigma_ms / 1000, **options)
                model = args.out / f"{loss}_{sigma_ms}ms_seed{seed}.pt"
                table = tables[args.window if name == "counts" else args.window_timestamps]
                started = time.time()
                train(table, ModelSpec(classes=classes), config, model, val_table=val_table, class_map=class_map,
                      overwrite=True)
                results[loss][sigma_ms].append(score(model, test_files, class_map, classes))
                print(f"seed {seed} {loss} sigma {sigma_ms} ms: F1 {results[loss][sigma_ms][-1]:.4f} "
                      f"({time.time() - started:.0f} s)", flush=True)
            results["noisy labels"][sigma_ms].append(
                noisy_label_f1(test_files, class_map, classes, sigma_ms / 1000, seed))
            (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\n{len(train_files)} training recordings, {args.steps} steps, windows {args.window} s (counts) / "
          f"{args.window_timestamps} s (ce, softloc), seeds {args.seeds}, test: {len(test_files)} files")
    print_table(results)


def train_options(settings: list[str]) -> dict:
    """OPTION=VALUE strings -> TrainConfig options, each value parsed as YAML (0.97, true, [1, 2])."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    options = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or key not in known:
            raise SystemExit(f"--set {setting!r}: expected OPTION=VALUE with OPTION one of {', '.join(sorted(known))}")
        options[key] = yaml.safe_load(value)
    return options


def print_table(results: dict[str, dict[int, list[float]]], seeds: int | None = None) -> None:
    """Markdown table of mean F1 (± half the range over seeds), from the first `seeds` runs of each cell."""
    sigmas = sorted({s for row in results.values() for s in row})
    print("| loss | " + " | ".join(f"σ = {s} ms" for s in sigmas) + " |")
    print("|---|" + "---:|" * len(sigmas))
    for loss, row in results.items():
        print(f"| {loss} | " + " | ".join(cell(row.get(s, [])[:seeds]) for s in sigmas) + " |")


def cell(values: list[float]) -> str:
    """Mean over seeds, with the spread (max - min) when there are several."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {(max(values) - min(values)) / 2:.3f}"

if __name__ == "__main__":
    main()
