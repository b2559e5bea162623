"""Keyword Transformer (Berg et al., "Keyword Transformer: A Self-Attention Model
for Keyword Spotting", Interspeech 2021), written from the paper; details checked
against the official code (ARM-software/keyword-transformer).

Input: 40 MFCC (80 mel bands, 30 ms window, 10 ms hop at 16 kHz), (1, 40, 98).
Layout, time-domain attention (the paper's KWT):

  each time frame (its C x F values) -> Linear -> d       98 tokens
  prepend a learned class token, add a learned position   99 tokens
  embedding (its length follows input_shape)
  12 x PostNorm encoder layer:
      x = LayerNorm(x + MHSA(x));  x = LayerNorm(x + MLP(x)),  MLP = Linear, GELU, Linear
  class token -> Linear -> classes

  KWT-1: d 64, MLP 256, 1 head     607,308 params at 12 classes
  KWT-2: d 128, MLP 512, 2 heads   2,394,252
  KWT-3: d 192, MLP 768, 3 heads   5,360,844

As in the official code, the query/key/value projections have no bias and the head
is a single Linear: the last PostNorm layer already ends in LayerNorm, and the
official model summaries (607,308 and 5,360,844 for KWT-1 and -3) hold no second
one. Weights start from a truncated normal with std 0.02 (the official
initializer), biases at zero. dim, mlp_dim and heads, when given, override the
size's values.
"""

from __future__ import annotations

import torch
from torch import nn

from audioclf.models.registry import register

# size -> (dim, mlp_dim, heads)
SIZES = {1: (64, 256, 1), 2: (128, 512, 2), 3: (192, 768, 3)}


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}: pick a dim that is")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, N, 3 * D) -> 3 x (B, heads, N, D / heads)
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        weights = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.out((weights @ v).transpose(1, 2).flatten(2))


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, mlp_dim: int, heads: int, dropout: float):
        super().__init__()
        self.attention = SelfAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.attention(x)))
        return self.norm2(x + self.dropout(self.mlp(x)))


@register("kwt")
class KeywordTransformer(nn.Module):
    def __init__(self, num_classes: int, input_shape: tuple[int, ...], size: int = 1,
                 dim: int | None = None, mlp_dim: int | None = None, heads: int | None = None,
                 depth: int = 12, dropout: float = 0.0):
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"size={size} is not one of 1, 2, 3 (KWT-1 .. KWT-3)")
        size_dim, size_mlp, size_heads = SIZES[size]
        dim, mlp_dim, heads = dim or size_dim, mlp_dim or size_mlp, heads or size_heads
        channels, bands, frames = input_shape
        self.patch = nn.Linear(channels * bands, dim)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.zeros(1, frames + 1, dim))
        self.layers = nn.Sequential(*(EncoderLayer(dim, mlp_dim, heads, dropout) for _ in range(depth)))
        self.classifier = nn.Linear(dim, num_classes)
        for name, param in self.named_parameters():
            if "norm" not in name:  # LayerNorms keep weight 1, bias 0
                if name.endswith("bias"):
                    nn.init.zeros_(param)
                else:
                    nn.init.trunc_normal_(param, std=0.02, a=-0.04, b=0.04)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(features.flatten(1, 2).transpose(1, 2))    # (B, T, D): one per frame
        tokens = torch.cat([self.class_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        x = self.layers(tokens + self.position)
        return self.classifier(x[:, 0])
