"""Sweep reports: a multirun folder's jobs -> one table (mean +- std over seeds) and a bar chart.

    audioclf-report folder=logs/multiruns/train/2026-01-01_12-00-00
    audioclf-report folder=DIR metric=test/f1_macro out=experiments/x name=results curves=[val/acc]

Every run folder below DIR that holds a metrics.json (written by `audioclf.tasks.train.run`)
is one job. Jobs are grouped by their command-line overrides with `seed=` left out,
so `model=a,b seed=0,1,2` gives two rows of three seeds each. Overrides that are the
same in every job are listed once above the table. Writes into the output folder:

    <name>.md         the markdown table
    <name>.csv        the same numbers, one row per config (fractions, not percent)
    <name>_runs.csv   one row per job: its settings, seed, fold, checkpoint tested, scores and costs
    <name>.png        bar chart of `metric`, mean with std error bars and one dot per seed
    <name>_curves.*   with curves=[TAG,...]: those TensorBoard scalars per epoch, per job
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from audioclf.errors import UserError  # noqa: E402
from audioclf.report.tables import blank_nan, markdown_table, write_csv  # noqa: E402

# (metrics.json key, column title); shown as percent, mean +- std over seeds
SCORES = (
    ("test/acc", "test acc %"),
    ("test/f1_macro", "test F1 macro %"),
    ("val/acc_best", "best val acc %"),
)
# (metrics.json key, column title); shown as the mean over seeds
COSTS = (
    ("params", "params"),
    ("seconds_per_epoch", "s/epoch"),
    ("train_seconds", "train s"),
    ("epochs", "epochs"),
)
# overrides that say nothing about the configuration compared
IGNORED_PREFIXES = ("seed=", "hydra.", "paths.", "trainer.enable_progress_bar=", "task_name=")


def find_runs(folder: Path) -> list[Path]:
    """Every metrics.json below `folder`, in job order (numeric folder names sort as numbers)."""
    found = [p for p in folder.rglob("metrics.json") if "checkpoints" not in p.parts]
    return sorted(
        found,
        key=lambda p: [
            (0, int(s), "") if s.isdigit() else (1, 0, s) for s in p.relative_to(folder).parts
        ],
    )


def unfinished_jobs(folder: Path) -> list[str]:
    """Job folders Hydra started (they hold .hydra/) that never wrote a metrics.json."""
    return sorted(
        (
            str(p.parent.relative_to(folder))
            for p in folder.rglob(".hydra")
            if p.parent != folder and not (p.parent / "metrics.json").is_file()
        ),
        key=lambda s: (len(s), s),
    )


def load_run(path: Path, folder: Path) -> dict[str, Any]:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(
            f"{path} is not a readable metrics.json ({error}): delete it or rerun that job"
        ) from None
    job = metrics.pop("job", None) or job_from_hydra(path.parent)
    overrides = [str(o) for o in job.get("overrides", [])]
    seed = job.get("seed", _seed_from(overrides))
    name = str(path.parent.relative_to(folder)) if path.parent != folder else "."
    return {
        "job": name,
        "seed": seed,
        "split": job.get("split"),
        "test_ckpt": job.get("test_ckpt"),
        "overrides": overrides,
        "metrics": metrics,
    }


def job_from_hydra(run_dir: Path) -> dict[str, Any]:
    """Older metrics.json files carry no "job": read Hydra's own record of the overrides."""
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        return {}
    import yaml  # PyYAML, which Hydra's own files are written with

    overrides = [str(o) for o in yaml.safe_load(saved.read_text()) or []]
    return {"overrides": overrides, "seed": _seed_from(overrides)}


def _seed_from(overrides: list[str]) -> Any:
    for item in overrides:
        if item.startswith("seed="):
            return item.split("=", 1)[1]
    return None


def config_keys(runs: list[dict]) -> tuple[list[str], list[str]]:
    """(overrides that vary across jobs, overrides common to all), seed and paths left out."""
    per_run = [[o for o in r["overrides"] if not o.startswith(IGNORED_PREFIXES)] for r in runs]
    common = [o for o in per_run[0] if all(o in other for other in per_run)] if per_run else []
    for run, kept in zip(runs, per_run, strict=True):
        run["config"] = ", ".join(o for o in kept if o not in common) or "all runs"
        # values as given, unquoted: data.split='speaker=x' -> speaker=x
        pairs = (o.split("=", 1) for o in kept if o not in common and "=" in o)
        run["settings"] = {key: value.strip("'\"") for key, value in pairs}
    varying = []
    for run in runs:
        for key in run["settings"]:
            if key not in varying:
                varying.append(key)
    return varying, common


