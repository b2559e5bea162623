"""Export: waveform in, logits out; ONNX (run in onnxruntime) and TorchScript match PyTorch."""

from __future__ import annotations

import functools
import json
import time

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from audioclf.config import CONF_DIR, to_dict
from audioclf.deploy import export
from audioclf.errors import UserError
from audioclf.lit.module import AudioClassifier
from audioclf.models import BACKBONES
from audioclf.tasks import export as export_task
from tests.conftest import SMALL_SYNTHETIC, compose_config

TOLERANCE = 1e-4
CLASSES = [f"w{i}" for i in range(8)]
# backbone -> why it cannot be exported to ONNX (the slow test checks that it still cannot)
CANNOT_EXPORT_ONNX: dict[str, str] = {}


def registry_classifier(name: str, seed: int = 0) -> AudioClassifier:
    """An AudioClassifier with backbone `name` at its own config's features and sample rate
    (logmel at 16 kHz when conf/model has no file for it), normalization adapted on noise."""
    model_file = CONF_DIR / "model" / f"{name}.yaml"
    if model_file.is_file():
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"model={name}"])
        backbone, features = to_dict(cfg.model), to_dict(cfg.features)
        rate, seconds = int(cfg.data.sample_rate), float(cfg.data.get("clip_seconds", 1.0))
    else:
        backbone, features, rate, seconds = {"name": name}, {"name": "logmel"}, 16000, 1.0
    torch.manual_seed(seed)
    model = AudioClassifier(
        class_names=CLASSES,
        sample_rate=rate,
        num_samples=int(round(seconds * rate)),
        backbone=backbone,
        features=features,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
    )
    noise = (
        np.random.default_rng(seed)
        .normal(0, 3000, (16, model.hparams.num_samples))
        .astype(np.int16)
    )
    model.frontend.adapt(noise)
    return model.eval()


def save_checkpoint(model: AudioClassifier, path) -> None:
    """A checkpoint `load_classifier` reads, without a training run."""
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": L.__version__,
        },
        path,
    )


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_cli_writes_a_waveform_model_that_matches_pytorch(tmp_path, fmt, capsys):
    ckpt = tmp_path / "model.ckpt"
    model = registry_classifier("tf_cnn")
    save_checkpoint(model, ckpt)
    cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}", f"format={fmt}"], config_name="export")
    result = export_task.run(cfg)
    path = tmp_path / "run" / f"model{export.FORMATS[fmt]}"
    assert result["path"] == str(path) and path.stat().st_size > 0
    assert result["max_abs_diff"] <= TOLERANCE and result["dynamic_batch"]
    meta = json.loads(export.sidecar(path).read_text())
    assert (
        meta["class_names"] == CLASSES
        and meta["sample_rate"] == 16000
        and meta["num_samples"] == 16000
    )
    assert f"wrote {path}" in capsys.readouterr().out
    # raw waveform in, SpecAugment off: a batch of 5 of the model's own training-time input
    waves = np.random.default_rng(3).uniform(-0.5, 0.5, (5, 16000)).astype(np.float32)
    run = export.onnx_logits if fmt == "onnx" else export.torchscript_logits
    with torch.no_grad():
        want = model(torch.from_numpy(waves)).numpy()
    assert np.abs(run(path, waves) - want).max() <= TOLERANCE


def test_export_names_an_unknown_format(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    save_checkpoint(registry_classifier("tf_cnn"), ckpt)
    cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}", "format=tflite"], config_name="export")
    with pytest.raises(UserError, match="format=tflite is unknown: use onnx or torchscript"):
        export_task.run(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_exports_to_onnx_and_torchscript(tmp_path, name):
    model = registry_classifier(name)
    started = time.perf_counter()
    if name in CANNOT_EXPORT_ONNX:
        with pytest.raises(UserError, match="cannot be exported to ONNX"):
            export.export(model, "onnx", tmp_path / "m.onnx")
    else:
        path, dynamic = export.export(model, "onnx", tmp_path / "m.onnx")
        difference = export.max_logit_difference(model, path, "onnx", batch=3 if dynamic else 1)
        assert difference <= TOLERANCE, (name, difference)
    path, _ = export.export(model, "torchscript", tmp_path / "m.pt")
    assert export.max_logit_difference(model, path, "torchscript", batch=3) <= TOLERANCE
    print(f"{name}: exported in {time.perf_counter() - started:.1f} s")


# --- quantize=int8 ---------------------------------------------------------------------------------
INT8_AGREEMENT = 0.9  # int8 top-1 equals fp32 top-1 on at least 90 % of the test clips (measured: 98 %)


def synthetic_checkpoint(tmp_path, model: AudioClassifier, data_overrides=()) -> str:
    """`model` saved as if trained on data=synthetic (8 words, 8 train / 4 test clips per class)."""
    from audioclf.data.sources.synthetic import WORDS

    data = to_dict(compose_config(tmp_path, [*SMALL_SYNTHETIC, "data.test_per_class=4", *data_overrides]).data)
    path = tmp_path / "model.ckpt"
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": {**dict(model.hparams), "class_names": list(WORDS), "data": data},
            "pytorch-lightning_version": L.__version__,
        },
        path,
    )
    return str(path)


def int8_config(tmp_path, ckpt: str, *overrides: str):
    return compose_config(tmp_path, [f"ckpt_path={ckpt}", "quantize=int8", *overrides], config_name="export")


