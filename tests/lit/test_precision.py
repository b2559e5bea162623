"""trainer.precision=bf16-mixed on CPU: every backbone trains a step and validates."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from audioclf.lit.precision import CpuBf16Lstm
from audioclf.models import BACKBONES
from audioclf.tasks import train
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
        callbacks=[CpuBf16Lstm()],  # as train.build_trainer adds it
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
