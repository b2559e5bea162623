"""Start a run from another run's weights: pretrain on one dataset, fine-tune on another.

`transfer_backbone(model, checkpoint)` copies every backbone tensor of the checkpoint whose name and
shape match the new model's; the others (the classifier head when the class count differs, a layer
whose input size follows other features) keep their fresh initialisation. Loaded tensors can be
frozen, or trained at a scaled learning rate (`AudioClassifier.lr_scales`, read by
configure_optimizers). BatchNorm running statistics are buffers: they are loaded, and keep adapting
in training even when the weights are frozen.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from audioclf.errors import UserError
from audioclf.lit.module import AudioClassifier

PREFIX = "backbone."


@dataclass
class SavedRun:
    """An earlier run's checkpoint, read: its path, hyperparameters and state_dict."""

    path: Path
    hparams: dict
    state: dict[str, torch.Tensor]


@dataclass
class Transfer:
    """What `transfer_backbone` did: tensor names loaded, and this model's backbone tensors kept fresh."""

    source: Path
    loaded: list[str]
    kept: list[str]

    def describe(self) -> str:
        kept = f" ({', '.join(self.kept)})" if self.kept else ""
        return (f"init_from={self.source}: {len(self.loaded)} backbone tensors loaded, "
                f"{len(self.kept)} kept as initialised{kept}")


def read_checkpoint(path: str | Path) -> SavedRun:
    """An audioclf checkpoint, read; a one-line UserError for anything else."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"init_from={path} does not exist: give the .ckpt of an earlier training run")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0][:120]
        raise UserError(f"init_from={path} is not a checkpoint ({reason}): pick a .ckpt from logs/") from None
    if not isinstance(saved, dict) or "state_dict" not in saved or "backbone" not in saved.get("hyper_parameters", {}):
        raise UserError(f"init_from={path} is not an audioclf checkpoint: pick a .ckpt from logs/")
    return SavedRun(path, saved["hyper_parameters"], saved["state_dict"])


def transfer_backbone(model: AudioClassifier, saved: SavedRun, freeze: bool = False,
                      lr_scale: float = 1.0) -> Transfer:
    """Load the matching backbone tensors of `saved` into `model`; freeze them or scale their lr."""
    if lr_scale <= 0:
        raise UserError(f"init_lr_scale={lr_scale} must be > 0: e.g. 0.1 trains the loaded layers 10x slower")
    path, state = saved.path, saved.state
    source, target = saved.hparams["backbone"]["name"], model.hparams.backbone["name"]
    if source != target:
        raise UserError(f"init_from={path} holds a {source} backbone and this run trains {target}: "
                        f"add model={source}, or start from a {target} checkpoint")
    mine = model.state_dict()
    loaded = [key for key in mine if key.startswith(PREFIX) and key in state and state[key].shape == mine[key].shape]
    if not loaded:
        raise UserError(f"init_from={path}: no backbone tensor matches this model's shapes: "
                        "train with the checkpoint's model.* and features.* settings")
    model.load_state_dict({key: state[key] for key in loaded}, strict=False)
    parameters = dict(model.named_parameters())
    for key in loaded:
        if key in parameters:
            parameters[key].requires_grad_(not freeze)
            if lr_scale != 1.0:
                model.lr_scales[key] = lr_scale
    kept = [key for key in mine if key.startswith(PREFIX) and key not in loaded]
    return Transfer(path, loaded, kept)
