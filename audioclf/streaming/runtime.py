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

Backbones that stream with state (models/streaming.py: causal convolutions, carried GRU states, the
pooling window as state; `bcresnet`/`dscnn` with model.causal=true, `gru`) run as a
`StatefulClassifier`: a hop computes its new frames through the frontend, uncentred (`FrameStream`:
a frame is computed once its last sample has arrived) and through every backbone layer, so a hop
costs a hop of work. Its output equals one causal pass over every frame of the stream so far, not
the windowed model: the layers hear up to their receptive field of real past where a clip had zeros.
Offline, `recording_probabilities` makes that pass over a whole recording in long chunks. Any other
backbone (WINDOWED_BACKBONES or its own `stateless_reason` says why) runs as a
`StreamingClassifier`: the frontend keeps state, the backbone runs on the buffered frames of the
whole window every hop, with outputs equal to the windowed model.
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
from audioclf.models import BACKBONES
from audioclf.models.streaming import StatefulBackbone, _CausalConv, pool_steps, why_not_stateful


class CannotStream(ValueError):
    """This frontend, normalization or hop cannot stream exactly (the message says why and what would)."""


SPECTRAL = (Stft, LogMel, Mfcc, RawPowerMel)  # a torchaudio Spectrogram, then per-frame mel / log / DCT

# backbone -> why it cannot keep state between hops (streamable ones say it themselves: `stateless_reason`)
WINDOWED_BACKBONES = {
    "tf_cnn": "resizes the whole window to 32 x 32 (bilinear), so every output mixes every frame",
    "gru_seq2seq": "the posted form averages a sigmoid per frame and has no embed/classify split: "
                   "its fixed form, model=gru, streams with state",
    "lstm_fsdd": "its LSTM's last step over the window is the output and it has no embed/classify split",
    "cnn_baseline": "flattens the conv maps into a Linear: a weight per frame position",
    "crnn": "its LSTM steps over channels, the pooled time axis is its input (a weight per position)",
    "parallel_cnn_lstm": "flattens into a Linear and its biLSTM steps over mel bands",
    "phase2d": "zero-padded 3x3 convs and max-pooling over the window, then a mean over it",
    "phase3d": "zero-padded strided 3D convs over the window, then a mean over it",
    "kwt": "self-attention over all frames with a learned embedding per frame position",
    "matchboxnet": "'same'-padded convs see +-75 frames (of 101), then a mean over time: "
                   "every frame's output depends on the window's edges",
}


def backbone_name(backbone: nn.Module) -> str:
    return next((name for name, cls in BACKBONES.items() if type(backbone) is cls), type(backbone).__name__)


def stateless_reason(backbone: nn.Module) -> str | None:
    """None when the backbone streams with state; else one line naming it and why not."""
    name = backbone_name(backbone)
    if name in WINDOWED_BACKBONES:
        return f"{name}: {WINDOWED_BACKBONES[name]}"
    return why_not_stateful(backbone)


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


def check_fixed_norm(frontend: Frontend) -> None:
    """CannotStream unless the input normalization applies fixed statistics frame by frame."""
    if not isinstance(frontend.norm, InputNorm):
        raise CannotStream(f"normalization {type(frontend.norm).__name__} is not known to use fixed "
                           "statistics: it cannot stream")
    if frontend.norm.mode in InputNorm.PER_CLIP:
        raise CannotStream(f"normalize={frontend.norm.mode} standardizes each window by its own statistics, "
                           "so a frame's features change with the window")


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
        check_fixed_norm(frontend)
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


