#!/usr/bin/env bash
# Rung 17: rung 16 (experiment=fsdd_unseen_speaker's recipe, a held-out validation speaker) on data=digits_mix
# at 8 kHz: FSDD plus the Speech Commands sample's zero..nine (its 186 training clips, its own speaker-disjoint
# lists) mixed into training, a third of the draws; validation and test on FSDD only.
#   experiments/unseen_speakers/rung17.sh          # SEEDS ("0 1 2 3 4"), SPEAKERS, OFFICIAL (1), JOBS (2)
#   SPEAKERS=" " SEEDS="3 4" experiments/unseen_speakers/rung17.sh     # the official split only
set -euo pipefail
cd "$(dirname "$0")/../.."
FSDD_ROOT="${FSDD_ROOT:-../shared/data/fsdd/recordings}"
SC_ROOT="${SC_ROOT:-../shared/data/speech_commands_sample}"
export DATA_ARGS="data=digits_mix data.sample_rate=8000 data.parts.fsdd.root=$FSDD_ROOT data.parts.fsdd.download=false \
data.parts.speech_commands.root=$SC_ROOT data.parts.speech_commands.download=false"
SEEDS="${SEEDS:-0 1 2 3 4}" VAL_SPEAKER=auto OFFICIAL="${OFFICIAL:-1}" EPOCHS=20 SPLIT_KEY=data.parts.fsdd \
    experiments/unseen_speakers/loso.sh 17_mix_sc_digits "rung 16 + Speech Commands' zero..nine (the sample's 186 training clips, its own speaker-disjoint lists) mixed into training at 8 kHz, a third of the draws (weights fsdd 2, speech_commands 1); validation and test on FSDD only" \
    model=gru features.normalize=utterance "augment.tilt=[-0.7,0.7]" \
    "augment.spec_augment={freq_masks:2,freq_width:7,time_masks:2,time_width:12}" "augment.speed=[0.9,1.1]" \
    data.parts.fsdd.weight=2 data.parts.speech_commands.weight=1 "data.parts.speech_commands.feeds=[train]"
