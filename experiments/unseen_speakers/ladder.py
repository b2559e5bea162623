"""The unseen-speaker ladder: one row per rung, read back from its runs' metrics.json.

    .venv/bin/python experiments/unseen_speakers/ladder.py [LADDER_FOLDER]

LADDER_FOLDER (default logs/multiruns/unseen_speakers/ladder) holds one folder per rung, as
loso.sh writes it: rung.txt (what changed, then the overrides) and <split>-s<seed>/metrics.json.
Writes ladder.md, ladder.csv and ladder_runs.csv (one row per run, with its validation speaker and
val/acc_best, which nested.py chooses on) next to this file.
LOSO mean: the mean over the six held-out speakers of one seed, then mean +- sample std over
seeds; a speaker's cell is its mean over seeds; worst: the speaker with the lowest such mean.
A rung missing jobs is marked and its numbers cover the jobs that finished. An ensemble.py rung
is one ensemble per split (no std); its train s/job is the members' total.
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from audioclf.data.sources.fsdd import validation_speaker
from audioclf.report.results import mean_std

SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]


def rung_row(folder: Path, recorded: list[dict]) -> dict | None:
    """The rung's ladder row from its runs under `folder` and its `recorded` runs (ladder_runs.csv rows of
    jobs the folder lacks: seeds run in an earlier checkout)."""
    accs = defaultdict(dict)  # split -> seed -> test acc %
    seconds = []
    epochs, members = None, 0
    for metrics_file in sorted(folder.glob("*/metrics.json")):
        metrics = json.loads(metrics_file.read_text())
        split = split_of(metrics, metrics_file.parent)
        accs[split][metrics["job"]["seed"]] = 100 * metrics["test/acc"]
        seconds.append(metrics["train_seconds"])
        epochs = metrics["epochs"]
        members = len(metrics["job"].get("members", []))  # an ensemble.py rung: one ensemble per split
    for run in recorded:
        accs[run["split"]][int(run["seed"])] = 100 * float(run["test/acc"])
        seconds.append(float(run["train_seconds"]))
        epochs = epochs or int(run["epochs"])
    if not seconds:
        return None
    what, overrides = ([*(folder / "rung.txt").read_text().splitlines(), "", ""])[:2]
    seeds = sorted({seed for split in SPEAKERS for seed in accs.get(split, {})})
    complete = [s for s in seeds if all(s in accs.get(sp, {}) for sp in SPEAKERS)]
    loso = [statistics.fmean(accs[sp][s] for sp in SPEAKERS) for s in complete]
    per_speaker = {sp: statistics.fmean(accs[sp].values()) for sp in SPEAKERS if accs.get(sp)}
    worst = min(per_speaker, key=per_speaker.get) if per_speaker else ""
    official = list(accs.get("official", {}).values())
    jobs = sum(len(v) for v in accs.values())
    expected = len(seeds) * len(SPEAKERS) + len(official)  # the official split may run fewer seeds (OFFICIAL=0)
    return {
        "rung": folder.name,
        "what changed": what,
        "overrides": overrides,
        "LOSO mean %": mean_std(loso)[0] if loso else float("nan"),
        "LOSO std %": mean_std(loso)[1] if loso else float("nan"),
        "worst speaker": worst,
        "worst %": per_speaker.get(worst, float("nan")),
        **{f"{sp} %": per_speaker.get(sp, float("nan")) for sp in SPEAKERS},
        "official %": mean_std(official)[0] if official else float("nan"),
        "official std %": mean_std(official)[1] if official else float("nan"),
        "seeds": f"ensemble of {members}" if members else len(complete),
        "epochs": epochs,
        "train s/job": statistics.fmean(seconds),
        "wall": wall_time(folder),
        "jobs": f"{jobs}/{expected}" if jobs < expected else str(jobs),
    }


def split_of(metrics: dict, job: Path) -> str:
    """The held-out speaker or `official`; a data=digits_mix run names it in its job folder only."""
    split = metrics["job"].get("split") or job.name.rsplit("-s", 1)[0]
    return split.removeprefix("speaker=")


def val_speaker_of(metrics: dict, split: str) -> str:
    """The run's validation speaker: `seen` (the training speakers' recordings 0-4) or a name."""
    choice = next((o.split("=", 1)[1] for o in metrics["job"].get("overrides", []) if ".val_speaker=" in o
                   or o.startswith("data.val_speaker=")), "seen")
    if choice == "seen" or split == "official":
        return "seen"
    return validation_speaker(choice, split, set(SPEAKERS))


def wall_time(folder: Path) -> str:
    """The rung's wall time as loso.sh recorded it (its last pass), e.g. '31 min, JOBS=1'."""
    path = folder / "wall.txt"
    if not path.is_file():
        return "-"
    seconds, _, rest = path.read_text().splitlines()[-1].partition(" s wall, ")
    return f"{int(seconds) / 60:.0f} min, JOBS={rest.split(' jobs')[0]}"