class FrameStream(nn.Module):
    """The frontend on an endless stream: each chunk of samples -> its new frames, uncentred (a frame
    is computed once its last sample has arrived and never changes). State: the samples the next
    frame still needs."""

    def __init__(self, frontend: Frontend, window: int, hop: int, sample_rate: int | None = None):
        super().__init__()
        check_fixed_norm(frontend)
        framing = framing_of(frontend.transform, window)
        self.steps = check_hop(framing, hop, sample_rate)
        self.transform, transposed = frame_transform(frontend.transform)
        if transposed:
            raise CannotStream("librosa's (frames, mels) layout normalizes per frame position of the window: "
                               "it cannot stream with state")
        self.norm, self.n_fft, self.frame_hop, self.hop = frontend.norm, framing.n_fft, framing.hop, hop

    def frames_in(self, samples: int) -> int:
        """Frames complete after `samples` samples of a stream."""
        return max(0, (samples - self.n_fft) // self.frame_hop + 1)

    def forward(self, chunk: torch.Tensor, samples: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """chunk (B, n) and the state (None: the stream starts) -> (frames (B, C, F, k), state)."""
        buffered = chunk if samples is None else torch.cat([samples, chunk], dim=1)
        count = self.frames_in(buffered.shape[1])
        frames = self.norm(self.transform(buffered[:, : (count - 1) * self.frame_hop + self.n_fft]))
        return frames, buffered[:, count * self.frame_hop :]


class StatefulClassifier(nn.Module):
    """Samples in, class probabilities out, with every layer keeping state: each hop computes only
    its new frames through the frontend and the backbone (models/streaming.py).

    `forward(chunk, samples, *states) -> (probabilities, samples, *states)` is one hop (the ONNX
    graph's signature); `start(window)` primes the stream on its first window. A hop's output
    equals one pass of the causal backbone over every frame of the stream so far, pooled over the
    last clip's worth of steps (tests/streaming/test_stateful.py)."""

    def __init__(self, frontend: Frontend, backbone: nn.Module, window: int, hop: int,
                 sample_rate: int | None = None):
        super().__init__()
        reason = stateless_reason(backbone)
        if reason:
            raise CannotStream(reason)
        self.frames = FrameStream(frontend, window, hop, sample_rate)
        self.backbone = StatefulBackbone(backbone, frontend.output_shape(window))
        self.window, self.hop = window, hop
        stride = self.step_stride()
        if self.frames.steps % stride:
            fitting = stride * max(1, self.frames.steps // stride)
            raise CannotStream(f"a hop of {self.frames.steps} frames is not a multiple of the backbone's time "
                               f"stride ({stride} frames): use a hop of {fitting} frames")
        self.eval()

    def start(self, window: torch.Tensor) -> tuple[torch.Tensor, ...]:
        frames, samples = self.frames(window, None)
        logits, *states = self.backbone.start(frames)
        return (logits.float().softmax(dim=-1), samples, *states)

    def forward(self, chunk: torch.Tensor, samples: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        frames, samples = self.frames(chunk, samples)
        logits, *states = self.backbone(frames, *states)
        return (logits.float().softmax(dim=-1), samples, *states)

    def steps_after(self, frames: int) -> int:
        """Backbone steps complete after `frames` frames of a stream: the clip model's own count."""
        with torch.no_grad():
            device = next(self.backbone.parameters()).device
            probe = torch.zeros(1, *self.backbone.input_shape[:-1], frames, device=device)
            return int(self.backbone.backbone.embed(probe).shape[-1])

    def step_counts(self, frame_counts: np.ndarray) -> np.ndarray:
        """`steps_after` for many counts: a causal stack with time stride S emits one step per S frames, so
        the counts are probed once per phase and extended linearly."""
        base = max(int(frame_counts.min()), self.backbone.steps)
        stride = self.step_stride()
        probed = np.array([self.steps_after(base + phase) for phase in range(stride)])
        offset = frame_counts - base
        return probed[offset % stride] + offset // stride

    def step_stride(self) -> int:
        return math.prod(m.time_stride for m in self.backbone.modules() if isinstance(m, _CausalConv))

    @torch.no_grad()
    def recording_probabilities(self, recording: torch.Tensor, ends: np.ndarray,
                                chunk_hops: int = 200) -> torch.Tensor:
        """(len(ends), classes): the probabilities the stream outputs when sample `ends[i]` of a 1-D
        recording has arrived, computed in one causal pass over the recording in long chunks (each
        frame and each backbone step once; the pooling over the last clip's steps by a running sum)."""
        chunk = max(chunk_hops * self.hop, self.window)  # a first chunk shorter than a kernel would emit nothing
        samples, states, steps = None, None, []
        for first in range(0, recording.shape[0], chunk):
            frames, samples = self.frames(recording[None, first : first + chunk], samples)
            if frames.shape[-1]:
                embedded, states = self.backbone.embed(frames, states)
                steps.append(embedded[0].float())
        embeddings = torch.cat(steps, dim=-1)                                   # (D, steps)
        counts = self.step_counts(np.array([self.frames.frames_in(int(end)) for end in ends]))
        return self.pooled_probabilities(embeddings, torch.from_numpy(counts).to(embeddings.device))

    def pooled_probabilities(self, embeddings: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Probabilities of the pooling windows ending before step `counts[i]`."""
        first = (counts - self.backbone.steps).clamp(min=0)  # steps before the stream began count as zeros
        pool = self.backbone.backbone.pool
        if pool == "mean":
            total = F.pad(embeddings.double().cumsum(dim=-1), (1, 0))          # total[:, j] = sum of steps < j
            pooled = ((total[:, counts] - total[:, first]) / self.backbone.steps).T.float()
        elif pool == "last":
            pooled = embeddings[:, counts - 1].T
        else:
            padded = F.pad(embeddings, (self.backbone.steps, 0))
            pooled = torch.stack([pool_steps(padded[None, :, end : end + self.backbone.steps], pool)[0]
                                  for end in counts.tolist()])
        logits = torch.cat([self.backbone.backbone.classify(rows) for rows in pooled.split(4096)])
        return logits.float().softmax(dim=-1)


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


@torch.no_grad()
def streamed_probabilities(model: nn.Module, samples: np.ndarray, starts: np.ndarray, hop: int,
                           batch_size: int = 64) -> np.ndarray:
    """(len(starts), classes) probabilities of an AudioClassifier's windows of `samples` (1-D float) at
    `starts` (multiples of `hop`, and any others), computed as the stream computes them. A backbone that
    streams with state (`stateless_reason` None) makes one causal pass over the recording and gives,
    per window, what the live stream outputs when the window's last sample arrives; any other runs on
    each window's buffered frames, in batches. CannotStream if the frontend cannot stream."""
    device = next(model.parameters()).device
    recording = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).to(device)
    if stateless_reason(model.backbone) is None:
        stream = stateful_from_classifier(model, hop)
        return stream.recording_probabilities(recording, np.asarray(starts) + stream.window).cpu().numpy()
    stream = from_classifier(model, hop)
    found = [stream.probabilities_at(recording, starts[first : first + batch_size]).cpu().numpy()
             for first in range(0, len(starts), batch_size)]
    return np.concatenate(found) if found else np.zeros((0, len(model.class_names)), dtype=np.float32)


def stateful_from_classifier(model: nn.Module, hop: int) -> StatefulClassifier:
    """The stateful streaming form of an AudioClassifier whose backbone streams with state."""
    return StatefulClassifier(model.frontend, model.backbone, int(model.hparams.num_samples), hop,
                              int(model.hparams.sample_rate)).to(next(model.parameters()).device)
