"""Training: config -> data, model, trainer -> fit -> test -> report."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from audioclf.audio.frontends import build_frontend
from audioclf.config import CONF_DIR, check_override_types, check_values, config_errors, model_sample_rate, to_dict
from audioclf.data.datamodule import AudioDataModule
from audioclf.errors import UserError
from audioclf.lit.distributed import quiet_other_ranks
from audioclf.lit.module import AudioClassifier
from audioclf.lit.precision import CpuBf16Lstm, resolve_precision
from audioclf.lit.resume import AtomicCheckpointIO, ResumeState, finished_run, record_overrides, resolve_ckpt_path
from audioclf.report.classification import confusion_figure, write_report

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
    check_warmup_fits(cfg)
    return instantiate_partial(scheduler, "scheduler")


def check_warmup_fits(cfg: DictConfig) -> None:
    warmup = (cfg.get("scheduler") or {}).get("warmup_epochs", 0) or 0
    epochs = cfg.trainer.get("max_epochs")
    if warmup and epochs and warmup >= epochs:
        raise UserError(
            f"scheduler.warmup_epochs={warmup} is not shorter than the run (trainer.max_epochs={epochs}): "
            "lower scheduler.warmup_epochs or raise trainer.max_epochs"
        )


def instantiate_partial(node: DictConfig, group: str) -> Callable:
    try:
        return instantiate(node, _partial_=True)
    except Exception as error:  # hydra wraps import and argument errors in its own types
        reason = str(error).splitlines()[0]
        raise UserError(f"{group}._target_={node.get('_target_')} cannot be built ({reason}): "
                        f"check {group}=<name> and the {group}.* overrides") from None


def check_frontend(cfg: DictConfig) -> None:
    """Build the frontend once before any clip is decoded, so a bad features.* value fails at once."""
    features = to_dict(cfg.features)
    with config_errors("features", features):
        build_frontend(features, model_sample_rate(cfg))
    augment = to_dict(cfg.get("augment")) or {}
    with config_errors("augment", augment):
        build_frontend(features, model_sample_rate(cfg), vtlp=augment.get("vtlp"))


def build_augment(cfg: DictConfig, datamodule: AudioDataModule) -> None:
    """The datamodule's waveform augmentation, built before the clips are decoded; the library's
    ValueError about a value becomes a one-line error naming augment.<key>."""
    datamodule.source = datamodule.build_source()
    with config_errors("augment", cfg.get("augment")):
        datamodule.augment = datamodule.build_augment()


def build_model(cfg: DictConfig, datamodule: AudioDataModule) -> AudioClassifier:
    """The classifier; the library's ValueError about a value becomes a one-line error naming
    features.<key> or model.<key> (the frontend is built once alone to tell the two apart)."""
    augment = to_dict(cfg.get("augment")) or {}
    features = to_dict(cfg.features)
    optimizer, scheduler = build_optimizer(cfg), build_scheduler(cfg)
    with config_errors("features", features):
        build_frontend(features, datamodule.sample_rate)
    with config_errors("model", cfg.model):
        return AudioClassifier(
            class_names=datamodule.class_names,
            sample_rate=datamodule.sample_rate,
            num_samples=datamodule.num_samples,
            backbone=to_dict(cfg.model),
            features=features,
            spec_augment=augment.get("spec_augment"),
            mixup_alpha=augment.get("mixup_alpha", 0.0),
            vtlp=augment.get("vtlp"),
            optimizer=optimizer,
            scheduler=scheduler,
            label_smoothing=float((cfg.get("loss") or {}).get("label_smoothing", 0.0)),
            data=to_dict(cfg.data),
        )


def build_trainer(cfg: DictConfig, extra_callbacks: list | tuple = (), **extra: Any) -> L.Trainer:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    callbacks += list(extra_callbacks)
    loggers = build_loggers(cfg)
    if not loggers:  # logger=none: Lightning refuses a LearningRateMonitor without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    callbacks.append(ResumeState())  # random states in checkpoints: exact resume (resume.py)
    callbacks.append(CpuBf16Lstm())  # bf16-mixed on CPU with LSTMs (precision.py)
    extra.setdefault("plugins", [AtomicCheckpointIO()])  # a kill mid-save leaves no half file
    node = trainer_node(cfg)
    try:
        return instantiate(node, callbacks=callbacks, logger=loggers or False, **extra)
    except (TypeError, ValueError) as error:
        message = str(error).splitlines()[0]
        raise UserError(f"the trainer config is invalid ({message}): check the trainer.* overrides") from None


# our trainer keys, applied to the model before fit (apply_speed_options); Lightning's Trainer does not take them
SPEED_KEYS = ("compile", "channels_last")


def trainer_node(cfg: DictConfig) -> dict[str, Any]:
    """`cfg.trainer` for Lightning: precision=auto resolved (one line says what it chose), our own keys left out."""
    node = to_dict(cfg.trainer)
    for key in SPEED_KEYS:
        node.pop(key, None)
    with config_errors("trainer", node):
        precision, why = resolve_precision(node.get("precision", "32-true"), str(node.get("accelerator", "auto")))
    if node.get("precision") == "auto":
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


MAX_NAME = 120


def multirun_job_name() -> str:
    """A multirun job's values of the keys its sweep varies, e.g. `model=crnn,seed=1` (all of
    its overrides but paths when the sweep file is missing); "" outside a multirun."""
    if not in_multirun():
        return ""
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    swept = swept_keys()
    chosen = [o for o in overrides if override_key(o) in swept]
    chosen = chosen or [o for o in overrides if not override_key(o).startswith(("paths.", "hydra."))]
    name = ",".join(chosen).replace("/", "_") or f"job{hydra_cfg.job.num}"
    if len(name) > MAX_NAME:  # a folder name: most file systems stop at 255 bytes
        name = f"{name[:MAX_NAME - 9]}~{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return name


def swept_keys() -> set[str]:
    """The keys given several values (a,b / range / glob) on the multirun's command line,
    read from the multirun.yaml Hydra writes into the sweep folder; empty outside a multirun."""
    multirun_file = Path(HydraConfig.get().sweep.dir) / "multirun.yaml" if in_multirun() else None
    if multirun_file is None or not multirun_file.is_file():
        return set()
    overrides = OmegaConf.load(multirun_file).hydra.overrides.task
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def tensorboard_logger(trainer: L.Trainer) -> TensorBoardLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)


def run(cfg: DictConfig, callbacks: list | tuple = ()) -> dict[str, float]:
    """Train, test and write metrics.json; `callbacks` are added to the configured ones."""
    check_override_types(cfg)
    check_values(cfg)
    quiet_other_ranks()  # DDP: one set of logs, from rank 0 (distributed.py)
    finished = finished_run(cfg)  # ckpt_path=auto: a rerun of a killed sweep skips the jobs that finished
    if finished is not None:
        return finished
    ckpt_path = resolve_ckpt_path(cfg)
    record_overrides(Path(cfg.paths.output_dir))
    check_warmup_fits(cfg)  # before any data is decoded
    check_frontend(cfg)
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    build_augment(cfg, datamodule)
    datamodule.setup("fit")
    model = build_model(cfg, datamodule)
    model.frontend.adapt(datamodule.banks["train"].waves)
    trainer = build_trainer(cfg, callbacks)

    apply_speed_options(cfg, model)
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
    # "job" says which sweep cell this run is, so `audioclf-report` can group runs.
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
        # ckpt_path=auto only says how a killed sweep was rerun: not part of what the job is
        overrides = [o for o in hydra_cfg.overrides.task if o != "ckpt_path=auto"]
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
    """One hparams entry per run, with its final metrics as `hp/*`, for TensorBoard's HPARAMS tab."""
    board = tensorboard_logger(trainer)
    if board is None:
        return
    # the final value of each metric once: train/loss_epoch, not also train/loss and train/loss_step
    final = {f"hp/{k.replace('/', '_')}": v for k, v in summary.items()
             if isinstance(v, int | float) and not k.endswith("_step") and f"{k}_epoch" not in summary
             and not k.startswith("lr-") and k != "epoch"}
    board.log_hyperparams(run_hparams(cfg), metrics=final)
    board.finalize("success")


