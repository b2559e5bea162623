"""What a run is and where it stands, read from Hydra: the one module that asks Hydra about the job.

- Multirun naming: a sweep job's TensorBoard run is named after the keys its sweep varies
  (`multirun_job_name`), e.g. `model=crnn,seed=1`.
- Job description: `describe_job` (overrides, group choices, key hparams) goes into
  `metrics.json`, so `audioclf-report` can group runs; `run_hparams` is the recipe as scalars for
  TensorBoard's HPARAMS tab.
- `ckpt_path=last|auto`: `last` is the newest `checkpoints/last.ckpt` of an earlier run of the same
  task under `paths.log_dir`. `auto` is the run folder's own: rerun a killed sweep into its folder
  (`hydra.sweep.dir=`) and each job that finished is skipped (`finished_run`), each that has a
  `last.ckpt` resumes from it and the others start fresh. Each run notes its overrides in
  `job_overrides.json` (Hydra rewrites `.hydra/` before the job starts), so a job folder of
  another sweep is refused rather than resumed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from audioclf.config import CONF_DIR, to_dict
from audioclf.errors import UserError
from audioclf.lit.checkpoints import check_checkpoint
from audioclf.lit.distributed import global_rank

# ---------------------------------------------------------------- the job as Hydra runs it


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def job_label() -> str:
    """`job <n>` in a multirun, `run` otherwise."""
    return f"job {HydraConfig.get().job.num}" if in_multirun() else "run"


def group_choice(group: str) -> str | None:
    return HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def swept_keys() -> set[str]:
    """The keys given several values (a,b / range / glob) on the multirun's command line,
    read from the multirun.yaml Hydra writes into the sweep folder; empty outside a multirun."""
    multirun_file = Path(HydraConfig.get().sweep.dir) / "multirun.yaml" if in_multirun() else None
    if multirun_file is None or not multirun_file.is_file():
        return set()
    overrides = OmegaConf.load(multirun_file).hydra.overrides.task
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


MAX_NAME = 120


def multirun_job_name() -> str:
    """A multirun job's values of the keys its sweep varies, e.g. `model=crnn,seed=1` (all of
    its overrides but paths when the sweep file is missing); "" outside a multirun."""
    if not in_multirun():
        return ""
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    swept = swept_keys()
    chosen = [o for o in overrides if override_key(o) in swept]
    chosen = chosen or [o for o in overrides if not override_key(o).startswith(("paths.", "hydra."))]
    name = ",".join(chosen).replace("/", "_") or f"job{hydra_cfg.job.num}"
    if len(name) > MAX_NAME:  # a folder name: most file systems stop at 255 bytes
        name = f"{name[:MAX_NAME - 9]}~{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return name


# ---------------------------------------------------------------- what the run was


def describe_job(cfg: DictConfig) -> dict[str, Any]:
    """The run's command-line overrides, group choices, model, data, seed and key hparams."""
    overrides, choices = [], {}
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        # ckpt_path=auto only says how a killed sweep was rerun: not part of what the job is
        overrides = [o for o in hydra_cfg.overrides.task if o != "ckpt_path=auto"]
        choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")}
    data = to_dict(cfg.data)
    optim = to_dict(cfg.optim)
    return {
        "overrides": overrides,
        "choices": choices,
        "model": cfg.model.name,
        "data": data.get("source"),
        "split": data.get("split"),
        "seed": cfg.seed,
        "test_ckpt": cfg.get("test_ckpt", "best") if cfg.get("test") else None,
        "max_epochs": cfg.trainer.get("max_epochs"),
        "lr": optim.get("lr"),
        "weight_decay": optim.get("weight_decay"),
        "model_hparams": {k: v for k, v in to_dict(cfg.model).items() if k != "name"},
    }


# data keys that say where the clips are, not what the model learns from
DATA_PLUMBING = ("source", "root", "url", "sha256", "test_root", "test_sha256", "download", "num_workers",
                 "pin_memory", "skip_bad_files", "eval_batch_size")


def run_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The run's recipe as scalars under the same keys in every run: TensorBoard's HPARAMS tab takes
    its columns from one run of the folder, so keys only some models or optimizers have go into one
    `<group>.args` text each. Each key the sweep varies gets a column of its own too."""
    model, features, optim = to_dict(cfg.model), to_dict(cfg.features), to_dict(cfg.optim) or {}
    scheduler, augment, data = to_dict(cfg.get("scheduler")) or {}, to_dict(cfg.get("augment")) or {}, to_dict(cfg.data)
    augment_defaults = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "augment" / "none.yaml"))
    params = {
        "seed": cfg.seed,
        "trainer.max_epochs": cfg.trainer.get("max_epochs"),
        "model": model["name"],
        "model.args": args_text(model, skip=("name",)),
        "features": features.get("name"),
        "features.args": args_text(features, skip=("name",)),
        "optim": target_name(optim),
        "optim.lr": optim.get("lr"),
        "optim.weight_decay": optim.get("weight_decay"),
        "optim.args": args_text(optim, skip=("lr", "weight_decay")),
        "scheduler": target_name(scheduler),
        "scheduler.args": args_text(scheduler),
        "loss.label_smoothing": float((cfg.get("loss") or {}).get("label_smoothing", 0.0)),
        "augment": group_choice("augment") or "custom",
        "augment.mixup_alpha": augment.get("mixup_alpha", 0.0),
        "augment.args": args_text({k: v for k, v in augment.items() if augment_defaults.get(k, "?") != v},
                                  skip=("mixup_alpha",)),
        "data": data.get("source"),
        "data.batch_size": data.get("batch_size"),
        "data.args": args_text(data, skip=("batch_size", *DATA_PLUMBING)),
    }
    for key in swept_keys() - params.keys():
        value = group_choice(key) or OmegaConf.select(cfg, key, default=None)  # experiment=a,b: its name
        if not OmegaConf.is_config(value):
            params[key] = value
    return {k: v if isinstance(v, bool | int | float | str) else str(v) for k, v in params.items()}


def args_text(node: dict, skip: tuple[str, ...] = ()) -> str:
    """`key=value` pairs of a config node's leaves, nested keys dotted, e.g. `width=3 dropout=0.1`."""
    skip = (*skip, "_target_", "_partial_")
    return " ".join(f"{k}={v}" for k, v in flatten(node).items() if k.split(".")[0] not in skip) or "-"


