"""The benchmark runs end to end on a handful of clips (no timing assertions)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audioclf.audio.frontends import build_frontend
from tools.bench import pipeline as bench


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
