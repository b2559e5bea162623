"""TensorBoard views that explain a run: one chart per metric, the validation confusion matrix
and per-class recall as training goes, and the test clips the model gets most confidently wrong."""

from __future__ import annotations

import lightning as L
import matplotlib.pyplot as plt
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from audioclf.report.classification import confusion_figure

# TensorBoard's CUSTOM SCALARS tab: train and val of one metric on one chart (tags are regexes).
LAYOUT = {
    "train vs val": {
        "loss": ["Multiline", [r"^train/loss_epoch$", r"^val/loss$"]],
        "accuracy": ["Multiline", [r"^train/acc$", r"^val/acc$"]],
        "macro-F1": ["Multiline", [r"^train/f1_macro$", r"^val/f1_macro$"]],
        "best val accuracy": ["Multiline", [r"^val/acc_best$"]],
        "learning rate": ["Multiline", [r"^lr-"]],
    },
    "val per class": {
        "recall": ["Multiline", [r"^val_recall/"]],
    },
}


class Dashboards(L.Callback):
    """Writes, into the run's TensorBoard logger (nothing without one):

    - `chart_layout`: the custom-scalars layout above, once per run;
    - `class_recall`: every validation epoch, the recall of each class as `val_recall/<class>`;
    - `confusion_every_n_epochs`: every N validation epochs and at the last epoch the confusion
      matrix image `val/confusion_matrix` (0: never);
    - `errors_k`: after testing, the k test clips misclassified with the highest confidence,
      each as `test_errors/<rank>_true=<label>_pred=<label>/audio` and `.../features`, the image of the
      model's input features (0: none).

    The validation confusion comes from the module's `val_confusion` metric; the test errors from
    the logits its `test_step` returns. Under DDP the errors are rank 0's shard only.
    """

    def __init__(self, chart_layout: bool = True, class_recall: bool = True,
                 confusion_every_n_epochs: int = 1, errors_k: int = 8):
        self.chart_layout, self.class_recall = chart_layout, class_recall
        self.confusion_every_n_epochs, self.errors_k = confusion_every_n_epochs, errors_k
        self.errors: TopErrors | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        board = tensorboard(trainer)
        if self.chart_layout and board is not None and trainer.is_global_zero:
            board.experiment.add_custom_scalars(LAYOUT)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        board = tensorboard(trainer)
        confusion_metric = getattr(pl_module, "val_confusion", None)
        every = self.confusion_every_n_epochs
        epoch = trainer.current_epoch + 1
        draw = every > 0 and (epoch % every == 0 or epoch == trainer.max_epochs)  # and the last epoch
        if trainer.sanity_checking or board is None or confusion_metric is None or not (draw or self.class_recall):
            return
        confusion = confusion_metric.compute().cpu().numpy()  # every rank: DDP syncs here
        if not trainer.is_global_zero:
            return
        names, step = pl_module.class_names, logged_val_step(trainer)
        if self.class_recall:
            for name, recall in zip(names, class_recall(confusion), strict=True):
                if not np.isnan(recall):
                    board.experiment.add_scalar(f"val_recall/{name}", recall, global_step=step)
        if draw:
            figure = confusion_figure(confusion, names, f"val confusion matrix, epoch {trainer.current_epoch + 1}")
            board.experiment.add_figure("val/confusion_matrix", figure, global_step=step)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.errors = TopErrors(self.errors_k) if self.errors_k > 0 else None

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.errors is not None and torch.is_tensor(outputs):
            waves, labels = batch
            self.errors.update(waves, labels, outputs)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        board = tensorboard(trainer)
        rows = self.errors.rows() if self.errors is not None else []
        if not rows or board is None or not trainer.is_global_zero:
            return
        names, rate, step = pl_module.class_names, int(pl_module.hparams.sample_rate), trainer.global_step
        waves = self.errors.waves
        if not waves.is_floating_point():
            waves = waves.float() / 32768
        with torch.no_grad():  # the module is in eval mode here: features without SpecAugment
            features = pl_module.frontend(waves).float().cpu()
        for rank, (true, pred, confidence) in enumerate(rows, start=1):
            tag = f"test_errors/{rank}_true={names[true]}_pred={names[pred]}"
            title = f"true {names[true]}, predicted {names[pred]} (p={confidence:.2f})"
            # one tag per kind: TensorBoard keeps the first plugin it sees for a tag, so a shared tag hides the audio
            image = feature_image(first_plane(features[rank - 1].numpy()), title)
            board.experiment.add_figure(f"{tag}/features", image, global_step=step)
            audio = waves[rank - 1 : rank].clamp(-1, 1).cpu()
            board.experiment.add_audio(f"{tag}/audio", audio, global_step=step, sample_rate=rate)
        board.experiment.flush()


class TopErrors:
    """The k misclassified clips with the highest predicted probability, kept across batches."""

    def __init__(self, k: int):
        self.k = k
        self.waves = self.labels = self.preds = self.confidence = None

    def update(self, waves: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> None:
        confidence, preds = logits.detach().float().softmax(dim=1).max(dim=1)
        wrong = preds != labels
        batch = (waves[wrong], labels[wrong], preds[wrong], confidence[wrong])
        if self.waves is not None:
            batch = tuple(torch.cat(pair) for pair in zip(self.tensors(), batch, strict=True))
        keep = batch[3].argsort(descending=True)[: self.k]
        self.waves, self.labels, self.preds, self.confidence = (t[keep] for t in batch)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.waves, self.labels, self.preds, self.confidence

    def rows(self) -> list[tuple[int, int, float]]:
        """(true label, predicted label, confidence), most confident first."""
        if self.waves is None:
            return []
        return list(zip(self.labels.tolist(), self.preds.tolist(), self.confidence.tolist(), strict=True))


def tensorboard(trainer: L.Trainer) -> TensorBoardLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)


def logged_val_step(trainer: L.Trainer) -> int:
    """The step Lightning logs this epoch's val/* scalars at (one below global_step: its logger
    connector counts batches after validation), so our images and scalars line up with them."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def class_recall(confusion: np.ndarray) -> np.ndarray:
    """Recall per class (rows: true labels); NaN for a class without clips."""
    support = confusion.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(confusion) / support


def first_plane(features: np.ndarray) -> np.ndarray:
    """One clip's (bins, frames) image of its first channel, whatever the frontend's layout."""
    return features.reshape(-1, *features.shape[-2:])[0] if features.ndim > 2 else np.atleast_2d(features)


def feature_image(features: np.ndarray, title: str):
    figure, axes = plt.subplots(figsize=(5, 3))
    axes.imshow(features, origin="lower", aspect="auto", cmap="magma")
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("frame")
    axes.set_ylabel("bin")
    figure.tight_layout()
    return figure
