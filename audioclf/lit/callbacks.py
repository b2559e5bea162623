"""Lightning callbacks of the project."""

from __future__ import annotations

import logging
import time

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure

from audioclf.errors import UserError

log = logging.getLogger(__name__)


class EpochLine(L.Callback):
    """One line per epoch with its metrics, where a progress bar would fill a log file with redraws."""

    SHOWN = ("train/loss_epoch", "val/loss", "val/acc", "val/f1_macro")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:  # DDP: one line per epoch, from rank 0
            return
        metrics = trainer.callback_metrics
        shown = ", ".join(f"{key.removesuffix('_epoch')} {float(metrics[key]):.4f}"
                          for key in self.SHOWN if key in metrics)
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        log.info(f"epoch {trainer.current_epoch + 1}{total}: {shown} ({time.perf_counter() - self.started:.1f} s)")


class NonFiniteLoss(L.Callback):
    """Stop at the first training step whose loss is NaN or infinite, before its backward pass, so no
    update is made from it and the last checkpoint (written before it) holds finite weights."""

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if torch.isfinite(loss).all():
            return
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        lr = optimizer.param_groups[0]["lr"] if optimizer is not None else float("nan")
        precision = str(trainer.precision)
        fix = "lower optim.lr or set trainer.gradient_clip_val=1.0"
        if not precision.startswith("32"):
            fix += ", or train in trainer.precision=32-true"
        kept = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none was written yet"
        raise UserError(f"train/loss is {float(loss.detach().float().max())} at step {trainer.global_step} "
                        f"(epoch {trainer.current_epoch}, lr {lr:.3g}, precision {precision}): the run stopped "
                        f"there: {fix}; last checkpoint: {kept}")


class AugmentPreview(L.Callback):
    """Once per run, show in TensorBoard what the model is fed for a few fixed validation clips.

    For `num_clips` evenly spaced validation clips it logs, at the start of
    training, one image per clip (the frontend's features of the clean clip
    beside those of the augmented clip: waveform augmentation, then the
    frontend in training mode, so SpecAugment masks show) under
    `augment_preview/<i>_<label>`, and both audio clips under `.../clean` and
    `.../augmented`. The draws use their own seed and leave the training RNG
    stream untouched. Mixup is not shown (it mixes pairs of clips).
    """

    def __init__(self, num_clips: int = 4, seed: int = 0):
        self.num_clips, self.seed = num_clips, seed
        self.logged = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        board = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        datamodule = getattr(trainer, "datamodule", None)
        banks = getattr(datamodule, "banks", {})
        if self.logged or board is None or "val" not in banks or self.num_clips <= 0:
            return
        self.logged = True
        bank = banks["val"]
        picks = np.unique(np.linspace(0, len(bank) - 1, min(self.num_clips, len(bank))).round())
        picks = picks.astype(np.int64)
        device = pl_module.device
        clean = torch.from_numpy(np.asarray(bank.waves[picks], dtype=np.float32) / 32768).to(device)
        labels = torch.from_numpy(np.asarray(bank.labels[picks])).to(device)
        augment = getattr(datamodule, "augment", None)
        frontend = pl_module.frontend
        was_training = frontend.training
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(self.seed)
            augmented = augment.to(device)(clean, labels) if augment is not None else clean
            clean_features = frontend.eval()(clean).float().cpu()
            augmented_features = frontend.train()(augmented).float().cpu()
        frontend.train(was_training)

        names = list(getattr(pl_module, "class_names", []))
        rate = int(datamodule.sample_rate)
        step = trainer.global_step
        for row, label in enumerate(labels.tolist()):
            name = names[label] if label < len(names) else str(label)
            tag = f"augment_preview/{row}_{name}"
            figure = feature_figure(clean_features[row, 0].numpy(),
                                    augmented_features[row, 0].numpy(),
                                    f"val clip {int(picks[row])} ({name})")
            board.experiment.add_figure(tag, figure, global_step=step)
            for kind, waves in (("clean", clean), ("augmented", augmented)):
                audio = waves[row : row + 1].clamp(-1, 1).cpu()
                board.experiment.add_audio(f"{tag}/{kind}", audio, global_step=step,
                                           sample_rate=rate)
        board.experiment.flush()


class ChanceHint(L.Callback):
    """Print one line pointing to the training doctor when val/acc stays within `margin` of
    chance (the share of the most frequent validation class) for `epochs` epochs in a row."""

    def __init__(self, epochs: int = 3, margin: float = 0.02):
        self.epochs, self.margin = epochs, margin
        self.epochs_at_chance = 0
        self.hinted = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_validation_end, not on_validation_epoch_end: only then does callback_metrics hold this epoch's val/acc
        acc = trainer.callback_metrics.get("val/acc")
        if trainer.sanity_checking or self.hinted or acc is None:
            return
        chance = chance_level(trainer, pl_module)
        self.epochs_at_chance = self.epochs_at_chance + 1 if float(acc) <= chance + self.margin else 0
        if self.epochs_at_chance >= self.epochs:
            self.hinted = True
            if trainer.is_global_zero:
                print(f"\nval/acc has stayed within {100 * self.margin:.0f} points of chance ({100 * chance:.1f} %) "
                      f"for {self.epochs_at_chance} epochs: `audioclf-doctor run_dir={trainer.default_root_dir}` "
                      "says why")


def chance_level(trainer: L.Trainer, pl_module: L.LightningModule) -> float:
    bank = getattr(getattr(trainer, "datamodule", None), "banks", {}).get("val")
    if bank is not None and len(bank):
        return float(np.bincount(np.asarray(bank.labels)).max() / len(bank))
    return 1.0 / max(1, len(getattr(pl_module, "class_names", [])))


def feature_figure(clean: np.ndarray, augmented: np.ndarray, title: str) -> Figure:
    """Clean and augmented (frequency, time) features side by side, on one colour scale."""
    low, high = np.percentile(clean, [1, 99]) if clean.size else (0.0, 1.0)
    figure = Figure(figsize=(8, 3))
    for column, (image, kind) in enumerate(((clean, "clean"), (augmented, "augmented"))):
        axes = figure.add_subplot(1, 2, column + 1)
        axes.imshow(image, origin="lower", aspect="auto", cmap="magma", vmin=low, vmax=high)
        axes.set_title(f"{title}: {kind}", fontsize=9)
        axes.set_xlabel("frame")
        axes.set_ylabel("bin")
    figure.tight_layout()
    return figure
