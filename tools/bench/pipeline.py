"""Benchmark: the naive tutorial pipeline against ours, on the same clips and backbones.

    python -m tools.bench.pipeline                      # 30,000 one-second 16 kHz WAVs, every backbone
    python -m tools.bench.pipeline --clips 2000 --backbones tf_cnn --train-steps 10

(a) naive: a torch `Dataset` that per item reads one WAV with soundfile and
    computes the torchaudio Spectrogram / MelSpectrogram of that one clip,
    batched by a shuffling `DataLoader` with worker processes.
(b) ours: the clip bank (int16, memory-mapped) behind `AudioDataModule`'s
    loader (one fancy-indexing read per batch) and the model's `Frontend`
    applied to the whole batch on the device.

Both train the same backbone (same architecture, same initial weights, each
with the frontend its `conf/model/<name>.yaml` selects) with the same plain
AdamW loop, so the difference is the input pipeline alone. Reported per
backbone: training clips/s, data-loading clips/s (DataLoader only, and up to
model-ready features), the model-only ceiling (fixed in-memory batch), a
per-clip cost breakdown, and CPU single-clip inference latency.

The WAVs are made once from the synthetic source (a few hundred rendered
words, each written many times with a random shift and fresh noise) under
`--cache-dir` and reused by later runs.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from audioclf.audio.frontends import frame_lengths
from audioclf.config import CONF_DIR
from audioclf.data.datamodule import AudioDataModule
from audioclf.data.sources.synthetic import SyntheticSource
from audioclf.errors import UserError, exit_on_user_error
from audioclf.lit.module import AudioClassifier
from audioclf.models import BACKBONES

SAMPLE_RATE = 16000
BASE_RENDERS = 512  # distinct rendered words the WAV files are varied from
DEFAULT_BACKBONES = ["tf_cnn", "crnn"]  # the goal names these two


# ---------------------------------------------------------------- the clips


def make_wavs(root: Path, count: int, seed: int = 0, workers: int | None = None) -> Path:
    """`count` one-second 16 kHz PCM_16 WAVs as root/<word>/<index>.wav; reused when complete."""
    marker = root / "complete.json"
    if marker.is_file() and json.loads(marker.read_text()).get("count") == count:
        return root
    source = SyntheticSource(train_per_class=math.ceil(min(BASE_RENDERS, count) / 8), seed=seed)
    bases = [(source.read(clip)[0], clip.label) for clip in source.clips("train")]
    for name in source.class_names:
        (root / name).mkdir(parents=True, exist_ok=True)
    jobs = [(root, source.class_names, bases, seed, start, min(count, start + 1000))
            for start in range(0, count, 1000)]
    with get_context("fork").Pool(workers or os.cpu_count() or 1) as pool:
        pool.starmap(_write_wavs, jobs)
    marker.write_text(json.dumps({"count": count, "seed": seed}))
    return root


def _write_wavs(root, class_names, bases, seed, start, stop) -> None:
    rng = np.random.default_rng([seed, start])
    for index in range(start, stop):
        samples, label = bases[index % len(bases)]
        shift = int(rng.integers(-1600, 1601))
        varied = np.roll(samples, shift) + rng.normal(0, 0.003, len(samples)).astype(np.float32)
        path = root / class_names[label] / f"{index:06d}.wav"
        sf.write(str(path), np.clip(varied, -1, 1), SAMPLE_RATE, subtype="PCM_16")


# ---------------------------------------------------------- (a) the naive pipeline


class NaiveDataset(Dataset):
    """As tutorials write it: read one file, compute its spectrogram, return (features, label)."""

    def __init__(self, items: list[tuple[str, int]], features: dict[str, Any],
                 sample_rate: int = SAMPLE_RATE, num_samples: int = SAMPLE_RATE):
        self.items, self.sample_rate, self.num_samples = items, sample_rate, num_samples
        params = {k: v for k, v in features.items() if k not in ("name", "normalize", "sample_rate")}
        self.log = False
        framing = {key: params.pop(key, None) for key in ("win_ms", "hop_ms", "n_fft")}
        if features["name"] in ("logmel", "stft"):
            params.update(frame_lengths(sample_rate, **framing))
        else:
            params.update({k: v for k, v in framing.items() if v is not None})
        if features["name"] == "logmel":
            self.log = params.pop("log", True)
            self.transform = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, **params)
        elif features["name"] == "stft":  # magnitude, as our Stft frontend
            self.transform = torchaudio.transforms.Spectrogram(**{"power": 1.0, **params})
        else:  # any other frontend: its torchaudio-based transform, called on one clip
            from audioclf.audio.frontends import TRANSFORMS

            module = TRANSFORMS[features["name"]](sample_rate=sample_rate, **params)
            self.transform = lambda wave: module(wave[None])[0, 0]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[index]
        samples, rate = sf.read(path, dtype="float32")
        wave = torch.from_numpy(samples)
        if wave.ndim > 1:
            wave = wave.mean(dim=1)
        if rate != self.sample_rate:
            wave = torchaudio.functional.resample(wave, rate, self.sample_rate)
        if len(wave) < self.num_samples:
            wave = F.pad(wave, (0, self.num_samples - len(wave)))
        wave = wave[: self.num_samples]
        spec = self.transform(wave)
        if self.log:
            spec = torch.log(spec + 1e-6)
        return spec.unsqueeze(0), label


# -------------------------------------------------------------- measurement


def endless(make_iter: Callable[[], Iterator]) -> Iterator:
    """Batches forever; a new epoch (with its worker start-up) when one runs out."""
    while True:
        yield from make_iter()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clips_per_second(batches: Iterator, work: Callable[[Any], int], warmup: int, steps: int,
                     device: torch.device) -> float:
    for _ in range(warmup):
        work(next(batches))
    synchronize(device)
    clips, started = 0, time.perf_counter()
    for _ in range(steps):
        clips += work(next(batches))
    synchronize(device)
    return clips / (time.perf_counter() - started)


def drain(loader: DataLoader, work: Callable[[Any], int], max_clips: int,
          device: torch.device) -> float:
    """clips/s of one pass over the loader (start-up included), stopping after max_clips."""
    clips, started = 0, time.perf_counter()
    for batch in loader:
        clips += work(batch)
        if clips >= max_clips:
            break
    synchronize(device)
    return clips / (time.perf_counter() - started)


def train_step(model: torch.nn.Module, optimizer, bf16: bool, device: torch.device):
    def step(inputs: torch.Tensor, labels: torch.Tensor) -> int:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return len(labels)

    return step


def per_call_us(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat * 1e6


def latency_ms(model: torch.nn.Module, clip: torch.Tensor, runs: int) -> tuple[float, float]:
    model.eval()
    times = []
    with torch.inference_mode():
        for _ in range(10):
            model(clip)
        for _ in range(runs):
            started = time.perf_counter()
            model(clip)
            times.append((time.perf_counter() - started) * 1e3)
    model.train()
    return statistics.median(times), float(np.percentile(times, 95))


# ----------------------------------------------------------------- configs


def model_config(name: str, features: str | None) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(backbone spec, features config, its conf/features name) as `train.py model=<name>`
    composes them; the clips stay 16 kHz whatever data rate the model config asks for."""
    chosen = "logmel"  # conf/train.yaml's default
    spec: dict[str, Any] = {"name": name}
    path = CONF_DIR / "model" / f"{name}.yaml"
    if path.is_file():
        conf = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        for entry in conf.get("defaults") or []:
            if isinstance(entry, dict) and "override /features" in entry:
                chosen = entry["override /features"]
        spec = dict(conf.get("model") or spec)
        inline = conf.get("features") if isinstance(conf.get("features"), dict) else {}
    else:
        inline = {}
    if features:
        chosen, inline = features, {}
    features_path = CONF_DIR / "features" / f"{chosen}.yaml"
    if not features_path.is_file():
        raise UserError(f"--features {chosen}: no {features_path}; use a name from conf/features/")
    merged = OmegaConf.merge(OmegaConf.load(features_path), inline)
    return spec, OmegaConf.to_container(merged, resolve=True), chosen


