"""init_from: an earlier run's backbone tensors loaded by name and shape, the head kept fresh on a
class change, frozen or at a scaled learning rate; one-line errors for what cannot be loaded."""

from __future__ import annotations

import logging

import pytest
import torch

from audioclf.errors import UserError
from audioclf.lit.transfer import read_checkpoint, transfer_backbone
from audioclf.tasks import train
from tests.conftest import SMALL_SYNTHETIC, compose_config
from tests.tasks.test_export import registry_classifier, save_checkpoint


def retargeted(name: str, classes: int, seed: int):
    """registry_classifier(name) with `classes` classes (a different head) and its own init."""
    model = registry_classifier(name, seed=seed)
    torch.manual_seed(seed)
    return type(model)(class_names=[f"c{i}" for i in range(classes)], sample_rate=model.hparams.sample_rate,
                       num_samples=model.hparams.num_samples, backbone=model.hparams.backbone,
                       features=model.hparams.features, optimizer=model.optimizer_factory)


@pytest.fixture
def saved(tmp_path):
    source = registry_classifier("tf_cnn", seed=0)
    save_checkpoint(source, tmp_path / "source.ckpt")
    return source, read_checkpoint(tmp_path / "source.ckpt")


def test_matching_tensors_load_and_a_new_head_keeps_its_init(saved):
    source, checkpoint = saved
    target = retargeted("tf_cnn", classes=5, seed=1)
    fresh = {key: value.clone() for key, value in target.state_dict().items()}
    transfer = transfer_backbone(target, checkpoint)
    mine, theirs = target.state_dict(), source.state_dict()
    assert transfer.kept and all(fresh[key].shape != theirs[key].shape for key in transfer.kept)
    assert all(torch.equal(mine[key], fresh[key]) for key in transfer.kept)
    assert all(torch.equal(mine[key], theirs[key]) for key in transfer.loaded)
    assert any(not torch.equal(fresh[key], theirs[key]) for key in transfer.loaded)  # the load changed them
    assert f"{len(transfer.loaded)} backbone tensors loaded, {len(transfer.kept)} kept" in transfer.describe()


def test_loaded_weights_freeze_or_train_at_a_scaled_lr(saved):
    _, checkpoint = saved
    frozen = retargeted("tf_cnn", classes=5, seed=1)
    transfer = transfer_backbone(frozen, checkpoint, freeze=True)
    trainable = {name for name, p in frozen.named_parameters() if p.requires_grad}
    assert trainable and trainable.isdisjoint(transfer.loaded)

    scaled = retargeted("tf_cnn", classes=5, seed=1)
    transfer = transfer_backbone(scaled, checkpoint, lr_scale=0.1)
    optimizer = scaled.configure_optimizers()
    by_lr = {round(group["lr"], 8): len(group["params"]) for group in optimizer.param_groups}
    loaded_parameters = len(set(transfer.loaded) & {name for name, _ in scaled.named_parameters()})
    assert by_lr == {1e-4: loaded_parameters, 1e-3: sum(1 for _ in scaled.parameters()) - loaded_parameters}


def test_what_cannot_be_loaded_is_a_one_line_error(saved, tmp_path):
    _, checkpoint = saved
    with pytest.raises(UserError, match="init_from=.*nope.ckpt does not exist"):
        read_checkpoint(tmp_path / "nope.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="init_from=.*junk.ckpt is not a checkpoint"):
        read_checkpoint(tmp_path / "junk.ckpt")
    with pytest.raises(UserError, match="holds a tf_cnn backbone and this run trains lstm_fsdd: add model=tf_cnn"):
        transfer_backbone(retargeted("lstm_fsdd", classes=5, seed=1), checkpoint)
    with pytest.raises(UserError, match="init_lr_scale=0.0 must be > 0"):
        transfer_backbone(retargeted("tf_cnn", classes=5, seed=1), checkpoint, lr_scale=0.0)


def test_a_run_fine_tunes_from_an_earlier_runs_checkpoint_on_other_classes(tmp_path, caplog):
    short = [*SMALL_SYNTHETIC, "trainer.max_epochs=1", "logger=none"]
    train.run(compose_config(tmp_path / "pretrain", short))
    checkpoint = tmp_path / "pretrain" / "run" / "checkpoints" / "last.ckpt"
    with caplog.at_level(logging.INFO, logger="audioclf.tasks.build"):
        train.run(compose_config(tmp_path / "finetune", [*short, "data.num_classes=5", f"init_from={checkpoint}",
                                                         "init_lr_scale=0.5"]))
    head = "backbone.classifier.3.weight, backbone.classifier.3.bias"  # tf_cnn's, 8 -> 5 classes
    assert f"backbone tensors loaded, 2 kept as initialised ({head})" in caplog.text
