"""The full-size benchmark's tree: Speech Commands' layout and split rule, readable by the source."""

from __future__ import annotations

from audioclf.data.sources.speech_commands import SpeechCommandsSource
from tests.conftest import make_speech_commands
from tools.bench.full_size import make_tree, which_set


def test_the_split_rule_keeps_a_speaker_in_one_split_and_gives_about_ten_percent_each():
    speakers = [f"{i:08x}" for i in range(4000)]
    splits = [which_set(f"yes/{s}_nohash_0.wav") for s in speakers]
    assert all(which_set(f"no/{s}_nohash_3.wav") == split for s, split in zip(speakers, splits, strict=True))
    for name in ("validation", "testing"):
        assert 0.08 < splits.count(name) / len(splits) < 0.12, name


def test_a_tree_of_n_clips_is_read_as_speech_commands(tmp_path):
    sample = make_speech_commands(tmp_path / "sample", per_word=4)
    tree = tmp_path / "tree"
    listed = make_tree(sample, tree, clips=500)
    wavs = sorted(tree.glob("*/*.wav"))
    assert len([w for w in wavs if not w.parent.name.startswith("_")]) == 500
    assert all(w.stat().st_nlink > 1 for w in wavs)  # hard links to the sample's files, no copies
    for split in ("validation", "testing"):
        names = (tree / f"{split}_list.txt").read_text().split()
        assert len(names) == listed[split] and all(which_set(n) == split and (tree / n).is_file() for n in names)
    source = SpeechCommandsSource(root=str(tree), data_dir=str(tmp_path), version="v0.02", url="", labels="all",
                                  download=False)
    counts = {split: len(source.clips(split)) for split in ("train", "val", "test")}
    assert counts == {"train": 500 - listed["validation"] - listed["testing"], "val": listed["validation"],
                      "test": listed["testing"]}