# -------------------------------------------------------------------- run


def bench_backbone(name: str, args, datamodule: AudioDataModule, device: torch.device,
                   log: Callable[[str], None]) -> dict[str, Any]:
    spec, features, conf_name = model_config(name, args.features)
    bank = datamodule.banks["train"]
    torch.manual_seed(args.seed)
    ours = AudioClassifier(
        class_names=datamodule.class_names, sample_rate=SAMPLE_RATE,
        num_samples=datamodule.num_samples, backbone=spec, features=features,
    ).to(device)
    ours.frontend.adapt(bank.waves)
    naive = copy.deepcopy(ours.backbone)  # same architecture, same initial weights
    row: dict[str, Any] = {"backbone": name, "frontend": conf_name,
                           "input_shape": list(ours.input_shape),
                           "params": sum(p.numel() for p in ours.backbone.parameters())}

    items = [(clip.path, clip.label) for clip in datamodule.source.clips("train")]
    dataset = NaiveDataset(items, features, SAMPLE_RATE, datamodule.num_samples)
    expected = ours.frontend.transform(torch.from_numpy(bank.waves[:1] / 32768).float().to(device))
    if not torch.allclose(dataset[0][0].to(device), expected[0], rtol=1e-3, atol=1e-4):
        raise RuntimeError(f"{name}: the naive and our features differ; the comparison is void")

    def naive_loader() -> DataLoader:
        return DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                          num_workers=args.naive_workers, drop_last=True)

    def to_device(batch):
        return [t.to(device, non_blocking=True) for t in batch]

    def our_inputs(batch):
        waves, labels = datamodule.on_after_batch_transfer(to_device(batch), 0)
        return waves, labels

    naive_step = train_step(naive, torch.optim.AdamW(naive.parameters(), 1e-3), args.bf16, device)
    our_step = train_step(ours, torch.optim.AdamW(ours.parameters(), 1e-3), args.bf16, device)

    # training steps, the loaders feeding them
    log(f"[{name}] training steps: naive")
    row["naive_train"] = clips_per_second(
        endless(naive_loader), lambda b: naive_step(*to_device(b)), args.warmup_steps,
        args.train_steps, device)
    log(f"[{name}] training steps: ours")
    row["ours_train"] = clips_per_second(
        endless(datamodule.train_dataloader), lambda b: our_step(*our_inputs(b)),
        args.warmup_steps, args.train_steps, device)
    log(f"[{name}] training steps: backbone only (one fixed batch of features, no loading)")
    fixed = ours.frontend(our_inputs(next(iter(datamodule.train_dataloader())))[0]).detach()
    labels = torch.arange(len(fixed), device=device) % datamodule.num_classes
    ceiling = copy.deepcopy(ours.backbone)
    optimizer = torch.optim.AdamW(ceiling.parameters(), 1e-3)
    model_only = train_step(ceiling, optimizer, args.bf16, device)
    row["model_only_train"] = clips_per_second(
        iter(lambda: (fixed, labels), None), lambda b: model_only(*b), args.warmup_steps,
        args.train_steps, device)

    # pure data loading
    limit = min(args.load_clips or len(items), len(items))
    log(f"[{name}] data loading: naive, {limit} clips")
    row["naive_load"] = drain(naive_loader(), lambda b: len(b[1]), limit, device)
    log(f"[{name}] data loading: ours")
    row["ours_load"] = drain(datamodule.train_dataloader(), lambda b: len(to_device(b)[1]),
                             limit, device)

    def features_of(batch) -> int:
        with torch.no_grad():
            ours.frontend(our_inputs(batch)[0])
        return len(batch[1])

    row["ours_load_features"] = drain(datamodule.train_dataloader(), features_of, limit, device)

    # where the time goes, per clip, in this process
    log(f"[{name}] cost breakdown")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    read_us = per_call_us(lambda: sf.read(items[0][0], dtype="float32"), 200)
    wave = torch.from_numpy(sf.read(items[0][0], dtype="float32")[0])
    one_clip_us = per_call_us(lambda: dataset.transform(wave), 200)
    torch.set_num_threads(threads)
    batch_index = np.random.default_rng(0).choice(len(bank), args.batch_size, replace=False)
    index_us = per_call_us(lambda: datamodule.train_dataloader().dataset[batch_index], 50)
    waves = our_inputs(next(iter(datamodule.train_dataloader())))[0]
    with torch.no_grad():
        batch_frontend_us = per_call_us(lambda: ours.frontend(waves), 20)
    step_us = per_call_us(lambda: model_only(fixed, labels), 10)
    row["breakdown_us_per_clip"] = {
        "naive: soundfile read (1 thread)": read_us,
        "naive: transform, one clip (1 thread)": one_clip_us,
        "ours: bank read (batched)": index_us / args.batch_size,
        "ours: frontend (batched)": batch_frontend_us / args.batch_size,
        "model: train step": step_us / len(fixed),
    }
    return row


