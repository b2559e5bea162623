#!/usr/bin/env bash
# Study cnn_vs_rnn: every backbone on FSDD at one epoch budget, 3 seeds:
# test accuracy, macro F1, parameters and training time per epoch.
#   experiments/cnn_vs_rnn/run.sh [FSDD_RECORDINGS_DIR] [extra overrides]
#   EPOCHS=30 experiments/cnn_vs_rnn/run.sh         # a longer budget
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-8}"
SEEDS="${SEEDS:-0,1,2}"
MODELS="${MODELS:-tf_cnn,cnn_baseline,crnn,parallel_cnn_lstm,gru,lstm_fsdd,phase3d,bcresnet}"

# seed first: Hydra varies the last override fastest, so a stopped run still covers every model
sweep cnn_vs_rnn models seed="$SEEDS" model="$MODELS" trainer.max_epochs="$EPOCHS"
"$PYTHON" -m audioclf report folder="$RUNS" out=experiments/cnn_vs_rnn name=results \
    "title='FSDD, $EPOCHS epochs: test accuracy, mean ± std over seeds $SEEDS'"
finish cnn_vs_rnn
