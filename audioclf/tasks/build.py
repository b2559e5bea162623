"""The config edge: each object a task needs, built once from the config inside its error context.

A build is its own check: a bad `features.*`, `augment.*`, `optim.*`, `scheduler.*`, `model.*` or
`trainer.*` value fails here, in one line naming the key, and the built object is passed on (the
frontend into the model, the optimizer and scheduler factories into the module), never rebuilt.
Objects that need no data (optimizer, scheduler, frontend) are built before any clip is decoded.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig

from audioclf.audio import frontends
from audioclf.audio.frontends import Frontend
from audioclf.config import config_errors, model_sample_rate, to_dict
from audioclf.data.datamodule import AudioDataModule
from audioclf.data.sources import SPLITS
from audioclf.errors import UserError
from audioclf.lit.callbacks import EpochLine, NonFiniteLoss
from audioclf.lit.module import AudioClassifier
from audioclf.lit.precision import CpuBf16Lstm, resolve_precision
from audioclf.lit.resume import AtomicCheckpointIO, ResumeState
from audioclf.lit.transfer import SavedRun, read_checkpoint, transfer_backbone
from audioclf.streaming.streams import StreamRecipe
from audioclf.tasks.run_identity import multirun_job_name

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


def build_augment(cfg: DictConfig, datamodule: AudioDataModule) -> None:
    """The datamodule's waveform augmentation, stream windows and max-pooling segments, built before the
    clips are decoded; the library's ValueError about a value becomes a one-line error naming augment.<key>."""
    if datamodule.source is None:
        datamodule.prepare_data()
    with config_errors("augment", cfg.get("augment")):
        datamodule.build_training_transforms()


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
    warmup = scheduler.get("warmup_epochs", 0) or 0
    epochs = cfg.trainer.get("max_epochs")
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


def build_frontend(cfg: DictConfig) -> Frontend:
    """The frontend with its training-only parts (SpecAugment, VTLP), at the rate the model wants;
    an error names features.<key> or augment.<key>, whichever group the key is in."""
    features, augment = to_dict(cfg.features), to_dict(cfg.get("augment")) or {}
    with config_errors("features", features, augment=augment):
        return frontends.build_frontend(features, model_sample_rate(cfg), augment.get("spec_augment"),
                                        augment.get("vtlp"))


def build_model(cfg: DictConfig, datamodule: AudioDataModule, frontend: Frontend | None = None,
                optimizer: Callable | None = None, scheduler: Callable | None = None) -> AudioClassifier:
    """The classifier around `frontend`, `optimizer` and `scheduler` when they are already built
    (each is built here otherwise); a ValueError about the backbone names model.<key>."""
    augment = to_dict(cfg.get("augment")) or {}
    frontend = frontend if frontend is not None else build_frontend(cfg)
    optimizer = optimizer if optimizer is not None else build_optimizer(cfg)
    scheduler = scheduler if scheduler is not None else build_scheduler(cfg)
    with config_errors("model", cfg.model):
        return AudioClassifier(
            class_names=datamodule.class_names,
            sample_rate=datamodule.sample_rate,
            num_samples=datamodule.num_samples,
            backbone=to_dict(cfg.model),
            features=to_dict(cfg.features),
            spec_augment=augment.get("spec_augment"),
            mixup_alpha=augment.get("mixup_alpha", 0.0),
            max_pool_windows=int(augment.get("max_pool_windows") or 0),
            vtlp=augment.get("vtlp"),
            optimizer=optimizer,
            scheduler=scheduler,
            label_smoothing=float((cfg.get("loss") or {}).get("label_smoothing", 0.0)),
            data=to_dict(cfg.data),
            frontend=frontend,
        )


def read_init_from(cfg: DictConfig) -> SavedRun | None:
    """init_from=<ckpt>, read before any clip is decoded (a bad path fails first); None without it."""
    return read_checkpoint(str(cfg.init_from)) if cfg.get("init_from") else None


def apply_init_from(cfg: DictConfig, model: AudioClassifier, saved: SavedRun | None) -> None:
    """The saved run's matching backbone tensors into `model`, frozen (init_freeze) or at init_lr_scale."""
    if saved is None:
        return
    transfer = transfer_backbone(model, saved, freeze=bool(cfg.get("init_freeze", False)),
                                 lr_scale=float(cfg.get("init_lr_scale", 1.0)))
    log.info(transfer.describe())


def build_trainer(cfg: DictConfig, extra_callbacks: list | tuple = (), **extra: Any) -> L.Trainer:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    callbacks += list(extra_callbacks)
    loggers = build_loggers(cfg)
    if not loggers:  # logger=none: Lightning refuses a LearningRateMonitor without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    callbacks.append(ResumeState())  # random states in checkpoints: exact resume (resume.py)
    callbacks.append(CpuBf16Lstm())  # bf16-mixed on CPU with LSTMs (precision.py)
    callbacks.append(NonFiniteLoss())  # a NaN loss stops the run at its step
    extra.setdefault("plugins", [AtomicCheckpointIO()])  # a kill mid-save leaves no half file
    node = trainer_node(cfg)
    if node.get("enable_progress_bar", True) and not sys.stderr.isatty():
        node["enable_progress_bar"] = False  # a bar's redraws fill a log file: one line per epoch instead
        callbacks.append(EpochLine())
    try:
        return instantiate(node, callbacks=callbacks, logger=loggers or False, **extra)
    except (TypeError, ValueError) as error:
        message = str(error).splitlines()[0]
        raise UserError(f"the trainer config is invalid ({message}): check the trainer.* overrides") from None


