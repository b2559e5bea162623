#!/usr/bin/env bash
# Study int8: what does onnxruntime int8 quantization (`python -m audioclf export ... format=onnx
# quantize=int8`) cost in accuracy and save in size and CPU latency, backbone by backbone?
# For each backbone: train on FSDD (official split) for EPOCHS epochs, one job at a time, then export
# fp32 + int8 ONNX and measure both on the test split (accuracy, file size, per-clip CPU latency at
# batch 1 and 1 thread). A backbone whose training, export or quantization fails is listed with the
# reason. summarize.py writes the table, experiments/int8/results.md (and results.csv).
#   experiments/int8/run.sh [FSDD_RECORDINGS_DIR] [extra train.py overrides]
#   BACKBONES="tf_cnn gru" experiments/int8/run.sh          # a few (default: every registered one)
#   STAMP=<name> experiments/int8/run.sh                    # a rerun reuses that folder's checkpoints
THREADS="${THREADS:-1}"
DEVICE_ARGS="${DEVICE_ARGS:-trainer.accelerator=cpu trainer.precision=bf16-mixed}"  # 2x faster here
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-8}"
CALIBRATION_CLIPS="${CALIBRATION_CLIPS:-256}"
BACKBONES="${BACKBONES:-$("$PYTHON" -c 'from audioclf.models import BACKBONES; print(*sorted(BACKBONES))')}"
RUNS="logs/int8/$STAMP"
mkdir -p "$RUNS"

# kwt's paper schedule warms up for 10 epochs, longer than the run: shorten it
overrides_for() { [[ "$1" == kwt ]] && echo "scheduler.warmup_epochs=1"; true; }

for model in $BACKBONES; do
    dir="$RUNS/$model"
    if [[ ! -f "$dir/metrics.json" ]]; then
        echo "$(date +%T) training $model ($EPOCHS epochs)"
        # shellcheck disable=SC2086,SC2046  # DATA_ARGS, DEVICE_ARGS and the overrides are word lists
        "$PYTHON" train.py model="$model" $DATA_ARGS $DEVICE_ARGS trainer.max_epochs="$EPOCHS" \
            trainer.enable_progress_bar=false hydra.run.dir="$dir" $(overrides_for "$model") "${EXTRA[@]}" \
            > "$dir.train.log" 2>&1 || {
            mkdir -p "$dir" && "$PYTHON" -c 'import json, sys; print(json.dumps({"error": sys.argv[1]}))' \
                "training failed: $(tail -n 1 "$dir.train.log")" | tee "$dir/int8.json"
            continue
        }
    fi
    echo "$(date +%T) exporting $model"
    # one process per backbone, as a user runs it; the result dict goes to int8.json for summarize.py
    "$PYTHON" - "$dir" "$CALIBRATION_CLIPS" > "$dir/export.log" 2>&1 <<'PY' || echo "  export failed: see $dir/export.log"
import json, sys
from pathlib import Path
from audioclf.config import compose_config
from audioclf.errors import UserError
from audioclf.tasks import export

run = Path(sys.argv[1])
cfg = compose_config("export", [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "quantize=int8",
                                f"calibration_clips={sys.argv[2]}", f"output={run / 'export' / 'model.onnx'}"])
try:
    result = export.run(cfg)
except UserError as error:
    result = {"error": str(error)}
    print(f"error: {error}")
(run / "int8.json").write_text(json.dumps(result, indent=2))
PY
    tail -n 4 "$dir/export.log"
done
"$PYTHON" experiments/int8/summarize.py "$RUNS" experiments/int8
finish int8
