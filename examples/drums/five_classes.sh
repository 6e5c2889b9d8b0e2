#!/usr/bin/env bash
# What adding toms (TT) and cymbals (CY) costs kick, snare and hi-hat (issue #20): the shipped recipe's network
# trained twice on the same files, seed and steps, with classes.yaml (3 classes) and classes5.yaml (5), each scored
# on the held-out real kit alone and under held-out songs and on TimGM6mb. A reduced version of train_songs.sh:
# 3.6 h of training audio instead of 12.2 h (the 18 earlier kits, the three real kits and POP909 songs), 40 minutes
# of background songs, 3000 steps, 30 minutes of each evaluation set. ~20 min of rendering, ~23 min of training and ~2 min of scoring
# on 2 cores.
#
#   examples/drums/five_classes.sh [DATA]        (STAGE=render|train|score to run one stage)
set -euo pipefail
data=${1:-/work/data/c5}
work=$data/work
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED:-$here/../../../shared/data}
stage=${STAGE:-all}
py=${PYTHON:-python}
source "$here/kits.sh"
render() { nice -n 5 "$py" "$here/render_groove.py" --jobs 2 "$@"; }
SETS=(val_muldjord val_muldjord_acc val_heldout)

if [[ $stage == all || $stage == render ]]; then
    render --split train --max-duration 3600 --soundfont "$SF2/FluidR3_GM.sf2" --soundfont "$SF3/MuseScore_General.sf3" \
        --augment --out "$data/train"
    render --split train --max-duration 3600 --seed 1 --augment "${H2[@]}" --distractors "Gimme A Hand 1.0" \
        --distractors "circAfrique v4" --out "$data/train_h2"
    render --split train --max-duration 1800 --seed 5 --augment "${REAL[@]}" "${songs[@]}" --out "$data/train_real_acc"
    render --split train --max-duration 3600 --seed 8 --augment --vary-instruments --soundfont "$SF2/FluidR3_GM.sf2" \
        --soundfont "$SF3/MuseScore_General.sf3" "${H2[@]}" "${songs[@]}" --accompaniment-share 0.6 \
        --out "$data/train_more_acc"
    "$py" "$here/render_accompaniment.py" --pop909 "$shared/pop909-midi" --out "$data/background" --files 20 \
        --seconds 120 --seed 0 --soundfont "$SF2/FluidR3_GM.sf2" --soundfont "$SF3/MuseScore_General.sf3"
    render --split validation --limit 16 --seed 7 "${REAL[@]}" --soundfont "$SF2/FluidR3_GM.sf2" \
        --hydrogen-kit "The Black Pearl 1.0" --hydrogen-kit Audiophob "${songs[@]}" --accompaniment-share 0.5 \
        --out "$data/val_acc"
    render --split validation --max-duration 1800 "${MULDJORD[@]}" --out "$data/val_muldjord"
    render --split validation --max-duration 1800 "${MULDJORD[@]}" "${heldout_songs[@]}" --out "$data/val_muldjord_acc"
    render --split validation --max-duration 1800 --soundfont "$SF2/TimGM6mb.sf2" --out "$data/val_heldout"
fi

if [[ $stage == all || $stage == train ]]; then
    mkdir -p "$work"
    train=("$data/train" "$data/train_h2" "$data/train_real_acc" "$data/train_more_acc")
    common=(--size large --seed 0 --config "$here/model_fast.yaml" --lookahead 60ms --band-limit 0.3
            --stretch 0.7,1.4 --background "$data/background" --background-share 0.5 --background-db=-6,12
            --threads 1 --overwrite --steps "${STEPS:-3000}")
    for n in 3 5; do
        map="$here/classes.yaml"; [[ $n == 5 ]] && map="$here/classes5.yaml"
        eventcount -q prepare "${train[@]}" --class-map "$map" -o "$work/train$n.csv" --overwrite
        eventcount -q prepare "$data/val_acc" --class-map "$map" -o "$work/val$n.csv" --overwrite
        nice -n 5 eventcount train --counts "$work/train$n.csv" --val "$work/val$n.csv" "${common[@]}" \
            -o "$work/c$n.pt" > "$work/c$n.log" 2>&1 &
    done
    wait
fi

if [[ $stage == all || $stage == score ]]; then
    for n in 3 5; do
        for set in "${SETS[@]}"; do
            eventcount -q detect "$data/$set" -m "$work/c$n.pt" -o "$work/c$n.$set" --overwrite
            for classes in KD,SD,HH TT,CY; do
                [[ $n == 3 && $classes == TT,CY ]] && continue
                eventcount -q evaluate --reference "$data/$set" --estimate "$work/c$n.$set" \
                    --class-map "$here/classes5.yaml" --classes "$classes" --tolerance 50ms \
                    --json "$work/c$n.$set.${classes//,/}.json"
            done
        done
    done
fi
