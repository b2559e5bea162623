import json

import pytest

from audioclf.tasks import train
from tests.conftest import SMALL_SYNTHETIC, compose_config


def test_fast_dev_run_on_synthetic(tmp_path):
    cfg = compose_config(tmp_path, [*SMALL_SYNTHETIC, "debug=fast"])
    metrics = train.run(cfg)
    assert 0.0 <= metrics["test/acc"] <= 1.0
    run = tmp_path / "run"
    record = json.loads((run / "metrics.json").read_text())
    assert record["params"] == 1_625_608
    assert record["job"]["test_ckpt"] == "best"  # which checkpoint the test figures are of
    assert (run / "test_report.md").read_text().startswith("| label |")
    assert (run / "test_confusion.png").stat().st_size > 0


def test_tensorboard_holds_scalars_hparams_and_the_confusion_image(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_config(tmp_path, [*SMALL_SYNTHETIC, "trainer.max_epochs=2", "trainer.enable_progress_bar=false"])
    metrics = train.run(cfg)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    for scalar in ("train/loss_epoch", "val/acc", "val/f1_macro", "val/acc_best", "test/acc", "hp/test_acc"):
        assert scalar in tags["scalars"], scalar
    assert "test/confusion_matrix" in tags["images"]
    assert "_hparams_/session_start_info" in events.summary_metadata
    assert events.Scalars("hp/test_acc")[-1].value == pytest.approx(metrics["test/acc"])
    assert metrics["epochs"] == 2


def test_fast_dev_run_on_speech_commands_fixture(tmp_path, speech_commands_root):
    cfg = compose_config(
        tmp_path, ["data=speech_commands", f"data.root={speech_commands_root}", "debug=fast",
                   "augment=default", "data.batch_size=8"],
    )
    metrics = train.run(cfg)
    assert "test/acc" in metrics


def test_runs_without_a_logger(tmp_path):
    cfg = compose_config(tmp_path, [*SMALL_SYNTHETIC, "debug=fast", "logger=none"])
    assert "test/acc" in train.run(cfg)
    assert not (tmp_path / "run" / "tensorboard").exists()


def counting(monkeypatch, owner, name: str) -> list:
    """Patch `owner.name` (a class's __init__ or a module's function) to record each call."""
    calls, original = [], getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_a_training_run_builds_each_object_once(tmp_path, monkeypatch, speech_commands_root):
    from audioclf.audio.augment import WaveAugment
    from audioclf.audio.frontends import Frontend
    from audioclf.data import datamodule

    frontends = counting(monkeypatch, Frontend, "__init__")
    augments = counting(monkeypatch, WaveAugment, "__init__")
    sources = counting(monkeypatch, datamodule, "build_source")
    cfg = compose_config(tmp_path, ["data=speech_commands", f"data.root={speech_commands_root}", "augment=strong",
                                    "data.batch_size=8", "trainer.max_epochs=1", "trainer.enable_progress_bar=false"])
    train.run(cfg)  # fit, then test on the best checkpoint
    assert (len(frontends), len(augments), len(sources)) == (1, 1, 1)