# data keys that say where the clips are, not what the model learns from
DATA_PLUMBING = ("source", "root", "url", "sha256", "test_root", "test_sha256", "download", "num_workers",
                 "pin_memory", "skip_bad_files", "eval_batch_size")


def run_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The run's recipe as scalars under the same keys in every run: TensorBoard's HPARAMS tab takes
    its columns from one run of the folder, so keys only some models or optimizers have go into one
    `<group>.args` text each. Each key the sweep varies gets a column of its own too."""
    model, features, optim = to_dict(cfg.model), to_dict(cfg.features), to_dict(cfg.optim) or {}
    scheduler, augment, data = to_dict(cfg.get("scheduler")) or {}, to_dict(cfg.get("augment")) or {}, to_dict(cfg.data)
    augment_defaults = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "augment" / "none.yaml"))
    params = {
        "seed": cfg.seed,
        "trainer.max_epochs": cfg.trainer.get("max_epochs"),
        "model": model["name"],
        "model.args": args_text(model, skip=("name",)),
        "features": features.get("name"),
        "features.args": args_text(features, skip=("name",)),
        "optim": target_name(optim),
        "optim.lr": optim.get("lr"),
        "optim.weight_decay": optim.get("weight_decay"),
        "optim.args": args_text(optim, skip=("lr", "weight_decay")),
        "scheduler": target_name(scheduler),
        "scheduler.args": args_text(scheduler),
        "loss.label_smoothing": float((cfg.get("loss") or {}).get("label_smoothing", 0.0)),
        "augment": group_choice("augment") or "custom",
        "augment.mixup_alpha": augment.get("mixup_alpha", 0.0),
        "augment.args": args_text({k: v for k, v in augment.items() if augment_defaults.get(k, "?") != v},
                                  skip=("mixup_alpha",)),
        "data": data.get("source"),
        "data.batch_size": data.get("batch_size"),
        "data.args": args_text(data, skip=("batch_size", *DATA_PLUMBING)),
    }
    for key in swept_keys() - params.keys():
        value = group_choice(key) or OmegaConf.select(cfg, key, default=None)  # experiment=a,b: its name
        if not OmegaConf.is_config(value):
            params[key] = value
    return {k: v if isinstance(v, bool | int | float | str) else str(v) for k, v in params.items()}


def args_text(node: dict, skip: tuple[str, ...] = ()) -> str:
    """`key=value` pairs of a config node's leaves, nested keys dotted, e.g. `width=3 dropout=0.1`."""
    skip = (*skip, "_target_", "_partial_")
    return " ".join(f"{k}={v}" for k, v in flatten(node).items() if k.split(".")[0] not in skip) or "-"


def target_name(node: dict) -> str:
    """`torch.optim.AdamW` -> `AdamW`; "none" for a group without a `_target_`."""
    return str(node.get("_target_") or "none").rsplit(".", 1)[-1]


def group_choice(group: str) -> str | None:
    return HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    # for args_text only: log_hyperparams gets a flat dict; Lightning's own _flatten_dict is private
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat
