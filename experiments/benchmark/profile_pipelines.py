"""Where the time of a training step goes, naive vs. ours (torch.profiler + cProfile).

    python experiments/benchmark/profile_pipelines.py --clips 30000 --backbone tf_cnn

Profiles `--steps` training steps of each pipeline in this process (after a
warm-up), prints the top operators by self CPU time, the share of wall time
the training loop spent waiting for the naive DataLoader, and a cProfile of
the naive Dataset's `__getitem__` run in-process (what each worker does).
Uses the WAVs and clip bank that `python -m tools.bench.pipeline` made.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import pstats
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.data import DataLoader

from tools.bench import pipeline as bench
from audioclf.data.datamodule import AudioDataModule
from audioclf.lit.module import AudioClassifier


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=30000)
    parser.add_argument("--backbone", default="tf_cnn")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--naive-workers", type=int, default=2)
    parser.add_argument("--cache-dir", default=".cache/bench")
    args = parser.parse_args()

    cache = Path(args.cache_dir)
    root = bench.make_wavs(cache / f"wavs-{args.clips}-0", args.clips)
    datamodule = AudioDataModule(
        data={"source": "folder", "root": str(root), "val_ratio": max(0.02, 8 / args.clips),
              "test_ratio": 0.0, "batch_size": args.batch_size, "num_workers": 0},
        cache_dir=str(cache / "clips"),
    )
    datamodule.setup("fit")
    spec, features, _ = bench.model_config(args.backbone, None)
    torch.manual_seed(0)
    ours = AudioClassifier(class_names=datamodule.class_names, sample_rate=16000,
                           num_samples=16000, backbone=spec, features=features)
    ours.frontend.adapt(datamodule.banks["train"].waves)
    naive = copy.deepcopy(ours.backbone)
    items = [(c.path, c.label) for c in datamodule.source.clips("train")]
    dataset = bench.NaiveDataset(items, features)
    device = torch.device("cpu")

    naive_step = bench.train_step(naive, torch.optim.AdamW(naive.parameters()), False, device)
    our_step = bench.train_step(ours, torch.optim.AdamW(ours.parameters()), False, device)

    def run(name, batches, step, convert):
        for _ in range(3):
            step(*convert(next(batches)))
        waited = 0.0
        started = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                t = time.perf_counter()
                with record_function("## next batch"):
                    batch = next(batches)
                waited += time.perf_counter() - t
                with record_function("## convert + frontend + step"):
                    step(*convert(batch))
        wall = time.perf_counter() - started
        clips = args.steps * args.batch_size
        print(f"\n=== {name} ({args.backbone}): {clips / wall:,.0f} clips/s under the profiler; "
              f"{100 * waited / wall:.0f}% of wall time waiting for the next batch")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))

    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                        num_workers=args.naive_workers, drop_last=True)
    run("naive", bench.endless(lambda: loader), naive_step, lambda b: b)
    run("ours", bench.endless(datamodule.train_dataloader), our_step,
        lambda b: datamodule.on_after_batch_transfer(b, 0))

    torch.set_num_threads(1)  # as in a DataLoader worker
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(500):
        dataset[i]
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
    print("\n=== naive Dataset.__getitem__, 500 items in-process, 1 thread (one worker's work)")
    print(text.getvalue())


if __name__ == "__main__":
    main()
