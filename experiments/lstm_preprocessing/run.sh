#!/usr/bin/env bash
# Study lstm_preprocessing: the Keras FSDD LSTM (lstm_fsdd) on raw (unlogged, unnormalized)
# power mel vs standardized log-mel: does it stay at chance or learn? With the loss curves,
# read back from each job's TensorBoard event files.
#   experiments/lstm_preprocessing/run.sh [FSDD_RECORDINGS_DIR] [extra overrides]
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-4}"
SEEDS="${SEEDS:-0,1,2}"

sweep lstm_preprocessing features model=lstm_fsdd features=raw_power_mel,logmel80 \
    seed="$SEEDS" trainer.max_epochs="$EPOCHS"
"$PYTHON" -m audioclf.report "$RUNS" --out experiments/lstm_preprocessing --name results \
    --title "lstm_fsdd on FSDD, $EPOCHS epochs: raw power mel vs standardized log-mel" \
    --curves train/loss_epoch val/loss val/acc
finish lstm_preprocessing
