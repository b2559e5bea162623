#!/usr/bin/env bash
# Study gru_labels: the Keras Conv1D+GRU as posted (gru_seq2seq: a sigmoid per frame, the
# clip's label copied to every frame, binary cross-entropy, dropout 0.8, linear STFT) vs the
# fixed clip-level GRU (gru: mean-pooled GRU output, softmax cross-entropy, dropout 0.2,
# log-mel). Single-change steps between the two say which change fixes it; the loss
# curves show where the posted model gets stuck.
#   experiments/gru_labels/run.sh [FSDD_RECORDINGS_DIR] [extra overrides]
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-2}"
SEEDS="${SEEDS:-0,1}"
common=(seed="$SEEDS" trainer.max_epochs="$EPOCHS")

STEPS="${STEPS:-1 2 3 4}"   # which of the four configs below to train
for step in $STEPS; do
    case $step in
        1) sweep gru_labels 1_posted model=gru_seq2seq "${common[@]}" ;;
        2) sweep gru_labels 2_posted_dropout02 model=gru_seq2seq model.dropout=0.2 "${common[@]}" ;;
        3) sweep gru_labels 3_clip_head_only model=gru features=stft model.dropout=0.8 "${common[@]}" ;;
        4) sweep gru_labels 4_fixed model=gru "${common[@]}" ;;
        *) echo "STEPS: $step is not one of 1 2 3 4" >&2; exit 2 ;;
    esac
done
"$PYTHON" -m audioclf report folder="$RUNS" out=experiments/gru_labels name=results \
    "title='FSDD, $EPOCHS epochs: per-frame copied labels vs one label per clip'" \
    "curves=[train/loss_epoch,val/acc]"
finish gru_labels
