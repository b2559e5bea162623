"""Backbones: plain `nn.Module(num_classes, input_shape, **hparams)` by name (see registry.py).

Importing this package imports every family module, so each registers itself.
"""

import importlib
import pkgutil

from audioclf.models.registry import BACKBONES, build_backbone, count_parameters, register

__all__ = ["BACKBONES", "build_backbone", "count_parameters", "register"]

for _family in pkgutil.iter_modules(__path__):
    if _family.name not in ("registry",) and not _family.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_family.name}")