def run(args) -> dict[str, Any]:
    log = (lambda message: print(message, flush=True)) if args.verbose else (lambda message: None)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no GPU is visible here; use --device cpu")
    known = sorted(BACKBONES)
    if args.backbones is None:
        names = [n for n in DEFAULT_BACKBONES if n in BACKBONES]
    else:
        names = known if args.backbones == ["all"] else args.backbones
    latency_names = known if args.latency_backbones == ["all"] else args.latency_backbones
    unknown = [n for n in names + latency_names if n not in BACKBONES]
    if unknown:
        raise UserError(
            f"--backbones {unknown[0]} is not registered: choose from {', '.join(known)}"
        )
    load_before = os.getloadavg()
    cache = Path(args.cache_dir).expanduser()

    log(f"making {args.clips} WAVs under {cache} (reused when present)")
    started = time.perf_counter()
    root = make_wavs(cache / f"wavs-{args.clips}-{args.seed}", args.clips, args.seed)
    wav_seconds = time.perf_counter() - started

    val_ratio = max(0.02, 8 / args.clips)  # at least one validation clip per word
    data = {"source": "folder", "root": str(root), "val_ratio": val_ratio, "test_ratio": 0.0,
            "sample_rate": SAMPLE_RATE, "clip_seconds": 1.0, "batch_size": args.batch_size,
            "num_workers": 0}

    def setup() -> tuple[AudioDataModule, float]:
        datamodule = AudioDataModule(data=data, cache_dir=str(cache / "clips"), seed=args.seed)
        started = time.perf_counter()
        datamodule.setup("fit")
        return datamodule, time.perf_counter() - started

    log("clip bank: first setup (builds it unless cached)")
    datamodule, first_setup = setup()
    datamodule, reopen = setup()  # always from the cache: the start-up a later run pays
    results: dict[str, Any] = {
        "clips": len(datamodule.banks["train"]),
        "batch_size": args.batch_size,
        "naive_workers": args.naive_workers,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "device": str(device),
        "bf16": args.bf16,
        "wav_seconds": wav_seconds,
        "bank_first_setup_s": first_setup,
        "bank_reopen_s": reopen,
        "bank_gb": datamodule.banks["train"].waves.nbytes / 1e9,
        "rows": [],
    }
    results["skipped"] = {}
    for name in names:
        try:
            results["rows"].append(bench_backbone(name, args, datamodule, device, log))
        except UserError as error:  # a backbone that does not fit 1 s at 16 kHz
            results["skipped"][name] = str(error)
            log(f"[{name}] skipped: {error}")

    log("single-clip CPU inference latency")
    clip = torch.from_numpy(datamodule.banks["train"].waves[:1] / 32768).float()
    results["latency"] = []
    for name in latency_names:
        spec, features, conf_name = model_config(name, args.features)
        try:
            model = AudioClassifier(
                class_names=datamodule.class_names, sample_rate=SAMPLE_RATE,
                num_samples=datamodule.num_samples, backbone=spec, features=features,
            )
        except UserError as error:
            results["skipped"].setdefault(name, str(error))
            continue
        median, p95 = latency_ms(model, clip, args.latency_runs)
        results["latency"].append({"backbone": name, "frontend": conf_name,
                                   "median_ms": median, "p95_ms": p95})
    results["load_average"] = {"before": load_before, "after": os.getloadavg()}
    return results


