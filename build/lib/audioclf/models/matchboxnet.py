"""MatchboxNet (Majumdar & Ginsburg, "MatchboxNet: 1D Time-Channel Separable
Convolutional Neural Network Architecture for Speech Commands Recognition",
Interspeech 2020), written from the paper; kernel sizes, biases and BatchNorm eps
from NeMo's matchboxnet_3x1x64 configs and JasperBlock.

Input: 64 MFCC (25 ms window, 10 ms hop at 16 kHz), (1, 64, T); the C x F
coefficients are the Conv1d channels, convolved over time ("same" padding).
Layout of MatchboxNet-BxRxC (the paper's 3x2x64 by default):

  prologue: separable conv k11          128   BN, ReLU, dropout
  B blocks, block b: kernel 13 + 2b       C   (the paper's 13, 15, 17 for B = 3)
      R sub-blocks of separable conv k, BN; ReLU, dropout after each but the last
      residual: 1x1 conv + BN of the block input, added before the last ReLU, dropout
  epilogue: separable conv k29, dilation 2   128   BN, ReLU, dropout
            conv k1                          128   BN, ReLU, dropout
  1x1 conv -> classes, average over time

A separable conv is a depthwise conv of kernel k then a pointwise 1x1 conv, both
without bias (time-channel separable). Dropout defaults to 0.0, NeMo's config value.
3x2x64 has 90,444 params at 12 classes; the paper's 93K is at 35 classes (v2, all
words): 93,411 here.
"""

from __future__ import annotations

import torch
from torch import nn

from audioclf.models.registry import register


def separable_conv(channels_in: int, channels_out: int, kernel: int, dilation: int = 1) -> list[nn.Module]:
    return [
        nn.Conv1d(channels_in, channels_in, kernel, padding=dilation * (kernel - 1) // 2,
                  dilation=dilation, groups=channels_in, bias=False),
        nn.Conv1d(channels_in, channels_out, 1, bias=False),
        nn.BatchNorm1d(channels_out, eps=1e-3),
    ]


def relu_dropout(dropout: float) -> list[nn.Module]:
    return [nn.ReLU(), nn.Dropout(dropout)]


class MatchboxBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, kernel: int, repeats: int, dropout: float):
        super().__init__()
        layers = []
        for i in range(repeats):
            layers += separable_conv(channels_in if i == 0 else channels_out, channels_out, kernel)
            if i < repeats - 1:
                layers += relu_dropout(dropout)
        self.body = nn.Sequential(*layers)
        self.residual = nn.Sequential(nn.Conv1d(channels_in, channels_out, 1, bias=False),
                                      nn.BatchNorm1d(channels_out, eps=1e-3))
        self.out = nn.Sequential(*relu_dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.residual(x))


@register("matchboxnet")
class MatchboxNet(nn.Module):
    def __init__(self, num_classes: int, input_shape: tuple[int, ...], blocks: int = 3,
                 repeats: int = 2, channels: int = 64, dropout: float = 0.0):
        super().__init__()
        if blocks < 1 or repeats < 1 or channels < 1:
            raise ValueError(f"blocks={blocks}, repeats={repeats}, channels={channels} "
                             "must all be at least 1")
        features_in = input_shape[0] * input_shape[1]
        layers = [*separable_conv(features_in, 128, 11), *relu_dropout(dropout)]
        width = 128
        for b in range(blocks):
            layers.append(MatchboxBlock(width, channels, 13 + 2 * b, repeats, dropout))
            width = channels
        layers += [*separable_conv(width, 128, 29, dilation=2), *relu_dropout(dropout),
                   nn.Conv1d(128, 128, 1, bias=False), nn.BatchNorm1d(128, eps=1e-3),
                   *relu_dropout(dropout)]
        self.encoder = nn.Sequential(*layers)
        self.classifier = nn.Conv1d(128, num_classes, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv1d):
                nn.init.xavier_uniform_(module.weight)  # NeMo's default init

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.encoder(features.flatten(1, 2))                        # (B, 128, T)
        return self.classifier(x).mean(dim=2)
