"""What every data source provides: clip references per split and class names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audioclf.data.io import read_audio
from audioclf.errors import UserError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ClipRef:
    """One clip: a file (or a synthetic id), its label index, and where in the file it starts."""

    path: str
    label: int
    start: float = 0.0
    duration: float | None = None


class Source:
    """A dataset: `class_names`, `clips(split)`, and `read(clip)` for the clip bank."""

    name: str = "source"
    class_names: list[str]
    source_weights: list[float] | None = None  # a mix's training draw per part (source_ids); None: uniform

    def clips(self, split: str) -> list[ClipRef]:
        raise NotImplementedError

    def read(self, clip: ClipRef) -> tuple[np.ndarray, int]:
        return read_audio(clip.path, clip.start, clip.duration)

    def source_ids(self, clips: list[ClipRef]) -> np.ndarray | None:
        """Which part of a mix each clip comes from (an index into source_weights); None: one source."""
        return None

    def noise_recordings(self, sample_rate: int) -> list[np.ndarray]:
        """Background noise that ships with the dataset, for augmentation; none by default."""
        return []

    def fingerprint(self) -> str:
        """What, beyond the clip list, decides the decoded samples (for the cache key)."""
        return self.name


def require_dir(root: Path, what: str, fix: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"{what} {root} is not a directory: {fix}")
    return root
