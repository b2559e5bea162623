"""Several datasets as one: `data=digits_mix` trains on FSDD's and Speech Commands' spoken digits.

Each part is a data config of its own (`source:` and that source's keys) and keeps its own split
rules, so no Speech Commands test speaker and no FSDD test recording reaches training. A part's
class names become the mix's `classes` through its `map` (a name the map does not list keeps its
own name when the mix has that class; any other class of the part is left out). Clips are read by
their own source, at their own rate; the clip bank resamples them once to the model's.
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
        for part, spec in parts.items():
            args = dict(spec)
            name = args.pop("source", None)
            if name not in SOURCES:
                raise UserError(f"data.parts.{part}.source={name} is unknown: choose one of {', '.join(SOURCES)}")
            mapping = {str(key): str(value) for key, value in (args.pop("map", None) or {}).items()}
            accepted = inspect.signature(SOURCES[name].__init__).parameters
            args = {key: value for key, value in args.items() if key in accepted}
            args.update({key: value for key, value in (("data_dir", data_dir), ("seed", seed)) if key in accepted})
            self.parts[part] = build_source(name, **args)
            self.label_maps[part] = self.label_map(part, self.parts[part].class_names, mapping)
        self.owner: dict[ClipRef, tuple[Source, ClipRef]] = {}  # the mix's clip -> its part and own clip

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
        for part, source in self.parts.items():
            labels = self.label_maps[part]
            for clip in source.clips(split):
                if clip.label in labels:
                    mine = ClipRef(clip.path, labels[clip.label], clip.start, clip.duration)
                    self.owner[mine] = (source, clip)
                    mixed.append(mine)
        return mixed

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