# our trainer keys, applied to the model before fit (apply_speed_options); Lightning's Trainer does not take them
SPEED_KEYS = ("compile", "channels_last")


def trainer_node(cfg: DictConfig, announce: bool = True) -> dict[str, Any]:
    """`cfg.trainer` for Lightning: precision=auto resolved (with `announce`, one line says what it chose),
    our own keys left out."""
    node = to_dict(cfg.trainer)
    for key in SPEED_KEYS:
        node.pop(key, None)
    with config_errors("trainer", node):
        precision, why = resolve_precision(node.get("precision", "32-true"), str(node.get("accelerator", "auto")))
    if node.get("precision") == "auto" and announce:
        opt_out = "; opt out with trainer.precision=32-true" if precision != "32-true" else ""
        log.info(f"precision: {precision} (trainer.precision=auto: {why}){opt_out}")
    node["precision"] = precision
    return node


def apply_speed_options(cfg: DictConfig, model: AudioClassifier) -> None:
    """trainer.channels_last and trainer.compile (both off by default: experiments/benchmark/README.md)."""
    if cfg.trainer.get("channels_last", False):
        model.use_channels_last()
    if cfg.trainer.get("compile", False):
        log.info("trainer.compile=true: the backbone is compiled (torch.compile, inductor) at its first batch")
        model.compile_backbone()


def build_loggers(cfg: DictConfig) -> list:
    """The configured loggers; in a multirun, a logger with `name: ""` (TensorBoard's) is named
    after the job's swept overrides, so the sweep's runs read as e.g. `0/tensorboard/model=crnn,seed=1`."""
    job_name = multirun_job_name()
    loggers = []
    for node in (cfg.get("logger") or {}).values():
        if node:
            named = job_name and node.get("name") == ""
            loggers.append(instantiate(node, name=job_name) if named else instantiate(node))
    return loggers


def tensorboard_logger(trainer: L.Trainer) -> TensorBoardLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)


STREAM_RANGES = {"gap_s": "[1.0,4.0]", "snr_db": "[5.0,20.0]", "background_dbfs": "[-45.0,-30.0]"}


def build_stream_recipe(node: DictConfig, prefix: str = "") -> StreamRecipe:
    """The stream keys of `node` (audioclf-streams' config, or train's stream_calibration) as a recipe;
    a value that cannot work is a one-line error naming `<prefix><key>`."""
    if node.split not in SPLITS:
        raise UserError(f"{prefix}split={node.split} is unknown: use train, val or test")
    for key, example in (("count", 4), ("passes", 1)):
        value = node.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"{prefix}{key}={value} must be a whole number >= 1, e.g. {prefix}{key}={example}")
    minutes = node.minutes
    if not is_number(minutes) or minutes <= 0:
        raise UserError(f"{prefix}minutes={minutes} must be a positive number of minutes, e.g. {prefix}minutes=4")
    ranges = {key: stream_range(f"{prefix}{key}", node.get(key), example) for key, example in STREAM_RANGES.items()}
    if ranges["gap_s"][0] < 0:
        raise UserError(f"{prefix}gap_s={list(ranges['gap_s'])} starts below 0: words cannot overlap, "
                        f"e.g. {prefix}gap_s=[1.0,4.0]")
    return StreamRecipe(minutes=float(minutes), passes=node.passes, **ranges)


def stream_range(name: str, value: Any, example: str) -> tuple[float, float]:
    values = list(value) if value is not None and not isinstance(value, str) and hasattr(value, "__len__") else None
    if values is None or len(values) != 2 or not all(map(is_number, values)) or values[0] > values[1]:
        raise UserError(f"{name}={value} is not a range [low, high] with low <= high: give e.g. {name}={example}")
    return float(values[0]), float(values[1])


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Calibration:
    """stream_calibration: the streams to build from a split and the false-alarm budget per hour."""

    recipe: StreamRecipe
    split: str
    count: int
    seed: int
    target_fa_per_hour: float
    stream_hop: float
    min_hours: float = 0.0  # more passes over the split's words until the streams are this long


def build_calibration(cfg: DictConfig) -> Calibration | None:
    node = cfg.get("stream_calibration")
    if not node or not node.get("enabled"):
        return None
    recipe = build_stream_recipe(node, "stream_calibration.")
    target, hop, min_hours = node.get("target_fa_per_hour"), node.get("stream_hop"), node.get("min_hours", 0.0)
    if not is_number(target) or target <= 0:
        raise UserError(f"stream_calibration.target_fa_per_hour={target} must be a positive number of false "
                        "alarms per hour, e.g. stream_calibration.target_fa_per_hour=2")
    if not is_number(hop) or hop <= 0:
        raise UserError(f"stream_calibration.stream_hop={hop} must be a positive number of seconds, "
                        "e.g. stream_calibration.stream_hop=0.1")
    if not is_number(min_hours) or min_hours < 0:
        raise UserError(f"stream_calibration.min_hours={min_hours} must be a number of hours >= 0, "
                        "e.g. stream_calibration.min_hours=3")
    return Calibration(recipe, node.split, node.count, node.seed, float(target), float(hop), float(min_hours))
