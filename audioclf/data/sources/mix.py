"""Several datasets as one: `data=digits_mix` trains on FSDD's and Speech Commands' spoken digits.

Each part is a data config of its own (`source:` and that source's keys) and keeps its own split
rules, so no Speech Commands test speaker and no FSDD test recording reaches training. A part's
class names become the mix's `classes` through its `map` (a name the map does not list keeps its
own name when the mix has that class; any other class of the part is left out). Clips are read by
their own source, at their own rate; the clip bank resamples them once to the model's.

A part's `feeds` lists the mix splits it adds clips to (default all three; [train] trains on it
and validates and tests on the other parts only). A part's `weight` sets its share of the training
draws (every part then needs one): with weights 1 and 1, half of each epoch's clips are FSDD's and
half Speech Commands', whatever their counts; each part's clips are told apart by the clip bank's
`source_ids`.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from audioclf.data.sources.base import ClipRef, Source
from audioclf.errors import UserError


class MixSource(Source):
    name = "mix"

    def __init__(self, parts: dict[str, dict[str, Any]], classes: list[str], data_dir: str = "data",
                 seed: int = 0):
        from audioclf.data.sources import SOURCES, build_source  # the registry imports this module

        if not parts:
            raise UserError("data.parts is empty: list at least one dataset, e.g. data=digits_mix")
        self.class_names = [str(name) for name in classes]
        self.parts: dict[str, Source] = {}
        self.label_maps: dict[str, dict[int, int]] = {}
        self.feeds: dict[str, set[str]] = {}
        for part, spec in parts.items():
            args = dict(spec)
            name = args.pop("source", None)
            if name not in SOURCES:
                raise UserError(f"data.parts.{part}.source={name} is unknown: choose one of {', '.join(SOURCES)}")
            mapping = {str(key): str(value) for key, value in (args.pop("map", None) or {}).items()}
            args.pop("weight", None)
            self.feeds[part] = fed_splits(part, args.pop("feeds", None))
            accepted = inspect.signature(SOURCES[name].__init__).parameters
            args = {key: value for key, value in args.items() if key in accepted}
            args.update({key: value for key, value in (("data_dir", data_dir), ("seed", seed)) if key in accepted})
            self.parts[part] = build_source(name, **args)
            self.label_maps[part] = self.label_map(part, self.parts[part].class_names, mapping)
        self.source_weights = part_weights(parts)
        self.owner: dict[ClipRef, tuple[Source, ClipRef]] = {}  # the mix's clip -> its part and own clip
        self.part_index: dict[ClipRef, int] = {}

    def label_map(self, part: str, names: list[str], mapping: dict[str, str]) -> dict[int, int]:
        """The part's label index -> the mix's; a map entry naming no class of either is an error."""
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise UserError(f"data.parts.{part}.map maps {unknown}, which the part does not have: "
                            f"its classes are {names}")
        target = {name: index for index, name in enumerate(self.class_names)}
        bad = sorted(value for value in mapping.values() if value not in target)
        if bad:
            raise UserError(f"data.parts.{part}.map maps onto {bad}, not in data.classes {self.class_names}")
        renamed = [mapping.get(name, name) for name in names]
        found = {index: target[name] for index, name in enumerate(renamed) if name in target}
        if not found:
            raise UserError(f"data.parts.{part} has no class of data.classes: add a map, e.g. "
                            f"map: {{{names[0]}: {self.class_names[0]}}}")
        return found

    def clips(self, split: str) -> list[ClipRef]:
        mixed = []
        for index, (part, source) in enumerate(self.parts.items()):
            if split not in self.feeds[part]:
                continue
            labels = self.label_maps[part]
            for clip in source.clips(split):
                if clip.label in labels:
                    mine = ClipRef(clip.path, labels[clip.label], clip.start, clip.duration)
                    self.owner[mine] = (source, clip)
                    self.part_index[mine] = index
                    mixed.append(mine)
        return mixed

    def source_ids(self, clips: list[ClipRef]) -> np.ndarray:
        if any(clip not in self.part_index for clip in clips):
            self.clips_of_every_split()
        return np.array([self.part_index[clip] for clip in clips], dtype=np.int64)

    def read(self, clip: ClipRef) -> tuple[np.ndarray, int]:
        if clip not in self.owner:
            self.clips_of_every_split()
        source, own = self.owner[clip]
        return source.read(own)

    def clips_of_every_split(self) -> None:
        for split in ("train", "val", "test"):
            self.clips(split)

    def noise_recordings(self, sample_rate: int) -> list[np.ndarray]:
        return [noise for source in self.parts.values() for noise in source.noise_recordings(sample_rate)]

    def fingerprint(self) -> str:
        return "mix:" + ",".join(f"{part}={source.fingerprint()}" for part, source in self.parts.items())


def fed_splits(part: str, feeds) -> set[str]:
    """The mix splits a part adds its clips to: `feeds`, or all three."""
    if feeds is None:
        return {"train", "val", "test"}
    chosen = [feeds] if isinstance(feeds, str) else list(feeds)
    unknown = [name for name in chosen if name not in ("train", "val", "test")]
    if unknown or not chosen:
        raise UserError(f"data.parts.{part}.feeds={chosen}: list some of train, val, test, e.g. [train]")
    return set(chosen)


def part_weights(parts: dict[str, dict[str, Any]]) -> list[float] | None:
    """Each part's `weight` (its share of the training draws), or None when no part gives one."""
    weights = {part: spec.get("weight") for part, spec in parts.items()}
    if all(weight is None for weight in weights.values()):
        return None
    missing = [part for part, weight in weights.items() if weight is None]
    if missing:
        raise UserError(f"data.parts.{missing[0]}.weight is missing: give every part a weight "
                        f"(shares of the training draws, e.g. 1 each), or none")
    for part, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise UserError(f"data.parts.{part}.weight={weight} must be a number > 0: "
                            "its share of the training draws, e.g. 1")
    return [float(weight) for weight in weights.values()]
