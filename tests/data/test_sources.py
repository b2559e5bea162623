import numpy as np
import pytest

from audioclf.data.datamodule import AudioDataModule
from audioclf.data.sources import build_source
from audioclf.data.sources.speech_commands import SILENCE, UNKNOWN
from audioclf.data.sources.synthetic import WORDS, SyntheticSource
from audioclf.errors import UserError
from tests.conftest import make_fsdd, write_wav


def test_synthetic_is_deterministic_and_varied():
    source = SyntheticSource(train_per_class=2, val_per_class=1, test_per_class=1)
    clips = source.clips("train")
    assert len(clips) == 16 and {c.label for c in clips} == set(range(8))
    first, rate = source.read(clips[0])
    again, _ = SyntheticSource(train_per_class=2).read(clips[0])
    np.testing.assert_array_equal(first, again)
    assert rate == 16000 and first.shape == (16000,) and np.abs(first).max() <= 1
    same_class_other_clip, _ = source.read(clips[8])
    assert not np.allclose(first, same_class_other_clip)


def test_synthetic_has_classes_that_differ_only_in_order():
    assert sorted(WORDS["usa"]) == sorted(WORDS["sau"]) and WORDS["usa"] != WORDS["sau"]
    assert sorted(WORDS["ai"]) == sorted(WORDS["ia"])


