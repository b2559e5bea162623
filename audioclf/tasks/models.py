"""`audioclf-models`: every registered backbone with its default frontend.

For each backbone: parameters, the input shape its model config's frontend
gives for one clip of that config's data (default: 1 s at 16 kHz, unless the
model config sets the sample rate), and MFLOPs per clip of one forward pass
(multiply and add counted as 2). FLOPs come from torch's FlopCounterMode; RNN
layers that it cannot see into (the fused LSTM kernel) are counted by hand.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from audioclf.audio.frontends import build_frontend
from audioclf.config import CONF_DIR, config_errors, model_sample_rate, to_dict
from audioclf.models import BACKBONES, build_backbone, count_parameters
from audioclf.report.tables import markdown_table


def rnn_flops(module: nn.RNNBase, steps: int) -> int:
    """Matmul FLOPs of one sequence through a GRU/LSTM/RNN: 2 * gates * (in + hidden) * hidden
    per step, layer and direction (elementwise gate math left out, as for other layers)."""
    gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
    directions = 2 if module.bidirectional else 1
    total = 0
    for layer in range(module.num_layers):
        inputs = module.input_size if layer == 0 else module.hidden_size * directions
        total += directions * 2 * gates * (inputs + module.hidden_size) * module.hidden_size * steps
    return total


def count_flops(model: nn.Module, features: torch.Tensor) -> int:
    """Forward FLOPs of `model` on `features`, with uncounted RNN layers added by hand."""
    steps: dict[str, int] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.RNNBase):
            def record(mod, args, _out, name=name):
                sequence = args[0]
                steps[name] = sequence.shape[1 if mod.batch_first else 0]
            hooks.append(module.register_forward_hook(record))
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(features)
    finally:
        for hook in hooks:
            hook.remove()
    counted = counter.get_flop_counts()
    total = counter.get_total_flops()
    root = type(model).__name__
    for name, module in model.named_modules():
        if name in steps and sum(counted.get(f"{root}.{name}", {}).values()) == 0:
            total += rnn_flops(module, steps[name])
    return total


def model_config(name: str, overrides: list[str] = ()) -> dict[str, Any]:
    """The model, features and data blocks of the composed train config for `model=name`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", *overrides])
    return {group: to_dict(cfg[group]) for group in ("model", "features", "data")}


def describe(name: str, num_classes: int, overrides: list[str] = ()) -> dict[str, Any]:
    cfg = model_config(name, overrides) if (CONF_DIR / "model" / f"{name}.yaml").is_file() else None
    features = cfg["features"] if cfg else {"name": "logmel"}
    sample_rate = model_sample_rate(cfg) if cfg else 16000
    seconds = float(cfg["data"].get("clip_seconds", 1.0)) if cfg else 1.0
    num_samples = int(round(seconds * sample_rate))
    with config_errors("features", features):
        shape = build_frontend(features, sample_rate).output_shape(num_samples)
    spec = dict(cfg["model"]) if cfg else {"name": name}
    with config_errors("model", spec):
        model = build_backbone(spec.pop("name"), num_classes, shape, **spec)
    flops = count_flops(model, torch.zeros(1, *shape))
    return {"name": name, "params": count_parameters(model), "features": features["name"],
            "sample_rate": sample_rate, "input": shape, "mflops": flops / 1e6}


def table(rows: list[dict[str, Any]]) -> str:
    cells = [(r["name"], f"{r['params']:,}", f"{r['features']} @ {r['sample_rate']} Hz",
              " x ".join(str(d) for d in r["input"]), f"{r['mflops']:.1f}") for r in rows]
    header = ("backbone", "params", "features", "input (C, F, T)", "MFLOPs/clip")
    return markdown_table(header, cells, align="lrllr").rstrip("\n")


def run(num_classes: int = 10, overrides: list[str] = ()) -> None:
    """Print the table of every registered backbone at `num_classes`, with train.py `overrides`
    (e.g. data=fsdd) applied to every model config."""
    with warnings.catch_warnings():  # torchaudio's empty-mel-filter warnings at low sample rates
        warnings.simplefilter("ignore", UserWarning)
        rows = [describe(name, num_classes, overrides) for name in sorted(BACKBONES)]
    print(table(rows))
