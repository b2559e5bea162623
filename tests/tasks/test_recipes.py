"""Recipes as config: optimizer and scheduler partials, schedules step by step, a model's
default recipe, the paper recipes, framing in milliseconds and the model's declared rate."""

from __future__ import annotations

import functools
import math
import subprocess
import sys

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from audioclf.audio.augment import WaveAugment
from audioclf.audio.frontends import SpecAugment, build_frontend, frame_lengths
from audioclf.config import CONF_DIR, check_group_choices
from audioclf.data.datamodule import AudioDataModule
from audioclf.errors import UserError
from audioclf.lit import schedules
from audioclf.tasks import build, train
from tests.conftest import SMALL_SYNTHETIC, compose_config

OPTIMIZERS = sorted(p.stem for p in (CONF_DIR / "optim").glob("*.yaml"))


def lrs_over(factory, total: int, per_epoch: int, lr: float = 0.1) -> list[float]:
    """The learning rate of each of `total` optimizer steps under `factory`'s schedule."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = factory(optimizer, total_steps=total, steps_per_epoch=per_epoch)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_warmup_cosine_learning_rate_at_given_steps():
    lrs = lrs_over(functools.partial(schedules.warmup_cosine, warmup_epochs=2), total=100, per_epoch=10)
    assert lrs[0] == pytest.approx(0.1 / 20)  # linear warm-up over 2 epochs = 20 steps
    assert lrs[9] == pytest.approx(0.1 * 10 / 20)
    assert lrs[19] == pytest.approx(0.1)  # the peak at the warm-up's last step
    assert lrs[20] == pytest.approx(0.1)  # cosine starts at the base lr
    assert lrs[60] == pytest.approx(0.05)  # halfway through the 80 cosine steps
    assert lrs[99] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 79 / 80)))
    assert all(a >= b for a, b in zip(lrs[20:], lrs[21:], strict=False))


def test_cosine_floor_and_no_warmup():
    lrs = lrs_over(functools.partial(schedules.warmup_cosine, floor=0.1), total=50, per_epoch=5)
    assert lrs[0] == pytest.approx(0.1) and min(lrs) > 0.01 - 1e-9
    assert lrs[25] == pytest.approx(0.1 * (0.1 + 0.9 * 0.5))  # halfway between base and floor
    assert lrs[49] == pytest.approx(0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 49 / 50))))


def test_warmup_hold_decay_as_nemo():
    lrs = lrs_over(functools.partial(schedules.warmup_hold_decay, warmup_ratio=0.1, hold_ratio=0.4, floor=0.02),
                   total=100, per_epoch=10)
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert lrs[10] == lrs[49] == pytest.approx(0.1)  # held
    assert lrs[75] == pytest.approx(0.1 * (0.02 + 0.98 * 0.5**2))  # power-2 decay halfway
    assert lrs[99] == pytest.approx(0.1 * (0.02 + 0.98 * (1 / 50) ** 2))


def test_multistep_and_onecycle():
    lrs = lrs_over(functools.partial(schedules.multistep, milestones=[3, 6], gamma=0.5), total=80, per_epoch=10)
    assert lrs[29] == pytest.approx(0.1) and lrs[30] == pytest.approx(0.05) and lrs[60] == pytest.approx(0.025)
    lrs = lrs_over(functools.partial(schedules.onecycle, pct_start=0.25), total=100, per_epoch=10)
    assert lrs[0] == pytest.approx(0.1 / 25) and lrs[25] == pytest.approx(0.1)
    assert lrs.index(max(lrs)) == 25 and lrs[-1] < 1e-4


def test_a_warmup_longer_than_the_run_is_refused():
    with pytest.raises(ValueError, match="not shorter than the run"):
        lrs_over(functools.partial(schedules.warmup_cosine, warmup_epochs=10), total=50, per_epoch=5)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_composes_from_its_config(tmp_path, name):
    cfg = compose_config(tmp_path, [f"optim={name}"])
    optimizer = build.build_optimizer(cfg)([torch.nn.Parameter(torch.zeros(1))])
    expected = {"adamw": "AdamW", "kwt": "AdamW", "adam": "Adam", "sgd": "SGD", "bcresnet": "SGD",
                "novograd": "NovoGrad", "matchboxnet": "NovoGrad"}[name]
    assert type(optimizer).__name__ == expected
    assert optimizer.defaults["lr"] == cfg.optim.lr


class RecordSteps(Callback):
    def __init__(self):
        self.lrs, self.optimizer = [], None

    def on_train_batch_start(self, trainer, *args):
        self.optimizer = trainer.optimizers[0]
        self.lrs.append(self.optimizer.param_groups[0]["lr"])


def test_the_module_trains_with_the_configured_optimizer_and_schedule(tmp_path):
    cfg = compose_config(tmp_path, [*SMALL_SYNTHETIC, "data.batch_size=16", "optim=sgd", "optim.lr=0.2",
                                    "optim.nesterov=true", "scheduler=warmup_cosine", "scheduler.warmup_epochs=1",
                                    "trainer.max_epochs=2", "trainer.accelerator=cpu", "logger=none",
                                    "callbacks=none", "trainer.enable_progress_bar=false", "test=false",
                                    "loss.label_smoothing=0.1"])
    record = RecordSteps()
    train.run(cfg, callbacks=[record])
    assert isinstance(record.optimizer, torch.optim.SGD) and record.optimizer.defaults["nesterov"]
    steps = 8 * 8 // 16  # 64 training clips in batches of 16: 4 steps per epoch, 1 of warm-up
    assert record.lrs == pytest.approx([0.2 * (i + 1) / steps for i in range(steps)]
                                       + [0.2 * 0.5 * (1 + math.cos(math.pi * i / steps)) for i in range(steps)])


def test_a_models_default_recipe_and_overrides_that_win(tmp_path):
    cfg = compose_config(tmp_path, ["model=bcresnet"])
    assert cfg.optim._target_ == "torch.optim.SGD" and cfg.optim.lr == 0.1 and cfg.optim.momentum == 0.9
    assert cfg.scheduler.warmup_epochs == 5 and cfg.augment.spec_augment.time_width == 20
    cfg = compose_config(tmp_path, ["model=bcresnet", "optim=adamw", "scheduler=none", "augment=none"])
    assert cfg.optim._target_ == "torch.optim.AdamW" and not cfg.scheduler and cfg.augment.spec_augment is None
    cfg = compose_config(tmp_path, ["model=kwt"])
    assert cfg.optim.weight_decay == 0.1 and cfg.scheduler.warmup_epochs == 10 and cfg.loss.label_smoothing == 0.1
    cfg = compose_config(tmp_path, ["model=matchboxnet"])
    assert cfg.optim._target_ == "pytorch_optimizer.NovoGrad" and cfg.augment.spec_augment.rect_masks == 5
    assert compose_config(tmp_path, ["model=tf_cnn"]).optim._target_ == "torch.optim.AdamW"  # no paper recipe


@pytest.mark.parametrize("experiment, checks", [
    ("bcresnet_gsc", {"model.width": 8, "optim.lr": 0.1, "optim.weight_decay": 0.001, "scheduler.warmup_epochs": 5,
                      "trainer.max_epochs": 200, "data.batch_size": 100, "data.protocol": "canonical",
                      "augment.spec_augment.freq_width": 7, "augment.noise_prob": 0.8, "test_ckpt": "last"}),
    ("kwt_gsc", {"model.size": 1, "optim.weight_decay": 0.1, "scheduler.warmup_epochs": 10, "data.batch_size": 512,
                 "loss.label_smoothing": 0.1, "features.n_mfcc": 40, "features.n_mels": 80,
                 "augment.spec_augment.time_width": 25, "augment.speed": [0.85, 1.15], "data.protocol": "lists"}),
    ("matchboxnet_gsc", {"features.n_mfcc": 64, "features.win_ms": 25, "augment.shift_ms": 5.0,
                         "augment.white_noise_db": [-90.0, -46.0], "scheduler.hold_ratio": 0.45,
                         "trainer.max_epochs": 200, "data.batch_size": 128}),
    ("fsdd_unseen_speaker", {"data.source": "fsdd", "data.split": "speaker=george", "model.name": "gru",
                             "features.normalize": "utterance", "augment.tilt": [-0.7, 0.7], "trainer.max_epochs": 20,
                             "augment.spec_augment.freq_width": 7, "augment.spec_augment.time_masks": 2,
                             "augment.speed": [0.9, 1.1]}),
])
def test_paper_recipes_compose(tmp_path, experiment, checks):
    cfg = compose_config(tmp_path, [f"experiment={experiment}"])
    for key, value in checks.items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert (list(node) if hasattr(node, "__iter__") and not isinstance(node, str) else node) == value, key
    build.build_optimizer(cfg)
    assert build.build_scheduler(cfg) is not None


def test_recipe_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match=r"optim=lion is not a config in audioclf/conf/optim/: choose one of adam, "):
        check_group_choices(["optim=lion"])
    with pytest.raises(UserError, match=r"scheduler=poly is not a config in audioclf/conf/scheduler/"):
        check_group_choices(["scheduler=poly"])
    cfg = compose_config(tmp_path, ["model=bcresnet", "trainer.max_epochs=5"])
    with pytest.raises(UserError, match=r"scheduler.warmup_epochs=5 is not shorter than the run "
                                        r"\(trainer.max_epochs=5\): lower scheduler.warmup_epochs"):
        build.build_scheduler(cfg)
    cfg = compose_config(tmp_path, ["optim=adamw", "+optim.momentum=0.9"])
    with pytest.raises(UserError, match=r"optim=torch.optim.AdamW rejects its config .*momentum"):
        build.build_optimizer(cfg)


def test_a_bad_recipe_is_one_line_from_the_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "train.py", "model=bcresnet", "trainer.max_epochs=3", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, cwd=CONF_DIR.parent.parent, timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: scheduler.warmup_epochs=5 is not shorter than the run (trainer.max_epochs=3): "
        "lower scheduler.warmup_epochs or raise trainer.max_epochs"
    ]


@pytest.mark.parametrize("rate, n_fft", [(8000, 256), (16000, 512), (22050, 1024)])
def test_frames_in_milliseconds_at_any_rate(rate, n_fft):
    frames = frame_lengths(rate, win_ms=30, hop_ms=10)
    assert frames == {"n_fft": n_fft, "win_length": round(0.03 * rate), "hop_length": round(0.01 * rate)}
    frontend = build_frontend({"name": "logmel", "win_ms": 30, "hop_ms": 10, "sample_rate": None}, rate)
    assert frontend.output_shape(rate) == (1, 40, 101)  # 1 s -> 101 centred 10 ms frames at every rate
    with pytest.raises(ValueError, match="^n_fft=128 is shorter than the 30 ms window"):
        frame_lengths(rate, 30, 10, n_fft=128)


def test_the_model_declares_its_rate_and_the_bank_is_built_at_it(tmp_path, fsdd_root):
    cfg = compose_config(tmp_path, ["model=crnn", "data=fsdd", f"data.root={fsdd_root}"])
    assert cfg.data.sample_rate == 8000 and cfg.features.sample_rate == 22050  # data's rate is not rewritten
    datamodule = build.build_datamodule(cfg)
    datamodule.setup("fit")
    assert datamodule.sample_rate == 22050 and datamodule.banks["train"].waves.shape[1] == 22050
    folders = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert folders and all("-22050hz-" in name for name in folders)  # one cache per rate, named
    native = AudioDataModule(dict(cfg.data), cache_dir=str(tmp_path / "cache"))
    native.setup("fit")
    assert native.banks["train"].waves.shape[1] == 8000
    assert sum("-8000hz-" in p.name for p in (tmp_path / "cache").iterdir()) == 2


def test_spec_augment_rectangles_and_white_noise():
    torch.manual_seed(0)
    cutout = SpecAugment(rect_masks=5, rect_freq=15, rect_time=25).train()
    features = torch.ones(64, 1, 64, 101)
    masked = cutout(features) == 0
    assert masked.any() and masked.float().mean() < 5 * 15 * 25 / (64 * 101)
    # each example's masked cells are a union of at most 5 rectangles within 15 bands x 25 frames
    rows, cols = masked[0, 0].any(1).sum(), masked[0, 0].any(0).sum()
    assert rows <= 5 * 15 and cols <= 5 * 25
    assert torch.equal(cutout.eval()(features), features)
    augment = WaveAugment(16000, white_noise_db=(-46.0, -46.0))
    noise = augment(torch.zeros(8, 16000))
    assert noise.std(dim=1) == pytest.approx(torch.full((8,), 10 ** (-46 / 20)), rel=0.05)
