#!/usr/bin/env bash
# Study gru_labels: the Keras Conv1D+GRU as posted (gru_seq2seq: a sigmoid per frame, the
# clip's label copied to every frame, binary cross-entropy, dropout 0.8, linear STFT) vs the
# fixed clip-level GRU (gru: mean-pooled GRU output, softmax cross-entropy, dropout 0.2,
# log-mel). Single-change steps between the two say which change fixes it; the loss
# curves show where the posted model gets stuck.
# Every step trains until val/acc plateaus (common.sh converge_args: early stopping, PATIENCE 8,
# MIN_EPOCHS 20 so the stuck posted model is shown to stay stuck, MAX_EPOCHS 40), SEEDS seeds
# each, JOBS at a time; rerunning skips finished jobs.
#   experiments/gru_labels/run.sh [FSDD_RECORDINGS_DIR] [extra overrides]
THREADS="${THREADS:-1}"
source "$(dirname "$0")/../common.sh"
SEEDS="${SEEDS:-0 1 2}"
MIN_EPOCHS="${MIN_EPOCHS:-20}"
MAX_EPOCHS="${MAX_EPOCHS:-40}"
STEPS="${STEPS:-1 2 3 4}"   # which of the four configs below to train
RUNS="logs/multiruns/gru_labels/$STAMP"

step_args() {
    case $1 in
        1) echo "1_posted model=gru_seq2seq" ;;
        2) echo "2_posted_dropout02 model=gru_seq2seq model.dropout=0.2" ;;
        3) echo "3_clip_head_only model=gru features=stft model.dropout=0.8" ;;
        4) echo "4_fixed model=gru" ;;
        *) echo "STEPS: $1 is not one of 1 2 3 4" >&2; return 2 ;;
    esac
}

for seed in $SEEDS; do
    for step in $STEPS; do
        read -r name overrides <<< "$(step_args "$step")"
        echo "$name-s$seed seed=$seed $DATA_ARGS $overrides $(converge_args)"
    done
done | run_queue gru_labels
"$PYTHON" -m audioclf report folder="$RUNS" out=experiments/gru_labels name=results \
    "title='FSDD, until val/acc plateaus: per-frame copied labels vs one label per clip'" \
    "curves=[train/loss_epoch,val/acc]"
finish gru_labels
