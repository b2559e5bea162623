"""Batch samplers and a DataLoader that resume mid-epoch and shard across DDP ranks.

The datamodule hands whole batches of clip indices to the DataLoader as its
`sampler` (with `batch_size=None`). Lightning's automatic DistributedSampler
injection would wrap that batch sampler and re-create the loader, so the
trainer configs set `use_distributed_sampler: false` and `ShardedBatches`
shards by itself once `torch.distributed` is initialized:

- training: rank r takes batches r, r + W, r + 2W, ... of the epoch's batch
  order (the same on every rank: same generator seed); the shorter ranks
  repeat the epoch's first batches, so all ranks take the same number of
  optimizer steps (as DistributedSampler pads);
- evaluation: rank r takes clips r, r + W, ... of the sequential order, no
  padding, so synced metrics count each clip exactly once.

Resume: `ResumableDataLoader` implements `state_dict`/`load_state_dict`, the
protocol Lightning's fit loop saves in a checkpoint and restores before it
creates the epoch's iterator. The state is the shuffling generator's state at
the start of the epoch, its state after drawing the epoch's order, and how
many batches of the epoch were trained (`consumed`, which `audioclf.lit.resume.
ResumeState` binds to Lightning's batch progress; the loader's own count runs
ahead by the batches Lightning prefetches). On load, a mid-epoch state
replays the epoch's order and skips the trained batches; an end-of-epoch
state moves the generator past the finished epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader, Sampler


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardedBatches(Sampler[list[int]]):
    """This rank's share of a BatchSampler's batches, resumable mid-epoch (see the module doc)."""

    def __init__(self, batches: BatchSampler, train: bool):
        self.batches, self.train = batches, train
        self.epoch_start: torch.Tensor | None = None  # generator state before this epoch's draw
        self.epoch_drawn: torch.Tensor | None = None  # ... and after it
        self.yielded = 0
        self._replay: tuple[torch.Tensor | None, int] | None = None

    @property
    def generator(self) -> torch.Generator | None:
        return getattr(self.batches.sampler, "generator", None)

    def __len__(self) -> int:
        rank, size = world()
        if size == 1:
            return len(self.batches)
        if self.train:
            return math.ceil(len(self.batches) / size)
        clips = len(range(rank, len(self.batches.sampler), size))
        return math.ceil(clips / self.batches.batch_size)

    def _shard(self, batches: list[list[int]]) -> list[list[int]]:
        rank, size = world()
        if size == 1:
            return batches
        if self.train:
            padded = batches + batches[: len(self) * size - len(batches)]
            return padded[rank::size]
        clips = [i for batch in batches for i in batch][rank::size]
        step = self.batches.batch_size
        return [clips[i : i + step] for i in range(0, len(clips), step)]

    def __iter__(self) -> Iterator[list[int]]:
        generator, skip = self.generator, 0
        if self._replay is not None:
            state, skip = self._replay
            self._replay = None
            if generator is not None and state is not None:
                generator.set_state(state)
        self.epoch_start = generator.get_state() if generator is not None else None
        batches = self._shard(list(self.batches))
        self.epoch_drawn = generator.get_state() if generator is not None else None
        self.yielded = skip
        for batch in batches[skip:]:
            self.yielded += 1
            yield batch

    def state_dict(self, consumed: int) -> dict[str, Any]:
        return {
            "epoch_start": self.epoch_start,
            "epoch_drawn": self.epoch_drawn,
            "consumed": consumed,
            "length": len(self),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if state["consumed"] >= state["length"]:  # the epoch was finished: draw the next one
            if self.generator is not None and state["epoch_drawn"] is not None:
                self.generator.set_state(state["epoch_drawn"])
            self._replay = None
        else:
            self._replay = (state["epoch_start"], int(state["consumed"]))


class ResumableDataLoader(DataLoader):
    """A DataLoader over `ShardedBatches` that Lightning can checkpoint and resume mid-epoch.

    Worker base seeds come from the loader's own generator, not the global RNG,
    so creating an iterator leaves the global random stream (augmentation,
    dropout) where a resumed run restores it.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("generator", torch.Generator().manual_seed(0))
        super().__init__(*args, **kwargs)
        self.consumed: Callable[[], int] | None = None  # bound by audioclf.lit.resume.ResumeState

    def state_dict(self) -> dict[str, Any]:
        if not isinstance(self.sampler, ShardedBatches) or not self.sampler.train:
            return {}
        consumed = self.consumed() if self.consumed is not None else self.sampler.yielded
        return self.sampler.state_dict(consumed)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if isinstance(self.sampler, ShardedBatches) and self.sampler.train:
            self.sampler.load_state_dict(state)


def draw_weights(labels: np.ndarray, source_ids: np.ndarray | None = None, shares: list[float] | None = None,
                 balanced: bool = False) -> torch.Tensor | None:
    """Each training clip's probability of a draw: source s (a mix's part) takes shares[s] / sum of
    the shares present, split evenly over its clips, or over its classes first when `balanced`
    (each class equally likely). None when neither applies: a plain shuffle."""
    if shares is None and not balanced:
        return None
    labels = torch.as_tensor(np.asarray(labels))
    groups = torch.zeros_like(labels) if shares is None else torch.as_tensor(np.asarray(source_ids))
    shares = [1.0] if shares is None else shares
    weights = torch.zeros(len(labels), dtype=torch.float64)
    for group in torch.unique(groups).tolist():
        rows = groups == group
        within = torch.ones(int(rows.sum()), dtype=torch.float64)
        if balanced:
            within = 1.0 / torch.bincount(labels[rows]).double()[labels[rows]]
        weights[rows] = shares[group] * within / within.sum()
    return weights / weights.sum()
