"""Streaming-aware layers: a backbone built from them runs on a stream hop by hop, each hop
computing only its new frames, with outputs equal to one pass over all the frames so far.

Time is the last axis everywhere. A stateful layer has two modes:

- clip mode (the default, training and clip inference): it pads its past with zeros, as an
  ordinary layer would (`CausalConv1d/2d`: zeros on the left only; `StatefulGRU`: a zero state);
- carried mode, inside `carrying(stateful_layers(backbone), states)`: each stateful layer takes its state (the
  input frames its kernel still needs, or a hidden state) from `states` in execution order, in
  place of the zeros, and gives back its new state. A state of None means "the stream starts
  here": the layer pads as in clip mode, so a stream primed on a clip equals the clip model.

A streamable backbone splits its forward in two: `embed(features) -> (B, D, steps)`, the
per-step embeddings before pooling over time (causal: step j sees frames up to its own), and
`classify(pooled (B, D)) -> logits`, with `pool` naming how a clip's steps are pooled ("mean",
"max" or "last"). `StatefulBackbone` keeps the last clip's worth of embeddings as its pooling state, so
each hop's logits are the clip model's pooling over the latest window of steps. States are
explicit inputs and outputs of `StatefulBackbone.forward`, so the step exports to ONNX.

Causal convolutions see only the past; a model trained with them on 1 s clips, then streamed,
sees up to its receptive field of real past where training had zeros (kws_streaming's design).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class Carry:
    """The states of one carried call: taken in execution order, given back in the same order."""

    def __init__(self, states: Sequence[torch.Tensor] | None):
        self.pending = None if states is None else list(states)
        self.given: list[torch.Tensor] = []

    def take(self) -> torch.Tensor | None:
        if self.pending is None:
            return None
        if not self.pending:
            raise ValueError("fewer states than stateful layers: pass every state the previous hop returned")
        return self.pending.pop(0)

    def give(self, state: torch.Tensor) -> None:
        self.given.append(state)


class Stateful:
    """Mixin of the layers `carrying` feeds: `self.carried` is the active Carry, or None (clip mode)."""

    carried: Carry | None = None


def stateful_layers(model: nn.Module) -> list[Stateful]:
    """`model`'s stateful layers in execution order (module order: each backbone here runs its layers in it)."""
    return [module for module in model.modules() if isinstance(module, Stateful)]


@contextmanager
def carrying(layers: Sequence[Stateful], states: Sequence[torch.Tensor] | None) -> Iterator[Carry]:
    """Run the stateful `layers` (`stateful_layers(model)`) in carried mode; states None starts a stream
    (zero past)."""
    carry = Carry(states)
    for layer in layers:
        layer.carried = carry
    try:
        yield carry
    finally:
        for layer in layers:
            layer.carried = None
    if carry.pending:
        raise ValueError(f"{len(carry.pending)} states were not used: "
                         "pass exactly the states the previous hop returned")


