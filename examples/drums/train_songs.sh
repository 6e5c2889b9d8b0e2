#!/usr/bin/env bash
# The shipped drum model (models/drums.pt, 2026-12-05; issue #20): render Groove performances with the previous
# recipe's 18 kits (8.1 h) and, 4.07 h more, with three real sampled kits and the soundfont/Hydrogen kits under POP909
# accompaniment in part of those files (about 1.9-2.4 h), train the network (examples/drums/model_fast.yaml: its front end
# has the 18 bins of a 2,048-sample window below 300 Hz as features of their own, then 62 mel bands) from scratch
# on counts only (and the same network with --loss ce on the exact timestamps, as the baseline), continue the
# counts-only model for as many steps again from its weights at half the learning rate (stage `continue`: the
# shipped model), then score them on the held-out real kit alone and under held-out songs, on TimGM6mb and on four
# more kits never heard in training. STAGE=oracle (not part of `all`) measures how far the network gets on the
# held-out real kit when that kit is no longer held out: the shipped model trained 3,000 steps more on 1 h of
# MuldjordKit renderings of training performances (counts only, and with --loss ce on the exact timestamps).
#
#   examples/drums/train_songs.sh [DATA] [WORK]        (STAGE=render|train|continue|score|oracle to run one stage)
#
# Held out of all training: the real kit MuldjordKit (close and room mixes), POP909 songs 810-909, TimGM6mb, AVL
# Red Zeppelin, GMRockKit, TR808EmulationKit, OPL-3. One process per job (the development machine has 2 shared
# cores): --threads 1; the counts-only and cross-entropy trainings run side by side.
set -euo pipefail
data=${1:-/work/data/groove32}
work=${2:-$data/work10}
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED:-$here/../../../shared/data}
steps=${STEPS:-6000}
config=${CONFIG:-$here/model_fast.yaml}
stage=${STAGE:-all}
py=${PYTHON:-python}
classes="$here/classes.yaml"
source "$here/kits.sh"
render() { nice -n 5 "$py" "$here/render_groove.py" "$@"; }
UNSEEN=(val_redzep val_gmrock val_tr808 val_opl3)

if [[ $stage == all || $stage == render ]]; then
    # evaluation: the 64 performances of val_seen with the held-out real kit, alone and under held-out songs at 0 dB,
    # with TimGM6mb (124 performances), with four more unseen kits and with the training kit FluidR3
    render --split validation --max-duration 1800 "${MULDJORD[@]}" --out "$data/val_muldjord"
    render --split validation --max-duration 1800 "${MULDJORD[@]}" "${heldout_songs[@]}" --out "$data/val_muldjord_acc"
    render --split validation --soundfont "$SF2/TimGM6mb.sf2" --out "$data/val_heldout"
    V=(--split validation --max-duration 1800)
    render "${V[@]}" --soundfont "$SF2/Red_Zeppelin_4_LV2.sf2@0:0" --out "$data/val_redzep"
    render "${V[@]}" --hydrogen-kit GMRockKit --out "$data/val_gmrock"
    render "${V[@]}" --hydrogen-kit TR808EmulationKit --out "$data/val_tr808"
    render "${V[@]}" --soundfont "$SF2/OPL-3_FM_128M.sf2" --out "$data/val_opl3"
    render "${V[@]}" --soundfont "$SF2/FluidR3_GM.sf2" --out "$data/val_seen"
    render --split validation --sample-rate 16000 --soundfont "$SF2/TimGM6mb.sf2" --out "$data/val_heldout16"
    render "${V[@]}" --sample-rate 16000 --soundfont "$SF2/FluidR3_GM.sf2" --out "$data/val_seen16"
    # training, the previous recipe's 8.1 h: FluidR3/MuseScore (3.03 h), four FluidR3 presets (1.53 h), the 12
    # Hydrogen kits with distractor percussion (3.54 h)
    render --split train --max-duration 10800 --jobs 2 --soundfont "$SF2/FluidR3_GM.sf2" \
        --soundfont "$SF3/MuseScore_General.sf3" --augment --out "$data/train"
    render --split train --max-duration 5400 --seed 1 --augment --jobs 2 --soundfont "$SF2/FluidR3_GM.sf2@16" \
        --soundfont "$SF2/FluidR3_GM.sf2@32" --soundfont "$SF2/FluidR3_GM.sf2@40" --soundfont "$SF2/FluidR3_GM.sf2@24" \
        --out "$data/train_kits"
    render --split train --max-duration 12600 --seed 1 --augment --jobs 2 "${H2[@]}" \
        --distractors "Gimme A Hand 1.0" --distractors "circAfrique v4" --out "$data/train_h2"
    # training, 4.07 h more: the three real kits that are not held out (1.0 h), and 6 soundfont and 12 Hydrogen kits
    # (0.56 h + 2.5 h, the Hydrogen kits re-pitched and re-levelled per file), --accompaniment-share 0.6-0.7
    render --split train --max-duration 3600 --seed 5 --augment "${REAL[@]}" "${songs[@]}" --out "$data/train_real_acc"
    render --split train --limit 77 --seed 6 --augment --soundfont "$SF2/FluidR3_GM.sf2" \
        --soundfont "$SF3/MuseScore_General.sf3" --soundfont "$SF2/FluidR3_GM.sf2@16" --soundfont "$SF2/FluidR3_GM.sf2@32" \
        "${H2[@]}" "${songs[@]}" --out "$data/train_kits_acc"
    render --split train --max-duration 9000 --seed 8 --augment --vary-instruments --jobs 2 "${SOUNDFONTS[@]}" \
        "${H2[@]}" "${songs[@]}" --accompaniment-share 0.6 --out "$data/train_more_acc"
    # background for `train --background`: 2.67 h of training songs (1-809) without drums, 80 stretches of 120 s
    "$py" "$here/render_accompaniment.py" --pop909 "$shared/pop909-midi" --out "$data/background" --files 30 --seconds 120 --seed 0 \
        --soundfont "$SF2/FluidR3_GM.sf2" --soundfont "$SF3/MuseScore_General.sf3"
    "$py" "$here/render_accompaniment.py" --pop909 "$shared/pop909-midi" --out "$data/background" --files 50 --seconds 120 --seed 1 \
        --soundfont "$SF2/FluidR3_GM.sf2" --soundfont "$SF3/MuseScore_General.sf3"
    # thresholds: 16 validation performances with training kits, half of them under training songs
    render --split validation --limit 16 --seed 7 "${REAL[@]}" --soundfont "$SF2/FluidR3_GM.sf2" \
        --hydrogen-kit "The Black Pearl 1.0" --hydrogen-kit Audiophob "${songs[@]}" --accompaniment-share 0.5 \
        --out "$data/val_acc"
