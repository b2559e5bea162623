#!/usr/bin/env bash
# Study precision: does bf16-mixed (the CPU default under trainer.precision=auto on a CPU with
# native bf16) keep each backbone's accuracy? fp32 (32-true) vs bf16-mixed, FSDD official split,
# same epochs, same seeds, same everything else; one job at a time (JOBS), one CPU thread each
# (THREADS=1 unless set), so s/epoch compares within this table.
#   experiments/precision/run.sh [FSDD_RECORDINGS_DIR] [extra overrides]
# Knobs: EPOCHS (default 10), SEEDS (default "0 1 2"), MODELS (default "gru tf_cnn crnn bcresnet"),
# PRECISIONS (default "32-true bf16-mixed"), JOBS (default 1), STAMP (collects runs in one folder).
# Jobs run seed by seed, so a cut-short run still has every backbone at its first seeds; rerun with
# the same STAMP to add the missing jobs (a job whose metrics.json exists is skipped).
THREADS="${THREADS:-1}"
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-10}"
SEEDS="${SEEDS:-0 1 2}"
MODELS="${MODELS:-gru tf_cnn crnn bcresnet}"
PRECISIONS="${PRECISIONS:-32-true bf16-mixed}"
JOBS="${JOBS:-1}"
RUNS="logs/multiruns/precision/$STAMP"

queue="$(mktemp)"
for seed in $SEEDS; do
    for model in $MODELS; do
        for precision in $PRECISIONS; do
            echo "$model-$precision seed=$seed model=$model trainer.precision=$precision ${EXTRA[*]}" | sed 's/ *$//'
        done
    done
done > "$queue"
mkdir -p "$RUNS"
export PYTHON RUNS DEVICE_ARGS DATA_ARGS EPOCHS
# shellcheck disable=SC2016  # expanded by the job's own shell
xargs -P "$JOBS" -L 1 bash -c '
    name="$0"; seed="${1#seed=}"
    if [[ -f "$RUNS/$name-s$seed/0/metrics.json" ]]; then echo "have: $name seed $seed"; exit 0; fi
    rm -rf "${RUNS:?}/$name-s$seed"  # an unfinished earlier try
    # shellcheck disable=SC2086
    "$PYTHON" train.py -m task_name=precision hydra.sweep.dir="$RUNS/$name-s$seed" $DATA_ARGS $DEVICE_ARGS \
        trainer.max_epochs="$EPOCHS" trainer.enable_progress_bar=false "$@" > "$RUNS/$name-s$seed.log" 2>&1 \
        && echo "done: $name seed $seed" || echo "FAILED: $name seed $seed (see $RUNS/$name-s$seed.log)"
' < "$queue"
rm -f "$queue"
"$PYTHON" -m audioclf report folder="$RUNS" out=experiments/precision name=results \
    "title='FSDD official split: fp32 vs bf16-mixed ($EPOCHS epochs)'" "curves=[val/acc]"
"$PYTHON" experiments/precision/summarize.py experiments/precision   # summary.md: bf16 vs fp32 per backbone
finish precision
