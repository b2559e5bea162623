"""Per-hop CPU latency of streaming detection: stateful (audioclf/streaming/runtime.py) vs windowed.

python -m tools.bench.stream                                   # every registered backbone, hops 100 and 20 ms
python -m tools.bench.stream --backbones tf_cnn crnn bcresnet --hops-ms 100 --rounds 30
python -m tools.bench.stream --backbones bcresnet gru dscnn --causal --hops-ms 10 20 100   # state in the backbone

Each backbone is built at its own config's features, sample rate and clip length (12 classes,
random weights: latency does not depend on them). The hop is the multiple of the frame hop
nearest the one asked for (e.g. 96 ms for 8 ms STFT frames), shown in the table. Per hop, on one
thread, batch 1:
  windowed   frontend on the whole window, then the backbone (what audioclf/streaming/detection.py does)
  stateful   the new frames (+ the window's edge frames) into the ring buffer, then the backbone
             on the ring's window
  carried    (backbones that stream with state: --causal builds those with a `causal` option causal)
             the hop's new frames through the frontend and every backbone layer, each keeping its
             state (StatefulClassifier): what a hop costs when nothing is recomputed
The four timings (frontend and whole hop, each way) are interleaved round by round so load on a
shared machine hits them alike; medians after warm-up. RTF = compute time / hop duration.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from audioclf.audio.frontends import build_frontend
from audioclf.config import CONF_DIR, model_sample_rate
from audioclf.models import BACKBONES, build_backbone
from audioclf.streaming.runtime import (
    CannotStream,
    StatefulClassifier,
    StreamingClassifier,
    framing_of,
    stateless_reason,
)
from audioclf.tasks.models import model_config

CLASSES = 12


def build(name: str, causal: bool = False) -> tuple[torch.nn.Module, torch.nn.Module, int, int, str]:
    """(frontend, backbone, sample rate, window samples, features config name) as model=<name> trains it
    (with model.causal=true where `causal` and the model has that option)."""
    has_config = (CONF_DIR / "model" / f"{name}.yaml").is_file()
    cfg = model_config(name) if has_config else None
    if cfg and causal and "causal" in cfg["model"]:
        cfg = model_config(name, ["model.causal=true"])
    features = cfg["features"] if cfg else {"name": "logmel"}
    rate = model_sample_rate(cfg) if cfg else 16000
    window = int(round(float(cfg["data"].get("clip_seconds", 1.0)) * rate)) if cfg else rate
    frontend = build_frontend(features, rate).eval()
    spec = dict(cfg["model"]) if cfg else {"name": name}
    backbone = build_backbone(spec.pop("name"), CLASSES, frontend.output_shape(window), **spec).eval()
    return frontend, backbone, rate, window, features_choice(name)


def features_choice(name: str) -> str:
    """The conf/features file model=<name> picks (logmel80, melspec128, ...)."""
    path = CONF_DIR / "model" / f"{name}.yaml"
    entries = (OmegaConf.load(path).get("defaults") or []) if path.is_file() else []
    chosen = [entry["override /features"] for entry in entries if "override /features" in entry]
    return chosen[0] if chosen else "logmel"


def nearest_hop(frame_hop: int, rate: int, hop_ms: float) -> int:
    """The multiple of the frame hop (at least one) nearest `hop_ms`, in samples."""
    return max(1, round(hop_ms * rate / 1000 / frame_hop)) * frame_hop


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}  # cpu: this thread's CPU time, blind to waiting


def medians_ms(calls: dict[str, Callable[[], Any]], rounds: int, warmup: int,
               clock: str = "wall") -> dict[str, float]:
    times: dict[str, list[float]] = {key: [] for key in calls}
    now = CLOCKS[clock]
    for index in range(warmup + rounds):
        for key, call in calls.items():
            started = now()
            call()
            if index >= warmup:
                times[key].append((now() - started) * 1e3)
    return {key: statistics.median(values) for key, values in times.items()}


@torch.inference_mode()
def bench(name: str, hop_ms: float, rounds: int, warmup: int, causal: bool = False, clock: str = "wall",
          compiled: bool = False) -> dict[str, Any]:
    frontend, backbone, rate, window, features = build(name, causal)
    hop = nearest_hop(framing_of(frontend.transform, window).hop, rate, hop_ms)
    stream = StreamingClassifier(frontend, backbone, window, hop, rate)
    recording = 0.1 * torch.randn(1, window + (warmup + rounds + 1) * hop, generator=torch.Generator().manual_seed(0))
    _, samples, ring = stream.start(recording[:, :window])
    state = {"samples": samples, "ring": ring, "hop": 0}

    def chunk() -> torch.Tensor:
        state["hop"] = state["hop"] % (warmup + rounds) + 1
        start = window + (state["hop"] - 1) * hop
        return recording[:, start : start + hop]

    def stateful_frontend() -> None:
        stream.frontend(chunk(), state["samples"], state["ring"])

    def stateful() -> None:
        _, state["samples"], state["ring"] = stream(chunk(), state["samples"], state["ring"])

    latest = recording[:, :window]
    calls = {
        "frontend_windowed": lambda: frontend(latest),
        "frontend_stateful": stateful_frontend,
        "windowed": lambda: backbone(frontend(latest)).softmax(-1),
        "stateful": stateful,
    }
    reason = stateless_reason(backbone)
    try:
        carried = StatefulClassifier(frontend, backbone, window, hop, rate) if reason is None else None
    except CannotStream as error:  # e.g. a 10 ms hop for a backbone with a time stride of 2 frames
        carried, reason = None, str(error)
    if carried is not None:
        _, *carried_state = carried.start(recording[:, :window])
        step = torch.compile(carried, dynamic=False) if compiled else carried

        def carried_hop() -> None:
            _, *carried_state[:] = step(chunk(), *carried_state)

        calls["carried"] = carried_hop
    timed = medians_ms(calls, rounds, warmup, clock)
    head, tail = stream.frontend.edge_frames
    seconds = hop / rate
    return {
        "backbone": name, "features": features, "hop_ms": 1000 * seconds, "new_frames": stream.frontend.new,
        "edge_frames": head + tail, "window_frames": stream.frontend.framing.frames, **timed,
        "rtf_windowed": timed["windowed"] / 1000 / seconds, "rtf_stateful": timed["stateful"] / 1000 / seconds,
        "carried": timed.get("carried"),
        "rtf_carried": timed["carried"] / 1000 / seconds if "carried" in timed else None,
        "causal": bool(getattr(backbone, "causal", False)), "clock": clock, "compiled": compiled and reason is None,
        "backbone_state": "carried" if reason is None else f"none: {reason}",
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    carried = any(r.get("carried") is not None for r in rows)
    lines = [
        "| backbone | features | hop (ms) | frames per hop: new + edge / window | frontend windowed (ms) "
        "| frontend stateful (ms) | hop windowed (ms) | hop stateful (ms) | RTF windowed | RTF stateful |"
        + (" hop carried (ms) | RTF carried | windowed / carried |" if carried else ""),
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if carried else ""),
    ]
    for r in rows:
        name = r["backbone"] + (" (causal)" if r.get("causal") else "") + (", compiled" if r.get("compiled") else "")
        line = (
            f"| `{name}` | {r['features']} | {r['hop_ms']:.1f} | {r['new_frames']} + {r['edge_frames']}"
            f" / {r['window_frames']} | {r['frontend_windowed']:.2f} | {r['frontend_stateful']:.2f} "
            f"| {r['windowed']:.2f} | {r['stateful']:.2f} | {r['rtf_windowed']:.3f} | {r['rtf_stateful']:.3f} |"
        )
        if carried:
            line += (f" {r['carried']:.3f} | {r['rtf_carried']:.4f} | {r['windowed'] / r['carried']:.1f}x |"
                     if r.get("carried") is not None else " - | - | - |")
        lines.append(line)
    return "\n".join(lines)


def add_timing_args(parser: argparse.ArgumentParser, rounds: int, warmup: int, clock: str) -> None:
    """--rounds, --warmup, --threads and --clock, as the hop benches (this one and step.py) take them."""
    parser.add_argument("--rounds", type=int, default=rounds, help="timed hops per measurement")
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default=clock,
                        help="cpu: the thread's CPU time (a loaded machine's waiting left out)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.stream", description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=sorted(BACKBONES), choices=sorted(BACKBONES))
    parser.add_argument("--hops-ms", nargs="+", type=float, default=[100.0, 20.0])
    add_timing_args(parser, rounds=50, warmup=5, clock="wall")
    parser.add_argument("--compile", action="store_true",
                        help="run the carried hop through torch.compile (minutes of compiling per backbone and hop)")
    parser.add_argument("--causal", action="store_true",
                        help="build the backbones that have a causal option causal (they stream with state)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    rows = [bench(name, hop_ms, args.rounds, args.warmup, args.causal, args.clock, args.compile)
            for hop_ms in args.hops_ms for name in args.backbones]
    report(format_table(rows), rows, args, load)
    return rows


def report(table: str, rows: list[dict[str, Any]], args: argparse.Namespace, load: tuple[float, ...]) -> None:
    """Print the table and how it was measured; write the rows to --json if given."""
    print(table)
    print(f"\n{args.clock} clock; {args.threads} thread(s), {os.cpu_count()} CPUs, load average {load[0]:.2f} "
          f"before and {os.getloadavg()[0]:.2f} after; medians of {args.rounds} hops after {args.warmup} warm-up")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
