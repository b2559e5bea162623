#!/usr/bin/env bash
# Arms of run.sh at up to 100 epochs (ARMS, default "long wide": experiment=kws_stream, and the same at
# BC-ResNet-6), 3 seeds each, all at once on a lent GPU machine (the device tool), within BUDGET seconds:
#   here:   python experiments/kws_stream/pack_sample.py pack ../shared/data/speech_commands_sample .pack/sc
#           (and the wheels the machine lacks in .whl: hydra-core omegaconf antlr4 soundfile cffi pycparser)
#   device: run command="bash experiments/kws_stream/device_run.sh" carry=[".pack", ".whl"] timeout_s=600
# A 3-epoch probe of all the runs times an epoch; EPOCHS is then what fits (at most 100, a multiple of 10).
# One tar per run comes back in $OUT (8 files come back at most: machine.txt, run.log and
# 6 runs, so ARMS of at most 2 arms); here, evaluate.py scores the checkpoints on the test streams.
set -uo pipefail
BUDGET="${BUDGET:-530}"   # seconds from the start of this script to the last tar
OUT="${OUT:-/tmp/device_out}"
mkdir -p "$OUT"
if [[ -d .whl && -z "${NO_INSTALL:-}" ]]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHON="${PYTHON:-python3}"
"$PYTHON" experiments/kws_stream/pack_sample.py unpack .pack/sc /tmp/sc || exit 1
export ARMS="${ARMS:-long wide}" SC_ROOT=/tmp/sc DEVICE_ARGS="${DEVICE_ARGS:-trainer=gpu}" TRAIN_ONLY=1 THREADS=2
export JOBS=$((3 * $(wc -w <<< "$ARMS")))
GPU_STAMP="${GPU_STAMP:-gpu}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; echo "$(nproc) CPU cores"; } > "$OUT/machine.txt" 2>&1

epoch_seconds() {  # the median seconds per epoch over the probe's runs (TensorBoard's val/acc wall times)
    "$PYTHON" - "$1" <<'PY'
import statistics, sys
from pathlib import Path
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
gaps = []
for events in Path(sys.argv[1]).rglob("events.out.tfevents.*"):
    run = EventAccumulator(str(events.parent)); run.Reload()
    if "val/acc" in run.Tags()["scalars"]:
        times = [e.wall_time for e in run.Scalars("val/acc")]
        gaps += [b - a for a, b in zip(times, times[1:])]
print(f"{statistics.median(gaps):.2f}" if gaps else "0")
PY
}

started=$SECONDS
STAMP=probe EPOCHS=3 experiments/kws_stream/run.sh scheduler.warmup_epochs=1 > "$OUT/run.log" 2>&1
probe=$((SECONDS - started))
per_epoch=$(epoch_seconds logs/multiruns/kws_stream/probe)
# what is left after the probe's start-up and test (its time less 3 epochs) and 15 s for the tars, with 10 % spare
fits=$("$PYTHON" -c "left = $BUDGET - $SECONDS - ($probe - 3 * $per_epoch) - 15
print(min(100, int(left / max($per_epoch, 0.01) / 1.1) // 10 * 10))")
echo "probe: ${probe} s for 3 epochs x $JOBS runs, ${per_epoch} s per epoch, at ${SECONDS} s -> EPOCHS=${fits}" \
    | tee -a "$OUT/machine.txt"
if grep -q FAILED "$OUT/run.log"; then
    tail -n 30 logs/multiruns/kws_stream/probe/*-s0.log; echo "the probe failed: stopping"; exit 3
fi
if (( fits < 30 )); then echo "too slow for a run of 30 epochs or more: stopping" | tee -a "$OUT/machine.txt"; exit 3; fi
STAMP="$GPU_STAMP" EPOCHS="$fits" experiments/kws_stream/run.sh >> "$OUT/run.log" 2>&1 &
runs=$!
while kill -0 "$runs" 2>/dev/null && (( SECONDS < BUDGET - 10 )); do sleep 2; done
kill -0 "$runs" 2>/dev/null && echo "cut off at ${SECONDS} s: the unfinished runs are not results" | tee -a "$OUT/machine.txt"
for run in $(for arm in $ARMS; do ls -d logs/multiruns/kws_stream/"$GPU_STAMP"/"$arm"-s* 2>/dev/null; done); do
    # one tar per run: a file comes back only under 16 MiB
    [[ -d "$run" ]] && tar czf "$OUT/$(basename "$run").tgz" "$run" "$run.log" 2>/dev/null
done
echo "done at ${SECONDS} s" | tee -a "$OUT/machine.txt"
