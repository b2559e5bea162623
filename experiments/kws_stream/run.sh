#!/usr/bin/env bash
# Study kws_stream on the Speech Commands sample (SC_ROOT), kws12, SEEDS seeds, EPOCHS epochs, JOBS at
# a time (rerunning skips finished jobs), three training arms:
#   paper       BC-ResNet's paper recipe (model=bcresnet), last epoch tested
#   stream      + stream windows only: 25 % of keyword clips cut at the window's edge -> _unknown_,
#               whole keywords anywhere in the window
#   noise       + noise at 0-20 dB SNR + gain -12..+6 dB: experiment=kws_stream as it shipped before it
#               was made causal (chosen over the kws_stream arm on the validation streams)
#   kws_stream  noise and gain + stream windows (10 % cut, keywords anywhere): experiment=kws_stream as it
#               was first written
#   small       the kws_stream arm at model.width=1.5 (BC-ResNet-1.5: 17k instead of 54k parameters,
#               about 2x cheaper to score, tools/bench/scoring.py)
#   causal      paper with model.causal=true: every temporal convolution sees only the past, so the
#               model streams with state (audioclf/models/streaming.py)
#   noise_causal  noise with model.causal=true: experiment=kws_stream as it ships (chosen over noise on the
#               validation streams: the same FRR, and it streams with state)
#   shipped     experiment=kws_stream as it was then: noise_causal at the config's 30 epochs (width 3)
#   long        experiment=kws_stream at EPOCHS epochs (trained with EPOCHS=100 on a lent GPU:
#               experiments/kws_stream/device_run.sh)
#   wide        long at model.width=6 (BC-ResNet-6): experiment=kws_stream as it ships now, at EPOCHS
#   junctions   wide + junction windows (augment.stream_junction_prob=0.2)
#   wide8       wide at model.width=8 (BC-ResNet-8)
#   maxpool     wide + the max-pooling loss over 5 windows of a segment 400 ms longer than a clip
#               (augment.max_pool_windows=5 augment.max_pool_span_ms=400)
#   long_paper  paper at EPOCHS (the long arms' baseline)
#   long_windows  long + stream windows (the kws_stream arm's, causal)
#   long_noise, long_causal  noise and causal at EPOCHS
# experiment=kws_stream is now BC-ResNet-6 at 100 epochs: the arms trained before pin model.width=3 (and
# shipped its 30 epochs), so they reproduce what they measured.
# ARMS="noise small" trains only those arms (evaluate.py scores every checkpoint runs.csv lacks).
# then evaluate.py scores every checkpoint on the same streams and summarize.py writes results.md.
#   experiments/kws_stream/run.sh [extra overrides]
DEVICE_ARGS="${DEVICE_ARGS:-trainer.accelerator=cpu}"
THREADS="${THREADS:-1}"
source "$(dirname "$0")/../common.sh"
EPOCHS="${EPOCHS:-20}"
SEEDS="${SEEDS:-0 1 2}"
SC_ROOT="${SC_ROOT:-../shared/data/speech_commands_sample}"
ARMS="${ARMS:-paper stream noise kws_stream small causal noise_causal shipped}"  # long*, wide*, junctions, maxpool: by name
RUNS="logs/multiruns/kws_stream/$STAMP"
sc="data=speech_commands data.root=$SC_ROOT data.download=false data.labels=kws12"
DATA_ARGS="$sc"  # what finish writes into run_info.txt
# the kws_stream and small arms were trained when experiment=kws_stream had stream windows on
windows="augment.stream_cut_prob=0.1 augment.stream_cut_visible=0.4 augment.stream_anywhere=true"
for seed in $SEEDS; do
    echo "paper-s$seed seed=$seed $sc model=bcresnet trainer.max_epochs=$EPOCHS test_ckpt=last"
    echo "stream-s$seed seed=$seed $sc model=bcresnet trainer.max_epochs=$EPOCHS test_ckpt=last" \
        "augment.stream_cut_prob=0.25 augment.stream_cut_visible=0.4 augment.stream_anywhere=true"
    echo "noise-s$seed seed=$seed $sc experiment=kws_stream model.width=3 model.causal=false trainer.max_epochs=$EPOCHS" \
        "augment.stream_cut_prob=0 augment.stream_anywhere=false stream_calibration.enabled=false"
    echo "kws_stream-s$seed seed=$seed $sc experiment=kws_stream model.width=3 model.causal=false trainer.max_epochs=$EPOCHS $windows" \
        "stream_calibration.enabled=false"  # evaluate.py calibrates every arm alike
    echo "small-s$seed seed=$seed $sc experiment=kws_stream model.causal=false model.width=1.5 trainer.max_epochs=$EPOCHS" \
        "$windows stream_calibration.enabled=false"
    echo "causal-s$seed seed=$seed $sc model=bcresnet model.causal=true trainer.max_epochs=$EPOCHS test_ckpt=last"
    echo "noise_causal-s$seed seed=$seed $sc experiment=kws_stream model.width=3 model.causal=true trainer.max_epochs=$EPOCHS" \
        "augment.stream_cut_prob=0 augment.stream_anywhere=false stream_calibration.enabled=false"
    echo "shipped-s$seed seed=$seed $sc experiment=kws_stream model.width=3 trainer.max_epochs=30" \
        "stream_calibration.enabled=false"
    echo "long-s$seed seed=$seed $sc experiment=kws_stream model.width=3 trainer.max_epochs=$EPOCHS stream_calibration.enabled=false"
    echo "wide-s$seed seed=$seed $sc experiment=kws_stream model.width=6 trainer.max_epochs=$EPOCHS" \
        "stream_calibration.enabled=false"
    echo "junctions-s$seed seed=$seed $sc experiment=kws_stream model.width=6 trainer.max_epochs=$EPOCHS" \
        "augment.stream_junction_prob=0.2 stream_calibration.enabled=false"
    echo "wide8-s$seed seed=$seed $sc experiment=kws_stream model.width=8 trainer.max_epochs=$EPOCHS" \
        "stream_calibration.enabled=false"
    echo "maxpool-s$seed seed=$seed $sc experiment=kws_stream model.width=6 trainer.max_epochs=$EPOCHS" \
        "augment.max_pool_windows=5 augment.max_pool_span_ms=400 stream_calibration.enabled=false"
    echo "long_paper-s$seed seed=$seed $sc model=bcresnet trainer.max_epochs=$EPOCHS test_ckpt=last"
    echo "long_windows-s$seed seed=$seed $sc experiment=kws_stream model.width=3 trainer.max_epochs=$EPOCHS $windows" \
        "stream_calibration.enabled=false"
    echo "long_noise-s$seed seed=$seed $sc experiment=kws_stream model.width=3 model.causal=false trainer.max_epochs=$EPOCHS" \
        "augment.stream_cut_prob=0 augment.stream_anywhere=false stream_calibration.enabled=false"
    echo "long_causal-s$seed seed=$seed $sc model=bcresnet model.causal=true trainer.max_epochs=$EPOCHS test_ckpt=last"
done | grep -E "^($(echo "$ARMS" | tr ' ' '|'))-s" | run_queue kws_stream
if [[ -n "${TRAIN_ONLY:-}" ]]; then exit 0; fi
"$PYTHON" experiments/kws_stream/evaluate.py "$RUNS" "$SC_ROOT"
"$PYTHON" experiments/kws_stream/summarize.py
finish kws_stream
