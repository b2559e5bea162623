"""DS-CNN, the keyword-spotting reference model of MLPerf Tiny (Zhang et al., "Hello Edge", 2017;
MLPerf Tiny's `kws_ref_model`), written from the paper's description.

Conv 10x4 (time x frequency), stride 2x2, 64 channels, BN, ReLU; four blocks of depthwise 3x3,
BN, ReLU, pointwise 1x1 to 64, BN, ReLU; dropout 0.4, average over frequency and time, a linear
classifier: about 23k parameters at 12 classes on 40 log-mels (MLPerf Tiny reads 49 x 10 MFCCs).

`causal=True` pads time on the left only, so each step sees frames up to its own and the model
streams with state (models/streaming.py); the first convolution's time stride of 2 means a hop
must be an even number of frames.
"""

from __future__ import annotations

import torch
from torch import nn

from audioclf.models.registry import register
from audioclf.models.streaming import CausalConv2d


def time_conv(channels_in: int, channels_out: int, kernel: tuple[int, int], stride: tuple[int, int],
              groups: int, causal: bool) -> nn.Module:
    """(frequency, time) kernel: 'same' padding in frequency; in time 'same' or causal."""
    freq_pad, time_pad = kernel[0] // 2, kernel[1] // 2
    if causal:
        return CausalConv2d(channels_in, channels_out, kernel, stride, freq_pad, groups=groups, bias=False)
    return nn.Conv2d(channels_in, channels_out, kernel, stride, (freq_pad, time_pad), groups=groups, bias=False)


def conv_bn_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU())


@register("dscnn")
class DsCnn(nn.Module):
    pool = "mean"

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], channels: int = 64, blocks: int = 4,
                 dropout: float = 0.4, causal: bool = False):
        super().__init__()
        self.causal = causal
        layers = [conv_bn_relu(time_conv(input_shape[0], channels, (4, 10), (2, 2), 1, causal), channels)]
        for _ in range(blocks):
            layers.append(conv_bn_relu(time_conv(channels, channels, (3, 3), (1, 1), channels, causal), channels))
            layers.append(conv_bn_relu(nn.Conv2d(channels, channels, 1, bias=False), channels))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def stateless_reason(self) -> str | None:
        if self.causal:
            return None
        return "dscnn: its 'same'-padded convolutions see future frames: train it with model.causal=true"

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """(B, channels, steps): one embedding per two frames, averaged over frequency."""
        return self.features(features).mean(dim=2)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(features).mean(dim=-1))
