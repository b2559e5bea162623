"""Export a checkpoint as a waveform-in, logits-out model: ONNX or TorchScript.

audioclf-export ckpt_path=<file.ckpt> format=onnx [output=model.onnx]

The exported graph holds the frontend (STFT / mel / MFCC, input normalization;
SpecAugment is off in eval mode) and the backbone. Input: float32 waveforms
(batch, samples) in [-1, 1] at the checkpoint's sample rate and clip length;
output: logits (batch, classes). Class names, sample rate and clip length go
into `<file>.json` beside it (e.g. `model.onnx.json`) (and into the ONNX metadata / TorchScript
extra files). ONNX uses the torch.export-based exporter, which writes the
STFT as the ONNX `STFT` operator; the batch axis is dynamic where the
backbone allows it.

audioclf-export ckpt_path=<file.ckpt> format=onnx quantize=int8 also writes `model.int8.onnx`:
onnxruntime static quantization (QDQ), calibrated on training clips of the checkpoint's data, and
prints test accuracy, file size and CPU latency of fp32 vs int8 side by side.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import logging
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from audioclf.config import to_dict
from audioclf.data.datamodule import AudioDataModule
from audioclf.errors import UserError
from audioclf.lit.checkpoints import load_classifier
from audioclf.lit.module import AudioClassifier

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


class WaveformClassifier(nn.Module):
    """frontend (eval) -> backbone: float32 (batch, samples) -> logits (batch, classes)."""

    def __init__(self, model: AudioClassifier):
        super().__init__()
        self.frontend, self.backbone = model.frontend, model.backbone
        self.eval()

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.frontend(waveform))


def metadata(model: AudioClassifier, fmt: str) -> dict[str, Any]:
    return {
        "format": fmt,
        "class_names": list(model.class_names),
        "sample_rate": int(model.hparams.sample_rate),
        "num_samples": int(model.hparams.num_samples),
        "input": "waveform float32 (batch, num_samples) in [-1, 1]",
        "output": "logits (batch, classes)",
        "backbone": model.hparams.backbone,
        "features": model.hparams.features,
    }


def example_input(model: AudioClassifier, batch: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, int(model.hparams.num_samples), generator=generator)


@contextlib.contextmanager
def quiet():
    """The exporters print progress and warnings by the screenful: keep them for errors only."""
    sink = io.StringIO()
    loggers = [
        logging.getLogger(name)
        for name in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir", "torch._dynamo")
    ]
    loggers.append(logging.getLogger())  # onnxruntime.quantization warns through the root logger
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    onnxruntime_log_level(3)  # errors only, from onnxruntime's C++ side
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            yield sink
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        onnxruntime_log_level(2)  # its default: warnings


def onnxruntime_log_level(severity: int) -> None:
    with contextlib.suppress(ImportError):  # onnxruntime is optional (the dev extra)
        import onnxruntime

        onnxruntime.set_default_logger_severity(severity)


def export_onnx(model: AudioClassifier, path: Path, opset: int = 18, fix: str = "try format=torchscript") -> bool:
    """Write `path`; True if the batch axis is dynamic (else the file takes batches of 1)."""
    wrapper = WaveformClassifier(model)
    last_error: Exception | None = None
    for dynamic in (True, False):
        example = example_input(model, batch=2 if dynamic else 1)
        shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic else None
        try:
            with quiet():
                program = torch.onnx.export(
                    wrapper,
                    (example,),
                    dynamo=True,
                    opset_version=opset,
                    input_names=["waveform"],
                    output_names=["logits"],
                    dynamic_shapes=shapes,
                    verbose=False,
                )
                program.save(str(path))
            _add_onnx_metadata(path, metadata(model, "onnx"))
            return dynamic
        except Exception as error:  # noqa: BLE001 - the exporters raise anything; reported below
            last_error = error
    raise UserError(
        f"backbone {model.hparams.backbone['name']} with features={model.hparams.features['name']} "
        f"cannot be exported to ONNX ({first_line(last_error)}): {fix}"
    )


def _add_onnx_metadata(path: Path, meta: dict[str, Any]) -> None:
    import onnx

    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {"audioclf": json.dumps(meta)})
    onnx.save(proto, str(path))


def export_torchscript(model: AudioClassifier, path: Path) -> bool:
    wrapper = WaveformClassifier(model)
    example = example_input(model)
    try:
        with quiet(), torch.no_grad():
            traced = torch.jit.trace(wrapper, (example,), check_trace=False)
            torch.jit.save(
                traced,
                str(path),
                _extra_files={"audioclf.json": json.dumps(metadata(model, "torchscript"))},
            )
    except Exception as error:  # noqa: BLE001
        raise UserError(
            f"backbone {model.hparams.backbone['name']} cannot be traced to TorchScript "
            f"({first_line(error)}): try format=onnx"
        ) from None
    return True


def first_line(error: BaseException | None) -> str:
    text = (
        str(error).strip().splitlines()[0] if error and str(error).strip() else type(error).__name__
    )
    return f"{type(error).__name__}: {text[:200]}"


def onnx_logits(path: Path, waves: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: waves.astype(np.float32)})[0]


def torchscript_logits(path: Path, waves: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.jit.load(str(path)).eval()(torch.from_numpy(waves.astype(np.float32))).numpy()


@torch.no_grad()
def max_logit_difference(model: AudioClassifier, path: Path, fmt: str, batch: int) -> float:
    waves = example_input(model, batch=batch, seed=1)
    expected = WaveformClassifier(model)(waves).numpy()
    got = (onnx_logits if fmt == "onnx" else torchscript_logits)(path, waves.numpy())
    return float(np.abs(got - expected).max())


def sidecar(path: Path) -> Path:
    """`model.onnx` -> `model.onnx.json`: class names, sample rate, clip length."""
    return path.with_name(path.name + ".json")


def export(
    model: AudioClassifier, fmt: str, output: str | Path, opset: int = 18
) -> tuple[Path, bool]:
    """Write the model and `<output>.json`; returns (path, whether the batch axis is dynamic)."""
    if fmt not in FORMATS:
        raise UserError(f"format={fmt} is unknown: use {' or '.join(FORMATS)}")
    path = Path(output).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    dynamic = export_onnx(model, path, opset) if fmt == "onnx" else export_torchscript(model, path)
    sidecar(path).write_text(json.dumps(metadata(model, fmt), indent=2))
    return path, dynamic


def run(cfg: DictConfig) -> dict[str, Any]:
    model = load_classifier(cfg.ckpt_path)
    fmt = str(cfg.get("format", "onnx"))
    if fmt not in FORMATS:
        raise UserError(f"format={fmt} is unknown: use {' or '.join(FORMATS)}")
    check_quantize(cfg.get("quantize"), fmt)
    output = cfg.get("output") or Path(cfg.paths.output_dir) / f"model{FORMATS[fmt]}"
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


# --- int8 ------------------------------------------------------------------------------------------
# onnxruntime static quantization in QDQ form: int8 weights (per output channel) and int8 activations,
# their ranges the 99.999th percentile over training clips. Kept in float, as measured in
# experiments/int8/README.md: the frontend (mel / MFCC matrices in int8 leave 10-34 % accuracy), the
# first and the last weight layer (phase3d 59 % with them in int8, 97 % without), every op but the
# weight layers, and the layers onnxruntime has no int8 kernel for (GRU, LSTM).
QUANTIZE = ("int8",)
INT8_OPS = ("Conv", "MatMul", "Gemm")  # only weight layers: Q/DQ pairs around every Add or Relu cost time
WEIGHT_OPS = (*INT8_OPS, "ConvTranspose", "GRU", "LSTM", "RNN")
LATENCY_WARMUP, LATENCY_RUNS = 10, 100


def check_quantize(quantize: Any, fmt: str) -> None:
    if not quantize:
        return
    if quantize not in QUANTIZE:
        raise UserError(f"quantize={quantize} is unknown: use quantize=int8, or null for none")
    if fmt != "onnx":
        raise UserError(f"quantize={quantize} works on ONNX files (onnxruntime quantization): use format=onnx")


def int8_path(path: Path) -> Path:
    """`model.onnx` -> `model.int8.onnx`."""
    return path.with_name(f"{path.stem}.int8{path.suffix}")


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
    model = model.cpu().eval()
    backbone = model.hparams.backbone["name"]
    path = output.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as tmp:
        fp32, int8 = Path(tmp) / path.name, Path(tmp) / int8_path(path).name
        fix = "int8 needs an ONNX export; export without quantize=int8 (format=torchscript)"
        dynamic = export_onnx(model, fp32, int(cfg.get("opset", 18)), fix=fix)
        layers = quantize_int8(fp32, int8, calibration, batch=64 if dynamic else 1, backbone=backbone)
        _add_onnx_metadata(int8, metadata(model, "onnx"))
        for file in (fp32, int8):
            sidecar(file).write_text(json.dumps(metadata(model, "onnx"), indent=2))
        for file in (fp32, int8, sidecar(fp32), sidecar(int8)):
            os.replace(file, path.parent / file.name)
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


def sample_clips(waves: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` training clips drawn without replacement (all of them if fewer), float32 in [-1, 1]."""
    order = np.random.default_rng(seed).permutation(len(waves))[:count]
    return np.asarray(waves[np.sort(order)], dtype=np.float32) / 32768


