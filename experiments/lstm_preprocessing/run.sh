#!/usr/bin/env bash
# Study lstm_preprocessing: the Keras FSDD LSTM (lstm_fsdd) on raw (unlogged, unnormalized)
# power mel vs standardized log-mel: does it stay at chance or learn? With the loss curves,
# read back from each job's TensorBoard event files. At two clip lengths: the original
# cropped FSDD to 0.5 s (16 frames; the last hidden state sees the word), the framework's
# default pads to 1 s (32 frames; the median clip is 0.42 s, so mostly trailing silence).
# Every arm trains until val/acc plateaus (common.sh converge_args: early stopping, PATIENCE 8,
# MIN_EPOCHS 30 so an arm at chance is shown to stay there, MAX_EPOCHS 60), SEEDS seeds each,
# JOBS at a time; rerunning skips finished jobs. ARMS="raw_frames_0.5s ..." trains only those arms.
#   experiments/lstm_preprocessing/run.sh [FSDD_RECORDINGS_DIR] [extra overrides]
THREADS="${THREADS:-1}"
source "$(dirname "$0")/../common.sh"
SEEDS="${SEEDS:-0 1 2}"
MIN_EPOCHS="${MIN_EPOCHS:-30}"
MAX_EPOCHS="${MAX_EPOCHS:-60}"
RUNS="logs/multiruns/lstm_preprocessing/$STAMP"

arms() {
    local clip
    for clip in 0.5 1.0; do  # 0.5 s is the original's crop (16 frames)
        echo "raw_power_mel_${clip}s features=raw_power_mel data.clip_seconds=$clip"
        echo "logmel80_${clip}s features=logmel80 data.clip_seconds=$clip"
    done
    # raw power with time frames as the steps: the missing log/standardization alone
    echo "raw_frames_0.5s features=raw_power_mel features.librosa_layout=false data.clip_seconds=0.5"
}

for seed in $SEEDS; do
    arms | while read -r name overrides; do
        [[ -z "${ARMS:-}" || " $ARMS " == *" $name "* ]] || continue
        echo "$name-s$seed seed=$seed $DATA_ARGS model=lstm_fsdd $overrides $(converge_args)"
    done
done | run_queue lstm_preprocessing
"$PYTHON" -m audioclf report folder="$RUNS" out=experiments/lstm_preprocessing name=results \
    "title='lstm_fsdd on FSDD, until val/acc plateaus: raw power mel vs log-mel, 0.5 s vs 1 s clips'" \
    "curves=[train/loss_epoch,val/loss,val/acc]"
finish lstm_preprocessing
