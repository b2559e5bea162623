"""Fault tolerance: atomic checkpoint files, mid-epoch `last.ckpt`, exact resume.

- `AtomicCheckpointIO` writes each checkpoint to a temporary file in the same
  folder, fsyncs it and renames it over the target (`os.replace`), so a kill
  during a save leaves the previous file or the new one, never half of one.
- `ModelCheckpoint` adds `last_every_n_train_steps`: also refresh `last.ckpt`
  every N optimizer steps, mid-epoch (the top-k checkpoints stay per epoch and
  the epoch-end save is never skipped because of it); and it refreshes
  `last.ckpt` at every epoch end, also when no top-k file was saved (Lightning
  2.5+ skips that, which leaves `last.ckpt` at the best epoch, not the latest). When a resumed run
  writes into a new run folder it keeps the best-score bookkeeping of the run
  it resumes, so "best" means the same as in an uninterrupted run.
- `ResumeState` saves the global random states (torch, numpy, python) with
  each checkpoint and puts them back right before the first resumed batch,
  and binds the train loader's `consumed` count to Lightning's batch progress
  (`audioclf.data.sampling`). With `trainer.deterministic=true` on CPU, a run
  killed mid-epoch and resumed then trains on the same batches with the same
  augmentation and dropout draws, and ends with bit-identical weights.

Which checkpoint a run resumes from (`ckpt_path=last|auto`) is decided at the config edge,
`audioclf/tasks/run_identity.py`.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import ModelCheckpoint as _ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from audioclf.data.sampling import ResumableDataLoader
from audioclf.errors import UserError


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into `<name>.tmp-*` beside the target, fsync, then os.replace over it."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if not _is_local_file_protocol(str(path)):
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
        except OSError as error:
            raise unwritable(target, error) from None
        umask = os.umask(0)
        os.umask(umask)
        try:
            os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; keep the usual file mode
            with os.fdopen(handle, "wb") as stream:
                torch.save(checkpoint, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException as error:
            Path(temporary).unlink(missing_ok=True)
            if isinstance(error, OSError):
                raise unwritable(target, error) from None
            raise


def unwritable(target: Path, error: OSError) -> UserError:
    """A checkpoint that could not be written (disk full, no permission): nothing half-written is left,
    and a file of that name from before (last.ckpt) is untouched."""
    reason = error.strerror or str(error)
    kept = f"; the {target.name} from before is kept" if target.exists() else ""
    return UserError(f"cannot write the checkpoint {target} ({reason}){kept}: free space on that disk or "
                     "give paths.log_dir=<a folder you can write>")


class ModelCheckpoint(_ModelCheckpoint):
    """Lightning's ModelCheckpoint + `last_every_n_train_steps` + resume across run folders."""

    def __init__(self, *args: Any, last_every_n_train_steps: int | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.last_every_n_train_steps = int(last_every_n_train_steps or 0)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        every = self.last_every_n_train_steps
        if (
            not every
            or not self.save_last
            or trainer.global_step % every
            or trainer.fast_dev_run
            or trainer.sanity_checking
            or self._last_global_step_saved == trainer.global_step
        ):
            return
        step_saved = self._last_global_step_saved
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._last_global_step_saved = step_saved  # keep this step's epoch-end save due

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def _refresh_last(self, trainer: L.Trainer) -> None:
        """Lightning >= 2.5 refreshes last.ckpt only when a top-k file was saved at that step;
        resuming needs the latest state, so save it when Lightning did not."""
        if self.save_last is True and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if state_dict.get("dirpath", self.dirpath) != self.dirpath:
            # A resumed run in a new folder: keep comparing against the scores of the run
            # it continues. Files outside our dirpath are never deleted by Lightning.
            self.best_model_score = state_dict["best_model_score"]
            self.kth_best_model_path = state_dict.get("kth_best_model_path", "")
            self.kth_value = state_dict.get("kth_value", self.kth_value)
            self.best_k_models = state_dict.get("best_k_models", {})


def random_states() -> dict[str, Any]:
    """The global random states, as types `torch.load(weights_only=True)` accepts."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    numpy_state = (
        kind,
        torch.from_numpy(keys.astype(np.int64)),
        int(position),
        int(has_gauss),
        float(gauss),
    )
    states = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ResumeState(L.Callback):
    """Random states in every checkpoint, restored right before the first resumed batch."""

    def __init__(self) -> None:
        self.pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"random": random_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pending = state_dict.get("random")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loader = trainer.train_dataloader
        if isinstance(loader, ResumableDataLoader):
            progress = trainer.fit_loop.epoch_loop.batch_progress
            loader.consumed = lambda: progress.current.processed
        fit_loop = trainer.fit_loop
        states = getattr(fit_loop, "_combined_loader_states_to_load", None)
        if states and fit_loop._combined_loader is not None and fit_loop._data_fetcher is not None:
            # A scheduler asked for `trainer.estimated_stepping_batches` while the optimizers
            # were built, so Lightning made the train iterator before it restored the
            # checkpoint (and, resuming at an epoch end, never loads the loader state at all):
            # load it now and start the iterator over.
            fit_loop._combined_loader._load_state_dicts(states)
            fit_loop._combined_loader_states_to_load = []
            iter(fit_loop._data_fetcher)
        if self.pending is not None:  # after the loaders made their iterators, before any batch
            set_random_states(self.pending)
            self.pending = None
