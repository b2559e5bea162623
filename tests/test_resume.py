"""Atomic checkpoints, `ckpt_path=last`, exact resume after SIGKILL, and seeded reproducibility."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from audioclf.errors import UserError
from audioclf.lit.resume import AtomicCheckpointIO, resolve_ckpt_path
from audioclf.tasks import train
from tests.conftest import SMALL_SYNTHETIC, compose_config

ROOT = Path(__file__).resolve().parent.parent


class PauseAt(L.Callback):
    """Test helper: after optimizer step `step`, touch `marker` and sleep, waiting for a SIGKILL."""

    def __init__(self, step: int, marker: str):
        self.step, self.marker = step, marker

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            Path(self.marker).write_text(str(batch_idx))
            time.sleep(300)


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("killed mid-save")


def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "weights": torch.ones(1000)}, target)
    with pytest.raises(RuntimeError, match="killed mid-save"):
        io.save_checkpoint({"step": 2, "weights": torch.zeros(1000), "bad": Unpicklable()}, target)
    assert torch.load(target)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_ckpt_path_last_finds_the_newest_earlier_run(tmp_path):
    cfg = compose_config(tmp_path, ["ckpt_path=last"])
    with pytest.raises(UserError, match="ckpt_path=last found no"):
        resolve_ckpt_path(cfg)
    runs = tmp_path / "logs" / "runs" / "train"
    for age, name in ((20, "old"), (10, "new")):
        path = runs / name / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        os.utime(path, (time.time() - age, time.time() - age))
    (runs / "other_task_ignored").mkdir()
    assert resolve_ckpt_path(cfg) == str(runs / "new" / "checkpoints" / "last.ckpt")
    cfg.ckpt_path = str(tmp_path / "missing.ckpt")
    with pytest.raises(UserError, match="missing.ckpt does not exist"):
        resolve_ckpt_path(cfg)


def test_same_seed_gives_identical_metrics(tmp_path):
    overrides = [
        *SMALL_SYNTHETIC,
        "augment=default",
        "trainer.max_epochs=2",
        "trainer.accelerator=cpu",
        "trainer.deterministic=true",
        "trainer.enable_progress_bar=false",
        "logger=none",
        "callbacks=none",
        "seed=3",
    ]
    first = train.run(compose_config(tmp_path / "a", overrides))
    second = train.run(compose_config(tmp_path / "b", overrides))
    keys = [k for k in first if k.startswith(("train/", "val/", "test/"))]
    assert "test/acc" in keys and "val/loss" in keys
    assert {k: first[k] for k in keys} == {k: second[k] for k in keys}



# 16 train clips per class x 8 classes / batch 16 = 8 batches per epoch (steps 1-8, 9-16);
# last.ckpt at every epoch end and every 5 steps (5, 10, 15).
RESUME_ARGS = [
    "data=synthetic",
    "data.train_per_class=16",
    "data.val_per_class=4",
    "data.test_per_class=4",
    "data.batch_size=16",
    "augment=default",
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "seed=7",
    "callbacks.model_checkpoint.last_every_n_train_steps=5",
]


def train_cli(tmp: Path, *extra: str, wait: bool = True) -> subprocess.Popen:
    args = [
        sys.executable,
        "train.py",
        *RESUME_ARGS,
        f"paths.log_dir={tmp / 'logs'}",
        f"paths.cache_dir={tmp.parent / 'cache'}",
        *extra,
    ]
    process = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if wait:
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0, out[-3000:]
        process.output = out
    return process


def run_dirs(tmp: Path) -> list[Path]:
    return sorted((tmp / "logs" / "runs" / "train").iterdir(), key=lambda p: p.stat().st_mtime)


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("resume") / "reference"
    train_cli(tmp)
    (run,) = run_dirs(tmp)
    return run


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_step, saved_step", [(12, 10), (9, 8)]
)  # mid-epoch 1; just after epoch 0
def test_sigkilled_run_resumes_to_the_same_result(uninterrupted, tmp_path, kill_step, saved_step):
    tmp = tmp_path / "killed"
    marker = tmp_path / "paused"
    victim = train_cli(
        tmp,
        "+callbacks.pause._target_=tests.test_resume.PauseAt",
        f"+callbacks.pause.step={kill_step}",
        f"+callbacks.pause.marker={marker}",
        wait=False,
    )
    deadline = time.time() + 240
    while not marker.exists():
        assert victim.poll() is None and time.time() < deadline, victim.stdout.read()[-3000:]
        time.sleep(0.2)
    (killed_run,) = run_dirs(tmp)
    saved = torch.load(killed_run / "checkpoints" / "last.ckpt", weights_only=False)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert saved["global_step"] == saved_step
    assert [p.name for p in (killed_run / "checkpoints").iterdir() if "tmp" in p.name] == []
    assert not (killed_run / "metrics.json").exists()

    resumed = train_cli(tmp, "ckpt_path=last")
    assert (
        f"ckpt_path=last: resuming from {killed_run / 'checkpoints' / 'last.ckpt'}"
        in resumed.output
    )
    resumed_run = run_dirs(tmp)[-1]
    expected = json.loads((uninterrupted / "metrics.json").read_text())
    got = json.loads((resumed_run / "metrics.json").read_text())
    for key in ("test/acc", "test/f1_macro", "test/loss", "val/acc", "val/acc_best", "val/loss"):
        assert got[key] == expected[key], (key, got[key], expected[key])
    want, have = final_weights(uninterrupted), final_weights(resumed_run)
    assert want.keys() == have.keys()
    assert all(torch.equal(want[k], have[k]) for k in want), "final weights differ"
