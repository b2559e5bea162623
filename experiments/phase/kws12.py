"""Phase on kws12: per arm, test accuracy, _silence_ / _unknown_ recall and false alarms on noise.

    python experiments/phase/kws12.py logs/multiruns/phase/<stamp> [out_dir]
    python experiments/phase/kws12.py experiments/phase/kws12_runs.csv   # the tables again, from the runs

Reads every `kws12_<arm>-s<seed>/0` job that run.sh's kws12 part trained: metrics.json and
test_report.csv (the training run's test of its best checkpoint) and the two false-alarm scans
eval.py wrote for it into `<stamp>_false_alarms/<job>/` (held_out: noise files training never
saw; seen: the files its _silence_ clips and noise augmentation were cut from). Writes kws12.md/.csv (mean +- std over
seeds per arm) and kws12_runs.csv (one row per job) into out_dir (default experiments/phase).
"""

from __future__ import annotations

import csv
import json
import re
import statistics
import sys
from pathlib import Path

from audioclf.report.results import pm, read_runs

ARMS = ("magnitude", "phase2d", "phase3d")
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
COLUMNS = {  # column -> its heading in kws12.md
    "test_acc": "test acc %",
    "silence_recall": "_silence_ recall %",
    "unknown_recall": "_unknown_ recall %",
    "command_recall": "command recall % (mean of 10)",
    "held_out_alarms_per_hour": "false alarms/h, held-out noise",
    "seen_alarms_per_hour": "false alarms/h, seen noise",
    "epochs": "epochs (early stop)",
    "train_seconds": "train s",
}


def read_recalls(report: Path) -> dict[str, float]:
    with report.open() as f:
        return {row["label"]: float(row["recall"]) for row in csv.DictReader(f) if row["recall"]}


def alarms_per_hour(scan: Path) -> tuple[float, int]:
    """All keywords' false alarms per hour summed, and the alarm count, from an eval metrics.json."""
    metrics = json.loads((scan / "metrics.json").read_text())
    per_hour = sum(v for k, v in metrics.items() if k.startswith("false_alarms_per_hour/"))
    return per_hour, round(per_hour * metrics["false_alarms/hours"])


def job_row(job: Path, scans: Path) -> dict:
    arm, seed = re.fullmatch(r"kws12_(\w+)-s(\d+)", job.parent.name).groups()
    metrics = json.loads((job / "metrics.json").read_text())
    recalls = read_recalls(job / "test_report.csv")
    held_out, held_out_count = alarms_per_hour(scans / "held_out")
    seen, seen_count = alarms_per_hour(scans / "seen")
    return {
        "arm": arm, "seed": int(seed),
        "test_acc": 100 * metrics["test/acc"],
        "silence_recall": 100 * recalls["_silence_"],
        "unknown_recall": 100 * recalls["_unknown_"],
        "command_recall": 100 * statistics.mean(recalls[word] for word in COMMANDS),
        "held_out_alarms_per_hour": held_out, "held_out_alarms": held_out_count,
        "seen_alarms_per_hour": seen, "seen_alarms": seen_count,
        "epochs": metrics["epochs"], "train_seconds": metrics["train_seconds"],
    }


def job_rows(runs: Path) -> list[dict]:
    rows = []
    for job in sorted(runs.glob("kws12_*-s*/0")):
        scans = runs.parent / f"{runs.name}_false_alarms" / job.parent.name
        if (scans / "seen" / "metrics.json").exists():
            rows.append(job_row(job, scans))
        else:
            print(f"skipped (unfinished): {job}")
    if not rows:
        sys.exit(f"error: no finished kws12 jobs under {runs}: run PARTS=kws12 experiments/phase/run.sh first")
    return rows


def write_tables(rows: list[dict], out: Path) -> None:
    """kws12.md/.csv: per arm, each column's mean ± std over seeds."""
    table = [["arm", "seeds", *COLUMNS.values()]]
    for arm in ARMS:
        runs_of_arm = [row for row in rows if row["arm"] == arm]
        if runs_of_arm:
            table.append([arm, str(len(runs_of_arm))]
                         + [pm(row[key] for row in runs_of_arm) for key in COLUMNS])
    with (out / "kws12.csv").open("w", newline="") as f:
        csv.writer(f).writerows(table)
    lines = ["| " + " | ".join(table[0]) + " |", "|---|" + "---:|" * (len(table[0]) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
    (out / "kws12.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(source: Path, out: Path) -> None:
    if source.suffix == ".csv":
        rows = read_runs(source)
    else:
        rows = job_rows(source)
        with (out / "kws12_runs.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    write_tables(rows, out)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    source = Path(sys.argv[1])
    default_out = source.parent if source.suffix == ".csv" else Path("experiments/phase")
    main(source, Path(sys.argv[2]) if len(sys.argv) == 3 else default_out)
