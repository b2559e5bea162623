"""Every data x model config composes, and its datamodule and classifier instantiate."""

from itertools import product

import numpy as np
import pytest

from audioclf.config import CONF_DIR
from audioclf.tasks.build import build_datamodule, build_model, build_trainer
from tests.conftest import compose_config, make_fsdd, make_speech_commands, write_wav

DATA = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("roots")
    folder = tmp / "folder"
    for name in ("left", "right"):
        for i in range(10):
            write_wav(folder / name / f"{i}.wav", np.zeros(1600, np.float32), 16000)
    return {
        "speech_commands": make_speech_commands(tmp / "sc", per_word=3),
        "fsdd": make_fsdd(tmp / "fsdd", speakers=("theo",), indices=range(10)),
        "folder": folder,
    }


PART_ROOTS = {"digits_mix": {"parts.fsdd.root": "fsdd", "parts.speech_commands.root": "speech_commands"}}


@pytest.mark.parametrize("data, model", list(product(DATA, MODELS)))
def test_config_composes_and_instantiates(tmp_path, roots, data, model):
    overrides = [f"data={data}", f"model={model}", "debug=fast"]
    if data in roots:
        overrides.append(f"data.root={roots[data]}")
    overrides += [f"data.{key}={roots[root]}" for key, root in PART_ROOTS.get(data, {}).items()]
    cfg = compose_config(tmp_path, overrides)
    datamodule = build_datamodule(cfg)
    classifier = build_model(cfg, datamodule)
    assert classifier.hparams.backbone["name"] == cfg.model.name
    assert len(classifier.class_names) == datamodule.num_classes >= 2
    assert build_trainer(cfg).fast_dev_run


def test_experiment_and_debug_groups_compose(tmp_path):
    cfg = compose_config(tmp_path, ["experiment=demo"])
    assert cfg.data.source == "synthetic" and cfg.task_name == "demo"
