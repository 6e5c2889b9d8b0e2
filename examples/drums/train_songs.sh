#!/usr/bin/env bash
# The drum model for whole songs and real kits (issue #20): render Groove performances with real sampled kits and
# the soundfont/Hydrogen kits, with POP909 accompaniment under 70 % of them, and fine-tune the shipped model on it
# (counts only), then score it on the held-out real kit with and without held-out accompaniment and on TimGM6mb.
#
#   examples/drums/train_songs.sh [DATA] [WORK]        (STAGE=render|train|score to run one stage)
#
# Held out of all training: the real kit MuldjordKit (close and room mixes), POP909 songs 810-909, TimGM6mb.
# One process throughout (the development machine has 2 shared cores): --jobs 1, --threads 1.
set -euo pipefail
data=${1:-/work/data/groove32}
work=${2:-$data/work_songs}
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED:-$here/../../../shared/data}
steps=${STEPS:-2500}
lr=${LR:-5e-4}
base=${BASE:-drums}
stage=${STAGE:-all}
py=${PYTHON:-python}
classes="$here/classes.yaml"
SF2=/usr/share/sounds/sf2 SF3=/usr/share/sounds/sf3
kits=$shared/drumkits
render() { nice -n 5 "$py" "$here/render_groove.py" "$@"; }
songs=(--accompaniment "$shared/pop909-midi" --songs 1-809 --accompaniment-share 0.7 --accompaniment-db=-6,12
       --accompaniment-soundfont "$SF2/FluidR3_GM.sf2" --accompaniment-soundfont "$SF3/MuseScore_General.sf3")
heldout_songs=(--accompaniment "$shared/pop909-midi" --songs 810-909 --accompaniment-share 1 --accompaniment-db 0,0
               --accompaniment-soundfont "$SF2/FluidR3_GM.sf2" --accompaniment-soundfont "$SF2/TimGM6mb.sf2")
H2=(--hydrogen-kit Audiophob --hydrogen-kit BJA_Pacific --hydrogen-kit ColomboAcousticDrumkit
    --hydrogen-kit ElectricEmpireKit --hydrogen-kit ForzeeStereo --hydrogen-kit HardElectro1
    --hydrogen-kit Millo-Drums_v.1 --hydrogen-kit Millo_MultiLayered2 --hydrogen-kit Millo_MultiLayered3
    --hydrogen-kit "The Black Pearl 1.0" --hydrogen-kit VariBreaks --hydrogen-kit rumpf_kit_z01_h2)
REAL=(--hydrogen-kit "$kits/GogodzePhuVolII-close" --hydrogen-kit "$kits/GogodzePhuVolII-room"
      --hydrogen-kit "$kits/SamsSonor-mix")
MULDJORD=(--hydrogen-kit "$kits/MuldjordKit-close" --hydrogen-kit "$kits/MuldjordKit-room")

if [[ $stage == all || $stage == render ]]; then
    # evaluation: the 64 performances of val_seen with the held-out real kit, alone and under held-out songs at 0 dB
    render --split validation --max-duration 1800 "${MULDJORD[@]}" --out "$data/val_muldjord"
    render --split validation --max-duration 1800 "${MULDJORD[@]}" "${heldout_songs[@]}" --out "$data/val_muldjord_acc"
    render --split validation --soundfont "$SF2/TimGM6mb.sf2" --out "$data/val_heldout"
    # training: the three real kits that are not held out, and the soundfont and Hydrogen kits of the shipped model
    render --split train --max-duration 3600 --seed 5 --augment "${REAL[@]}" "${songs[@]}" --out "$data/train_real_acc"
    render --split train --limit 77 --seed 6 --augment --soundfont "$SF2/FluidR3_GM.sf2" \
        --soundfont "$SF3/MuseScore_General.sf3" --soundfont "$SF2/FluidR3_GM.sf2@16" --soundfont "$SF2/FluidR3_GM.sf2@32" \
        "${H2[@]}" "${songs[@]}" --out "$data/train_kits_acc"
    # thresholds: 16 validation performances with training kits, half of them under training songs
    render --split validation --limit 16 --seed 7 "${REAL[@]}" --soundfont "$SF2/FluidR3_GM.sf2" \
        --hydrogen-kit "The Black Pearl 1.0" --hydrogen-kit Audiophob "${songs[@]}" --accompaniment-share 0.5 \
        --out "$data/val_acc"
fi

if [[ $stage == all || $stage == train ]]; then
    mkdir -p "$work"
    eventcount prepare "$data/train_real_acc" "$data/train_kits_acc" --class-map "$classes" -o "$work/train.csv"
    eventcount prepare "$data/val_acc" --class-map "$classes" -o "$work/val.csv"
    # Fine-tune the shipped model (the shipped recipe's options; a fresh AdamW and schedule, lower learning rate).
    "$py" "$here/start_from.py" "$base" "$work/drums_songs.pt" --steps "$steps" --lr "$lr"
    OMP_NUM_THREADS=1 nice -n 5 eventcount train --counts "$work/train.csv" --val "$work/val.csv" --steps "$steps" \
        --lr "$lr" --size large --seed 0 --config "$here/model.yaml" --lookahead 60ms --band-limit 0.3 \
        --stretch 0.7,1.4 --threads 1 -o "$work/drums_songs.pt" --resume
fi

if [[ $stage == all || $stage == score ]]; then
    for model in ${MODELS:-drums $work/drums_songs.pt}; do
        name=$(basename "$model" .pt)
        for set in val_muldjord val_muldjord_acc val_heldout; do
            nice -n 5 eventcount detect "$data/$set" -m "$model" -o "$work/$name.$set" --overwrite
            eventcount evaluate --reference "$data/$set" --estimate "$work/$name.$set" --class-map "$classes" \
                --classes KD,SD,HH --tolerance 50ms --json "$work/$name.$set.json"
        done
    done
fi