def test_fsdd_official_split(fsdd_root):
    source = build_source("fsdd", root=str(fsdd_root), data_dir="unused", url="file:///none")
    splits = {s: source.clips(s) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [10 * 2 * 2, 10 * 2 * 5, 10 * 2 * 5]
    assert all(int(c.path.rsplit("_", 1)[1][:-4]) < 5 for c in splits["test"])
    assert source.class_names == [str(d) for d in range(10)]
    auto = build_source("fsdd", root=str(fsdd_root), data_dir="unused", url="file:///none", val_speaker="auto")
    assert {s: auto.clips(s) for s in ("train", "val", "test")} == splits  # no speaker held out: as seen


def test_fsdd_unseen_speaker_split(fsdd_root):
    source = build_source("fsdd", root=str(fsdd_root), data_dir="x", url="x", split="speaker=jackson")
    assert all("_jackson_" in c.path for c in source.clips("test"))
    assert not any("_jackson_" in c.path for c in source.clips("train") + source.clips("val"))
    with pytest.raises(UserError, match="no speaker 'nobody'"):
        build_source("fsdd", root=str(fsdd_root), data_dir="x", url="x", split="speaker=nobody")


def speakers_of(clips) -> set[str]:
    return {clip.path.rsplit("/", 1)[1].split("_")[1] for clip in clips}


def test_fsdd_validation_speaker_is_held_out_whole(tmp_path):
    root = make_fsdd(tmp_path / "recordings", speakers=("george", "jackson", "lucas", "theo"), indices=range(6))
    args = {"root": str(root), "data_dir": "x", "url": "x", "split": "speaker=lucas"}
    auto = build_source("fsdd", **args, val_speaker="auto")
    splits = {name: speakers_of(auto.clips(name)) for name in ("train", "val", "test")}
    assert splits == {"train": {"george", "jackson"}, "val": {"theo"}, "test": {"lucas"}}
    assert len(auto.clips("val")) == 10 * 6  # every recording of the validation speaker
    last = build_source("fsdd", **{**args, "split": "speaker=theo"}, val_speaker="auto")
    assert speakers_of(last.clips("val")) == {"george"}  # after the last name: the first
    named = build_source("fsdd", **args, val_speaker="george")
    assert speakers_of(named.clips("val")) == {"george"} and "george" not in speakers_of(named.clips("train"))
    seen = build_source("fsdd", **args)  # the default: indices 0-4 of the training speakers
    assert speakers_of(seen.clips("val")) == speakers_of(seen.clips("train")) == {"george", "jackson", "theo"}


def test_fsdd_validation_speaker_errors_name_the_fix(fsdd_root):
    args = {"root": str(fsdd_root), "data_dir": "x", "url": "x"}
    with pytest.raises(UserError, match="val_speaker=jackson: choose seen, auto or one of \\['george'\\]"):
        build_source("fsdd", **args, split="speaker=jackson", val_speaker="jackson")
    with pytest.raises(UserError, match="data.val_speaker=george needs a speaker split"):
        build_source("fsdd", **args, val_speaker="george")


def test_folder_split_by_ratio_is_seeded_and_disjoint(tmp_path):
    for name in ("dog", "cat"):
        for i in range(10):
            write_wav(tmp_path / name / f"{i}.wav", np.zeros(800, np.float32), 8000)
    a = build_source("folder", root=str(tmp_path), val_ratio=0.2, test_ratio=0.2, split_seed=3)
    b = build_source("folder", root=str(tmp_path), val_ratio=0.2, test_ratio=0.2, split_seed=3)
    paths = {s: {c.path for c in a.clips(s)} for s in ("train", "val", "test")}
    assert [len(paths[s]) for s in ("train", "val", "test")] == [12, 4, 4]
    assert not (paths["train"] & paths["test"]) and not (paths["val"] & paths["test"])
    assert a.clips("test") == b.clips("test")
    assert a.class_names == ["cat", "dog"]
    other = build_source("folder", root=str(tmp_path), val_ratio=0.2, test_ratio=0.2, split_seed=4)
    assert other.clips("test") != a.clips("test")


def test_folder_split_does_not_follow_the_run_seed(tmp_path):
    for name in ("dog", "cat"):
        for i in range(10):
            write_wav(tmp_path / name / f"{i}.wav", np.zeros(800, np.float32), 8000)
    data = {"source": "folder", "root": str(tmp_path), "val_ratio": 0.2, "test_ratio": 0.2}
    tests = [AudioDataModule(dict(data), seed=seed).build_source().clips("test") for seed in (0, 1, 42)]
    assert tests[0] == tests[1] == tests[2]


def test_folder_split_by_list_files(tmp_path):
    for name in ("dog", "cat"):
        for i in range(3):
            write_wav(tmp_path / "audio" / name / f"{i}.wav", np.zeros(800, np.float32), 8000)
    lists = {}
    for split, index in (("train", 0), ("val", 1), ("test", 2)):
        lists[split] = tmp_path / f"{split}.txt"
        lists[split].write_text(f"dog/{index}.wav\ncat/{index}.wav\n")
    source = build_source("folder", root=str(tmp_path / "audio"), lists={k: str(v) for k, v in lists.items()})
    assert [c.path.endswith("2.wav") for c in source.clips("test")] == [True, True]
    lists["test"].write_text("bird/0.wav\n")
    with pytest.raises(UserError, match="bird/0.wav"):
        build_source("folder", root=str(tmp_path / "audio"), lists={k: str(v) for k, v in lists.items()})


def sc(root, labels, **kwargs):
    return build_source("speech_commands", root=str(root), data_dir="x", version="v0.02", url="x",
                        labels=labels, **kwargs)


def test_speech_commands_splits_follow_the_list_files(speech_commands_root):
    source = sc(speech_commands_root, "all")
    val = {c.path.split("sc/")[1] for c in source.clips("val")}
    listed = set((speech_commands_root / "validation_list.txt").read_text().split())
    assert val == listed
    train = {c.path for c in source.clips("train")}
    assert not train & {c.path for c in source.clips("test")}
    assert len(source.class_names) == 13


@pytest.mark.parametrize("labels, count", [("mini8", 8), ("digits", 10), ("kws12", 12)])
def test_speech_commands_label_sets(speech_commands_root, labels, count):
    source = sc(speech_commands_root, labels)
    assert len(source.class_names) == count
    assert all(0 <= c.label < count for c in source.clips("train"))


def test_kws12_adds_silence_and_unknown_at_the_configured_percentages(speech_commands_root):
    source = sc(speech_commands_root, "kws12", silence_percentage=50, unknown_percentage=25)
    clips = source.clips("train")
    names = [source.class_names[c.label] for c in clips]
    commands = sum(n not in (SILENCE, UNKNOWN) for n in names)
    assert names.count(UNKNOWN) == int(np.ceil(commands * 0.25))
    assert names.count(SILENCE) == int(np.ceil(commands * 0.5))
    silence = next(c for c in clips if source.class_names[c.label] == SILENCE)
    samples, rate = source.read(silence)
    assert "_background_noise_" in silence.path and len(samples) == rate


def test_speech_commands_root_without_lists_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="validation_list.txt"):
        sc(tmp_path, "kws12")
