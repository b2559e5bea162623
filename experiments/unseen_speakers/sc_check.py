"""The Speech Commands check of the unseen-speaker recipe: per arm the test accuracy (mean ± std
over seeds, each seed), and each recipe arm's per-seed difference from its plain arm with a Welch t,
from the sc_check_runs.csv that `audioclf report` wrote. Prints the table and writes sc_check_summary.md.

    python experiments/unseen_speakers/sc_check.py [experiments/unseen_speakers/sc_check_runs.csv]
"""

from __future__ import annotations

import csv
import math
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ARMS = {  # job folder name without -s<seed> -> (what it is, the arm it is compared with)
    "bcr_paper": ("bcresnet, paper recipe (the recipes study's best)", None),
    "bcr_recipe": ("bcresnet, paper recipe + utterance norm + channel tilt + speed 0.9-1.1", "bcr_paper"),
    "gru_plain": ("gru, augment=none (as in cnn_vs_rnn)", None),
    "gru_recipe": ("gru, the whole fsdd_unseen_speaker recipe", "gru_plain"),
    "gru_norm": ("gru, the recipe's level normalization only (features.normalize=utterance)", "gru_plain"),
    "gru_augment": ("gru, the recipe's augmentation only (tilt, SpecAugment, speed)", "gru_plain"),
}


def welch_t(a: list[float], b: list[float]) -> float:
    spread = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return (statistics.mean(a) - statistics.mean(b)) / spread if spread else math.inf


def table(runs: dict[str, dict[int, float]]) -> list[str]:
    lines = ["| arm | seeds | test acc % | per seed | vs. | diff per seed (points) | Welch t |",
             "|---|---:|---:|---|---|---|---:|"]
    for arm, (label, baseline) in ARMS.items():
        if arm not in runs:
            continue
        acc = runs[arm]
        values = [acc[s] for s in sorted(acc)]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        diff = t = ""
        if baseline in runs:
            pairs = [acc[s] - runs[baseline][s] for s in sorted(acc) if s in runs[baseline]]
            diff = ", ".join(f"{d:+.1f}" for d in pairs) + f" (mean {statistics.mean(pairs):+.1f})"
            if len(values) > 1 and len(runs[baseline]) > 1:
                t = f"{welch_t(values, list(runs[baseline].values())):+.1f}"
        seeds = ", ".join(f"{v:.1f}" for v in values)
        lines.append(f"| {label} | {len(values)} | {statistics.mean(values):.1f} ± {spread:.1f} | {seeds} "
                     f"| {baseline or ''} | {diff} | {t} |")
    return lines


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "sc_check_runs.csv")
    runs = defaultdict(dict)  # arm -> seed -> test accuracy %
    for row in csv.DictReader(path.open()):
        arm = re.sub(r"-s\d+(/\d+)?$", "", row["job"])
        runs[arm][int(row["seed"])] = 100 * float(row["test/acc"])
    text = "\n".join(table(runs)) + "\n"
    (path.parent / "sc_check_summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
