#!/usr/bin/env bash
# Study phase: does phase help? The phased spectrogram (features=phased_stft) spreads each
# STFT bin's log1p magnitude over 10 phase bins by the bin's phase. With
# features.sigma_scale=10000 the spreading kernel is flat, so all 10 bins hold the same
# magnitude: same input size, same network, same compute, no phase. Three arms at an
# equal epoch budget:
#   magnitude only:     model=phase2d features.sigma_scale=10000
#   phase as channels:  model=phase2d (sigma_scale 0.8)
#   3D phase CNN:       model=phase3d (conv over phase x freq x time, circular in phase)
#   experiments/phase/run.sh [FSDD_RECORDINGS_DIR] [extra overrides]
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-8}"
SEEDS="${SEEDS:-0,1,2}"

sweep phase phase2d model=phase2d features.sigma_scale=10000,0.8 seed="$SEEDS" \
    trainer.max_epochs="$EPOCHS"
sweep phase phase3d model=phase3d seed="$SEEDS" trainer.max_epochs="$EPOCHS"
"$PYTHON" -m audioclf report folder="$RUNS" out=experiments/phase name=results \
    "title='FSDD, $EPOCHS epochs: magnitude only (sigma_scale=10000) vs phase'" \
    "curves=[val/acc]"
finish phase
