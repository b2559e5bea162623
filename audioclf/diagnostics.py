"""The training doctor's checks: why a model does not learn, in plain words.

Each check takes modules, tensors and plain values and returns `Finding`s (plain data):
label distribution and chance level, feature statistics per band, the axis each recurrent
layer steps over, dropout, loss at initialisation vs ln(classes), gradient norms per layer,
overfitting one batch, a learning-rate range test and whether a run's val/acc stayed at
chance. Errors and warnings name the override that fixes them and the study in
experiments/ that measured it. `diagnose` runs them all on a freshly built model;
audioclf/tasks/doctor.py builds that model from a config.
"""

from __future__ import annotations

import copy
import math
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SEVERITIES = ("error", "warning", "info")  # error: blocks learning; warning: costs accuracy; info: measured
GRU_LABELS = "experiments/gru_labels/README.md"
LSTM_PREPROCESSING = "experiments/lstm_preprocessing/README.md"
CNN_VS_RNN = "experiments/cnn_vs_rnn/README.md"
SYMPTOMS = ("cannot_overfit", "stuck_at_chance")  # problems whose cause other findings name


@dataclass
class Finding:
    check: str  # which check: labels, features, layout, dropout, loss, gradients, overfit, lr, history
    problem: str  # a short id of what it found ("ok" for an info line), e.g. unlogged_power
    severity: str  # one of SEVERITIES
    message: str
    fix: str = ""  # the override(s) to change
    study: str = ""  # the experiments/ README that measured it

    @property
    def is_problem(self) -> bool:
        return self.severity != "info"


def info(check: str, message: str) -> Finding:
    return Finding(check, "ok", "info", message)


# ---------------------------------------------------------------- labels


def chance_level(labels: np.ndarray) -> float:
    """Accuracy of always answering the most frequent class."""
    return float(np.bincount(labels).max() / len(labels))


def check_labels(train_labels: np.ndarray, class_names: list[str]) -> list[Finding]:
    counts = np.bincount(np.asarray(train_labels), minlength=len(class_names))
    chance = chance_level(np.asarray(train_labels))
    findings = []
    empty = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
    if empty:
        findings.append(Finding(
            "labels", "empty_class", "error",
            f"{len(empty)} of {len(class_names)} classes have no training clip ({', '.join(empty[:5])}): "
            "the model can never predict them",
            fix="check data.root and data.split (or data.labels): every class needs clips"))
    nonzero = counts[counts > 0]
    if len(nonzero) > 1 and nonzero.max() > 3 * nonzero.min():
        big, small = class_names[int(counts.argmax())], class_names[int(np.where(counts > 0, counts, 1e9).argmin())]
        findings.append(Finding(
            "labels", "imbalanced", "warning",
            f"the classes are imbalanced: {big} has {counts.max()} training clips, {small} {nonzero.min()}; "
            f"always answering {big} already scores {100 * chance:.1f} %, and a model can sit there",
            fix="data.balanced_sampler=true"))
    findings.append(info("labels", f"{len(class_names)} classes, {len(train_labels)} training clips "
                                   f"({counts.min()}-{counts.max()} per class): chance is {100 * chance:.1f} %"))
    return findings


# ---------------------------------------------------------------- features


