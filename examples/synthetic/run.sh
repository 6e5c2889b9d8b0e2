#!/usr/bin/env bash
# The whole loop on synthetic data, under two minutes on a laptop CPU (99-119 s on 2 busy cores, 2026-12-03 and -04):
# timestamps -> counts only -> train from counts -> detect -> evaluate against the timestamps.
set -euo pipefail
work=${1:-work/synthetic}
python "$(dirname "$0")/make_data.py" "$work"
eventcount prepare "$work/train" -o "$work/labels.csv" --overwrite  # 0.25 s windows, counts per class
eventcount train --counts "$work/labels.csv" -o "$work/model.pt" --steps 600 --overwrite
eventcount detect "$work/test" -m "$work/model.pt" -o "$work/detected" --overwrite
eventcount evaluate --reference "$work/test" --estimate "$work/detected" --tolerance 50ms --json "$work/report.json"
