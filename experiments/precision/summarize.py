"""The precision study's verdict table, from the results_runs.csv and results_curves.csv that
`audioclf-report` wrote: per backbone, test accuracy mean ± std over seeds in fp32 (32-true) and
bf16-mixed, whether bf16's mean is within one fp32 standard deviation (or above it), seconds per epoch, and
whether validation accuracy had reached a plateau (its last three epochs within one point).

    python experiments/precision/summarize.py [experiments/precision]   # writes summary.md there
"""

from __future__ import annotations

import csv
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from audioclf.report import results
from audioclf.report.results import mean_std, pm

FP32, BF16 = "32-true", "bf16-mixed"
TEST_CLIPS = 300  # FSDD official test split: the std is floored at one clip, 1/300 = 0.33 points


def arm_of(job: str) -> tuple[str, str]:
    """`crnn-bf16-mixed-s1/0` -> ("crnn", "bf16-mixed")."""
    model, precision = re.match(r"(.+?)-(32-true|bf16-mixed)", results.arm_of(job)).groups()
    return model, precision


def read_runs(folder: Path) -> dict[tuple[str, str], list[dict]]:
    runs = defaultdict(list)
    for row in results.read_runs(folder / "results_runs.csv"):
        runs[arm_of(row["job"])].append(row)
    return runs


def read_curves(folder: Path) -> dict[tuple[str, str], dict[int, list[float]]]:
    """(model, precision) -> epoch -> that epoch's val/acc of each seed."""
    curves = defaultdict(lambda: defaultdict(list))
    path = folder / "results_curves.csv"
    if path.is_file():
        with open(path) as file:
            for row in csv.DictReader(file):
                if row["tag"] == "val/acc":
                    curves[arm_of(row["job"])][int(row["epoch"])].append(float(row["value"]))
    return curves


def plateau(curve: dict[int, list[float]]) -> str:
    """'yes (98.7 -> 99.0)' when the seed-mean val acc of the last three epochs spans under a point."""
    if len(curve) < 3:
        return "-"
    last = [100 * statistics.mean(curve[e]) for e in sorted(curve)[-3:]]
    flat = max(last) - min(last) < 1.0
    return f"{'yes' if flat else 'no'} ({last[0]:.1f} -> {last[-1]:.1f})"


def verdict(fp32: list[float], bf16: list[float]) -> str:
    if len(fp32) < 2 or not bf16:
        return "too few seeds"
    (m32, s32), (m16, _) = mean_std(fp32), mean_std(bf16)
    tolerance = max(s32, 1 / TEST_CLIPS)
    answer = "yes" if abs(m16 - m32) <= tolerance else "no, better" if m16 > m32 else "NO, worse"
    return f"{answer} ({100 * (m16 - m32):+.1f} vs ±{100 * tolerance:.1f})"


def summary(folder: Path) -> str:
    runs, curves = read_runs(folder), read_curves(folder)
    lines = ["| backbone | seeds fp32/bf16 | fp32 test acc % | bf16 test acc % | bf16 within 1 std of fp32 "
             "| s/epoch fp32 | s/epoch bf16 | val acc plateau, last 3 epochs (fp32 / bf16) |",
             "|---|---|---:|---:|---|---:|---:|---|"]
    for model in dict.fromkeys(m for m, _ in runs):
        accs = {p: [float(r["test/acc"]) for r in runs[(model, p)]] for p in (FP32, BF16)}
        speed = {p: [float(r["seconds_per_epoch"]) for r in runs[(model, p)]] for p in (FP32, BF16)}
        cells = [pm(100 * v for v in a) for a in accs.values()]
        seconds = [f"{statistics.mean(s):.1f}" if s else "-" for s in speed.values()]
        flat = " / ".join(plateau(curves[(model, p)]) for p in (FP32, BF16))
        lines.append(f"| {model} | {len(accs[FP32])}/{len(accs[BF16])} | {cells[0]} | {cells[1]} "
                     f"| {verdict(accs[FP32], accs[BF16])} | {seconds[0]} | {seconds[1]} | {flat} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "experiments/precision")
    table = summary(out)
    (out / "summary.md").write_text(table)
    print(table)
