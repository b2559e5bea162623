"""Speech Commands test protocols (lists | canonical) and the kws12 train/val composition.

The main fixture archive has 13 words (10 commands + cat, zero, one) x 6 clips: per word,
4 in train, 1 in validation_list.txt, 1 in testing_list.txt. The test-set archive has
2 clips per command, 3 in _silence_ and 4 in _unknown_.
"""

import hashlib
import tarfile
from collections import Counter

import numpy as np
import pytest
import torch

from audioclf.audio.augment import NoiseBank, WaveAugment
from audioclf.data.clips import load_or_build
from audioclf.data.datamodule import AudioDataModule
from audioclf.data.sources import build_source
from audioclf.data.sources.speech_commands import COMMANDS, SILENCE, UNKNOWN
from audioclf.errors import UserError
from audioclf.tasks.build import build_datamodule
from tests.conftest import compose_config, make_speech_commands, tone, write_wav

TEST_SET = {**{word: 2 for word in COMMANDS}, SILENCE: 3, UNKNOWN: 4}


def tarball(folder, archive):
    with tarfile.open(archive, "w:gz") as tf:
        for path in sorted(folder.rglob("*")):
            tf.add(path, arcname=str(path.relative_to(folder)))
    return archive


def make_test_set(root, counts=TEST_SET):
    rng = np.random.default_rng(2)
    for name, count in counts.items():
        for i in range(count):
            write_wav(root / name / f"{i:08x}_nohash_0.wav", tone(rng, 300 + 20 * i, 16000, 1.0), 16000)
    (root / "README.md").write_text("test set\n")
    return root


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("archives")
    main = tarball(make_speech_commands(tmp / "main", per_word=6), tmp / "speech_commands_v0.02.tar.gz")
    test = tarball(make_test_set(tmp / "test"), tmp / "speech_commands_test_set_v0.02.tar.gz")
    no_unknown = {k: v for k, v in TEST_SET.items() if k != UNKNOWN}
    broken = tarball(make_test_set(tmp / "broken", no_unknown), tmp / "broken_test_set.tar.gz")
    return {"main": main, "test": test, "broken": broken}


@pytest.fixture(scope="module")
def downloaded(archives, tmp_path_factory):
    """Both archives fetched from file:// URLs (with sha256) into one data_dir."""
    data_dir = tmp_path_factory.mktemp("data")
    source = sc(archives, data_dir, protocol="canonical",
                test_sha256=hashlib.sha256(archives["test"].read_bytes()).hexdigest())
    return data_dir, source


def sc(archives, data_dir, **kwargs):
    args = dict(root=None, data_dir=str(data_dir), version="v0.02", url=archives["main"].as_uri(),
                test_url=archives["test"].as_uri(), labels="kws12")
    return build_source("speech_commands", **{**args, **kwargs})


def counts(source, split):
    return Counter(source.class_names[clip.label] for clip in source.clips(split))


def expected(commands_each, unknown, silence):
    return Counter({**{word: commands_each for word in COMMANDS}, UNKNOWN: unknown, SILENCE: silence})


def test_download_puts_the_test_set_next_to_the_main_copy(downloaded, archives):
    data_dir, source = downloaded
    assert source.root == data_dir / "speech_commands_v0.02"
    assert source.test_root == data_dir / "speech_commands_test_set_v0.02"
    assert (source.test_root / "_silence_").is_dir() and not list(data_dir.glob("*.tar.gz"))
    again = sc(archives, data_dir, protocol="canonical", download=False, url="file:///gone.tar.gz",
               test_url="file:///gone.tar.gz")
    assert again.test_root == source.test_root  # the copies are reused, nothing downloaded


def test_lists_protocol_counts(downloaded, archives):
    source = sc(archives, downloaded[0])  # 4 train, 1 val, 1 test clip per word; 10 % shares
    assert counts(source, "train") == expected(4, unknown=4, silence=4)
    assert counts(source, "val") == expected(1, unknown=1, silence=1)
    assert counts(source, "test") == expected(1, unknown=1, silence=1)
    silence = [c for c in source.clips("train") if source.class_names[c.label] == SILENCE]
    assert all("_background_noise_" in c.path for c in silence)
    assert source.clips("train") == sc(archives, downloaded[0], protocol="lists").clips("train")


def test_canonical_protocol_counts_and_test_clips(downloaded):
    _, source = downloaded
    assert counts(source, "test") == Counter(TEST_SET)
    assert all(str(source.test_root) in c.path for c in source.clips("test"))
    assert counts(source, "train") == expected(4, unknown=4, silence=4)
    assert counts(source, "val") == expected(1, unknown=1, silence=1)
    testing_list = set((source.root / "testing_list.txt").read_text().split())
    used = {c.path.split("speech_commands_v0.02/")[1] for s in ("train", "val") for c in source.clips(s) if c.path}
    assert len(testing_list) == 13 and not used & testing_list


