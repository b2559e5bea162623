"""Sliding-window detection over a long recording made of fixture clips and silence."""

from __future__ import annotations

import numpy as np
import pytest

from audioclf.tasks import predict, train
from audioclf.tasks.stream import detect, smooth_probabilities, window_starts
from tests.conftest import compose_config, write_wav

RATE = 16000
TONES = {"low": 400.0, "mid": 1200.0, "high": 3000.0}


def tone_clip(rng: np.random.Generator, freq: float, seconds: float = 0.4) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.minimum(1, np.minimum(t, t[::-1]) / 0.02)  # 20 ms fades
    pitch = freq * rng.uniform(0.97, 1.03)
    return (rng.uniform(0.2, 0.4) * envelope * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def make_tone_folder(root, per_class: int = 32):
    """1 s clips over faint noise, each with a tone at a random onset."""
    rng = np.random.default_rng(0)
    for name, freq in TONES.items():
        for i in range(per_class):
            clip = rng.normal(0, 0.002, RATE).astype(np.float32)
            tone = tone_clip(rng, freq)
            onset = rng.integers(0, RATE - len(tone))
            clip[onset : onset + len(tone)] += tone
            write_wav(root / name / f"{i:03d}.wav", clip, RATE)
    return root


def test_window_starts_cover_the_tail_and_smoothing_keeps_mass():
    assert window_starts(25, 10, 5).tolist() == [0, 5, 10, 15]
    assert window_starts(27, 10, 5).tolist() == [0, 5, 10, 15, 17]
    assert window_starts(4, 10, 5).tolist() == [0]
    probs = np.eye(3)[[0, 0, 1, 1, 1, 2]].astype(np.float32)
    smoothed = smooth_probabilities(probs, 3)
    assert np.allclose(smoothed.sum(axis=1), 1) and np.allclose(smoothed[3], [0, 1, 0])


def test_detect_reports_one_event_per_run_at_its_centre():
    names = ["_silence_", "yes", "no"]
    rows = [0, 0, 1, 1, 1, 0, 0, 2, 2, 0]
    probs = np.eye(3)[rows].astype(np.float32) * 0.9 + 0.1 / 3
    starts = np.arange(len(rows)) * 1600  # 0.1 s hop
    found = detect(starts, probs, names, RATE, RATE, threshold=0.6, smooth=1)
    assert [(d.label, d.time) for d in found] == [("yes", 0.8), ("no", 1.25)]
    assert detect(starts, probs, names, RATE, RATE, threshold=0.99, smooth=1) == []


@pytest.fixture(scope="module")
def tone_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tones")
    root = make_tone_folder(tmp / "tones")
    cfg = compose_config(
        tmp,
        [
            "data=folder",
            f"data.root={root}",
            "data.batch_size=16",
            "trainer.max_epochs=8",
            "optim.lr=0.005",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
            "logger=none",
            "~callbacks.lr_monitor",
            "test=false",
            "trainer.enable_model_summary=false",
        ],
    )
    train.run(cfg)
    return tmp / "run" / "checkpoints" / "last.ckpt"


def test_stream_finds_each_word_of_a_long_recording_at_its_time(tone_model, tmp_path, capsys):
    rng = np.random.default_rng(5)
    gaps = [0.8, 1.3, 1.1, 0.9]
    words = ["low", "high", "mid"]
    pieces, expected, now = [], [], 0.0
    for gap, word in zip(gaps, [*words, None], strict=True):
        pieces.append(np.zeros(int(gap * RATE), np.float32))
        now += gap
        if word is not None:
            clip = tone_clip(rng, TONES[word])
            pieces.append(clip)
            expected.append((word, now + len(clip) / RATE / 2))
            now += len(clip) / RATE
    long_wav = write_wav(tmp_path / "long.wav", np.concatenate(pieces), RATE)
    cfg = compose_config(
        tmp_path,
        [
            f"ckpt_path={tone_model}",
            f"inputs={long_wav}",
            "stream=true",
            "stream_hop=0.05",
            "threshold=0.6",
            "smooth=3",
        ],
        config_name="predict",
    )
    ((path, detections),) = predict.run(cfg)
    assert [d.label for d in detections] == words, detections
    for found, (_, centre) in zip(detections, expected, strict=True):
        assert abs(found.time - centre) <= 0.15, (found, centre)
        assert found.probability >= 0.6
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-3:] == [
        f"{path}\t{d.time:.2f}s\t{d.label}\t{d.probability:.3f}" for d in detections
    ]
