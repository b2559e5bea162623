"""The CNN of TensorFlow's "Simple audio recognition" tutorial.

Keras original: Input(124, 129, 1) -> Resizing(32, 32) -> Normalization ->
Conv2D(32, 3, relu) -> Conv2D(64, 3, relu) -> MaxPooling2D -> Dropout(0.25)
-> Flatten -> Dense(128, relu) -> Dropout(0.5) -> Dense(n). The
Normalization layer lives in our frontend (`features.normalize: global`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audioclf.models.registry import register


@register("tf_cnn")
class TfCnn(nn.Module):
    def __init__(self, num_classes: int, input_shape: tuple[int, ...], resize: int = 32,
                 dropout_conv: float = 0.25, dropout_dense: float = 0.5):
        super().__init__()
        channels = input_shape[0]
        self.resize = resize
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(dropout_conv), nn.Flatten(),
        )
        flat = 64 * ((resize - 4) // 2) ** 2
        self.classifier = nn.Sequential(
            nn.Linear(flat, 128), nn.ReLU(), nn.Dropout(dropout_dense), nn.Linear(128, num_classes)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(features, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        return self.classifier(self.features(x))
