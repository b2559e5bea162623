"""trainer.precision=bf16-mixed on CPU: every backbone trains a step and validates; precision=auto
picks bf16-mixed only where the hardware has it; compile and channels_last train to the same logits' shape."""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from audioclf.errors import UserError
from audioclf.lit import precision
from audioclf.lit.precision import CpuBf16Lstm
from audioclf.models import BACKBONES
from audioclf.tasks import build, train
from tests.conftest import SMALL_SYNTHETIC, compose_config
from tests.tasks.test_export import registry_classifier

FAST = ("tf_cnn", "lstm_fsdd")  # a CNN and an LSTM in the fast suite; the rest with -m slow


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in sorted(BACKBONES)]
)
def test_bf16_mixed_trains_every_backbone_on_cpu(name):
    model = registry_classifier(name).train()
    rng = np.random.default_rng(0)
    waves = torch.from_numpy(rng.normal(0, 3000, (4, model.hparams.num_samples)).astype(np.int16))
    labels = torch.arange(4) % len(model.class_names)
    loader = DataLoader(TensorDataset(waves, labels), batch_size=4)
    trainer = L.Trainer(
        accelerator="cpu",
        precision="bf16-mixed",
        fast_dev_run=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[CpuBf16Lstm()],  # as build.build_trainer adds it
    )
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    after = list(model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True)), "no step taken"
    loss = trainer.callback_metrics["val/loss"]
    assert torch.isfinite(loss), (name, loss)


def test_bf16_mixed_through_the_train_entry_point(tmp_path):
    cfg = compose_config(
        tmp_path,
        [*SMALL_SYNTHETIC, "debug=fast", "trainer.accelerator=cpu", "trainer.precision=bf16-mixed"],
    )
    metrics = train.run(cfg)
    assert np.isfinite(metrics["test/loss"])


# --- precision=auto ---------------------------------------------------------------------------

