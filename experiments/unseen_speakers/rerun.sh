#!/usr/bin/env bash
# Rerun ladder rungs from their committed ladder.csv rows (what changed, overrides), so each lands in
# ladder_runs.csv run by run: a training rung through loso.sh (its epochs and overrides as recorded), an
# ensemble rung ("ensemble: softmax mean of RUNG's seeds") through ensemble.py over RUNG, which must have run.
#   JOBS=2 experiments/unseen_speakers/rerun.sh 0_baseline 5_ensemble_baseline
# Rungs 16-18 have their own commands (loso.sh with VAL_SPEAKER=auto, rung17.sh, rung18.sh); rung 1's rule
# is gone from the code (see its row), so it cannot be rerun.
set -euo pipefail
RUNGS=("$@")
set --  # common.sh would read a first rung as the FSDD folder
source "$(dirname "$0")/../common.sh"
LADDER="${LADDER:-logs/multiruns/unseen_speakers/ladder}"
for rung in "${RUNGS[@]}"; do
    mapfile -t recorded < <("$PYTHON" - "$rung" <<'PY'
import csv, sys
row = next((r for r in csv.DictReader(open("experiments/unseen_speakers/ladder.csv")) if r["rung"] == sys.argv[1]), None)
if row is None:
    sys.exit(f"error: ladder.csv has no rung {sys.argv[1]}: give a name from its first column")
words = row["overrides"].split()
print(row["what changed"])
print(words[0].removeprefix("trainer.max_epochs="))
print(" ".join(words[1:]))
PY
)
    what="${recorded[0]}"
    if [[ "$what" == "ensemble: softmax mean of "* ]]; then
        members="${what#ensemble: softmax mean of }"
        "$PYTHON" experiments/unseen_speakers/ensemble.py "$LADDER/${members%"'s seeds"}" "$LADDER/$rung"
        "$PYTHON" experiments/unseen_speakers/ladder.py "$LADDER" > /dev/null
    else
        # shellcheck disable=SC2086  # the recorded overrides are a word list
        LADDER="$LADDER" EPOCHS="${recorded[1]}" experiments/unseen_speakers/loso.sh "$rung" "$what" ${recorded[2]}
    fi
done