def spread(row: dict, name: str) -> str:
    """' ± std' over seeds; nothing for a single ensemble."""
    return "" if isinstance(row["seeds"], str) else f" ± {row[f'{name} std %']:.1f}"


def official(row: dict) -> str:
    """The official split's cell; `-` for a rung run on the held-out speakers only (loso.sh OFFICIAL=0)."""
    if math.isnan(row["official %"]):
        return "-"
    return f"{row['official %']:.1f}{spread(row, 'official')}"


def markdown(rows: list[dict]) -> str:
    header = ("| rung | what changed | LOSO mean ± std % | worst speaker | " + " | ".join(SPEAKERS)
              + " | official ± std % | seeds | epochs | train s/job | wall |")
    lines = [header, "|---|---|---:|---|" + "---:|" * len(SPEAKERS) + "---:|---:|---:|---:|---:|"]
    for r in rows:
        incomplete = f" (jobs {r['jobs']})" if "/" in r["jobs"] else ""
        lines.append(
            f"| {r['rung']}{incomplete} | {r['what changed']} | {r['LOSO mean %']:.1f}{spread(r, 'LOSO')} | "
            f"{r['worst speaker']} {r['worst %']:.1f} | "
            + " | ".join(f"{r[f'{sp} %']:.1f}" for sp in SPEAKERS)
            + f" | {official(r)} | {r['seeds']} | {r['epochs']} | "
            f"{r['train s/job']:.0f} | {r['wall']} |"
        )
    lines += ["", "Overrides per rung (on top of `data=fsdd`, bf16-mixed on the CPU):", ""]
    lines += [f"- {r['rung']}: `{r['overrides']}`" for r in rows]
    return "\n".join(lines) + "\n"


def rung_order(rung: str) -> tuple[int, str]:
    """Rungs in the order of their leading number (10_x after 9_x), then by name."""
    number = re.match(r"\d+", rung)
    return (int(number.group()) if number else 10**6, rung)


def recorded_rows(path: Path) -> dict[str, dict]:
    """The rungs already in ladder.csv, as rung_row gives them (numbers back to numbers)."""
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    text = {"rung", "what changed", "overrides", "worst speaker", "wall", "jobs"}
    for row in rows:
        for key, value in row.items():
            if key == "seeds" or key == "epochs":
                row[key] = int(value) if value.isdigit() else value
            elif key not in text:
                row[key] = float(value)
    return {row["rung"]: row for row in rows}


def run_rows(folder: Path) -> list[dict]:
    """One row per run of a rung: the per-run results its ladder.csv row summarizes."""
    rows = []
    for metrics_file in sorted(folder.glob("*/metrics.json")):
        metrics = json.loads(metrics_file.read_text())
        split = split_of(metrics, metrics_file.parent)
        rows.append({
            "rung": folder.name, "job": metrics_file.parent.name, "split": split, "seed": metrics["job"]["seed"],
            "val_speaker": val_speaker_of(metrics, split), "val/acc_best": metrics.get("val/acc_best", ""),
            "test/acc": metrics["test/acc"], "epochs": metrics["epochs"], "train_seconds": metrics["train_seconds"],
        })
    return rows


def recorded_runs(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def merged_runs(recorded: list[dict], folders: list[Path]) -> list[dict]:
    """ladder_runs.csv's rows with the runs read back now: a job read now replaces its old row, the
    other jobs' rows stay (seeds added in a later checkout extend a rung instead of erasing it)."""
    read_now = [row for folder in folders for row in run_rows(folder)]
    fresh = {(row["rung"], row["job"]) for row in read_now}
    return [row for row in recorded if (row["rung"], row["job"]) not in fresh] + read_now


def write_run_rows(path: Path, rows: list[dict]) -> None:
    if rows:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def main(ladder: Path) -> None:
    """Rungs with runs under LADDER are read back from them; the others keep their ladder.csv row
    (a checkout without the logs of earlier rungs adds its rung instead of erasing theirs)."""
    out = Path(__file__).parent
    by_rung = recorded_rows(out / "ladder.csv")
    folders = [p for p in ladder.iterdir() if p.is_dir()] if ladder.is_dir() else []
    recorded = recorded_runs(out / "ladder_runs.csv")
    for folder in folders:
        jobs_here = {p.parent.name for p in folder.glob("*/metrics.json")}
        earlier = [r for r in recorded if r["rung"] == folder.name and r["job"] not in jobs_here]
        if row := rung_row(folder, earlier):
            by_rung[row["rung"]] = row
    rows = [by_rung[name] for name in sorted(by_rung, key=rung_order)]
    if not rows:
        sys.exit(f"error: no finished runs under {ladder}: run experiments/unseen_speakers/loso.sh first")
    with open(out / "ladder.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    write_run_rows(out / "ladder_runs.csv", merged_runs(recorded, folders))
    (out / "ladder.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "logs/multiruns/unseen_speakers/ladder"))