def perturb_second_half(x: torch.Tensor, axis: int, seed: int = 0) -> torch.Tensor:
    """x with noise added to the second half of `axis`."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=generator) * (x.std() + 1e-3)
    mask = torch.zeros(x.shape[axis])
    mask[x.shape[axis] // 2 :] = 1
    shape = [1] * x.dim()
    shape[axis] = -1
    return x + noise * mask.view(shape)


def changes_only_the_end(before: torch.Tensor, after: torch.Tensor, axis: int) -> bool:
    """True when `after` differs from `before` at the end of `axis` and not at its start (the end,
    not the start: a forward recurrent layer carries a change at step t to every later step)."""
    change = (after - before).abs().float().movedim(axis, 0).flatten(1).amax(dim=1)
    changed = change > 1e-6 * (before.abs().max() + 1e-12)
    quarter = max(1, len(changed) // 4)
    return len(changed) > 1 and bool(changed[-quarter:].any()) and not bool(changed[:quarter].any())


@torch.no_grad()
def time_axis(transform: nn.Module, waves: torch.Tensor) -> int:
    """Which axis of the (B, C, F, T) features is time: the one that changes only at its end
    when only the second half of the audio changes (librosa's layout puts time on axis 2)."""
    before = transform(waves)
    after = transform(perturb_second_half(waves, axis=1))
    for axis in (3, 2):
        if changes_only_the_end(before, after, axis):
            return axis
    return 3


def loud_to_median(raw: torch.Tensor) -> float:
    """How many times the median the loudest values (99.9th percentile) are, over the positive
    values of non-negative features; 0 for features with negative values (logs, MFCC)."""
    values = raw[torch.isfinite(raw)].double()
    positive = values[values > 0]
    if values.min() < 0 or len(positive) < 2:
        return 0.0
    sample = positive[torch.linspace(0, len(positive) - 1, min(len(positive), 1_000_000)).long()]
    return float(torch.quantile(sample, 0.999) / sample.median())


def check_features(raw: torch.Tensor, inputs: torch.Tensor, band_axis: int, features: dict) -> list[Finding]:
    """`raw`: the transform's output for a sample of training clips; `inputs`: the same after
    the input normalization (what the backbone sees); `features`: the features config."""
    name, normalize = features.get("name"), features.get("normalize", "global")
    bands = raw.movedim(band_axis, 0).flatten(1)  # (bands, values)
    findings = []
    broken = (~torch.isfinite(inputs.movedim(band_axis, 0).flatten(1))).any(dim=1)
    if broken.any():
        findings.append(Finding(
            "features", "not_finite", "error",
            f"the features hold NaN or infinite values in {int(broken.sum())} of {len(broken)} bands "
            f"(first: band {int(broken.nonzero()[0])}): every loss and gradient they touch is NaN",
            fix="look for broken or silent clips (data.skip_bad_files=true) and a log without an offset"))
    constant = bands.amax(dim=1) == bands.amin(dim=1)
    if constant.any():
        first = ", ".join(str(int(b)) for b in constant.nonzero().flatten()[:5])
        findings.append(Finding(
            "features", "constant_bands", "warning",
            f"{int(constant.sum())} of {len(constant)} feature bands never change (bands {first}): "
            "they carry nothing; with mel features this means more bands than the FFT resolves",
            fix=f"features.n_mels={len(constant) - int(constant.sum())} or a longer window (features.win_ms)"))
    # A power spectrum spans twice the decades of a magnitude: on FSDD mel power's loudest values are
    # ~50,000x its median, STFT magnitude's ~250x, log1p phase features' ~4,000x.
    spread = loud_to_median(raw)
    unlogged = spread > 1e4
    if unlogged:
        standardized = "" if normalize != "none" else ", and not standardized (features.normalize=none)"
        log_fix = "features=logmel80" if name == "raw_power_mel" else "features=logmel"
        findings.append(Finding(
            "features", "unlogged_power", "error" if normalize == "none" else "warning",
            f"the features are un-logged spectral power ({name}){standardized}: all >= 0, and the loudest "
            f"values are {spread:,.0f} times the median (log-mel spans a few units), so a few loud bins "
            "dominate and the model sees the rest as zeros",
            fix=f"{log_fix} (log-mel standardized per band)", study=LSTM_PREPROCESSING))
    mean, std = float(inputs.mean()), float(inputs.std())
    if not unlogged and (abs(mean) > 3 or not 0.1 < std < 10):
        findings.append(Finding(
            "features", "not_standardized", "warning",
            f"the model's inputs are not standardized: mean {mean:.3g}, std {std:.3g} (want about 0 and 1)",
            fix="features.normalize=per_band", study=LSTM_PREPROCESSING))
    band_std = inputs.movedim(band_axis, 0).flatten(1).std(dim=1)
    findings.append(info("features", (
        f"{name} {tuple(inputs.shape[1:])}: inputs mean {mean:.2g}, std {std:.2g}, range {float(inputs.min()):.3g} "
        f"to {float(inputs.max()):.3g}; per-band std {float(band_std.min()):.2g} to {float(band_std.max()):.2g}"
        + (f"; before normalization the loudest values are {spread:,.0f}x the median" if spread else ""))))
    return findings


# ---------------------------------------------------------------- layout


@torch.no_grad()
def recurrent_inputs(backbone: nn.Module, inputs: torch.Tensor) -> dict[str, tuple[nn.RNNBase, torch.Tensor]]:
    """The input sequence each recurrent layer receives, as (B, steps, features)."""
    seen: dict[str, tuple[nn.RNNBase, torch.Tensor]] = {}
    hooks = []
    for name, module in backbone.named_modules():
        if isinstance(module, nn.RNNBase):
            def record(mod, args, _out, name=name):
                if torch.is_tensor(args[0]):
                    sequence = args[0] if mod.batch_first else args[0].transpose(0, 1)
                    seen.setdefault(name, (mod, sequence))
            hooks.append(module.register_forward_hook(record))
    try:
        backbone(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def check_layout(backbone: nn.Module, inputs: torch.Tensor, time: int, features: dict) -> list[Finding]:
    """Which axis each recurrent layer steps over: time, frequency bands or neither."""
    backbone = backbone.eval()
    band = 2 if time == 3 else 3
    before = recurrent_inputs(backbone, inputs)
    if not before:
        return [info("layout", "no recurrent layer")]
    follows = {}
    for axis_name, axis in (("time frames", time), ("frequency bands", band)):
        after = recurrent_inputs(backbone, perturb_second_half(inputs, axis))
        for name, (_, sequence) in before.items():
            if changes_only_the_end(sequence, after[name][1], axis=1):
                follows.setdefault(name, axis_name)
    findings = []
    for name, (module, sequence) in before.items():
        kind = type(module).__name__
        steps, width = sequence.shape[1], sequence.shape[2]
        axis_name = follows.get(name, "learned channels (neither time nor frequency)")
        if axis_name == "frequency bands":
            transposed = bool(features.get("librosa_layout"))
            cause = ("the features keep librosa's (mels, frames) layout, which Keras reads as (steps, features)"
                     if transposed else "this backbone reads the bands as its sequence")
            findings.append(Finding(
                "layout", "steps_over_frequency", "error" if transposed else "warning",
                f"the {kind} `{name}` steps over {steps} frequency bands, not over time: {cause}, so it runs "
                f"from low to high pitch instead of through the word, each step one band's {width} values",
                fix="features.librosa_layout=false (or features=logmel80)" if transposed else "model=gru",
                study=LSTM_PREPROCESSING if transposed else CNN_VS_RNN))
        else:
            findings.append(info("layout", f"the {kind} `{name}` steps over {steps} {axis_name}, "
                                           f"{width} values per step"))
    return findings


# ---------------------------------------------------------------- dropout


def dropout_calls(backbone: nn.Module, inputs: torch.Tensor) -> dict[str, tuple[float, int]]:
    """name -> (rate, times applied) for every dropout module, over one training forward pass."""
    dropouts = {name: module for name, module in backbone.named_modules()
                if isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0}
    counts = dict.fromkeys(dropouts, 0)

    def count(name: str) -> Callable:
        return lambda *_: counts.__setitem__(name, counts[name] + 1)

    hooks = [module.register_forward_hook(count(name)) for name, module in dropouts.items()]
    try:
        with torch.no_grad():
            backbone.train()(inputs)
    finally:
        for hook in hooks:
            hook.remove()
        backbone.eval()
    return {name: (dropouts[name].p, n) for name, n in counts.items() if n}


def check_dropout(backbone: nn.Module, inputs: torch.Tensor, spec: dict) -> list[Finding]:
    """Dropout above 0.5: `spec` (the model config) names the key to lower."""
    calls = dropout_calls(backbone, inputs)
    findings = []
    for name, (rate, count) in calls.items():
        if rate <= 0.5:
            continue
        keys = [key for key, value in spec.items() if "dropout" in key and value == rate]
        fix = f"model.{keys[0]}=0.2" if keys else "lower the dropout rate to 0.1-0.3"
        setting = f", set by model.{keys[0]}={rate}" if keys else ""
        survive = (1 - rate) ** count
        where = f"{count} times in every training forward pass" if count > 1 else "once per forward pass"
        findings.append(Finding(
            "dropout", "heavy_dropout", "warning",
            f"dropout {rate} (`{name}`{setting}) zeroes {100 * rate:.0f} % of the activations, {where}: "
            f"{100 * survive:.2g} % of a signal survives them all, so training sees mostly noise and learns "
            "slowly (a clip-level GRU: ~3x the epochs); with per-frame copied labels it stays near the prior",
            fix=fix, study=GRU_LABELS))
    if not findings:
        rates = sorted({p for p, _ in calls.values()})
        findings.append(info("dropout", f"dropout rates {rates}" if rates else "no dropout"))
    return findings


# ---------------------------------------------------------------- loss at initialisation


def loss_for(backbone: nn.Module, label_smoothing: float = 0.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss of `backbone` as the module computes it: its own `loss`, else cross-entropy."""
    own = getattr(backbone, "loss", None)
    if callable(own):
        return own
    return lambda logits, labels: F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


@torch.no_grad()
def class_outputs_per_step(backbone: nn.Module, inputs: torch.Tensor, num_classes: int) -> int:
    """How many steps a class-sized output has inside the model: 0 when the head sees one vector
    per clip, else the steps of the last layer that emits (B, steps, classes)."""
    steps = [0]

    def record(_module, _args, out):
        steps.append(out.shape[1] if out.dim() == 3 else 0)

    heads = [m for m in backbone.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    hooks = [head.register_forward_hook(record) for head in heads]
    try:
        backbone(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return steps[-1]


def check_initial_loss(backbone: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, num_classes: int,
                       label_smoothing: float = 0.0) -> list[Finding]:
    """A softmax cross-entropy starts at about ln(classes); a very different start says the loss
    or the output scale is not what it seems."""
    backbone = backbone.eval()
    with torch.no_grad():
        logits = backbone(inputs)
        loss = float(loss_for(backbone, label_smoothing)(logits, labels))
    expected = math.log(num_classes)
    frames = class_outputs_per_step(backbone, inputs, num_classes)
    owns_loss = callable(getattr(backbone, "loss", None))
    if owns_loss and num_classes > 2 and abs(loss - math.log(2)) < 0.2:
        if frames > 1:
            return [Finding(
                "loss", "per_frame_labels", "error",
                f"the model predicts the {num_classes} classes on each of {frames} frames and is trained with a "
                f"sigmoid binary cross-entropy against the clip's label copied to every frame (loss at "
                f"initialisation {loss:.2f} = ln 2, not ln {num_classes} = {expected:.2f} of one softmax per "
                "clip): every frame, the silence around the word included, must say yes to one class and no to "
                f"the rest, and answering no to all already scores well",
                fix="model=gru (one softmax per clip over mean-pooled GRU states, cross-entropy)", study=GRU_LABELS)]
        return [Finding(
            "loss", "sigmoid_loss", "warning",
            f"the loss starts at {loss:.2f} = ln 2, not ln {num_classes} = {expected:.2f}: it is a sigmoid binary "
            "cross-entropy per class, not one softmax over the classes",
            fix="drop the backbone's own `loss` (the module then uses softmax cross-entropy)", study=GRU_LABELS)]
    if not owns_loss and loss > expected + 1:
        return [Finding(
            "loss", "high_initial_loss", "warning",
            f"the loss at initialisation is {loss:.2f}, far above ln {num_classes} = {expected:.2f}: the logits "
            f"start large (std {float(logits.std()):.3g}), so the model begins confidently wrong",
            fix="standardize the inputs (features.normalize=per_band); check the last layer's initialisation")]
    return [info("loss", f"loss at initialisation {loss:.2f} (ln {num_classes} = {expected:.2f})")]


# ---------------------------------------------------------------- gradients


def layer_gradients(backbone: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                    label_smoothing: float = 0.0) -> dict[str, float]:
    """Gradient norm per module that owns parameters, after one training backward pass."""
    backbone = copy.deepcopy(backbone).train()
    loss_for(backbone, label_smoothing)(backbone(inputs), labels).backward()
    norms: dict[str, float] = {}
    for name, param in backbone.named_parameters():
        if param.requires_grad:
            layer = name.rsplit(".", 1)[0] if "." in name else name
            grad = 0.0 if param.grad is None else float(param.grad.double().norm())
            norms[layer] = math.sqrt(norms.get(layer, 0.0) ** 2 + grad**2)
    return norms


def check_gradients(backbone: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                    label_smoothing: float = 0.0) -> list[Finding]:
    norms = layer_gradients(backbone, inputs, labels, label_smoothing)
    findings = []
    broken = [name for name, norm in norms.items() if not math.isfinite(norm)]
    if broken:
        findings.append(Finding(
            "gradients", "not_finite", "error",
            f"the gradients of {len(broken)} layers are NaN or infinite ({', '.join(broken[:3])}): one update "
            "ruins the weights", fix="check the features for NaN; lower optim.lr"))
    dead = [name for name, norm in norms.items() if norm == 0]
    if dead:
        findings.append(Finding(
            "gradients", "no_gradient", "warning",
            f"{len(dead)} of {len(norms)} layers get no gradient ({', '.join(dead[:3])}): they never train "
            "(unused, or cut off by a detach, a dead ReLU or a hard threshold)",
            fix="check the backbone's forward"))
    finite = [norm for norm in norms.values() if math.isfinite(norm) and norm > 0]
    if finite and min(finite) < 1e-7 * max(finite):
        weakest = min((n for n in norms.items() if n[1] in finite), key=lambda item: item[1])[0]
        findings.append(Finding(
            "gradients", "vanishing", "warning",
            f"the gradient vanishes: `{weakest}` gets {min(finite):.1e}, {min(finite) / max(finite):.0e} of the "
            "largest layer's, so it barely trains",
            fix="standardize the inputs (features.normalize=per_band); a shorter recurrent sequence"))
    findings.append(info("gradients", describe_norms(norms)))
    return findings


def describe_norms(norms: dict[str, float], most: int = 8) -> str:
    """All layers when few, else the first, last, smallest and largest."""
    def show(names):
        return ", ".join(f"{name} {norms[name]:.1e}" for name in names)

    names = list(norms)
    if len(names) <= most:
        return f"gradient norm per layer, input to output: {show(names)}"
    ranked = sorted(names, key=norms.get)
    return (f"gradient norm per layer ({len(names)} layers), input to output: {show(names[:2])} ... "
            f"{show(names[-2:])}; smallest {show(ranked[:1])}, largest {show(ranked[-1:])}")


# ---------------------------------------------------------------- training checks


def class_balanced_batch(labels: np.ndarray, per_class: int = 2, limit: int = 32) -> np.ndarray:
    """Indices of up to `per_class` clips of each class (at most `limit`), spread over the split."""
    picks = []
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        picks += list(where[np.linspace(0, len(where) - 1, min(per_class, len(where))).round().astype(int)])
    return np.sort(np.asarray(picks[:limit]))


def accuracy(backbone: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((backbone.eval()(inputs).argmax(1) == labels).float().mean())


def train_step(backbone: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable, inputs: torch.Tensor,
               labels: torch.Tensor) -> float:
    loss = loss_fn(backbone.train()(inputs), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def check_overfit_batch(backbone: nn.Module, optimizer_factory: Callable, inputs: torch.Tensor,
                        labels: torch.Tensor, steps: int = 100, label_smoothing: float = 0.0,
                        seconds: float = 30.0) -> list[Finding]:
    """Train a copy on one small batch: a model that can learn anything learns it by heart."""
    backbone = copy.deepcopy(backbone)
    loss_fn = loss_for(backbone, label_smoothing)
    optimizer = optimizer_factory(backbone.parameters())
    started, losses, acc, step, out_of_time = time.perf_counter(), [], 0.0, 0, False
    for step in range(1, steps + 1):
        losses.append(train_step(backbone, optimizer, loss_fn, inputs, labels))
        if step % 10 == 0 or step == steps:
            acc = accuracy(backbone, inputs, labels)
            out_of_time = step < steps and time.perf_counter() - started > seconds
            if acc == 1.0 or out_of_time or not math.isfinite(losses[-1]):
                break
    clips = len(labels)
    if acc == 1.0:
        return [info("overfit", f"learns one batch of {clips} clips by heart in {step} steps "
                                f"(training loss {losses[0]:.2f} -> {losses[-1]:.2f})")]
    if out_of_time and math.isfinite(losses[-1]) and losses[-1] < losses[0]:
        # a slow or busy CPU: too few steps to call it a blocker
        return [info("overfit", f"ran out of its {seconds:.0f} s after {step} of {steps} steps with {100 * acc:.0f} % "
                                f"of {clips} clips learned (training loss {losses[0]:.2f} -> {losses[-1]:.2f}, "
                                "still falling): inconclusive")]
    return [Finding(
        "overfit", "cannot_overfit", "error",
        f"cannot learn one batch of {clips} clips by heart: after {step} steps it gets {100 * acc:.0f} % of them "
        f"right (training loss {losses[0]:.2f} -> {losses[-1]:.2f}); a model that cannot memorize {clips} clips "
        "has a blocker, not too little data or too few epochs",
        fix="a larger optim.lr (the range test below says where the loss falls) or a larger model",
        study=CNN_VS_RNN)]


def lr_range(backbone: nn.Module, optimizer_factory: Callable, inputs: torch.Tensor, labels: torch.Tensor,
             steps: int = 40, low: float = 1e-5, high: float = 1.0,
             label_smoothing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Train a copy on one batch while the learning rate grows exponentially from `low` to `high`
    (one batch, not fresh ones: over a few dozen steps batch-to-batch noise would hide the trend);
    returns the rates and the smoothed losses, cut where the loss diverges."""
    backbone = copy.deepcopy(backbone).train()
    loss_fn = loss_for(backbone, label_smoothing)
    optimizer = optimizer_factory(backbone.parameters())
    rates = np.geomspace(low, high, steps)
    smoothed, losses = None, []
    for rate in rates:
        for group in optimizer.param_groups:
            group["lr"] = rate
        value = train_step(backbone, optimizer, loss_fn, inputs, labels)
        smoothed = value if smoothed is None else 0.7 * smoothed + 0.3 * value
        losses.append(smoothed if math.isfinite(value) else math.inf)
        if not math.isfinite(value) or smoothed > 2 * losses[0]:
            break
    return rates[: len(losses)], np.asarray(losses)


def loss_rises(backbone: nn.Module, optimizer_factory: Callable, lr: float, inputs: torch.Tensor,
               labels: torch.Tensor, steps: int = 10, label_smoothing: float = 0.0) -> list[float] | None:
    """The losses of `steps` steps of a copy on one batch at `lr` when they rise (to twice the first,
    or to NaN), else None."""
    backbone = copy.deepcopy(backbone)
    loss_fn = loss_for(backbone, label_smoothing)
    optimizer = optimizer_factory(backbone.parameters())
    for group in optimizer.param_groups:
        group["lr"] = lr
    losses = [train_step(backbone, optimizer, loss_fn, inputs, labels) for _ in range(steps)]
    return losses if not all(map(math.isfinite, losses)) or max(losses[1:]) > 2 * losses[0] else None


def check_learning_rate(backbone: nn.Module, optimizer_factory: Callable, lr: float, inputs: torch.Tensor,
                        labels: torch.Tensor, steps: int = 40, label_smoothing: float = 0.0) -> list[Finding]:
    """Too high: a few steps at `lr` raise the loss (the fix: the first tenth of it that does not).
    Too low: the range test's loss is lowest at a rate over 10,000 times `lr`."""
    rates, losses = lr_range(backbone, optimizer_factory, inputs, labels, steps, low=min(1e-5, lr),
                             high=max(1.0, 10 * lr), label_smoothing=label_smoothing)
    best = float(rates[int(np.argmin(losses))])
    summary = f"learning-rate range test ({len(rates)} steps): the loss is lowest at lr {best:.0e}"
    if len(rates) < steps:
        summary += f" and diverges by {rates[-1]:.0e}"

    def rises(rate: float) -> list[float] | None:
        return loss_rises(backbone, optimizer_factory, rate, inputs, labels, label_smoothing=label_smoothing)

    if at_lr := rises(lr):
        stable = next((rate for rate in (lr / 10, lr / 100, lr / 1000) if not rises(rate)), lr / 10000)
        return [Finding(
            "lr", "lr_too_high", "error",
            f"optim.lr={lr:g} is too high: {len(at_lr)} steps on one batch take the loss from {at_lr[0]:.2f} to "
            f"{max(at_lr):.3g}; at {stable:g} they do not", fix=f"optim.lr={stable:g}")]
    if lr < best / 1e4:
        return [Finding("lr", "lr_too_low", "warning",
                        f"optim.lr={lr:g} is far below the rates at which the loss falls: {summary}",
                        fix=f"optim.lr={best / 10:.0e}")]
    return [info("lr", f"{summary}; at optim.lr={lr:g} the loss does not rise")]


# ---------------------------------------------------------------- a run's history


def check_history(val_acc: list[float], chance: float, can_learn: bool = False, epochs: int = 3,
                  margin: float = 0.02) -> list[Finding]:
    """val/acc per epoch of a run: at chance (within `margin`) for `epochs` epochs or more?
    `can_learn`: the other checks found nothing, so the recipe, not the model, is to blame."""
    if not val_acc:
        return [info("history", "no val/acc per epoch in the run directory")]
    best = max(val_acc)
    if len(val_acc) >= epochs and best <= chance + margin:
        return [Finding(
            "history", "stuck_at_chance", "error",
            f"val/acc stayed within {100 * margin:.0f} points of chance ({100 * chance:.1f} %) for all "
            f"{len(val_acc)} epochs (best {100 * best:.1f} %): the model did not learn"
            + ("; it can learn (no other finding), so it is slow to start: some backbones sit at chance "
               "for the first epochs (bcresnet after one epoch) or during a warm-up" if can_learn else ""),
            fix=("train longer (trainer.max_epochs=20) or shorten the warm-up (scheduler.warmup_epochs=1)"
                 if can_learn else "the findings above name why"),
            study=CNN_VS_RNN)]
    return [info("history", f"val/acc over {len(val_acc)} epochs: best {100 * best:.1f} %, last "
                            f"{100 * val_acc[-1]:.1f} % (chance {100 * chance:.1f} %)")]


# ---------------------------------------------------------------- all together


def diagnose(model, train_waves: np.ndarray, train_labels: np.ndarray, val_labels: np.ndarray | None = None,
             val_acc: list[float] | None = None, overfit_steps: int = 100, lr_steps: int = 40,
             sample_clips: int = 256, seed: int = 0) -> list[Finding]:
    """Every check on a freshly built AudioClassifier (frontend, backbone, optimizer factory,
    hparams) and the int16 training clips; `val_acc`: a run's val/acc per epoch, if any."""
    torch.manual_seed(seed)
    labels_np = np.asarray(train_labels).astype(np.int64)
    num_classes = len(model.class_names)
    smoothing = float(model.hparams.get("label_smoothing", 0.0))
    features, spec = dict(model.hparams.features), dict(model.hparams.backbone)
    pick = np.unique(np.linspace(0, len(labels_np) - 1, min(sample_clips, len(labels_np))).round().astype(int))
    waves = torch.from_numpy(np.asarray(train_waves[pick], dtype=np.float32) / 32768)
    labels = torch.from_numpy(labels_np[pick])
    frontend = model.frontend.eval()
    frontend.adapt(np.asarray(train_waves[pick]), max_clips=sample_clips)
    with torch.no_grad():
        raw, inputs = frontend.transform(waves), frontend(waves)
    time_dim = time_axis(frontend.transform, waves[:16])
    batch = torch.from_numpy(class_balanced_batch(labels_np[pick]))
    batch_inputs, batch_labels = inputs[batch], labels[batch]
    backbone = model.backbone

    findings = check_labels(labels_np, model.class_names)
    findings += check_features(raw, inputs, 2 if time_dim == 3 else 3, features)
    findings += check_layout(backbone, batch_inputs[:4], time_dim, features)
    findings += check_dropout(backbone, batch_inputs, spec)
    findings += check_initial_loss(backbone, batch_inputs, batch_labels, num_classes, smoothing)
    findings += check_gradients(backbone, batch_inputs, batch_labels, smoothing)
    findings += check_overfit_batch(backbone, model.optimizer_factory, batch_inputs, batch_labels,
                                    overfit_steps, smoothing)
    lr = model.optimizer_factory([nn.Parameter(torch.zeros(1))]).param_groups[0]["lr"]
    findings += check_learning_rate(backbone, model.optimizer_factory, lr, batch_inputs, batch_labels,
                                    lr_steps, smoothing)
    if val_acc is not None:
        chance = chance_level(np.asarray(val_labels)) if val_labels is not None else chance_level(labels_np)
        findings += check_history(val_acc, chance, can_learn=not any(f.is_problem for f in findings))
    causes = [f.fix for f in findings if f.is_problem and f.problem not in SYMPTOMS]
    for finding in findings:
        if finding.problem in SYMPTOMS and causes:
            finding.fix = "; ".join(causes)  # a symptom's fix is its causes' fixes
    return findings


def format_findings(findings: list[Finding], title: str = "") -> str:
    """Problems first (errors, then warnings) with their fix and study, then what was measured."""
    order = sorted(findings, key=lambda f: SEVERITIES.index(f.severity))
    problems = [f for f in order if f.is_problem]
    lines = [title] if title else []
    lines.append(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found" if problems
                 else "no problem found: the model can learn this data")
    wrap = textwrap.TextWrapper(width=100, subsequent_indent=" " * 9)
    measured = textwrap.TextWrapper(width=100, subsequent_indent=" " * 13)
    for f in problems:
        lines.append("")
        lines.append(wrap.fill(f"{f.severity.upper():7s}  {f.check}: {f.message}"))
        if f.fix:
            lines.append(wrap.fill(f"         fix:   {f.fix}"))
        if f.study:
            lines.append(f"         study: {f.study}")
    lines += ["", "measured:"]
    lines += [measured.fill(f"  {f.check:9s}  {f.message}") for f in order if not f.is_problem]
    return "\n".join(lines)