def target_name(node: dict) -> str:
    """`torch.optim.AdamW` -> `AdamW`; "none" for a group without a `_target_`."""
    return str(node.get("_target_") or "none").rsplit(".", 1)[-1]


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    # for args_text only: log_hyperparams gets a flat dict; Lightning's own _flatten_dict is private
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


# ---------------------------------------------------------------- ckpt_path=last|auto


RECORD = "job_overrides.json"  # a run folder's own overrides: Hydra rewrites .hydra/ before a rerun job starts
LAST = Path("checkpoints") / "last.ckpt"


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """The checkpoint to resume: null, a file, `last` (newest earlier last.ckpt of the task) or `auto`
    (the run folder's own last.ckpt, if any)."""
    value = cfg.get("ckpt_path")
    if value is None or str(value) == "":
        return None
    if str(value) == "auto":
        return own_last_checkpoint(Path(cfg.paths.output_dir))
    if str(value) == "last":
        return newest_last_checkpoint(Path(cfg.paths.log_dir), cfg.get("task_name", "train"),
                                      Path(cfg.paths.output_dir))
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise UserError(f"ckpt_path={path} does not exist: give a .ckpt file, ckpt_path=last or ckpt_path=auto")
    check_checkpoint(path)
    return str(path)


def newest_last_checkpoint(log_dir: Path, task: str, output_dir: Path) -> str:
    """ckpt_path=last: the newest last.ckpt of an earlier run or multirun job of `task`."""
    current = output_dir.resolve()
    patterns = (f"runs/{task}/*/checkpoints/last.ckpt", f"multiruns/{task}/*/*/checkpoints/last.ckpt")
    found = [p for pattern in patterns for p in log_dir.glob(pattern) if current not in p.resolve().parents]
    if not found:
        raise UserError(
            f"ckpt_path=last found no {log_dir}/runs/{task}/*/checkpoints/last.ckpt: "
            "train once first, or give ckpt_path=<file.ckpt>"
        )
    newest = max(found, key=lambda p: p.stat().st_mtime)
    print(f"ckpt_path=last: resuming from {newest}")
    return str(newest)


def record_overrides(output_dir: Path) -> None:
    """Note the job's overrides in its run folder, for a later rerun with ckpt_path=auto."""
    if global_rank() == 0:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / RECORD).write_text(json.dumps(job_overrides(), indent=2))


def saved_metrics(output_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((output_dir / "metrics.json").read_text())
    except (OSError, ValueError):  # missing, or cut short by a kill: not finished
        return None


def recorded_overrides(output_dir: Path) -> list[str] | None:
    """The overrides a run folder was made with: its record, else its metrics.json's; None if neither."""
    try:
        return json.loads((output_dir / RECORD).read_text())
    except (OSError, ValueError):
        return ((saved_metrics(output_dir) or {}).get("job") or {}).get("overrides")


def job_identity(overrides: list[str]) -> list[str]:
    """The overrides that make a job what it is: not where it resumes from, nor its paths."""
    return sorted(o for o in overrides if override_key(o) != "ckpt_path" and not override_key(o).startswith("paths."))


def resume_in_place(output_dir: Path, overrides: list[str]) -> str:
    """What ckpt_path=auto does in a run folder: "finished" (it holds a metrics.json), "resume" (it holds
    checkpoints/last.ckpt) or "fresh"; a UserError when the folder holds a run of other overrides."""
    saved = recorded_overrides(output_dir)
    if saved is not None and job_identity(saved) != job_identity(overrides):
        had = " ".join(sorted(set(job_identity(saved)) - set(overrides))) or "-"
        has = " ".join(sorted(set(job_identity(overrides)) - set(saved))) or "-"
        raise UserError(
            f"ckpt_path=auto: {output_dir} holds a run of other overrides (it had {had}, this job has {has}): "
            "the sweep's overrides changed; rerun its own command, or give another hydra.sweep.dir / hydra.run.dir"
        )
    if saved_metrics(output_dir) is not None:
        return "finished"
    return "resume" if (output_dir / LAST).is_file() else "fresh"


def finished_run(cfg: DictConfig) -> dict[str, float] | None:
    """ckpt_path=auto in a folder that holds a finished run: its saved metrics, so the job can be skipped."""
    output_dir = Path(cfg.paths.output_dir)
    if str(cfg.get("ckpt_path")) != "auto" or resume_in_place(output_dir, job_overrides()) != "finished":
        return None
    print(f"ckpt_path=auto: {job_label()} already finished, skipped: {output_dir}")
    return {k: v for k, v in saved_metrics(output_dir).items() if isinstance(v, int | float)}


def own_last_checkpoint(output_dir: Path) -> str | None:
    """ckpt_path=auto: the run folder's own last.ckpt, or None (start fresh) when it has none."""
    if resume_in_place(output_dir, job_overrides()) == "fresh":
        print(f"ckpt_path=auto: {job_label()} starts fresh in {output_dir}")
        return None
    print(f"ckpt_path=auto: {job_label()} resumes from {output_dir / LAST}")
    return str(output_dir / LAST)
