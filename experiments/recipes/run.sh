#!/usr/bin/env bash
# Study recipes: does each backbone train better with its paper's recipe than with the old
# one-size default (AdamW 1e-3, per-step cosine, no warm-up, no SpecAugment)? Same backbone,
# same data, same epochs, same seeds; the final weights are tested (test_ckpt=last, as the
# BC-ResNet paper reports). Parts (PARTS, space separated):
#   bcresnet_sc    model=bcresnet (its default is now the paper's recipe) vs the old default, SC sample kws12
#   bcresnet_fsdd  the same on FSDD's official split, noise from the SC background-noise files
#   matchbox_sc    experiment=matchboxnet_gsc's recipe vs the old default, SC sample kws12
#   beyond_sc      the bcresnet paper recipe plus one change: EMA of the weights (callbacks=ema)
#   mixup_sc       ... plus mixup (augment.mixup_alpha=0.2)
#   matchbox_noise_sc  the matchboxnet paper recipe plus background noise (p 0.8, volume U(0, 0.1))
#   kwt_sc         experiment=kwt_gsc's recipe vs the old default (slow on a CPU: ~5x bcresnet)
#   experiments/recipes/run.sh [FSDD_RECORDINGS_DIR] [extra overrides]
# Every (arm, seed) is one job; JOBS of them run at a time (default 2, one CPU thread each with
# THREADS=1), in bf16-mixed precision on the CPU (2x faster than fp32 here on AMX; all arms
# alike). STAMP=<name> collects parts run separately in one folder for one report.
DEVICE_ARGS="${DEVICE_ARGS:-trainer.accelerator=cpu trainer.precision=bf16-mixed}"
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-30}"            # Speech Commands sample parts
FSDD_EPOCHS="${FSDD_EPOCHS:-15}"  # FSDD converges sooner
SEEDS="${SEEDS:-0 1 2}"
JOBS="${JOBS:-2}"
PARTS="${PARTS:-bcresnet_sc bcresnet_fsdd matchbox_sc beyond_sc}"
SC_ROOT="${SC_ROOT:-../shared/data/speech_commands_sample}"
NOISE_DIR="${NOISE_DIR:-../shared/data/speech_commands_noise}"
SC="data=speech_commands data.root=$SC_ROOT data.download=false data.labels=kws12 trainer.max_epochs=$EPOCHS"
FSDD="$DATA_ARGS augment.noise_dir=$NOISE_DIR trainer.max_epochs=$FSDD_EPOCHS"
OLD_DEFAULT="optim=adamw scheduler=warmup_cosine augment=default"
RUNS="logs/multiruns/recipes/$STAMP"

# One line per job: <sweep folder name> <overrides...>
arms() {
    case "$1" in
    bcresnet_sc)   echo "bcresnet_sc_paper $SC model=bcresnet"
                   echo "bcresnet_sc_old $SC model=bcresnet $OLD_DEFAULT" ;;
    bcresnet_fsdd) echo "bcresnet_fsdd_paper $FSDD model=bcresnet"
                   echo "bcresnet_fsdd_old $FSDD model=bcresnet $OLD_DEFAULT" ;;
    matchbox_sc)   echo "matchbox_sc_paper $SC experiment=matchboxnet_gsc data.protocol=lists"
                   echo "matchbox_sc_old $SC model=matchboxnet $OLD_DEFAULT" ;;
    beyond_sc)     echo "beyond_sc_ema $SC model=bcresnet callbacks=ema" ;;
    mixup_sc)      echo "beyond_sc_mixup $SC model=bcresnet augment.mixup_alpha=0.2" ;;
    matchbox_noise_sc) echo "matchbox_sc_noise $SC experiment=matchboxnet_gsc data.protocol=lists augment.noise_prob=0.8 augment.fresh_silence=true" ;;
    kwt_sc)        echo "kwt_sc_paper $SC experiment=kwt_gsc data.protocol=lists"
                   echo "kwt_sc_old $SC model=kwt $OLD_DEFAULT loss.label_smoothing=0.0" ;;
    *) echo "unknown part $1" >&2; return 2 ;;
    esac
}

queue="$(mktemp)"
for part in $PARTS; do
    for seed in $SEEDS; do
        # no trailing blank: xargs -L would join the next line to it
        arms "$part" | while read -r name overrides; do echo "$name seed=$seed $overrides ${EXTRA[*]}" | sed 's/ *$//'; done
    done
done > "$queue"
mkdir -p "$RUNS"
export PYTHON RUNS DEVICE_ARGS
# shellcheck disable=SC2016  # expanded by the job's own shell
xargs -P "$JOBS" -L 1 bash -c '
    name="$0"; seed="${1#seed=}"
    # shellcheck disable=SC2086
    "$PYTHON" train.py -m task_name=recipes hydra.sweep.dir="$RUNS/$name-s$seed" $DEVICE_ARGS \
        trainer.enable_progress_bar=false test_ckpt=last "$@" > "$RUNS/$name-s$seed.log" 2>&1 \
        && echo "done: $name seed $seed" || echo "FAILED: $name seed $seed (see $RUNS/$name-s$seed.log)"
' < "$queue"
rm -f "$queue"
"$PYTHON" -m audioclf report folder="$RUNS" out=experiments/recipes name=results \
    "title='final weights tested: paper recipes vs the old AdamW default ($EPOCHS epochs SC, $FSDD_EPOCHS FSDD)'" \
    "curves=[val/acc]"
"$PYTHON" experiments/recipes/summarize.py experiments/recipes   # by arm: summary.md, summary_curves.png
finish recipes
