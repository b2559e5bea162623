"""Export a checkpoint as a waveform-in, logits-out model: ONNX or TorchScript.

audioclf-export ckpt_path=<file.ckpt> format=onnx [output=model.onnx]

What the file holds, its input and output and the `.json` sidecar: `audioclf/deploy/export.py`.

audioclf-export ckpt_path=<file.ckpt> format=onnx quantize=int8 also writes `model.int8.onnx`:
onnxruntime static quantization (QDQ), calibrated on training clips of the checkpoint's data, and
prints test accuracy, file size and CPU latency of fp32 vs int8 side by side.

audioclf-export ckpt_path=<file.ckpt> format=onnx streaming=true [stream_hop=0.02] writes one hop of a
stream, its states as inputs and outputs (`audioclf/deploy/streaming.py`), and replays 50 hops of it in
onnxruntime against PyTorch; format=torchscript streaming=true writes the step traced and frozen.

This module reads the config; the export and quantization themselves are `audioclf/deploy/`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from audioclf.config import to_dict
from audioclf.data.datamodule import AudioDataModule
from audioclf.deploy.export import FORMATS, check_format, example_input, export, max_logit_difference, sidecar
from audioclf.deploy.int8 import compare, comparison_table, export_int8, int8_path, sample_clips
from audioclf.deploy.streaming import export_streaming, replay_difference, streaming_form
from audioclf.errors import UserError
from audioclf.lit.checkpoints import load_classifier
from audioclf.lit.module import AudioClassifier
from audioclf.streaming.runtime import CannotStream

QUANTIZE = ("int8",)


def run(cfg: DictConfig) -> dict[str, Any]:
    model = load_classifier(cfg.ckpt_path)
    fmt = str(cfg.get("format", "onnx"))
    check_format(fmt)
    check_quantize(cfg.get("quantize"), fmt)
    output = cfg.get("output") or Path(cfg.paths.output_dir) / f"model{FORMATS[fmt]}"
    if cfg.get("streaming", False):
        return run_streaming(cfg, model, fmt, Path(output))
    if cfg.get("quantize"):
        return run_int8(cfg, model, Path(output))
    path, dynamic = export(model, fmt, output, int(cfg.get("opset", 18)))
    result = {"path": str(path), "format": fmt, "dynamic_batch": dynamic}
    print(
        f"wrote {path} ({fmt}; input waveform float32 (batch, {model.hparams.num_samples}) at "
        f"{model.hparams.sample_rate} Hz{'' if dynamic else ', batch of 1'}; classes and rates in "
        f"{sidecar(path)})"
    )
    if cfg.get("check", True):
        result["max_abs_diff"] = max_logit_difference(model, path, fmt, batch=3 if dynamic else 1)
        print(f"check: max |logit difference| against PyTorch = {result['max_abs_diff']:.2e}")
    return result


def run_streaming(cfg: DictConfig, model: AudioClassifier, fmt: str, output: Path) -> dict[str, Any]:
    if cfg.get("quantize"):
        raise UserError("streaming=true and quantize=int8 do not combine yet: export one or the other")
    hop = stream_hop_samples(cfg, model)
    try:
        result = export_streaming(model, output, hop, int(cfg.get("opset", 18)), fmt)
    except CannotStream as error:
        raise UserError(f"streaming=true: {error}") from None
    if result["reason"]:
        print(f"info: {result['reason']}; exported with the frontend's state only (the backbone runs on the "
              "window's frames every hop)")
    print(f"wrote {result['path']} (one hop of {hop} samples; inputs chunk, samples and {result['states']} "
          f"state tensor(s), outputs probabilities and the next states; shapes in {sidecar(Path(result['path']))})")
    if cfg.get("check", True):
        result["max_abs_diff"] = replay_difference(streaming_form(model, hop)[0], result["path"])
        runtime = "onnxruntime" if fmt == "onnx" else "TorchScript"
        print(f"check: 50 hops in {runtime}, max |probability difference| against PyTorch = "
              f"{result['max_abs_diff']:.2e}")
    return result


def stream_hop_samples(cfg: DictConfig, model: AudioClassifier) -> int:
    seconds = float(cfg.get("stream_hop", 0.02))
    hop = int(round(seconds * int(model.hparams.sample_rate)))
    if hop < 1:
        raise UserError(f"stream_hop={seconds} is under one sample: give seconds, e.g. stream_hop=0.02")
    return hop


def check_quantize(quantize: Any, fmt: str) -> None:
    if not quantize:
        return
    if quantize not in QUANTIZE:
        raise UserError(f"quantize={quantize} is unknown: use quantize=int8, or null for none")
    if fmt != "onnx":
        raise UserError(f"quantize={quantize} works on ONNX files (onnxruntime quantization): use format=onnx")


def run_int8(cfg: DictConfig, model: AudioClassifier, output: Path) -> dict[str, Any]:
    """Export fp32 ONNX, quantize it, and compare the two on the test split; both files or neither."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise UserError("quantize=int8 needs onnxruntime: pip install onnxruntime (or the dev extra, '.[dev]')")
    clips = int(cfg.get("calibration_clips", 256))
    if clips < 1:
        raise UserError(f"calibration_clips={clips} must be at least 1, e.g. calibration_clips=256")
    evaluate = bool(cfg.get("evaluate", True))
    banks = load_banks(cfg, model, ["fit", "test"] if evaluate else ["fit"])  # before anything is written
    calibration = sample_clips(banks["train"].waves, clips, seed=int(cfg.get("seed", 42)))
    path = output.expanduser()
    dynamic, layers = export_int8(model, path, calibration, int(cfg.get("opset", 18)))
    backbone = model.hparams.backbone["name"]
    result = {"path": str(path), "int8_path": str(int8_path(path)), "format": "onnx", "dynamic_batch": dynamic,
              **layers, "calibration_clips": len(calibration)}
    print(f"wrote {path} and {int8_path(path)} (input waveform float32 (batch, {model.hparams.num_samples}) at "
          f"{model.hparams.sample_rate} Hz{'' if dynamic else ', batch of 1'}; classes and rates in {sidecar(path)})")
    print(f"int8: {layers['int8_layers']} of {layers['weight_layers']} weight layers of {backbone}, "
          f"{100 * layers['int8_weight_share']:.0f} % of its weights (the frontend, the first and last layer and "
          f"any GRU/LSTM stay float); activation ranges from {len(calibration)} training clips")
    if cfg.get("check", True):
        result["max_abs_diff"] = max_logit_difference(model, path, "onnx", batch=3 if dynamic else 1)
        print(f"check: fp32 max |logit difference| against PyTorch = {result['max_abs_diff']:.2e}")
    clip = example_input(model, batch=1).numpy()
    result.update(compare(path, int8_path(path), banks.get("test"), batch=64 if dynamic else 1, clip=clip))
    print(comparison_table(result))
    return result


