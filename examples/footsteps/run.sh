#!/usr/bin/env bash
# Footsteps from a phone accelerometer, learned from step counts per 5 s window only (Oxford step data).
#   examples/footsteps/run.sh [WORK_DIR]        data: $EVENTCOUNT_DATA (default ../shared/data)
#   SHIP=1 examples/footsteps/run.sh            also installs the model as models/steps.pt
# Held out: every recording of walker Dario (12, six placements); trained on Jamie and Carmelo (36).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${1:-$repo/work/footsteps}
data=${EVENTCOUNT_DATA:-$repo/../shared/data}
sensor=(--columns 2,3,4 --time-column 0 --time-unit ns --magnitude)   # only `prepare` needs them

python "$here/make_data.py" "$data/oxford-steps/optimisation" "$work"
eventcount prepare "$work"/train/*.csv --events "$work/events/train" --classes step --window 5s --hop 1s \
    "${sensor[@]}" -o "$work/labels.csv"
eventcount train --config "$here/steps.yaml" --counts "$work/labels.csv" -o "$work/steps.pt"
eventcount detect "$work/test" -m "$work/steps.pt" -o "$work/detected" --overwrite
eventcount evaluate --reference "$work/events/test" --estimate "$work/detected" --tolerance 150ms \
    --json "$work/report_150ms.json"
eventcount evaluate --reference "$work/events/test" --estimate "$work/detected" --tolerance 50ms \
    --json "$work/report_50ms.json"
python "$here/../scores.py" "$work/report_150ms.json" "$work/report_50ms.json" -o "$work/scores.json"
about="Oxford step data (CC BY 4.0): 36 walks (32 train, 4 validation) by Jamie and Carmelo, 7 placements"
python "$here/../model_info.py" "$work/steps.pt" --scores "$work/scores.json" --data "$about; step counts per 5 s"
if [[ "${SHIP:-0}" == 1 ]]; then
    install -m 644 "$work/steps.pt" "$repo/models/steps.pt"
    eventcount models list
fi
