"""Stateful streaming on an accelerator: the live hop-by-hop stream against the offline pass
(`recording_probabilities`, what stream_mode=stateful and train's stream calibration compute) on the
same device, and the device's offline pass against the CPU's.

    python experiments/streaming/device_check.py --device cuda --json experiments/streaming/device_check_cuda.json

Random weights (batch norms with random statistics), 12 classes, log-mel at 16 kHz, 20 ms hops over
a 4 s recording; float32, with TF32 matrix products and convolutions off and then on (cuDNN's
default for convolutions is on).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from audioclf.audio.frontends import build_frontend
from audioclf.models import build_backbone
from audioclf.streaming.runtime import StatefulClassifier

BACKBONES = [("bcresnet", {"causal": True, "width": 3}), ("dscnn", {"causal": True}), ("gru", {})]
RATE, WINDOW, HOP, HOPS = 16000, 16000, 320, 150


def randomized(backbone: torch.nn.Module) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(0)
    for module in backbone.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=generator) - 0.5)
            module.running_var.copy_(0.5 + 1.5 * torch.rand(module.running_var.shape, generator=generator))
    return backbone.eval()


def stream_for(name: str, hparams: dict) -> StatefulClassifier:
    torch.manual_seed(0)
    frontend = build_frontend({"name": "logmel"}, RATE).eval()
    backbone = randomized(build_backbone(name, 12, frontend.output_shape(WINDOW), **hparams))
    return StatefulClassifier(frontend, backbone, WINDOW, HOP, RATE)


@torch.no_grad()
def live(stream: StatefulClassifier, audio: torch.Tensor) -> torch.Tensor:
    probabilities, *states = stream.start(audio[None, :WINDOW])
    rows = [probabilities]
    for hop in range(HOPS):
        start = WINDOW + hop * HOP
        probabilities, *states = stream(audio[None, start : start + HOP], *states)
        rows.append(probabilities)
    return torch.cat(rows)


def check(name: str, hparams: dict, device: str, tf32: bool) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    audio = 0.1 * torch.randn(WINDOW + HOPS * HOP, generator=torch.Generator().manual_seed(1))
    ends = WINDOW + HOP * np.arange(HOPS + 1)
    cpu = stream_for(name, hparams).recording_probabilities(audio, ends)
    stream = stream_for(name, hparams).to(device)
    started = time.perf_counter()
    hop_by_hop = live(stream, audio.to(device)).cpu()
    live_seconds = time.perf_counter() - started
    offline = stream.recording_probabilities(audio.to(device), ends).cpu()
    return {"backbone": name, "device": device, "tf32": tf32,
            "live_vs_offline": float((hop_by_hop - offline).abs().max()),
            "offline_vs_cpu": float((offline - cpu).abs().max()),
            "ms_per_live_hop": 1e3 * live_seconds / (HOPS + 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    modes = (False, True) if args.device.startswith("cuda") else (False,)
    rows = [check(name, hparams, args.device, tf32) for tf32 in modes for name, hparams in BACKBONES]
    for row in rows:
        print(json.dumps(row))
    if args.json:
        meta = {"torch": torch.__version__,
                "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None}
        args.json.write_text(json.dumps({**meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
