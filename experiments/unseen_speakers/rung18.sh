#!/usr/bin/env bash
# Rung 18: pretrain the gru with the unseen-speaker recipe on Speech Commands' 35 words (the sample in
# SC_ROOT, 8 kHz, its own speaker-disjoint lists), then fine-tune it on FSDD leave-one-speaker-out
# with a held-out validation speaker (init_from=: every backbone tensor loaded, the head re-initialised).
#   experiments/unseen_speakers/rung18.sh          # SEEDS ("0 1 2 3 4"), JOBS (2), PRETRAIN_SEED (0), SPEAKERS, OFFICIAL (0)
#   SPEAKERS=" " OFFICIAL=1 experiments/unseen_speakers/rung18.sh     # the official split only
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-.venv/bin/python}"
SC_ROOT="${SC_ROOT:-../shared/data/speech_commands_sample}"
PRETRAIN_SEED="${PRETRAIN_SEED:-0}"
RECIPE=(model=gru features.normalize=utterance "augment.tilt=[-0.7,0.7]"
        "augment.spec_augment={freq_masks:2,freq_width:7,time_masks:2,time_width:12}" "augment.speed=[0.9,1.1]")
PRETRAINED="logs/multiruns/unseen_speakers/pretrain/sc35_gru-s$PRETRAIN_SEED"
if [[ ! -f "$PRETRAINED/checkpoints/last.ckpt" ]]; then
    OMP_NUM_THREADS=1 "$PYTHON" train.py task_name=unseen_speakers_pretrain hydra.run.dir="$PRETRAINED" \
        data=speech_commands data.root="$SC_ROOT" data.download=false data.labels=all data.sample_rate=8000 \
        trainer.accelerator=cpu trainer.precision=bf16-mixed trainer.enable_progress_bar=false \
        trainer.max_epochs=20 seed="$PRETRAIN_SEED" "${RECIPE[@]}" > "$PRETRAINED.log" 2>&1
fi
SEEDS="${SEEDS:-0 1 2 3 4}" VAL_SPEAKER=auto OFFICIAL="${OFFICIAL:-0}" EPOCHS=20 \
    experiments/unseen_speakers/loso.sh 18_sc_pretrained "rung 16 initialised from the gru pretrained with the same recipe on the Speech Commands sample's 35 words at 8 kHz (20 epochs, seed $PRETRAIN_SEED; init_from=, head re-initialised)" \
    experiment=fsdd_unseen_speaker init_from="$PRETRAINED/checkpoints/last.ckpt"
