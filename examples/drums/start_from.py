"""Start a training from a model's weights: write the `OUTPUT.resume` file that `eventcount train --resume` reads.

    python examples/drums/start_from.py drums work/drums_new.pt --steps 2500 --lr 5e-4
    eventcount train ... --steps 2500 --lr 5e-4 -o work/drums_new.pt --resume

The resume file holds the model's weights at step 0 with a fresh AdamW optimiser and learning-rate schedule
(warm-up, then cosine decay over --steps), so `train --resume` fine-tunes the model on new data instead of
training from random weights. --steps and --lr must be the ones given to `eventcount train`, and the network and
front end (`--config`, `--size`) must be the model's own, or loading the weights fails.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from eventcount.atomic import atomic_write
from eventcount.checkpoint import load_model
from eventcount.config import TrainConfig
from eventcount.train import make_optimizer, resume_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model name (drums) or file to start from")
    parser.add_argument("output", type=Path, help="the -o of the training run; OUTPUT.resume is written")
    parser.add_argument("--steps", type=int, required=True, help="the training run's --steps")
    parser.add_argument("--lr", type=float, default=TrainConfig.learning_rate, help="the training run's --lr")
    args = parser.parse_args()
    model, _, _ = load_model(args.model)
    model.train()
    optimizer, scheduler = make_optimizer(model, TrainConfig(steps=args.steps, learning_rate=args.lr))
    state = {"step": 0, "history": [], "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict()}
    with atomic_write(resume_path(args.output), "wb") as handle:
        torch.save(state, handle)
    print(f"wrote {resume_path(args.output)}: {args.model} at step 0, lr {args.lr}, {args.steps} steps")


if __name__ == "__main__":
    main()
