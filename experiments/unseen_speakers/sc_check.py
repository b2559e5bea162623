"""The Speech Commands check of the unseen-speaker recipe: per arm the test accuracy (mean ± std
over seeds, each seed), and each recipe arm's per-seed difference from its plain arm with a Welch t,
from the sc_check_runs.csv that `audioclf report` wrote. Prints the table and writes sc_check_summary.md.

    python experiments/unseen_speakers/sc_check.py [experiments/unseen_speakers/sc_check_runs.csv]
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from audioclf.report.results import by_arm, paired_differences, pm, read_runs, values, welch_t

ARMS = {  # job folder name without -s<seed> -> (what it is, the arm it is compared with)
    "bcr_paper": ("bcresnet, paper recipe (the recipes study's best)", None),
    "bcr_recipe": ("bcresnet, paper recipe + utterance norm + channel tilt + speed 0.9-1.1", "bcr_paper"),
    "gru_plain": ("gru, augment=none (as in cnn_vs_rnn)", None),
    "gru_recipe": ("gru, the whole fsdd_unseen_speaker recipe", "gru_plain"),
    "gru_norm": ("gru, the recipe's level normalization only (features.normalize=utterance)", "gru_plain"),
    "gru_augment": ("gru, the recipe's augmentation only (tilt, SpecAugment, speed)", "gru_plain"),
}


def table(runs: dict[str, dict[int, float]]) -> list[str]:
    """runs: arm -> seed -> test accuracy %."""
    lines = ["| arm | seeds | test acc % | per seed | vs. | diff per seed (points) | Welch t |",
             "|---|---:|---:|---|---|---|---:|"]
    for arm, (label, baseline) in ARMS.items():
        if arm not in runs:
            continue
        acc = runs[arm]
        diff = t = ""
        if baseline in runs:
            pairs = list(paired_differences(acc, runs[baseline]).values())
            diff = ", ".join(f"{d:+.1f}" for d in pairs) + f" (mean {statistics.mean(pairs):+.1f})"
            if len(acc) > 1 and len(runs[baseline]) > 1:
                t = f"{welch_t(acc.values(), runs[baseline].values()):+.1f}"
        seeds = ", ".join(f"{v:.1f}" for v in acc.values())
        lines.append(f"| {label} | {len(acc)} | {pm(acc.values())} | {seeds} | {baseline or ''} | {diff} | {t} |")
    return lines


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "sc_check_runs.csv")
    runs = {arm: values(seeds, "test/acc", 100) for arm, seeds in by_arm(read_runs(path)).items()}
    text = "\n".join(table(runs)) + "\n"
    (path.parent / "sc_check_summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
