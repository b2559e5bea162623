"""Mixed precision on CPU: LSTMs under bf16 autocast.

PyTorch's CPU autocast sends `nn.LSTM` to oneDNN in bfloat16, and on CPUs
without native bf16 (no AVX512-BF16/AMX) oneDNN refuses it ("could not create
a primitive descriptor for the LSTM forward propagation primitive").
`CpuBf16Lstm` turns oneDNN off while a model that holds an LSTM runs under
`trainer.precision=bf16-mixed` on the CPU: the LSTM then runs in float32 and
the other layers stay in bf16 (native kernels). GPUs are not affected.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn


class CpuBf16Lstm(L.Callback):
    def __init__(self) -> None:
        self.saved: bool | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        bf16 = str(trainer.precision).startswith("bf16")
        on_cpu = trainer.strategy.root_device.type == "cpu"
        has_lstm = any(isinstance(m, nn.LSTM) for m in pl_module.modules())
        if bf16 and on_cpu and has_lstm and self.saved is None:
            self.saved = torch.backends.mkldnn.enabled
            torch.backends.mkldnn.enabled = False

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.saved is not None:
            torch.backends.mkldnn.enabled = self.saved
            self.saved = None
