#!/usr/bin/env bash
# Train the shipped drum model (eventcount/models/drums.pt) from counts only, and the fully supervised
# baseline beside it, then score both on the validation split rendered with the held-out kit.
#
#   examples/drums/train_model.sh [DATA] [WORK]
#
# DATA holds train/, val_seen/ and val_heldout/ made by render_groove.py (see README.md, "Shipped model").
set -euo pipefail
data=${1:-/work/data/groove}
work=${2:-$data/work}
steps=${STEPS:-6000}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"

# Count labels: 0.25 s windows, KD/SD/HH counts; the timestamps are not used for training.
eventcount prepare "$data/train" --class-map "$here/classes.yaml" -o "$work/train.csv"
eventcount prepare "$data/val_seen" --class-map "$here/classes.yaml" -o "$work/val.csv"

# Counts only: thresholds are chosen by count agreement on val_seen (no timestamps anywhere).
eventcount train --counts "$work/train.csv" --val "$work/val.csv" --steps "$steps" --seed 0 -o "$work/drums.pt"

# The fully supervised baseline: the same network and data, stepwise cross-entropy on exact timestamps.
eventcount train --counts "$work/train.csv" --val "$work/val.csv" --steps "$steps" --seed 0 --loss ce \
    --class-map "$here/classes.yaml" -o "$work/drums_ce.pt"

for model in drums drums_ce; do
    eventcount detect "$data/val_heldout" -m "$work/$model.pt" -o "$work/$model.val_heldout" --overwrite
    eventcount evaluate --reference "$data/val_heldout" --estimate "$work/$model.val_heldout" \
        --class-map "$here/classes.yaml" --classes KD,SD,HH --tolerance 50ms --json "$work/$model.val_heldout.json"
done
