"""The three models of the "Audio Classification with CNN-LSTM networks" blog
(Roudranil's word-classification-with-pytorch), at its input: 22,050 Hz, mel
spectrogram n_fft 1024, hop 512, 128 mels -> (1, 128, 44), 10 digit words.

Parameter counts at 10 classes and that input: cnn_baseline 143,242, crnn
1,942,346, parallel_cnn_lstm 260,042. Other inputs resize the layers that
depend on the shape (the flattened Linear, the CRNN's LSTM input, the
ParallelNet's LSTM input and Linear).

The original applied softmax before a cross-entropy loss and used dropout that
stayed on in evaluation; here the backbones return logits and `dropout` is an
`nn.Dropout` before the classifier, off in eval.
"""

from __future__ import annotations

import torch
from torch import nn

from audioclf.models.registry import register


def _output_shape(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(module(torch.zeros(1, *input_shape)).shape[1:])


@register("cnn_baseline")
class CnnBaseline(nn.Module):
    """BaseModel: 4 x [Conv2d 3x3 pad 2, ReLU, MaxPool 2] 16/32/64/128 -> Flatten -> Linear."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], dropout: float = 0.0):
        super().__init__()
        layers, channels = [], input_shape[0]
        for width in (16, 32, 64, 128):
            layers += [nn.Conv2d(channels, width, 3, padding=2), nn.ReLU(), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        flat = _output_shape(self.features, input_shape)[0]           # 4608 at (1, 128, 44)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(flat, num_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(features))


@register("crnn")
class Crnn(nn.Module):
    """CRNN: mel bands as Conv1d channels, 3 x [Conv1d k5 pad 2, BN, ReLU, MaxPool1d 2]
    128/128/256, then an LSTM whose sequence is the 256 channels and whose input is
    the pooled time axis (44 -> 5), Linear(256 * 96 -> 64), ReLU, Linear(64 -> n)."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], hidden: int = 96,
                 dense: int = 64, dropout: float = 0.0):
        super().__init__()
        channels, bands, _ = input_shape
        layers, width_in = [], channels * bands
        for width in (128, 128, 256):
            layers += [nn.Conv1d(width_in, width, 5, padding=2), nn.BatchNorm1d(width), nn.ReLU(),
                       nn.MaxPool1d(2)]
            width_in = width
        self.conv = nn.Sequential(*layers)
        sequence, steps = _output_shape(self.conv, (channels * bands, input_shape[2]))  # (256, 5)
        if steps < 1:
            raise ValueError(f"crnn needs at least 8 frames, the features give {input_shape[2]}: "
                             "use longer clips or a shorter hop")
        self.lstm = nn.LSTM(steps, hidden, batch_first=True)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(sequence * hidden, dense), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(dense, num_classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.conv(features.flatten(1, 2))                          # (B, 256, 5)
        return self.classifier(self.lstm(x)[0])                        # (B, 256, 96) -> logits


@register("parallel_cnn_lstm")
class ParallelCnnLstm(nn.Module):
    """ParallelNet: a CNN branch, 4 x [Conv2d (3, 1), BN, ReLU, MaxPool] 16/32/64/64
    with pools 2, 2, 2, 4 (-> 64 x 3 x 1 = 192), beside an RNN branch, MaxPool (4, 2)
    then a bidirectional LSTM(22 -> 128) over the 32 pooled mel bands (-> 32 x 256 =
    8192); both flattened, concatenated, Linear(8384 -> n)."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], hidden: int = 128,
                 dropout: float = 0.0):
        super().__init__()
        channels, bands, frames = input_shape
        if bands < 126 or frames < 32:
            raise ValueError(f"parallel_cnn_lstm needs at least 126 bands x 32 frames, the features"
                             f" give {bands} x {frames}: use its default features (model config)")
        layers, width_in = [], channels
        for width, pool in zip((16, 32, 64, 64), (2, 2, 2, 4), strict=True):
            layers += [nn.Conv2d(width_in, width, (3, 1)), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.MaxPool2d(pool)]
            width_in = width
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        self.rnn_pool = nn.MaxPool2d((4, 2))
        pooled_bands, pooled_frames = bands // 4, frames // 2
        self.lstm = nn.LSTM(channels * pooled_frames, hidden, batch_first=True, bidirectional=True)
        flat = _output_shape(self.cnn, input_shape)[0] + pooled_bands * 2 * hidden
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(flat, num_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        cnn = self.cnn(features)
        pooled = self.rnn_pool(features)                               # (B, C, 32, 22)
        rnn = self.lstm(pooled.transpose(1, 2).flatten(2))[0]          # (B, 32, 2 * hidden)
        return self.classifier(torch.cat([cnn, rnn.flatten(1)], dim=1))
