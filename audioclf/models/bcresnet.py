"""BC-ResNet (Kim et al., "Broadcasted Residual Learning for Efficient Keyword
Spotting", Interspeech 2021), written from the paper's description.

Input: 40 log-mel bins (30 ms window, 10 ms hop at 16 kHz), (1, 40, T).
Layout for width multiplier w (BC-ResNet-w; the paper's w: 1, 1.5, 2, 3, 6, 8):

  Conv 5x5, stride (2, 1)                         16w   freq 40 -> 20
  stage 1: 2 BC-ResBlocks                          8w
  stage 2: 2 BC-ResBlocks, stride (2, 1), dil. 2  12w   freq 20 -> 10
  stage 3: 4 BC-ResBlocks, stride (2, 1), dil. 4  16w   freq 10 -> 5
  stage 4: 4 BC-ResBlocks, dilation 8             20w
  depthwise conv 5x5, no padding in frequency     20w   freq 5 -> 1
  Conv 1x1                                        32w
  average over time, Conv 1x1 -> classes

A BC-ResBlock keeps a 2D frequency-wise part, f2 = depthwise (3x1) conv +
SubSpectral Norm (BatchNorm per sub-band, 5 sub-bands), and a 1D temporal
part on the frequency-averaged map, f1 = depthwise (1x3, dilated) conv, BN,
Swish, 1x1 conv, channel dropout. The 1D output is broadcast over frequency:
  normal block:     y = ReLU(x + f2(x) + f1(avgpool_freq(f2(x))))
  transition block: x' = ReLU(BN(Conv1x1(x)))  (the first block of a stage,
                    where the width changes), y = ReLU(f2(x') + f1(avgpool_freq(f2(x')))).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from audioclf.models.registry import register
from audioclf.models.streaming import CausalConv2d


class SubSpectralNorm(nn.Module):
    """BatchNorm with separate statistics per frequency sub-band: (B, C, F, T) is
    viewed as (B, C * S, F / S, T). S falls to the largest divisor of F <= S."""

    def __init__(self, channels: int, bands: int, sub_bands: int = 5):
        super().__init__()
        self.sub_bands = max(s for s in range(1, sub_bands + 1) if bands % s == 0)
        self.norm = nn.BatchNorm2d(channels * self.sub_bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, bands, frames = x.shape
        x = x.reshape(batch, channels * self.sub_bands, bands // self.sub_bands, frames)
        return self.norm(x).reshape(batch, channels, bands, frames)


class BcResBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, bands_in: int, stride: int = 1,
                 dilation: int = 1, dropout: float = 0.1, sub_bands: int = 5, causal: bool = False):
        super().__init__()
        self.transition = channels_in != channels_out or stride != 1
        if self.transition:
            self.project = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, bias=False),
                                         nn.BatchNorm2d(channels_out), nn.ReLU())
        bands_out = (bands_in - 1) // stride + 1
        self.freq_conv = nn.Conv2d(channels_out, channels_out, (3, 1), stride=(stride, 1),
                                   padding=(1, 0), groups=channels_out, bias=False)
        self.ssn = SubSpectralNorm(channels_out, bands_out, sub_bands)
        if causal:
            time_conv = CausalConv2d(channels_out, channels_out, (1, 3), dilation=(1, dilation),
                                     groups=channels_out, bias=False)
        else:
            time_conv = nn.Conv2d(channels_out, channels_out, (1, 3), padding=(0, dilation),
                                  dilation=(1, dilation), groups=channels_out, bias=False)
        self.temporal = nn.Sequential(
            time_conv,
            nn.BatchNorm2d(channels_out), nn.SiLU(),
            nn.Conv2d(channels_out, channels_out, 1, bias=False),
            nn.Dropout2d(dropout),
        )
        self.bands_in, self.bands_out = bands_in, bands_out

    def streaming_form(self) -> StreamingBcResBlock:
        return StreamingBcResBlock(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transition:
            x = self.project(x)
        freq = self.ssn(self.freq_conv(x))                             # f2, (B, C, F, T)
        temporal = self.temporal(freq.mean(dim=2, keepdim=True))        # f1, (B, C, 1, T)
        out = freq + temporal                                          # broadcast over F
        return F.relu(out if self.transition else x + out)


def frequency_matrix(conv: nn.Conv2d, norm: SubSpectralNorm, bands_in: int) -> tuple[torch.Tensor, torch.Tensor]:
    """f2 in eval mode as a linear map over frequency: (C, bands_out, bands_in) matrices and a (C, bands_out)
    shift, the zero-padded depthwise (k x 1) convolution followed by SubSpectral Norm's per-sub-band affine."""
    kernel, stride, pad = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    bands_out = (bands_in + 2 * pad - kernel) // stride + 1
    matrix = conv.weight.new_zeros(conv.out_channels, bands_out, bands_in)
    for band in range(bands_out):
        for tap in range(kernel):
            source = band * stride + tap - pad
            if 0 <= source < bands_in:
                matrix[:, band, source] += conv.weight[:, 0, tap, 0]
    bn = norm.norm
    scale = torch.rsqrt(bn.running_var + bn.eps) * (bn.weight if bn.affine else 1.0)
    shift = (bn.bias if bn.affine else 0.0) - bn.running_mean * scale
    per_band = bands_out // norm.sub_bands  # SubSpectralNorm's channel c * S + band // per_band

    def by_band(values: torch.Tensor) -> torch.Tensor:
        return values.view(conv.out_channels, norm.sub_bands).repeat_interleave(per_band, dim=1)

    return matrix * by_band(scale)[..., None], by_band(shift)


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A 1x1 convolution as a matrix product: (B, C_in, F, T) -> (B, C_out, F, T); weight (C_out, C_in)."""
    out = torch.matmul(weight, x.flatten(2))
    return (out if bias is None else out + bias[:, None]).view(x.shape[0], -1, *x.shape[2:])


class StreamingBcResBlock(nn.Module):
    """A BcResBlock in eval mode made for short hops, equal within float rounding, in a few calls
    (on a hop of 2 frames each call's overhead, not its arithmetic, is the cost): f2 (frequency
    convolution and SubSpectral Norm) and the mean over frequency that feeds f1 are linear, so they are
    one batched matrix product (f2's rows and their mean as one more row); batch norms are folded into
    the convolutions before them; 1x1 convolutions are matrix products. The temporal convolution stays a
    module: it carries its state (models/streaming.py). Built by `models.streaming.for_streaming`."""

    def __init__(self, block: BcResBlock):
        super().__init__()
        self.transition = block.transition
        with torch.no_grad():
            if self.transition:
                project = fuse_conv_bn_eval(block.project[0], block.project[1])
                self.register_buffer("project_weight", project.weight.flatten(1).clone())
                self.register_buffer("project_bias", project.bias.clone())
            matrix, shift = frequency_matrix(block.freq_conv, block.ssn, block.bands_in)
            self.register_buffer("frequency", torch.cat([matrix, matrix.mean(dim=1, keepdim=True)], dim=1))
            self.register_buffer("shift", torch.cat([shift, shift.mean(dim=1, keepdim=True)], dim=1)[..., None])
            time_conv, norm, _, mix, _ = block.temporal  # conv, BN, SiLU, 1x1 conv, dropout (none in eval)
            self.time_conv = fuse_conv_bn_eval(time_conv, norm)
            self.register_buffer("mix", mix.weight.flatten(1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transition:
            x = F.relu(pointwise(x, self.project_weight, self.project_bias))
        both = torch.matmul(self.frequency, x) + self.shift            # (B, C, F + 1, T)
        freq, mean = both[:, :, :-1], both[:, :, -1:]                  # f2, and its mean over F
        out = freq + pointwise(F.silu(self.time_conv(mean)), self.mix)  # f1 broadcast over F
        return F.relu(out if self.transition else x + out)


@register("bcresnet")
class BcResNet(nn.Module):
    """`causal=True` pads every temporal convolution on the left only (stem, blocks, head): each
    output frame sees only frames up to its own, so the model streams with state
    (models/streaming.py). Trained as a clip model like the original."""

    # (blocks, width, frequency stride, temporal dilation) per stage
    STAGES = ((2, 8, 1, 1), (2, 12, 2, 2), (4, 16, 2, 4), (4, 20, 1, 8))
    pool = "mean"

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], width: float = 1.0,
                 dropout: float = 0.1, sub_bands: int = 5, causal: bool = False):
        super().__init__()
        channels, bands, _ = input_shape
        self.causal = causal

        def scaled(c: int) -> int:
            return max(1, int(round(c * width)))

        stem = scaled(16)
        stem_conv = (CausalConv2d(channels, stem, 5, stride=(2, 1), padding=2, bias=False) if causal
                     else nn.Conv2d(channels, stem, 5, stride=(2, 1), padding=2, bias=False))
        self.stem = nn.Sequential(stem_conv, nn.BatchNorm2d(stem), nn.ReLU())
        bands = (bands - 1) // 2 + 1
        blocks, width_in = [], stem
        for count, base, stride, dilation in self.STAGES:
            for i in range(count):
                block = BcResBlock(width_in, scaled(base), bands, stride if i == 0 else 1, dilation,
                                   dropout, sub_bands, causal)
                blocks.append(block)
                width_in, bands = scaled(base), block.bands_out
        self.blocks = nn.Sequential(*blocks)
        head = scaled(32)
        kernel = (min(5, bands), 5)
        head_conv = (CausalConv2d(width_in, width_in, kernel, groups=width_in, bias=False) if causal
                     else nn.Conv2d(width_in, width_in, kernel, padding=(0, 2), groups=width_in, bias=False))
        self.head = nn.Sequential(
            head_conv, nn.Conv2d(width_in, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU(),
        )
        self.classifier = nn.Conv2d(head, num_classes, 1)

    def stateless_reason(self) -> str | None:
        if self.causal:
            return None
        return ("bcresnet: its 'same'-padded temporal convolutions see future frames: train it with "
                "model.causal=true to stream with state")

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 32w, T): one embedding per frame, before the mean over time."""
        return self.head(self.blocks(self.stem(features))).mean(dim=2)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled[..., None, None]).flatten(1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(features).mean(dim=-1))
