import json

import numpy as np
import pytest

from audioclf.data.sources.synthetic import SyntheticSource
from audioclf.errors import UserError
from audioclf.lit.checkpoints import load_classifier
from audioclf.tasks import evaluate, predict, train
from tests.conftest import SMALL_SYNTHETIC, compose_config, write_wav


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint from one short epoch of real training on the synthetic data."""
    tmp = tmp_path_factory.mktemp("trained")
    cfg = compose_config(tmp, [*SMALL_SYNTHETIC, "trainer.max_epochs=1", "trainer.enable_progress_bar=false"])
    train.run(cfg)
    return tmp, tmp / "run" / "checkpoints" / "last.ckpt"


def test_checkpoint_is_self_describing(trained):
    _, ckpt = trained
    model = load_classifier(ckpt)
    assert model.class_names == SyntheticSource().class_names
    assert model.hparams.sample_rate == 16000 and model.hparams.backbone["name"] == "tf_cnn"
    assert bool(model.frontend.norm.adapted) and model.frontend.norm.std.item() != 1.0


def test_eval_defaults_to_the_training_data_and_writes_the_report(trained, tmp_path):
    tmp, ckpt = trained
    cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}"], config_name="eval")
    cfg.paths.cache_dir = str(tmp / "cache")
    metrics = evaluate.run(cfg)
    assert 0 <= metrics["test/acc"] <= 1
    assert (tmp_path / "run" / "test_confusion.png").stat().st_size > 0
    rows = (tmp_path / "run" / "test_report.csv").read_text().splitlines()
    assert rows[0] == "label,precision,recall,f1,support" and len(rows) == 1 + 8 + 3
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test/acc"] == metrics["test/acc"]


def test_eval_on_another_split_and_dataset_config(trained, tmp_path):
    _, ckpt = trained
    cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}", "data=synthetic", "split=val"], config_name="eval")
    metrics = evaluate.run(cfg)
    assert "val/acc" in metrics and (tmp_path / "run" / "val_report.md").is_file()


def test_eval_rejects_data_with_other_labels(trained, tmp_path, fsdd_root):
    _, ckpt = trained
    cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}", "data=fsdd", f"data.root={fsdd_root}"], config_name="eval")
    with pytest.raises(UserError, match="same label set"):
        evaluate.run(cfg)


def test_predict_prints_label_and_probability_per_file(trained, tmp_path, capsys):
    _, ckpt = trained
    source = SyntheticSource()
    for clip in source.clips("test")[:3]:
        samples, rate = source.read(clip)
        write_wav(tmp_path / "in" / f"{source.class_names[clip.label]}.wav", samples[: rate // 2], rate)
    cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}", f"inputs={tmp_path / 'in'}", "top_k=2"],
                         config_name="predict")
    results = predict.run(cfg)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(results) == len(lines) == 3
    for (path, ranked), line in zip(results, lines, strict=True):
        assert line.startswith(str(path)) and ranked[0][0] in line
        assert np.isclose(sum(p for _, p in ranked), 1.0, atol=1e-4)


def test_predict_names_a_missing_input(trained, tmp_path):
    _, ckpt = trained
    cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}", f"inputs={tmp_path / 'nope.wav'}"], config_name="predict")
    with pytest.raises(UserError, match="nope.wav does not exist"):
        predict.run(cfg)


def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path):
    (tmp_path / "x.ckpt").write_text("hello")
    with pytest.raises(UserError, match="not an audioclf checkpoint"):
        load_classifier(tmp_path / "x.ckpt")
