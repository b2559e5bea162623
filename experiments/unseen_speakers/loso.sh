#!/usr/bin/env bash
# Leave-one-speaker-out runner: one ladder rung = the same overrides trained on each of FSDD's six
# held-out speakers (data.split='speaker=<name>') and on the official split, SEEDS seeds each.
#   experiments/unseen_speakers/loso.sh RUNG "what changed" [train.py overrides ...]
#   experiments/unseen_speakers/loso.sh 1_cmvn "per-clip CMVN" model=gru features.normalize=cmvn
# Jobs go to logs/multiruns/unseen_speakers/ladder/RUNG/<split>-s<seed>/ (one plain train.py run
# each, JOBS at a time, one CPU thread each with THREADS=1); a job whose metrics.json exists is
# skipped, so rerunning a rung completes it. Then ladder.py reads every rung's metrics.json back and
# rewrites experiments/unseen_speakers/ladder.md/.csv.
# Knobs: EPOCHS (10), SEEDS ("0 1 2"), SPEAKERS (all six), JOBS (2), LADDER (the rungs' folder),
# VAL_SPEAKER (seen: validate on the training speakers' recordings 0-4; auto or a name: hold out a
# validation speaker too, data.val_speaker, on the speaker jobs only), OFFICIAL (1: also train on
# the official split; 0: speakers only), SPLIT_KEY (data: the FSDD split's override prefix; for
# data=digits_mix it is data.parts.fsdd), and common.sh's (DATA_ARGS, DEVICE_ARGS: bf16-mixed on
# the CPU, as the precision study allows).
DEVICE_ARGS="${DEVICE_ARGS:-trainer.accelerator=cpu trainer.precision=bf16-mixed}"
THREADS="${THREADS:-1}"
RUNG="${1:?usage: loso.sh RUNG \"what changed\" [overrides ...]}"
WHAT="${2:?usage: loso.sh RUNG \"what changed\" [overrides ...]}"
shift 2
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-10}"
SEEDS="${SEEDS:-0 1 2}"
SPEAKERS="${SPEAKERS:-george jackson lucas nicolas theo yweweler}"
JOBS="${JOBS:-2}"
LADDER="${LADDER:-logs/multiruns/unseen_speakers/ladder}"
VAL_SPEAKER="${VAL_SPEAKER:-seen}"
OFFICIAL="${OFFICIAL:-1}"
SPLIT_KEY="${SPLIT_KEY:-data}"
RUNS="$LADDER/$RUNG"
mkdir -p "$RUNS"
NOTES=""  # what the ladder's overrides line must say beyond the rung's own overrides
if [[ "$VAL_SPEAKER" != seen ]]; then NOTES+=" $SPLIT_KEY.val_speaker=$VAL_SPEAKER (speaker jobs)"; fi
if [[ "$DATA_ARGS" != "data=fsdd "* ]]; then NOTES+=" (data: $DATA_ARGS)"; fi
printf '%s\n' "$WHAT" "trainer.max_epochs=$EPOCHS ${EXTRA[*]}$NOTES" > "$RUNS/rung.txt"

queue="$(mktemp)"
for seed in $SEEDS; do
    if [[ "$OFFICIAL" == 1 ]]; then echo "official-s$seed seed=$seed $SPLIT_KEY.split=official"; fi
    for speaker in $SPEAKERS; do  # xargs strips the double quotes; Hydra needs the single ones
        echo "$speaker-s$seed seed=$seed \"$SPLIT_KEY.split='speaker=$speaker'\" $SPLIT_KEY.val_speaker=$VAL_SPEAKER"
    done
done > "$queue"
export PYTHON RUNS DEVICE_ARGS DATA_ARGS EPOCHS
export EXTRA_ARGS="${EXTRA[*]}"
# shellcheck disable=SC2016  # expanded by the job's own shell
xargs -P "$JOBS" -L 1 bash -c '
    job="$0"
    if [[ -f "$RUNS/$job/metrics.json" ]]; then echo "have: $job"; exit 0; fi
    rm -rf "${RUNS:?}/$job"  # an unfinished earlier try
    # shellcheck disable=SC2086
    "$PYTHON" train.py task_name=unseen_speakers hydra.run.dir="$RUNS/$job" $DATA_ARGS $DEVICE_ARGS \
        trainer.max_epochs="$EPOCHS" trainer.enable_progress_bar=false "$@" $EXTRA_ARGS \
        > "$RUNS/$job.log" 2>&1 && echo "done: $job" || echo "FAILED: $job (see $RUNS/$job.log)"
' < "$queue"
rm -f "$queue"
echo "$((SECONDS - STARTED)) s wall, $JOBS jobs at a time, load average $(cut -d' ' -f1-3 /proc/loadavg)" \
    >> "$RUNS/wall.txt"
"$PYTHON" experiments/unseen_speakers/ladder.py "$LADDER"
