"""Shared fixtures: composed configs and tiny on-disk datasets made on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from audioclf.config import CONF_DIR

ROOT = Path(__file__).resolve().parent.parent  # the checkout: train.py, pyproject.toml

SC_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "cat", "zero", "one"]


def compose_config(tmp_path: Path, overrides: list[str] = (), config_name: str = "train") -> DictConfig:
    """Compose a config as Hydra would, with every output under tmp_path."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.paths.data_dir = str(tmp_path / "data")
        cfg.paths.cache_dir = str(tmp_path / "cache")
        cfg.paths.log_dir = str(tmp_path / "logs")
    return cfg


def tone(rng: np.random.Generator, freq: float, rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.01, len(t))).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, rate, subtype=subtype)
    return path


def make_speech_commands(root: Path, per_word: int = 6, rate: int = 16000) -> Path:
    """A Speech Commands-layout tree: word folders, list files, _background_noise_."""
    rng = np.random.default_rng(0)
    val, test = [], []
    for w, word in enumerate(SC_WORDS):
        for i in range(per_word):
            name = f"{word}/{i:08x}_nohash_0.wav"
            write_wav(root / name, tone(rng, 200 + 60 * w, rate, rng.uniform(0.5, 1.0)), rate)
            (val if i == 0 else test if i == 1 else []).append(name)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    for name in ["white_noise", "pink_noise"]:
        write_wav(root / "_background_noise_" / f"{name}.wav", rng.normal(0, 0.1, rate * 3).astype(np.float32), rate)
    return root


def make_fsdd(root: Path, speakers=("george", "jackson"), indices=range(0, 12), rate: int = 8000) -> Path:
    rng = np.random.default_rng(1)
    for digit in range(10):
        for speaker in speakers:
            for index in indices:
                write_wav(root / f"{digit}_{speaker}_{index}.wav", tone(rng, 150 + 70 * digit, rate, 0.4), rate)
    return root


@pytest.fixture
def speech_commands_root(tmp_path: Path) -> Path:
    return make_speech_commands(tmp_path / "sc")


@pytest.fixture
def fsdd_root(tmp_path: Path) -> Path:
    return make_fsdd(tmp_path / "fsdd" / "recordings")


SMALL_SYNTHETIC = ["data=synthetic", "data.train_per_class=8", "data.val_per_class=2", "data.test_per_class=2"]
