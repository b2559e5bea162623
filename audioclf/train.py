"""Training: config -> data, model, trainer -> fit -> test -> report."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig

from audioclf.config import check_override_types, model_sample_rate, to_dict
from audioclf.data.datamodule import AudioDataModule
from audioclf.distributed import quiet_other_ranks
from audioclf.errors import UserError
from audioclf.module import AudioClassifier
from audioclf.precision import CpuBf16Lstm
from audioclf.report import confusion_figure, write_report
from audioclf.resume import AtomicCheckpointIO, ResumeState, resolve_ckpt_path

log = logging.getLogger(__name__)


def build_datamodule(cfg: DictConfig, data: dict | None = None) -> AudioDataModule:
    return AudioDataModule(
        data=data if data is not None else to_dict(cfg.data),
        augment=to_dict(cfg.get("augment")),
        data_dir=cfg.paths.data_dir,
        cache_dir=cfg.paths.cache_dir,
        seed=cfg.seed,
        sample_rate=model_sample_rate(cfg),
    )


def build_optimizer(cfg: DictConfig) -> Callable:
    """`optim` as a partial of its `_target_`, tried once on a dummy parameter so a bad key fails here."""
    optim = cfg.get("optim")
    if not optim or not optim.get("_target_"):
        raise UserError("optim has no _target_: pick a config, e.g. optim=adamw (or sgd, adam)")
    factory = instantiate_partial(optim, "optim")
    try:
        factory([torch.nn.Parameter(torch.zeros(1))])
    except (TypeError, ValueError) as error:
        raise UserError(f"optim={optim._target_} rejects its config ({error}): check the optim.* overrides") from None
    return factory


def build_scheduler(cfg: DictConfig) -> Callable | None:
    """`scheduler` as a partial, or None for scheduler=none; a warm-up must fit in the run."""
    scheduler = cfg.get("scheduler")
    if not scheduler or not scheduler.get("_target_"):
        return None
    warmup, epochs = scheduler.get("warmup_epochs", 0) or 0, cfg.trainer.get("max_epochs")
    if warmup and epochs and warmup >= epochs:
        raise UserError(
            f"scheduler.warmup_epochs={warmup} is not shorter than the run (trainer.max_epochs={epochs}): "
            "lower scheduler.warmup_epochs or raise trainer.max_epochs"
        )
    return instantiate_partial(scheduler, "scheduler")


def instantiate_partial(node: DictConfig, group: str) -> Callable:
    try:
        return instantiate(node, _partial_=True)
    except Exception as error:  # hydra wraps import and argument errors in its own types
        reason = str(error).splitlines()[0]
        raise UserError(f"{group}._target_={node.get('_target_')} cannot be built ({reason}): "
                        f"check {group}=<name> and the {group}.* overrides") from None


def build_model(cfg: DictConfig, datamodule: AudioDataModule) -> AudioClassifier:
    augment = to_dict(cfg.get("augment")) or {}
    return AudioClassifier(
        class_names=datamodule.class_names,
        sample_rate=datamodule.sample_rate,
        num_samples=datamodule.num_samples,
        backbone=to_dict(cfg.model),
        features=to_dict(cfg.features),
        spec_augment=augment.get("spec_augment"),
        mixup_alpha=augment.get("mixup_alpha", 0.0),
        optimizer=build_optimizer(cfg),
        scheduler=build_scheduler(cfg),
        label_smoothing=float((cfg.get("loss") or {}).get("label_smoothing", 0.0)),
        data=to_dict(cfg.data),
    )


def build_trainer(cfg: DictConfig, extra_callbacks: list | tuple = (), **extra: Any) -> L.Trainer:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    callbacks += list(extra_callbacks)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    if not loggers:  # logger=none: Lightning refuses a LearningRateMonitor without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    callbacks.append(ResumeState())  # random states in checkpoints: exact resume (resume.py)
    callbacks.append(CpuBf16Lstm())  # bf16-mixed on CPU with LSTMs (precision.py)
    extra.setdefault("plugins", [AtomicCheckpointIO()])  # a kill mid-save leaves no half file
    try:
        return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **extra)
    except (TypeError, ValueError) as error:
        message = str(error).splitlines()[0]
        raise UserError(f"the trainer config is invalid ({message}): check the trainer.* overrides") from None


def tensorboard_logger(trainer: L.Trainer) -> TensorBoardLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)


def run(cfg: DictConfig, callbacks: list | tuple = ()) -> dict[str, float]:
    """Train, test and write metrics.json; `callbacks` are added to the configured ones."""
    check_override_types(cfg)
    quiet_other_ranks()  # DDP: one set of logs, from rank 0 (distributed.py)
    ckpt_path = resolve_ckpt_path(cfg)
    build_scheduler(cfg)  # a bad recipe fails before any data is decoded
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build_model(cfg, datamodule)
    model.frontend.adapt(datamodule.banks["train"].waves)
    trainer = build_trainer(cfg, callbacks)

    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    train_seconds = time.perf_counter() - started
    metrics = scalar_metrics(trainer)

    if cfg.get("test"):
        trainer.test(model, datamodule=datamodule, ckpt_path=test_checkpoint(cfg, trainer), weights_only=False)
        metrics.update(scalar_metrics(trainer))
        report = publish_report(trainer, model, output_dir, "test")
        if trainer.is_global_zero:
            name = model.hparams.backbone["name"]
            print(f"\nTest report ({datamodule.source.name}, {name}):\n{report}")

    summary = {**metrics, "params": model.num_parameters, "train_seconds": round(train_seconds, 2),
               "epochs": trainer.current_epoch}
    summary["seconds_per_epoch"] = round(train_seconds / max(1, trainer.current_epoch), 3)
    log_hparams(trainer, cfg, summary)
    if not trainer.is_global_zero:  # DDP: rank 0 writes the run files
        return summary
    output_dir.mkdir(parents=True, exist_ok=True)
    # "job" says which sweep cell this run is, so `python -m audioclf.report` can group runs.
    record = {**summary, "job": describe_job(cfg)}
    (output_dir / "metrics.json").write_text(json.dumps(record, indent=2))
    board = tensorboard_logger(trainer)
    if board is not None:
        print(f"TensorBoard logs: {board.log_dir}  (view: tensorboard --logdir {board.log_dir})")
    return summary


def test_checkpoint(cfg: DictConfig, trainer: L.Trainer) -> str | None:
    """The best checkpoint by the monitored metric (test_ckpt=best), or None: the weights as
    training left them (test_ckpt=last, as papers that report the final model do)."""
    choice = cfg.get("test_ckpt", "best")
    if choice not in ("best", "last"):
        raise UserError(f"test_ckpt={choice} is unknown: use best or last")
    checkpoint = trainer.checkpoint_callback
    if choice == "last" or checkpoint is None or trainer.fast_dev_run:
        return None
    return checkpoint.best_model_path or None


def describe_job(cfg: DictConfig) -> dict[str, Any]:
    """The run's command-line overrides, group choices, model, data, seed and key hparams."""
    overrides, choices = [], {}
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        overrides = list(hydra_cfg.overrides.task)
        choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")}
    data = to_dict(cfg.data)
    optim = to_dict(cfg.optim)
    return {
        "overrides": overrides,
        "choices": choices,
        "model": cfg.model.name,
        "data": data.get("source"),
        "split": data.get("split"),
        "seed": cfg.seed,
        "max_epochs": cfg.trainer.get("max_epochs"),
        "lr": optim.get("lr"),
        "weight_decay": optim.get("weight_decay"),
        "model_hparams": {k: v for k, v in to_dict(cfg.model).items() if k != "name"},
    }


