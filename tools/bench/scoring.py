"""How many times real time a long recording is scored (every window's class probabilities, as
`predict stream=true`, eval's `stream_labels=` and train's stream calibration compute them).

python -m tools.bench.scoring                                  # bcresnet (width 3), 60 s, one thread
python -m tools.bench.scoring --ckpt last.ckpt --seconds 120 --json scoring.json

The model is `--ckpt`, or `model=<--model>` as its config builds it with random weights at 12
classes (the cost does not depend on the weights). The recording is noise above the -50 dBFS
silence gate, so every window is classified. Each precision (32-true; bf16-mixed: autocast, as
`precision=auto` picks on a native-bf16 CPU) and batch size is timed once per round, interleaved
so that load on a shared machine hits them alike; medians over the rounds after one warm-up.
x real time = recording seconds / scoring seconds, both of the wall clock and of the process's CPU
time: on a busy machine the wall clock counts the time the thread waited for a core, the CPU time
only what the scoring computed (cache sharing with the other jobs still slows it somewhat).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioclf.config import model_sample_rate
from audioclf.lit.checkpoints import load_classifier
from audioclf.lit.module import AudioClassifier
from audioclf.streaming.evaluation import score_samples
from audioclf.tasks.models import model_config

CLASSES = [f"word{index}" for index in range(10)] + ["_silence_", "_unknown_"]


def random_classifier(name: str, overrides: list[str] = ()) -> AudioClassifier:
    """model=<name> (with config `overrides`, e.g. model.width=1) as its config builds it, untrained."""
    cfg = model_config(name, list(overrides))
    rate = model_sample_rate(cfg)
    samples = int(round(float(cfg["data"].get("clip_seconds", 1.0)) * rate))
    return AudioClassifier(CLASSES, rate, samples, backbone=dict(cfg["model"]), features=dict(cfg["features"]))


def time_scoring(model: AudioClassifier, recording: np.ndarray, precision: str, batch_size: int,
                 hop_seconds: float) -> tuple[float, float]:
    """(wall, CPU) seconds to score the recording once."""
    device = torch.device("cpu")
    started, computed = time.perf_counter(), time.process_time()
    score_samples(model, Path("bench"), recording, [], hop_seconds=hop_seconds, device=device,
                  batch_size=batch_size, precision=precision)
    return time.perf_counter() - started, time.process_time() - computed


def bench(model: AudioClassifier, seconds: float, precisions: list[str], batch_sizes: list[int],
          hop_seconds: float, rounds: int) -> list[dict[str, Any]]:
    rate = int(model.hparams.sample_rate)
    recording = (0.05 * np.random.default_rng(0).standard_normal(int(seconds * rate))).astype(np.float32)
    cases = [(precision, size) for precision in precisions for size in batch_sizes]
    times: dict[tuple[str, int], list[tuple[float, float]]] = {case: [] for case in cases}
    for index in range(rounds + 1):
        for case in cases:
            spent = time_scoring(model, recording, *case, hop_seconds)
            if index:
                times[case].append(spent)
    rows = []
    for precision, size in cases:
        wall = statistics.median(spent[0] for spent in times[(precision, size)])
        cpu = statistics.median(spent[1] for spent in times[(precision, size)])
        rows.append({"precision": precision, "batch_size": size, "hop_s": hop_seconds, "seconds": seconds,
                     "median_s": wall, "x_real_time": seconds / wall, "median_cpu_s": cpu,
                     "x_real_time_cpu": seconds / cpu})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| precision | batch | hop (s) | wall s | x real time (wall) | CPU s | x real time (CPU) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['precision']} | {r['batch_size']} | {r['hop_s']:g} | {r['median_s']:.2f} "
              f"| {r['x_real_time']:.1f} | {r['median_cpu_s']:.2f} | {r['x_real_time_cpu']:.1f} |" for r in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.scoring", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None, help="a trained checkpoint (default: --model, untrained)")
    parser.add_argument("--model", default="bcresnet")
    parser.add_argument("--overrides", nargs="*", default=[], help="config overrides, e.g. model.width=1")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the recording")
    parser.add_argument("--hop", type=float, default=0.1, help="seconds between window starts")
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 32, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_classifier(args.ckpt) if args.ckpt else random_classifier(args.model, args.overrides)
    load = os.getloadavg()
    rows = bench(model.eval(), args.seconds, args.precisions, args.batch_sizes, args.hop, args.rounds)
    described = str(args.ckpt) if args.ckpt else " ".join([f"model={args.model}", *args.overrides, "(untrained)"])
    print(format_table(rows))
    print(f"\n{described}, {model.num_parameters} parameters; {args.threads} torch thread(s), {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} before and {os.getloadavg()[0]:.2f} after; medians of {args.rounds} rounds")
    if args.json:
        args.json.write_text(json.dumps({"model": described, "threads": args.threads, "load_before": load[0],
                                         "load_after": os.getloadavg()[0], "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
