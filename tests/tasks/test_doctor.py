"""The training doctor: each seed failure gets the finding that names its cause, each check
fires on a synthetic case built for it, and healthy cases get none."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audioclf import cli, diagnostics
from audioclf.lit.callbacks import ChanceHint
from audioclf.tasks import doctor, train
from tests.conftest import compose_config


def problems(findings):
    return {(f.check, f.problem): f for f in findings if f.is_problem}


def examine(tmp_path, fsdd_root, *overrides, **options):
    cfg = compose_config(tmp_path, ["data=fsdd", f"data.root={fsdd_root}", "data.download=false", *overrides])
    return doctor.examine(cfg, **options)[0]


# ---------------------------------------------------------------- the seed setups, end to end


def test_posted_gru_gets_its_dropout_and_its_per_frame_labels(tmp_path, fsdd_root):
    found = problems(examine(tmp_path, fsdd_root, "model=gru_seq2seq", overfit_steps=20))
    dropout = found[("dropout", "heavy_dropout")]
    assert dropout.fix == "model.dropout=0.2" and "0.8" in dropout.message and "4 times" in dropout.message
    assert dropout.severity == "warning"  # a clip-level GRU learns through it (experiments/gru_labels)
    labels = found[("loss", "per_frame_labels")]
    assert labels.severity == "error"
    assert labels.fix.startswith("model=gru ") and "copied to every frame" in labels.message
    assert dropout.study == labels.study == "experiments/gru_labels/README.md"


def test_raw_power_lstm_gets_its_unlogged_power_and_its_transposed_axis(tmp_path, fsdd_root):
    found = problems(examine(tmp_path, fsdd_root, "model=lstm_fsdd", "features=raw_power_mel", overfit_steps=20))
    power = found[("features", "unlogged_power")]
    assert power.severity == "error" and power.fix.startswith("features=logmel80")
    layout = found[("layout", "steps_over_frequency")]
    assert layout.fix.startswith("features.librosa_layout=false") and "80 frequency bands" in layout.message
    assert power.study == layout.study == "experiments/lstm_preprocessing/README.md"


@pytest.mark.parametrize("model", ["gru", "lstm_fsdd", pytest.param("bcresnet", marks=pytest.mark.slow)])
def test_healthy_models_get_no_finding(tmp_path, fsdd_root, model):
    findings = examine(tmp_path, fsdd_root, f"model={model}")
    assert problems(findings) == {}
    assert any(f.check == "overfit" for f in findings)


def test_a_run_stuck_at_chance_prints_the_hint_and_the_doctor_reads_its_history(tmp_path, fsdd_root, capsys):
    cfg = compose_config(tmp_path, ["data=fsdd", f"data.root={fsdd_root}", "data.download=false", "model=lstm_fsdd",
                                    "optim.lr=1e-9", "trainer.max_epochs=3", "trainer.enable_progress_bar=false",
                                    "test=false"])
    train.run(cfg)
    run_dir = tmp_path / "run"
    hint = [line for line in capsys.readouterr().out.splitlines() if "audioclf-doctor" in line]
    assert hint == [f"val/acc has stayed within 2 points of chance (10.0 %) for 3 epochs: "
                    f"`audioclf-doctor run_dir={run_dir}` says why"]
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text(doctor_config_yaml(cfg))
    cli.doctor([f"run_dir={run_dir}"])
    out = capsys.readouterr().out
    assert "history: val/acc stayed within 2 points of chance (10.0 %) for all 3 epochs" in out
    assert "fix:   optim.lr=" in out  # the range test names the learning rate that caused it


def doctor_config_yaml(cfg) -> str:
    from omegaconf import OmegaConf

    plain = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    return OmegaConf.to_yaml(plain)


def test_the_command_line_refuses_what_is_not_a_run_directory_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.doctor([f"run_dir={tmp_path}"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit):
        cli.doctor(["model=no_such_model"])
    assert "model=no_such_model is not a config" in capsys.readouterr().err


# ---------------------------------------------------------------- each check on a case built for it


def test_labels_imbalanced_or_missing_and_balanced():
    names = ["a", "b", "c"]
    assert set(problems(diagnostics.check_labels(np.array([0] * 40 + [1] * 5 + [2] * 5), names))) == {
        ("labels", "imbalanced")}
    assert ("labels", "empty_class") in problems(diagnostics.check_labels(np.array([0, 0, 1, 1]), names))
    balanced = diagnostics.check_labels(np.repeat([0, 1, 2], 10), names)
    assert problems(balanced) == {} and "chance is 33.3 %" in balanced[-1].message


def features_case(raw, normalize="per_band", name="logmel"):
    inputs = raw if normalize == "none" else (raw - raw.mean(dim=(0, 3), keepdim=True)) / raw.std(
        dim=(0, 3), keepdim=True).clamp_min(1e-5)
    features = {"name": name, "normalize": normalize}
    return problems(diagnostics.check_features(raw, inputs, band_axis=2, features=features))


def test_features_each_problem_and_a_healthy_log_mel():
    torch.manual_seed(0)
    log_mel = torch.randn(32, 1, 20, 50) * 3 - 8
    assert features_case(log_mel) == {}
    nan = log_mel.clone()
    nan[0, 0, 3, 7] = float("nan")
    assert ("features", "not_finite") in features_case(nan)
    constant = log_mel.clone()
    constant[:, :, :2] = -13.8
    assert features_case(constant)[("features", "constant_bands")].fix == "features.n_mels=18 or a longer window " \
                                                                           "(features.win_ms)"
    power = features_case(torch.exp(log_mel) ** 2, normalize="none", name="raw_power_mel")
    assert power[("features", "unlogged_power")].severity == "error"
    assert set(features_case(log_mel, normalize="none")) == {("features", "not_standardized")}


class SequenceOver(nn.Module):
    """An LSTM over the features' band axis (2) or time axis (3)."""

    def __init__(self, axis: int, bands: int = 12, frames: int = 20):
        super().__init__()
        self.axis = axis
        self.lstm = nn.LSTM(frames if axis == 2 else bands, 8, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        sequence = x[:, 0] if self.axis == 2 else x[:, 0].transpose(1, 2)
        return self.out(self.lstm(sequence)[0][:, -1])


def test_layout_names_a_recurrent_layer_stepping_over_bands():
    x = torch.randn(4, 1, 12, 20)
    found = problems(diagnostics.check_layout(SequenceOver(axis=2), x, time=3, features={"librosa_layout": True}))
    assert "12 frequency bands" in found[("layout", "steps_over_frequency")].message
    healthy = diagnostics.check_layout(SequenceOver(axis=3), x, time=3, features={})
    assert problems(healthy) == {} and "steps over 20 time frames" in healthy[0].message


def test_time_axis_follows_the_audio():
    def transform(waves):
        return waves.reshape(len(waves), 1, 10, 40)  # 10 "frames" of 40 samples: time on axis 2

    assert diagnostics.time_axis(transform, torch.randn(2, 400)) == 2
    assert diagnostics.time_axis(lambda w: transform(w).transpose(2, 3), torch.randn(2, 400)) == 3


class Mlp(nn.Module):
    def __init__(self, dropout: float = 0.0, inputs: int = 40, classes: int = 4):
        super().__init__()
        self.first, self.second = nn.Linear(inputs, 32), nn.Linear(32, classes)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.second(self.drop(F.relu(self.first(self.drop(x.flatten(1))))))


def test_dropout_above_a_half_is_named_with_its_key():
    x = torch.randn(8, 1, 4, 10)
    found = problems(diagnostics.check_dropout(Mlp(dropout=0.8), x, {"name": "mlp", "dropout": 0.8}))
    heavy = found[("dropout", "heavy_dropout")]
    assert heavy.fix == "model.dropout=0.2" and "2 times" in heavy.message
    assert problems(diagnostics.check_dropout(Mlp(dropout=0.2), x, {"dropout": 0.2})) == {}


class PerFrameBce(nn.Module):
    """gru_seq2seq's head in miniature: class logits per frame, sigmoid BCE on copied labels."""

    def __init__(self, per_frame: bool = True):
        super().__init__()
        self.per_frame = per_frame
        self.head = nn.Linear(10, 4)

    def forward(self, x):
        frames = x[:, 0].transpose(1, 2)  # (B, 6 frames, 10)
        self.frames = self.head(frames if self.per_frame else frames.mean(1))
        return self.frames.mean(1) if self.per_frame else self.frames

    def loss(self, logits, labels):
        target = F.one_hot(labels, 4).float()
        if self.per_frame:
            target = target[:, None].expand_as(self.frames)
        return F.binary_cross_entropy_with_logits(self.frames * 0.01, target)


def test_initial_loss_per_frame_labels_sigmoid_and_large_logits():
    x, labels = torch.randn(8, 1, 10, 6), torch.arange(8) % 4
    per_frame = problems(diagnostics.check_initial_loss(PerFrameBce(), x, labels, 4))
    assert "each of 6 frames" in per_frame[("loss", "per_frame_labels")].message
    per_clip = problems(diagnostics.check_initial_loss(PerFrameBce(per_frame=False), x, labels, 4))
    assert ("loss", "sigmoid_loss") in per_clip
    loud = Mlp(inputs=60)
    with torch.no_grad():
        loud.second.weight.mul_(100)
    assert ("loss", "high_initial_loss") in problems(diagnostics.check_initial_loss(loud, x, labels, 4))
    assert problems(diagnostics.check_initial_loss(Mlp(inputs=60), x, labels, 4)) == {}


class Scaled(Mlp):
    """The first layer's output multiplied by `scale` (tiny: its gradient vanishes)."""

    def __init__(self, scale: float = 1.0, unused: bool = False):
        super().__init__()
        self.scale = scale
        self.unused = nn.Linear(3, 3) if unused else None

    def forward(self, x):
        return self.second(F.relu(self.first(x.flatten(1)) * self.scale))


def test_gradients_dead_vanishing_not_finite_and_healthy():
    x, labels = torch.randn(8, 1, 4, 10), torch.arange(8) % 4
    assert ("gradients", "no_gradient") in problems(diagnostics.check_gradients(Scaled(unused=True), x, labels))
    vanishing = Scaled(scale=1e-9)
    with torch.no_grad():
        vanishing.first.bias.fill_(1.0)  # keeps the ReLU open, so the gradient is tiny, not zero
    assert ("gradients", "vanishing") in problems(diagnostics.check_gradients(vanishing, x, labels))
    broken = Scaled()
    with torch.no_grad():
        broken.first.weight[0, 0] = float("nan")
    assert ("gradients", "not_finite") in problems(diagnostics.check_gradients(broken, x, labels))
    healthy = diagnostics.check_gradients(Scaled(), x, labels)
    assert problems(healthy) == {} and "first" in healthy[0].message


class Blind(nn.Module):
    """Ignores its input: the same logits for every clip."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(4))

    def forward(self, x):
        return self.bias.expand(len(x), -1)


def adamw(params, lr=1e-2):
    return torch.optim.AdamW(params, lr=lr)


def test_overfit_one_batch_fails_for_a_blind_model_and_passes_for_an_mlp():
    torch.manual_seed(0)
    x, labels = torch.randn(16, 1, 4, 10), torch.arange(16) % 4
    blind = diagnostics.check_overfit_batch(Blind(), adamw, x, labels, steps=30)
    assert ("overfit", "cannot_overfit") in problems(blind)
    learned = diagnostics.check_overfit_batch(Mlp(), adamw, x, labels, steps=100)
    assert problems(learned) == {} and "by heart" in learned[0].message


def test_learning_rate_too_high_too_low_and_fine():
    torch.manual_seed(0)
    x, labels = torch.randn(16, 1, 4, 10), torch.arange(16) % 4

    def check(lr):
        return problems(diagnostics.check_learning_rate(Mlp(), lambda p: torch.optim.SGD(p, lr=lr), lr, x, labels))

    assert set(check(50.0)) == {("lr", "lr_too_high")}
    too_low = check(1e-9)
    assert set(too_low) == {("lr", "lr_too_low")} and too_low[("lr", "lr_too_low")].fix.startswith("optim.lr=")
    assert check(0.01) == {}


def test_history_at_chance_for_three_epochs():
    stuck = problems(diagnostics.check_history([0.1, 0.11, 0.09], chance=0.1))
    assert stuck[("history", "stuck_at_chance")].fix == "the findings above name why"
    slow = problems(diagnostics.check_history([0.1, 0.11, 0.09], chance=0.1, can_learn=True))
    assert "trainer.max_epochs" in slow[("history", "stuck_at_chance")].fix
    assert problems(diagnostics.check_history([0.1, 0.1], chance=0.1)) == {}  # too early to tell
    assert problems(diagnostics.check_history([0.1, 0.4, 0.8], chance=0.1)) == {}


def test_chance_hint_prints_once_after_three_epochs_in_a_row(capsys):
    hint = ChanceHint()
    trainer = SimpleNamespace(sanity_checking=False, is_global_zero=True, default_root_dir="logs/runs/train/x",
                              datamodule=None, callback_metrics={})
    module = SimpleNamespace(class_names=list("abcdefghij"))
    for acc in (0.11, 0.30, 0.10, 0.12, 0.09, 0.10, 0.10):
        trainer.callback_metrics["val/acc"] = torch.tensor(acc)
        hint.on_validation_end(trainer, module)
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert lines == ["val/acc has stayed within 2 points of chance (10.0 %) for 3 epochs: "
                     "`audioclf-doctor run_dir=logs/runs/train/x` says why"]
