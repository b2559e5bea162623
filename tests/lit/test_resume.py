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
from hydra.core.hydra_config import HydraConfig

from audioclf.errors import UserError
from audioclf.lit.resume import AtomicCheckpointIO
from audioclf.tasks import train
from audioclf.tasks.run_identity import record_overrides, resolve_ckpt_path, resume_in_place
from tests.conftest import ROOT, SMALL_SYNTHETIC, compose_config


class PauseAt(L.Callback):
    """Test helper: after optimizer step `step` (of multirun job `job`, if given), touch `marker` and
    sleep, waiting for a SIGKILL; once `marker` exists it never pauses again."""

    def __init__(self, step: int, marker: str, job: int | None = None):
        self.step, self.marker, self.job = step, marker, job

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step != self.step or Path(self.marker).exists():
            return
        if self.job is None or HydraConfig.get().job.num == self.job:
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


def test_ckpt_path_auto_decides_per_run_folder(tmp_path):
    overrides = ["model=crnn", "seed=1", "paths.log_dir=/a"]
    same = ["seed=1", "model=crnn", "ckpt_path=auto", "paths.log_dir=/b"]  # order, switch and paths do not count
    assert resume_in_place(tmp_path, same) == "fresh"
    (tmp_path / "job_overrides.json").write_text(json.dumps(overrides))
    assert resume_in_place(tmp_path, same) == "fresh"
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"x")
    assert resume_in_place(tmp_path, same) == "resume"
    (tmp_path / "metrics.json").write_text("{\"val/acc")  # cut short by a kill: not finished
    assert resume_in_place(tmp_path, same) == "resume"
    (tmp_path / "metrics.json").write_text(json.dumps({"val/acc": 0.5, "job": {"overrides": overrides}}))
    assert resume_in_place(tmp_path, same) == "finished"
    with pytest.raises(UserError, match=r"holds a run of other overrides \(it had seed=1, this job has seed=2\)"):
        resume_in_place(tmp_path, ["model=crnn", "seed=2"])
    (tmp_path / "job_overrides.json").unlink()  # older runs: metrics.json's record
    assert resume_in_place(tmp_path, same) == "finished"
    with pytest.raises(UserError, match="the sweep's overrides changed"):
        resume_in_place(tmp_path, ["model=crnn"])


def test_ckpt_path_auto_skips_a_finished_run_and_resumes_an_unfinished_one(tmp_path, capsys):
    cfg = compose_config(tmp_path, ["ckpt_path=auto", "seed=3"])
    run = Path(cfg.paths.output_dir)
    assert resolve_ckpt_path(cfg) is None
    assert f"ckpt_path=auto: run starts fresh in {run}" in capsys.readouterr().out
    record_overrides(run)
    last = run / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"x")
    assert resolve_ckpt_path(cfg) == str(last)
    (run / "metrics.json").write_text(json.dumps({"val/acc_best": 0.5, "epochs": 2, "job": {}}))
    assert train.run(cfg) == {"val/acc_best": 0.5, "epochs": 2}  # no training
    assert f"ckpt_path=auto: run already finished, skipped: {run}" in capsys.readouterr().out


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
    given = {a.split("=", 1)[0] for a in extra}
    flags = [a for a in extra if a.startswith("-")]  # -m: before the overrides, or argparse refuses them
    args = [
        sys.executable,
        "train.py",
        *flags,
        *(a for a in RESUME_ARGS if a.split("=", 1)[0] not in given),
        f"paths.log_dir={tmp / 'logs'}",
        f"paths.cache_dir={tmp.parent / 'cache'}",
        *(a for a in extra if a not in flags),
    ]
    process = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if wait:
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0, out[-3000:]
        process.output = out
    return process


def wait_until_paused(victim: subprocess.Popen, marker: Path) -> None:
    deadline = time.time() + 240
    while not marker.exists():
        assert victim.poll() is None and time.time() < deadline, victim.stdout.read()[-3000:]
        time.sleep(0.2)


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
        "+callbacks.pause._target_=tests.lit.test_resume.PauseAt",
        f"+callbacks.pause.step={kill_step}",
        f"+callbacks.pause.marker={marker}",
        wait=False,
    )
    wait_until_paused(victim, marker)
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


@pytest.mark.slow
def test_a_killed_sweep_reruns_with_ckpt_path_auto(uninterrupted, tmp_path):
    marker = tmp_path / "paused"
    sweep = [
        "-m",
        "seed=8,7,9",
        "+callbacks.pause._target_=tests.lit.test_resume.PauseAt",
        "+callbacks.pause.step=12",
        f"+callbacks.pause.marker={marker}",
        "+callbacks.pause.job=1",
    ]
    victim = train_cli(tmp_path, *sweep, wait=False)  # job 0 finishes, job 1 is killed mid-epoch, job 2 never starts
    wait_until_paused(victim, marker)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    (folder,) = (tmp_path / "logs" / "multiruns" / "train").iterdir()
    finished, killed, missing = folder / "0", folder / "1", folder / "2"
    assert torch.load(killed / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 10
    assert not (killed / "metrics.json").exists() and not missing.exists()
    finished_at = (finished / "metrics.json").stat().st_mtime_ns

    rerun = train_cli(tmp_path, *sweep, f"hydra.sweep.dir={folder}", "ckpt_path=auto")
    assert f"ckpt_path=auto: job 0 already finished, skipped: {finished}" in rerun.output
    assert f"ckpt_path=auto: job 1 resumes from {killed / 'checkpoints' / 'last.ckpt'}" in rerun.output
    assert f"ckpt_path=auto: job 2 starts fresh in {missing}" in rerun.output
    assert (finished / "metrics.json").stat().st_mtime_ns == finished_at
    expected = json.loads((uninterrupted / "metrics.json").read_text())  # seed=7, never killed
    got = json.loads((killed / "metrics.json").read_text())
    for key in ("test/acc", "test/loss", "val/acc_best", "val/loss"):
        assert got[key] == expected[key], (key, got[key], expected[key])
    assert "ckpt_path=auto" not in got["job"]["overrides"]  # the sweep report groups it with the others
    assert json.loads((missing / "metrics.json").read_text())["epochs"] == 2

    changed = subprocess.run(
        [sys.executable, "train.py", "-m", "seed=8,9", f"hydra.sweep.dir={folder}", "ckpt_path=auto"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert changed.returncode == 2 and "the sweep's overrides changed" in changed.stderr, changed.stderr[-2000:]
