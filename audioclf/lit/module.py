"""AudioClassifier: waveform -> frontend -> backbone -> logits, with metrics and logging.

Everything the module needs to rebuild itself (class names, sample rate, clip
length, frontend and backbone specs) is plain data in its hyperparameters, so
`AudioClassifier.load_from_checkpoint(path)` works with no config at hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import ConfusionMatrix, MaxMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from audioclf.audio.augment import check_one_loss_change, max_pool_window, mixup
from audioclf.audio.frontends import Frontend, build_frontend
from audioclf.models import build_backbone, count_parameters
from audioclf.report.detection import thresholds_at_far


class AudioClassifier(L.LightningModule):
    def __init__(
        self,
        class_names: list[str],
        sample_rate: int,
        num_samples: int,
        backbone: dict[str, Any],
        features: dict[str, Any],
        spec_augment: dict[str, Any] | None = None,
        optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        label_smoothing: float = 0.0,
        data: dict[str, Any] | None = None,
        mixup_alpha: float = 0.0,
        max_pool_windows: int = 0,
        vtlp: tuple[float, float] | None = None,
        frontend: Frontend | None = None,
    ):
        """`optimizer(params)` and `scheduler(optimizer, total_steps=, steps_per_epoch=)` are
        factories (e.g. partials from the config), needed only to train, so not saved in the
        checkpoint's hyperparameters; `data` is the training data config, kept so eval can
        default to it. `max_pool_windows` > 1: each training example arrives as that many windows
        of one segment (augment.max_pool_*), and the loss keeps one of them (max_pool_window).
        `frontend`: the frontend already built from `features`, `spec_augment` and `vtlp` (the
        config edge builds it once, to check them); None builds it from them, as loading a
        checkpoint does."""
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["optimizer", "scheduler", "frontend"])
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.class_names = list(class_names)
        num_classes = len(class_names)
        self.frontend = frontend if frontend is not None else build_frontend(features, sample_rate, spec_augment, vtlp)
        self.input_shape = self.frontend.output_shape(num_samples)
        spec = dict(backbone)
        self.backbone = build_backbone(spec.pop("name"), num_classes, self.input_shape, **spec)
        self.num_parameters = count_parameters(self.backbone)
        self.channels_last = False  # set by use_channels_last(); a run-time choice, not a hyperparameter
        self.lr_scales: dict[str, float] = {}  # parameter name -> lr multiplier (lit/transfer.py sets them)
        check_one_loss_change(max_pool_windows, mixup_alpha)
        keywords = [i for i, name in enumerate(self.class_names) if not name.startswith("_")]
        self.register_buffer("keyword_ids", torch.tensor(keywords, dtype=torch.long), persistent=False)

        def scores() -> MetricCollection:
            return MetricCollection({
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "f1_macro": MulticlassF1Score(num_classes, average="macro"),
            })

        self.train_metrics = scores().clone(prefix="train/")
        self.val_metrics = scores().clone(prefix="val/")
        self.test_metrics = scores().clone(prefix="test/")
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # in the state dict, so a resumed run keeps its best
        self.val_confusion = ConfusionMatrix(task="multiclass", num_classes=num_classes)  # for dashboards.py
        self.test_confusion = ConfusionMatrix(task="multiclass", num_classes=num_classes)
        # keyword -> probability threshold at 1 % false accepts on the last validation epoch; in the checkpoint
        self.detection_thresholds: dict[str, float] | None = None
        # threshold and post-processing chosen on validation streams for a false-alarm budget per hour
        # (audioclf/streaming/evaluation.py calibrate); in the checkpoint, used by predict stream=true
        self.stream_calibration: dict[str, float] | None = None
        self._val_probabilities: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, samples) float in [-1, 1], or int16 PCM as the clip bank stores it -> logits."""
        if not waves.is_floating_point():
            waves = waves.float() / 32768
        return self.backbone(self.backbone_layout(self.frontend(waves)))

    def use_channels_last(self) -> None:
        """Conv weights and 4-D feature batches in channels_last (NHWC) memory layout, for backbones
        with 2-D convolutions (oneDNN's preferred layout); other backbones are left as they are."""
        if any(isinstance(m, torch.nn.Conv2d) for m in self.backbone.modules()):
            self.channels_last = True
            self.backbone.to(memory_format=torch.channels_last)

    def backbone_layout(self, features: torch.Tensor) -> torch.Tensor:
        if self.channels_last and features.dim() == 4:
            return features.contiguous(memory_format=torch.channels_last)
        return features

    def compile_backbone(self) -> None:
        """torch.compile the backbone in place (nn.Module.compile): its state dict keeps its keys,
        so checkpoints load into an uncompiled model as before."""
        self.backbone.compile()

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
        if self.hparams.max_pool_windows > 1:
            return self._max_pool_step(batch)
        return self._step(batch, self.train_metrics, "train")[0]

    def _max_pool_step(self, batch) -> torch.Tensor:
        """The max-pooling loss: cross-entropy on one window of each segment (max_pool_window), the
        window a sliding detector would fire on; train metrics score that window."""
        waves, labels = batch
        size = len(labels)
        logits = self(waves).view(size, self.hparams.max_pool_windows, -1)
        chosen = logits[torch.arange(size, device=logits.device),
                        max_pool_window(logits.detach(), labels, self.keyword_ids)]
        loss = F.cross_entropy(chosen, labels, label_smoothing=self.hparams.label_smoothing)
        self.train_metrics.update(chosen, labels)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True, batch_size=size)
        return loss

    def _mixup_step(self, batch) -> torch.Tensor:
        """Mixup on features (augment.mixup_alpha): cross-entropy against the mixed soft labels;
        train metrics score the dominant label of each mix."""
        waves, labels = batch
        features, targets = mixup(self.frontend(waves), labels, len(self.class_names),
                                  self.hparams.mixup_alpha)
        logits = self.backbone(self.backbone_layout(features))
        loss = F.cross_entropy(logits, targets, label_smoothing=self.hparams.label_smoothing)
        self.train_metrics.update(logits, targets.argmax(1))
        size = len(labels)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True, batch_size=size)
        return loss

    def validation_step(self, batch, batch_idx):
        _, logits = self._step(batch, self.val_metrics, "val")
        self.val_confusion.update(logits, batch[1])
        self._val_probabilities.append(logits.detach().float().softmax(dim=-1))
        self._val_labels.append(batch[1].detach())

    def on_validation_epoch_start(self) -> None:
        self.val_confusion.reset()
        self._val_probabilities, self._val_labels = [], []

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.val_metrics["acc"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)
        self.detection_thresholds = self._validation_thresholds()

    def _validation_thresholds(self) -> dict[str, float] | None:
        if not self._val_probabilities:
            return None
        probabilities = self._gather_rows(torch.cat(self._val_probabilities))
        labels = self._gather_rows(torch.cat(self._val_labels))
        self._val_probabilities, self._val_labels = [], []
        chosen = thresholds_at_far(probabilities.cpu().numpy(), labels.cpu().numpy(), self.class_names)
        # above 1 only when > 1 % of the negatives score exactly 1.0: 1.0 is the strictest probability there is
        return {keyword: min(threshold, 1.0) for keyword, threshold in chosen.items()} or None

    def _gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Every rank's rows under DDP (shards may differ in length: padded to the longest, then cut)."""
        if self.trainer.world_size <= 1:
            return rows
        counts = self.all_gather(torch.tensor([len(rows)], device=rows.device)).flatten().tolist()
        padded = torch.zeros((max(counts), *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
        padded[: len(rows)] = rows
        gathered = self.all_gather(padded)
        return torch.cat([part[:count] for part, count in zip(gathered, counts, strict=True)])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["detection_thresholds"] = self.detection_thresholds
        checkpoint["stream_calibration"] = self.stream_calibration

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # checkpoints written before val_acc_best was a persistent state kept it under this key
        if "val_acc_best" in checkpoint:
            checkpoint["state_dict"].setdefault("val_acc_best.max_value", torch.tensor(checkpoint["val_acc_best"]))
        self.detection_thresholds = checkpoint.get("detection_thresholds")  # None in checkpoints from before
        self.stream_calibration = checkpoint.get("stream_calibration")

    def test_step(self, batch, batch_idx):
        _, logits = self._step(batch, self.test_metrics, "test")
        self.test_confusion.update(logits, batch[1])
        return logits  # for callbacks' on_test_batch_end (dashboards.py: the most confident errors)

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def parameter_groups(self) -> list[dict]:
        """One optimizer group per learning-rate scale (`lr_scales`; unscaled parameters at 1)."""
        groups: dict[float, list[torch.nn.Parameter]] = {}
        for name, parameter in self.named_parameters():
            groups.setdefault(self.lr_scales.get(name, 1.0), []).append(parameter)
        return [{"params": params, "lr_scale": scale} for scale, params in groups.items()]

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("AudioClassifier was built without an optimizer factory: pass optimizer= to train it")
        optimizer = self.optimizer_factory(self.parameter_groups())
        for group in optimizer.param_groups:
            group["lr"] *= group.pop("lr_scale", 1.0)
        if self.scheduler_factory is None or self.trainer.fast_dev_run:  # a 1-step smoke run has no schedule
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        scheduler = self.scheduler_factory(optimizer, total_steps=total, steps_per_epoch=per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
