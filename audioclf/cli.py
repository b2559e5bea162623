"""Every console entry point, one convention: Hydra `key=value` overrides.

    audioclf-train   model=crnn data=speech_commands      (python train.py ... is the same)
    audioclf-eval    ckpt_path=<file.ckpt> [split=test]   (python eval.py ...)
    audioclf-predict ckpt_path=<file.ckpt> inputs=<file or folder> [stream=true]
    audioclf-export  ckpt_path=<file.ckpt> format=onnx|torchscript
    audioclf-search  hparams_search=optuna [train overrides]
    audioclf-report  folder=<multirun folder> [metric=test/f1_macro] [curves=[val/acc]]
    audioclf-doctor  [run_dir=<run folder>] [train overrides]
    audioclf-models  [classes=12] [train overrides]
    audioclf-streams data.root=<Speech Commands copy> [split=test count=4 minutes=4]

train, eval, predict, export and streams are Hydra apps (a run folder, `-m` sweeps, tab completion);
the others compose the same config tree without a run folder. This is the one module
that turns configs into calls; a bad value becomes a one-line error here.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from audioclf.config import (
    check_group_choices,
    check_override_types,
    check_run_folder,
    compose_config,
    compose_train,
)
from audioclf.console import reconcile
from audioclf.errors import UserError, exit_on_user_error, exit_with


def precheck_arguments(config_name: str, argv: list[str] | None = None) -> None:
    """Catch a mistyped config-group option (Hydra's message spans a screen) and a run folder that
    cannot be created (Hydra's is a traceback) before Hydra starts."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        check_group_choices(argv)
        check_run_folder(config_name, argv)
    except UserError as error:
        exit_with(error)


def _run_app(config_name: str, task: Callable[[DictConfig], Any]) -> None:
    @hydra.main(version_base="1.3", config_path="conf", config_name=config_name)
    @exit_on_user_error
    def app(cfg: DictConfig) -> Any:
        reconcile()  # after Hydra has configured logging: one handler, one format
        return task(cfg)

    precheck_arguments(config_name)
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


def streams() -> None:
    def run(cfg: DictConfig) -> None:
        from audioclf.tasks import streams as task

        task.run(cfg)

    _run_app("streams", run)


@exit_on_user_error
def search(argv: list[str] | None = None) -> None:
    from audioclf.tasks import search as task

    overrides = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in overrides):
        print(task.__doc__)
        return
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    reconcile()  # each trial's Trainer: Lightning's lines once, through the handler above
    task.run(overrides)


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


@exit_on_user_error
def doctor(argv: list[str] | None = None) -> None:
    from audioclf.tasks import doctor as task

    run_dir, overrides = split_doctor_arguments(sys.argv[1:] if argv is None else argv)
    task.run(doctor_config(run_dir, overrides), run_dir)


def split_doctor_arguments(argv: list[str]) -> tuple[Path | None, list[str]]:
    """`run_dir=<folder>` names a finished run; the other arguments are config overrides."""
    given = [a for a in argv if a.startswith("run_dir=")]
    overrides = [a for a in argv if not a.startswith("run_dir=")]
    if given:
        run_dir = Path(given[-1].partition("=")[2])
        if not (run_dir / ".hydra" / "config.yaml").is_file():
            raise UserError(f"{run_dir} is not a run directory (it has no .hydra/config.yaml): give "
                            "run_dir=logs/runs/train/<time>, or train.py's overrides (model=... data=...)")
        return run_dir, overrides
    return None, overrides


def doctor_config(run_dir: Path | None, overrides: list[str]) -> DictConfig:
    """The run's saved config with `overrides` on top, or train.py's config composed from them."""
    from hydra.core.hydra_config import HydraConfig

    if run_dir is None:
        check_group_choices(overrides)
    try:
        if run_dir is not None:
            return OmegaConf.merge(OmegaConf.load(run_dir / ".hydra" / "config.yaml"),
                                   OmegaConf.from_dotlist(overrides))
        cfg = compose_train(overrides)
    except Exception as error:  # hydra and omegaconf report a bad override in their own types
        raise UserError(f"the overrides do not compose ({str(error).splitlines()[0]}): "
                        "use train.py's key=value syntax") from None
    HydraConfig.instance().set_config(cfg)  # check_override_types compares with the chosen group files
    check_override_types(cfg)
    return cfg


@exit_on_user_error
def models(argv: list[str] | None = None) -> None:
    """`classes=N` (default 10) and train.py overrides applied to every model, e.g. data=fsdd."""
    from audioclf.tasks import models as task

    argv = sys.argv[1:] if argv is None else argv
    classes = [a for a in argv if a.startswith("classes=")]
    overrides = [a for a in argv if not a.startswith("classes=")]
    num_classes = classes[-1].partition("=")[2] if classes else "10"
    if not num_classes.isdigit() or int(num_classes) < 2:
        raise UserError(f"classes={num_classes} is not a class count: give an integer >= 2, e.g. classes=12")
    task.run(int(num_classes), overrides)
