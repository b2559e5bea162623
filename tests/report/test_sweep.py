"""`audioclf-report folder=<multirun dir>`: the sweep table and bar chart."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from audioclf.errors import UserError
from audioclf.report.sweep import sweep_report
from tests.conftest import ROOT

ACC = {
    ("tf_cnn", 0): 0.90,
    ("tf_cnn", 1): 0.92,
    ("tf_cnn", 2): 0.94,
    ("gru", 0): 0.80,
    ("gru", 1): 0.70,
    ("gru", 2): 0.75,
}


def fake_multirun(root: Path, with_job: bool = True) -> Path:
    """What `train.py -m model=tf_cnn,gru data=fsdd seed=0,1,2` leaves, with made-up numbers."""
    num = 0
    for model in ("tf_cnn", "gru"):
        for seed in range(3):
            job = root / str(num)
            overrides = [f"model={model}", "data=fsdd", f"seed={seed}", "paths.log_dir=/tmp/x"]
            (job / ".hydra").mkdir(parents=True)
            (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
            acc = ACC[(model, seed)]
            metrics = {
                "test/acc": acc,
                "test/f1_macro": acc - 0.01,
                "val/acc_best": acc + 0.01,
                "params": 1000 if model == "tf_cnn" else 500,
                "train_seconds": 20.0 + seed,
                "epochs": 10,
                "seconds_per_epoch": 2.0 + seed / 10,
            }
            if with_job:
                metrics["job"] = {
                    "overrides": overrides,
                    "model": model,
                    "data": "fsdd",
                    "seed": seed,
                }
            (job / "metrics.json").write_text(json.dumps(metrics))
            num += 1
    (root / "multirun.yaml").write_text("{}\n")
    return root


@pytest.mark.parametrize("with_job", [True, False], ids=["job-field", "hydra-overrides-only"])
def test_groups_seeds_into_one_row_per_config(tmp_path, with_job):
    folder = fake_multirun(tmp_path / "sweep", with_job)
    table = sweep_report(folder)
    assert "All jobs: `data=fsdd`" in table
    lines = [line for line in table.splitlines() if line.startswith("| model=")]
    assert [line.split(" | ")[0] for line in lines] == ["| model=tf_cnn", "| model=gru"]
    assert "| 3 | 92.0 ± 2.0 |" in lines[0]  # mean and sample std over the three seeds, in percent
    assert "| 3 | 75.0 ± 5.0 |" in lines[1]
    assert "1,000" in lines[0] and "2.10" in lines[0]  # params and mean s/epoch
    for name in (
        "sweep_report.md",
        "sweep_report.csv",
        "sweep_report_runs.csv",
        "sweep_report.png",
    ):
        assert (folder / name).stat().st_size > 0
    rows = list(csv.DictReader(open(folder / "sweep_report.csv")))
    assert [r["model"] for r in rows] == ["tf_cnn", "gru"]
    assert float(rows[1]["test/acc mean"]) == pytest.approx(0.75)
    assert rows[0]["seeds"] == "0 1 2" and rows[1]["jobs"] == "3 4 5"
    runs = list(csv.DictReader(open(folder / "sweep_report_runs.csv")))
    assert (
        len(runs) == 6
        and runs[4]["seed"] == "1"
        and float(runs[4]["test/acc"]) == pytest.approx(0.70)
    )


def test_single_seed_and_unfinished_jobs(tmp_path):
    folder = fake_multirun(tmp_path / "sweep")
    for seed_dir in ("1", "2"):
        (folder / seed_dir / "metrics.json").unlink()
    table = sweep_report(folder, out=tmp_path / "out", name="results", metric="val/acc_best")
    tf_cnn = next(line for line in table.splitlines() if line.startswith("| model=tf_cnn"))
    assert "| 1 | 90.0 |" in tf_cnn  # one seed: no std
    assert "jobs 1, 2" in table
    assert (tmp_path / "out" / "results.png").is_file() and not (
        folder / "sweep_report.md"
    ).exists()


def test_cli_writes_into_the_folder(tmp_path):
    folder = fake_multirun(tmp_path / "sweep")
    done = subprocess.run(
        [sys.executable, "-m", "audioclf", "report", f"folder={folder}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "model=gru" in done.stdout and (folder / "sweep_report.png").is_file()


def test_bad_folders_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        sweep_report(tmp_path / "missing")
    with pytest.raises(UserError, match="holds no metrics.json"):
        sweep_report(tmp_path)
    with pytest.raises(UserError, match="metric=test/nope is not reported"):
        sweep_report(fake_multirun(tmp_path / "sweep"), metric="test/nope")
    done = subprocess.run(
        [sys.executable, "-m", "audioclf", "report", f"folder={tmp_path / 'missing'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "error:" in done.stderr


def test_curves_from_tensorboard_event_files(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    folder = fake_multirun(tmp_path / "sweep")
    for job in range(6):
        writer = SummaryWriter(str(folder / str(job) / "tensorboard"))
        for step, loss in enumerate([2.0, 1.5, 1.0 + job / 10]):
            writer.add_scalar("val/loss", loss, global_step=10 * step)
        writer.close()
    sweep_report(folder, curves=["val/loss"])
    points = list(csv.DictReader(open(folder / "sweep_report_curves.csv")))
    assert len(points) == 18 and points[2] == {
        "job": "0",
        "config": "model=tf_cnn",
        "seed": "0",
        "tag": "val/loss",
        "epoch": "3",
        "value": "1.0",
    }
    assert (folder / "sweep_report_curves.png").stat().st_size > 0
    with pytest.raises(UserError, match="no TensorBoard scalars"):
        sweep_report(folder, curves=["val/nope"])


@pytest.mark.slow
def test_real_tiny_multirun(tmp_path):
    """`train.py -m` over two seeds of tiny synthetic data, then the report on its folder."""
    sweep = tmp_path / "multirun"
    args = [
        "model=tf_cnn",
        "data=synthetic",
        "data.train_per_class=4",
        "data.val_per_class=1",
        "data.test_per_class=1",
        "seed=0,1",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.sweep.dir={sweep}",
    ]
    done = subprocess.run(
        [sys.executable, "train.py", "-m", *args], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    job = json.loads((sweep / "1" / "metrics.json").read_text())["job"]
    assert job["seed"] == 1 and job["model"] == "tf_cnn" and "seed=1" in job["overrides"]
    table = sweep_report(sweep, curves=["val/acc"])
    assert "| all runs | 2 |" in table and "seed=" not in table
    assert (sweep / "sweep_report.png").is_file() and (sweep / "sweep_report_curves.png").is_file()
