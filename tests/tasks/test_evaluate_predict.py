import csv
import json

import numpy as np
import pytest
import torch

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
    with pytest.raises(UserError, match=r"^data=fsdd has classes \['0', '1', .*\], the checkpoint \['ai', .*\]: "
                                        "no class in common; evaluate on the data the checkpoint was trained on$"):
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


def read_csv(path) -> list[dict]:
    with open(path) as stream:
        return list(csv.DictReader(stream))


def test_eval_writes_the_detection_report_and_metrics(trained, tmp_path, capsys):
    tmp, ckpt = trained
    cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}"], config_name="eval")
    cfg.paths.cache_dir = str(tmp / "cache")
    metrics = evaluate.run(cfg)
    run = tmp_path / "run"
    keywords = SyntheticSource().class_names  # synthetic: every class is a keyword
    rows = read_csv(run / "test_detection.csv")
    assert [row["keyword"] for row in rows] == [*keywords, "macro avg"]
    for row in rows[:-1]:  # 2 test clips per class: 2 positives, 14 negatives
        assert (row["positives"], row["negatives"]) == ("2", "14")
        assert metrics[f"test/frr_at_far1/{row['keyword']}"] == pytest.approx(float(row["frr_at_far1"]))
    assert metrics["test/auc"] == pytest.approx(float(rows[-1]["auc"])) and 0 <= metrics["test/auc"] <= 1
    assert metrics["test/frr_at_far1"] == pytest.approx(float(rows[-1]["frr_at_far1"]))
    assert (run / "test_det.png").stat().st_size > 0 and (run / "test_detection.md").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((run / "metrics.json").read_text())["test/auc"] == metrics["test/auc"]
    out = capsys.readouterr().out
    assert "keyword detection" in out and "false alarms per hour skipped" in out  # synthetic ships no noise files
    assert not (run / "test_false_alarms.csv").exists()


def test_checkpoint_holds_the_validation_thresholds(trained, tmp_path):
    tmp, ckpt = trained
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["detection_thresholds"]
    assert set(saved) == set(SyntheticSource().class_names) and all(0 <= t <= 1 for t in saved.values())
    assert load_classifier(ckpt).detection_thresholds == saved
    # the same weights on the same val clips give the same thresholds at 1 % FAR
    cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}", "split=val", "false_alarms=false"], config_name="eval")
    cfg.paths.cache_dir = str(tmp / "cache")
    evaluate.run(cfg)
    for row in read_csv(tmp_path / "run" / "val_detection.csv")[:-1]:
        assert saved[row["keyword"]] == pytest.approx(float(row["threshold_at_far1"]), abs=1e-6)


def test_a_checkpoint_without_thresholds_loads_as_none(trained, tmp_path):
    _, ckpt = trained
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    del checkpoint["detection_thresholds"]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    model = load_classifier(tmp_path / "old.ckpt")
    assert model.detection_thresholds is None
    thresholds, missing = evaluate.keyword_thresholds(model, None)
    assert set(thresholds.values()) == {0.6} and missing == model.class_names
    model.detection_thresholds = {"ai": 0.9}
    thresholds, missing = evaluate.keyword_thresholds(model, None)
    assert thresholds["ai"] == 0.9 and thresholds["ia"] == 0.6 and "ai" not in missing
    assert set(evaluate.keyword_thresholds(model, 0.3)[0].values()) == {0.3}


def noise_files(folder, count: int = 2, seconds: float = 30.0, rate: int = 8000) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        write_wav(folder / f"noise_{i}.wav", rng.normal(0, 0.1, int(seconds * rate)).astype(np.float32), rate)


def test_false_alarms_over_a_folder(trained, tmp_path, capsys):
    tmp, ckpt = trained
    noise_files(tmp_path / "noise")
    cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}", f"false_alarms={tmp_path / 'noise'}", "stream_hop=0.5"],
                         config_name="eval")
    cfg.paths.cache_dir = str(tmp / "cache")
    metrics = evaluate.run(cfg)
    assert metrics["false_alarms/hours"] == pytest.approx(1 / 60)  # 2 files of 30 s
    rows = read_csv(tmp_path / "run" / "test_false_alarms.csv")
    assert [row["keyword"] for row in rows] == SyntheticSource().class_names
    for row in rows:
        assert metrics[f"false_alarms_per_hour/{row['keyword']}"] == pytest.approx(60 * int(row["false_alarms"]))
        assert float(row["threshold"]) == pytest.approx(load_classifier(ckpt).detection_thresholds[row["keyword"]])
    assert "0.0167 h (60.0 s) scanned" in capsys.readouterr().out


def test_false_alarm_counts_are_the_streamed_detections(trained, tmp_path, monkeypatch):
    """Known window probabilities per file: `ai` fires twice (two runs), `ia` once, the quiet gap never."""
    _, ckpt = trained
    model = load_classifier(ckpt)
    ai, ia = model.class_names.index("ai"), model.class_names.index("ia")

    def known_windows(model, samples, hop, min_dbfs, device=None, precision="32-true"):
        probabilities = np.zeros((20, len(model.class_names)), np.float32)
        probabilities[0:5, ai] = probabilities[10:15, ia] = probabilities[15:20, ai] = 0.9  # 5..9: quiet
        return np.arange(20) * hop, probabilities

    monkeypatch.setattr(evaluate, "window_probabilities", known_windows)
    noise_files(tmp_path, seconds=15.0)
    cfg = compose_config(tmp_path, ["ckpt_path=x", "threshold=0.5", "smooth=1"], config_name="eval")
    alarms = evaluate.scan_false_alarms(model, sorted(tmp_path.glob("*.wav")), cfg)
    assert alarms.seconds == 30.0 and alarms.files == 2
    assert alarms.counts["ai"] == 4 and alarms.counts["ia"] == 2 and sum(alarms.counts.values()) == 6
    assert alarms.per_hour("ai") == 480.0 and evaluate.false_alarm_metrics(alarms)["false_alarms/hours"] == 30 / 3600


def test_an_empty_false_alarm_folder_is_one_line_and_writes_nothing(trained, tmp_path):
    tmp, ckpt = trained
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio")
    cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}", f"false_alarms={tmp_path / 'empty'}"], config_name="eval")
    with pytest.raises(UserError, match="false_alarms=.*empty holds no .wav") as error:
        evaluate.run(cfg)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match="false_alarms=.*nowhere does not exist"):
        evaluate.false_alarm_files(str(tmp_path / "nowhere"), SyntheticSource())
    assert evaluate.false_alarm_files(False, SyntheticSource()) == []
