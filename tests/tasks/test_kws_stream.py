"""experiment=kws_stream: trains with noise and gain, calibrates on validation streams, and predict
stream=true uses the calibrated threshold and post-processing from the checkpoint."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from audioclf.errors import UserError
from audioclf.lit.checkpoints import load_classifier
from audioclf.streaming.streams import StreamRecipe, build_streams, write_streams
from audioclf.tasks import build, predict, train
from tests.conftest import compose_config

SMALL_CALIBRATION = ["stream_calibration.count=1", "stream_calibration.minutes=0.5", "stream_calibration.passes=1",
                     "stream_calibration.gap_s=[0.2,0.5]", "stream_calibration.min_hours=0"]


def kws_stream(tmp_path, root, *overrides):
    return compose_config(tmp_path, ["experiment=kws_stream", f"data.root={root}", "data.batch_size=8",
                                     "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                                     "scheduler.warmup_epochs=0", *SMALL_CALIBRATION, *overrides])


def test_the_recipe_composes_with_stream_training_and_calibration(tmp_path, speech_commands_root):
    cfg = kws_stream(tmp_path, speech_commands_root)
    assert cfg.model.name == "bcresnet" and cfg.data.labels == "kws12"
    assert cfg.model.causal and cfg.model.width == 6 and cfg.trainer.max_epochs == 1  # the recipe's 100: overridden
    assert cfg.augment.noise_mode == "snr" and list(cfg.augment.noise_snr_db) == [0.0, 20.0]
    assert cfg.augment.stream_cut_prob == 0 and not cfg.augment.stream_anywhere  # chosen on validation streams
    calibration = build.build_calibration(cfg)
    assert calibration.split == "val" and calibration.target_fa_per_hour == 2.0


@pytest.mark.parametrize(("override", "message"), [
    ("stream_calibration.target_fa_per_hour=0", "stream_calibration.target_fa_per_hour=0 must be a positive"),
    ("stream_calibration.split=dev", "stream_calibration.split=dev is unknown"),
    ("stream_calibration.count=0", "stream_calibration.count=0 must be a whole number"),
    ("stream_calibration.min_hours=-1", "stream_calibration.min_hours=-1 must be a number of hours"),
])
def test_a_bad_calibration_setting_is_one_line_before_training(tmp_path, speech_commands_root, override, message):
    cfg = kws_stream(tmp_path, speech_commands_root, override)
    with pytest.raises(UserError, match=message):
        train.run(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_one_epoch_calibrates_saves_and_predict_uses_it(tmp_path, speech_commands_root, capsys):
    cfg = kws_stream(tmp_path, speech_commands_root)
    metrics = train.run(cfg)
    assert 0 <= metrics["calibration/threshold"] <= 1 and metrics["calibration/hours"] > 0
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)["stream_calibration"]
    assert saved["threshold"] == pytest.approx(metrics["calibration/threshold"])
    assert load_classifier(checkpoint).stream_calibration == saved

    datamodule = build.build_datamodule(cfg)
    datamodule.prepare_data()
    streams = build_streams(datamodule.source, "test", 16000, 1, StreamRecipe(minutes=0.3, gap_s=(0.2, 0.5)), seed=1)
    folder = tmp_path / "streams"
    labels = write_streams(streams, folder, 16000)
    capsys.readouterr()
    predict_cfg = compose_config(tmp_path / "predict", [f"ckpt_path={checkpoint}", f"inputs={folder}", "stream=true",
                                                        f"labels={labels}"], config_name="predict")
    predict.run(predict_cfg)
    assert f"threshold {saved['threshold']:.4f}, smooth {saved['smooth']}" in capsys.readouterr().err
    assert predict.stream_settings(predict_cfg, load_classifier(checkpoint))["min_windows"] == saved["min_windows"]


def test_calibration_streams_pass_over_the_words_again_until_min_hours(tmp_path, speech_commands_root):
    """A small calibration split gets more passes over its words, so a budget of a few false alarms per hour
    is judged on enough audio; a large one is left as its passes make it."""
    cfg = kws_stream(tmp_path, speech_commands_root, "stream_calibration.minutes=0.01")
    datamodule = build.build_datamodule(cfg)
    datamodule.prepare_data()
    one_pass = build.build_calibration(cfg)
    first = train.calibration_streams(one_pass, datamodule)
    hours = sum(len(s.samples) for s in first) / 16000 / 3600
    streams = train.calibration_streams(replace(one_pass, min_hours=2.5 * hours), datamodule)
    assert sum(len(s.samples) for s in streams) / 16000 / 3600 >= 2.5 * hours
    assert sum(len(s.events) for s in streams) == 3 * sum(len(s.events) for s in first)  # 3 passes
