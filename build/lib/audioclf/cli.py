"""Every console entry point, one convention: Hydra `key=value` overrides.

    audioclf-train   model=crnn data=speech_commands      (python train.py ... is the same)
    audioclf-eval    ckpt_path=<file.ckpt> [split=test]   (python eval.py ...)
    audioclf-predict ckpt_path=<file.ckpt> inputs=<file or folder> [stream=true]
    audioclf-export  ckpt_path=<file.ckpt> format=onnx|torchscript
    audioclf-search  hparams_search=optuna [train overrides]
    audioclf-report  folder=<multirun folder> [metric=test/f1_macro] [curves=[val/acc]]
    audioclf-doctor  [run_dir=<run folder>] [train overrides]
    audioclf-models  [classes=12] [train overrides]

train, eval, predict and export are Hydra apps (a run folder, `-m` sweeps, tab completion);
the others compose the same config tree without a run folder. This is the one module
that turns configs into calls; a bad value becomes a one-line error here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from audioclf.config import check_group_choices, compose_config
from audioclf.errors import UserError, exit_on_user_error, exit_with


def precheck_arguments(argv: list[str] | None = None) -> None:
    """Catch a mistyped config-group option before Hydra starts (Hydra's message spans a screen)."""
    try:
        check_group_choices(sys.argv[1:] if argv is None else argv)
    except UserError as error:
        exit_with(error)


def _run_app(config_name: str, task: Callable[[DictConfig], Any]) -> None:
    @hydra.main(version_base="1.3", config_path="conf", config_name=config_name)
    @exit_on_user_error
    def app(cfg: DictConfig) -> Any:
        return task(cfg)

    precheck_arguments()
    app()


def train() -> None:
    def run(cfg: DictConfig) -> float | None:
        from audioclf.tasks import train as task

        metrics = task.run(cfg)
        return metrics.get(cfg.get("optimized_metric"))  # the value a Hydra sweeper optimizes

    _run_app("train", run)


def evaluate() -> None:
    def run(cfg: DictConfig) -> None:
        from audioclf.tasks import evaluate as task

        task.run(cfg)

    _run_app("eval", run)


def predict() -> None:
    def run(cfg: DictConfig) -> None:
        from audioclf.tasks import predict as task

        task.run(cfg)

    _run_app("predict", run)


def export() -> None:
    def run(cfg: DictConfig) -> None:
        from audioclf.tasks import export as task

        task.run(cfg)

    _run_app("export", run)


def search(argv: list[str] | None = None) -> None:
    from audioclf.tasks import search as task

    task.main(sys.argv[1:] if argv is None else argv)


@exit_on_user_error
def report(argv: list[str] | None = None) -> None:
    from audioclf.report.sweep import sweep_report

    cfg = compose_config("report", sys.argv[1:] if argv is None else argv)
    if cfg.folder is None:
        raise UserError("no folder given: add folder=<multirun folder>, e.g. folder=logs/multiruns/train/<time>")
    table = sweep_report(cfg.folder, cfg.out, cfg.name, cfg.metric, cfg.title, list(cfg.curves))
    print(table)
    extra = " and _curves.csv/.png" if cfg.curves else ""
    print(f"wrote {cfg.out or cfg.folder}/{cfg.name}.md, .csv, _runs.csv and .png{extra}")


def doctor(argv: list[str] | None = None) -> None:
    from audioclf.tasks import doctor as task

    task.main(sys.argv[1:] if argv is None else argv)


def models(argv: list[str] | None = None) -> None:
    from audioclf.tasks import models as task

    exit_on_user_error(task.main)(sys.argv[1:] if argv is None else argv)
