#!/usr/bin/env bash
# Does the unseen-speaker recipe cost accuracy where speakers are many? The Speech Commands sample
# (kws12; its train/val/test speakers are disjoint), 30 epochs, final weights tested (the recipes
# study's protocol), seeds 0-2, paired arms:
#   bcr_paper    model=bcresnet, its paper recipe: the recipes study's best (SpecAugment included)
#   bcr_recipe   ... plus what experiment=fsdd_unseen_speaker adds to it: per-clip level
#                normalization, random channel tilt, speed perturbation +-10 %
#   gru_plain    model=gru as the cnn_vs_rnn study trains it (augment=none)
#   gru_recipe   model=gru with the whole fsdd_unseen_speaker recipe (+ its SpecAugment)
#   gru_norm     model=gru with the recipe's level normalization only
#   gru_augment  model=gru with the recipe's augmentation only (tilt, SpecAugment, speed; global norm)
#   experiments/unseen_speakers/sc_check.sh [extra overrides]     ARMS="bcr_paper bcr_recipe" to pick
# Jobs go to logs/multiruns/unseen_speakers/sc_check/<arm>-s<seed> (rerunning skips finished ones);
# then the report (sc_check.md/.csv/.png), sc_check.py (sc_check_summary.md) and sc_check_info.txt.
DEVICE_ARGS="${DEVICE_ARGS:-trainer.accelerator=cpu trainer.precision=bf16-mixed}"
THREADS="${THREADS:-1}"
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-30}"
SEEDS="${SEEDS:-0 1 2}"
ARMS="${ARMS:-bcr_paper bcr_recipe gru_plain gru_recipe}"
SC_ROOT="${SC_ROOT:-../shared/data/speech_commands_sample}"
RUNS="${RUNS:-logs/multiruns/unseen_speakers/sc_check}"
DATA_ARGS="data=speech_commands data.root=$SC_ROOT data.download=false data.labels=kws12"
SC="$DATA_ARGS trainer.max_epochs=$EPOCHS test_ckpt=last"
NORM="features.normalize=utterance"
AUGMENT="augment.tilt=[-0.7,0.7] augment.speed=[0.9,1.1]"
SPEC_AUGMENT="augment.spec_augment={freq_masks:2,freq_width:7,time_masks:2,time_width:12}"

overrides() {
    case "$1" in
    bcr_paper)  echo "model=bcresnet" ;;
    bcr_recipe) echo "model=bcresnet $NORM $AUGMENT" ;;
    gru_plain)  echo "model=gru" ;;
    gru_recipe) echo "model=gru $NORM $AUGMENT $SPEC_AUGMENT" ;;
    gru_norm)   echo "model=gru $NORM" ;;
    gru_augment) echo "model=gru $AUGMENT $SPEC_AUGMENT" ;;
    *) echo "ARMS: $1 is not one of bcr_paper bcr_recipe gru_plain gru_recipe gru_norm gru_augment" >&2
       return 2 ;;
    esac
}

for seed in $SEEDS; do for arm in $ARMS; do
    echo "$arm-s$seed seed=$seed $SC $(overrides "$arm")"
done; done | run_queue unseen_speakers
"$PYTHON" -m audioclf report folder="$RUNS" out=experiments/unseen_speakers name=sc_check \
    "title='SC sample kws12, $EPOCHS epochs, final weights: the unseen-speaker recipe vs without'" \
    "curves=[val/acc]"
"$PYTHON" experiments/unseen_speakers/sc_check.py experiments/unseen_speakers/sc_check_runs.csv
finish unseen_speakers sc_check_info
