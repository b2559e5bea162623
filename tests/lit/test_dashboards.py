"""TensorBoard dashboards (audioclf/dashboards.py, run names and hparams in train.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict, read_write

from audioclf.lit.dashboards import TopErrors, class_recall
from audioclf.tasks import run_identity, train
from tests.conftest import ROOT, SMALL_SYNTHETIC, compose_config

NAMES = ["ai", "ia", "usa", "sau", "tet", "ete", "is", "u_e"]  # data=synthetic's classes
RECALL_TAGS = {f"val_recall/{name}" for name in NAMES}
CHART_SCALARS = {"train/loss_epoch", "val/loss", "train/acc", "val/acc", "train/f1_macro", "val/f1_macro",
                 "val/acc_best", "lr-AdamW"}


def test_top_errors_keeps_the_most_confident_mistakes_across_batches():
    errors = TopErrors(k=2)
    waves = torch.arange(4, dtype=torch.int16)[:, None].repeat(1, 3)  # clip i holds the value i
    # predicted class 0 with confidence rising from clip 0 to 3; clip 1 is right, so not an error
    logits = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]])
    errors.update(waves[:2], torch.tensor([1, 0]), logits[:2])
    errors.update(waves[2:], torch.tensor([1, 1]), logits[2:])
    assert errors.waves[:, 0].tolist() == [3, 2]
    assert [(true, pred) for true, pred, _ in errors.rows()] == [(1, 0), (1, 0)]
    assert errors.rows()[0][2] == pytest.approx(torch.tensor([4.0, 0.0]).softmax(0)[0].item())
    assert TopErrors(k=3).rows() == []


def test_class_recall_reads_rows_as_true_labels():
    confusion = np.array([[3, 1, 0], [0, 0, 0], [2, 0, 2]])
    recall = class_recall(confusion)
    assert recall[0] == pytest.approx(0.75) and np.isnan(recall[1]) and recall[2] == pytest.approx(0.5)


def as_multirun_job(cfg, tmp_path: Path, sweep: list[str], job: list[str]) -> None:
    """Make `cfg` look like one job of `train.py -m <sweep>`, with the multirun.yaml Hydra writes."""
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir(exist_ok=True)
    OmegaConf.save({"hydra": {"overrides": {"task": sweep}}}, sweep_dir / "multirun.yaml")
    with read_write(cfg.hydra), open_dict(cfg):
        cfg.hydra.mode = "MULTIRUN"
        cfg.hydra.sweep.dir = str(sweep_dir)
        cfg.hydra.overrides.task = job
    HydraConfig.instance().set_config(cfg)


def test_a_multirun_job_is_named_by_the_keys_its_sweep_varies(tmp_path):
    cfg = compose_config(tmp_path, ["model=bcresnet", "model.width=3", "seed=1"])
    assert run_identity.multirun_job_name() == ""  # a single run keeps its time-stamped folder
    as_multirun_job(cfg, tmp_path, ["model=bcresnet", "model.width=1,3", "seed=0,1", "data.root=/x/y"],
                    ["model=bcresnet", "model.width=3", "seed=1", "data.root=/x/y"])
    assert run_identity.multirun_job_name() == "model.width=3,seed=1"
    hparams = run_identity.run_hparams(cfg)
    assert hparams["model.width"] == 3 and hparams["seed"] == 1 and hparams["model"] == "bcresnet"
    assert "width=3" in hparams["model.args"] and hparams["optim"] == "SGD"
    assert all(isinstance(v, bool | int | float | str) for v in hparams.values())
    (tmp_path / "sweep" / "multirun.yaml").unlink()  # no sweep record: every override but paths
    assert run_identity.multirun_job_name() == "model=bcresnet,model.width=3,seed=1,data.root=_x_y"
    many = [f"+extra.key_{i}=value_{i}" for i in range(30)]  # a one-job -m run: every override names it
    as_multirun_job(cfg, tmp_path, many, many)
    (tmp_path / "sweep" / "multirun.yaml").unlink()
    name = run_identity.multirun_job_name()
    assert len(name) == run_identity.MAX_NAME and name.startswith("+extra.key_0=value_0,") and "~" in name
    as_multirun_job(cfg, tmp_path, many[:-1], many[:-1])
    (tmp_path / "sweep" / "multirun.yaml").unlink()
    assert run_identity.multirun_job_name() != name  # the hash keeps differing jobs apart


def test_hparams_have_the_same_keys_for_every_model(tmp_path):
    keys = {model: set(run_identity.run_hparams(compose_config(tmp_path / model, [f"model={model}"])))
            for model in ("tf_cnn", "bcresnet", "kwt")}
    assert keys["tf_cnn"] == keys["bcresnet"] == keys["kwt"]


def test_a_run_logs_charts_confusion_recall_and_test_errors(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_config(tmp_path, [
        *SMALL_SYNTHETIC, "trainer.max_epochs=3", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
        "optim.lr=0.00001",  # barely learns: the test has errors to show
        "callbacks.dashboards.confusion_every_n_epochs=2", "callbacks.dashboards.errors_k=3",
    ])
    train.run(cfg)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"),
                              size_guidance={"images": 0, "audio": 0, "scalars": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert CHART_SCALARS | RECALL_TAGS <= set(tags["scalars"])
    assert len(events.Scalars("val_recall/ai")) == 3
    val_steps = [e.step for e in events.Scalars("val/acc")]
    assert [e.step for e in events.Images("val/confusion_matrix")] == val_steps[1:]  # epoch 2, and 3: the last
    errors = [t.removesuffix("/features") for t in tags["images"] if t.startswith("test_errors/")]
    audio = [t.removesuffix("/audio") for t in tags["audio"] if t.startswith("test_errors/")]
    assert len(errors) == 3 and errors == audio
    assert errors[0].startswith("test_errors/1_true=") and "_pred=" in errors[0]
    assert "custom_scalars__config__" in tags["tensors"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Board:
    """TensorBoard serving `logdir` on loopback, queried through its HTTP data API."""

    def __init__(self, logdir: Path):
        self.url = f"http://127.0.0.1:{free_port()}"
        command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
                   "--port", self.url.rsplit(":", 1)[1], "--load_fast=false", "--reload_interval=1"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def get(self, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"X-XSRF-Protected": "1", "Content-Type": "application/json"}  # TensorBoard wants it on POSTs
        with urllib.request.urlopen(urllib.request.Request(self.url + path, data, headers), timeout=10) as reply:
            return json.loads(reply.read())

    def wait_for_runs(self, count: int, seconds: float = 30) -> list[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "tensorboard exited"
            try:
                runs = self.get("/data/runs")
                if len(runs) >= count:
                    return runs
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"tensorboard at {self.url} listed no {count} runs in {seconds} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.mark.slow
def test_tensorboard_serves_a_multirun_by_override_names(tmp_path):
    """`train.py -m model=tf_cnn,lstm_fsdd` on tiny synthetic data, served by TensorBoard itself."""
    from audioclf.report.sweep import sweep_report

    sweep = tmp_path / "multirun"
    args = ["model=tf_cnn,lstm_fsdd", "data=synthetic", "data.train_per_class=4", "data.val_per_class=2",
            "data.test_per_class=2", "trainer.max_epochs=2", "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
            "callbacks.dashboards.confusion_every_n_epochs=1",
            "optim.lr=0.00001",  # barely learns: the test has errors to show
            f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}"]
    done = subprocess.run([sys.executable, "train.py", "-m", *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = {"0/tensorboard/model=tf_cnn": "tf_cnn", "1/tensorboard/model=lstm_fsdd": "lstm_fsdd"}

    board = Board(sweep)
    try:
        assert sorted(board.wait_for_runs(2)) == sorted(runs)
        time.sleep(1.5)  # one more reload: every event file of both runs read
        scalars = board.get("/data/plugin/scalars/tags")
        images = board.get("/data/plugin/images/tags")
        audio = board.get("/data/plugin/audio/tags")
        layout = board.get("/data/plugin/custom_scalars/layout")
        experiment = board.get("/data/plugin/hparams/experiment", {"experimentName": ""})
        groups = board.get("/data/plugin/hparams/session_groups", {
            "experimentName": "", "startIndex": 0, "sliceSize": 10, "colParams": [],
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]})
        confusions = {run: board.get(f"/data/plugin/images/images?run={urllib.parse.quote(run)}"
                                     "&tag=val/confusion_matrix") for run in runs}
    finally:
        board.stop()

    for run in runs:
        assert CHART_SCALARS | RECALL_TAGS | {"test/acc", "hp/test_acc"} <= set(scalars[run]), run
        assert {"val/confusion_matrix", "test/confusion_matrix"} <= set(images[run])
        assert len(confusions[run]) == 2  # one image per epoch
        errors = {t.removesuffix("/features") for t in images[run] if t.startswith("test_errors/")}
        assert 1 <= len(errors) <= 8 and errors == {t.removesuffix("/audio") for t in audio[run]
                                                    if t.startswith("test_errors/")}
    charts = {chart["title"]: chart["multiline"]["tag"] for category in layout["category"]
              for chart in category["chart"]}
    assert charts["loss"] == ["^train/loss_epoch$", "^val/loss$"] and "recall" in charts

    columns = {info["name"] for info in experiment["hparamInfos"]}
    assert {"model", "model.args", "features", "optim", "optim.lr", "scheduler", "loss.label_smoothing",
            "augment", "data", "seed"} <= columns
    metrics = {info["name"]["tag"] for info in experiment["metricInfos"]}
    assert {"hp/test_acc", "hp/test_f1_macro", "hp/val_acc_best", "hp/params"} <= metrics
    by_run = {group["name"]: group for group in groups["sessionGroups"]}
    assert {run: group["hparams"]["model"] for run, group in by_run.items()} == runs
    for group in by_run.values():
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert 0.0 <= values["hp/test_acc"] <= 1.0

    sweep_report(sweep, curves=["val/acc"])  # the sweep report still finds the event files
    assert (sweep / "sweep_report_curves.png").is_file()
