"""data=digits_mix: two datasets as one, through a label map, each part split by its own rules."""

from __future__ import annotations

import numpy as np
import pytest

from audioclf.data.datamodule import AudioDataModule
from audioclf.data.sampling import draw_weights
from audioclf.data.sources import build_source
from audioclf.errors import UserError
from tests.conftest import compose_config, make_fsdd, make_speech_commands

SC_DIGITS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
             "seven": "7", "eight": "8", "nine": "9"}
CLASSES = [str(d) for d in range(10)]


@pytest.fixture
def roots(tmp_path):
    return make_fsdd(tmp_path / "fsdd" / "recordings"), make_speech_commands(tmp_path / "sc")


def parts(roots, sc_map=SC_DIGITS, fsdd_split="official"):
    fsdd_root, sc_root = roots
    return {
        "fsdd": {"source": "fsdd", "root": str(fsdd_root), "url": "file:///none", "download": False,
                 "split": fsdd_split},
        "sc": {"source": "speech_commands", "root": str(sc_root), "version": "v0.02", "labels": "digits",
               "url": "file:///none", "download": False, "map": sc_map, "batch_size": 8},  # loader keys ignored
    }


def test_each_part_keeps_its_split_and_its_words_map_onto_the_mix_classes(roots):
    mix = build_source("mix", parts=parts(roots, fsdd_split="speaker=george"), classes=CLASSES, data_dir="x")
    splits = {split: mix.clips(split) for split in ("train", "val", "test")}
    sc = {split: [c for c in clips if "/sc/" in c.path] for split, clips in splits.items()}
    fsdd = {split: [c for c in clips if "/fsdd/" in c.path] for split, clips in splits.items()}
    # the fixture's Speech Commands digits are zero and one, 6 clips each: #0 validates, #1 tests
    assert [len(sc[s]) for s in ("train", "val", "test")] == [8, 2, 2]
    assert sorted({(c.path.split("/")[-2], c.label) for c in sc["train"]}) == [("one", 1), ("zero", 0)]
    assert all("/00000001_nohash_0.wav" in c.path for c in sc["test"])
    # FSDD's own rule: george is the test speaker; recordings 0-4 of jackson validate
    assert {c.path.rsplit("/", 1)[1].split("_")[1] for c in fsdd["test"]} == {"george"}
    assert [len(fsdd[s]) for s in ("train", "val", "test")] == [10 * 7, 10 * 5, 10 * 12]
    assert all(c.label == int(c.path.rsplit("/", 1)[1][0]) for c in fsdd["train"])
    (sc_clip, fsdd_clip) = sc["train"][0], fsdd["train"][0]
    assert mix.read(sc_clip)[1] == 16000 and mix.read(fsdd_clip)[1] == 8000  # each read by its own source


def test_the_mix_trains_through_the_datamodule_at_one_rate(roots):
    fsdd_root, sc_root = roots
    cfg = compose_config(roots[0].parent, ["data=digits_mix", f"data.parts.fsdd.root={fsdd_root}",
                                           f"data.parts.speech_commands.root={sc_root}",
                                           "data.parts.fsdd.download=false",
                                           "data.parts.speech_commands.download=false"])
    datamodule = AudioDataModule(dict(cfg.data), data_dir=str(roots[0].parent), cache_dir=None)
    datamodule.setup("fit")
    assert datamodule.class_names == CLASSES
    assert len(datamodule.banks["train"]) == 10 * 2 * 2 + 8  # FSDD official (recordings 10-11) + SC
    assert datamodule.banks["train"].waves.shape[1] == 16000


def test_a_map_that_cannot_apply_is_a_one_line_error(roots):
    with pytest.raises(UserError, match=r"data.parts.sc.map maps \['zer0'\], which the part does not have"):
        build_source("mix", parts=parts(roots, {"zer0": "0"}), classes=CLASSES, data_dir="x")
    with pytest.raises(UserError, match=r"data.parts.sc.map maps onto \['ten'\], not in data.classes"):
        build_source("mix", parts=parts(roots, {"zero": "ten"}), classes=CLASSES, data_dir="x")
    with pytest.raises(UserError, match="data.parts.sc has no class of data.classes: add a map"):
        build_source("mix", parts=parts(roots, {}), classes=CLASSES, data_dir="x")
    broken = parts(roots)
    broken["sc"]["source"] = "speechcommands"
    with pytest.raises(UserError, match="data.parts.sc.source=speechcommands is unknown"):
        build_source("mix", parts=broken, classes=CLASSES, data_dir="x")


