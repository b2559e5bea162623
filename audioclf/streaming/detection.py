"""Keyword spotting over long recordings: a sliding window, smoothing, thresholded detections.

audioclf-predict ckpt_path=<file.ckpt> inputs=long.wav stream=true \
    [stream_hop=0.1] [threshold=0.6] [smooth=3] [min_dbfs=-50] [labels=events.csv collar=0.5]

Windows of the model's clip length (1 s) start every `stream_hop` seconds
(the recording is zero-padded so its end is covered). Windows quieter than
`min_dbfs` (RMS, dB full scale) are not classified: they count as silence.
Class probabilities are smoothed by a centred moving average over `smooth`
windows. A window is active for the keyword with the highest smoothed
probability among those at or above their own threshold (`threshold`: one number
for every keyword, or a per-keyword mapping such as the checkpoint's
`detection_thresholds`; a keyword it lacks gets DEFAULT_THRESHOLD). A detection
is a run of consecutive windows active for the same keyword; it is reported once,
as (time, label, probability): the probability-weighted mean of its windows'
centres in seconds (a word sits in the middle of the windows that hear it
whole), and its highest smoothed probability. Labels in `ignore` (e.g.
`_silence_`, `_unknown_`) are never reported. `reported_at` is when a live
stream would have had it: the end of the run's first window plus the smoothing's
look-ahead (a centred average needs the windows after it).

Two optional post-processing steps (off by default): a run shorter than `min_windows`
windows is not a detection, and after a detection of keyword k at time t, further
detections of k before t + `refractory_s` are dropped (one word, one detection).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audioclf.data.io import read_audio, resample
from audioclf.errors import UserError
from audioclf.lit.module import AudioClassifier
from audioclf.lit.precision import inference_autocast
from audioclf.streaming.runtime import CannotStream, stateless_reason, streamed_probabilities

IGNORED = ("_silence_", "_unknown_", "_background_noise_")
DEFAULT_THRESHOLD = 0.6  # threshold=null and no per-keyword threshold in the checkpoint
TIME_TOLERANCE_S = 1e-6  # detection times are rounded to the millisecond: a refractory edge is compared to the µs


@dataclass
class Detection:
    time: float  # seconds from the start of the recording
    label: str
    probability: float  # smoothed
    reported_at: float | None = None  # seconds: when a live stream would have it (module docstring)


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


# windows per backbone call: the fastest of 8-64 on one CPU thread, fp32 and bf16 (tools/bench/scoring.py)
SCORING_BATCH = 16


@torch.no_grad()
def window_probabilities(
    model: AudioClassifier,
    samples: np.ndarray,
    hop: int,
    min_dbfs: float,
    batch_size: int = SCORING_BATCH,
    device: torch.device | None = None,
    stream_mode: str = "stateful",
    precision: str = "32-true",
) -> tuple[np.ndarray, np.ndarray]:
    """(window starts in samples, (windows, classes) probabilities); quiet windows get all zeros.
    `stream_mode=stateful` computes them as audioclf/streaming/runtime.py streams: each frame once, and for a
    backbone that streams with state (model.causal=true) each backbone step once, its layers carrying the
    stream's past (equal to the live stream, not to windowed); falling back, with one line on stderr, to the
    backbone on each window (or to windowed) where the model cannot.
    `precision`: Lightning's name of the precision the model computes in (bf16-mixed: autocast)."""
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
    with inference_autocast(precision, device):
        if stateful_probabilities(model, samples, starts, chosen, hop, batch_size, probabilities, stream_mode):
            return starts, probabilities
        for first in range(0, len(chosen), batch_size):
            rows = chosen[first : first + batch_size]
            waves = torch.from_numpy(np.ascontiguousarray(frames[rows], dtype=np.float32)).to(device)
            probabilities[rows] = model(waves).float().softmax(dim=-1).cpu().numpy()
    return starts, probabilities