def scalar_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}


def publish_report(trainer: L.Trainer, model: AudioClassifier, folder: Path, split: str) -> str:
    """Write the report files and log the confusion matrix image to TensorBoard."""
    confusion = model.test_confusion.compute().cpu().numpy()  # synced over DDP ranks
    if not trainer.is_global_zero:
        return ""
    text = write_report(confusion, model.class_names, folder, prefix=split)
    board = tensorboard_logger(trainer)
    if board is not None:
        figure = confusion_figure(confusion, model.class_names, f"{split} confusion matrix")
        board.experiment.add_figure(f"{split}/confusion_matrix", figure, global_step=trainer.global_step)
        board.experiment.flush()
    return text


def log_hparams(trainer: L.Trainer, cfg: DictConfig, summary: dict[str, float]) -> None:
    """One hparams entry per run, with its final metrics, for TensorBoard's HPARAMS tab."""
    board = tensorboard_logger(trainer)
    if board is None:
        return
    params = {"seed": cfg.seed}
    for group in ("model", "features", "optim", "scheduler", "loss", "augment", "data"):
        params.update(flatten(to_dict(cfg.get(group)) or {}, group))
    final = {f"hp/{k.replace('/', '_')}": v for k, v in summary.items() if isinstance(v, int | float)}
    board.log_hyperparams(params, metrics=final)
    board.finalize("success")


def flatten(tree: dict, prefix: str) -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value if isinstance(value, int | float | str | bool) else str(value)
    return flat
