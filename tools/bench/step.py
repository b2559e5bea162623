"""Per-hop cost of a streaming step in each runtime: the windowed hop against the carried one.

python -m tools.bench.step --backbones bcresnet gru dscnn --hops-ms 20 --runtimes eager torchscript onnxruntime

Each backbone is built as model=<name> with model.causal=true where it has the option (12 classes,
random weights), batch 1, one thread. Per hop:
  windowed  the frontend and the backbone on the latest whole window, then softmax: what a hop costs
            when the backbone keeps no state
  carried   the StatefulClassifier step (audioclf/streaming/runtime.py): the hop's samples through the
            frontend and every layer, each keeping its state
each in each runtime:
  eager        PyTorch as audioclf runs it
  torchscript  traced at the hop's shapes and frozen (what format=torchscript streaming=true writes)
  onnxruntime  exported to ONNX as audioclf-export writes it (streaming=true for the step), one
               intra-op thread
Windowed and carried are interleaved hop by hop, so load on a shared machine hits them alike; medians
after warm-up. `vs eager windowed` divides the eager windowed hop (what a hop cost before backbones
kept state) by the row's carried hop; `windowed / carried` compares within the row's runtime.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audioclf.deploy.export import quiet
from audioclf.deploy.streaming import export_step_onnx, export_step_torchscript, step_runner
from audioclf.streaming.runtime import StatefulClassifier, framing_of
from tools.bench.stream import CLOCKS, add_timing_args, build, nearest_hop, report

RUNTIMES = ("eager", "torchscript", "onnxruntime")


class Windowed(nn.Module):
    """Waveform window in, class probabilities out: the hop of a backbone that keeps no state."""

    def __init__(self, frontend: nn.Module, backbone: nn.Module):
        super().__init__()
        self.frontend, self.backbone = frontend, backbone

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.frontend(window)).softmax(dim=-1)


def windowed_runner(model: Windowed, window: torch.Tensor, runtime: str, folder: Path) -> Callable[..., Any]:
    if runtime == "eager":
        return model
    if runtime == "torchscript":
        with quiet(), torch.no_grad():
            return torch.jit.freeze(torch.jit.trace(model, (window,), check_trace=False))
    path = folder / "windowed.onnx"
    with quiet():
        torch.onnx.export(model, (window,), dynamo=True, opset_version=18, verbose=False).save(str(path))
    return step_runner(path, threads=1)


def carried_runner(step: StatefulClassifier, runtime: str, folder: Path) -> Callable[..., Any]:
    if runtime == "eager":
        return step
    if runtime == "torchscript":
        return torch.jit.load(str(export_step_torchscript(step, folder / "step.pt")))
    path = export_step_onnx(step, folder / "step.onnx")
    return step_runner(path, threads=1)


@torch.inference_mode()
def bench(name: str, hop_ms: float, runtime: str, rounds: int, warmup: int, clock: str) -> dict[str, Any]:
    frontend, backbone, rate, window, features = build(name, causal=True)
    hop = nearest_hop(framing_of(frontend.transform, window).hop, rate, hop_ms)
    step = StatefulClassifier(frontend, backbone, window, hop, rate)
    model = Windowed(frontend, backbone).eval()
    recording = 0.1 * torch.randn(1, window + (warmup + rounds) * hop, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode(False):
        run_windowed = windowed_runner(model, recording[:, :window], runtime, Path(folder))
        run_step = carried_runner(step, runtime, Path(folder))
    numpy_in = runtime == "onnxruntime"
    convert = (lambda t: t.numpy()) if numpy_in else (lambda t: t)
    _, *state = step.start(recording[:, :window])
    state = [convert(s) for s in state]
    now, times = CLOCKS[clock], {"windowed": [], "carried": []}
    for index in range(warmup + rounds):
        end = window + (index + 1) * hop
        latest, chunk = convert(recording[:, end - window : end]), convert(recording[:, end - hop : end])
        started = now()
        run_windowed(latest)
        between = now()
        _, *state = run_step(chunk, *state)
        if index >= warmup:
            times["windowed"].append((between - started) * 1e3)
            times["carried"].append((now() - between) * 1e3)
    medians = {key: statistics.median(values) for key, values in times.items()}
    return {"backbone": name, "features": features, "hop_ms": 1000 * hop / rate, "runtime": runtime,
            "clock": clock, **medians, "rtf_carried": medians["carried"] / hop * rate / 1000}


def format_table(rows: list[dict[str, Any]]) -> str:
    eager = {(r["backbone"], r["hop_ms"]): r["windowed"] for r in rows if r["runtime"] == "eager"}
    lines = ["| backbone | hop (ms) | runtime | hop windowed (ms) | hop carried (ms) | RTF carried "
             "| windowed / carried | vs eager windowed |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        base = eager.get((r["backbone"], r["hop_ms"]))
        versus = f"{base / r['carried']:.1f}x" if base else "-"
        lines.append(f"| `{r['backbone']}` | {r['hop_ms']:.1f} | {r['runtime']} | {r['windowed']:.3f} "
                     f"| {r['carried']:.3f} | {r['rtf_carried']:.4f} | {r['windowed'] / r['carried']:.1f}x "
                     f"| {versus} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.step", description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["bcresnet", "gru", "dscnn"])
    parser.add_argument("--hops-ms", nargs="+", type=float, default=[20.0])
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    add_timing_args(parser, rounds=100, warmup=10, clock="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    rows = [bench(name, hop_ms, runtime, args.rounds, args.warmup, args.clock)
            for hop_ms in args.hops_ms for name in args.backbones for runtime in args.runtimes]
    report(format_table(rows), rows, args, load)
    return rows


if __name__ == "__main__":
    main()