def stateful_probabilities(model: AudioClassifier, samples: np.ndarray, starts: np.ndarray, chosen: np.ndarray,
                           hop: int, batch_size: int, probabilities: np.ndarray, stream_mode: str) -> bool:
    """Fill the `chosen` rows from the streaming form; False where windowed must do it (stream_mode)."""
    if stream_mode not in ("stateful", "windowed"):
        raise UserError(f"stream_mode={stream_mode} is unknown: use stateful or windowed")
    if stream_mode == "windowed":
        return False
    try:
        probabilities[chosen] = streamed_probabilities(model, samples, starts[chosen], hop, batch_size)
    except CannotStream as error:
        say_once(f"info: stream_mode=stateful: {error}; streaming windowed instead")
        return False
    reason = stateless_reason(model.backbone)
    if reason:
        say_once(f"info: stream_mode=stateful: {reason}; the frontend streams, the backbone runs on each window")
    return True


@functools.cache
def say_once(message: str) -> None:
    print(message, file=sys.stderr)


def class_thresholds(
    threshold: float | Mapping[str, float], class_names: list[str], ignore: tuple[str, ...]
) -> np.ndarray:
    """One threshold per class; ignored classes get infinity, so they never fire."""
    if not isinstance(threshold, Mapping):
        threshold = dict.fromkeys(class_names, float(threshold))
    return np.array(
        [np.inf if name in ignore else float(threshold.get(name, DEFAULT_THRESHOLD)) for name in class_names]
    )


