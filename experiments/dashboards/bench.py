"""What the TensorBoard dashboards (audioclf/dashboards.py) cost per epoch.

Trains the same config with the `dashboards` callback off and on, alternating, and reports
seconds per epoch of each arm and, for the "on" arm, the seconds spent inside the callback's
hooks (timed around each call): that share is the overhead, free of the noise a shared CPU
puts on the epoch times themselves.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/dashboards/bench.py \\
        --root ../shared/data/fsdd/recordings --model tf_cnn --epochs 3 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from audioclf.tasks import train
from audioclf.config import CONF_DIR
from audioclf.lit.dashboards import Dashboards

HOOKS = ("on_fit_start", "on_validation_epoch_end", "on_test_batch_end", "on_test_epoch_end")


class TimedDashboards(Dashboards):
    """Dashboards that add up the wall time of each hook call in `seconds`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seconds: dict[str, float] = defaultdict(float)


def _timed(name: str):
    hook = getattr(Dashboards, name)

    def timed(self, *args, **kwargs):
        started = time.perf_counter()
        hook(self, *args, **kwargs)
        self.seconds[name] += time.perf_counter() - started

    return timed


for _name in HOOKS:
    setattr(TimedDashboards, _name, _timed(_name))


def config(overrides: list[str], folder: Path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(folder)
    return cfg


def run_arm(args, dashboards_on: bool, folder: Path) -> dict:
    overrides = [f"model={args.model}", "data=fsdd", f"data.root={args.root}", "data.download=false",
                 f"trainer.max_epochs={args.epochs}", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
                 "trainer.enable_model_summary=false", f"seed={args.seed}", "~callbacks.dashboards", *args.overrides]
    timed = TimedDashboards() if dashboards_on else None
    summary = train.run(config(overrides, folder), callbacks=[timed] if timed else [])
    result = {"dashboards": dashboards_on, "seconds_per_epoch": summary["seconds_per_epoch"],
              "train_seconds": summary["train_seconds"], "epochs": summary["epochs"]}
    if timed:
        fit_hooks = timed.seconds["on_fit_start"] + timed.seconds["on_validation_epoch_end"]
        result["hook_seconds_per_epoch"] = round(fit_hooks / summary["epochs"], 4)
        result["test_hook_seconds"] = round(timed.seconds["on_test_batch_end"] + timed.seconds["on_test_epoch_end"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data/fsdd/recordings", help="the FSDD recordings/ folder")
    parser.add_argument("--model", default="tf_cnn")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="off/on pairs, alternating")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results.json"))
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for on in (False, True):
                results.append(run_arm(args, on, Path(scratch) / f"{repeat}_{'on' if on else 'off'}"))
                print(json.dumps(results[-1]), flush=True)

    def mean(key: str, on: bool) -> float:
        return statistics.fmean(r[key] for r in results if r["dashboards"] == on)

    off, on = mean("seconds_per_epoch", False), mean("seconds_per_epoch", True)
    hooks = mean("hook_seconds_per_epoch", True)
    summary = {
        "model": args.model, "epochs": args.epochs, "repeats": args.repeats,
        "threads": os.environ.get("OMP_NUM_THREADS", "torch default"), "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "seconds_per_epoch_off": round(off, 3), "seconds_per_epoch_on": round(on, 3),
        "epoch_time_change_percent": round(100 * (on - off) / off, 2),
        "hook_seconds_per_epoch": round(hooks, 4), "hook_share_percent": round(100 * hooks / on, 2),
        "test_hook_seconds": round(mean("test_hook_seconds", True), 3),
        "runs": results,
    }
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
