"""A classifier as a waveform-in, logits-out file: ONNX or TorchScript, with a `.json` sidecar.

The exported graph holds the frontend (STFT / mel / MFCC, input normalization;
SpecAugment is off in eval mode) and the backbone. Input: float32 waveforms
(batch, samples) in [-1, 1] at the checkpoint's sample rate and clip length;
output: logits (batch, classes). Class names, sample rate and clip length go
into `<file>.json` beside it (e.g. `model.onnx.json`) (and into the ONNX metadata / TorchScript
extra files). ONNX uses the torch.export-based exporter, which writes the
STFT as the ONNX `STFT` operator; the batch axis is dynamic where the
backbone allows it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from audioclf.errors import UserError
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
        "detection_thresholds": getattr(model, "detection_thresholds", None),  # 1 % false accepts per clip
        "stream_calibration": getattr(model, "stream_calibration", None),  # for a false-alarm budget per hour
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
            add_onnx_metadata(path, metadata(model, "onnx"))
            return dynamic
        except Exception as error:  # noqa: BLE001 - the exporters raise anything; reported below
            last_error = error
    raise UserError(
        f"backbone {model.hparams.backbone['name']} with features={model.hparams.features['name']} "
        f"cannot be exported to ONNX ({first_line(last_error)}): {fix}"
    )


def add_onnx_metadata(path: Path, meta: dict[str, Any]) -> None:
    """Store `meta` as JSON in the ONNX file's `audioclf` model property."""
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


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UserError(f"format={fmt} is unknown: use {' or '.join(FORMATS)}")


def export(
    model: AudioClassifier, fmt: str, output: str | Path, opset: int = 18
) -> tuple[Path, bool]:
    """Write the model and `<output>.json`; returns (path, whether the batch axis is dynamic)."""
    check_format(fmt)
    path = Path(output).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    dynamic = export_onnx(model, path, opset) if fmt == "onnx" else export_torchscript(model, path)
    sidecar(path).write_text(json.dumps(metadata(model, fmt), indent=2))
    return path, dynamic

