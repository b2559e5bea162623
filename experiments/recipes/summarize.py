"""The recipes study's tables and curves, by arm (the job folder name without its -s<seed>):
summary.md (per dataset: mean ± std over seeds, and each arm's per-seed difference from the arm
it is compared with) and summary_curves.png (mean validation accuracy per epoch, one line per
arm), from the results_runs.csv and results_curves.csv that `audioclf-report` wrote.

    python experiments/recipes/summarize.py [experiments/recipes]
"""

from __future__ import annotations

import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from audioclf.report.results import arm_of, by_arm, paired_differences, pm, read_runs, values

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


def tables(runs: dict[str, dict[int, dict]]) -> list[str]:
    """Per dataset, one row per arm: its figures and its per-seed difference from its baseline."""
    lines = []
    for dataset in dict.fromkeys(d for d, _, _ in ARMS.values()):
        lines += [f"\n{dataset}\n",
                  "| arm | seeds | test acc % | best val acc % | vs. | diff per seed (points) | s/epoch | train s |",
                  "|---|---:|---:|---:|---|---|---:|---:|"]
        for arm, (where, label, baseline) in ARMS.items():
            if where != dataset or arm not in runs:
                continue
            rows = runs[arm]
            acc = values(rows, "test/acc", 100)
            best = values(rows, "val/acc_best", 100)
            diff = ""
            if baseline in runs:
                pairs = list(paired_differences(acc, values(runs[baseline], "test/acc", 100)).values())
                diff = ", ".join(f"{d:+.1f}" for d in pairs) + f" (mean {statistics.mean(pairs):+.1f})"
            per_epoch = statistics.mean(values(rows, "seconds_per_epoch").values())
            seconds = statistics.mean(values(rows, "train_seconds").values())
            lines.append(f"| {label} | {len(rows)} | {pm(acc.values())} | {pm(best.values())} | {baseline or ''} "
                         f"| {diff} | {per_epoch:.1f} | {seconds:.0f} |")
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
    runs = by_arm(read_runs(folder / "results_runs.csv"))
    text = "\n".join(tables(runs)).strip() + "\n"
    (folder / "summary.md").write_text(text)
    print(text)
    plot_curves(folder / "results_curves.csv", folder / "summary_curves.png")
    print(f"wrote {folder / 'summary.md'} and {folder / 'summary_curves.png'}")


if __name__ == "__main__":
    main()