def aggregate(runs: list[dict]) -> list[dict[str, Any]]:
    """One row per config, in order of first appearance: mean and std of each score over seeds."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(run["config"], []).append(run)
    rows = []
    for config, members in groups.items():
        row: dict[str, Any] = {
            "config": config,
            **members[0]["settings"],
            "n": len(members),
            "seeds": " ".join(str(m["seed"]) for m in members),
            "jobs": " ".join(m["job"] for m in members),
        }
        for key, _ in SCORES:
            values = [m["metrics"][key] for m in members if _is_number(m["metrics"].get(key))]
            row[f"{key} mean"] = statistics.fmean(values) if values else math.nan
            row[f"{key} std"] = statistics.stdev(values) if len(values) > 1 else math.nan
        for key, _ in COSTS:
            values = [m["metrics"][key] for m in members if _is_number(m["metrics"].get(key))]
            row[key] = statistics.fmean(values) if values else math.nan
        rows.append(row)
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _score(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{100 * mean:.1f}" + ("" if math.isnan(std) else f" ± {100 * std:.1f}")


def _cost(key: str, value: float) -> str:
    if math.isnan(value):
        return "-"
    if key == "params":
        return f"{value:,.0f}"
    if key == "epochs":
        return f"{value:g}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def to_markdown(rows: list[dict], common: list[str], missing: list[str]) -> str:
    parts = []
    if common:
        parts.append("All jobs: `" + " ".join(common) + "`\n\n")
    header = ["config", "seeds", *(t for _, t in SCORES), *(t for _, t in COSTS)]
    parts.append(markdown_table(header, map(_table_cells, rows)))
    parts.append(
        "\nScores: mean ± sample std over seeds, in percent. s/epoch: training wall time per epoch.\n"
    )
    if missing:
        parts.append(f"\nNo metrics.json (failed or unfinished): jobs {', '.join(missing)}.\n")
    return "".join(parts)


def _table_cells(row: dict) -> list[str]:
    cells = [row["config"], str(row["n"])]
    cells += [_score(row[f"{k} mean"], row[f"{k} std"]) for k, _ in SCORES]
    cells += [_cost(k, row[k]) for k, _ in COSTS]
    return cells


def bar_chart(rows: list[dict], runs: list[dict], metric: str, title: str):
    labels = [row["config"] for row in rows]
    means = [100 * row[f"{metric} mean"] for row in rows]
    errors = [
        0.0 if math.isnan(row[f"{metric} std"]) else 100 * row[f"{metric} std"] for row in rows
    ]
    figure, axes = plt.subplots(figsize=(max(5.0, 0.9 * len(rows) + 2), 4.5))
    positions = range(len(rows))
    axes.bar(positions, means, yerr=errors, capsize=4, color="#4c72b0", alpha=0.85)
    for i, row in enumerate(rows):
        dots = [
            100 * r["metrics"][metric]
            for r in runs
            if r["config"] == row["config"] and _is_number(r["metrics"].get(metric))
        ]
        axes.scatter([i] * len(dots), dots, color="black", s=10, zorder=3)
        if not math.isnan(means[i]):
            top = max([means[i] + errors[i], *dots])
            axes.annotate(
                f"{means[i]:.1f}",
                (i, top),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    axes.set_xticks(
        list(positions), [_wrap(label) for label in labels], rotation=30, ha="right", fontsize=8
    )
    axes.set_ylabel(f"{metric} (%)")
    axes.set_ylim(0, 105)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def _wrap(label: str, width: int = 28) -> str:
    parts, line = [], ""
    for piece in label.split(", "):
        if line and len(line) + len(piece) > width:
            parts.append(line)
            line = piece
        else:
            line = f"{line}, {piece}" if line else piece
    return "\n".join([*parts, line])


def write_rows(path: Path, rows: list[dict]) -> None:
    """A CSV of every key any row has, in order of first appearance; NaN as an empty cell."""
    fields = list(dict.fromkeys(key for row in rows for key in row))
    write_csv(path, fields, map(blank_nan, rows))


def run_rows(runs: list[dict]) -> list[dict[str, Any]]:
    keys = (*(k for k, _ in SCORES), *(k for k, _ in COSTS))
    return [
        {
            "job": r["job"],
            "config": r["config"],
            **r["settings"],
            "seed": r["seed"],
            "split": r.get("split"),  # the fold, e.g. speaker=george
            "test_ckpt": r.get("test_ckpt"),  # best or last; empty in runs older than the field
            **{k: r["metrics"].get(k, math.nan) for k in keys},
        }
        for r in runs
    ]


def sweep_report(
    folder: str | Path,
    out: str | Path | None = None,
    name: str = "sweep_report",
    metric: str = "test/acc",
    title: str | None = None,
    curves: list[str] | tuple[str, ...] = (),
) -> str:
    """Collect the jobs under `folder`; write <name>.md/.csv/_runs.csv/.png into `out`.

    `curves` names TensorBoard scalar tags (e.g. train/loss_epoch, val/loss): each job's
    curves are read from its event files into <name>_curves.csv and <name>_curves.png.
    Returns the markdown table."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(
            f"{folder} is not a folder: pass a multirun folder, e.g. logs/multiruns/train/<time>"
        )
    if metric not in {k for k, _ in SCORES}:
        raise UserError(
            f"metric={metric} is not reported: use one of {', '.join(k for k, _ in SCORES)}"
        )
    paths = find_runs(folder)
    if not paths:
        raise UserError(
            f"{folder} holds no metrics.json: pass the multirun folder "
            "(logs/multiruns/<task>/<time>) of a sweep whose jobs finished"
        )
    runs = [load_run(p, folder) for p in paths]
    _, common = config_keys(runs)
    rows = aggregate(runs)
    out = Path(out) if out is not None else folder
    out.mkdir(parents=True, exist_ok=True)
    table = to_markdown(rows, common, unfinished_jobs(folder))
    (out / f"{name}.md").write_text(table)
    write_rows(out / f"{name}.csv", rows)
    write_rows(out / f"{name}_runs.csv", run_rows(runs))
    figure = bar_chart(
        rows, runs, metric, title or f"{folder.name}: {metric}, mean ± std over seeds"
    )
    figure.savefig(out / f"{name}.png", dpi=110)
    plt.close(figure)
    if curves:
        points = [
            {
                "job": r["job"],
                "config": r["config"],
                "seed": r["seed"],
                "tag": tag,
                "epoch": i + 1,
                "value": value,
            }
            for r in runs
            for tag in curves
            for i, value in enumerate(read_scalars(folder / r["job"], tag))
        ]
        if not points:
            raise UserError(
                f"no TensorBoard scalars {', '.join(curves)} under {folder}: "
                "check the tag names (TensorBoard's scalar tab lists them)"
            )
        write_rows(out / f"{name}_curves.csv", points)
        figure = curves_figure(points, list(curves), [row["config"] for row in rows])
        figure.savefig(out / f"{name}_curves.png", dpi=110)
        plt.close(figure)
    return table


