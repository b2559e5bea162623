"""The benchmark runs end to end on a handful of clips (no timing assertions)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audioclf.audio.frontends import build_frontend
from tools.bench import pipeline as bench
from tools.bench import scoring


def test_bench_runs_on_a_tiny_clip_count(tmp_path, capsys):
    args = ["--clips", "48", "--backbones", "tf_cnn", "--latency-backbones", "tf_cnn",
            "--batch-size", "8", "--train-steps", "2", "--warmup-steps", "1",
            "--naive-workers", "1", "--latency-runs", "3", "--cache-dir", str(tmp_path),
            "--json", str(tmp_path / "results.json"), "--quiet"]
    results = bench.main(args)
    row = results["rows"][0]
    assert row["backbone"] == "tf_cnn" and row["frontend"] == "stft"
    for key in ("naive_train", "ours_train", "model_only_train", "naive_load", "ours_load",
                "ours_load_features"):
        assert row[key] > 0, key
    assert results["clips"] == 40  # 48 files, one validation clip per word held out
    assert results["latency"][0]["median_ms"] > 0
    out = capsys.readouterr().out
    assert "| tf_cnn | stft | **ours / naive** |" in out
    assert (tmp_path / "results.json").is_file()


def test_wavs_are_made_once(tmp_path):
    root = bench.make_wavs(tmp_path / "wavs", 16)
    files = sorted(root.rglob("*.wav"))
    assert len(files) == 16
    info = sf.info(str(files[0]))
    assert (info.samplerate, info.frames, info.subtype) == (16000, 16000, "PCM_16")
    stamps = [f.stat().st_mtime_ns for f in files]
    bench.make_wavs(tmp_path / "wavs", 16)
    assert [f.stat().st_mtime_ns for f in files] == stamps


@pytest.mark.parametrize("name", ["stft", "logmel", "mfcc"])
def test_naive_features_equal_the_frontend(tmp_path, name):
    """The two pipelines do the same feature work, one clip at a time vs. batched."""
    path = next(bench.make_wavs(tmp_path / "wavs", 8).rglob("*.wav"))
    _, features, _ = bench.model_config("tf_cnn", name)
    naive, label = bench.NaiveDataset([(str(path), 3)], features)[0]
    samples, _ = sf.read(str(path), dtype="int16")
    waves = torch.from_numpy(samples[None].astype(np.float32) / 32768)
    ours = build_frontend(features, 16000).transform(waves)[0]
    assert label == 3
    torch.testing.assert_close(naive, ours, rtol=1e-4, atol=1e-4)


def test_train_speed_reports_every_setting(monkeypatch, capsys):
    """One tiny run: a row per backbone, a cell per setting, a failing setting shown as its error."""
    from tools.bench import train_speed

    real = train_speed.time_setting

    def channels_last_fails(cfg, bf16, channels_last, compile_, threads, lstm_onednn, args):
        if channels_last:
            raise RuntimeError("no NHWC kernel\nsecond line")
        return real(cfg, bf16, channels_last, compile_, threads, lstm_onednn, args)

    monkeypatch.setattr(train_speed, "time_setting", channels_last_fails)
    settings = ["fp32", "bf16-mixed", "bf16-mixed, oneDNN LSTM", "channels_last", "fp32 2 threads"]
    results = train_speed.main(["--backbones", "tf_cnn", "--settings", *settings, "--no-best", "--windows", "2",
                                "--steps", "1", "--warmup", "1", "--batch-size", "4", "--quiet"])
    [row] = results["rows"]
    assert row["backbone"] == "tf_cnn" and row["frontend"] == "stft"
    assert list(row["settings"]) == settings
    for name in ("fp32", "bf16-mixed", "fp32 2 threads"):
        cell = row["settings"][name]
        assert cell["clips_per_s"] > 0 and cell["epoch_s"] > 0 and len(cell["windows"]) == 2, name
        assert cell["batch_size"] == 4 and cell["sample_rate"] == 8000
    assert row["settings"]["fp32"]["ratio"] == 1.0
    assert row["settings"]["channels_last"] == "RuntimeError: no NHWC kernel"
    assert row["settings"]["bf16-mixed, oneDNN LSTM"] == train_speed.NO_LSTM  # tf_cnn has no LSTM
    out = capsys.readouterr().out
    assert "| tf_cnn | stft |" in out and "error: RuntimeError: no NHWC kernel" in out


@pytest.mark.filterwarnings("ignore:.*self.log")  # no Trainer here: Lightning skips the logging
@pytest.mark.parametrize("bf16, channels_last", [(False, False), (True, False), (False, True), (True, True)])
def test_train_speed_step_trains_with_finite_outputs(bf16, channels_last):
    """The timed step is a real training step in every precision and memory format: the weights
    move, and the logits stay finite with the fp32 shape."""
    from tools.bench import train_speed

    torch.manual_seed(0)
    model, augment, _, _ = train_speed.build(train_speed.compose("tf_cnn"))
    if channels_last:
        train_speed.to_channels_last(model)
    before = [p.detach().clone() for p in model.backbone.parameters()]
    step = train_speed.make_step(model, augment, model.optimizer_factory(model.parameters()), bf16)
    waves, labels = train_speed.fake_batches(1, 4, model.hparams.num_samples, seed=0)[0]
    step(waves, labels)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.backbone.parameters(), strict=True))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(waves)
    assert logits.shape == (4, 10) and torch.isfinite(logits.float()).all()


def test_scoring_bench_times_each_precision_and_batch_size(tmp_path, capsys):
    rows = scoring.main(["--seconds", "3", "--rounds", "1", "--batch-sizes", "4", "8",
                         "--json", str(tmp_path / "scoring.json")])
    assert [(r["precision"], r["batch_size"]) for r in rows] == [
        ("32-true", 4), ("32-true", 8), ("bf16-mixed", 4), ("bf16-mixed", 8)]
    assert all(r["x_real_time"] > 0 and r["x_real_time_cpu"] > 0 for r in rows)
    assert "| bf16-mixed | 8 | 0.1 |" in capsys.readouterr().out
    assert (tmp_path / "scoring.json").is_file()
