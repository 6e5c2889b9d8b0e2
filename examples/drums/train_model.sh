#!/usr/bin/env bash
# Train the shipped drum model (eventcount/models/drums.pt) from counts only, and the fully supervised
# baseline beside it, then score both on the validation split rendered with the held-out kit.
#
#   examples/drums/train_model.sh [DATA] [WORK]
#
# DATA holds train/, train_kits/, val_seen/ and val_heldout/ made by render_groove.py (README.md, "Data sets").
set -euo pipefail
data=${1:-/work/data/groove}
work=${2:-$data/work}
steps=${STEPS:-4000}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"

# Count labels: 0.25 s windows, KD/SD/HH counts; the timestamps are not used for training.
eventcount prepare "$data/train" "$data/train_kits" --class-map "$here/classes.yaml" -o "$work/train_all.csv"
eventcount prepare "$data/train" --class-map "$here/classes.yaml" -o "$work/train.csv"
eventcount prepare "$data/val_seen" --class-map "$here/classes.yaml" -o "$work/val.csv"
# thresholds are chosen on the first 20 val_seen performances (enough, and quick to validate on)
python - "$work/val.csv" "$work/val_small.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
keep = sorted({r[0] for r in rows[1:]})[:20]
csv.writer(open(sys.argv[2], "w", newline="")).writerows([rows[0]] + [r for r in rows[1:] if r[0] in keep])
PY

# Counts only: thresholds are chosen by count agreement on val_seen (no timestamps anywhere).
eventcount train --counts "$work/train_all.csv" --val "$work/val_small.csv" --steps "$steps" --seed 0 \
    -o "$work/drums.pt"

# The fully supervised baseline measured in BENCHMARKS.md: stepwise cross-entropy on exact timestamps,
# the same network, on the first training set (train/ only, 3,000 steps).
eventcount train --counts "$work/train.csv" --val "$work/val_small.csv" --steps 3000 --seed 0 --loss ce \
    --class-map "$here/classes.yaml" -o "$work/drums_ce.pt"

for model in drums drums_ce; do
    eventcount detect "$data/val_heldout" -m "$work/$model.pt" -o "$work/$model.val_heldout" --overwrite
    eventcount evaluate --reference "$data/val_heldout" --estimate "$work/$model.val_heldout" \
        --class-map "$here/classes.yaml" --classes KD,SD,HH --tolerance 50ms --json "$work/$model.val_heldout.json"
done
