"""The max-pooling loss: clips placed in longer segments, cut into evenly spaced windows, and one window per
segment trained on (a keyword's best, anything else's closest to a false alarm)."""

from __future__ import annotations

import pytest
import torch

from audioclf.audio.augment import SegmentWindows, max_pool_window
from audioclf.errors import UserError
from audioclf.tasks import build, train
from tests.conftest import compose_config

RATE = 16000


def test_place_keeps_each_clip_whole_at_its_own_offset_in_silence():
    segments = SegmentWindows(num_samples=100, sample_rate=1000, windows=3, span_ms=40)  # 40 samples of span
    clips = torch.rand(64, 100) + 1.0  # never zero
    placed = segments.place(clips)
    assert placed.shape == (64, 140)
    offsets = (placed != 0).float().argmax(1)
    assert offsets.min() >= 0 and offsets.max() <= 40 and len(set(offsets.tolist())) > 5
    for row, offset in enumerate(offsets.tolist()):
        assert torch.equal(placed[row, offset:offset + 100], clips[row])
        assert (placed[row, :offset] == 0).all() and (placed[row, offset + 100:] == 0).all()


def test_cut_slices_windows_evenly_over_the_segment():
    segments = SegmentWindows(num_samples=100, sample_rate=1000, windows=5, span_ms=40)  # hop of 10 samples
    ramp = torch.arange(2 * 140, dtype=torch.float).view(2, 140)
    windows = segments.cut(ramp)
    assert windows.shape == (10, 100)
    assert windows[:, 0].tolist() == [0, 10, 20, 30, 40, 140, 150, 160, 170, 180]
    assert torch.equal(windows[4], ramp[0, 40:140])


def test_the_loss_keeps_a_keywords_best_window_and_a_negatives_closest_false_alarm():
    keywords = torch.tensor([0, 1])  # classes 2 and 3 are _unknown_ and _silence_
    logits = torch.full((3, 4, 4), -5.0)
    logits[0, :, 0] = torch.tensor([1.0, 4.0, 2.0, 0.0])  # keyword 0: window 1 scores it highest
    logits[1, :, 2] = 3.0  # an _unknown_ word: window 2 is the closest to firing keyword 1
    logits[1, 2, 1] = 2.0
    logits[2, :, 3] = 3.0  # _silence_: window 3 nearly fires keyword 0
    logits[2, 3, 0] = 2.5
    chosen = max_pool_window(logits, torch.tensor([0, 2, 3]), keywords)
    assert chosen.tolist() == [1, 2, 3]
    assert max_pool_window(logits, torch.tensor([2, 2, 2]), torch.tensor([], dtype=torch.long)).shape == (3,)


@pytest.mark.parametrize(("windows", "span_ms"), [(2.5, 400.0), (-1, 400.0), (3, 0.0)])
def test_a_bad_segment_setting_is_a_value_error_naming_both_keys(windows, span_ms):
    with pytest.raises(ValueError, match="max_pool_windows=.* and max_pool_span_ms="):
        SegmentWindows(RATE, RATE, windows, span_ms)


def config(tmp_path, root, *overrides):
    return compose_config(tmp_path, ["experiment=kws_stream", f"data.root={root}", "data.batch_size=8",
                                     "trainer.max_epochs=1", "+trainer.limit_train_batches=3",
                                     "trainer.enable_progress_bar=false", "scheduler.warmup_epochs=0",
                                     "stream_calibration.enabled=false", "model.width=1", *overrides])


def test_the_config_turns_it_on_for_the_data_and_the_loss(tmp_path, speech_commands_root):
    cfg = config(tmp_path, speech_commands_root, "augment.max_pool_windows=4", "augment.max_pool_span_ms=300")
    datamodule = build.build_datamodule(cfg)
    build.build_augment(cfg, datamodule)
    assert datamodule.segments.count == 4 and datamodule.segments.segment_samples == 16000 + 4800
    assert datamodule.augment.noise_bank.crops(2, 20800).shape == (2, 20800)
    assert build.build_model(cfg, datamodule).hparams.max_pool_windows == 4
    cfg = config(tmp_path, speech_commands_root)
    datamodule = build.build_datamodule(cfg)
    build.build_augment(cfg, datamodule)
    assert datamodule.segments is None


def test_training_batches_arrive_as_windows_and_a_run_trains_on_them(tmp_path, speech_commands_root):
    cfg = config(tmp_path, speech_commands_root, "augment.max_pool_windows=3")
    datamodule = build.build_datamodule(cfg)
    build.build_augment(cfg, datamodule)
    datamodule.setup("fit")
    waves, labels = next(iter(datamodule.train_dataloader()))

    class Training:  # what on_after_batch_transfer asks of the trainer
        training = True

    datamodule.trainer = Training()
    windows, same_labels = datamodule.on_after_batch_transfer((waves, labels), 0)
    assert windows.shape == (3 * len(labels), 16000) and torch.equal(same_labels, labels)
    metrics = train.run(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss_epoch"]))


def test_a_bad_override_is_one_line(tmp_path, speech_commands_root):
    with pytest.raises(UserError, match="augment.max_pool_windows"):
        train.run(config(tmp_path, speech_commands_root, "augment.max_pool_windows=3",
                         "augment.max_pool_span_ms=0"))
    with pytest.raises(UserError, match="augment: max_pool_windows and mixup_alpha both change the loss"):
        train.run(config(tmp_path, speech_commands_root, "augment.max_pool_windows=3", "augment.mixup_alpha=0.2"))
