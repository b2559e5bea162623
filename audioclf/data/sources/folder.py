"""Any tree of `class_name/*.wav|flac`, split by a seeded ratio or by list files."""

from __future__ import annotations

import random
from pathlib import Path

from audioclf.data.io import AUDIO_SUFFIXES
from audioclf.data.sources.base import SPLITS, ClipRef, Source, require_dir
from audioclf.errors import UserError


class FolderSource(Source):
    name = "folder"

    def __init__(
        self,
        root: str | None,
        val_ratio: float = 0.1,
        test_ratio: float = 0.1,
        split_seed: int = 0,
        lists: dict | None = None,
    ):
        if not root:
            raise UserError("data=folder needs data.root=<folder with one subfolder per class>")
        self.root = require_dir(root, "data.root", "point it at a folder of class subfolders")
        by_class = {
            d.name: sorted(p for p in d.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            for d in sorted(self.root.iterdir())
            if d.is_dir() and not d.name.startswith((".", "_"))
        }
        by_class = {name: files for name, files in by_class.items() if files}
        if len(by_class) < 2:
            raise UserError(
                f"data.root={self.root} needs at least two class subfolders holding "
                f"{'/'.join(AUDIO_SUFFIXES)} files, found {len(by_class)}"
            )
        self.class_names = list(by_class)
        lists = {k: v for k, v in (lists or {}).items() if v}
        if lists:
            self._splits = self._from_lists(lists)
        else:
            self._splits = self._by_ratio(by_class, val_ratio, test_ratio, split_seed)

    def clips(self, split: str) -> list[ClipRef]:
        return self._splits[split]

    def _by_ratio(self, by_class, val_ratio: float, test_ratio: float, seed: int):
        splits = {split: [] for split in SPLITS}
        for label, files in enumerate(by_class.values()):
            files = list(files)
            random.Random(f"{seed}:{label}").shuffle(files)
            n_test = round(len(files) * test_ratio)
            n_val = round(len(files) * val_ratio)
            parts = {"test": files[:n_test], "val": files[n_test : n_test + n_val]}
            parts["train"] = files[n_test + n_val :]
            for split, part in parts.items():
                splits[split] += [ClipRef(str(p), label) for p in sorted(part)]
        return splits

    def _from_lists(self, lists: dict) -> dict[str, list[ClipRef]]:
        """Each list file names clips relative to root, one per line, as `class/file.wav`."""
        index = {name: i for i, name in enumerate(self.class_names)}
        splits = {}
        for split in SPLITS:
            if split not in lists:
                raise UserError(f"data.lists.{split} is missing: give all of train, val and test")
            list_file = Path(lists[split]).expanduser()
            if not list_file.is_file():
                raise UserError(f"data.lists.{split}={list_file} does not exist: fix the path")
            splits[split] = []
            for line in list_file.read_text().splitlines():
                if not line.strip():
                    continue
                relative = Path(line.strip())
                if relative.parts[0] not in index or not (self.root / relative).is_file():
                    raise UserError(
                        f"{list_file} names {relative}, which is not a class file under "
                        f"{self.root}: fix the list"
                    )
                splits[split].append(ClipRef(str(self.root / relative), index[relative.parts[0]]))
        return splits
