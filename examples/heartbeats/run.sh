#!/usr/bin/env bash
# Heartbeats from an ECG, learned from beat counts per 1 s window only (MIT-BIH record 100).
#   examples/heartbeats/run.sh [WORK_DIR]       data: $EVENTCOUNT_DATA (default ../shared/data)
# Trains on minutes 0-15 and scores beat times on minutes 15-20 (never seen in training).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${1:-$repo/work/heartbeats}
data=${EVENTCOUNT_DATA:-$repo/../shared/data}

python "$here/make_data.py" "$data/mitbih-100" "$work"
eventcount prepare "$work/train/record100_0-15min.csv" --events "$work/events/train" --classes beat \
    --window 1s --hop 1s --columns MLII_mV -o "$work/labels.csv"
# Counts only: no timestamps are used for training, thresholds or timing.
eventcount train --config "$here/beats.yaml" --counts "$work/labels.csv" -o "$work/beats.pt"
eventcount detect "$work/test" -m "$work/beats.pt" -o "$work/detected" --overwrite --save-activations
eventcount evaluate --reference "$work/events/test" --estimate "$work/detected" --tolerance 50ms \
    --json "$work/report_50ms.json"
python "$here/../scores.py" "$work/report_50ms.json" -o "$work/scores.json"
python "$here/../model_info.py" "$work/beats.pt" --scores "$work/scores.json" \
    --data "MIT-BIH record 100 (ODC-By 1.0), minutes 0-15, lead MLII; beat counts per 1 s window"
