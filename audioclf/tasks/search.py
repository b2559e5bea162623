"""Optuna hyperparameter search, driven through Hydra's compose API, with pruning of bad trials.

    audioclf-search hparams_search=optuna data=fsdd \\
        data.root=../shared/data/fsdd/recordings data.download=false \\
        trainer.accelerator=cpu search.n_trials=20

Why not hydra-optuna-sweeper: its last release (1.3.0) pins optuna<3, so pip installs the
2021 optuna 2.10 with it; forced onto optuna 5 it runs, on APIs that optuna deprecates for
removal in v6, and in any case it only sees a job's final return value, so it cannot prune.
Here every trial composes the same config `python train.py` would (the command line's
overrides plus the trial's), calls `audioclf.tasks.train.run` in this process, and reports the
monitored metric to Optuna after each validation epoch; the pruner stops trials that fall
behind the median of earlier trials at the same epoch.

The study (search space, trials, sampler, pruner) lives in the `search:` node that
audioclf/conf/hparams_search/<name>.yaml adds; see audioclf/conf/hparams_search/optuna.yaml. Writes into
<paths.log_dir>/search/<task_name>/<time>/ (or search.dir): one folder per trial (its
metrics.json and TensorBoard run, so `tensorboard --logdir <that folder>` overlays the
trials), trials.csv, search_history.png and best.md.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from audioclf.config import CONF_DIR, check_group_choices, to_dict
from audioclf.errors import UserError
from audioclf.report.tables import markdown_table

log = logging.getLogger("audioclf.tasks.search")

try:
    import optuna
    from optuna_integration.pytorch_lightning import PyTorchLightningPruningCallback
except ImportError:  # optional extra: pip install -e '.[search]'
    optuna = None


def require_optuna() -> None:
    if optuna is None:
        raise UserError(
            "the search needs optuna: pip install -e '.[search]' (or pip install optuna optuna-integration)"
        )


def suggest(trial: optuna.Trial, params: dict[str, Any]) -> list[str]:
    """Draw each search.params entry and turn it into Hydra overrides (key=value strings).

    An entry is {type: float|int|categorical, low, high, log, step, choices} plus either
    `key` (one config key or a list of keys that all get the drawn value) or `sets`
    (a list of {key, at0, at1}: the key gets at0 + value * (at1 - at0), element-wise for
    lists, rounded where both ends are integers) for knobs such as augmentation strength.
    """
    overrides = []
    for name, spec in params.items():
        kind = spec.get("type", "float")
        if kind == "float":
            value = trial.suggest_float(
                name, spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step")
            )
        elif kind == "int":
            value = trial.suggest_int(
                name,
                spec["low"],
                spec["high"],
                log=spec.get("log", False),
                step=spec.get("step", 1),
            )
        elif kind == "categorical":
            value = trial.suggest_categorical(name, list(spec["choices"]))
        else:
            raise UserError(
                f"search.params.{name}.type={kind} is unknown: use float, int or categorical"
            )
        if "sets" in spec:
            for target in spec["sets"]:
                overrides.append(
                    f"{target['key']}={_format(_lerp(target['at0'], target['at1'], value))}"
                )
        elif "key" in spec:
            keys = spec["key"] if isinstance(spec["key"], list) else [spec["key"]]
            overrides += [f"{key}={_format(value)}" for key in keys]
        else:
            raise UserError(
                f"search.params.{name} names no config key: add key: <config key> or sets: [...]"
            )
    return overrides


def _lerp(at0: Any, at1: Any, t: float) -> Any:
    if isinstance(at0, list):
        return [_lerp(a, b, t) for a, b in zip(at0, at1, strict=True)]
    value = at0 + t * (at1 - at0)
    return round(value) if isinstance(at0, int) and isinstance(at1, int) else value


def _format(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_format(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}" if "e" not in f"{value:.6g}" else repr(value)
    return str(value)


def compose_trial(overrides: list[str], output_dir: Path) -> DictConfig:
    """The config `python train.py <overrides>` would run, with its outputs in output_dir."""
    cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def make_study(search: dict[str, Any], study_name: str) -> optuna.Study:
    sampler_name = search.get("sampler", "tpe")
    if sampler_name == "tpe":
        sampler = optuna.samplers.TPESampler(
            seed=search.get("seed"), n_startup_trials=search.get("n_startup_trials", 5)
        )
    elif sampler_name == "random":
        sampler = optuna.samplers.RandomSampler(seed=search.get("seed"))
    else:
        raise UserError(f"search.sampler={sampler_name} is unknown: use tpe or random")
    pruner_cfg = dict(search.get("pruner") or {"name": "none"})
    pruner_name = pruner_cfg.pop("name", "median")
    if pruner_name == "median":
        pruner = optuna.pruners.MedianPruner(**pruner_cfg)
    elif pruner_name == "percentile":
        pruner = optuna.pruners.PercentilePruner(**pruner_cfg)
    elif pruner_name == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(**pruner_cfg)
    elif pruner_name == "none":
        pruner = optuna.pruners.NopPruner()
    else:
        raise UserError(
            f"search.pruner.name={pruner_name} is unknown: "
            "use median, percentile, hyperband or none"
        )
    return optuna.create_study(
        study_name=study_name,
        direction=search.get("direction", "maximize"),
        sampler=sampler,
        pruner=pruner,
        storage=search.get("storage"),
        load_if_exists=search.get("storage") is not None,
    )


def run(overrides: list[str]) -> optuna.Study:
    """Compose the config, run the study, write trials.csv, search_history.png and best.md."""
    from audioclf.tasks import train  # imported here: the module is light to import for --help

    require_optuna()
    check_group_choices(overrides)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        base = compose("train", overrides=overrides, return_hydra_config=True)
        if "search" not in base:
            raise UserError(
                "no search space is selected: "
                "add hparams_search=optuna (a file in audioclf/conf/hparams_search/)"
            )
        search = to_dict(base.search)
        root = Path(
            search.get("dir")
            or Path(base.paths.log_dir)
            / "search"
            / base.task_name
            / time.strftime("%Y-%m-%d_%H-%M-%S")
        )
        root.mkdir(parents=True, exist_ok=True)
        monitor = search.get("monitor", "val/acc")
        study = make_study(search, search.get("study_name") or base.task_name)
        log.info(
            "study %s: %s trials, results in %s", study.study_name, search.get("n_trials"), root
        )

        def objective(trial: optuna.Trial) -> float:
            drawn = suggest(trial, search["params"])
            trial.set_user_attr("overrides", drawn)
            cfg = compose_trial([*overrides, *drawn], root / f"trial_{trial.number:03d}")
            started = time.perf_counter()
            try:
                metrics = train.run(cfg, callbacks=[PyTorchLightningPruningCallback(trial, monitor)])
            finally:
                trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
            value = metrics.get(search.get("objective", "val/acc_best"))
            if value is None or not math.isfinite(value):
                raise UserError(
                    f"search.objective={search.get('objective')} was not logged: "
                    "use val/acc_best or another logged metric"
                )
            return value

        study.optimize(
            objective,
            n_trials=search.get("n_trials"),
            timeout=search.get("timeout"),
            gc_after_trial=True,
        )
    GlobalHydra.instance().clear()
    write_results(study, root, overrides, search)
    return study


def write_results(
    study: optuna.Study, root: Path, overrides: list[str], search: dict[str, Any]
) -> None:
    trials = study.trials
    names = list(search["params"])
    with open(root / "trials.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["trial", "state", "value", "epochs_run", "last_reported", "seconds", *names]
        )
        for t in trials:
            steps = sorted(t.intermediate_values)
            writer.writerow(
                [
                    t.number,
                    t.state.name,
                    "" if t.value is None else t.value,
                    len(steps),
                    t.intermediate_values[steps[-1]] if steps else "",
                    t.user_attrs.get("seconds", ""),
                    *(t.params.get(n, "") for n in names),
                ]
            )
    history_figure(study, root / "search_history.png", search.get("monitor", "val/acc"))
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    lines = [
        f"# Search {study.study_name}\n",
        f"{len(trials)} trials: {len(complete)} complete, {len(pruned)} pruned, "
        f"{len(trials) - len(complete) - len(pruned)} failed.\n",
    ]
    if complete:
        best = study.best_trial
        base = " ".join(o for o in overrides if not o.startswith("hparams_search="))
        lines += [
            f"Best: trial {best.number}, "
            f"{search.get('objective', 'val/acc_best')} = {best.value:.4f}\n",
            best_params_table(best.params),
            "\nTrain with it:\n",
            "```",
            f"python train.py {base} {' '.join(best.user_attrs['overrides'])}",
            "```",
        ]
    (root / "best.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {root}/trials.csv, search_history.png and best.md")


def best_params_table(params: dict[str, Any]) -> str:
    cells = [(key, f"{value:.4g}" if isinstance(value, float) else str(value)) for key, value in params.items()]
    return markdown_table(("param", "value"), cells).rstrip("\n")


def history_figure(study: optuna.Study, path: Path, monitor: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    best = -math.inf
    for t in study.trials:
        steps = sorted(t.intermediate_values)
        pruned = t.state == optuna.trial.TrialState.PRUNED
        if steps:
            left.plot(
                steps,
                [t.intermediate_values[s] for s in steps],
                color="tab:red" if pruned else "tab:blue",
                alpha=0.5 if pruned else 0.9,
                marker="x" if pruned else None,
            )
        if t.value is not None:
            right.scatter(t.number, t.value, color="tab:blue")
            best = max(best, t.value)
            right.scatter(t.number, best, color="black", marker="_", s=200)
        elif pruned and steps:
            right.scatter(t.number, t.intermediate_values[steps[-1]], color="tab:red", marker="x")
    left.set_xlabel("epoch")
    left.set_ylabel(monitor)
    left.set_title("per-epoch reports (red: pruned)")
    right.set_xlabel("trial")
    right.set_ylabel("objective (red x: pruned, last report; bar: best so far)")
    right.set_title(study.study_name)
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