def read_scalars(run_dir: Path, tag: str) -> list[float]:
    """The values of one scalar tag from the TensorBoard event files under a run, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: dict[int, float] = {}
    for events in sorted(run_dir.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        if tag in accumulator.Tags().get("scalars", []):
            values.update({e.step: e.value for e in accumulator.Scalars(tag)})
    return [values[step] for step in sorted(values)]


def curves_figure(points: list[dict], tags: list[str], configs: list[str]):
    """One panel per tag: each config's mean curve over seeds, the seeds faint behind it."""
    figure, panels = plt.subplots(1, len(tags), figsize=(5.5 * len(tags), 4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axes, tag in zip(panels[0], tags, strict=True):
        for c, config in enumerate(configs):
            color = colors[c % len(colors)]
            by_seed: dict[Any, list[float]] = {}
            for p in points:
                if p["tag"] == tag and p["config"] == config:
                    by_seed.setdefault(p["job"], []).append(p["value"])
            if not by_seed:
                continue
            for values in by_seed.values():
                axes.plot(range(1, len(values) + 1), values, color=color, alpha=0.25, lw=1)
            length = min(len(v) for v in by_seed.values())
            mean = [statistics.fmean(v[i] for v in by_seed.values()) for i in range(length)]
            axes.plot(range(1, length + 1), mean, color=color, lw=2, label=_wrap(config, 40))
        axes.set_xlabel("epoch")
        axes.set_ylabel(tag)
        axes.set_title(f"{tag} (thin: seeds, thick: mean)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    return figure
