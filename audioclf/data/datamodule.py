"""LightningDataModule over clip banks: whole batches by fancy indexing, features on device."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    WeightedRandomSampler,
)

from audioclf.audio.augment import (
    SEGMENT_KEYS,
    STREAM_KEYS,
    NoiseBank,
    SegmentWindows,
    StreamWindows,
    WaveAugment,
    check_one_loss_change,
    waveform_args,
)
from audioclf.data.clips import ClipBank, load_or_build
from audioclf.data.io import read_noise_folder
from audioclf.data.sampling import ResumableDataLoader, ShardedBatches, draw_weights
from audioclf.data.sources import SOURCES, SPLITS, Source, build_source

log = logging.getLogger(__name__)
LOADER_KEYS = ("sample_rate", "clip_seconds", "batch_size", "eval_batch_size", "num_workers", "pin_memory",
               "skip_bad_files", "balanced_sampler")


class BankDataset(Dataset):
    """Indexed by a list of clip indices; returns a whole (int16 waves, labels) batch."""

    def __init__(self, bank: ClipBank):
        self.bank = bank

    def __len__(self) -> int:
        return len(self.bank)

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        order = np.sort(np.asarray(indices))  # sorted reads are sequential on a memory map
        return torch.from_numpy(self.bank.waves[order]), torch.from_numpy(self.bank.labels[order])


class AudioDataModule(L.LightningDataModule):
    def __init__(self, data: dict[str, Any], augment: dict[str, Any] | None = None,
                 data_dir: str = "data", cache_dir: str | None = ".cache/clips", seed: int = 0,
                 sample_rate: int | None = None):
        """`sample_rate`: the rate the model wants (clips are resampled to it once, when the clip
        bank is built); None keeps `data["sample_rate"]`, the data's own."""
        super().__init__()
        data = dict(data)
        self.source_name = data.pop("source")
        self.loader = {key: data.pop(key) for key in LOADER_KEYS if key in data}
        self.source_args = data
        self.augment_cfg = dict(augment or {})
        self.data_dir, self.cache_dir, self.seed = data_dir, cache_dir, seed
        self.sample_rate = int(sample_rate or self.loader.get("sample_rate", 16000))
        self.num_samples = int(round(self.loader.get("clip_seconds", 1.0) * self.sample_rate))
        self.source: Source | None = None
        self.banks: dict[str, ClipBank] = {}
        self.augment: WaveAugment | None = None
        self.windows: StreamWindows | None = None  # augment.stream_*: clips made to look like stream windows
        self.segments: SegmentWindows | None = None  # augment.max_pool_*: the max-pooling loss's segments

    def build_source(self) -> Source:
        args = dict(self.source_args)
        accepted = inspect.signature(SOURCES.get(self.source_name, Source).__init__).parameters
        if "data_dir" in accepted:
            args["data_dir"] = self.data_dir
        if "seed" in accepted:
            args.setdefault("seed", self.seed)
        return build_source(self.source_name, **args)

    def prepare_data(self) -> None:
        """Build the source (which downloads the data when it is missing) once; setup reuses it."""
        if self.source is None:
            self.source = self.build_source()

    def setup(self, stage: str | None = None) -> None:
        if self.source is None:
            self.source = self.build_source()
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ()}
        for split in needed.get(stage, SPLITS):
            if split not in self.banks:
                self.banks[split] = load_or_build(
                    self.source, split, self.sample_rate, self.num_samples, self.cache_dir,
                    skip_bad_files=bool(self.loader.get("skip_bad_files", False)),
                )
        if "train" in self.banks and self.augment is None:
            self.build_training_transforms()

    def build_training_transforms(self) -> None:
        """The training batches' transforms from the augment config: segments first (the noise bank's
        crops must cover a segment), then the waveform augmentation and the stream windows."""
        self.segments = self.build_segments()
        self.augment, self.windows = self.build_augment(), self.build_windows()

    def build_augment(self) -> WaveAugment:
        cfg = waveform_args(self.augment_cfg)
        noise_dir = cfg.pop("noise_dir", None)
        names = list(self.source.class_names)
        silence = names.index("_silence_") if "_silence_" in names else None
        bank, length = None, self.segments.segment_samples if self.segments else self.num_samples
        if cfg.get("noise_prob", 0) > 0 or (cfg.get("fresh_silence") and silence is not None):
            if noise_dir is not None:
                folder = Path(noise_dir).expanduser()
                recordings = read_noise_folder(folder, self.sample_rate)
                bank = NoiseBank.from_recordings(recordings, length, f"noise_dir={folder}")
            elif recordings := self.source.noise_recordings(self.sample_rate):
                bank = NoiseBank.from_recordings(recordings, length, f"data={self.source.name}")
            else:
                log.warning(
                    "augment.noise_prob=%s but data=%s ships no noise: set augment.noise_dir "
                    "to mix background noise", cfg["noise_prob"], self.source.name,
                )
        return WaveAugment(self.sample_rate, noise_bank=bank, silence_label=silence, **cfg)

    def build_windows(self) -> StreamWindows | None:
        """The label-changing part of the augmentation (augment.stream_*), or None when it is off."""
        cfg = {key[len("stream_"):]: self.augment_cfg[key] for key in STREAM_KEYS if key in self.augment_cfg}
        names = list(self.source.class_names)
        keywords = [i for i, name in enumerate(names) if not name.startswith("_")]
        unknown = names.index("_unknown_") if "_unknown_" in names else None
        windows = StreamWindows(self.sample_rate, keywords, unknown, **cfg)
        return windows if windows.active else None

    def build_segments(self) -> SegmentWindows | None:
        """The max-pooling loss's training segments (augment.max_pool_*), or None when it is off."""
        cfg = {key[len("max_pool_"):]: self.augment_cfg[key] for key in SEGMENT_KEYS if key in self.augment_cfg}
        segments = SegmentWindows(self.num_samples, self.sample_rate, **cfg)
        check_one_loss_change(segments.count, self.augment_cfg.get("mixup_alpha") or 0)
        return segments if segments.active else None

    @property
    def class_names(self) -> list[str]:
        if self.source is None:
            self.source = self.build_source()
        return list(self.source.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = BankDataset(self.banks[split])
        generator = torch.Generator().manual_seed(self.seed)
        bank = self.banks[split]
        weights = draw_weights(bank.labels, bank.source_ids, self.source.source_weights,
                               bool(self.loader.get("balanced_sampler"))) if shuffle else None
        if weights is not None:
            order = WeightedRandomSampler(weights, len(weights), generator=generator)
        elif shuffle:
            order = RandomSampler(dataset, generator=generator)
        else:
            order = SequentialSampler(dataset)
        workers = int(self.loader.get("num_workers", 0))
        batches = BatchSampler(order, self.batch_size(train=shuffle), drop_last=False)
        return ResumableDataLoader(  # this rank's shard under DDP; resumable mid-epoch (sampling.py)
            dataset,
            sampler=ShardedBatches(batches, train=shuffle),
            batch_size=None,
            num_workers=workers,
            pin_memory=bool(self.loader.get("pin_memory", False)),
            persistent_workers=workers > 0,
        )

    def batch_size(self, train: bool) -> int:
        """Validation and test batches: `eval_batch_size` (no gradients, so larger is cheap);
        configs from before it existed evaluate with the training batch size."""
        size = self.loader.get("batch_size", 64)
        return int(size if train else self.loader.get("eval_batch_size") or size)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        waves, labels = batch
        waves = waves.float() / 32768
        training = self.trainer is not None and self.trainer.training
        if training and self.segments is not None:
            waves = self.segments.place(waves)
        if training and self.windows is not None:
            waves, labels = self.windows.to(waves.device)(waves, labels)
        if training and self.augment is not None:
            waves = self.augment.to(waves.device)(waves, labels)
        if training and self.segments is not None:
            waves = self.segments.cut(waves)  # (B * windows, clip): the module pools the loss over each B's windows
        return waves, labels
