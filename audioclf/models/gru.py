"""The Conv1D + GRU model of a Keras question, as posted (`gru_seq2seq`) and fixed (`gru`).

Posted form, over the TF tutorial's 124 x 129 STFT (time x freq): Conv1D(196,
kernel 15, stride 2) -> 55 steps, BatchNorm, ReLU, Dropout(0.8), GRU(128,
return_sequences) + Dropout(0.8) + BatchNorm, GRU(128) + Dropout(0.8) +
BatchNorm + Dropout(0.8), TimeDistributed(Dense(n, sigmoid)), trained with
binary cross-entropy against the clip's one-hot label copied to all 55 frames
(the trigger-word recipe applied to whole-clip classification).

Our frontend gives (C, F, T); both models read C * F features per time step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audioclf.models.registry import register
from audioclf.models.streaming import CausalConv1d, StatefulGRU, pool_steps


class _ConvGruEncoder(nn.Module):
    """Conv1D -> BN -> ReLU -> drop -> [GRU -> drop -> BN] x 2 -> drop: (B, steps, hidden).

    Causal as posted (a valid convolution, unidirectional GRUs), so it streams with state: the
    convolution keeps its last input frames, the GRUs their hidden states (models/streaming.py)."""

    def __init__(self, input_shape: tuple[int, ...], conv_channels: int, kernel_size: int,
                 stride: int, hidden: int, dropout: float):
        super().__init__()
        channels, bands, frames = input_shape
        if frames < kernel_size:
            raise ValueError(f"kernel_size={kernel_size} is more than the {frames} frames the features give: "
                             "lower it or use longer clips")
        self.conv = CausalConv1d(channels * bands, conv_channels, kernel_size, stride, clip_pad=0)
        self.conv_norm = nn.BatchNorm1d(conv_channels)
        self.gru1 = StatefulGRU(conv_channels, hidden, batch_first=True)
        self.norm1 = nn.BatchNorm1d(hidden)
        self.gru2 = StatefulGRU(hidden, hidden, batch_first=True)
        self.norm2 = nn.BatchNorm1d(hidden)
        self.drop = nn.Dropout(dropout)

    @staticmethod
    def _norm(norm: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:  # Keras BN on (B, T, C)
        return norm(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.flatten(1, 2)                                    # (B, C*F, T)
        x = self.drop(F.relu(self.conv_norm(self.conv(x)))).transpose(1, 2)
        x = self._norm(self.norm1, self.drop(self.gru1(x)[0]))
        x = self._norm(self.norm2, self.drop(self.gru2(x)[0]))
        return self.drop(x)


@register("gru_seq2seq")
class GruSeq2Seq(nn.Module):
    """The posted, failing form: a sigmoid per frame, the clip label on every frame.

    `forward` returns clip logits (the mean of the per-frame logits) so the
    shared metrics work; `loss` is the original's: binary cross-entropy of
    every frame's sigmoid against the one-hot clip label. The module calls a
    backbone's `loss(logits, labels)` when it has one.
    """

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], conv_channels: int = 196,
                 kernel_size: int = 15, stride: int = 2, hidden: int = 128, dropout: float = 0.8):
        super().__init__()
        self.encoder = _ConvGruEncoder(input_shape, conv_channels, kernel_size, stride, hidden,
                                       dropout)
        self.frame_head = nn.Linear(hidden, num_classes)  # TimeDistributed(Dense); sigmoid: `loss`
        self.frame_logits: torch.Tensor | None = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.frame_logits = self.frame_head(self.encoder(features))    # (B, steps, n)
        return self.frame_logits.mean(dim=1)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-frame sigmoid BCE on the frames of the latest `forward` (which gave `logits`)."""
        frames = self.frame_logits
        if frames is None or frames.shape[0] != logits.shape[0]:
            raise RuntimeError("gru_seq2seq.loss needs the frames of the forward that gave logits")
        target = F.one_hot(labels, frames.shape[-1]).to(frames.dtype)
        return F.binary_cross_entropy_with_logits(frames, target[:, None, :].expand_as(frames))


@register("gru")
class Gru(nn.Module):
    """The fixed form: same Conv1D/GRU stack, sane dropout, the GRU output pooled
    over time (mean, max or last step) into one logit vector per clip, trained with
    softmax cross-entropy on log features."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], conv_channels: int = 196,
                 kernel_size: int = 15, stride: int = 2, hidden: int = 128, dropout: float = 0.2,
                 pool: str = "mean"):
        super().__init__()
        if pool not in ("mean", "max", "last"):
            raise ValueError(f"pool={pool} is unknown: use mean, max or last")
        self.encoder = _ConvGruEncoder(input_shape, conv_channels, kernel_size, stride, hidden,
                                       dropout)
        self.pool = pool
        self.classifier = nn.Linear(hidden, num_classes)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """(B, hidden, steps): the GRU's outputs, before pooling over time."""
        return self.encoder(features).transpose(1, 2)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(pool_steps(self.embed(features), self.pool))

