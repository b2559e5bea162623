#!/usr/bin/env bash
# Study lstm_preprocessing: the Keras FSDD LSTM (lstm_fsdd) on raw (unlogged, unnormalized)
# power mel vs standardized log-mel: does it stay at chance or learn? With the loss curves,
# read back from each job's TensorBoard event files. At two clip lengths: the original
# cropped FSDD to 0.5 s (16 frames; the last hidden state sees the word), the framework's
# default pads to 1 s (32 frames; the median clip is 0.42 s, so mostly trailing silence).
#   experiments/lstm_preprocessing/run.sh [FSDD_RECORDINGS_DIR] [extra overrides]
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-4}"
SEEDS="${SEEDS:-0,1,2}"

CLIPS="${CLIPS:-0.5,1.0}"   # data.clip_seconds: 0.5 s is the original's crop (16 frames)

sweep lstm_preprocessing "clips_${CLIPS//,/_}" model=lstm_fsdd features=raw_power_mel,logmel80 \
    data.clip_seconds="$CLIPS" seed="$SEEDS" trainer.max_epochs="$EPOCHS"
# raw power with time frames as the steps: the missing log/standardization alone
sweep lstm_preprocessing raw_frames model=lstm_fsdd features=raw_power_mel features.librosa_layout=false \
    data.clip_seconds=0.5 seed="$SEEDS" trainer.max_epochs="$EPOCHS"
"$PYTHON" -m audioclf report folder="$RUNS" out=experiments/lstm_preprocessing name=results \
    "title='lstm_fsdd on FSDD, $EPOCHS epochs: raw power mel vs log-mel, 0.5 s vs 1 s clips'" \
    "curves=[train/loss_epoch,val/loss,val/acc]"
finish lstm_preprocessing