# ------------------------------------------------------------------ report


def format_report(r: dict[str, Any]) -> str:
    lines = [
        f"{r['clips']} training clips (1 s, 16 kHz WAV), batch {r['batch_size']}, device "
        f"{r['device']}{' bf16' if r['bf16'] else ''}, {r['cpus']} CPUs, torch threads "
        f"{r['threads']}, naive DataLoader workers {r['naive_workers']}",
        f"clip bank: {r['bank_gb']:.2f} GB int16; first setup {r['bank_first_setup_s']:.1f} s, "
        f"reopened from cache (memmap + CRC check) in {r['bank_reopen_s']:.2f} s",
        "",
        "| backbone | frontend | pipeline | train clips/s | DataLoader clips/s "
        "| loading + features clips/s |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in r["rows"]:
        b, fe = row["backbone"], row["frontend"]
        lines += [
            f"| {b} | {fe} | naive | {row['naive_train']:,.0f} | {row['naive_load']:,.0f} "
            f"| {row['naive_load']:,.0f} |",
            f"| {b} | {fe} | ours | {row['ours_train']:,.0f} | {row['ours_load']:,.0f} "
            f"| {row['ours_load_features']:,.0f} |",
            f"| {b} | {fe} | backbone only (ceiling) | {row['model_only_train']:,.0f} | | |",
            f"| {b} | {fe} | **ours / naive** | **{row['ours_train'] / row['naive_train']:.1f}x** "
            f"| **{row['ours_load'] / row['naive_load']:.0f}x** "
            f"| **{row['ours_load_features'] / row['naive_load']:.1f}x** |",
        ]
    lines += ["", "Cost per clip (microseconds, this process, same threads):", ""]
    names = list(r["rows"][0]["breakdown_us_per_clip"]) if r["rows"] else []
    lines += ["| backbone | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for row in r["rows"]:
        cells = " | ".join(f"{row['breakdown_us_per_clip'][n]:,.0f}" for n in names)
        lines.append(f"| {row['backbone']} | {cells} |")
    lines += ["", "Single-clip CPU inference, waveform -> logits (ms):", "",
              "| backbone | frontend | median | p95 |", "|---|---|---:|---:|"]
    for row in r["latency"]:
        lines.append(f"| {row['backbone']} | {row['frontend']} | {row['median_ms']:.2f} "
                     f"| {row['p95_ms']:.2f} |")
    for name, reason in r["skipped"].items():
        lines.append(f"\nskipped {name}: {reason}")
    before, after = r["load_average"]["before"], r["load_average"]["after"]
    lines += ["", f"load average before {before[0]:.2f}, after {after[0]:.2f} (1 min)"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.pipeline", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--clips", type=int, default=30000, help="WAV files to make and use")
    parser.add_argument("--backbones", nargs="+",
                        help="backbones to train, or `all` (default: tf_cnn crnn, if registered)")
    parser.add_argument("--latency-backbones", nargs="+", default=["all"],
                        help="backbones to time single-clip inference for (default: all)")
    parser.add_argument("--features", help="force one frontend for all (default: each model's)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=40, help="timed training steps")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--load-clips", type=int, default=0,
                        help="clips per data-loading pass (default: one epoch)")
    parser.add_argument("--naive-workers", type=int, default=2, help="naive DataLoader workers")
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast in training steps")
    parser.add_argument("--cache-dir", default=".cache/bench")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--quiet", dest="verbose", action="store_false")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    results = run(args)
    print(format_report(results), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
