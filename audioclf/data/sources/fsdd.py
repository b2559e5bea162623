"""Free Spoken Digit Dataset: `{digit}_{speaker}_{index}.wav`, 8 kHz mono.

Splits: `official` puts recording indices 0-4 in test (as the dataset's README
says), 5-9 in validation and the rest in train. `speaker=<name>` holds that
speaker out entirely as the test set (unseen-speaker evaluation); `val_speaker`
says who validates: `seen` (indices 0-4 of the training speakers: val/acc then
measures seen voices), `auto` (the speaker after the test one in name order, held
out whole, so that val/acc, early stopping and test_ckpt=best see an unseen voice;
under the official split, where no speaker is held out, the same as `seen`) or a
speaker's name.
"""

from __future__ import annotations

import re
from pathlib import Path

from audioclf.data.download import fetch_and_extract
from audioclf.data.sources.base import ClipRef, Source
from audioclf.errors import UserError

NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
DIGITS = [str(d) for d in range(10)]


class FSDDSource(Source):
    name = "fsdd"

    def __init__(
        self,
        root: str | None,
        data_dir: str,
        url: str,
        sha256: str | None = None,
        split: str = "official",
        download: bool = True,
        val_speaker: str = "seen",
    ):
        self.class_names = list(DIGITS)
        self.recordings = locate_recordings(root, Path(data_dir) / "fsdd", url, sha256, download)
        self.files = parse_names(self.recordings)
        self.split_name = split
        self._assign = split_rule(split, {speaker for _, speaker, _ in self.files.values()}, val_speaker)

    def clips(self, split: str) -> list[ClipRef]:
        return [
            ClipRef(str(path), int(digit))
            for path, (digit, speaker, index) in sorted(self.files.items())
            if self._assign(speaker, index) == split
        ]


def locate_recordings(root, data_dir: Path, url: str, sha256, download: bool) -> Path:
    if root:
        candidates = [Path(root).expanduser(), Path(root).expanduser() / "recordings"]
        for folder in candidates:
            if folder.is_dir() and any(NAME.match(p.name) for p in folder.iterdir()):
                return folder
        raise UserError(
            f"data.root={root} holds no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav): "
            "point it at the recordings/ folder, or unset it to download"
        )
    existing = list(data_dir.glob("*/recordings")) + list(data_dir.glob("recordings"))
    if existing:
        return existing[0]
    if not download:
        raise UserError(f"no FSDD copy under {data_dir}: set data.root or data.download=true")
    fetch_and_extract(url, data_dir, sha256)
    found = list(data_dir.glob("*/recordings")) + list(data_dir.glob("recordings"))
    if not found:
        raise UserError(f"the archive from {url} has no recordings/ folder: check data.url")
    return found[0]


def parse_names(folder: Path) -> dict[Path, tuple[str, str, int]]:
    files = {}
    for path in folder.iterdir():
        match = NAME.match(path.name)
        if match:
            digit, speaker, index = match.groups()
            files[path] = (digit, speaker, int(index))
    return files


def split_rule(split: str, speakers: set[str], val_speaker: str = "seen"):
    if split == "official":
        if val_speaker not in ("seen", "auto"):  # auto: a held-out speaker where the split holds one out
            raise UserError(f"data.val_speaker={val_speaker} needs a speaker split: add "
                            "\"data.split='speaker=<name>'\" or drop data.val_speaker")
        return lambda speaker, index: "test" if index < 5 else "val" if index < 10 else "train"
    if split.startswith("speaker="):
        held_out = split.split("=", 1)[1]
        if held_out not in speakers:
            raise UserError(
                f"data.split={split}: no speaker {held_out!r}; choose one of {sorted(speakers)}"
            )
        validator = validation_speaker(val_speaker, held_out, speakers)
        if validator is None:
            return lambda speaker, index: "test" if speaker == held_out else "val" if index < 5 else "train"
        return lambda speaker, index: "test" if speaker == held_out else "val" if speaker == validator else "train"
    raise UserError(f"data.split={split} is unknown: use 'official' or 'speaker=<name>'")


def validation_speaker(choice: str, held_out: str, speakers: set[str]) -> str | None:
    """The speaker held out for validation; None for `seen` (the training speakers' indices 0-4)."""
    if choice == "seen":
        return None
    others = sorted(speakers - {held_out})
    if choice == "auto":
        return min((name for name in others if name > held_out), default=others[0])
    if choice not in others:
        raise UserError(f"data.val_speaker={choice}: choose seen, auto or one of {others} (not the test speaker)")
    return choice
