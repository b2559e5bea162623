#!/usr/bin/env bash
# Study cnn_vs_rnn: which backbone, trained to its plateau: test accuracy, macro F1, parameters
# and training time per epoch, SEEDS seeds each, JOBS at a time (rerunning skips finished jobs).
# Two parts (PARTS, default "fsdd kws12"):
#   fsdd   FSDD official split, MODELS at EPOCHS (10) epochs each: every val curve is flat from
#          epoch 6-9 under the cosine schedule (the same jobs as the precision study's bf16 arm)
#   kws12  the Speech Commands sample (SC_ROOT), kws12, MODELS_SC until val/acc plateaus (common.sh
#          converge_args: early stopping, PATIENCE 6, MAX_EPOCHS 30)
#   experiments/cnn_vs_rnn/run.sh [FSDD_RECORDINGS_DIR] [extra overrides]
DEVICE_ARGS="${DEVICE_ARGS:-trainer.accelerator=cpu trainer.precision=bf16-mixed}"
THREADS="${THREADS:-1}"
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-10}"
SEEDS="${SEEDS:-0 1 2}"
PARTS="${PARTS:-fsdd kws12}"
MODELS="${MODELS:-tf_cnn cnn_baseline crnn parallel_cnn_lstm gru lstm_fsdd phase3d bcresnet}"
MODELS_SC="${MODELS_SC:-tf_cnn cnn_baseline crnn parallel_cnn_lstm gru bcresnet}"
SC_ROOT="${SC_ROOT:-../shared/data/speech_commands_sample}"
PATIENCE="${PATIENCE:-6}"
MAX_EPOCHS="${MAX_EPOCHS:-30}"
RUNS="logs/multiruns/cnn_vs_rnn/$STAMP"

for part in $PARTS; do
    case "$part" in
    fsdd)
        for seed in $SEEDS; do for model in $MODELS; do
            echo "fsdd_$model-s$seed seed=$seed $DATA_ARGS model=$model trainer.max_epochs=$EPOCHS"
        done; done | run_queue cnn_vs_rnn ;;
    kws12)
        sc="data=speech_commands data.root=$SC_ROOT data.download=false data.labels=kws12"
        for seed in $SEEDS; do for model in $MODELS_SC; do
            echo "kws12_$model-s$seed seed=$seed $sc model=$model $(converge_args)"
        done; done | run_queue cnn_vs_rnn ;;
    *) echo "PARTS: $part is not one of fsdd kws12" >&2; exit 2 ;;
    esac
done
"$PYTHON" -m audioclf report folder="$RUNS" out=experiments/cnn_vs_rnn name=results \
    "title='test accuracy at the plateau, mean ± std over seeds'" "curves=[val/acc]"
finish cnn_vs_rnn