def quantize_int8(source: Path, target: Path, clips: np.ndarray, batch: int, backbone: str) -> dict[str, Any]:
    """Write the int8 form of `source`; returns how many weight layers, and which share of the weights, are int8."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    boundary = frontend_outputs(onnx.load(str(source)))
    prepared = pre_process(source, boundary)
    frontend, layers = split_graph(onnx.load(str(prepared)).graph, boundary)
    names = list(layers)
    try:
        with quiet():
            quantize_static(
                str(prepared), str(target), calibration_reader(clips, batch), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(INT8_OPS), per_channel=True, activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile,
                nodes_to_exclude=sorted(frontend | set(names[:1] + names[-1:])),
            )
    except Exception as error:  # noqa: BLE001 - the quantizer raises anything on ops it cannot handle
        raise UserError(f"backbone {backbone} does not quantize to int8 ({first_line(error)}): "
                        "export it without quantize=int8") from None
    quantized = int8_layers(onnx.load(str(target)).graph, set(layers))
    if not quantized:
        others = ", ".join(sorted({layers[name][0] for name in names[1:-1]}))
        why = f" and onnxruntime has no int8 kernel for the others ({others})" if others else ""
        raise UserError(f"backbone {backbone} does not quantize to int8: of its {len(layers)} weight layers the "
                        f"first and last stay float{why}: export it without quantize=int8")
    weights = sum(count for _, count in layers.values())
    return {"int8_layers": len(quantized), "weight_layers": len(layers),
            "int8_weight_share": sum(layers[name][1] for name in quantized) / weights}


def frontend_outputs(proto: Any) -> set[str]:
    """The tensors the frontend hands to the backbone, found by the exporter's name scope of each node."""
    inside = [node for node in proto.graph.node if in_frontend(node)]
    produced = {name for node in inside for name in node.output}
    consumed = {name for node in proto.graph.node if not in_frontend(node) for name in node.input}
    return produced & (consumed | {output.name for output in proto.graph.output})


