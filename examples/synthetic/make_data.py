"""Generate a small synthetic drum-like set (low thumps, mid bursts, high clicks) with timestamps.

    python examples/synthetic/make_data.py work/synthetic
writes work/synthetic/{train,test}/clipNNN.wav with clipNNN.events.tsv beside each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eventcount.synthetic import make_synthetic_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--train", type=int, default=24, help="training recordings (10 s each)")
    parser.add_argument("--test", type=int, default=6, help="held-out recordings (10 s each)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    make_synthetic_set(args.out / "train", args.train, 10.0, seed=args.seed)
    make_synthetic_set(args.out / "test", args.test, 10.0, seed=args.seed + 1000)
    print(f"wrote {args.train} training and {args.test} test recordings under {args.out}")


if __name__ == "__main__":
    main()