def active_keywords(smoothed: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per window, the class index of the most probable keyword at or above its threshold; -1 for none."""
    over = (smoothed >= thresholds) & (smoothed > 0)  # quiet windows are all zeros: never active
    candidates = np.where(over, smoothed, -1.0)
    chosen = candidates.argmax(axis=1)
    chosen[~over.any(axis=1)] = -1
    return chosen


def detect(
    starts: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    rate: int,
    window: int,
    threshold: float | Mapping[str, float],
    smooth: int,
    ignore: tuple[str, ...] = IGNORED,
    refractory_s: float = 0.0,
    min_windows: int = 1,
) -> list[Detection]:
    smoothed = smooth_probabilities(probabilities, smooth)
    chosen = active_keywords(smoothed, class_thresholds(threshold, class_names, ignore))
    ahead = look_ahead(smooth)
    detections, labels = [], []
    for first, last in zip(*run_bounds(chosen), strict=True):
        if chosen[first] < 0 or last - first < min_windows:
            continue
        weights = smoothed[first:last, chosen[first]]
        centres = (starts[first:last] + window / 2) / rate
        time = float(np.sum(weights * centres) / np.sum(weights))
        reported_at = (starts[min(first + ahead, len(starts) - 1)] + window) / rate
        detections.append(
            Detection(round(time, 3), class_names[chosen[first]], float(weights.max()), round(float(reported_at), 3))
        )
        labels.append(chosen[first])
    keep = refractory_mask(np.array(labels, dtype=int), np.array([d.time for d in detections]), refractory_s)
    return [found for found, kept in zip(detections, keep, strict=True) if kept]


def look_ahead(smooth: int) -> int:
    """Windows after the centre that a centred average over `smooth` windows uses."""
    return max(1, smooth) - 1 - max(1, smooth) // 2


def run_bounds(values: np.ndarray, breaks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(first, end) indices, end exclusive, of each run of equal consecutive values; a True in
    `breaks` starts a new run there whatever the values (where one recording ends and the next begins)."""
    if len(values) == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    change = np.ones(len(values), dtype=bool)
    change[1:] = values[1:] != values[:-1]
    if breaks is not None:
        change |= breaks
    first = np.flatnonzero(change)
    return first, np.append(first[1:], len(values))


def refractory_mask(groups: np.ndarray, times: np.ndarray, refractory_s: float) -> np.ndarray:
    """Which detections survive the refractory period: within each group (a keyword, in one recording),
    in time order, the first is kept, then the first at or after the last kept one's time + `refractory_s`."""
    keep = np.ones(len(times), dtype=bool)
    if refractory_s <= 0 or len(times) < 2:
        return keep
    order = np.lexsort((times, groups))
    groups, times = groups[order], times[order]
    count = len(times)
    # the next one kept after each: the first of its group at or after its time + refractory_s (count: none)
    following = count_before(groups, times, groups, times + refractory_s - TIME_TOLERANCE_S, inclusive=False)
    following[(following >= count) | (groups[np.minimum(following, count - 1)] != groups)] = count
    # kept: reachable along `following` from each group's first; pointer doubling walks 1, 2, 4, ... steps
    reached = np.zeros(count + 1, dtype=bool)
    reached[run_bounds(groups)[0]] = True
    jump = np.append(following, count)
    for _ in range(int(np.ceil(np.log2(count))) + 1):
        reached[jump[np.flatnonzero(reached)]] = True
        jump = jump[jump]
    keep[order] = reached[:count]
    return keep


def count_before(groups: np.ndarray, values: np.ndarray, query_groups: np.ndarray, query_values: np.ndarray,
                 inclusive: bool) -> np.ndarray:
    """For each query, how many of the (group, value) pairs (sorted, lexicographically) come before it, pairs
    equal to it counted too where `inclusive`: a searchsorted over (group, value) keys, exact for floats."""
    is_query = np.concatenate([np.zeros(len(values), dtype=bool), np.ones(len(query_values), dtype=bool)])
    first_on_ties = is_query if inclusive else ~is_query  # lexsort puts False before True
    order = np.lexsort((first_on_ties, np.concatenate([values, query_values]), np.concatenate([groups, query_groups])))
    pairs_so_far = np.cumsum(~is_query[order])
    counts = np.empty(len(query_values), dtype=int)
    at_query = is_query[order]
    counts[order[at_query] - len(values)] = pairs_so_far[at_query]
    return counts


def stream_thresholds(model: AudioClassifier, threshold: float | str | None) -> float | dict[str, float]:
    """threshold= for every keyword; unset (null), the checkpoint's per-keyword thresholds, else the default."""
    if threshold is None:
        saved = getattr(model, "detection_thresholds", None)
        return dict(saved) if saved else DEFAULT_THRESHOLD
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0 <= value <= 1:
        raise UserError(
            f"threshold={threshold} must be a probability between 0 and 1, e.g. threshold=0.6 "
            "(or threshold=null: the checkpoint's per-keyword thresholds)"
        )
    return value


def stream_file(
    model: AudioClassifier,
    path: Path,
    hop_seconds: float = 0.1,
    threshold: float | str | None = None,
    smooth: int = 3,
    min_dbfs: float = -50.0,
    ignore: tuple[str, ...] = IGNORED,
    device: torch.device | None = None,
    stream_mode: str = "stateful",
    refractory_s: float = 0.0,
    min_windows: int = 1,
    precision: str = "32-true",
) -> list[Detection]:
    rate = int(model.hparams.sample_rate)
    if hop_seconds <= 0:
        raise UserError(
            f"stream_hop={hop_seconds} must be a positive number of seconds, e.g. stream_hop=0.1"
        )
    thresholds = stream_thresholds(model, threshold)
    samples, file_rate = read_audio(path, min_ms=10)  # as predict: too little sound to classify
    samples = resample(samples, file_rate, rate)
    hop = max(1, int(round(hop_seconds * rate)))
    starts, probabilities = window_probabilities(model, samples, hop, min_dbfs, device=device,
                                                 stream_mode=stream_mode, precision=precision)
    return detect(
        starts,
        probabilities,
        list(model.class_names),
        rate,
        int(model.hparams.num_samples),
        thresholds,
        max(1, int(smooth)),
        tuple(ignore),
        refractory_s=float(refractory_s),
        min_windows=int(min_windows),
    )