@pytest.mark.parametrize("unknown, cap, train, val", [
    ("share", None, 6, 2),  # ceil(15 % of 40) and ceil(15 % of 10) of 12 and 3 other-word clips
    ("all", None, 12, 3),
    ("all", 2, 2, 2),
    ("share", 5, 5, 2),
])
def test_unknown_share_all_and_cap(downloaded, archives, unknown, cap, train, val):
    source = sc(archives, downloaded[0], protocol="canonical", unknown=unknown, unknown_max=cap,
                unknown_percentage=15)
    assert counts(source, "train")[UNKNOWN] == train and counts(source, "val")[UNKNOWN] == val
    assert counts(source, "test")[UNKNOWN] == 4  # the test set is never recomposed


def test_zero_silence_clips_read_as_zeros_and_cache(downloaded, archives, tmp_path):
    source = sc(archives, downloaded[0], silence="zeros", silence_percentage=50)
    clips = source.clips("train")
    zeros = [c for c in clips if source.class_names[c.label] == SILENCE]
    assert len(zeros) == 20 and all(c.path == "" for c in zeros)
    val_silence = [c for c in source.clips("val") if source.class_names[c.label] == SILENCE]
    assert val_silence and all("_background_noise_" in c.path for c in val_silence)  # val scores real noise
    samples, rate = source.read(zeros[0])
    assert rate == 16000 and samples.shape == (16000,) and not samples.any()
    bank = load_or_build(source, "train", 8000, 8000, tmp_path)
    silent = bank.labels == source.class_names.index(SILENCE)
    assert silent.sum() == 20 and not np.asarray(bank.waves)[silent].any()
    assert np.abs(np.asarray(bank.waves)[~silent]).max(axis=1).min() > 0
    assert len(list(tmp_path.iterdir())) == 1
    load_or_build(source, "train", 8000, 8000, tmp_path)
    assert len(list(tmp_path.iterdir())) == 1  # the second build hit the cache
    noise = NoiseBank.from_recordings(source.noise_recordings(8000), 8000, "test")
    augment = WaveAugment(8000, noise_bank=noise, fresh_silence=True, silence_volume=(0.5, 1.0),
                          silence_label=source.class_names.index(SILENCE))
    waves = torch.from_numpy(np.array(bank.waves)).float() / 32768
    out = augment(waves, torch.from_numpy(bank.labels))
    assert (out[torch.from_numpy(silent)].abs().amax(dim=1) > 0).all()
    assert torch.equal(out[torch.from_numpy(~silent)], waves[torch.from_numpy(~silent)])


def test_canonical_config_reaches_the_source(downloaded, archives, tmp_path):
    cfg = compose_config(tmp_path, ["data=speech_commands", "data.protocol=canonical",
                                    f"data.test_root={downloaded[1].test_root}",
                                    f"data.root={downloaded[1].root}", "data.unknown=all"])
    datamodule = build_datamodule(cfg)
    source = datamodule.build_source()
    assert source.silence == "zeros" and source.unknown == "all"  # canonical's default silence
    assert counts(source, "test") == Counter(TEST_SET)


@pytest.mark.parametrize("kwargs, message", [
    (dict(protocol="foo"), "data.protocol=foo is unknown: use lists or canonical"),
    (dict(unknown="most"), "data.unknown=most is unknown: use share or all"),
    (dict(silence="hum"), "data.silence=hum is unknown: use noise or zeros"),
    (dict(protocol="canonical", labels="mini8"),
     "not data.labels=mini8: set data.labels=kws12 or data.protocol=lists"),
])
def test_bad_options_are_one_line_errors(tmp_path, archives, kwargs, message):
    with pytest.raises(UserError, match=message) as error:
        sc(archives, tmp_path, url="file:///never/fetched.tar.gz", **kwargs)
    assert "\n" not in str(error.value)


def test_test_set_problems_are_one_line_errors(downloaded, archives, tmp_path):
    root = str(downloaded[1].root)
    no_silence = make_test_set(tmp_path / "partial", {k: v for k, v in TEST_SET.items() if k != SILENCE})
    errors = [
        (dict(test_root=str(no_silence)), f"data.test_root={no_silence} has no _silence_ folder: point"),
        (dict(test_url=archives["broken"].as_uri(), data_dir=tmp_path / "d1"),
         "broken_test_set.tar.gz has no _unknown_ folder: point data.test_url at"),
        (dict(download=False, data_dir=tmp_path / "d2"),
         "no Speech Commands test set in .*d2/speech_commands_test_set_v0.02: "
         r"set data.test_root=<your copy> or data.download=true"),
    ]
    for kwargs, message in errors:
        data_dir = kwargs.pop("data_dir", tmp_path)
        with pytest.raises(UserError, match=message) as error:
            sc(archives, data_dir, root=root, protocol="canonical", **kwargs)
        assert "\n" not in str(error.value)


def test_kws12_shares_do_not_follow_the_run_seed(archives, tmp_path):
    """Every training seed and eval.py (seed 42) must score the same _unknown_/_silence_ clips;
    only data.split_seed picks another draw."""
    data = dict(source="speech_commands", root=None, version="v0.02", url=archives["main"].as_uri(),
                labels="kws12", protocol="lists", unknown_percentage=50.0)

    def test_clips(seed, **extra):
        module = AudioDataModule({**data, **extra}, data_dir=str(tmp_path), seed=seed)
        return [(clip.path, clip.start) for clip in module.build_source().clips("test")]

    assert test_clips(0) == test_clips(1) == test_clips(42)
    assert test_clips(0, split_seed=7) != test_clips(0)