def weighted_mix(roots, tmp_path, weights, extra=()):
    fsdd_root, sc_root = roots
    cfg = compose_config(tmp_path, ["data=digits_mix", f"data.parts.fsdd.root={fsdd_root}",
                                    f"data.parts.speech_commands.root={sc_root}", "data.parts.fsdd.download=false",
                                    "data.parts.speech_commands.download=false", "data.sample_rate=8000",
                                    *(f"data.parts.{part}.weight={w}" for part, w in weights.items()), *extra])
    datamodule = AudioDataModule(dict(cfg.data), data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    datamodule.setup("fit")
    return datamodule


def test_part_weights_set_each_source_share_of_the_training_draws(tmp_path):
    fsdd = make_fsdd(tmp_path / "fsdd" / "recordings", ("george", "jackson", "theo"))
    roots = fsdd, make_speech_commands(tmp_path / "sc")
    split = ["data.parts.fsdd.split='speaker=george'", "data.parts.fsdd.val_speaker=jackson"]
    unweighted = weighted_mix(roots, tmp_path, {}, split)
    datamodule = weighted_mix(roots, tmp_path, {"fsdd": 1, "speech_commands": 3}, split)
    train = datamodule.banks["train"]
    # FSDD: george tests and jackson validates, so its training clips are the third fixture speaker's;
    # Speech Commands: its lists hold #0 out for validation and #1 for testing
    assert len(train) == len(unweighted.banks["train"]) == 10 * 12 + 8
    assert train.source_ids.tolist() == [0] * 120 + [1] * 8
    assert unweighted.banks["train"].source_ids is not None and unweighted.source.source_weights is None
    mix_train = datamodule.source.clips("train")
    assert all(("/sc/" in clip.path) == (part == 1) for clip, part in zip(mix_train, train.source_ids, strict=True))
    assert not any(name in clip.path for clip in mix_train for name in ("george", "jackson", "00000001_nohash"))
    datamodule.setup("test")
    assert {len(datamodule.banks[s]) for s in ("val", "test")} == {10 * 12 + 2}  # one FSDD speaker + 2 SC clips

    def sc_share(module, epochs=100):
        batches = module.train_dataloader().sampler.batches
        drawn = np.concatenate([np.concatenate(list(batches)) for _ in range(epochs)])
        return float((module.banks["train"].source_ids[drawn] == 1).mean()), len(drawn) // epochs

    share, per_epoch = sc_share(datamodule)
    assert abs(share - 0.75) < 0.03 and per_epoch == len(train)  # weights 1:3, an epoch still len(train) draws
    assert abs(sc_share(unweighted)[0] - 8 / 128) < 0.02  # without weights: a plain shuffle


def test_draw_weights_give_each_source_its_share_and_balance_classes_within_it():
    labels = np.array([0, 0, 0, 1, 0, 1, 1])
    sources = np.array([0, 0, 0, 0, 1, 1, 1])
    weights = draw_weights(labels, sources, [1.0, 3.0]).numpy()
    assert np.allclose(weights, [0.0625] * 4 + [0.25] * 3)
    balanced = draw_weights(labels, sources, [1.0, 3.0], balanced=True).numpy()
    assert np.allclose(balanced, [0.25 / 6] * 3 + [0.125, 0.375, 0.1875, 0.1875])
    assert np.allclose(draw_weights(labels, balanced=True).numpy(), [1 / 8] * 3 + [1 / 6, 1 / 8, 1 / 6, 1 / 6])
    assert draw_weights(labels) is None


def test_a_missing_or_bad_weight_is_a_one_line_error(roots):
    weighted = parts(roots)
    weighted["fsdd"]["weight"] = 2
    with pytest.raises(UserError, match="data.parts.sc.weight is missing: give every part a weight"):
        build_source("mix", parts=weighted, classes=CLASSES, data_dir="x")
    weighted["sc"]["weight"] = 0
    with pytest.raises(UserError, match=r"data.parts.sc.weight=0 must be a number > 0"):
        build_source("mix", parts=weighted, classes=CLASSES, data_dir="x")


def test_a_part_that_feeds_training_only_leaves_validation_and_test_to_the_others(roots, tmp_path):
    datamodule = weighted_mix(roots, tmp_path, {}, ["data.parts.speech_commands.feeds=[train]"])
    datamodule.setup("test")
    assert set(datamodule.banks["train"].source_ids.tolist()) == {0, 1}
    assert [set(datamodule.banks[s].source_ids.tolist()) for s in ("val", "test")] == [{0}, {0}]
    assert len(datamodule.banks["test"]) == 10 * 2 * 5  # FSDD official: recordings 0-4 only
    broken = parts(roots)
    broken["sc"]["feeds"] = ["train", "tset"]
    with pytest.raises(UserError, match=r"data.parts.sc.feeds=\['train', 'tset'\]: list some of train, val, test"):
        build_source("mix", parts=broken, classes=CLASSES, data_dir="x")
