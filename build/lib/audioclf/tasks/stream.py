"""Keyword spotting over long recordings: a sliding window, smoothing, thresholded detections.

audioclf-predict ckpt_path=<file.ckpt> inputs=long.wav stream=true \
    [stream_hop=0.1] [threshold=0.6] [smooth=3] [min_dbfs=-50]

Windows of the model's clip length (1 s) start every `stream_hop` seconds
(the recording is zero-padded so its end is covered). Windows quieter than
`min_dbfs` (RMS, dB full scale) are not classified: they count as silence.
Class probabilities are smoothed by a centred moving average over `smooth`
windows. A detection is a run of consecutive windows whose smoothed top class
is the same keyword with probability >= `threshold`; it is reported once, as
(time, label, probability): the probability-weighted mean of its windows'
centres in seconds (a word sits in the middle of the windows that hear it
whole), and its highest smoothed probability. Labels in `ignore` (e.g.
`_silence_`, `_unknown_`) are never reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audioclf.data.io import read_audio, resample
from audioclf.errors import UserError
from audioclf.lit.module import AudioClassifier

IGNORED = ("_silence_", "_unknown_", "_background_noise_")


@dataclass
class Detection:
    time: float  # seconds from the start of the recording
    label: str
    probability: float  # smoothed


def window_starts(length: int, window: int, hop: int) -> np.ndarray:
    last = max(0, length - window)
    starts = np.arange(0, last + 1, hop)
    if starts[-1] < last:  # cover the tail
        starts = np.append(starts, last)
    return starts


def smooth_probabilities(probabilities: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along the window axis; the edges average what exists."""
    if width <= 1:
        return probabilities
    kernel = np.ones(width)
    pad = width // 2
    summed = np.stack(
        [
            np.convolve(np.pad(column, (pad, width - 1 - pad)), kernel, "valid")
            for column in probabilities.T
        ],
        axis=1,
    )
    counts = np.convolve(
        np.pad(np.ones(len(probabilities)), (pad, width - 1 - pad)), kernel, "valid"
    )
    return summed / counts[:, None]


@torch.no_grad()
def window_probabilities(
    model: AudioClassifier,
    samples: np.ndarray,
    hop: int,
    min_dbfs: float,
    batch_size: int = 64,
    device: torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(window starts in samples, (windows, classes) probabilities); quiet windows get all zeros."""
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    window = int(model.hparams.num_samples)
    samples = np.pad(samples, (0, max(0, window - len(samples))))
    starts = window_starts(len(samples), window, hop)
    frames = np.lib.stride_tricks.sliding_window_view(samples, window)[starts]
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    loud = 20 * np.log10(np.maximum(rms, 1e-10)) >= min_dbfs
    probabilities = np.zeros((len(starts), len(model.class_names)), dtype=np.float32)
    chosen = np.flatnonzero(loud)
    for first in range(0, len(chosen), batch_size):
        rows = chosen[first : first + batch_size]
        waves = torch.from_numpy(np.ascontiguousarray(frames[rows], dtype=np.float32)).to(device)
        probabilities[rows] = model(waves).float().softmax(dim=-1).cpu().numpy()
    return starts, probabilities


def detect(
    starts: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    rate: int,
    window: int,
    threshold: float,
    smooth: int,
    ignore: tuple[str, ...] = IGNORED,
) -> list[Detection]:
    smoothed = smooth_probabilities(probabilities, smooth)
    top = smoothed.argmax(axis=1)
    best = smoothed.max(axis=1)
    active = [best[i] >= threshold and class_names[top[i]] not in ignore for i in range(len(top))]
    detections, i = [], 0
    while i < len(top):
        if not active[i]:
            i += 1
            continue
        end = i
        while end + 1 < len(top) and active[end + 1] and top[end + 1] == top[i]:
            end += 1
        weights = best[i : end + 1]
        centres = (starts[i : end + 1] + window / 2) / rate
        time = float(np.sum(weights * centres) / np.sum(weights))
        detections.append(Detection(round(time, 3), class_names[top[i]], float(weights.max())))
        i = end + 1
    return detections


def stream_file(
    model: AudioClassifier,
    path: Path,
    hop_seconds: float = 0.1,
    threshold: float = 0.6,
    smooth: int = 3,
    min_dbfs: float = -50.0,
    ignore: tuple[str, ...] = IGNORED,
    device: torch.device | None = None,
) -> list[Detection]:
    rate = int(model.hparams.sample_rate)
    if hop_seconds <= 0:
        raise UserError(
            f"stream_hop={hop_seconds} must be a positive number of seconds, e.g. stream_hop=0.1"
        )
    if not 0 <= threshold <= 1:
        raise UserError(
            f"threshold={threshold} must be a probability between 0 and 1, e.g. threshold=0.6"
        )
    samples, file_rate = read_audio(path, min_ms=10)  # as predict: too little sound to classify
    samples = resample(samples, file_rate, rate)
    hop = max(1, int(round(hop_seconds * rate)))
    starts, probabilities = window_probabilities(model, samples, hop, min_dbfs, device=device)
    return detect(
        starts,
        probabilities,
        list(model.class_names),
        rate,
        int(model.hparams.num_samples),
        threshold,
        max(1, int(smooth)),
        tuple(ignore),
    )