def load_banks(cfg: DictConfig, model: AudioClassifier, stages: list[str]) -> dict[str, Any]:
    """The clip banks of the checkpoint's data (or `data=...`) at the model's clip format."""
    data = to_dict(cfg.get("data")) or dict(model.hparams.get("data") or {})
    if not data:
        raise UserError("the checkpoint does not say which data it was trained on, and quantize=int8 calibrates "
                        "on its training clips: add data=<dataset> data.root=<folder>")
    data["sample_rate"] = model.hparams.sample_rate
    data["clip_seconds"] = model.hparams.num_samples / model.hparams.sample_rate
    datamodule = AudioDataModule(data, data_dir=cfg.paths.data_dir, cache_dir=cfg.paths.cache_dir,
                                 seed=int(cfg.get("seed", 42)))
    source, test = data["source"], "test" in stages
    try:
        names = datamodule.class_names
        for stage in stages:
            datamodule.setup(stage)
    except UserError as error:
        raise UserError(
            f"quantize=int8 reads data={source} (training clips to calibrate{', test clips to score' if test else ''})"
            f" and cannot: {error}; give data={source} data.root=<folder>"
            f"{' (evaluate=false skips the test clips)' if test else ''}"
        ) from None
    if names != list(model.class_names):
        raise UserError(f"data={source} has classes {names}, the checkpoint {list(model.class_names)}: "
                        "calibrate on data with the same label set")
    return datamodule.banks
