"""The Keras FSDD digit LSTM: LSTM(128) -> Dense(100, relu) -> Dense(n), over
mel frames (80 mels, frame 512, hop 256: 0.5 s at 8 kHz -> 16 frames).

Fed raw mel power (no log, no standardization) in librosa's (mels, frames)
layout, as the original was (`features=raw_power_mel`), it steps over mel bands
and stays at chance; log-mel standardized per band (its default frontend) learns.
Time is the sequence axis; the last hidden state feeds the dense layers, so
the clip must be mostly speech: the model config keeps the original's 0.5 s
(1 s FSDD clips, mostly zero padding after the digit, leave it at chance). The
PyTorch LSTM has two bias vectors per gate where Keras has one (+512 params).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audioclf.models.registry import register


@register("lstm_fsdd")
class LstmFsdd(nn.Module):
    def __init__(self, num_classes: int, input_shape: tuple[int, ...], hidden: int = 128,
                 dense: int = 100):
        super().__init__()
        channels, bands, _ = input_shape
        self.lstm = nn.LSTM(channels * bands, hidden, batch_first=True)
        self.dense = nn.Linear(hidden, dense)
        self.out = nn.Linear(dense, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        sequence = features.flatten(1, 2).transpose(1, 2)              # (B, T, C*F)
        _, (state, _) = self.lstm(sequence)
        return self.out(F.relu(self.dense(state[-1])))
