"""Loading a trained AudioClassifier from a checkpoint file, with a one-line error if it fails."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from audioclf.errors import UserError
from audioclf.lit.module import AudioClassifier


def load_classifier(ckpt_path: str | Path, map_location: str = "cpu") -> AudioClassifier:
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise UserError(f"ckpt_path={path} does not exist: give the path of a .ckpt file from a training run")
    try:
        model = AudioClassifier.load_from_checkpoint(path, map_location=map_location, weights_only=False)
    except (RuntimeError, KeyError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, TypeError) as error:
        reason = str(error).splitlines()[0][:120]
        raise UserError(f"ckpt_path={path} is not an audioclf checkpoint ({reason}): pick a .ckpt from logs/") from None
    return model.eval()


def device_for(accelerator: str = "auto") -> torch.device:
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")
