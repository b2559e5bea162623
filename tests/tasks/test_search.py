"""Optuna search through the Hydra compose API: search space, pruning, a real tiny study."""

from __future__ import annotations

import csv
import json
import math

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("optuna_integration")

from audioclf.errors import UserError  # noqa: E402
from audioclf.tasks.search import PyTorchLightningPruningCallback, run, suggest  # noqa: E402
from tests.conftest import SMALL_SYNTHETIC, compose_config  # noqa: E402


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
