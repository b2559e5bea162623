"""Evaluate a checkpoint on a dataset split: metrics, report files, confusion PNG."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from audioclf.config import check_override_types, check_values, to_dict
from audioclf.data.datamodule import AudioDataModule
from audioclf.errors import UserError
from audioclf.lit.checkpoints import load_classifier
from audioclf.report.classification import write_report


def run(cfg: DictConfig) -> dict[str, float]:
    check_override_types(cfg)
    check_values(cfg)
    model = load_classifier(cfg.ckpt_path)
    L.seed_everything(cfg.seed)
    data = to_dict(cfg.get("data")) or dict(model.hparams.get("data") or {})
    if not data:
        raise UserError("the checkpoint does not say which data it was trained on: add data=<dataset>")
    # The model fixes the clip format; the data config only says where the clips are.
    data["sample_rate"] = model.hparams.sample_rate
    data["clip_seconds"] = model.hparams.num_samples / model.hparams.sample_rate
    split = cfg.get("split", "test")
    if split not in ("train", "val", "test"):
        raise UserError(f"split={split} is unknown: use train, val or test")
    datamodule = AudioDataModule(data, data_dir=cfg.paths.data_dir, cache_dir=cfg.paths.cache_dir, seed=cfg.seed)
    if datamodule.class_names != model.class_names:
        raise UserError(
            f"data={datamodule.source.name} has classes {datamodule.class_names}, the checkpoint "
            f"{model.class_names}: evaluate on data with the same label set"
        )
    datamodule.setup(split)
    loader = {"train": datamodule.train_dataloader, "val": datamodule.val_dataloader,
              "test": datamodule.test_dataloader}[split]()
    trainer = L.Trainer(accelerator=cfg.trainer.get("accelerator", "auto"), devices=1, logger=False,
                        enable_checkpointing=False, enable_model_summary=False)
    model.test_confusion.reset()
    results = trainer.test(model, dataloaders=loader, verbose=False)[0]
    output_dir = Path(cfg.paths.output_dir)
    report = write_report(model.test_confusion.compute().cpu().numpy(), model.class_names, output_dir, split)
    metrics = {key.replace("test/", f"{split}/"): float(value) for key, value in results.items()}
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"\n{split} report for {cfg.ckpt_path} on {datamodule.source.name}:\n{report}")
    print(f"Report files: {output_dir}/{split}_report.md, {split}_report.csv, {split}_confusion.png")
    return metrics
