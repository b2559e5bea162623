"""The int8 form of an exported ONNX classifier, and how it compares with the fp32 file.

onnxruntime static quantization in QDQ form: int8 weights (per output channel) and int8 activations,
their ranges the 99.999th percentile over training clips. Kept in float, as measured in
experiments/int8/README.md: the frontend (mel / MFCC matrices in int8 leave 10-34 % accuracy), the
first and the last weight layer (phase3d 59 % with them in int8, 97 % without), every op but the
weight layers, and the layers onnxruntime has no int8 kernel for (GRU, LSTM).
"""

from __future__ import annotations

import ast
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from audioclf.deploy.export import add_onnx_metadata, export_onnx, first_line, metadata, quiet, sidecar
from audioclf.errors import UserError
from audioclf.lit.module import AudioClassifier

INT8_OPS = ("Conv", "MatMul", "Gemm")  # only weight layers: Q/DQ pairs around every Add or Relu cost time
WEIGHT_OPS = (*INT8_OPS, "ConvTranspose", "GRU", "LSTM", "RNN")
LATENCY_WARMUP, LATENCY_RUNS = 10, 100


def int8_path(path: Path) -> Path:
    """`model.onnx` -> `model.int8.onnx`."""
    return path.with_name(f"{path.stem}.int8{path.suffix}")


def export_int8(model: AudioClassifier, path: Path, calibration: np.ndarray, opset: int = 18) -> tuple[bool, dict]:
    """Write `path` (fp32 ONNX) and `int8_path(path)`, each with its `.json`: both files or neither.
    Returns (whether the batch axis is dynamic, the int8 layer counts of `quantize_int8`)."""
    model = model.cpu().eval()
    backbone = model.hparams.backbone["name"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as tmp:
        fp32, int8 = Path(tmp) / path.name, Path(tmp) / int8_path(path).name
        fix = "int8 needs an ONNX export; export without quantize=int8 (format=torchscript)"
        dynamic = export_onnx(model, fp32, opset, fix=fix)
        layers = quantize_int8(fp32, int8, calibration, batch=64 if dynamic else 1, backbone=backbone)
        add_onnx_metadata(int8, metadata(model, "onnx"))
        for file in (fp32, int8):
            sidecar(file).write_text(json.dumps(metadata(model, "onnx"), indent=2))
        for file in (fp32, int8, sidecar(fp32), sidecar(int8)):
            os.replace(file, path.parent / file.name)
    return dynamic, layers


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
