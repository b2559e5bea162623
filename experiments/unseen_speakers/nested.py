"""Nested leave-one-speaker-out: per held-out test speaker, the rung its validation speaker picks.

    .venv/bin/python experiments/unseen_speakers/nested.py [RUNG ...]

Reads ladder_runs.csv (one row per run, as ladder.py writes it) and writes nested.md and nested.csv
next to it. Candidates: the RUNGs given, or every rung whose speaker runs held out a validation
speaker (loso.sh VAL_SPEAKER=auto: data.val_speaker). The test speaker's clips play no part in the
choice: for each test speaker, a candidate's validation score is the mean over its seeds of
val/acc_best (the validation speaker's accuracy at the checkpoint that was tested); the highest
wins (a tie: the rung first in ladder order), and that rung's test/acc on the test speaker is the
nested figure, per seed. LOSO: per seed, the mean over the six test speakers of the chosen rungs'
test/acc (seeds every chosen rung has); mean ± std over seeds and the worst seed. The candidates'
own rows say what each gives when it is used for every speaker, and how often it was picked.
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path
from typing import NamedTuple

from audioclf.report.results import pm

SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
HERE = Path(__file__).parent


class Choice(NamedTuple):
    speaker: str
    val_speaker: str
    rung: str
    val: dict[str, float]  # candidate -> its validation score (mean over seeds, %)
    test: dict[int, float]  # seed -> the chosen rung's test accuracy on the speaker (%)


def read_runs(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["seed"] = int(row["seed"])
        row["test/acc"] = 100 * float(row["test/acc"])
        row["val/acc_best"] = 100 * float(row["val/acc_best"]) if row.get("val/acc_best") else None
    return rows


def candidates(runs: list[dict]) -> list[str]:
    """Rungs, in ladder order, whose speaker runs all validated on a held-out speaker."""
    order = list(dict.fromkeys(row["rung"] for row in runs))
    held = {row["rung"] for row in runs if row["split"] in SPEAKERS and row["val_speaker"] != "seen"}
    seen = {row["rung"] for row in runs if row["split"] in SPEAKERS and row["val_speaker"] == "seen"}
    return [rung for rung in order if rung in held and rung not in seen]


def choose(runs: list[dict], rungs: list[str]) -> list[Choice]:
    """For each test speaker, the candidate with the best validation score, and its test scores."""
    choices = []
    for speaker in SPEAKERS:
        mine = {rung: [r for r in runs if r["rung"] == rung and r["split"] == speaker] for rung in rungs}
        mine = {rung: rows for rung, rows in mine.items() if rows}
        if not mine:
            continue
        validators = {r["val_speaker"] for rows in mine.values() for r in rows}
        if len(validators) != 1 or "seen" in validators:
            sys.exit(f"error: the candidates for test speaker {speaker} validated on {sorted(validators)}: "
                     "rerun them with one held-out validation speaker (loso.sh VAL_SPEAKER=auto)")
        val = {rung: statistics.fmean(r["val/acc_best"] for r in rows) for rung, rows in mine.items()}
        best = max(val.values())
        chosen = next(rung for rung in rungs if val.get(rung) == best)
        test = {r["seed"]: r["test/acc"] for r in mine[chosen]}
        choices.append(Choice(speaker, validators.pop(), chosen, val, test))
    return choices


def loso_per_seed(choices: list[Choice]) -> dict[int, float]:
    """Seed -> the mean over the test speakers of the chosen rungs' test accuracy (seeds all have)."""
    if len(choices) < len(SPEAKERS):
        return {}
    seeds = set.intersection(*(set(c.test) for c in choices))
    return {seed: statistics.fmean(c.test[seed] for c in choices) for seed in sorted(seeds)}


def fixed_rung(runs: list[dict], rung: str) -> tuple[dict[int, float], float]:
    """One rung used for every speaker: seed -> LOSO test mean, and its validation score (mean over
    the speakers of the mean over seeds)."""
    rows = [r for r in runs if r["rung"] == rung and r["split"] in SPEAKERS]
    seeds = sorted({r["seed"] for r in rows})
    loso = {}
    for seed in seeds:
        accs = [r["test/acc"] for r in rows if r["seed"] == seed]
        if len(accs) == len(SPEAKERS):
            loso[seed] = statistics.fmean(accs)
    val = statistics.fmean(statistics.fmean(r["val/acc_best"] for r in rows if r["split"] == sp)
                           for sp in SPEAKERS if any(r["split"] == sp for r in rows))
    return loso, val


def worst(per_seed: dict[int, float]) -> str:
    if not per_seed:
        return "-"
    seed = min(per_seed, key=per_seed.get)
    return f"{per_seed[seed]:.1f} (seed {seed})"


def table(runs: list[dict], rungs: list[str]) -> list[str]:
    """The markdown lines of nested.md: the nested choice per speaker, then each candidate alone."""
    choices = choose(runs, rungs)
    lines = ["| test speaker | validation speaker | " + " | ".join(f"val % {r}" for r in rungs)
             + " | chosen | test % (mean ± std over seeds) | worst seed | seeds |",
             "|---|---|" + "---:|" * len(rungs) + "---|---:|---:|---:|"]
    for c in choices:
        lines.append(f"| {c.speaker} | {c.val_speaker} | "
                     + " | ".join(f"{c.val[r]:.1f}" if r in c.val else "-" for r in rungs)
                     + f" | {c.rung} | {pm(c.test.values())} | {worst(c.test)} | {len(c.test)} |")
    nested = loso_per_seed(choices)
    lines.append("| **LOSO, nested** | | " + " | ".join("" for _ in rungs)
                 + f" | | **{pm(nested.values())}** | {worst(nested)} | {len(nested)} |")
    lines += ["", "| rung used for every speaker | validation % (mean of the six) | LOSO test % | worst seed | seeds "
              "| chosen for |", "|---|---:|---:|---:|---:|---|"]
    for rung in rungs:
        loso, val = fixed_rung(runs, rung)
        picked = ", ".join(c.speaker for c in choices if c.rung == rung) or "-"
        lines.append(f"| {rung} | {val:.1f} | {pm(loso.values())} | {worst(loso)} | {len(loso)} | {picked} |")
    return lines


def write(runs: list[dict], rungs: list[str], out: Path) -> list[str]:
    lines = table(runs, rungs)
    (out / "nested.md").write_text("\n".join(lines) + "\n")
    choices = choose(runs, rungs)
    with open(out / "nested.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["test speaker", "validation speaker", "chosen", "seed", "test %",
                         *(f"val % {r}" for r in rungs)])
        for c in choices:
            for seed, test in sorted(c.test.items()):
                writer.writerow([c.speaker, c.val_speaker, c.rung, seed, round(test, 3),
                                 *(round(c.val[r], 3) if r in c.val else "" for r in rungs)])
    return lines


def main(argv: list[str]) -> None:
    path = HERE / "ladder_runs.csv"
    if not path.is_file():
        sys.exit(f"error: no {path}: run experiments/unseen_speakers/ladder.py first")
    runs = read_runs(path)
    rungs = argv or candidates(runs)
    unknown = sorted(set(rungs) - {r["rung"] for r in runs})
    if unknown:
        sys.exit(f"error: no runs of {unknown} in {path}: pick from {sorted({r['rung'] for r in runs})}")
    if not rungs:
        sys.exit(f"error: no rung in {path} validated on a held-out speaker: run loso.sh with VAL_SPEAKER=auto")
    print("\n".join(write(runs, rungs, HERE)))


if __name__ == "__main__":
    main(sys.argv[1:])
