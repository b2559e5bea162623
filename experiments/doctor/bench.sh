#!/usr/bin/env bash
# Time `audioclf-doctor` for every registered backbone on FSDD, print a markdown table and write
# one row per backbone to experiments/doctor/results.csv (backbone, seconds, problems found).
# Usage: experiments/doctor/bench.sh [FSDD_RECORDINGS_DIR] [extra doctor overrides ...]
# Knobs: MODELS (comma list, default: every registered backbone), THREADS (OMP_NUM_THREADS).
# The clip banks are built once first (an untimed doctor run per model would also do it),
# so the times are the doctor's own: start-up, model, checks.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
MODELS="${MODELS:-$("$PYTHON" -c 'from audioclf.models import BACKBONES; print(",".join(sorted(BACKBONES)))')}"
LOGS="logs/doctor/$STAMP"
RESULTS=experiments/doctor/results.csv
mkdir -p "$LOGS"
echo "backbone,seconds,problems" > "$RESULTS"
echo "| backbone | seconds | problems found |"
echo "|---|---:|---|"
for model in ${MODELS//,/ }; do
    # shellcheck disable=SC2086  # DATA_ARGS is a word list on purpose
    "$PYTHON" -c "import sys; from audioclf.cli import doctor_config; from audioclf.tasks.build import build_datamodule
d = build_datamodule(doctor_config(None, sys.argv[1:])); d.setup('fit')" $DATA_ARGS "model=$model" "${EXTRA[@]}" \
        >/dev/null 2>&1
    started=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$PYTHON" -m audioclf doctor $DATA_ARGS "model=$model" "${EXTRA[@]}" >"$LOGS/$model.txt" 2>"$LOGS/$model.err"
    seconds=$(echo "$(date +%s.%N) - $started" | bc)
    problems=$(grep -E '^(ERROR|WARNING) ' "$LOGS/$model.txt" | awk '{print tolower($1) " " $2}' | tr -d ':' \
        | paste -sd "," | sed "s/,/, /g" || true)
    printf '| %s | %.1f | %s |\n' "$model" "$seconds" "${problems:-none}"
    printf '%s,%.1f,"%s"\n' "$model" "$seconds" "${problems:-none}" >> "$RESULTS"
done
echo
echo "doctor outputs: $LOGS/<model>.txt; $(getconf _NPROCESSORS_ONLN) CPU cores, load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg), threads: ${OMP_NUM_THREADS:-torch default}"
