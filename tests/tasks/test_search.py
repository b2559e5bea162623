"""Optuna search through the Hydra compose API: search space, pruning, a real tiny study."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import subprocess
import sys
import time

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("optuna_integration")

from audioclf.errors import UserError  # noqa: E402
from audioclf.tasks.search import (  # noqa: E402
    FINISHED,
    PyTorchLightningPruningCallback,
    make_storage,
    run,
    suggest,
)
from tests.conftest import ROOT, SMALL_SYNTHETIC, compose_config  # noqa: E402


def test_config_composes_with_the_four_knobs(tmp_path):
    cfg = compose_config(tmp_path, ["hparams_search=optuna", *SMALL_SYNTHETIC])
    params = cfg.search.params
    assert set(params) == {"lr", "weight_decay", "dropout", "augment_strength"}
    assert cfg.search.direction == "maximize" and cfg.search.monitor == "val/acc"
    assert cfg.search.pruner.name == "median" and cfg.test is False
    assert cfg.augment.shift_ms == 0.0  # the strength knob starts from augment=none


def test_suggest_turns_draws_into_overrides(tmp_path):
    cfg = compose_config(tmp_path, ["hparams_search=optuna", *SMALL_SYNTHETIC])
    from omegaconf import OmegaConf

    params = OmegaConf.to_container(cfg.search.params)
    trial = optuna.trial.FixedTrial(
        {"lr": 0.002, "weight_decay": 0.01, "dropout": 0.3, "augment_strength": 0.5}
    )
    overrides = suggest(trial, params)
    assert overrides == [
        "optim.lr=0.002",
        "optim.weight_decay=0.01",
        "model.dropout_conv=0.3",
        "model.dropout_dense=0.3",
        "augment.shift_ms=50",
        "augment.gain_db=[-3,3]",
        "augment.speed=[0.95,1.05]",
    ]
    composed = compose_config(tmp_path, ["hparams_search=optuna", *SMALL_SYNTHETIC, *overrides])
    assert composed.optim.lr == 0.002 and list(composed.augment.speed) == [0.95, 1.05]
    with pytest.raises(UserError, match="names no config key"):
        suggest(
            optuna.trial.FixedTrial({"lr": 0.002}),
            {"lr": {"type": "float", "low": 0.001, "high": 0.01}},
        )


class FakeTrainer:
    """Stands in for both the Trainer and the LightningModule the callback reads."""

    sanity_checking = False

    def __init__(self, epoch, value):
        self.current_epoch = epoch
        import torch

        self.callback_metrics = {"val/acc": torch.tensor(value)}


def test_pruning_callback_reports_and_prunes():
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
    )
    good = study.ask()
    for epoch in range(3):
        fake = FakeTrainer(epoch, 0.9)
        PyTorchLightningPruningCallback(good, "val/acc").on_validation_end(fake, fake)
    study.tell(good, 0.9)
    bad = study.ask()
    fake = FakeTrainer(0, 0.1)
    with pytest.raises(optuna.TrialPruned):
        PyTorchLightningPruningCallback(bad, "val/acc").on_validation_end(fake, fake)
    assert bad.storage.get_trial(bad._trial_id).intermediate_values == {0: pytest.approx(0.1)}


def test_no_search_space_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="hparams_search=optuna"):
        run([*SMALL_SYNTHETIC, f"paths.log_dir={tmp_path}"])


@pytest.mark.slow
def test_tiny_study_runs_prunes_and_writes_results(tmp_path):
    """Five 3-epoch trials on tiny synthetic data; a pruner that stops anything below the best."""
    study_dir = tmp_path / "study"
    overrides = [
        "hparams_search=optuna",
        *SMALL_SYNTHETIC,
        "trainer.max_epochs=3",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "callbacks=none",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"search.dir={study_dir}",
        "search.n_trials=5",
        "search.n_startup_trials=2",
        # the 99th percentile pruner prunes any trial not (nearly) the best so far, from epoch 0
        "search.pruner.name=percentile",
        "+search.pruner.percentile=99.0",
        "search.pruner.n_startup_trials=1",
        "search.pruner.n_warmup_steps=0",
    ]
    study = run(overrides)
    states = [t.state for t in study.trials]
    assert len(states) == 5 and states[0] == optuna.trial.TrialState.COMPLETE
    assert optuna.trial.TrialState.PRUNED in states, [
        (t.state, t.intermediate_values) for t in study.trials
    ]
    assert 0.0 <= study.best_value <= 1.0
    rows = list(csv.DictReader(open(study_dir / "trials.csv")))
    assert len(rows) == 5 and {"lr", "weight_decay", "dropout", "augment_strength"} <= set(rows[0])
    assert (study_dir / "search_history.png").is_file() and "python train.py" in (
        study_dir / "best.md"
    ).read_text()
    first = json.loads((study_dir / "trial_000" / "metrics.json").read_text())
    assert math.isclose(first["val/acc_best"], study.trials[0].value)
    assert any(o.startswith("optim.lr=") for o in first["job"]["overrides"])


def worker_args(tmp_path, storage: str, n_trials: int, epochs: int) -> list[str]:
    """One `audioclf-search` worker process of a study shared through `storage`."""
    return [
        sys.executable, "-m", "audioclf", "search",
        "hparams_search=optuna", *SMALL_SYNTHETIC,
        f"trainer.max_epochs={epochs}", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "callbacks=none",
        f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={tmp_path / 'cache'}",
        f"search.dir={tmp_path / 'study'}", f"search.storage={storage}", f"search.n_trials={n_trials}",
        "search.n_startup_trials=2", "search.pruner.n_startup_trials=1", "search.pruner.n_warmup_steps=0",
        "search.heartbeat_s=1", "search.grace_s=4",
    ]


def start(args, tmp_path, name):
    log = open(tmp_path / f"{name}.log", "w")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)


def finish(process, tmp_path, name, timeout=300):
    assert process.wait(timeout=timeout) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]


def test_workers_that_open_a_new_sqlite_study_together_all_get_it(tmp_path):
    """Workers started together race to create the tables; the losers (SQLite: 'table studies already
    exists') retry and open the winner's tables."""
    import threading

    url = f"sqlite:///{tmp_path / 'study.db'}"
    together = threading.Barrier(4)
    opened, failed = [], []

    def open_storage():
        together.wait(timeout=30)
        try:
            opened.append(make_storage({"storage": url, "heartbeat_s": 60}))
        except Exception as error:
            failed.append(error)

    threads = [threading.Thread(target=open_storage) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failed and len(opened) == 4
    optuna.create_study(study_name="shared", storage=opened[0])
    assert [s.study_name for s in optuna.get_all_study_summaries(opened[3])] == ["shared"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_two_workers_share_one_study(tmp_path, kind):
    """Two worker processes on one storage run the study's n_trials between them, each trial once,
    into one table."""
    storage = str(tmp_path / "study.journal") if kind == "journal" else f"sqlite:///{tmp_path / 'study.db'}"
    args = worker_args(tmp_path, storage, n_trials=4, epochs=2)
    workers = [start(args, tmp_path, f"worker{i}") for i in range(2)]
    for i, worker in enumerate(workers):
        finish(worker, tmp_path, f"worker{i}")
    study = optuna.load_study(study_name="search", storage=make_storage({"storage": storage}))
    finished = [t for t in study.trials if t.state in FINISHED]
    assert len(finished) == 4 and len({t.number for t in finished}) == 4
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 4  # no point drawn twice
    assert {t.user_attrs["worker"].split(":")[1] for t in finished} == {str(w.pid) for w in workers}
    rows = list(csv.DictReader(open(tmp_path / "study" / "trials.csv")))
    assert sorted(int(r["trial"]) for r in rows) == sorted(t.number for t in finished)
    for t in finished:
        assert (tmp_path / "study" / f"trial_{t.number:03d}" / "metrics.json").is_file() or t.state.name == "PRUNED"


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_and_run_again_by_the_other(tmp_path):
    """Two workers; one is killed mid-trial (SIGKILL: no cleanup), leaving a RUNNING trial whose heartbeat
    stops. The other, out of trials to start, waits; it marks the trial FAIL after the grace period, runs
    its parameters again and finishes the study."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    doomed = start(worker_args(tmp_path, storage, n_trials=3, epochs=30), tmp_path, "doomed")  # slow trials
    survivor = start(worker_args(tmp_path, storage, n_trials=3, epochs=2), tmp_path, "survivor")
    deadline = time.monotonic() + 120
    running = []
    while not running and time.monotonic() < deadline:
        time.sleep(0.2)
        with contextlib.suppress(Exception):  # the study or its tables may not exist yet
            study = optuna.load_study(study_name="search", storage=storage)
            running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING
                       and t.user_attrs.get("worker", "").endswith(f":{doomed.pid}") and len(t.params) == 4]
    assert running, (tmp_path / "doomed.log").read_text()[-3000:]
    doomed.kill()
    doomed.wait()
    finish(survivor, tmp_path, "survivor")
    study = optuna.load_study(study_name="search", storage=storage)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    finished = [t for t in study.trials if t.state in FINISHED]
    assert [t.number for t in failed] == [running[0].number]
    assert len(finished) == 3
    (retry,) = [t for t in finished if t.system_attrs.get("failed_trial") == running[0].number]
    assert retry.params == failed[0].params  # the same point, run again
    assert all(t.user_attrs["worker"].endswith(f":{survivor.pid}") for t in finished)
    rows = list(csv.DictReader(open(tmp_path / "study" / "trials.csv")))
    assert sorted(r["state"] == "FAIL" for r in rows) == [False, False, False, True]
    assert {r["retry_of"] for r in rows} == {"", str(running[0].number)}
