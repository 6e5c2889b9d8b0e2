"""Edit the plain-data fields of a model file that `eventcount train` cannot set yet.

    python examples/model_info.py steps.pt --data "Oxford step data ..." --scores scores.json

--data and --scores fill the `training` dict's `data` (a short description; train's own summary of the
data moves to `data_summary`) and `scores` (a small dict of measured scores, as written by examples/scores.py),
which `eventcount models list` shows. The file is loaded with weights_only=True (plain data only) and replaced
atomically.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from eventcount.atomic import atomic_write


def edit_model(path: Path, data: str | None = None, scores: dict | None = None) -> None:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    training = payload.setdefault("training", {})
    if data is not None:
        if isinstance(training.get("data"), dict):  # train's own summary (clips, recordings, hours): keep it
            training["data_summary"] = training["data"]
        training["data"] = data
    if scores is not None:
        training["scores"] = scores
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="model file (.pt) to edit in place")
    parser.add_argument("--data", help="short description of the training data")
    parser.add_argument("--scores", type=Path, help="JSON file of measured scores (examples/scores.py -o)")
    args = parser.parse_args()
    scores = json.loads(args.scores.read_text(encoding="utf-8")) if args.scores else None
    edit_model(args.model, args.data, scores)
    print(f"updated {args.model}")


if __name__ == "__main__":
    main()
