"""Loading a trained AudioClassifier from a checkpoint file, with a one-line error if it fails."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from audioclf.errors import UserError
from audioclf.lit.module import AudioClassifier


def check_checkpoint(path: Path) -> None:
    """A one-line UserError unless `path` is a checkpoint file with weights and hyperparameters.
    Read with mmap, so even a large file costs little; unpickling other bytes raises anything."""
    fix = "pick a .ckpt from a training run's checkpoints/ folder"
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        raise UserError(f"ckpt_path={path} is not an audioclf checkpoint (not a file torch.save wrote): {fix}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as error:  # noqa: BLE001
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise UserError(f"ckpt_path={path} is not an audioclf checkpoint ({reason}): {fix}") from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "hyper_parameters"} <= checkpoint.keys():
        raise UserError(f"ckpt_path={path} is not an audioclf checkpoint (no state_dict and hyper_parameters "
                        f"in it): {fix}")


def load_classifier(ckpt_path: str | Path, map_location: str = "cpu") -> AudioClassifier:
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise UserError(f"ckpt_path={path} does not exist: give the path of a .ckpt file from a training run")
    check_checkpoint(path)
    try:
        model = AudioClassifier.load_from_checkpoint(path, map_location=map_location, weights_only=False)
    except (RuntimeError, KeyError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, TypeError,
            ValueError) as error:  # ValueError: hyperparameters the library no longer accepts
        reason = str(error).splitlines()[0][:120]
        raise UserError(f"ckpt_path={path} is not an audioclf checkpoint ({reason}): pick a .ckpt from logs/") from None
    return model.eval()


def device_for(accelerator: str = "auto") -> torch.device:
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")
