"""Google Speech Commands v0.01 / v0.02 under two test protocols.

Label sets: `all` (every word), `kws12` (ten commands + `_silence_` +
`_unknown_`, the benchmark's 12-way task), `mini8` (the TensorFlow tutorial's
eight words) and `digits` (zero..nine).

Protocols (`protocol`):

- `lists`: train, val and test are split by validation_list.txt and
  testing_list.txt (as kws_streaming and KWT do).
- `canonical`: test is the separate speech_commands_test_set_<version>
  archive, exactly its 10 command folders plus its own `_silence_` and
  `_unknown_` folders, labelled by folder (kws12 only). Train and val are
  split from the main archive as under `lists`; clips in testing_list.txt are
  in neither.

For kws12, the splits taken from the main archive get `_unknown_` and
`_silence_` clips added:

- `unknown`: `share` draws unknown_percentage % of the split's command-clip
  count from the other words; `all` takes every clip of every other word;
  `unknown_max` caps either.
- `silence`: silence_percentage % of the command-clip count, as `noise`
  (1 s crops of `_background_noise_`) or `zeros` (all-zero training clips with
  no file; training's `fresh_silence` augmentation replaces them by noise at a
  drawn volume; val and test keep noise crops, so they never score digital
  silence). The default is `noise` under `lists` and `zeros` under `canonical`.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import soundfile as sf

from audioclf.data.download import fetch_and_extract
from audioclf.data.io import read_audio, resample
from audioclf.data.sources.base import SPLITS, ClipRef, Source
from audioclf.errors import UserError

# sha256 of the published archives, as torchaudio's dataset code pins them
# (torchaudio/datasets/speechcommands.py); checked after download when data.sha256 is null.
# The test-set archives (protocol=canonical) have no published checksum: data.test_sha256.
PUBLISHED_SHA256 = {
    "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz":
        "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
    "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz":
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
}

NOISE_DIR = "_background_noise_"
SILENCE, UNKNOWN = "_silence_", "_unknown_"
COMMANDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
LABEL_SETS = {
    "kws12": COMMANDS,
    "mini8": ["down", "go", "left", "no", "right", "stop", "up", "yes"],
    "digits": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
}
TEST_SET_URL = "http://download.tensorflow.org/data/speech_commands_test_set_{version}.tar.gz"
RATE = 16000
ZEROS = ""  # the path of an all-zero `_silence_` clip, which has no file


class SpeechCommandsSource(Source):
    name = "speech_commands"

    def __init__(
        self,
        root: str | None,
        data_dir: str,
        version: str,
        url: str,
        sha256: str | None = None,
        labels: str = "kws12",
        silence_percentage: float = 10.0,
        unknown_percentage: float = 10.0,
        split_seed: int = 0,
        download: bool = True,
        protocol: str = "lists",
        unknown: str = "share",
        unknown_max: int | None = None,
        silence: str | None = None,
        test_root: str | None = None,
        test_url: str | None = None,
        test_sha256: str | None = None,
    ):
        if labels not in ("all", *LABEL_SETS):
            raise UserError(f"data.labels={labels} is unknown: use all, kws12, mini8 or digits")
        if protocol not in ("lists", "canonical"):
            raise UserError(f"data.protocol={protocol} is unknown: use lists or canonical")
        if protocol == "canonical" and labels != "kws12":
            raise UserError(
                f"data.protocol=canonical tests on the 12 kws classes, not data.labels={labels}: "
                "set data.labels=kws12 or data.protocol=lists"
            )
        silence = silence or ("zeros" if protocol == "canonical" else "noise")
        if unknown not in ("share", "all"):
            raise UserError(f"data.unknown={unknown} is unknown: use share or all")
        if silence not in ("noise", "zeros"):
            raise UserError(f"data.silence={silence} is unknown: use noise or zeros")
        if unknown_max is not None and unknown_max < 0:
            raise UserError(f"data.unknown_max={unknown_max} is negative: use a count >= 0 or null")
        data_dir = Path(data_dir)
        self.root = locate(root, data_dir / f"speech_commands_{version}", url, sha256, download)
        self.labels, self.split_seed = labels, split_seed
        self.silence_pct, self.unknown_pct = silence_percentage, unknown_percentage
        self.unknown, self.unknown_max, self.silence = unknown, unknown_max, silence
        words = sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name[0] != "_")
        if labels == "all":
            self.class_names = words
        elif labels == "kws12":
            self.class_names = [*COMMANDS, SILENCE, UNKNOWN]
        else:
            self.class_names = list(LABEL_SETS[labels])
        self.words = words
        self._split_files = split_by_lists(self.root, words)
        self.test_root = None
        if protocol == "canonical":
            self.test_root = locate_test_set(
                test_root, data_dir / f"speech_commands_test_set_{version}",
                test_url or TEST_SET_URL.format(version=version), test_sha256, download,
                self.class_names,
            )

    def noise_files(self) -> list[Path]:
        folder = self.root / NOISE_DIR
        return sorted(folder.glob("*.wav")) if folder.is_dir() else []

    def noise_recordings(self, sample_rate: int) -> list[np.ndarray]:
        return [resample(*read_audio(path), sample_rate) for path in self.noise_files()]

    def read(self, clip: ClipRef) -> tuple[np.ndarray, int]:
        if clip.path == ZEROS:
            return np.zeros(round(clip.duration * RATE), np.float32), RATE
        return super().read(clip)

    def clips(self, split: str) -> list[ClipRef]:
        index = {name: i for i, name in enumerate(self.class_names)}
        if split == "test" and self.test_root is not None:
            return [ClipRef(str(path), index[name]) for name in self.class_names
                    for path in sorted((self.test_root / name).glob("*.wav"))]
        files = self._split_files[split]
        clips = [ClipRef(str(p), index[p.parent.name]) for p in files if p.parent.name in index]
        if self.labels != "kws12":
            return clips
        rng = random.Random(f"{self.split_seed}:{split}")  # not the run seed: every run tests the same clips
        others = [p for p in files if p.parent.name not in index]
        known = len(clips)  # both percentages are of the command clips, as in kws_streaming
        n_unknown = len(others)
        if self.unknown == "share":
            n_unknown = min(n_unknown, math.ceil(known * self.unknown_pct / 100))
        if self.unknown_max is not None:
            n_unknown = min(n_unknown, int(self.unknown_max))
        clips += [ClipRef(str(p), index[UNKNOWN]) for p in rng.sample(others, n_unknown)]
        n_silence = math.ceil(known * self.silence_pct / 100)
        if self.silence == "zeros" and split == "train":  # val scores real noise, not digital silence
            clips += [ClipRef(ZEROS, index[SILENCE], 0.0, 1.0)] * n_silence
        else:
            clips += self._silence_clips(n_silence, index[SILENCE], rng)
        return clips

    def _silence_clips(self, count: int, label: int, rng: random.Random) -> list[ClipRef]:
        noises = [(p, sf.info(str(p)).duration) for p in self.noise_files()]
        noises = [(p, seconds) for p, seconds in noises if seconds > 1.0]
        if count and not noises:
            raise UserError(
                f"{self.root / NOISE_DIR} has no noise WAVs longer than 1 s to cut "
                "_silence_ clips from: restore the folder or set data.silence_percentage=0"
            )
        crops = []
        for _ in range(count):
            path, seconds = rng.choice(noises)
            crops.append(ClipRef(str(path), label, round(rng.uniform(0, seconds - 1.0), 3), 1.0))
        return crops

    def fingerprint(self) -> str:
        return f"speech_commands:{self.labels}:{self.split_seed}"


def locate(root, data_dir: Path, url: str, sha256, download: bool) -> Path:
    if root:
        root = Path(root).expanduser()
        if not (root / "validation_list.txt").is_file():
            raise UserError(
                f"data.root={root} is not a Speech Commands copy (no validation_list.txt): "
                "point it at the extracted dataset, or unset it to download"
            )
        return root
    if (data_dir / "validation_list.txt").is_file():
        return data_dir
    if not download:
        raise UserError(
            f"no Speech Commands copy in {data_dir}: set data.root=<your copy> or data.download=true"
        )
    fetch_and_extract(url, data_dir, sha256 or PUBLISHED_SHA256.get(url))
    if not (data_dir / "validation_list.txt").is_file():
        raise UserError(f"the archive from {url} has no validation_list.txt: check data.url")
    return data_dir


def locate_test_set(test_root, folder: Path, url: str, sha256, download: bool,
                    class_names: list[str]) -> Path:
    """The extracted test-set archive: data.test_root, or a copy in `folder`, downloaded if need be."""
    if test_root:
        folder = Path(test_root).expanduser()
        if problem := problem_with_test_set(folder, class_names):
            raise UserError(
                f"data.test_root={folder} {problem}: point it at the extracted "
                "speech_commands_test_set archive, or unset it to download"
            )
        return folder
    if not problem_with_test_set(folder, class_names):
        return folder
    if not download:
        raise UserError(
            f"no Speech Commands test set in {folder}: "
            "set data.test_root=<your copy> or data.download=true"
        )
    fetch_and_extract(url, folder, sha256)
    if problem := problem_with_test_set(folder, class_names):
        raise UserError(
            f"the archive from data.test_url={url} {problem}: "
            "point data.test_url at a speech_commands_test_set archive"
        )
    return folder


def problem_with_test_set(folder: Path, class_names: list[str]) -> str | None:
    """What keeps `folder` from being a test set with a folder per class, or None."""
    if not folder.is_dir():
        return "does not exist"
    missing = [name for name in class_names if not (folder / name).is_dir()]
    if missing:
        return f"has no {', '.join(missing)} folder" + "s" * (len(missing) > 1)
    return None


def split_by_lists(root: Path, words: list[str]) -> dict[str, list[Path]]:
    """Train is every clip in neither validation_list.txt nor testing_list.txt."""
    listed = {}
    for split, name in (("val", "validation_list.txt"), ("test", "testing_list.txt")):
        lines = (root / name).read_text().split()
        listed[split] = {line.strip() for line in lines if line.strip()}
    splits = {split: [] for split in SPLITS}
    for word in words:
        for path in sorted((root / word).glob("*.wav")):
            relative = f"{word}/{path.name}"
            split = "val" if relative in listed["val"] else "test" if relative in listed["test"] else "train"
            splits[split].append(path)
    return splits
