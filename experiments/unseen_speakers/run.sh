#!/usr/bin/env bash
# Study unseen_speakers: the FSDD official split (every speaker in train and test) vs
# leave-one-speaker-out (6 folds, the test speaker never heard in training) for the two
# best backbones of cnn_vs_rnn. FSDD only: Speech Commands has no speaker split here.
#   experiments/unseen_speakers/run.sh [FSDD_RECORDINGS_DIR] [extra overrides]
#   MODELS=tf_cnn,crnn experiments/unseen_speakers/run.sh
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-8}"
SEEDS="${SEEDS:-0}"
SPEAKERS="${SPEAKERS:-george jackson lucas nicolas theo yweweler}"
if [[ -z "${MODELS:-}" ]]; then  # the two best of cnn_vs_rnn's results
    MODELS=$("$PYTHON" - <<'PY'
import csv
rows = list(csv.DictReader(open("experiments/cnn_vs_rnn/results.csv")))
rows.sort(key=lambda r: -float(r["test/acc mean"]))
print(",".join(r["model"] for r in rows[:2]))
PY
)
fi
SPLITS="official"
for speaker in $SPEAKERS; do SPLITS="$SPLITS,'speaker=$speaker'"; done

sweep unseen_speakers splits model="$MODELS" "data.split=$SPLITS" seed="$SEEDS" \
    trainer.max_epochs="$EPOCHS"
"$PYTHON" -m audioclf report folder="$RUNS" out=experiments/unseen_speakers name=results \
    "title='FSDD, $EPOCHS epochs: official split vs each held-out speaker'"
"$PYTHON" experiments/unseen_speakers/summarize.py experiments/unseen_speakers/results_runs.csv
finish unseen_speakers
