"""The training doctor task: fast checks that say in plain words why a model does not learn.

    audioclf-doctor run_dir=logs/runs/train/<time>                # a run directory
    audioclf-doctor model=gru_seq2seq data=fsdd data.root=...  # or train.py's overrides

It builds the data and a freshly initialised model as train.py would, runs the checks of
audioclf/diagnostics.py on them and, for a run directory, reads whether val/acc stayed at
chance. audioclf/cli.py turns the command line into the config.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from audioclf.diagnostics import Finding, diagnose, format_findings


def run(cfg, run_dir: Path | None = None) -> list[Finding]:
    """Examine `cfg` (a run's saved config when `run_dir` is given) and print the findings."""
    started = time.perf_counter()
    findings, title = examine(cfg, run_dir)
    print(format_findings(findings, title))
    print(f"\n(doctor took {time.perf_counter() - started:.1f} s)")
    return findings


def examine(cfg, run_dir: Path | None = None, **options) -> tuple[list[Finding], str]:
    """Build the data and a fresh model from `cfg` as train.py does, then `diagnose`."""
    from audioclf.config import to_dict
    from audioclf.tasks.build import build_augment, build_datamodule, build_model

    torch.manual_seed(int(cfg.get("seed", 0)))
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    build_augment(cfg, datamodule)
    datamodule.setup("fit")
    model = build_model(cfg, datamodule)
    train, val = datamodule.banks["train"], datamodule.banks["val"]
    val_acc = read_val_acc(run_dir) if run_dir is not None else None
    findings = diagnose(model, train.waves, train.labels, val.labels, val_acc, seed=int(cfg.get("seed", 0)),
                        **options)
    features = to_dict(cfg.features).get("name")
    title = (f"audioclf doctor: model={cfg.model.name} features={features} on data={datamodule.source.name} "
             f"({model.num_parameters:,} params, {len(model.class_names)} classes)")
    return findings, title


def read_val_acc(run_dir: Path) -> list[float]:
    """val/acc per epoch from the run's TensorBoard events, else the best one in metrics.json."""
    from audioclf.report.sweep import read_scalars

    values = read_scalars(run_dir / "tensorboard", "val/acc") if (run_dir / "tensorboard").is_dir() else []
    if values:
        return values
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        record = json.loads(metrics.read_text())
        if "val/acc_best" in record:
            return [record["val/acc_best"]] * int(record.get("epochs", 1) or 1)
    return []
