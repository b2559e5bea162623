"""DDP: each rank gets its own shard; two CPU processes (gloo) make one run dir, one set of logs."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys

import pytest
import torch
from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

from audioclf.data import sampling
from audioclf.data.sampling import ShardedBatches
from tests.conftest import ROOT, compose_config


def shards(make, size: int) -> list[list[list[int]]]:
    """Each rank's batches, as `ShardedBatches` gives them under a world of `size`."""
    out = []
    for rank in range(size):
        sampling.world = lambda rank=rank: (rank, size)
        out.append(list(make()))
    return out


@pytest.fixture(autouse=True)
def restore_world():
    original = sampling.world
    yield
    sampling.world = original


@pytest.mark.parametrize("clips, batch, size", [(100, 16, 2), (100, 16, 3), (7, 4, 2), (64, 8, 4)])
def test_train_shards_are_disjoint_equal_length_and_cover_the_epoch(clips, batch, size):
    def make():
        return ShardedBatches(
            BatchSampler(
                RandomSampler(range(clips), generator=torch.Generator().manual_seed(1)),
                batch,
                drop_last=False,
            ),
            train=True,
        )

    per_rank = shards(make, size)
    total = math.ceil(math.ceil(clips / batch) / size)
    assert all(len(batches) == total for batches in per_rank)
    firsts = [tuple(b) for batches in per_rank for b in batches[: len(per_rank[-1]) - 1]]
    assert len(firsts) == len(set(firsts))  # no batch twice, except the wrap-around padding
    seen = {i for batches in per_rank for b in batches for i in b}
    assert seen == set(range(clips))
    sampling.world = lambda: (0, size)
    assert len(make()) == total


@pytest.mark.parametrize("clips, batch, size", [(100, 16, 2), (33, 8, 3), (3, 4, 2)])
def test_eval_shards_count_every_clip_once(clips, batch, size):
    def make():
        return ShardedBatches(
            BatchSampler(SequentialSampler(range(clips)), batch, drop_last=False), train=False
        )

    per_rank = shards(make, size)
    flat = sorted(i for batches in per_rank for b in batches for i in b)
    assert flat == list(range(clips))
    assert all(len(b) <= batch for batches in per_rank for b in batches)


def test_slurm_launcher_config_composes(tmp_path):
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf  # in [dev] through audioclf[slurm]

    cfg = compose_config(tmp_path, ["hydra/launcher=submitit_slurm", "trainer=ddp"])
    launcher = cfg.hydra.launcher
    assert launcher._target_ == SlurmQueueConf._target_
    unknown = set(launcher) - set(SlurmQueueConf.__dataclass_fields__)
    assert not unknown, f"conf/hydra/launcher/submitit_slurm.yaml sets keys SlurmQueueConf lacks: {unknown}"
    assert launcher.tasks_per_node == 1 and cfg.trainer.strategy == "ddp"
    assert cfg.trainer.use_distributed_sampler is False


# Hydra's multirun through the submitit_slurm launcher and submitit's SlurmExecutor, unchanged but for
# what a machine without SLURM cannot do: find srun, run `sbatch <script>` (answered as sbatch would)
# and wait for the jobs' results.
SUBMIT_WITHOUT_SLURM = """
import sys
from hydra.core.utils import JobReturn, JobStatus
from submitit.slurm import slurm
slurm.SlurmExecutor.affinity = classmethod(lambda cls: 1)
slurm.SlurmExecutor._make_submission_command = lambda self, path: [
    sys.executable, "-c", "print('Submitted batch job 4242')"]
slurm.SlurmJob.results = lambda self: [JobReturn(status=JobStatus.COMPLETED, _return_value=None)]
from audioclf import cli
cli.train()
"""


def test_the_slurm_launcher_renders_an_sbatch_array_for_a_multi_node_sweep(tmp_path):
    """What `python train.py -m hydra/launcher=submitit_slurm ...` hands to sbatch: one array of two
    jobs, each 2 nodes x 4 GPUs, one task per GPU, and every task running the pickled Hydra job."""
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-c", SUBMIT_WITHOUT_SLURM, "-m", "hydra/launcher=submitit_slurm", "seed=0,1",
            "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", "hydra.launcher.nodes=2",
            "hydra.launcher.gpus_per_node=4", "hydra.launcher.tasks_per_node=4", "hydra.launcher.timeout_min=90",
            "hydra.launcher.partition=gpu", f"hydra.sweep.dir={sweep}"]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (script,) = list((sweep / ".submitit").rglob("*_submission.sh"))
    text = script.read_text()
    flags = dict(line[len("#SBATCH --"):].split("=", 1) for line in text.splitlines() if line.startswith("#SBATCH --"))
    assert flags["nodes"] == "2" and flags["gpus-per-node"] == "4" and flags["ntasks-per-node"] == "4"
    assert flags["time"] == "90" and flags["partition"] == "gpu" and flags["array"] == "0-1%2"
    assert flags["job-name"] == "train" and flags["cpus-per-task"] == "8" and flags["mem"] == "32GB"
    assert f"{sys.executable} -u -m submitit.core._submit" in text and "srun" in text
    import submitit

    jobs = [submitit.helpers.DelayedSubmission.load(path) for path in (sweep / ".submitit").rglob("*_submitted.pkl")]
    overrides = sorted(tuple(job.args[0]) for job in jobs)
    assert [o for o in overrides if "seed=0" in o] and [o for o in overrides if "seed=1" in o] and len(jobs) == 2


