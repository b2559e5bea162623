"""Training: config -> data, model, trainer -> fit -> test -> report."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig

from audioclf.config import check_override_types, check_values
from audioclf.data.datamodule import AudioDataModule
from audioclf.errors import UserError
from audioclf.lit.checkpoints import device_for
from audioclf.lit.distributed import quiet_other_ranks
from audioclf.lit.module import AudioClassifier
from audioclf.lit.resume import AtomicCheckpointIO
from audioclf.report.classification import confusion_figure, write_report
from audioclf.streaming.evaluation import calibrate, score_built_streams
from audioclf.streaming.streams import Stream, build_streams
from audioclf.tasks.build import (
    Calibration,
    apply_init_from,
    apply_speed_options,
    build_augment,
    build_calibration,
    build_datamodule,
    build_frontend,
    build_model,
    build_optimizer,
    build_scheduler,
    build_trainer,
    read_init_from,
    tensorboard_logger,
)
from audioclf.tasks.run_identity import describe_job, finished_run, record_overrides, resolve_ckpt_path, run_hparams

MAX_PASSES = 50  # a calibration split too small for min_hours: calibrate on what 50 passes give


def run(cfg: DictConfig, callbacks: list | tuple = ()) -> dict[str, float]:
    """Train, test and write metrics.json; `callbacks` are added to the configured ones."""
    check_override_types(cfg)
    check_values(cfg)
    quiet_other_ranks()  # DDP: one set of logs, from rank 0 (distributed.py)
    finished = finished_run(cfg)  # ckpt_path=auto: a rerun of a killed sweep skips the jobs that finished
    if finished is not None:
        return finished
    ckpt_path, test_choice = resolve_ckpt_path(cfg), test_ckpt_choice(cfg)
    output_dir = Path(cfg.paths.output_dir)
    record_overrides(output_dir)
    # what needs no data is built (and so checked) before any clip is decoded
    optimizer, scheduler, frontend = build_optimizer(cfg), build_scheduler(cfg), build_frontend(cfg)
    calibration, init_from = build_calibration(cfg), read_init_from(cfg)
    trainer = build_trainer(cfg, callbacks)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    build_augment(cfg, datamodule)
    datamodule.setup("fit")
    model = build_model(cfg, datamodule, frontend, optimizer, scheduler)
    apply_init_from(cfg, model, init_from)
    model.frontend.adapt(datamodule.banks["train"].waves)

    apply_speed_options(cfg, model)
    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    train_seconds = time.perf_counter() - started
    metrics = scalar_metrics(trainer)

    if cfg.get("test"):
        # verbose=False: Lightning's metrics table would repeat the report's accuracy and F1
        trainer.test(model, datamodule=datamodule, ckpt_path=test_checkpoint(test_choice, trainer), weights_only=False,
                     verbose=False)
        metrics.update(scalar_metrics(trainer))
        report = publish_report(trainer, model, output_dir, "test")
        if trainer.is_global_zero:
            name = model.hparams.backbone["name"]
            loss = f", test/loss {metrics['test/loss']:.4f}" if "test/loss" in metrics else ""
            print(f"\nTest report ({datamodule.source.name}, {name}{loss}):\n{report}")
    if calibration is not None and trainer.is_global_zero:
        tested = test_checkpoint(test_choice, trainer) if cfg.get("test") else None
        metrics.update(calibrate_for_streams(calibration, model, datamodule, tested or last_checkpoint(trainer),
                                             str(trainer.precision)))

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


def test_ckpt_choice(cfg: DictConfig) -> str:
    """`test_ckpt`: best (the checkpoint with the best monitored metric) or last (the final weights)."""
    choice = cfg.get("test_ckpt", "best")
    if choice not in ("best", "last"):
        raise UserError(f"test_ckpt={choice} is unknown: use best or last")
    return choice


def test_checkpoint(choice: str, trainer: L.Trainer) -> str | None:
    """The best checkpoint by the monitored metric (test_ckpt=best), or None: the weights as
    training left them (test_ckpt=last, as papers that report the final model do)."""
    checkpoint = trainer.checkpoint_callback
    if choice == "last" or checkpoint is None or trainer.fast_dev_run:
        return None
    return checkpoint.best_model_path or None


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


def last_checkpoint(trainer: L.Trainer) -> str | None:
    checkpoint = trainer.checkpoint_callback
    return (checkpoint.last_model_path or None) if checkpoint is not None else None


def calibrate_for_streams(calibration: Calibration, model: AudioClassifier, datamodule: AudioDataModule,
                          checkpoint: str | None, precision: str) -> dict[str, float]:
    """Streams from the calibration split, the tested model scored on them once (at the training
    precision, as predict scores), the threshold and post-processing with the fewest misses at the
    budget: kept in `checkpoint` and returned as metrics."""
    started = time.perf_counter()
    streams = calibration_streams(calibration, datamodule)
    scored = score_built_streams(model, streams, hop_seconds=calibration.stream_hop, device=device_for(),
                                 precision=precision)
    post, point = calibrate(scored, list(model.class_names), calibration.target_fa_per_hour)
    hours = sum(stream.seconds for stream in scored) / 3600
    model.stream_calibration = {
        "threshold": float(point.threshold), "smooth": post.smooth, "refractory_s": post.refractory_s,
        "min_windows": post.min_windows, "stream_hop": calibration.stream_hop,
        "target_fa_per_hour": calibration.target_fa_per_hour, "frr": float(point.frr),
        "fa_per_hour": float(point.fa_per_hour), "hours": round(hours, 3), "split": calibration.split,
    }
    if checkpoint is not None:
        save_calibration(Path(checkpoint), model.stream_calibration)
    met = "" if point.met else f" (no threshold meets {calibration.target_fa_per_hour:g} FA/h: the strictest kept)"
    print(f"stream calibration on {hours * 60:.0f} min of {calibration.split} streams: threshold "
          f"{point.threshold:.4f}, smooth {post.smooth}, refractory {post.refractory_s:g} s, min windows "
          f"{post.min_windows}: FRR {point.frr:.3f} at {point.fa_per_hour:.2f} FA/h{met} "
          f"({time.perf_counter() - started:.0f} s){f'; saved in {checkpoint}' if checkpoint else ''}")
    return {f"calibration/{key}": float(value) for key, value in model.stream_calibration.items()
            if isinstance(value, int | float)}


def calibration_streams(calibration: Calibration, datamodule: AudioDataModule) -> list[Stream]:
    """The calibration split's words laid on background, with more passes over them until the streams
    last `min_hours`: at a budget of 2 FA/h, thresholds picked on one hour kept 3-5 FA/h on fresh audio of
    the same speakers, on three hours 0-4 (experiments/kws_stream/calibration_check.csv)."""
    recipe = calibration.recipe
    while True:
        streams = build_streams(datamodule.source, calibration.split, datamodule.sample_rate, calibration.count,
                                recipe, calibration.seed)
        hours = sum(len(stream.samples) for stream in streams) / datamodule.sample_rate / 3600
        if hours >= calibration.min_hours or hours == 0 or recipe.passes >= MAX_PASSES:
            return streams
        recipe = replace(recipe, passes=min(MAX_PASSES, math.ceil(recipe.passes * calibration.min_hours / hours)))


def save_calibration(path: Path, calibration: dict) -> None:
    """Add the calibration to a checkpoint file already written (atomically, as every save)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    checkpoint["stream_calibration"] = calibration
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)
