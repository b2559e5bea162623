"""Stateful streaming: each hop computes only the new feature frames, not the whole window's.

A `StreamingFrontend` is fed hop-sized chunks of samples. Per hop it computes the k = hop /
frame hop new frames into a ring buffer of the window's frames and returns the features of the
latest full window, equal to `Frontend(window)` in eval mode (tests/streaming/test_runtime.py).

Frame geometry, in the coordinates of the window as the frontend pads it (reflect n_fft // 2 on
both sides when `center`, zeros up to a power of two for `phased_stft`): a frame whose samples
all lie inside the window is the same frame, k positions earlier, in the next window, so it is
kept in the ring. Frames that reach into the padding ("edge" frames: two per side for a centred
30/10 ms log-mel) are recomputed every hop from the window's first or last samples, padded the
same way. The state is the window's samples still needed (all of it when there are head edge
frames; n_fft - frame hop samples for an uncentred STFT) and the ring of inner frames.

Streams exactly: every frontend whose transform is frame-wise after the STFT (stft, logmel,
mfcc, raw_power_mel, phased_stft without pooling in time, waveform), with the adapted input
normalization: fixed statistics, applied to each frame as it is computed (in librosa's
transposed layout, where `per_band` is per frame position, to the assembled window). Cannot
stream: a hop that is not a multiple of the frame hop, time pooling in phased_stft, a transform
not known to be frame-wise, a per-clip normalization (`utterance`, `cmvn`).

No registered backbone keeps state between hops with outputs equal to the windowed model
(WINDOWED_BACKBONES says why, per backbone): `StreamingClassifier` runs the backbone on the
buffered frames of the whole window every hop, so a hop costs one hop of frontend work plus
one window of backbone work.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.transforms as T
from torch import nn

from audioclf.audio.frontends import Frontend, InputNorm, LogMel, Mfcc, PhasedStft, RawPowerMel, Stft, Waveform


class CannotStream(ValueError):
    """This frontend, normalization or hop cannot stream exactly (the message says why and what would)."""


SPECTRAL = (Stft, LogMel, Mfcc, RawPowerMel)  # a torchaudio Spectrogram, then per-frame mel / log / DCT

# backbone -> why it runs on the whole window's frames every hop instead of keeping state
WINDOWED_BACKBONES = {
    "tf_cnn": "resizes the whole window to 32 x 32 (bilinear), so every output mixes every frame",
    "gru_seq2seq": "its GRUs start from a zero state at the window's first frame",
    "gru": "its GRUs start from a zero state at the window's first frame",
    "lstm_fsdd": "its LSTM starts from a zero state at the window's first frame",
    "cnn_baseline": "flattens the conv maps into a Linear: a weight per frame position",
    "crnn": "its LSTM steps over channels, the pooled time axis is its input (a weight per position)",
    "parallel_cnn_lstm": "flattens into a Linear and its biLSTM steps over mel bands",
    "phase2d": "zero-padded 3x3 convs and max-pooling over the window, then a mean over it",
    "phase3d": "zero-padded strided 3D convs over the window, then a mean over it",
    "bcresnet": "'same'-padded temporal convs see +-58 frames (of 101), then a mean over time: "
                "every frame's output depends on the window's edges",
    "kwt": "self-attention over all frames with a learned embedding per frame position",
    "matchboxnet": "'same'-padded convs see +-75 frames (of 101), then a mean over time: "
                   "every frame's output depends on the window's edges",
}


@dataclass(frozen=True)
class Framing:
    """How the frontend frames a window of `window` samples, in its padded coordinates."""

    window: int
    n_fft: int
    hop: int
    left: int = 0  # samples padded before the window (pad_mode), e.g. n_fft // 2 when centred
    zeros: int = 0  # zeros appended after it (phased_stft's power-of-two length)
    right: int = 0  # samples padded after those (pad_mode)
    pad_mode: str = "reflect"

    @property
    def frames(self) -> int:
        return 1 + (self.left + self.window + self.zeros + self.right - self.n_fft) // self.hop

    @property
    def first_inner(self) -> int:
        """The first frame whose samples all lie inside the window."""
        return math.ceil(self.left / self.hop)

    @property
    def last_inner(self) -> int:
        return (self.left + self.window - self.n_fft) // self.hop

    def start(self, frame: int) -> int:
        """The window sample where `frame` starts (negative: in the left padding)."""
        return frame * self.hop - self.left


def framing_of(transform: nn.Module, window: int) -> Framing:
    """The framing of a frontend transform; CannotStream if it is not known to work frame by frame."""
    if isinstance(transform, SPECTRAL):
        spec = next(m for m in transform.modules() if isinstance(m, T.Spectrogram))
        if spec.pad:
            raise CannotStream(f"pad={spec.pad} pads each window before the STFT: set it to 0 to stream")
        edge = spec.n_fft // 2 if spec.center else 0
        return Framing(window, spec.n_fft, spec.hop_length, edge, 0, edge, spec.pad_mode)
    if isinstance(transform, PhasedStft):
        if transform.pool[1] != 1:
            raise CannotStream(f"pool={list(transform.pool)} averages frames in time, so a window's frames are not "
                               "the stream's: use pool=[<freq>, 1] to stream")
        target = transform.pad_to or 1 << max(0, (window - 1).bit_length())
        edge = transform.n_fft // 2 if transform.center else 0
        return Framing(window, transform.n_fft, transform.hop_length, edge, max(0, target - window), edge)
    if isinstance(transform, Waveform):
        return Framing(window, 1, 1)
    raise CannotStream(f"the {type(transform).__name__} frontend is not known to compute frame by frame: "
                       "it cannot stream")


def frame_transform(transform: nn.Module) -> tuple[nn.Module, bool]:
    """(a copy of the transform that frames exactly what it is given: no centring, no padding, time
    last; whether the frontend's output is that transposed, librosa's (frames, mels) layout)."""
    if isinstance(transform, Waveform):
        return transform, False
    clone = copy.deepcopy(transform)
    for module in clone.modules():
        if isinstance(module, T.Spectrogram):
            module.center = False
    transposed = isinstance(clone, RawPowerMel) and clone.librosa_layout
    if transposed:
        clone.librosa_layout = False
    if isinstance(clone, PhasedStft):
        clone.center, clone.pad_to = False, 1  # pad_to 1: never pads
    return clone, transposed


def check_hop(framing: Framing, hop: int, rate: int | None = None) -> int:
    """Frames per hop; CannotStream if the hop is not a whole number of frame hops."""
    if hop < 1 or hop % framing.hop:
        below = max(1, hop // framing.hop) * framing.hop
        above = below + framing.hop

        def shown(samples: int) -> str:
            return f"{samples} samples" + (f" ({1000 * samples / rate:g} ms)" if rate else "")

        raise CannotStream(f"a hop of {shown(hop)} is not a multiple of the frame hop ({shown(framing.hop)}, "
                           f"features.hop_ms): use {shown(below)} or {shown(above)}")
    return hop // framing.hop


class StreamingFrontend(nn.Module):
    """A frontend fed `hop` samples at a time; state: (samples, ring) tensors, see `start`."""

    def __init__(self, frontend: Frontend, window: int, hop: int, sample_rate: int | None = None):
        super().__init__()
        if not isinstance(frontend.norm, InputNorm):
            raise CannotStream(f"normalization {type(frontend.norm).__name__} is not known to use fixed "
                               "statistics: it cannot stream")
        if frontend.norm.mode in InputNorm.PER_CLIP:
            raise CannotStream(f"normalize={frontend.norm.mode} standardizes each window by its own statistics, "
                               "so a frame's features change with the window")
        self.framing = framing_of(frontend.transform, window)
        self.steps = check_hop(self.framing, hop, sample_rate)
        self.window, self.hop = window, hop
        self.transform, self.transposed = frame_transform(frontend.transform)
        self.norm = frontend.norm
        f = self.framing
        self.inner = f.last_inner - f.first_inner + 1
        if self.inner < 1 or f.frames < 1:
            raise CannotStream(f"a window of {window} samples holds no whole frame of {f.n_fft} samples: "
                               "use longer clips")
        self.new = min(self.steps, self.inner)  # inner frames computed per hop (all of them if the hop is long)
        self.head_end = self._head_end()
        self.tail_first = self._tail_first()
        needed_from = min(
            0 if f.first_inner > 0 else window,
            f.start(f.last_inner - self.new + 1),
            f.start(self.tail_first) if self.tail_first < f.frames else window,
        )
        self.kept = window - needed_from  # samples of the new window a hop reads
        self.state_samples = max(0, self.kept - hop)

    def _head_end(self) -> int:
        """Window samples the head edge frames are computed from (reflect padding needs more than it pads)."""
        f = self.framing
        if f.first_inner == 0:
            return 0
        end = f.start(f.first_inner - 1) + f.n_fft
        while end <= f.left and end + f.hop <= self.window:
            end += f.hop
        return end

    def _tail_first(self) -> int:
        """The first frame computed for the tail edge frames (earlier ones dropped, for reflect's sake)."""
        f = self.framing
        first = f.last_inner + 1
        if first >= f.frames:
            return first
        while first > 0 and f.right and self.window - f.start(first) + f.zeros <= f.right:
            first -= 1
        return first

    @property
    def edge_frames(self) -> tuple[int, int]:
        """(head, tail): frames recomputed every hop because they reach into the padding."""
        return self.framing.first_inner, self.framing.frames - self.framing.last_inner - 1

    def pad(self, samples: torch.Tensor, left: bool = False, right: bool = False) -> torch.Tensor:
        """(B, samples) padded as the window is, on the given sides."""
        f = self.framing
        if right and f.zeros:
            samples = F.pad(samples, (0, f.zeros))
        pads = (f.left if left else 0, f.right if right else 0)
        if any(pads):
            samples = F.pad(samples.unsqueeze(1), pads, mode=f.pad_mode).squeeze(1)
        return samples

    def frames(self, segments: list[tuple[torch.Tensor, int, int]]) -> list[torch.Tensor]:
        """Frames of several (B, samples) segments in one transform call (its per-call overhead is most of
        the cost of a few frames): each segment given as (samples, first frame wanted, count), laid end to
        end at whole frame hops; the frames that straddle two segments are dropped."""
        hop, pieces, offsets, position = self.framing.hop, [], [], 0
        for samples, first, _ in segments:
            length = -(-samples.shape[-1] // hop) * hop
            pieces.append(F.pad(samples, (0, length - samples.shape[-1])) if length > samples.shape[-1] else samples)
            offsets.append(position // hop + first)
            position += length
        frames = self.transform(torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0])
        if not self.transposed:  # normalized once per frame; librosa's layout is normalized per position
            frames = self.norm(frames)
        return [frames[..., offset : offset + count] for offset, (_, _, count) in zip(offsets, segments, strict=True)]

    def segments(self, window_end: torch.Tensor, new: bool) -> list[tuple[torch.Tensor, int, int]]:
        """Given a window's last `kept` samples: the head edge segment, the hop's new inner frames
        (when `new`) and the tail edge segment, as `frames` takes them."""
        f, offset = self.framing, self.window - self.kept
        found = []
        if f.first_inner > 0:
            found.append((self.pad(window_end[:, : self.head_end - offset], left=True), 0, f.first_inner))
        if new:
            begin = f.start(f.last_inner - self.new + 1) - offset
            found.append((window_end[:, begin : f.start(f.last_inner) + f.n_fft - offset], 0, self.new))
        if self.tail_first < f.frames:
            tail = self.pad(window_end[:, f.start(self.tail_first) - offset :], right=True)
            found.append((tail, f.last_inner + 1 - self.tail_first, f.frames - f.last_inner - 1))
        return found

    def assemble(self, edges: list[torch.Tensor], inner: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Head edge frames, inner frames, tail edge frames -> (the window's features, the ring: a view of
        its inner frames, so a hop copies the window's frames once)."""
        head = edges[:1] if self.framing.first_inner > 0 else []
        parts = [*head, *inner, *edges[len(head) :]]
        frames = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
        ring = frames[..., self.framing.first_inner : self.framing.first_inner + self.inner]
        return (self.norm(frames.transpose(2, 3)) if self.transposed else frames), ring

    def start(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(features of `window` (B, samples), samples state, ring state): the stream primed with it."""
        f = self.framing
        inner = (window[:, f.start(f.first_inner) : f.start(f.last_inner) + f.n_fft], 0, self.inner)
        ring, *edges = self.frames([inner, *self.segments(window[:, self.window - self.kept :], new=False)])
        features, ring = self.assemble(edges, [ring])
        return features, window[:, self.window - self.state_samples :], ring

    def forward(self, chunk: torch.Tensor, samples: torch.Tensor,
                ring: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One hop: chunk (B, hop) -> (features of the latest window, samples state, ring state). The ring
        is a view of the features: modify them in place and the next hop is wrong."""
        window_end = torch.cat([samples, chunk], dim=1)[:, -self.kept :]
        found = self.frames(self.segments(window_end, new=True))
        head = 1 if self.framing.first_inner > 0 else 0
        features, ring = self.assemble(found[:head] + found[head + 1 :], [ring[..., self.new :], found[head]])
        return features, window_end[:, self.kept - self.state_samples :], ring

    def windows(self, recording: torch.Tensor, count: int) -> torch.Tensor:
        """Features (count, C, F, T) of the windows starting at 0, hop, ..., (count - 1) * hop of a 1-D
        recording: the inner frames computed once for all of them, the edge frames per window."""
        f = self.framing
        spans = (count - 1) * self.steps + self.inner
        inner = recording[None, f.start(f.first_inner) : f.start(f.first_inner + spans - 1) + f.n_fft]
        frames = self.frames([(inner, 0, spans)])[0][0]                           # (C, F, spans)
        ring = frames.unfold(-1, self.inner, self.steps).permute(2, 0, 1, 3)     # (count, C, F, inner)
        ends = torch.stack([recording[j * self.hop + self.window - self.kept : j * self.hop + self.window]
                            for j in range(count)])
        segments = self.segments(ends, new=False)
        return self.assemble(self.frames(segments) if segments else [], [ring])[0]


class StreamingClassifier(nn.Module):
    """Streaming frontend -> backbone on the window's buffered frames -> class probabilities.

    `forward(chunk, samples, ring) -> (probabilities, samples, ring)` is one hop with its state as
    explicit inputs and outputs (the ONNX graph's signature); `start(window)` primes the state."""

    def __init__(self, frontend: Frontend, backbone: nn.Module, window: int, hop: int,
                 sample_rate: int | None = None):
        super().__init__()
        self.frontend = StreamingFrontend(frontend, window, hop, sample_rate)
        self.backbone = backbone
        self.eval()

    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        return self.backbone(features).float().softmax(dim=-1)

    def start(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features, samples, ring = self.frontend.start(window)
        return self.probabilities(features), samples, ring

    def forward(self, chunk: torch.Tensor, samples: torch.Tensor,
                ring: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features, samples, ring = self.frontend(chunk, samples, ring)
        return self.probabilities(features), samples, ring

    def window_probabilities(self, recording: torch.Tensor, count: int) -> torch.Tensor:
        """(count, classes) for the windows starting every hop from 0 (the offline, batched form)."""
        return self.probabilities(self.frontend.windows(recording, count))

    def probabilities_at(self, recording: torch.Tensor, starts: Sequence[int]) -> torch.Tensor:
        """(len(starts), classes) for the windows of a 1-D recording starting at `starts` (ascending): runs
        of them on the hop grid, less than a window apart, share their frames; any other is framed alone."""
        hop, window = self.frontend.hop, self.frontend.window
        features: list[torch.Tensor | None] = [None] * len(starts)
        for run in grid_runs([int(start) for start in starts], hop, window):
            first, last = int(starts[run[0]]), int(starts[run[-1]])
            grid = self.frontend.windows(recording[first : last + window], (last - first) // hop + 1)
            for index in run:
                features[index] = grid[(int(starts[index]) - first) // hop]
        for index, start in enumerate(starts):
            if features[index] is None:  # e.g. the window stream.py adds to cover a recording's tail
                features[index] = self.frontend.windows(recording[int(start) : int(start) + window], 1)[0]
        return self.probabilities(torch.stack(features))


def grid_runs(starts: list[int], hop: int, window: int) -> list[list[int]]:
    """Indices of the starts on the hop grid, in runs whose neighbours are less than a window apart
    (framing the gap between two runs would cost more than framing their windows apart)."""
    runs: list[list[int]] = []
    for index, start in enumerate(starts):
        if start % hop:
            continue
        if runs and start - starts[runs[-1][-1]] < window:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def from_classifier(model: nn.Module, hop: int) -> StreamingClassifier:
    """The streaming form of an AudioClassifier (its frontend, backbone, clip length and rate)."""
    return StreamingClassifier(model.frontend, model.backbone, int(model.hparams.num_samples), hop,
                               int(model.hparams.sample_rate)).to(next(model.parameters()).device)


def state_example(stream: StreamingClassifier, batch: int = 1,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(chunk, samples, ring) of the right shapes, primed on a random window."""
    generator = torch.Generator().manual_seed(seed)
    window = 0.1 * torch.randn(batch, stream.frontend.window + stream.frontend.hop, generator=generator)
    with torch.no_grad():
        _, samples, ring = stream.start(window[:, : stream.frontend.window])
    return window[:, stream.frontend.window :], samples, ring


@torch.no_grad()
def streamed_probabilities(model: nn.Module, samples: np.ndarray, starts: np.ndarray, hop: int,
                           batch_size: int = 64) -> np.ndarray:
    """(len(starts), classes) probabilities of an AudioClassifier's windows of `samples` (1-D float) at
    `starts` (multiples of `hop`, and any others), computed as the stream computes them: each frame of
    the recording once, the backbone in batches of windows. ValueError if the model cannot stream."""
    stream = from_classifier(model, hop)
    device = next(model.parameters()).device
    recording = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).to(device)
    found = [stream.probabilities_at(recording, starts[first : first + batch_size]).cpu().numpy()
             for first in range(0, len(starts), batch_size)]
    return np.concatenate(found) if found else np.zeros((0, len(model.class_names)), dtype=np.float32)
