"""Data sources by name: each gives clip references per split and class names."""

from __future__ import annotations

from typing import Any

from audioclf.data.sources.base import SPLITS, ClipRef, Source
from audioclf.data.sources.folder import FolderSource
from audioclf.data.sources.fsdd import FSDDSource
from audioclf.data.sources.mix import MixSource
from audioclf.data.sources.speech_commands import SpeechCommandsSource
from audioclf.data.sources.synthetic import SyntheticSource
from audioclf.errors import UserError

SOURCES: dict[str, type[Source]] = {
    "speech_commands": SpeechCommandsSource,
    "fsdd": FSDDSource,
    "folder": FolderSource,
    "synthetic": SyntheticSource,
    "mix": MixSource,
}

__all__ = ["SOURCES", "SPLITS", "ClipRef", "Source", "build_source"]


def build_source(name: str, **kwargs: Any) -> Source:
    if name not in SOURCES:
        raise UserError(f"data.source={name} is unknown: choose one of {', '.join(SOURCES)}")
    return SOURCES[name](**kwargs)