def test_int8_export_writes_a_quantized_model_beside_the_fp32_one(tmp_path, capsys):
    import onnx

    ckpt = synthetic_checkpoint(tmp_path, registry_classifier("tf_cnn"))
    result = export_task.run(int8_config(tmp_path, ckpt, "check=false"))
    run = tmp_path / "run"
    fp32, int8 = run / "model.onnx", run / "model.int8.onnx"
    assert result["int8_path"] == str(int8)
    assert sorted(p.name for p in run.iterdir()) == ["model.int8.onnx", "model.int8.onnx.json", "model.onnx",
                                                      "model.onnx.json"]  # and no temporary folder left
    assert export.sidecar(int8).read_text() == export.sidecar(fp32).read_text()
    assert int8.stat().st_size < fp32.stat().st_size / 3  # int8 weights: tf_cnn is 98 % dense-layer weights
    waves = np.random.default_rng(3).uniform(-0.5, 0.5, (5, 16000)).astype(np.float32)
    want, got = export.onnx_logits(fp32, waves), export.onnx_logits(int8, waves)
    assert got.shape == want.shape == (5, 8)
    assert np.abs(got - want).max() <= 0.25 * np.ptp(want)  # random weights: a loose bound; the slow test scores
    graph = onnx.load(str(int8)).graph
    dequantized = {name for node in graph.node if node.op_type == "DequantizeLinear" for name in node.output}
    layers = [node for node in graph.node if node.op_type in ("Conv", "Gemm")]
    # tf_cnn: conv, conv, dense, dense; the first and the last stay float, the STFT reads the float waveform
    assert [node.input[1] in dequantized for node in layers] == [False, True, True, False]
    assert result["int8_layers"] == 2 and result["weight_layers"] == 4 and result["int8_weight_share"] > 0.9
    assert next(node for node in graph.node if node.op_type == "STFT").input[0] not in dequantized
    assert result["test_clips"] == 32 and 0 <= result["accuracy_int8"] <= 1
    out = capsys.readouterr().out
    assert f"wrote {fp32} and {int8}" in out
    assert "test accuracy" in out and "file size" in out and "CPU latency" in out


@pytest.mark.slow
def test_int8_keeps_the_mel_frontend_float(tmp_path):
    """Quantizing the log-mel / MFCC MatMuls costs most of the accuracy (experiments/int8/README.md)."""
    import onnx

    model = registry_classifier("matchboxnet")
    ckpt = synthetic_checkpoint(tmp_path, model)
    export_task.run(int8_config(tmp_path, ckpt, "evaluate=false", "check=false"))
    graph = onnx.load(str(tmp_path / "run" / "model.int8.onnx")).graph
    dequantized = {name for node in graph.node if node.op_type == "DequantizeLinear" for name in node.output}
    stft = next(index for index, node in enumerate(graph.node) if node.op_type == "STFT")
    mel = [node for node in graph.node[stft:] if node.op_type == "MatMul"][:2]  # mel filters, DCT
    assert len(mel) == 2 and not any(name in dequantized for node in mel for name in node.input)


def test_int8_needs_format_onnx_and_writes_nothing(tmp_path):
    ckpt = synthetic_checkpoint(tmp_path, registry_classifier("tf_cnn"))
    with pytest.raises(UserError, match=r"^quantize=int8 works on ONNX files .*: use format=onnx$"):
        export_task.run(int8_config(tmp_path, ckpt, "format=torchscript"))
    with pytest.raises(UserError, match=r"^quantize=int4 is unknown: use quantize=int8, or null for none$"):
        export_task.run(compose_config(tmp_path, [f"ckpt_path={ckpt}", "quantize=int4"], config_name="export"))
    assert not (tmp_path / "run").exists()


def test_int8_without_the_data_names_data_root_and_writes_nothing(tmp_path):
    missing = tmp_path / "no_such_folder"
    model = registry_classifier("tf_cnn")
    model.hparams.data = to_dict(compose_config(tmp_path, ["data=fsdd", f"data.root={missing}"]).data)
    save_checkpoint(model, tmp_path / "model.ckpt")
    with pytest.raises(UserError) as error:
        export_task.run(int8_config(tmp_path, str(tmp_path / "model.ckpt")))
    message = str(error.value)
    assert "\n" not in message and f"data.root={missing}" in message
    assert "give data=fsdd data.root=<folder>" in message and "evaluate=false" in message
    assert not (tmp_path / "run").exists()


def test_a_backbone_that_does_not_quantize_is_one_line_and_leaves_no_file(tmp_path, monkeypatch):
    import onnxruntime.quantization

    def fails(*args, **kwargs):
        raise RuntimeError("no int8 kernel for GRU\nstack ...")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", fails)
    ckpt = synthetic_checkpoint(tmp_path, registry_classifier("tf_cnn"))
    with pytest.raises(UserError, match=r"^backbone tf_cnn does not quantize to int8 \(RuntimeError: no int8 "
                                        r"kernel for GRU\): export it without quantize=int8$"):
        export_task.run(int8_config(tmp_path, ckpt, "evaluate=false"))
    assert list((tmp_path / "run").iterdir()) == []  # the fp32 export stayed in the removed temporary folder


@pytest.mark.slow
def test_int8_of_a_trained_model_agrees_with_fp32(tmp_path):
    from audioclf.tasks import train

    cfg = compose_config(tmp_path / "train", [*SMALL_SYNTHETIC, "data.train_per_class=16", "data.test_per_class=8",
                                              "trainer.max_epochs=20", "trainer.enable_progress_bar=false",
                                              "logger=none"])
    train.run(cfg)
    ckpt = tmp_path / "train" / "run" / "checkpoints" / "last.ckpt"
    result = export_task.run(int8_config(tmp_path, f"'{ckpt}'"))
    assert result["test_clips"] == 64 and result["accuracy_fp32"] > 0.3  # it learned something (chance 12.5 %)
    assert result["agreement"] >= INT8_AGREEMENT, result
    assert abs(result["accuracy_int8"] - result["accuracy_fp32"]) <= 1 - INT8_AGREEMENT
    assert result["size_int8"] < result["size_fp32"] / 3
