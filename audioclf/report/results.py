"""Per-run results -> per-arm figures: mean ± std over seeds, paired per-seed differences, Welch's t.

    python -m audioclf.report.results experiments/cnn_vs_rnn/results_runs.csv
    python -m audioclf.report.results logs/multiruns/cnn_vs_rnn/main test/acc val/acc_best

The one reader behind the studies' summarize scripts and the claims test. A source is a
per-run CSV (one row per run, as `audioclf-report` writes `<name>_runs.csv`) or a folder of
jobs (every metrics.json below it). A run's arm is its job folder name without the
`-s<seed>` the study scripts append (`kws12_gru-s1/0` -> `kws12_gru`); jobs of a plain
sweep (`0`, `1`, ...) are grouped by their overrides with the seed left out, as in the sweep report.
"""

from __future__ import annotations

import csv
import math
import re
import statistics
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from audioclf.errors import UserError
from audioclf.report.sweep import config_keys, find_runs, load_run
from audioclf.report.tables import markdown_table

SEED_SUFFIX = re.compile(r"-s\d+(/\d+)?$")
DEFAULT_METRICS = ("test/acc", "val/acc_best")
SCORE_NAME = re.compile(r"acc|f1|recall|precision|frr|far")  # fractions, shown as percent

Runs = dict[str, dict[Any, dict[str, Any]]]  # arm -> seed -> run


def arm_of(job: str) -> str:
    """`kws12_gru-s1/0` -> `kws12_gru`; a name without a seed suffix is its own arm."""
    return SEED_SUFFIX.sub("", job)


def read_runs(source: str | Path) -> list[dict[str, Any]]:
    """Every run of a per-run CSV or a folder of jobs, as flat dicts with "arm" and "seed"."""
    source = Path(source)
    if source.is_file():
        return _read_csv(source)
    if source.is_dir():
        return _read_folder(source)
    raise UserError(f"{source} is neither a per-run CSV nor a folder of runs: check the path")


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as file:
        rows = [{key: _number(value) for key, value in row.items()} for row in csv.DictReader(file)]
    for row in rows:
        if "arm" not in row:
            row["arm"] = _arm_from_job(row)
    return rows


def _read_folder(folder: Path) -> list[dict[str, Any]]:
    paths = find_runs(folder)
    if not paths:
        raise UserError(f"{folder} holds no metrics.json: pass a folder of finished runs")
    runs = [load_run(path, folder) for path in paths]
    config_keys(runs)  # sets each run's "config" and "settings"
    rows = []
    for run in runs:
        seed = _number(str(run["seed"])) if run["seed"] is not None else None
        row = {"job": run["job"], "config": run["config"], **run["settings"], "seed": seed,
               "split": run["split"], "test_ckpt": run["test_ckpt"]}
        row.update(run["metrics"])
        row["arm"] = _arm_from_job(row)
        rows.append(row)
    return rows


def _arm_from_job(row: Mapping[str, Any]) -> str:
    job = str(row.get("job", ""))
    if SEED_SUFFIX.search(job):
        return arm_of(job)
    return str(row.get("config", job))


def _number(text: str | None) -> Any:
    """CSV cells as numbers where they are numbers; an empty cell is NaN."""
    if text is None or text == "":
        return math.nan
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def by_arm(runs: Iterable[Mapping[str, Any]]) -> Runs:
    """arm -> seed -> run, arms and seeds in order of first appearance."""
    grouped: Runs = {}
    for run in runs:
        grouped.setdefault(str(run["arm"]), {})[run["seed"]] = dict(run)
    return grouped


def values(runs_of_arm: Mapping[Any, Mapping[str, Any]], metric: str, scale: float = 1.0) -> dict:
    """seed -> metric x scale, the seeds whose metric is a finite number, sorted by seed."""
    found = {seed: run.get(metric) for seed, run in runs_of_arm.items()}
    return {seed: scale * v for seed, v in sorted(found.items()) if _is_number(v)}


def mean_std(numbers: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN when there are fewer than two numbers)."""
    numbers = list(numbers)
    if not numbers:
        return math.nan, math.nan
    spread = statistics.stdev(numbers) if len(numbers) > 1 else math.nan
    return statistics.fmean(numbers), spread


def pm(numbers: Iterable[float], digits: int = 1) -> str:
    """`89.3 ± 0.9`; one number alone is printed without a spread, none as `-`."""
    mean, spread = mean_std(numbers)
    if math.isnan(mean):
        return "-"
    if math.isnan(spread):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def paired_differences(arm: Mapping[Any, float], baseline: Mapping[Any, float]) -> dict:
    """seed -> arm - baseline, for the seeds both have (paired: same seed, same data draw)."""
    return {seed: value - baseline[seed] for seed, value in sorted(arm.items()) if seed in baseline}


def welch_t(a: Iterable[float], b: Iterable[float]) -> float:
    """Welch's t of mean(a) - mean(b). Written out here rather than taken from scipy, which
    the package does not otherwise need."""
    a, b = list(a), list(b)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    spread = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    difference = statistics.fmean(a) - statistics.fmean(b)
    return difference / spread if spread else math.copysign(math.inf, difference)


def figure(runs: Runs, arm: str, metric: str, scale: float = 100.0, digits: int = 1) -> str:
    """One README figure: an arm's metric as mean ± std over its seeds."""
    if arm not in runs:
        raise KeyError(f"no arm {arm!r} (arms: {', '.join(runs)})")
    return pm(values(runs[arm], metric, scale).values(), digits)


def summary_table(runs: Runs, metrics: Iterable[str] = DEFAULT_METRICS) -> str:
    """A markdown table: one row per arm, its seeds and each metric's mean ± std (fractions
    shown as percent)."""
    metrics = list(metrics)
    rows = []
    for arm, seeds in runs.items():
        cells = [arm, " ".join(str(seed) for seed in seeds)]
        for metric in metrics:
            found = values(seeds, metric)
            cells.append(pm(values(seeds, metric, _scale(metric, found.values())).values()))
        rows.append(cells)
    return markdown_table(["arm", "seeds", *metrics], rows)


def _scale(metric: str, found: Iterable[float]) -> float:
    """100 for a score stored as a fraction (`test/acc` 0.893), 1 for anything else."""
    found = list(found)
    fraction = bool(found) and all(0.0 <= v <= 1.0 for v in found)
    return 100.0 if SCORE_NAME.search(metric) and fraction else 1.0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    source, metrics = argv[0], argv[1:] or DEFAULT_METRICS
    print(summary_table(by_arm(read_runs(source)), metrics), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
