"""The backbone registry: name -> plain `nn.Module(num_classes, input_shape, **hparams)`.

`input_shape` is the frontend's output per clip, (channels, freq, time) for
spectrogram frontends. `forward(features) -> logits`. No Lightning here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

BACKBONES: dict[str, type[nn.Module]] = {}


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} is registered twice")
        BACKBONES[name] = cls
        return cls

    return add


def build_backbone(name: str, num_classes: int, input_shape: tuple[int, ...], **hparams: Any) -> nn.Module:
    if name not in BACKBONES:
        raise ValueError(f"name={name} is not a known backbone: choose one of {', '.join(sorted(BACKBONES))}")
    cls = BACKBONES[name]
    accepted = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(hparams) - set(accepted))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        raise ValueError(f"{unknown[0]}={hparams[unknown[0]]} is not a parameter of backbone {name}: remove it")
    return cls(num_classes=num_classes, input_shape=tuple(input_shape), **hparams)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

