"""CNNs over the phased spectrogram (`features=phased_stft`, (P, freq, time)).

`phase3d` reads the volume as one channel of (phase, freq, time) and convolves
it in 3D, padding the phase axis circularly (phase wraps around) and freq/time
with zeros. `phase2d` reads the P phase bins as the input channels of a 2D CNN.

Memory and time: at 16 kHz the volume is 10 x 129 x 253 per clip (1.3 MB); a
3x3x3 conv with 16 channels at that resolution holds ~21 MB of activations per
clip per layer, several GB for a batch of 64 with backward, and its backward
pass dominates a CPU step. So the frontend keeps full resolution and the first
3D layer downsamples: a (3 phase, 4 freq, 4 time) kernel at stride (1, 4, 4)
(every phase bin kept, freq/time cut 16x), then strided 3x3x3 blocks. A batch
of 64 trains in about 1.5 GB of memory on a CPU (see tests/models/test_models.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audioclf.models.registry import register


class _PhaseConv3d(nn.Module):
    """Conv3d 3x3x3 with circular padding on phase, zeros on freq/time; BN; ReLU."""

    def __init__(self, channels_in: int, channels_out: int, stride: tuple[int, int, int]):
        super().__init__()
        self.conv = nn.Conv3d(channels_in, channels_out, 3, stride=stride, padding=(0, 1, 1),
                              bias=False)
        self.norm = nn.BatchNorm3d(channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, 0, 0, 1, 1), mode="circular")               # phase axis only
        return F.relu(self.norm(self.conv(x)))


class _PhaseStem(nn.Module):
    """The first 3D layer: kernel (3 phase, s freq, s time), stride (1, s, s), circular on
    phase; BN; ReLU. Computed as one Conv2d per phase bin that yields the three phase
    taps, then summed across neighbouring bins with `roll` on the 16x smaller output:
    the same function as a Conv3d on the circularly padded volume, without copying
    the full-resolution input (which made the Conv3d's backward the step's cost)."""

    def __init__(self, channels_out: int, stride: int):
        super().__init__()
        self.channels_out, self.stride = channels_out, stride
        # a stride x stride patch -> 3 phase taps x channels_out (a Conv2d whose kernel
        # equals its stride, as one matmul: ~5x faster backward on a CPU)
        self.taps = nn.Linear(stride * stride, 3 * channels_out, bias=False)
        self.norm = nn.BatchNorm3d(channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:                 # (B, P, F, T)
        batch, phases, bands, frames = x.shape
        s = self.stride
        rows, cols = bands // s, frames // s
        patches = x[:, :, : rows * s, : cols * s].reshape(batch, phases, rows, s, cols, s)
        taps = self.taps(patches.transpose(3, 4).reshape(batch, phases, rows, cols, s * s))
        before, centre, after = taps.view(batch, phases, rows, cols, 3, self.channels_out).unbind(4)
        # output at phase p = tap 0 on bin p-1 + tap 1 on bin p + tap 2 on bin p+1 (mod P)
        out = before.roll(1, dims=1) + centre + after.roll(-1, dims=1)
        return F.relu(self.norm(out.permute(0, 4, 1, 2, 3)))            # (B, C, P, F', T')


@register("phase3d")
class Phase3d(nn.Module):
    def __init__(self, num_classes: int, input_shape: tuple[int, ...],
                 channels: list[int] | tuple[int, ...] = (8, 16, 32, 64), stem_stride: int = 4,
                 dropout: float = 0.2):
        super().__init__()
        blocks = [_PhaseStem(channels[0], stem_stride)]
        strides = [(1, 2, 2), (2, 2, 2), (1, 2, 2)]
        for i, (width_in, width) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
            blocks.append(_PhaseConv3d(width_in, width, strides[min(i, len(strides) - 1)]))
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels[-1], num_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.blocks(features)                                       # (B, C, P', F', T')
        return self.classifier(x.mean(dim=(2, 3, 4)))


@register("phase2d")
class Phase2d(nn.Module):
    """Phase bins as channels: a 4x4 stride-4 stem (as phase3d's), then 3x3 conv blocks
    with max-pooling, global average pooling, Linear."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...],
                 channels: list[int] | tuple[int, ...] = (16, 32, 64, 128), stem_stride: int = 4,
                 dropout: float = 0.2):
        super().__init__()
        layers = [
            nn.Conv2d(input_shape[0], channels[0], stem_stride, stride=stem_stride, bias=False),
            nn.BatchNorm2d(channels[0]), nn.ReLU(),
        ]
        for width_in, width in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(width_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels[-1], num_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(features).mean(dim=(2, 3)))
