"""Google Speech Commands v0.01 / v0.02, split by the dataset's own list files.

Label sets: `all` (every word), `kws12` (ten commands + `_silence_` +
`_unknown_`, the benchmark's 12-way task), `mini8` (the TensorFlow tutorial's
eight words) and `digits` (zero..nine).
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

NOISE_DIR = "_background_noise_"
SILENCE, UNKNOWN = "_silence_", "_unknown_"
COMMANDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
LABEL_SETS = {
    "kws12": COMMANDS,
    "mini8": ["down", "go", "left", "no", "right", "stop", "up", "yes"],
    "digits": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
}


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
        seed: int = 0,
        download: bool = True,
    ):
        if labels not in ("all", *LABEL_SETS):
            raise UserError(f"data.labels={labels} is unknown: use all, kws12, mini8 or digits")
        self.root = locate(root, Path(data_dir) / f"speech_commands_{version}", url, sha256, download)
        self.labels, self.seed = labels, seed
        self.silence_pct, self.unknown_pct = silence_percentage, unknown_percentage
        words = sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name[0] != "_")
        if labels == "all":
            self.class_names = words
        elif labels == "kws12":
            self.class_names = [*COMMANDS, SILENCE, UNKNOWN]
        else:
            self.class_names = list(LABEL_SETS[labels])
        self.words = words
        self._split_files = split_by_lists(self.root, words)

    def noise_files(self) -> list[Path]:
        folder = self.root / NOISE_DIR
        return sorted(folder.glob("*.wav")) if folder.is_dir() else []

    def noise_recordings(self, sample_rate: int) -> list[np.ndarray]:
        return [resample(*read_audio(path), sample_rate) for path in self.noise_files()]

    def clips(self, split: str) -> list[ClipRef]:
        index = {name: i for i, name in enumerate(self.class_names)}
        files = self._split_files[split]
        clips = [ClipRef(str(p), index[p.parent.name]) for p in files if p.parent.name in index]
        if self.labels != "kws12":
            return clips
        rng = random.Random(f"{self.seed}:{split}")
        others = [p for p in files if p.parent.name not in index]
        known = len(clips)  # both percentages are of the command clips, as in kws_streaming
        n_unknown = min(len(others), math.ceil(known * self.unknown_pct / 100))
        clips += [ClipRef(str(p), index[UNKNOWN]) for p in rng.sample(others, n_unknown)]
        n_silence = math.ceil(known * self.silence_pct / 100)
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
        return f"speech_commands:{self.labels}:{self.seed}"


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
    fetch_and_extract(url, data_dir, sha256)
    if not (data_dir / "validation_list.txt").is_file():
        raise UserError(f"the archive from {url} has no validation_list.txt: check data.url")
    return data_dir


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
