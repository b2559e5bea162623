"""Benchmark: training speed per backbone on the CPU, per precision / memory format / compile / threads.

    python -m tools.bench.train_speed                                  # every backbone, every setting
    python -m tools.bench.train_speed --backbones tf_cnn crnn --windows 5 --steps 4
    python -m tools.bench.train_speed --backbones gru --profile        # + torch.profiler top ops

Each backbone is built as `train.py model=<name> data=fsdd` builds it (the composed config:
its frontend, SpecAugment, waveform augmentation and optimizer) on FSDD-shaped input (random
int16 clips at the model's rate, data=fsdd's clip length and batch size: speed does not depend
on content). A timed step is what Lightning runs per batch: waveform augmentation, then
`AudioClassifier.training_step` (frontend, backbone, loss, train metrics), backward and the
optimizer step. bf16-mixed is `torch.autocast("cpu", torch.bfloat16)` around the step, as
Lightning's bf16-mixed precision, with oneDNN off for models holding an LSTM as the trainer's
`CpuBf16Lstm` callback does; compile wraps the module's forward as Lightning does for a
compiled module. Reported: the median clips/s over `--windows` timed windows of `--steps` steps
after `--warmup` steps, the seconds per FSDD training epoch (2,400 clips of the official split)
and the ratio to fp32 on one thread. A setting that fails for a backbone shows its error in its
cell.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from audioclf.audio.augment import WaveAugment, waveform_args
from audioclf.config import compose_config, model_sample_rate, to_dict
from audioclf.errors import UserError, exit_on_user_error
from audioclf.models import BACKBONES
from audioclf.tasks.build import build_model

FSDD_TRAIN_CLIPS = 2400  # official split: indices 0-4 test, 5-9 validation, 10-49 train; 6 speakers x 10 digits

# name -> (bf16, channels_last, compile, threads, oneDNN kept on for LSTMs under bf16); "best" is
# chosen per backbone from the others. bf16-mixed turns oneDNN off for a model with an LSTM, as the
# trainer's CpuBf16Lstm callback does; "bf16-mixed, oneDNN LSTM" keeps it (what a native-bf16 CPU allows).
Setting = tuple[bool, bool, bool, int, bool]
SETTINGS: dict[str, Setting] = {
    "fp32": (False, False, False, 1, False),
    "bf16-mixed": (True, False, False, 1, False),
    "bf16-mixed, oneDNN LSTM": (True, False, False, 1, True),
    "channels_last": (False, True, False, 1, False),
    "bf16+channels_last": (True, True, False, 1, False),
    "compile": (False, False, True, 1, False),
    "bf16+compile": (True, False, True, 1, False),
    "fp32 2 threads": (False, False, False, 2, False),
    "bf16-mixed 2 threads": (True, False, False, 2, False),
}
NO_LSTM = "as bf16-mixed (no LSTM)"
BEST = "best: bf16+compile(+channels_last, oneDNN LSTM)"


# ------------------------------------------------------------------ building


def compose(name: str) -> Any:
    return compose_config("train", [f"model={name}", "data=fsdd", "logger=none"])


def build(cfg: Any) -> tuple[nn.Module, WaveAugment, int, int]:
    """(classifier, its waveform augmentation, sample rate, batch size) as train.py builds them."""
    rate = model_sample_rate(cfg)
    num_samples = int(round(cfg.data.clip_seconds * rate))
    data = SimpleNamespace(class_names=[str(d) for d in range(10)], sample_rate=rate, num_samples=num_samples)
    model = build_model(cfg, data)
    augment = waveform_args(to_dict(cfg.get("augment")) or {})
    augment.pop("noise_dir", None)
    augment["noise_prob"] = 0.0  # FSDD ships no background noise: the datamodule mixes none either
    return model, WaveAugment(rate, **augment), rate, int(cfg.data.batch_size)


def has_lstm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.LSTM) for m in model.modules())


def to_channels_last(model: nn.Module) -> None:
    """4-D weights and the backbone's 4-D input in channels_last (NHWC)."""
    model.to(memory_format=torch.channels_last)

    def nhwc(_module, inputs):
        x = inputs[0]
        return (x.contiguous(memory_format=torch.channels_last),) if x.dim() == 4 else None

    model.backbone.register_forward_pre_hook(nhwc)


@contextlib.contextmanager
def precision(bf16: bool, lstm: bool, lstm_onednn: bool = False):
    """Lightning's bf16-mixed on the CPU: autocast, and oneDNN off for LSTMs (CpuBf16Lstm) unless kept."""
    saved = torch.backends.mkldnn.enabled
    if bf16 and lstm and not lstm_onednn:
        torch.backends.mkldnn.enabled = False
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            yield
    finally:
        torch.backends.mkldnn.enabled = saved


