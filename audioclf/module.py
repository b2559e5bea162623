"""AudioClassifier: waveform -> frontend -> backbone -> logits, with metrics and logging.

Everything the module needs to rebuild itself (class names, sample rate, clip
length, frontend and backbone specs) is plain data in its hyperparameters, so
`AudioClassifier.load_from_checkpoint(path)` works with no config at hand.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import ConfusionMatrix, MaxMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from audioclf.data.augment import mixup
from audioclf.errors import UserError
from audioclf.features import build_frontend
from audioclf.models import build_backbone, count_parameters


class AudioClassifier(L.LightningModule):
    def __init__(
        self,
        class_names: list[str],
        sample_rate: int,
        num_samples: int,
        backbone: dict[str, Any],
        features: dict[str, Any],
        spec_augment: dict[str, Any] | None = None,
        optim: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        data: dict[str, Any] | None = None,
        mixup_alpha: float = 0.0,
    ):
        """`data` is the training data config, kept so eval can default to it."""
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.class_names = list(class_names)
        num_classes = len(class_names)
        self.frontend = build_frontend(features, sample_rate, spec_augment)
        self.input_shape = self.frontend.output_shape(num_samples)
        spec = dict(backbone)
        self.backbone = build_backbone(spec.pop("name"), num_classes, self.input_shape, **spec)
        self.num_parameters = count_parameters(self.backbone)

        def scores() -> MetricCollection:
            return MetricCollection({
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "f1_macro": MulticlassF1Score(num_classes, average="macro"),
            })

        self.train_metrics = scores().clone(prefix="train/")
        self.val_metrics = scores().clone(prefix="val/")
        self.test_metrics = scores().clone(prefix="test/")
        self.val_acc_best = MaxMetric()
        self.test_confusion = ConfusionMatrix(task="multiclass", num_classes=num_classes)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, samples) float in [-1, 1], or int16 PCM as the clip bank stores it -> logits."""
        if not waves.is_floating_point():
            waves = waves.float() / 32768
        return self.backbone(self.frontend(waves))

    def _step(self, batch, metrics: MetricCollection, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        waves, labels = batch
        logits = self(waves)
        backbone_loss = getattr(self.backbone, "loss", None)  # a backbone may own its loss (gru_seq2seq)
        if callable(backbone_loss):
            loss = backbone_loss(logits, labels)
        else:
            loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        metrics.update(logits, labels)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(labels))
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train", batch_size=len(labels))
        return loss, logits

    def training_step(self, batch, batch_idx):
        if self.hparams.mixup_alpha > 0:
            return self._mixup_step(batch)
        return self._step(batch, self.train_metrics, "train")[0]

    def _mixup_step(self, batch) -> torch.Tensor:
        """Mixup on features (augment.mixup_alpha): cross-entropy against the mixed soft labels;
        train metrics score the dominant label of each mix."""
        waves, labels = batch
        features, targets = mixup(self.frontend(waves), labels, len(self.class_names),
                                  self.hparams.mixup_alpha)
        logits = self.backbone(features)
        loss = F.cross_entropy(logits, targets, label_smoothing=self.hparams.label_smoothing)
        self.train_metrics.update(logits, targets.argmax(1))
        size = len(labels)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True, batch_size=size)
        return loss

    def validation_step(self, batch, batch_idx):
        self._step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.val_metrics["acc"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def on_train_start(self) -> None:
        self.val_acc_best.reset()
        if getattr(self, "_resumed_val_acc_best", None) is not None:  # a resumed run keeps its best
            self.val_acc_best.update(torch.tensor(self._resumed_val_acc_best))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.val_acc_best.update_count:
            checkpoint["val_acc_best"] = float(self.val_acc_best.max_value)  # local: no DDP sync

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._resumed_val_acc_best = checkpoint.get("val_acc_best")

    def test_step(self, batch, batch_idx):
        _, logits = self._step(batch, self.test_metrics, "test")
        self.test_confusion.update(logits, batch[1])

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def configure_optimizers(self):
        optim = dict(self.hparams.optim or {})
        scheduler = optim.pop("scheduler", None) or "none"
        warmup = optim.pop("warmup_epochs", 0)
        optimizer = torch.optim.AdamW(self.parameters(), **optim)
        if scheduler == "none":
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": build_scheduler(optimizer, scheduler, warmup, self.trainer)}


def build_scheduler(optimizer, name: str, warmup_epochs: int, trainer) -> dict[str, Any]:
    """Per-step schedule: `cosine` (with linear warm-up) or `onecycle`."""
    total = max(1, int(trainer.estimated_stepping_batches))
    if name == "onecycle":
        lrs = [group["lr"] for group in optimizer.param_groups]
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lrs, total_steps=total)
    elif name == "cosine":
        warmup = min(total - 1, int(total * warmup_epochs / max(1, trainer.max_epochs or 1)))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * progress))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    else:
        raise UserError(f"optim.scheduler={name} is unknown: use none, cosine or onecycle")
    return {"scheduler": schedule, "interval": "step"}