class _CausalConv(Stateful):
    """Time (the last axis) padded with `history` zeros on the left only: output step j sees input
    frames up to j * stride. Carried, the padding is the previous hop's leftover input instead."""

    def _setup_time(self, clip_pad: int | None) -> None:
        kernel, dilation, stride = self.kernel_size[-1], self.dilation[-1], self.stride[-1]
        self.receptive = (kernel - 1) * dilation + 1
        self.clip_pad = self.receptive - 1 if clip_pad is None else clip_pad
        self.time_stride = stride

    def _time_padded(self, x: torch.Tensor) -> torch.Tensor:
        state = self.carried.take() if self.carried is not None else None
        return F.pad(x, (self.clip_pad, 0)) if state is None else torch.cat([state.to(x.dtype), x], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._time_padded(x)
        y = self._conv_forward(x, self.weight, self.bias)
        if self.carried is not None:
            self.carried.give(x[..., y.shape[-1] * self.time_stride :])  # what the next output needs
        return y


class CausalConv1d(_CausalConv, nn.Conv1d):
    """nn.Conv1d over time, causal (same parameters, so checkpoints load either way). `padding` must be 0:
    the time padding is `clip_pad` zeros on the left (default: the receptive field - 1)."""

    def __init__(self, *args, clip_pad: int | None = None, **kwargs):
        nn.Conv1d.__init__(self, *args, **kwargs)
        if self.padding not in ((0,), 0) or self.padding_mode != "zeros":
            raise ValueError("CausalConv1d pads time itself: build it with padding=0")
        self._setup_time(clip_pad)


class CausalConv2d(_CausalConv, nn.Conv2d):
    """nn.Conv2d over (frequency, time), causal in time; `padding` is the frequency padding only."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding: int = 0,
                 dilation=1, groups: int = 1, bias: bool = True, clip_pad: int | None = None):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, (int(padding), 0), dilation,
                           groups, bias)
        self._setup_time(clip_pad)


class StatefulGRU(Stateful, nn.GRU):
    """nn.GRU (batch_first) whose hidden state is carried between hops; a zero state in clip mode."""

    def forward(self, x: torch.Tensor, hidden: torch.Tensor | None = None):
        if self.carried is not None:
            hidden = self.carried.take()
        output, hidden = super().forward(x, hidden if hidden is None else hidden.to(x.dtype))
        if self.carried is not None:
            self.carried.give(hidden)
        return output, hidden


SHORT_FRAMES = 32  # convolutions over at most this many frames (a hop's and its kernel's past) run as im2col


def unfolded_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                    padding: tuple[int, int], dilation: tuple[int, int], groups: int) -> torch.Tensor:
    """F.conv2d for groups 1 or depthwise as one matrix product on the patches of F.unfold (im2col): the
    weights times the patches, or per channel its own weights times its own patches.

    Written out because on a hop's few frames oneDNN's per-call cost of a convolution is 30-150 us
    (a 5x5 depthwise head over 6 frames: 37 us, its 25 shifted products 146 us, this 15 us), many
    times the arithmetic."""
    batch, channels = x.shape[:2]
    (kf, kt), out_channels = weight.shape[-2:], weight.shape[0]
    bands = (x.shape[2] + 2 * padding[0] - (kf - 1) * dilation[0] - 1) // stride[0] + 1
    frames = (x.shape[3] + 2 * padding[1] - (kt - 1) * dilation[1] - 1) // stride[1] + 1
    if (kf, kt) == (1, 1) and stride == (1, 1) and not any(padding):
        patches = x.flatten(2)                                       # (B, C, F * T)
    else:
        patches = F.unfold(x, (kf, kt), dilation, padding, stride)  # (B, C * kf * kt, bands * frames)
    if groups == 1:
        out = torch.matmul(weight.flatten(1), patches)                                     # (B, C_out, L)
    else:
        out = torch.matmul(weight.view(channels, 1, kf * kt), patches.view(batch, channels, kf * kt, -1))
    if bias is not None:
        out = out.view(batch, out_channels, -1) + bias[:, None]
    return out.reshape(batch, out_channels, bands, frames)


class _Unfolded:
    """Mixin: a Conv2d (groups 1 or depthwise) that computes short inputs by `unfolded_conv2d`."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.shape[-1] > SHORT_FRAMES:
            return super()._conv_forward(x, weight, bias)
        return unfolded_conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class _UnfoldedConv2d(_Unfolded, nn.Conv2d):
    pass


class _UnfoldedCausalConv2d(_Unfolded, CausalConv2d):
    pass


def streaming_forms(module: nn.Module) -> None:
    """Replace, in place, each submodule that offers a `streaming_form()` (an equal module made for short
    hops, e.g. BC-ResNet's blocks with their linear frequency part folded into one matrix) by that form."""
    for name, child in module.named_children():
        form = getattr(child, "streaming_form", None)
        if callable(form):
            setattr(module, name, form())
        else:
            streaming_forms(child)


def fold_batch_norms(model: nn.Module) -> None:
    """Fold, in place, each batch norm that follows a convolution in an nn.Sequential into it."""
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            for index in range(len(module) - 1):
                conv, norm = module[index], module[index + 1]
                if isinstance(conv, nn.Conv2d) and type(norm) is nn.BatchNorm2d:
                    module[index] = fuse_conv_bn_eval(conv, norm)
                    module[index + 1] = nn.Identity()


def for_streaming(model: nn.Module) -> nn.Module:
    """A copy of an eval-mode `model` for hops of a few frames (same results within float rounding;
    fewer and cheaper calls per hop): modules' own streaming forms, each batch norm that follows a
    convolution in an nn.Sequential folded into it, and plain or depthwise Conv2d layers computing
    short inputs by im2col (`unfolded_conv2d`)."""
    model = copy.deepcopy(model).eval()
    streaming_forms(model)
    fold_batch_norms(model)
    for module in model.modules():
        plain = type(module) in (nn.Conv2d, CausalConv2d) and module.padding_mode == "zeros"
        if plain and (module.groups == 1 or module.groups == module.in_channels == module.out_channels):
            module.__class__ = _UnfoldedCausalConv2d if isinstance(module, CausalConv2d) else _UnfoldedConv2d
    return model


def pool_steps(steps: torch.Tensor, pool: str) -> torch.Tensor:
    """(B, D, steps) -> (B, D) by mean, max or the last step."""
    if pool == "mean":
        return steps.mean(dim=-1)
    if pool == "max":
        return steps.amax(dim=-1)
    return steps[..., -1]


def why_not_stateful(backbone: nn.Module) -> str | None:
    """None when the backbone can stream with state; else one line: which layer, and why not."""
    reason = getattr(backbone, "stateless_reason", None)
    if callable(reason):
        return reason()
    if not all(hasattr(backbone, name) for name in ("embed", "classify", "pool")):
        return f"{type(backbone).__name__} has no causal embed/classify split"
    return None


class StatefulBackbone(nn.Module):
    """A streamable backbone with its states as explicit inputs and outputs.

    `start(features)` primes the stream on a clip's frames (equal to the clip model on them);
    `forward(frames, *states) -> (logits, *states)` feeds the hop's new frames. The last state is
    the pooling window: the embeddings of the latest `steps` steps, a clip's worth, zeros for steps
    before the stream began (so every state keeps its shape from the first hop on). It runs a copy of
    the backbone made for short hops (`for_streaming`: batch norms folded, convolutions on short
    inputs by im2col)."""

    def __init__(self, backbone: nn.Module, input_shape: Sequence[int]):
        super().__init__()
        reason = why_not_stateful(backbone)
        if reason:
            raise ValueError(reason)
        self.backbone = for_streaming(backbone)
        self.layers = stateful_layers(self.backbone)  # found once: walking the modules costs more than a hop
        self.input_shape = tuple(input_shape)
        with torch.no_grad():
            self.steps = int(backbone.embed(torch.zeros(1, *input_shape)).shape[-1])

    def logits(self, window: torch.Tensor) -> torch.Tensor:
        return self.backbone.classify(pool_steps(window, self.backbone.pool))

    def start(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with carrying(self.layers, None) as carry:
            steps = self.backbone.embed(features)
        window = F.pad(steps, (max(0, self.steps - steps.shape[-1]), 0))[..., -self.steps :]
        return (self.logits(window), *carry.given, window)

    def embed(self, frames: torch.Tensor, states: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(embeddings of the new steps, the layers' new states): no pooling."""
        with carrying(self.layers, states) as carry:
            steps = self.backbone.embed(frames)
        return steps, carry.given

    def forward(self, frames: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        steps, layer_states = self.embed(frames, states[:-1])
        window = torch.cat([states[-1].to(steps.dtype), steps], dim=-1)[..., -self.steps :]
        return (self.logits(window), *layer_states, window)
