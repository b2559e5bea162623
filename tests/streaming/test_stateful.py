"""Backbones that stream with state: each hop feeds only its new frames, and the outputs equal one pass
of the causal model over every frame so far (models/streaming.py, StatefulClassifier in runtime.py).

Tolerance: 1e-4 on logits in float32 over many hops (measured: at most 1.2e-7); ONNX vs PyTorch 1e-4.
Batch norms get random running statistics and affine parameters, so a layer that mixed up frames would show it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audioclf.audio.frontends import build_frontend
from audioclf.deploy.export import sidecar
from audioclf.deploy.streaming import export_streaming, replay_difference, streaming_form
from audioclf.lit.module import AudioClassifier
from audioclf.models import build_backbone
from audioclf.models.streaming import StatefulBackbone, carrying, pool_steps, stateful_layers
from audioclf.streaming.detection import say_once, window_probabilities
from audioclf.streaming.runtime import CannotStream, StatefulClassifier, stateless_reason
from audioclf.tasks import export as export_task
from tests.conftest import compose_config
from tests.streaming.test_runtime import recording
from tests.tasks.test_export import save_checkpoint

TOLERANCE = 1e-4
SHAPE = (1, 40, 101)  # logmel, 1 s at 16 kHz
STREAMABLE = [("bcresnet", {"causal": True, "width": 1}), ("gru", {}), ("gru", {"pool": "last"}),
              ("gru", {"pool": "max"}), ("dscnn", {"causal": True})]
CLASSES = [f"word{index}" for index in range(10)] + ["_silence_", "_unknown_"]


def randomized(backbone: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    for module in backbone.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=generator) - 0.5)
            module.running_var.copy_(0.5 + 1.5 * torch.rand(module.running_var.shape, generator=generator))
            if module.affine:
                module.weight.data.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
                module.bias.data.copy_(torch.rand(module.bias.shape, generator=generator) - 0.5)
    return backbone.eval()


def streamable(name: str, hparams: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    return randomized(build_backbone(name, 12, SHAPE, **hparams))


@pytest.mark.parametrize(("name", "hparams"), STREAMABLE)
@pytest.mark.parametrize("hop", [2, 10])
@torch.no_grad()
def test_hop_by_hop_equals_one_pass_over_every_frame(name, hparams, hop):
    backbone = streamable(name, hparams)
    stream = StatefulBackbone(backbone, SHAPE)
    stride = 2 if name in ("gru", "dscnn") else 1  # frames per step: a hop of 2 or 10 frames gives 1 or 5 steps
    hops = 24
    frames = torch.randn(1, *SHAPE[:-1], SHAPE[-1] + hops * hop, generator=torch.Generator().manual_seed(1))
    logits, *states = stream.start(frames[..., : SHAPE[-1]])
    assert torch.allclose(logits, backbone(frames[..., : SHAPE[-1]]), atol=TOLERANCE, rtol=0)  # a clip primes it
    everything = backbone.embed(frames)
    for j in range(1, hops + 1):
        logits, *states = stream(frames[..., SHAPE[-1] + (j - 1) * hop : SHAPE[-1] + j * hop], *states)
        done = everything.shape[-1] - (hops - j) * hop // stride
        want = backbone.classify(pool_steps(everything[..., done - stream.steps : done], backbone.pool))
        assert torch.allclose(logits, want, atol=TOLERANCE, rtol=0), (name, j)
    assert [tuple(s.shape) for s in states] == [tuple(s.shape) for s in stream.start(frames[..., :101])[1:]]


@torch.no_grad()
def test_a_causal_model_is_the_same_clip_model_with_the_same_parameters():
    """causal=true changes padding only: checkpoints of either load into the other, outputs differ."""
    same, causal = streamable("bcresnet", {"width": 1}), streamable("bcresnet", {"width": 1, "causal": True})
    assert [k for k in same.state_dict()] == [k for k in causal.state_dict()]
    causal.load_state_dict(same.state_dict())
    clip = torch.randn(2, *SHAPE)
    assert not torch.allclose(same(clip), causal(clip), atol=1e-3)
    late = clip.clone()
    late[..., -1] += 5.0  # a causal model's first frames do not see the last frame
    assert torch.equal(causal.embed(clip)[..., :-1], causal.embed(late)[..., :-1])
    assert not torch.equal(same.embed(clip)[..., :-1], same.embed(late)[..., :-1])


def test_states_must_be_exactly_the_previous_hops():
    stream = StatefulBackbone(streamable("dscnn", {"causal": True}), SHAPE)
    with torch.no_grad():
        _, *states = stream.start(torch.randn(1, *SHAPE))
        frames = torch.randn(1, *SHAPE[:-1], 2)
        with pytest.raises(ValueError, match="^fewer states than stateful layers"):
            stream(frames, *states[:3])
        with pytest.raises(ValueError, match="^1 states were not used"):
            with carrying(stateful_layers(stream.backbone), [*states[:-1], states[0]]):
                stream.backbone.embed(frames)


@pytest.mark.parametrize(("name", "hparams", "layer"), [
    ("bcresnet", {}, "bcresnet: its 'same'-padded temporal convolutions see future frames: train it with "
                     "model.causal=true"),
    ("dscnn", {}, "dscnn: its 'same'-padded convolutions see future frames"),
    ("crnn", {}, "crnn: its LSTM steps over channels"),
])
def test_a_backbone_that_cannot_keep_state_says_why_in_one_line(name, hparams, layer):
    backbone = build_backbone(name, 12, SHAPE if name != "crnn" else (1, 128, 44), **hparams)
    assert stateless_reason(backbone).startswith(layer)
    with pytest.raises(CannotStream, match=f"^{name}: "):
        StatefulClassifier(build_frontend({"name": "logmel"}, 16000), backbone, 16000, 1600, 16000)


def test_a_hop_must_be_a_multiple_of_the_backbones_time_stride():
    backbone = streamable("dscnn", {"causal": True})  # stride 2 in time
    with pytest.raises(CannotStream, match=r"^a hop of 3 frames is not a multiple of the backbone's time stride "
                                           r"\(2 frames\): use a hop of 2 frames$"):
        StatefulClassifier(build_frontend({"name": "logmel"}, 16000), backbone, 16000, 480, 16000)


def classifier(name: str, hparams: dict) -> AudioClassifier:
    torch.manual_seed(0)
    model = AudioClassifier(CLASSES, 16000, 16000, backbone={"name": name, **hparams}, features={"name": "logmel"})
    model.frontend.adapt(np.random.default_rng(0).normal(0, 3000, (8, 16000)).astype(np.int16))
    randomized(model.backbone)
    return model.eval()


@pytest.mark.parametrize(("name", "hparams"), [STREAMABLE[0], STREAMABLE[1], STREAMABLE[4]])
@torch.no_grad()
def test_the_live_stream_equals_one_pass_over_the_recording(name, hparams):
    """Samples in hop by hop (20 ms) through frontend and backbone, against `recording_probabilities`:
    one causal pass over the whole recording in long chunks, the pooling by running sums."""
    stream = StatefulClassifier(*(lambda m: (m.frontend, m.backbone))(classifier(name, hparams)), 16000, 320, 16000)
    audio = recording(1.0 + 60 * 0.02 + 0.01)
    probabilities, samples, *states = stream.start(audio[None, :16000])
    live = [probabilities]
    for j in range(60):
        probabilities, samples, *states = stream(audio[None, 16000 + j * 320 : 16000 + (j + 1) * 320], samples, *states)
        live.append(probabilities)
    ends = 16000 + 320 * np.arange(61)
    offline = stream.recording_probabilities(audio, ends, chunk_hops=7)  # chunks not aligned to anything
    assert torch.allclose(torch.cat(live), offline, atol=1e-5, rtol=0)


def test_stream_mode_stateful_carries_the_backbones_state_and_says_when_it_cannot(capsys):
    say_once.cache_clear()
    model = classifier("bcresnet", {"causal": True, "width": 1})
    audio = recording(3.37).numpy()
    audio[16000:32000] = 0  # quiet windows stay all-zero rows
    starts, stateful = window_probabilities(model, audio, 1600, -50.0, stream_mode="stateful")
    _, windowed = window_probabilities(model, audio, 1600, -50.0, stream_mode="windowed")
    stream = StatefulClassifier(model.frontend, model.backbone, 16000, 1600, 16000)
    want = stream.recording_probabilities(torch.from_numpy(audio), starts + 16000).numpy()
    loud = stateful.sum(axis=1) > 0
    assert (~loud).any() and np.abs(stateful[loud] - want[loud]).max() <= 1e-5
    assert np.abs(stateful[loud] - windowed[loud]).max() > 1e-4  # hears the past beyond the window
    assert capsys.readouterr().err == ""
    window_probabilities(classifier("bcresnet", {"width": 1}), audio, 1600, -50.0, stream_mode="stateful")
    assert capsys.readouterr().err.strip() == (
        "info: stream_mode=stateful: bcresnet: its 'same'-padded temporal convolutions see future frames: train "
        "it with model.causal=true to stream with state; the frontend streams, the backbone runs on each window")


@pytest.mark.parametrize(("name", "hparams"), [
    STREAMABLE[1], STREAMABLE[4], pytest.param(*STREAMABLE[0], marks=pytest.mark.slow)])
def test_the_stateful_step_exports_to_onnx_with_its_states_and_matches_over_50_hops(tmp_path, name, hparams):
    pytest.importorskip("onnxruntime")
    model = classifier(name, hparams)
    result = export_streaming(model, tmp_path / "step.onnx", 320)
    assert result["stateful"] and result["states"] == {"bcresnet": 15, "gru": 4, "dscnn": 6}[name]
    assert replay_difference(streaming_form(model, 320)[0], result["path"], hops=50) <= TOLERANCE


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_cli_writes_the_stateful_step_and_checks_it(tmp_path, fmt, capsys):
    pytest.importorskip("onnxruntime")
    ckpt = tmp_path / "model.ckpt"
    save_checkpoint(classifier("bcresnet", {"causal": True, "width": 1}), ckpt)
    cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}", f"format={fmt}", "streaming=true"], config_name="export")
    result = export_task.run(cfg)
    assert result["stateful"] and result["states"] == 15 and result["max_abs_diff"] <= TOLERANCE
    meta = json.loads(sidecar(Path(result["path"])).read_text())
    assert meta["hop_samples"] == 320 and meta["format"] == fmt and len(meta["input"]) == 2 + 15
    runtime = "onnxruntime" if fmt == "onnx" else "TorchScript"
    assert f"check: 50 hops in {runtime}" in capsys.readouterr().out



def test_the_step_bench_times_windowed_and_carried_hops_in_each_runtime(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from tools.bench import step as bench

    rows = bench.main(["--backbones", "gru", "--rounds", "2", "--warmup", "1", "--json", str(tmp_path / "r.json")])
    assert [(r["backbone"], r["hop_ms"], r["runtime"]) for r in rows] == [
        ("gru", 20.0, "eager"), ("gru", 20.0, "torchscript"), ("gru", 20.0, "onnxruntime")]
    assert all(r["windowed"] > 0 and r["carried"] > 0 for r in rows)
    assert rows[1]["rtf_carried"] == pytest.approx(rows[1]["carried"] / 20.0)
    out = capsys.readouterr().out
    assert f"| `gru` | 20.0 | onnxruntime | {rows[2]['windowed']:.3f} | {rows[2]['carried']:.3f} |" in out
    assert json.loads((tmp_path / "r.json").read_text()) == rows
