"""data=digits_mix: two datasets as one, through a label map, each part split by its own rules."""

from __future__ import annotations

import pytest

from audioclf.data.datamodule import AudioDataModule
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
