#!/usr/bin/env bash
# Study phase: does phase help? The phased spectrogram (features=phased_stft) spreads each
# STFT bin's log1p magnitude over 10 phase bins by the bin's phase. With
# features.sigma_scale=10000 the spreading kernel is flat, so all 10 bins hold the same
# magnitude: same input size, same network, same compute, no phase. Three arms:
#   magnitude    model=phase2d features.sigma_scale=10000
#   phase2d      model=phase2d (sigma_scale 0.8: phase as 10 input channels)
#   phase3d      model=phase3d (conv over phase x freq x time, circular in phase)
# Two parts (PARTS, default "fsdd kws12"):
#   fsdd   FSDD official split, EPOCHS (10) epochs: the val curves flatten by epoch 6-8 under the
#          cosine schedule (results_curves.png)
#   kws12  the question the phase blog asked: can phase tell noise from speech? Speech Commands
#          sample, kws12 (10 commands + _silence_ + _unknown_), resampled to 8 kHz (FSDD's rate, so
#          the networks and their cost are the FSDD ones), early stopping (common.sh converge_args).
#          HELD_OUT noise files are kept out of training entirely: the run trains on a view of the
#          sample (symlinks under its run folder) whose _background_noise_ holds the other files,
#          so _silence_ clips and noise augmentation never see them. Then eval.py scans the
#          held-out files and, separately, the seen ones for false alarms at the checkpoint's
#          val thresholds (into <run folder>_false_alarms/<job>/); kws12.py writes kws12.md/.csv (accuracy, _silence_/_unknown_ recall,
#          false alarms per hour).
#   experiments/phase/run.sh [FSDD_RECORDINGS_DIR] [extra overrides]
# Knobs: PARTS, ARMS ("magnitude phase2d phase3d"), SEEDS ("0 1 2"), EPOCHS, JOBS (2), SC_ROOT,
# HELD_OUT (noise file names), PATIENCE/MAX_EPOCHS (common.sh), STAMP (add to an earlier run).
DEVICE_ARGS="${DEVICE_ARGS:-trainer.accelerator=cpu trainer.precision=bf16-mixed}"
THREADS="${THREADS:-1}"
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-10}"
SEEDS="${SEEDS:-0 1 2}"
PARTS="${PARTS:-fsdd kws12}"
ARMS="${ARMS:-magnitude phase2d phase3d}"
SC_ROOT="$(realpath "${SC_ROOT:-../shared/data/speech_commands_sample}")"
HELD_OUT="${HELD_OUT:-dude_miaowing.wav running_tap.wav}"
RUNS="logs/multiruns/phase/$STAMP"

arm_args() {
    case "$1" in
    magnitude) echo "model=phase2d features.sigma_scale=10000" ;;
    phase2d)   echo "model=phase2d" ;;
    phase3d)   echo "model=phase3d" ;;
    *) echo "ARMS: $1 is not one of magnitude phase2d phase3d" >&2; return 2 ;;
    esac
}

# sc_view DIR: the sample's words and lists as symlinks, _background_noise_ without HELD_OUT;
# the held-out files go to DIR/../held_out_noise, the seen ones are linked in DIR/../seen_noise.
sc_view() {
    local view="$1" noise="$SC_ROOT/_background_noise_" file
    mkdir -p "$view/_background_noise_" "$RUNS/held_out_noise" "$RUNS/seen_noise"
    for entry in "$SC_ROOT"/*; do
        [[ "$(basename "$entry")" == _background_noise_ ]] || ln -sfn "$entry" "$view/"
    done
    for file in "$noise"/*.wav; do
        if [[ " $HELD_OUT " == *" $(basename "$file") "* ]]; then
            ln -sfn "$file" "$RUNS/held_out_noise/"
        else
            ln -sfn "$file" "$view/_background_noise_/"
            ln -sfn "$file" "$RUNS/seen_noise/"
        fi
    done
}

for part in $PARTS; do
    case "$part" in
    fsdd)
        for seed in $SEEDS; do for arm in $ARMS; do
            echo "fsdd_$arm-s$seed seed=$seed $DATA_ARGS $(arm_args "$arm") trainer.max_epochs=$EPOCHS"
        done; done | run_queue phase ;;
    kws12)
        view="$RUNS/sc_view"
        sc_view "$view"
        sc="data=speech_commands data.root=$(realpath "$view") data.download=false data.labels=kws12"
        sc+=" data.sample_rate=8000 $(converge_args)"
        for seed in $SEEDS; do for arm in $ARMS; do
            echo "kws12_$arm-s$seed seed=$seed $sc $(arm_args "$arm")"
        done; done | run_queue phase
        for job_dir in "$RUNS"/kws12_*-s*/0; do  # scans go beside RUNS, so the report sees trainings only
            scans="${RUNS}_false_alarms/$(basename "$(dirname "$job_dir")")"
            for scan in held_out seen; do
                [[ -f "$scans/$scan/metrics.json" ]] && continue
                ckpt="$(ls "$job_dir"/checkpoints/epoch_*.ckpt | head -1)"  # the best (val/acc)
                mkdir -p "$scans"
                "$PYTHON" eval.py ckpt_path="$ckpt" false_alarms="$(realpath "$RUNS/${scan}_noise")" \
                    hydra.run.dir="$scans/$scan" $DEVICE_ARGS > "$scans/$scan.log" 2>&1 \
                    || echo "FAILED: eval of $job_dir (see $scans/$scan.log)"
            done
        done
        "$PYTHON" experiments/phase/kws12.py "$RUNS" ;;
    *) echo "PARTS: $part is not one of fsdd kws12" >&2; exit 2 ;;
    esac
done
"$PYTHON" -m audioclf report folder="$RUNS" out=experiments/phase name=results \
    "title='magnitude only (sigma_scale=10000) vs phase, 3 seeds'" "curves=[val/acc]"
finish phase
