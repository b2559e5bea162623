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

Across processes and machines: start the same command N times with one `search.storage` (an RDB
URL such as sqlite:///<shared>/study.db or postgresql://..., or a journal file on a shared file
system, search.storage=<shared>/study.journal). The workers share one study: each trial is drawn
once, the pruner compares against every worker's trials, and `search.n_trials` counts the study's
finished trials, not one worker's. With an RDB storage each running trial beats a heartbeat
(`search.heartbeat_s`); a trial whose worker died is marked FAIL once its heartbeat is
`search.grace_s` old and run again with the same parameters (up to `search.max_retry` times).
Every worker writes the whole study's table into the same folder (search.dir, or the folder the
study's first worker recorded), so the last one to finish leaves the complete table.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import socket
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from audioclf.config import CONF_DIR, check_group_choices, to_dict
from audioclf.errors import UserError
from audioclf.report.files import replaced
from audioclf.report.tables import markdown_table

log = logging.getLogger("audioclf.tasks.search")

try:
    import optuna
    import sqlalchemy  # optuna's RDB storage is built on it
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


def make_storage(search: dict[str, Any]) -> optuna.storages.BaseStorage | None:
    """An RDB URL (with a heartbeat and the retry of dead workers' trials) or a journal file path."""
    location = search.get("storage")
    if location is None:
        return None
    if "://" not in str(location):
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(location)))
    engine = {"connect_args": {"timeout": 60}} if str(location).startswith("sqlite") else None  # workers queue
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # the heartbeat is marked experimental since optuna 2.8
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    str(location),
                    engine_kwargs=engine,
                    heartbeat_interval=search.get("heartbeat_s", 60),
                    grace_period=search.get("grace_s"),
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                        max_retry=search.get("max_retry", 2)
                    ),
                )
        except sqlalchemy.exc.DBAPIError as error:
            if attempt == 4 or not creation_race(error):
                raise
            time.sleep(0.5 + attempt)


def creation_race(error: Exception) -> bool:
    """Workers that start together race to create the tables: one loses with a duplicate row or, on
    SQLite, with 'table ... already exists'."""
    return isinstance(error, sqlalchemy.exc.IntegrityError) or "already exists" in str(error)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def make_study(search: dict[str, Any], study_name: str, storage=None) -> optuna.Study:
    seed = search.get("seed")
    if storage is not None and seed is not None:  # workers of one study must not draw the same points
        seed = zlib.crc32(f"{seed}|{worker_name()}".encode())
    sampler_name = search.get("sampler", "tpe")
    if sampler_name == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=search.get("n_startup_trials", 5))
    elif sampler_name == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
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
        storage=storage,
        load_if_exists=storage is not None,
    )


FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) if optuna else ()


class SurplusTrial(Exception):
    """Another worker started the study's last trial at the same moment; this one is not run."""


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count towards search.n_trials: finished, running or waiting to be retried."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.state != optuna.trial.TrialState.FAIL]


def work(study: optuna.Study, objective, n_trials: int | None, timeout: float | None,
         heartbeat_s: float | None) -> None:
    """Run trials until the study (all workers together) has n_trials finished ones.

    When every trial left is running in another worker, wait (heartbeat_s: the storage's heartbeat):
    a dead worker's trial turns FAIL after the grace period, its retry is queued, and whichever
    worker is still here runs it. Without a heartbeat (journal storage), leave instead."""
    if n_trials is None:
        study.optimize(objective, timeout=timeout, gc_after_trial=True)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        if heartbeat_s:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        trials = counted(study)
        finished = sum(t.state in FINISHED for t in trials)
        waiting = any(t.state == optuna.trial.TrialState.WAITING for t in trials)
        if finished >= n_trials:
            return
        if len(trials) >= n_trials and not waiting:
            if not heartbeat_s:
                return  # the rest run elsewhere; without a heartbeat a dead worker's trial cannot be told
            time.sleep(heartbeat_s / 2)
            continue
        study.optimize(objective, n_trials=1, gc_after_trial=True, catch=(SurplusTrial,))


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
        monitor = search.get("monitor", "val/acc")
        storage = make_storage(search)
        study = make_study(search, search.get("study_name") or base.task_name, storage)
        root = Path(
            search.get("dir")
            or study.user_attrs.get("dir")
            or Path(base.paths.log_dir)
            / "search"
            / base.task_name
            / time.strftime("%Y-%m-%d_%H-%M-%S")
        )
        root.mkdir(parents=True, exist_ok=True)
        if "dir" not in study.user_attrs:
            study.set_user_attr("dir", str(root.resolve()))  # later workers write here too
        n_trials = search.get("n_trials")
        log.info(
            "study %s (worker %s): %s trials, results in %s", study.study_name, worker_name(), n_trials, root
        )

        def objective(trial: optuna.Trial) -> float:
            trial.set_user_attr("worker", worker_name())
            earlier = [t for t in counted(study) if t.number < trial.number]
            if n_trials is not None and len(earlier) >= n_trials:
                trial.set_user_attr("surplus", True)
                raise SurplusTrial(f"trial {trial.number}: the study's {n_trials} trials are all taken")
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

        heartbeat_s = search.get("heartbeat_s", 60) if isinstance(storage, optuna.storages.RDBStorage) else None
        work(study, objective, n_trials, search.get("timeout"), heartbeat_s)
    GlobalHydra.instance().clear()
    write_results(study, root, overrides, search)
    return study


def write_results(
    study: optuna.Study, root: Path, overrides: list[str], search: dict[str, Any]
) -> None:
    trials = [t for t in study.trials if not t.user_attrs.get("surplus")]
    names = list(search["params"])
    with replaced(root / "trials.csv") as temporary, temporary.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["trial", "state", "value", "epochs_run", "last_reported", "seconds", "worker", "retry_of", *names]
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
                    t.user_attrs.get("worker", ""),
                    t.system_attrs.get("failed_trial", ""),
                    *(t.params.get(n, "") for n in names),
                ]
            )
    history_figure(trials, study.study_name, root / "search_history.png", search.get("monitor", "val/acc"))
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
    with replaced(root / "best.md") as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {root}/trials.csv, search_history.png and best.md")


def best_params_table(params: dict[str, Any]) -> str:
    cells = [(key, f"{value:.4g}" if isinstance(value, float) else str(value)) for key, value in params.items()]
    return markdown_table(("param", "value"), cells).rstrip("\n")


def history_figure(trials: list, title: str, path: Path, monitor: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    best = -math.inf
    for t in trials:
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
    right.set_title(title)
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    with replaced(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