def make_step(model: nn.Module, augment: WaveAugment, optimizer: torch.optim.Optimizer,
              bf16: bool, lstm_onednn: bool = False) -> Callable[[torch.Tensor, torch.Tensor], None]:
    lstm = has_lstm(model)

    def step(waves: torch.Tensor, labels: torch.Tensor) -> None:
        waves = augment(waves.float() / 32768, labels)  # the datamodule's batch hook: outside autocast
        with precision(bf16, lstm, lstm_onednn):
            loss = model.training_step((waves, labels), 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


# ----------------------------------------------------------------- measuring


def fake_batches(count: int, batch_size: int, num_samples: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randint(-8000, 8000, (batch_size, num_samples), dtype=torch.int16, generator=generator),
             torch.randint(0, 10, (batch_size,), generator=generator)) for _ in range(count)]


def time_setting(cfg: Any, bf16: bool, channels_last: bool, compile_: bool, threads: int, lstm_onednn: bool,
                 args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    model, augment, rate, batch_size = build(cfg)
    batch_size = args.batch_size or batch_size
    model.train()
    if channels_last:
        to_channels_last(model)
    if compile_:
        model.forward = torch.compile(model.forward)  # as Lightning does for a compiled module
    step = make_step(model, augment, model.optimizer_factory(model.parameters()), bf16, lstm_onednn)
    batches = fake_batches(4, batch_size, model.hparams.num_samples, args.seed)
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        started = time.perf_counter()
        step(*batches[0])
        first_step_s = time.perf_counter() - started
        for index in range(1, args.warmup):
            step(*batches[index % len(batches)])
        rates = []
        for _ in range(args.windows):
            started = time.perf_counter()
            for index in range(args.steps):
                step(*batches[index % len(batches)])
            rates.append(args.steps * batch_size / (time.perf_counter() - started))
    finally:
        torch.set_num_threads(saved_threads)
    clips_per_s = statistics.median(rates)
    return {"clips_per_s": clips_per_s, "epoch_s": FSDD_TRAIN_CLIPS / clips_per_s, "windows": rates,
            "first_step_s": first_step_s, "batch_size": batch_size, "sample_rate": rate}


def measure(cfg: Any, setting: Setting, args: argparse.Namespace) -> dict[str, Any] | str:
    """The setting's timings, or its error as one line (a failing setting never stops the bench)."""
    try:
        return time_setting(cfg, *setting, args)
    except Exception as error:  # compile and oneDNN fail in many types; the cell shows which
        text = (str(error).strip().splitlines() or [""])[0]
        return f"{type(error).__name__}: {text}"[:160]
    finally:
        torch._dynamo.reset()


def best_combination(cells: dict[str, Any]) -> Setting:
    """bf16 + compile, + channels_last where channels_last sped bf16 up, with oneDNN LSTMs where that helped."""
    def rate(name: str) -> float:
        return cells[name]["clips_per_s"] if isinstance(cells.get(name), dict) else 0.0

    return True, rate("bf16+channels_last") > rate("bf16-mixed"), True, 1, rate("bf16-mixed, oneDNN LSTM") > rate(
        "bf16-mixed")


def bench_backbone(name: str, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    cfg = compose(name)
    model = build(cfg)[0]
    row: dict[str, Any] = {"backbone": name, "frontend": cfg.features.name, "input_shape": list(model.input_shape),
                           "params": model.num_parameters, "settings": {}}
    for setting in args.settings:
        log(f"[{name}] {setting}")
        if SETTINGS[setting][4] and not has_lstm(model):
            row["settings"][setting] = NO_LSTM
            continue
        row["settings"][setting] = measure(cfg, SETTINGS[setting], args)
    if args.best:
        combination = best_combination(row["settings"])
        log(f"[{name}] {BEST}: channels_last={combination[1]}, oneDNN LSTM={combination[4]}")
        measured = row["settings"].get("bf16+compile")  # the same setting: not compiled twice
        if combination == SETTINGS["bf16+compile"] and measured is not None:
            row["settings"][BEST] = dict(measured) if isinstance(measured, dict) else measured
        else:
            row["settings"][BEST] = measure(cfg, combination, args)
        row["best_setting"] = combination
    base = row["settings"].get("fp32")
    for cell in row["settings"].values():
        if isinstance(cell, dict) and isinstance(base, dict):
            cell["ratio"] = cell["clips_per_s"] / base["clips_per_s"]
    return row


# ----------------------------------------------------------------- profiling


def profile_table(cfg: Any, setting: Setting, args: argparse.Namespace) -> str:
    """torch.profiler's top 10 ops by self CPU time over `--steps` steps after warm-up."""
    from torch.profiler import ProfilerActivity, profile

    bf16, channels_last, compile_, threads, lstm_onednn = setting
    torch.manual_seed(args.seed)
    model, augment, _, batch_size = build(cfg)
    batch_size = args.batch_size or batch_size
    if channels_last:
        to_channels_last(model)
    if compile_:
        model.forward = torch.compile(model.forward)
    step = make_step(model, augment, model.optimizer_factory(model.parameters()), bf16, lstm_onednn)
    batches = fake_batches(2, batch_size, model.hparams.num_samples, args.seed)
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for index in range(max(args.warmup, 2)):
            step(*batches[index % 2])
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for index in range(args.steps):
                step(*batches[index % 2])
    finally:
        torch.set_num_threads(saved_threads)
        torch._dynamo.reset()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10)


def profile_backbone(name: str, row: dict[str, Any] | None, args: argparse.Namespace) -> dict[str, str]:
    cfg = compose(name)
    best = row["best_setting"] if row and "best_setting" in row else (True, False, True, 1, False)
    tables = {}
    for label, setting in (("fp32", SETTINGS["fp32"]), (BEST, best)):
        try:
            tables[label] = profile_table(cfg, setting, args)
        except Exception as error:
            tables[label] = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
    return tables


# ------------------------------------------------------------------ running


def run(args: argparse.Namespace) -> dict[str, Any]:
    log = (lambda message: print(message, flush=True)) if args.verbose else (lambda message: None)
    names = sorted(BACKBONES) if args.backbones in (None, ["all"]) else args.backbones
    unknown = [n for n in names if n not in BACKBONES]
    if unknown:
        raise UserError(f"--backbones {' '.join(unknown)}: not registered; pick from {', '.join(sorted(BACKBONES))}")
    bad = [s for s in args.settings if s not in SETTINGS]
    if bad:
        raise UserError(f"--settings {' '.join(bad)}: unknown; pick from {', '.join(SETTINGS)}")
    warnings.filterwarnings("ignore", message=".*self.log.*")  # no trainer here: Lightning skips the logging
    results: dict[str, Any] = {
        "cpus": os.cpu_count(), "torch": torch.__version__, "bf16_native": bf16_native(),
        "windows": args.windows, "steps": args.steps, "warmup": args.warmup,
        "load_average_before": os.getloadavg(), "rows": [], "profiles": {},
    }
    for name in names:
        row = bench_backbone(name, args, log)
        results["rows"].append(row)
        if args.profile:
            log(f"[{name}] profiling")
            results["profiles"][name] = profile_backbone(name, row, args)
    results["load_average_after"] = os.getloadavg()
    return results


def bf16_native() -> bool:
    capability = torch.backends.cpu.get_cpu_capability()
    return capability == "AVX512" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


# ------------------------------------------------------------------ report


def format_cell(cell: Any) -> str:
    if isinstance(cell, str):
        return cell if cell == NO_LSTM else f"error: {cell}"
    text = f"{cell['clips_per_s']:,.0f} / {cell['epoch_s']:,.1f} s"
    if "ratio" in cell:
        text += f" / **{cell['ratio']:.2f}x**"
    return text


def format_report(results: dict[str, Any]) -> str:
    rows = results["rows"]
    settings = list(dict.fromkeys(s for row in rows for s in row["settings"]))
    lines = [
        f"{results['cpus']} CPUs, torch {results['torch']}, native bf16: {results['bf16_native']}; "
        f"median of {results['windows']} windows x {results['steps']} steps after {results['warmup']} warm-up steps; "
        "1 torch thread unless the setting says 2",
        "",
        "Cells: training clips/s / seconds per FSDD epoch (2,400 clips) / ratio to fp32 (1 thread).",
        "",
        "| backbone | frontend | input | " + " | ".join(settings) + " |",
        "|---|---|---|" + "---:|" * len(settings),
    ]
    for row in rows:
        cells = " | ".join(format_cell(row["settings"][s]) if s in row["settings"] else "" for s in settings)
        shape = "x".join(str(n) for n in row["input_shape"])
        lines.append(f"| {row['backbone']} | {row['frontend']} | {shape} | {cells} |")
    compiled = [(row["backbone"], s, row["settings"][s]["first_step_s"]) for row in rows for s in row["settings"]
                if "compile" in s and isinstance(row["settings"][s], dict)]
    if compiled:
        lines += ["", "First (compiling) step, seconds: " + ", ".join(f"{b} {s} {t:.1f}" for b, s, t in compiled)]
    for name, tables in results["profiles"].items():
        for label, table in tables.items():
            lines += ["", f"torch.profiler, {name}, {label}, top 10 ops by self CPU time:", "", table]
    before, after = results["load_average_before"], results["load_average_after"]
    lines += ["", f"load average before {before[0]:.2f}, after {after[0]:.2f} (1 min)"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.train_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", nargs="+", help="backbones to time, or `all` (default: every registered one)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), help=f"of: {', '.join(SETTINGS)}")
    parser.add_argument("--no-best", dest="best", action="store_false", help="skip the best-combination row")
    parser.add_argument("--windows", type=int, default=3, help="timed windows; the median is reported")
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed window")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (the first one compiles)")
    parser.add_argument("--batch-size", type=int, default=0, help="default: data=fsdd's")
    parser.add_argument("--profile", action="store_true", help="also torch.profiler top ops: fp32 vs the best")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--quiet", dest="verbose", action="store_false")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if min(args.windows, args.steps, args.warmup) < 1:
        raise UserError("--windows, --steps and --warmup must be at least 1")
    results = run(args)
    print(format_report(results), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
