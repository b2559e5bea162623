"""A user's own configs in conf/ (or $AUDIOCLF_CONF), searched ahead of the package's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from audioclf.config import check_group_choices, group_options
from audioclf.errors import UserError
from tests.conftest import compose_config

MY_MODEL = """# @package _global_
defaults:
  - override /features: stft

model:
  name: tf_cnn
  resize: 16
  dropout_conv: 0.1
  dropout_dense: 0.2
"""

# same name as the package's data/synthetic.yaml: replaces it
MY_SYNTHETIC = """source: synthetic
num_classes: 3
train_per_class: 8
val_per_class: 2
test_per_class: 2
sample_rate: 16000
clip_seconds: 1.0
batch_size: 16
"""


@pytest.fixture
def user_conf(tmp_path) -> Path:
    folder = tmp_path / "project" / "conf"
    (folder / "model").mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "model" / "my_cnn.yaml").write_text(MY_MODEL)
    (folder / "data" / "synthetic.yaml").write_text(MY_SYNTHETIC)
    return folder


def composed_job(cwd: Path, *args: str, env: dict | None = None) -> dict:
    result = subprocess.run([sys.executable, "-m", "audioclf", "train", *args, "--cfg", "job"], cwd=cwd,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return yaml.safe_load(result.stdout)


def test_the_cli_finds_a_new_option_and_prefers_the_users_file_of_the_same_name(user_conf):
    cfg = composed_job(user_conf.parent, "model=my_cnn", "data=synthetic")
    assert cfg["model"] == {"name": "tf_cnn", "resize": 16, "dropout_conv": 0.1, "dropout_dense": 0.2}
    assert cfg["data"]["num_classes"] == 3 and cfg["data"]["batch_size"] == 16
    assert cfg["optim"]["_target_"] == "torch.optim.AdamW"  # every other group from the package


def test_audioclf_conf_names_the_folder_from_anywhere(user_conf, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cfg = composed_job(elsewhere, "data=synthetic", env={**os.environ, "AUDIOCLF_CONF": str(user_conf)})
    assert cfg["data"]["num_classes"] == 3
    assert composed_job(elsewhere, "data=synthetic")["data"]["num_classes"] == 8  # the package's own


def test_compose_and_the_checks_see_the_users_configs(user_conf, tmp_path, monkeypatch):
    monkeypatch.chdir(user_conf.parent)
    assert "my_cnn" in group_options("model") and "tf_cnn" in group_options("model")
    check_group_choices(["model=my_cnn", "model.resize=8"])
    cfg = compose_config(tmp_path, ["model=my_cnn", "data=synthetic"])
    assert cfg.model.resize == 16 and cfg.data.num_classes == 3
    with pytest.raises(UserError, match=f"^model=nope is not a config in audioclf/conf/model/ or {user_conf}/model/: "):
        check_group_choices(["model=nope"])