def in_frontend(node: Any) -> bool:
    scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "[]")
    return "frontend" in ast.literal_eval(scopes)


def pre_process(source: Path, boundary: set[str]) -> Path:
    """onnxruntime's pre-processing for quantization (folds BatchNorm into Conv, constants, shapes), or
    `source` itself where it fails or renames the frontend's outputs. Symbolic shape inference is
    skipped: it cannot follow the STFT operator."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = source.with_name(f"{source.stem}.pre{source.suffix}")
    try:
        with quiet():
            quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
    except Exception:  # noqa: BLE001 - quantizing the exported graph as it is still works
        return source
    import onnx

    produced = {name for node in onnx.load(str(target)).graph.node for name in node.output}
    return target if boundary <= produced else source


def split_graph(graph: Any, boundary: set[str]) -> tuple[set[str], dict[str, tuple[str, int]]]:
    """(the frontend: names of the nodes the backbone's input depends on; the backbone's weight layers in graph
    order: name -> (op type, number of weights))."""
    producer = {name: node for node in graph.node for name in node.output}
    frontend, todo = set(), list(boundary)
    while todo:
        node = producer.get(todo.pop())
        if node is not None and node.name not in frontend:
            frontend.add(node.name)
            todo.extend(node.input)
    sizes = {tensor.name: int(np.prod(tensor.dims)) for tensor in graph.initializer}
    layers = {}
    for node in graph.node:
        weights = sum(sizes.get(name, 0) for name in node.input)
        if node.op_type in WEIGHT_OPS and node.name not in frontend and weights:
            layers[node.name] = (node.op_type, weights)
    return frontend, layers


def int8_layers(graph: Any, layers: set[str]) -> list[str]:
    """Those of `layers` that read their weights through a DequantizeLinear (int8 weights)."""
    dequantized = {name for node in graph.node if node.op_type == "DequantizeLinear" for name in node.output}
    return [node.name for node in graph.node
            if node.name in layers and len(node.input) > 1 and node.input[1] in dequantized]


def calibration_reader(clips: np.ndarray, batch: int) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class ClipReader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(range(0, len(clips), batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self.batches, None)
            return None if start is None else {"waveform": clips[start : start + batch]}

    return ClipReader()


def cpu_session(path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare(fp32: Path, int8: Path, test: Any, batch: int, clip: np.ndarray) -> dict[str, Any]:
    """Sizes, CPU latency on `clip` and (given the test bank) accuracy of both files."""
    result: dict[str, Any] = {}
    predictions = {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        session = cpu_session(path)
        result[f"size_{name}"] = path.stat().st_size
        result[f"latency_ms_{name}"] = latency_ms(session, clip)
        if test is not None:
            predictions[name] = predict(session, test.waves, batch)
            result[f"accuracy_{name}"] = float((predictions[name] == np.asarray(test.labels)).mean())
    if test is not None:
        result["test_clips"] = len(test.labels)
        result["agreement"] = float((predictions["fp32"] == predictions["int8"]).mean())
    return result


def predict(session: Any, waves: np.ndarray, batch: int) -> np.ndarray:
    name = session.get_inputs()[0].name
    return np.concatenate([
        session.run(None, {name: np.asarray(waves[start : start + batch], dtype=np.float32) / 32768})[0].argmax(1)
        for start in range(0, len(waves), batch)
    ])


def latency_ms(session: Any, clip: np.ndarray) -> float:
    """Median wall time of one batch-1 run, after warm-up runs."""
    feed = {session.get_inputs()[0].name: clip}
    times = []
    for run_index in range(LATENCY_WARMUP + LATENCY_RUNS):
        started = time.perf_counter()
        session.run(None, feed)
        if run_index >= LATENCY_WARMUP:
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def comparison_table(result: dict[str, Any]) -> str:
    rows = []
    if "accuracy_fp32" in result:
        accuracy = [f"{100 * result[f'accuracy_{name}']:.2f} %" for name in ("fp32", "int8")]
        rows.append(("test accuracy", *accuracy,
                     f"{result['test_clips']} clips; int8 agrees with fp32 on {100 * result['agreement']:.1f} %"))
    rows.append(("file size", f"{result['size_fp32'] / 1e6:.2f} MB", f"{result['size_int8'] / 1e6:.2f} MB",
                 f"{result['size_fp32'] / result['size_int8']:.1f}x smaller"))
    rows.append(("CPU latency", f"{result['latency_ms_fp32']:.2f} ms", f"{result['latency_ms_int8']:.2f} ms",
                 f"per clip, batch 1, 1 thread, median of {LATENCY_RUNS} runs"))
    lines = [f"{'':<15}{'fp32 (ONNX)':>13}{'int8 (ONNX)':>13}"]
    lines += [f"{label:<15}{fp32:>13}{int8:>13}   {note}" for label, fp32, int8, note in rows]
    return "\n".join(lines)
