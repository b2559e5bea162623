"""Predict labels for audio files with a trained checkpoint.

audioclf-predict ckpt_path=<file.ckpt> inputs=<wav file or folder>
audioclf-predict ckpt_path=<file.ckpt> inputs=long.wav stream=true  (detections in time)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from audioclf.data.io import AUDIO_SUFFIXES, fit_length, read_audio, resample
from audioclf.errors import UserError
from audioclf.lit.checkpoints import device_for, load_classifier
from audioclf.lit.module import AudioClassifier
from audioclf.tasks.stream import IGNORED, Detection, stream_file


def find_inputs(inputs: str | Path) -> list[Path]:
    path = Path(inputs).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise UserError(f"inputs={path} holds no {'/'.join(AUDIO_SUFFIXES)} files: point it at audio")
        return files
    raise UserError(f"inputs={path} does not exist: give an audio file or a folder of them")


def load_clip(path: Path, model: AudioClassifier) -> np.ndarray:
    samples, rate = read_audio(path)
    return fit_length(resample(samples, rate, model.hparams.sample_rate), model.hparams.num_samples)


@torch.no_grad()
def predict_files(model: AudioClassifier, files: list[Path], batch_size: int = 64,
                  device: torch.device | None = None) -> list[tuple[Path, list[tuple[str, float]]]]:
    """For each file, (label, probability) pairs sorted by probability."""
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    results = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        waves = torch.from_numpy(np.stack([load_clip(p, model) for p in chunk])).to(device)
        probabilities = model(waves).float().softmax(dim=-1).cpu()
        for path, probs in zip(chunk, probabilities, strict=True):
            order = probs.argsort(descending=True).tolist()
            results.append((path, [(model.class_names[i], float(probs[i])) for i in order]))
    return results


def run(cfg: DictConfig) -> list[tuple[Path, list[tuple[str, float]]]]:
    model = load_classifier(cfg.ckpt_path)
    if cfg.get("stream"):
        return run_stream(cfg, model)
    results = predict_files(model, find_inputs(cfg.inputs), cfg.get("batch_size", 64), device_for())
    top_k = int(cfg.get("top_k", 1))
    for path, ranked in results:
        shown = "  ".join(f"{label} {prob:.3f}" for label, prob in ranked[:top_k])
        print(f"{path}\t{shown}")
    return results


def run_stream(cfg: DictConfig, model: AudioClassifier) -> list[tuple[Path, list[Detection]]]:
    """stream=true: sliding-window detections in each (long) input, one line per detection."""
    results = []
    for path in find_inputs(cfg.inputs):
        detections = stream_file(
            model, path, hop_seconds=float(cfg.get("stream_hop", 0.1)),
            threshold=float(cfg.get("threshold", 0.6)), smooth=int(cfg.get("smooth", 3)),
            min_dbfs=float(cfg.get("min_dbfs", -50.0)), ignore=tuple(cfg.get("ignore") or IGNORED),
            device=device_for(),
        )
        for found in detections:
            print(f"{path}\t{found.time:.2f}s\t{found.label}\t{found.probability:.3f}")
        if not detections:
            print(f"{path}\tno detections above threshold={cfg.get('threshold', 0.6)}")
        results.append((path, detections))
    return results

