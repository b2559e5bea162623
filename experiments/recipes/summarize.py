"""The recipes study's tables and curves, by arm (the job folder name without its -s<seed>):
summary.md (per dataset: mean ± std over seeds, and each arm's per-seed difference from the arm
it is compared with) and summary_curves.png (mean validation accuracy per epoch, one line per
arm), from the results_runs.csv and results_curves.csv that `audioclf-report` wrote.

    python experiments/recipes/summarize.py [experiments/recipes]
"""

from __future__ import annotations

import csv
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ARMS = {  # folder name -> (dataset, what it is, the arm it is compared with)
    "bcresnet_sc_old": ("SC sample kws12", "bcresnet, old default (AdamW 1e-3, cosine, augment=default)", None),
    "bcresnet_sc_paper": ("SC sample kws12", "bcresnet, new default = paper recipe", "bcresnet_sc_old"),
    "beyond_sc_ema": ("SC sample kws12", "bcresnet, paper recipe + EMA (callbacks=ema)", "bcresnet_sc_paper"),
    "beyond_sc_mixup": ("SC sample kws12", "bcresnet, paper recipe + mixup 0.2", "bcresnet_sc_paper"),
    "matchbox_sc_old": ("SC sample kws12", "matchboxnet, old default (AdamW 1e-3, cosine, augment=default)", None),
    "matchbox_sc_paper": ("SC sample kws12", "matchboxnet, paper recipe (experiment=matchboxnet_gsc)",
                          "matchbox_sc_old"),
    "matchbox_sc_noise": ("SC sample kws12", "matchboxnet, paper recipe + background noise p 0.8",
                          "matchbox_sc_paper"),
    "kwt_sc_old": ("SC sample kws12", "kwt (KWT-1), old default (AdamW 1e-3, cosine, augment=default)", None),
    "kwt_sc_paper": ("SC sample kws12", "kwt (KWT-1), paper recipe (experiment=kwt_gsc, batch 512)", "kwt_sc_old"),
    "bcresnet_fsdd_old": ("FSDD official", "bcresnet, old default (AdamW 1e-3, cosine, augment=default)", None),
    "bcresnet_fsdd_paper": ("FSDD official", "bcresnet, new default = paper recipe", "bcresnet_fsdd_old"),
}


def pm(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}"


def arm_of(job: str) -> str:
    return re.sub(r"-s\d+(/\d+)?$", "", job)


def tables(runs: dict[str, dict[int, dict]]) -> list[str]:
    lines = []
    for dataset in dict.fromkeys(d for d, _, _ in ARMS.values()):
        lines += [f"\n{dataset}\n",
                  "| arm | seeds | test acc % | best val acc % | vs. | diff per seed (points) | s/epoch | train s |",
                  "|---|---:|---:|---:|---|---|---:|---:|"]
        for arm, (where, label, baseline) in ARMS.items():
            if where != dataset or arm not in runs:
                continue
            rows = runs[arm]
            acc = [100 * float(r["test/acc"]) for r in rows.values()]
            best = [100 * float(r["val/acc_best"]) for r in rows.values()]
            diff = ""
            if baseline in runs:
                pairs = [(100 * float(r["test/acc"]) - 100 * float(runs[baseline][s]["test/acc"]))
                         for s, r in sorted(rows.items()) if s in runs[baseline]]
                diff = ", ".join(f"{d:+.1f}" for d in pairs) + f" (mean {statistics.mean(pairs):+.1f})"
            per_epoch = statistics.mean(float(r["seconds_per_epoch"]) for r in rows.values())
            seconds = statistics.mean(float(r["train_seconds"]) for r in rows.values())
            lines.append(f"| {label} | {len(rows)} | {pm(acc)} | {pm(best)} | {baseline or ''} | {diff} "
                         f"| {per_epoch:.1f} | {seconds:.0f} |")
    return lines


def plot_curves(path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = defaultdict(lambda: defaultdict(list))  # arm -> epoch -> values over seeds
    for row in csv.DictReader(path.open()):
        if row["tag"] == "val/acc":
            curves[arm_of(row["job"])][int(row["epoch"])].append(100 * float(row["value"]))
    datasets = list(dict.fromkeys(d for d, _, _ in ARMS.values()))
    figure, axes = plt.subplots(1, len(datasets), figsize=(12, 4.5))
    for axis, dataset in zip(axes, datasets, strict=True):
        for arm, (where, label, _) in ARMS.items():
            if where == dataset and arm in curves:
                epochs = sorted(curves[arm])
                axis.plot(epochs, [statistics.mean(curves[arm][e]) for e in epochs], label=label)
        axis.set(title=f"{dataset}: val acc, mean over seeds", xlabel="epoch", ylabel="%", ylim=(50, 101))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(out, dpi=100)


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
    runs = defaultdict(dict)  # arm -> seed -> row
    for row in csv.DictReader((folder / "results_runs.csv").open()):
        runs[arm_of(row["job"])][int(row["seed"])] = row
    text = "\n".join(tables(runs)).strip() + "\n"
    (folder / "summary.md").write_text(text)
    print(text)
    plot_curves(folder / "results_curves.csv", folder / "summary_curves.png")
    print(f"wrote {folder / 'summary.md'} and {folder / 'summary_curves.png'}")


if __name__ == "__main__":
    main()
