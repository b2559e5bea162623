# Sourced by experiments/<study>/run.sh. Usage of every study script:
#   experiments/<study>/run.sh [FSDD_RECORDINGS_DIR] [extra train.py overrides ...]
# Environment knobs (all optional):
#   FSDD_ROOT    the FSDD recordings/ folder (default ../shared/data/fsdd/recordings,
#                relative to the repo root); a first argument without '=' sets it too
#   DATA_ARGS    the data overrides (default: FSDD at FSDD_ROOT, no download); e.g.
#                DATA_ARGS="data=speech_commands data.root=/data/speech_commands_v0.02"
#   DEVICE_ARGS  default trainer.accelerator=cpu; e.g. "trainer=gpu" on a GPU
#   EPOCHS, SEEDS and the study's own knobs: see the top of its run.sh
#   CHECK_VAL    validate every N epochs (trainer.check_val_every_n_epoch=N, appended to every
#                training of the study; default: the trainer config's, every epoch). The best
#                checkpoint and val curves then only see every N-th epoch
#   PYTHON       default .venv/bin/python when it exists, else python
#   THREADS      CPU threads per training (sets OMP_NUM_THREADS). Use THREADS=1 on a busy
#                shared machine: with 2 threads on 2 contended cores, OpenMP threads spin at
#                barriers while their partner is descheduled (measured here: one GRU training
#                step took 0.11 s with 1 thread and 2.6 s with 2)
set -euo pipefail
if [[ -n "${THREADS:-}" ]]; then export OMP_NUM_THREADS="$THREADS"; fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
if [[ $# -gt 0 && "$1" != *=* ]]; then
    FSDD_ROOT="$1"
    shift
fi
EXTRA=("$@")
if [[ -n "${CHECK_VAL:-}" ]]; then EXTRA+=("trainer.check_val_every_n_epoch=$CHECK_VAL"); fi
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
FSDD_ROOT="${FSDD_ROOT:-../shared/data/fsdd/recordings}"
DATA_ARGS="${DATA_ARGS:-data=fsdd data.root=$FSDD_ROOT data.download=false}"
DEVICE_ARGS="${DEVICE_ARGS:-trainer.accelerator=cpu}"
STAMP="${STAMP:-$(date +%Y-%m-%d_%H-%M-%S)}"  # set it to add sweeps to an earlier run folder
STARTED=$SECONDS

# sweep STUDY NAME overrides...: one `train.py -m` multirun into logs/multiruns/STUDY/<time>/NAME.
# Sets RUNS to logs/multiruns/STUDY/<time>, the folder holding all of this run's sweeps:
# `python -m audioclf report folder=$RUNS` groups their jobs, `tensorboard --logdir $RUNS` overlays them.
sweep() {
    local study="$1" name="$2"
    shift 2
    RUNS="logs/multiruns/$study/$STAMP"
    SWEEP="$RUNS/$name"
    # shellcheck disable=SC2086  # DATA_ARGS and DEVICE_ARGS are word lists on purpose
    "$PYTHON" train.py -m task_name="$study" hydra.sweep.dir="$SWEEP" $DATA_ARGS $DEVICE_ARGS \
        trainer.enable_progress_bar=false "$@" "${EXTRA[@]}"
    echo "multirun folder: $SWEEP   (tensorboard --logdir $RUNS)"
}

# finish STUDY [NAME]: write experiments/STUDY/NAME.txt (default run_info) with the wall time and the machine.
finish() {
    local study="$1" name="${2:-run_info}" elapsed=$((SECONDS - STARTED))
    {
        echo "$0 finished $(date '+%Y-%m-%d %H:%M') after ${elapsed} s"
        echo "($((elapsed / 60)) min) on $(getconf _NPROCESSORS_ONLN) CPU cores, load average at the end:" \
            "$(cut -d' ' -f1-3 /proc/loadavg)"
        echo "data: $DATA_ARGS; device: $DEVICE_ARGS; extra: ${EXTRA[*]:-none};" \
            "threads: ${OMP_NUM_THREADS:-torch default}"
        echo "runs: $RUNS"
    } | tee "experiments/$study/$name.txt"
}

# run_queue STUDY < lines: train every stdin line "JOB overrides..." as a one-job multirun in
# $RUNS/JOB/0 (so `python -m audioclf report folder=$RUNS` reads it like a sweep), JOBS at a time
# (default 2; THREADS=1 each on a shared CPU). A job whose metrics.json exists is skipped and an
# unfinished one is restarted, so rerunning the study completes it. Each line carries its own data
# overrides; DEVICE_ARGS and the script's extra overrides are added to every job.
run_queue() {
    local study="$1"
    mkdir -p "$RUNS"
    export PYTHON RUNS DEVICE_ARGS STUDY="$study" EXTRA_ARGS="${EXTRA[*]}"
    # shellcheck disable=SC2016  # expanded by the job's own shell
    xargs -P "${JOBS:-2}" -L 1 bash -c '
        job="$0"
        if [[ -f "$RUNS/$job/0/metrics.json" ]]; then echo "have: $job"; exit 0; fi
        rm -rf "${RUNS:?}/$job"
        # shellcheck disable=SC2086
        "$PYTHON" train.py -m task_name="$STUDY" hydra.sweep.dir="$RUNS/$job" $DEVICE_ARGS \
            trainer.enable_progress_bar=false "$@" $EXTRA_ARGS > "$RUNS/$job.log" 2>&1 \
            && echo "done: $job $(date +%H:%M)" || echo "FAILED: $job (see $RUNS/$job.log)"
    '
}

# Until validation accuracy plateaus: early stopping on val/acc with PATIENCE epochs (default 8),
# MAX_EPOCHS (default 40) as the cap and MIN_EPOCHS (default none) as a floor, so an arm stuck at
# chance early is shown to stay there rather than stopped. The best checkpoint (val/acc) is tested.
converge_args() {
    echo "callbacks=early_stopping callbacks.early_stopping.patience=${PATIENCE:-8}" \
        "trainer.max_epochs=${MAX_EPOCHS:-40}${MIN_EPOCHS:+ +trainer.min_epochs=$MIN_EPOCHS}"
}
