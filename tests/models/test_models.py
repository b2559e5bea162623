"""Every registered backbone: shapes, gradients, the originals' parameter counts,
overfitting one small synthetic batch, and its config training end to end."""

from __future__ import annotations

import csv
import math
import time
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audioclf.audio.frontends import build_frontend
from audioclf.config import CONF_DIR, model_sample_rate
from audioclf.data.sources.synthetic import SyntheticSource
from audioclf.models import BACKBONES, build_backbone, count_parameters
from audioclf.tasks import train
from audioclf.tasks.models import count_flops, describe, model_config, rnn_flops
from tests.conftest import SMALL_SYNTHETIC, compose_config

NAMES = sorted(BACKBONES)
CLASSES = 8
PER_CLASS = 1  # one batch of 8 clips

# name -> (num_classes, input shape, parameters) of the original at its own input
PARAMETER_COUNTS = {
    "tf_cnn": (8, (1, 129, 124), 1_625_608),
    "cnn_baseline": (10, (1, 128, 44), 143_242),
    "crnn": (10, (1, 128, 44), 1_942_346),
    "parallel_cnn_lstm": (10, (1, 128, 44), 260_042),
    # Keras LSTM(128) -> Dense(100) -> Dense(10) on 80 mels is 120,918: +512 for torch's second bias
    "lstm_fsdd": (10, (1, 80, 16), 121_430),
    # the paper's BC-ResNet-1 (9.2k) and -8 (321k) at 12 classes
    "bcresnet": (12, (1, 40, 101), 9_232),
    # KWT-1: the official model summary's 607,308 (98 frames of 40 MFCC)
    "kwt": (12, (1, 40, 98), 607_308),
    # MatchboxNet-3x2x64 at 12 classes; the paper's 93K counts v2's 35 classes (below)
    "matchboxnet": (12, (1, 64, 101), 90_444),
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared, oversubscribed CPU two spinning OpenMP threads
    made these small steps ~30x slower (0.34 s -> 12 s per bcresnet step)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _loss(model: torch.nn.Module, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """What AudioClassifier._step does: the backbone's own loss if it has one, else CE."""
    own = getattr(model, "loss", None)
    return own(logits, labels) if callable(own) else F.cross_entropy(logits, labels)


@pytest.fixture(scope="module")
def batches():
    """Default-frontend features of one synthetic batch, per backbone (built once)."""
    waves_by_rate: dict[int, np.ndarray] = {}
    built = {}

    def get(name: str):
        if name in built:
            return built[name]
        cfg = model_config(name)
        rate = model_sample_rate(cfg)
        if rate not in waves_by_rate:
            source = SyntheticSource(num_classes=CLASSES, train_per_class=PER_CLASS,
                                     sample_rate=rate)
            clips = source.clips("train")
            waves_by_rate[rate] = np.stack([source.read(c)[0] for c in clips])
            assert [c.label for c in clips] == [i % CLASSES for i in range(len(clips))]
        waves = waves_by_rate[rate]
        labels = torch.arange(len(waves)) % CLASSES
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # empty mel filters at some rates
            frontend = build_frontend(cfg["features"], rate)
        frontend.adapt((waves * 32767).astype(np.int16))
        with torch.no_grad():
            features = frontend(torch.from_numpy(waves))
        spec = dict(cfg["model"])
        spec.pop("name")
        built[name] = (features, labels, spec)
        return built[name]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_and_backward(name, batches):
    features, labels, spec = batches(name)
    torch.manual_seed(0)
    model = build_backbone(name, CLASSES, features.shape[1:], **spec)
    logits = model(features[:4])
    assert logits.shape == (4, CLASSES)
    _loss(model, logits, labels[:4]).backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname
    assert any(param.grad.abs().sum() > 0 for param in model.parameters())


@pytest.mark.parametrize("name", sorted(PARAMETER_COUNTS))
def test_parameter_count_of_the_original(name):
    classes, shape, expected = PARAMETER_COUNTS[name]
    assert count_parameters(build_backbone(name, classes, shape)) == expected


def test_bcresnet_width_multiplier():
    assert count_parameters(build_backbone("bcresnet", 12, (1, 40, 101), width=8)) == 321_068


# KWT-2 ~2.39M; KWT-3 is the official model summary's 5,360,844
@pytest.mark.parametrize("size, expected", [(2, 2_394_252), (3, 5_360_844)])
def test_kwt_sizes(size, expected):
    assert count_parameters(build_backbone("kwt", 12, (1, 40, 98), size=size)) == expected


def test_kwt_size_must_be_1_2_or_3():
    with pytest.raises(ValueError, match="size=4"):
        build_backbone("kwt", 12, (1, 40, 98), size=4)


def test_matchboxnet_counts_of_the_paper_at_35_classes():
    assert count_parameters(build_backbone("matchboxnet", 35, (1, 64, 101))) == 93_411  # 93K
    assert count_parameters(build_backbone("matchboxnet", 35, (1, 64, 101), repeats=1)) == 77_859  # 3x1x64's 77K


# Steps allowed to reach 90 % training accuracy on the 8-clip batch (eval mode).
MAX_STEPS = 100
# The faithful gru_seq2seq (Dropout 0.8 at five places) does not fit even 8 clips in 100
# steps (0.5 accuracy); the wiring test turns its dropout off. FSDD shows the failing form.
OVERFIT_HPARAMS = {"gru_seq2seq": {"dropout": 0.0}}


@pytest.mark.parametrize("name", NAMES)
def test_overfits_one_batch(name, batches):
    features, labels, spec = batches(name)
    torch.manual_seed(0)
    spec = {**spec, **OVERFIT_HPARAMS.get(name, {})}
    model = build_backbone(name, CLASSES, features.shape[1:], **spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    started, accuracy = time.perf_counter(), 0.0
    for step in range(1, MAX_STEPS + 1):
        model.train()
        loss = _loss(model, model(features), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 5 == 0:
            model.eval()
            with torch.no_grad():
                accuracy = (model(features).argmax(1) == labels).float().mean().item()
            if accuracy >= 0.9:
                break
    seconds = time.perf_counter() - started
    assert accuracy >= 0.9, f"{name}: {accuracy:.2f} after {step} steps ({seconds:.1f} s)"


def test_gru_seq2seq_loss_is_per_frame_sigmoid_bce(batches):
    features, labels, spec = batches("gru_seq2seq")
    model = build_backbone("gru_seq2seq", CLASSES, features.shape[1:], **spec).eval()
    logits = model(features[:3])
    frames = model.frame_logits
    assert frames.shape == (3, 55, CLASSES)  # 124 STFT frames -> Conv1D k15 s2 -> 55 steps
    assert torch.allclose(logits, frames.mean(1))
    target = F.one_hot(labels[:3], CLASSES).float()
    manual = torch.stack([F.binary_cross_entropy(torch.sigmoid(frames[:, t]), target)
                          for t in range(frames.shape[1])]).mean()
    assert torch.allclose(model.loss(logits, labels[:3]), manual, atol=1e-6)


def test_frontend_shapes():
    lstm = build_frontend({"name": "raw_power_mel", "normalize": "none", "librosa_layout": False}, 8000)
    assert lstm.output_shape(4000) == (1, 80, 16)  # 0.5 s at 8 kHz, frame 512, hop 256
    as_keras_read_it = build_frontend({"name": "raw_power_mel", "normalize": "none"}, 8000)
    assert as_keras_read_it.output_shape(4000) == (1, 16, 80)  # librosa's (mels, frames) as (steps, features)
    fsdd = model_config("lstm_fsdd", ["data=fsdd"])
    assert (model_sample_rate(fsdd), fsdd["data"]["clip_seconds"]) == (8000, 0.5)
    assert build_frontend(fsdd["features"], 8000).output_shape(4000) == (1, 80, 16)
    blog = model_config("crnn")
    assert model_sample_rate(blog) == 22050 and blog["data"]["sample_rate"] == 16000  # declared, not rewritten
    assert build_frontend(blog["features"], 22050).output_shape(22050) == (1, 128, 44)
    phased = model_config("phase3d")["features"]
    assert build_frontend(phased, 16000).output_shape(16000) == (10, 129, 253)  # padded to 16,384
    assert build_frontend({"name": "waveform"}, 8000).output_shape(8000) == (1, 1, 8000)


def test_phased_stft_weights_follow_the_chord_distance():
    frontend = build_frontend(model_config("phase3d")["features"], 16000)
    tone = torch.sin(2 * math.pi * 1000 * torch.arange(16000) / 16000).unsqueeze(0)
    volume = frontend.transform(tone)[0]                        # (P, F, T)
    spec = torch.stft(torch.nn.functional.pad(tone, (0, 384)), 256, 64,
                      window=torch.hann_window(256), center=False, return_complex=True)[0]
    phase, magnitude = torch.angle(spec), torch.log1p(spec.abs())
    sigma = 0.8 * 2 * math.pi / 10
    phasor = torch.polar(torch.ones_like(phase), phase)
    for k in (0, 3, 7):
        centre = torch.polar(torch.tensor(1.0), torch.tensor(2 * math.pi * k / 10))
        chord = (phasor - centre).abs()
        expected = magnitude * torch.exp(-chord**2 / (2 * sigma**2))
        assert torch.allclose(volume[k], expected, atol=1e-4)


def test_flop_count_sees_lstm_layers():
    model = build_backbone("lstm_fsdd", 10, (1, 80, 16))
    lstm = 2 * 4 * (80 + 128) * 128 * 16  # 2 x gates x (input + hidden) x hidden, for each of 16 steps
    dense = 2 * (128 * 100 + 100 * 10)
    assert count_flops(model, torch.zeros(1, 1, 80, 16)) == lstm + dense == 3_435_472


def test_rnn_flops_counts_every_layer_and_direction():
    gru = torch.nn.GRU(10, 20, num_layers=2, bidirectional=True)
    first = 2 * 2 * 3 * (10 + 20) * 20 * 5  # directions x 2 x gates x (input + hidden) x hidden x steps
    second = 2 * 2 * 3 * (40 + 20) * 20 * 5  # its input: both directions of the first layer
    assert rnn_flops(gru, 5) == first + second == 108_000


def test_models_table_row():
    row = describe("crnn", 10)
    assert row["params"] == 1_942_346 and row["input"] == (1, 128, 44) and row["mflops"] > 0


@pytest.mark.parametrize("name", NAMES)
def test_model_config_composes_with_a_one_line_note(name, tmp_path):
    cfg = compose_config(tmp_path, [f"model={name}", *SMALL_SYNTHETIC, "debug=fast"])
    assert cfg.model.name == name
    lines = (CONF_DIR / "model" / f"{name}.yaml").read_text().splitlines()
    assert lines[0] == "# @package _global_" and lines[1].startswith("# ")


def _fast_dev_run(tmp_path, overrides):
    """One train, val and test batch of 8 clips (debug=fast): finite losses, and a test report that
    counts each of the 8 test clips once over the 8 classes."""
    overrides = [*overrides, *SMALL_SYNTHETIC, "debug=fast", "data.batch_size=8", "data.eval_batch_size=8"]
    cfg = compose_config(tmp_path, overrides)
    metrics = train.run(cfg)
    assert math.isfinite(metrics["train/loss_epoch"]) and math.isfinite(metrics["test/loss"])
    assert metrics["epochs"] == 1 and metrics["params"] > 0
    rows = list(csv.DictReader((tmp_path / "run" / "test_report.csv").open()))
    per_class = [row for row in rows if row["label"] in SyntheticSource(num_classes=8).class_names]
    assert len(per_class) == 8 and sum(int(row["support"]) for row in per_class) == 8
    return metrics


@pytest.mark.parametrize(
    "overrides", [["model=gru_seq2seq"], ["model=lstm_fsdd", "features=raw_power_mel"]]
)
def test_train_runs(tmp_path, overrides):
    _fast_dev_run(tmp_path, overrides)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_train_runs_every_model(tmp_path, name):
    _fast_dev_run(tmp_path, [f"model={name}"])