@pytest.mark.slow
def test_a_submitit_sweep_runs_each_job_in_its_own_process(tmp_path):
    """The SLURM launcher's code path (submitit pickles the task, a job process unpickles and runs it)
    through submitit's local executor, whose job ids are the jobs' process ids."""
    sweep = tmp_path / "sweep"
    args = [sys.executable, "train.py", "-m", "hydra/launcher=submitit_local", "seed=0,1", "data=synthetic",
            "data.train_per_class=8", "data.val_per_class=2", "data.test_per_class=2", "trainer.max_epochs=1",
            f"hydra.sweep.dir={sweep}", f"paths.cache_dir={tmp_path / 'cache'}"]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(int(path.name) for path in (sweep / ".submitit").iterdir() if path.name.isdigit())
    assert len(jobs) == 2 and len(set(jobs)) == 2
    for index, seed in enumerate((0, 1)):
        metrics = json.loads((sweep / str(index) / "metrics.json").read_text())
        assert metrics["epochs"] == 1 and f"seed={seed}" in metrics["job"]["overrides"]


@pytest.mark.slow
def test_two_cpu_processes_make_one_run_dir_and_one_set_of_logs(tmp_path):
    # 16 clips x 8 classes / batch 16 = 8 batches per epoch -> 4 steps per rank per epoch
    args = [
        sys.executable,
        "train.py",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "data=synthetic",
        "data.train_per_class=16",
        "data.val_per_class=3",
        "data.test_per_class=3",
        "data.batch_size=16",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    first_error = result.stderr[result.stderr.find("Traceback"):][:4000]  # every rank's stderr is here
    assert result.returncode == 0, result.stdout[-2000:] + "\n--- first traceback:\n" + first_error
    assert "Traceback" not in result.stderr
    (run,) = list((tmp_path / "logs" / "runs" / "train").iterdir())
    assert sorted(p.name for p in run.glob("*.log")) == ["train.log"]
    assert (
        list(run.glob("train_ddp_process_*")) == [] and (run / ".hydra" / "config.yaml").is_file()
    )
    events = list((run / "tensorboard").rglob("events.out.tfevents.*"))  # *.<host>.<pid>.<n>
    assert events and len({path.name.split(".")[-2] for path in events}) == 1  # one process wrote
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and 0 <= metrics["test/acc"] <= 1
    # the test report counts each of the 24 test clips once, over both ranks
    assert "| accuracy |" in (run / "test_report.md").read_text()
    assert (run / "test_report.csv").read_text().splitlines()[-3].endswith(",24")
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 2 * 4  # each rank took half of the 8 batches per epoch
    assert result.stdout.count("Test report") == 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# tf_cnn has no BatchNorm (whose statistics are per rank) and, with its dropouts at 0, no random draws:
# two ranks on batches of 16 then take the same optimizer steps as one process on batches of 32 (in float32:
# bf16 autocast, precision=auto on a CPU with bf16, rounds differently when the batch differs)
MULTI_NODE = ["data=synthetic", "data.train_per_class=16", "data.val_per_class=3", "data.test_per_class=3",
              "model=tf_cnn", "model.dropout_conv=0", "model.dropout_dense=0", "augment=none", "optim=sgd",
              "optim.lr=0.05", "scheduler=none", "trainer.max_epochs=2", "trainer.accelerator=cpu",
              "trainer.enable_progress_bar=false", "trainer.deterministic=true", "trainer.precision=32-true", "seed=3"]
WEIGHT_TOLERANCE = 1e-5  # the two runs sum the same gradients in another order


@pytest.mark.slow
def test_two_nodes_under_torchrun_match_one_process(tmp_path):
    """`torchrun --nnodes=2 --nproc_per_node=1` on one machine, as two nodes each start it: one run
    folder, one set of logs, and the weights and metrics of one process on the same data with the
    two ranks' batches as one."""
    run, single = tmp_path / "ddp", tmp_path / "single"
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = [*MULTI_NODE, f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
             f"--node_rank={rank}", "--master_addr=127.0.0.1", f"--master_port={port}", "train.py",
             "trainer=ddp", "trainer.devices=1", "trainer.num_nodes=2", "data.batch_size=16",
             f"hydra.run.dir={run}", *common],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    for rank, (node, output) in enumerate(zip(nodes, outputs, strict=True)):
        assert node.returncode == 0, f"node {rank}:\n{output[-4000:]}"
    result = subprocess.run([sys.executable, "train.py", "data.batch_size=32", f"hydra.run.dir={single}", *common],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    assert sorted(p.name for p in run.glob("*.log")) == ["train.log"]
    assert (run / "train.log").stat().st_size > 0  # rank 0 wrote it, no other rank removed it
    events = list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and len({path.name.split(".")[-2] for path in events}) == 1  # one process wrote
    assert sum(output.count("Test report") for output in outputs) == 1
    ddp, one = (torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False) for folder in (run, single))
    assert ddp["global_step"] == one["global_step"] == 2 * 4  # 128 clips: 4 steps of 2 x 16 or of 32
    for name, weight in one["state_dict"].items():
        torch.testing.assert_close(ddp["state_dict"][name], weight, atol=WEIGHT_TOLERANCE, rtol=0)
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (run, single)]
    for key in ("val/acc", "test/acc", "test/f1_macro"):
        assert metrics[0][key] == pytest.approx(metrics[1][key], abs=1e-6), key