@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU with native bf16 (answer=True) or without (False), whatever this machine has."""
    def set_answer(answer: bool) -> None:
        monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: answer)
        monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ["amx_bf16"] if answer else [])
    return set_answer


def test_auto_is_the_default_except_where_the_precision_study_kept_fp32(tmp_path):
    assert compose_config(tmp_path, []).trainer.precision == "auto"
    assert compose_config(tmp_path, ["model=bcresnet"]).trainer.precision == "auto"
    assert compose_config(tmp_path, ["model=matchboxnet"]).trainer.precision == "32-true"
    assert compose_config(tmp_path, ["model=matchboxnet", "trainer.precision=auto"]).trainer.precision == "auto"


def test_auto_resolves_and_our_keys_do_not_reach_lightning(tmp_path):
    cfg = compose_config(tmp_path, ["trainer.accelerator=cpu", "trainer.precision=auto"])
    node = build.trainer_node(cfg)
    assert "compile" not in node and "channels_last" not in node
    assert node["precision"] in ("bf16-mixed", "32-true")


def test_auto_is_bf16_mixed_on_a_cpu_with_native_bf16_and_says_how_to_opt_out(tmp_path, bf16_cpu, caplog):
    bf16_cpu(True)
    cfg = compose_config(tmp_path, ["trainer.accelerator=cpu", "trainer.precision=auto"])
    with caplog.at_level(logging.INFO, logger=build.__name__):
        assert build.trainer_node(cfg)["precision"] == "bf16-mixed"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("precision:")]
    assert len(lines) == 1 and "bf16-mixed" in lines[0] and "trainer.precision=32-true" in lines[0]


def test_auto_falls_back_to_32_true_with_one_info_line_on_a_cpu_without_bf16(tmp_path, bf16_cpu, caplog):
    bf16_cpu(False)
    cfg = compose_config(tmp_path, ["trainer.accelerator=cpu", "trainer.precision=auto"])
    with caplog.at_level(logging.INFO, logger=build.__name__):
        assert build.trainer_node(cfg)["precision"] == "32-true"
        build.build_trainer(cfg)  # no error either
    lines = [r for r in caplog.records if r.getMessage().startswith("precision:")]
    assert len(lines) == 2 and lines[0].levelno == logging.INFO and "no native bf16" in lines[0].getMessage()


@pytest.mark.parametrize("value", ["32-true", "16-mixed", "bf16-mixed", "64-true"])
def test_explicit_precision_passes_through_unchanged(tmp_path, bf16_cpu, caplog, value):
    bf16_cpu(value != "bf16-mixed")  # the opposite of what auto would pick must not matter
    cfg = compose_config(tmp_path, ["trainer.accelerator=cpu", f"trainer.precision={value}"])
    with caplog.at_level(logging.INFO, logger=build.__name__):
        assert build.trainer_node(cfg)["precision"] == value
    assert not [r for r in caplog.records if r.getMessage().startswith("precision:")]


def test_a_bad_precision_is_a_one_line_error_naming_the_key(tmp_path):
    cfg = compose_config(tmp_path, [*SMALL_SYNTHETIC, "trainer.precision=fp8"])
    with pytest.raises(UserError) as error:
        build.build_trainer(cfg)
    message = str(error.value)
    assert "\n" not in message and message.startswith("trainer.precision=fp8 is unknown") and "32-true" in message


def test_cpu_bf16_detection_reads_the_native_bf16_flags(tmp_path, monkeypatch):
    with_amx, without = tmp_path / "amx", tmp_path / "plain"
    with_amx.write_text("flags\t\t: fpu sse avx512f avx512bw avx512_bf16 amx_tile amx_bf16\n")
    without.write_text("flags\t\t: fpu sse avx512f avx512bw avx512_vnni\n")  # oneDNN would emulate bf16 here
    assert precision.cpu_bf16_flags(with_amx) == ["avx512_bf16", "amx_bf16"]
    assert precision.cpu_bf16_flags(without) == []
    assert precision.cpu_bf16_flags(tmp_path / "missing") == []  # no /proc/cpuinfo: no bf16
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: [])
    assert precision.cpu_supports_bf16() is False
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ["avx512_bf16"])
    assert precision.cpu_supports_bf16() is True


@pytest.mark.parametrize("bf16, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_on_a_cuda_gpu_is_bf16_mixed_only_where_it_supports_bf16(monkeypatch, bf16, expected):
    monkeypatch.setattr(precision, "resolved_device", lambda accelerator: "cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    assert precision.resolve_precision("auto", "gpu")[0] == expected


@pytest.mark.parametrize("native", [True, False])
def test_lstm_workaround_turns_onednn_off_only_on_a_cpu_without_native_bf16(bf16_cpu, native):
    bf16_cpu(native)
    model = registry_classifier("lstm_fsdd")
    trainer = L.Trainer(accelerator="cpu", precision="bf16-mixed", logger=False, enable_progress_bar=False)
    callback, before = CpuBf16Lstm(), torch.backends.mkldnn.enabled
    callback.setup(trainer, model, "fit")
    try:
        assert torch.backends.mkldnn.enabled is (before if native else False)
    finally:
        callback.teardown(trainer, model, "fit")
    assert torch.backends.mkldnn.enabled is before


# --- bf16-mixed, compile and channels_last train and give logits of fp32's shape ---------------

class CollectTestLogits(L.Callback):
    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.batches.append(outputs.detach().float())


def trained_logits(name: str, precision_value: str = "32-true", compile: bool = False,
                   channels_last: bool = False) -> torch.Tensor:
    """Two training steps with the given fast path, then the logits of a test pass in the same setting."""
    model = registry_classifier(name).train()
    if channels_last:
        model.use_channels_last()
    if compile:
        model.compile_backbone()
    rng = np.random.default_rng(0)
    waves = torch.from_numpy(rng.normal(0, 3000, (4, model.hparams.num_samples)).astype(np.int16))
    loader = DataLoader(TensorDataset(waves, torch.arange(4) % len(model.class_names)), batch_size=2)
    logits = CollectTestLogits()
    trainer = L.Trainer(accelerator="cpu", precision=precision_value, fast_dev_run=2, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[CpuBf16Lstm(), logits])
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    trainer.test(model, dataloaders=loader, verbose=False)
    return torch.cat(logits.batches)


@pytest.mark.parametrize("name", ["tf_cnn", "crnn", "gru"])
@pytest.mark.parametrize("setting", [{"precision_value": "bf16-mixed"}, {"channels_last": True},
                                     {"precision_value": "bf16-mixed", "channels_last": True}])
def test_fast_paths_train_to_finite_logits_of_fp32_shape(name, setting):
    reference = trained_logits(name)
    logits = trained_logits(name, **setting)
    assert logits.shape == reference.shape
    assert torch.isfinite(logits).all()


def test_channels_last_applies_to_2d_conv_backbones_only():
    cnn, rnn = registry_classifier("tf_cnn"), registry_classifier("gru")
    cnn.use_channels_last()
    rnn.use_channels_last()
    assert cnn.channels_last and not rnn.channels_last
    conv = next(m for m in cnn.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow  # inductor compiles on the CPU: tens of seconds per backbone
@pytest.mark.parametrize("name", ["tf_cnn", "gru"])
def test_compiled_backbone_trains_to_finite_logits_and_keeps_its_state_dict_keys(name):
    reference = trained_logits(name)
    logits = trained_logits(name, precision_value="bf16-mixed", compile=True, channels_last=True)
    assert logits.shape == reference.shape and torch.isfinite(logits).all()
    model = registry_classifier(name)
    keys = set(model.state_dict())
    model.compile_backbone()
    assert set(model.state_dict()) == keys  # checkpoints stay loadable without compile


def test_channels_last_through_the_train_entry_point(tmp_path):
    cfg = compose_config(tmp_path, [*SMALL_SYNTHETIC, "debug=fast", "trainer.accelerator=cpu", "model=tf_cnn",
                                    "trainer.channels_last=true"])
    metrics = train.run(cfg)
    assert np.isfinite(metrics["test/loss"])


@pytest.mark.slow  # inductor compiles on the CPU
def test_compile_through_the_train_entry_point(tmp_path):
    cfg = compose_config(tmp_path, [*SMALL_SYNTHETIC, "debug=fast", "trainer.accelerator=cpu", "model=tf_cnn",
                                    "trainer.compile=true", "trainer.channels_last=true"])
    metrics = train.run(cfg)
    assert np.isfinite(metrics["test/loss"])


@pytest.mark.parametrize("setting, dtype", [("bf16-mixed", torch.bfloat16), ("32-true", torch.float32),
                                            ("auto", torch.float32)])
def test_inference_autocast_computes_as_lightnings_precision(setting, dtype):
    layer = torch.nn.Linear(4, 2)
    with precision.inference_autocast(setting, torch.device("cpu")):
        assert layer(torch.ones(1, 4)).dtype == dtype