fi

common=(--val "$work/val.csv" --size large --seed 0 --config "$config" --lookahead 60ms --band-limit 0.3
        --stretch 0.7,1.4 --background "$data/background" --background-share 0.5 --background-db=-6,12
        --threads 1 --overwrite)

if [[ $stage == all || $stage == train ]]; then
    mkdir -p "$work"
    train=("$data/train" "$data/train_kits" "$data/train_h2" "$data/train_real_acc" "$data/train_kits_acc"
           "$data/train_more_acc")
    eventcount prepare "${train[@]}" --class-map "$classes" -o "$work/train.csv" --overwrite
    eventcount prepare "${train[@]}" --class-map "$classes" --window 1s -o "$work/train_1s.csv" --overwrite
    eventcount prepare "$data/val_acc" --class-map "$classes" -o "$work/val.csv" --overwrite
    # counts only (the shipped model), and the fully supervised baseline: the same network, stepwise
    # cross-entropy on the exact timestamps in 1 s clips
    nice -n 5 eventcount train --counts "$work/train.csv" --steps "$steps" "${common[@]}" -o "$work/drums.pt" &
    nice -n 5 eventcount train --counts "$work/train_1s.csv" --steps "${CE_STEPS:-2500}" --loss ce \
        --class-map "$classes" "${common[@]}" -o "$work/drums_ce.pt" &
    wait
fi

if [[ $stage == all || $stage == continue ]]; then
    # the shipped model: drums.pt's weights, a fresh optimiser and schedule, as many steps again at lr 1e-3
    "$py" "$here/start_from.py" "$work/drums.pt" "$work/drums_cont.pt" --steps "$steps" --lr 1e-3
    nice -n 5 eventcount train --counts "$work/train.csv" --steps "$steps" --lr 1e-3 "${common[@]}" \
        -o "$work/drums_cont.pt" --resume
fi

# score MODEL SET...: detect with MODEL on each evaluation set, F1 at 50 ms into WORK/NAME.SET.json
score() {
    local model=$1 name set
    name=$(basename "$model" .pt)
    for set in "${@:2}"; do
        nice -n 5 eventcount -q detect "$data/$set" -m "$model" -o "$work/$name.$set" --overwrite --threads 1
        eventcount evaluate --reference "$data/$set" --estimate "$work/$name.$set" --class-map "$classes" \
            --classes KD,SD,HH --tolerance 50ms --json "$work/$name.$set.json"
    done
}

if [[ $stage == all || $stage == score ]]; then
    for model in ${MODELS:-drums $work/drums.pt $work/drums_ce.pt $work/drums_cont.pt}; do
        score "$model" val_muldjord val_muldjord_acc val_heldout "${UNSEEN[@]}" val_seen val_heldout16 val_seen16
    done
fi

if [[ $stage == oracle ]]; then
    render --split train --max-duration 3600 --seed 11 --augment "${MULDJORD[@]}" "${songs[@]}" \
        --out "$data/train_muldjord_oracle"
    eventcount prepare "$data/train_muldjord_oracle" --class-map "$classes" -o "$work/oracle.csv" --overwrite
    eventcount prepare "$data/train_muldjord_oracle" --class-map "$classes" --window 1s -o "$work/oracle_1s.csv" \
        --overwrite
    for loss in counts ce; do
        name=oracle_$loss clips=$work/oracle.csv
        [[ $loss == ce ]] && clips=$work/oracle_1s.csv
        "$py" "$here/start_from.py" "$work/drums_cont.pt" "$work/$name.pt" --steps 3000 --lr 1e-3
        nice -n 5 eventcount train --counts "$clips" --steps 3000 --lr 1e-3 --loss "$loss" --class-map "$classes" \
            "${common[@]}" -o "$work/$name.pt" --resume &
    done
    wait
    for name in oracle_counts oracle_ce; do
        score "$work/$name.pt" val_muldjord val_muldjord_acc
    done
fi
