"""Labelled streams for keyword spotting from a split of a dataset (audioclf/streaming/streams.py).

audioclf-streams data.root=<Speech Commands copy> split=test count=4 minutes=4 [background=<folder>]

Writes `<split>_NN.wav` per stream and labels.csv (file,start_s,end_s,label; other words as
`_unknown_`) into `out` (default: <run dir>/streams), ready for
`audioclf-predict ckpt_path=... inputs=<out> stream=true labels=<out>/labels.csv`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from audioclf.config import check_override_types, to_dict
from audioclf.data.datamodule import AudioDataModule
from audioclf.data.io import AUDIO_SUFFIXES, list_audio_files, read_noise_folder
from audioclf.data.sources import Source
from audioclf.errors import UserError
from audioclf.streaming.streams import SILENCE, UNKNOWN, build_streams, write_streams
from audioclf.tasks.build import build_stream_recipe


def run(cfg: DictConfig) -> Path:
    check_override_types(cfg)
    recipe = build_stream_recipe(cfg)
    rate = int(cfg.data.sample_rate)  # no model here: the data's own rate
    # not build_datamodule: it asks cfg.features for the model's rate, and this config has no features group
    datamodule = AudioDataModule(to_dict(cfg.data), data_dir=cfg.paths.data_dir, cache_dir=cfg.paths.cache_dir,
                                 seed=cfg.seed)
    datamodule.prepare_data()
    source = datamodule.source
    if not any(source.class_names[clip.label] != SILENCE for clip in source.clips(cfg.split)):
        raise UserError(f"split={cfg.split} of data={source.name} has no word clips: "
                        "pick another split= or check data.root and its list files")
    background = background_recordings(cfg.get("background"), source, rate)
    streams = build_streams(source, cfg.split, rate, cfg.count, recipe, cfg.seed, background)
    folder = Path(cfg.out).expanduser() if cfg.get("out") else Path(cfg.paths.output_dir) / "streams"
    labels = write_streams(streams, folder, rate)
    print(summary(streams, rate, folder, labels, cfg.split))
    return labels


def background_recordings(folder: str | None, source: Source, rate: int) -> list[np.ndarray]:
    """The recordings under the words: those in `folder`, else the data's own background noise."""
    if folder is None:
        recordings = source.noise_recordings(rate)
        if not recordings:
            raise UserError(f"data={source.name} has no _background_noise_ recordings to lay the words on: "
                            "give background=<folder of recordings>")
        return recordings
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UserError(f"background={path} is not a directory: give a folder of recordings, "
                        "or background=null for the data's _background_noise_")
    if not list_audio_files(path):
        raise UserError(f"background={path} holds no {'/'.join(AUDIO_SUFFIXES)} file: "
                        "give a folder of recordings, or background=null for the data's _background_noise_")
    return read_noise_folder(path, rate)


def summary(streams: list, rate: int, folder: Path, labels: Path, split: str) -> str:
    minutes = [len(stream.samples) / rate / 60 for stream in streams]
    counts = Counter(label == UNKNOWN for stream in streams for _, _, label in stream.events)
    return (f"wrote {len(streams)} streams of the {split} split, {sum(minutes):.1f} min in all "
            f"({min(minutes):.2f}-{max(minutes):.2f} min each): {counts[False]} keywords and "
            f"{counts[True]} other words ({UNKNOWN})\n"
            f"audio: {folder}/{split}_NN.wav; labels: {labels}")
