"""One hop of a stream as an ONNX graph or a TorchScript module, its state as explicit inputs and outputs.

audioclf-export ckpt_path=<file.ckpt> format=onnx streaming=true [stream_hop=0.02]
audioclf-export ckpt_path=<file.ckpt> format=torchscript streaming=true [stream_hop=0.02]

A backbone that streams with state (model.causal=true bcresnet or dscnn, gru) exports its
`StatefulClassifier` step: inputs chunk (1, hop samples), samples, state_0 .. state_n-1; outputs
probabilities, samples_out, state_0_out .. (feed each back as the next hop's input). Any other
exports the `StreamingClassifier` step (the frontend keeps state, the backbone runs on the
window's frames every hop): inputs chunk, samples, ring. The sidecar `<file>.json` names the
inputs, their shapes and the hop; the first hop's states are the ones `start` gives on the
stream's first window (or zeros of those shapes: a stream that starts in silence). The TorchScript
step is traced at the hop's shapes and frozen (constants folded): it runs only hops of `hop_samples`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from audioclf.deploy.export import metadata, quiet, sidecar
from audioclf.lit.module import AudioClassifier
from audioclf.streaming.runtime import StatefulClassifier, from_classifier, stateful_from_classifier, stateless_reason


def streaming_form(model: AudioClassifier, hop: int) -> tuple[nn.Module, str | None]:
    """(the stateful step where the backbone streams with state, else the frontend-only one; why not)."""
    reason = stateless_reason(model.backbone)
    if reason is None:
        return stateful_from_classifier(model.cpu().eval(), hop), None
    return from_classifier(model.cpu().eval(), hop), reason


def io_names(stream: nn.Module, states: int) -> tuple[list[str], list[str]]:
    if isinstance(stream, StatefulClassifier):
        names = [f"state_{index}" for index in range(states)]
        return ["chunk", "samples", *names], ["probabilities", "samples_out", *(f"{n}_out" for n in names)]
    return ["chunk", "samples", "ring"], ["probabilities", "samples_out", "ring_out"]


def primed(stream: nn.Module, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(chunk, samples, *states) of the right shapes: the stream primed on a random window."""
    window, hop = (stream.window, stream.hop) if isinstance(stream, StatefulClassifier) else \
        (stream.frontend.window, stream.frontend.hop)
    audio = 0.1 * torch.randn(1, window + hop, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        _, *state = stream.start(audio[:, :window])
    return (audio[:, window:], *state)


def export_step_onnx(stream: nn.Module, path: str | Path, opset: int = 18) -> Path:
    """Write one hop of `stream` as ONNX (inputs and outputs named as `io_names` says)."""
    path = Path(path)
    example = primed(stream)
    inputs, outputs = io_names(stream, len(example) - 2)
    with quiet():
        program = torch.onnx.export(stream.eval(), example, dynamo=True, opset_version=opset, verbose=False,
                                    input_names=inputs, output_names=outputs)
        program.save(str(path))
    return path


def export_step_torchscript(stream: nn.Module, path: str | Path) -> Path:
    """Write one hop of `stream` as a traced, frozen TorchScript module (same signature as the ONNX step)."""
    path = Path(path)
    with quiet(), torch.no_grad():
        traced = torch.jit.freeze(torch.jit.trace(stream.eval(), primed(stream), check_trace=False))
        torch.jit.save(traced, str(path))
    return path


STEP_EXPORTERS = {"onnx": export_step_onnx, "torchscript": lambda stream, path, opset: export_step_torchscript(
    stream, path)}


def export_streaming(model: AudioClassifier, output: str | Path, hop: int, opset: int = 18,
                     fmt: str = "onnx") -> dict[str, Any]:
    """Write the streaming step (`fmt` onnx or torchscript) and its sidecar; CannotStream if the frontend
    cannot stream."""
    stream, reason = streaming_form(model, hop)
    path = Path(output).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    STEP_EXPORTERS[fmt](stream, path, opset)
    example = primed(stream)
    inputs, outputs = io_names(stream, len(example) - 2)
    meta = metadata(model, fmt) | {
        "streaming": "stateful" if reason is None else "frontend state only",
        "stateless_reason": reason,
        "hop_samples": hop,
        "input": {name: list(tensor.shape) for name, tensor in zip(inputs, example, strict=True)},
        "output": outputs,
    }
    sidecar(path).write_text(json.dumps(meta, indent=2))
    return {"path": str(path), "stateful": reason is None, "reason": reason, "states": len(example) - 2}


def step_runner(path: str | Path, threads: int | None = None) -> Any:
    """A call (chunk, *states) -> [probabilities, *states] of an exported step (or any exported model),
    numpy in and out; `threads`: onnxruntime's intra-op threads (default: its own, every core)."""
    if str(path).endswith(".onnx"):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = options.inter_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda *inputs: session.run(None, dict(zip(names, inputs, strict=True)))
    module = torch.jit.load(str(path))

    def run(*inputs: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [out.numpy() for out in module(*(torch.from_numpy(x) for x in inputs))]

    return run


@torch.no_grad()
def replay_difference(stream: nn.Module, path: str | Path, hops: int = 50, seed: int = 1) -> float:
    """Max |probability difference| of the exported step (ONNX in onnxruntime, or TorchScript) and PyTorch
    over `hops` hops of random audio, each fed its own previous states."""
    run = step_runner(path)
    chunk, *state = primed(stream, seed)
    exported_state = [tensor.numpy() for tensor in state]
    audio = 0.1 * torch.randn(hops, chunk.shape[1], generator=torch.Generator().manual_seed(seed + 1))
    worst = 0.0
    for hop in audio:
        want, *state = stream(hop[None], *state)
        got, *exported_state = run(hop[None].numpy(), *exported_state)
        worst = max(worst, float(np.abs(got - want.numpy()).max()))
    return worst
