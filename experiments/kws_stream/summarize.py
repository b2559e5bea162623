"""The kws_stream tables from the committed per-run results: python experiments/kws_stream/summarize.py

Reads runs.csv and curves.csv (written by evaluate.py) beside this script and writes results.md:
test FRR and false alarms per hour per training arm and decision, mean +- std over seeds, every
seed's figure, the validation-stream FRR a recipe is chosen on, the clip accuracy, and the FRR the
test curves give at 1, 2 and 8 FA/h.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from audioclf.report.results import pm
from audioclf.report.tables import markdown_table

HERE = Path(__file__).resolve().parent
ARMS = {"paper": "bcresnet paper recipe", "stream": "+ stream windows only",
        "noise": "+ SNR noise and gain (experiment=kws_stream)", "kws_stream": "+ SNR noise, gain and stream windows",
        "small": "+ SNR noise, gain and stream windows, width 1.5",
        "causal": "bcresnet paper recipe, causal (model.causal=true)",
        "noise_causal": "+ SNR noise and gain, causal (model.causal=true)",
        "shipped": "experiment=kws_stream as it shipped (causal, 30 epochs)",
        "long_paper": "bcresnet paper recipe, 100 epochs (H200)",
        "long_causal": "bcresnet paper recipe, causal, 100 epochs (H200)",
        "long_noise": "+ SNR noise and gain, 100 epochs (H200)",
        "long": "+ SNR noise and gain, causal, 100 epochs (H200)",
        "long_windows": "+ SNR noise, gain and stream windows, causal, 100 epochs (H200)",
        "wide": "+ SNR noise and gain, causal, width 6, 100 epochs (H200)",
        "junctions": "width 6 + junction windows (stream_junction_prob 0.2), 100 epochs (H200)",
        "wide8": "+ SNR noise and gain, causal, width 8, 100 epochs (H200)",
        "maxpool": "width 6 + max-pooling loss (5 windows over 1.4 s), 70 epochs (H200)"}
DECISIONS = {
    "clip": "per-keyword clip thresholds (1 % FAR on val clips), smooth 3",
    "calibrated": "one threshold calibrated on val streams for 2 FA/h, smooth 3",
    "calibrated+post": "threshold + smooth/refractory/min windows calibrated on val streams",
    "calibrated_3h": "calibrated as above on 3 h of val streams (stream_calibration.min_hours=3), smooth 3",
    "calibrated_3h+post": "threshold + post-processing calibrated on 3 h of val streams",
}


def per_seed(values: list[float], digits: int) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values)


def read(name: str) -> list[dict]:
    with (HERE / name).open() as rows:
        return list(csv.DictReader(rows))


def decision_table(rows: list[dict]) -> str:
    groups = defaultdict(list)
    for row in sorted(rows, key=lambda r: int(r["seed"])):
        groups[(row["arm"], row["decision"])].append(row)
    cells = []
    for (arm, decision), members in sorted(groups.items(), key=lambda kv: (list(ARMS).index(kv[0][0]),
                                                                            list(DECISIONS).index(kv[0][1]))):
        frr = [float(r["test_frr"]) for r in members]
        fah = [float(r["test_fa_per_hour"]) for r in members]
        cells.append((ARMS[arm], decision, str(len(members)), pm(frr, 3), per_seed(frr, 3),
                      pm(fah, 1), per_seed(fah, 1)))
    header = ("training", "decision", "seeds", "test FRR", "per seed", "test FA/h", "per seed")
    return markdown_table(header, cells, align="llrrrrr")


def validation_table(rows: list[dict]) -> str:
    """What the recipe is chosen on: each arm's calibrated point on the validation streams."""
    cells = []
    for arm, name in ARMS.items():
        members = [r for r in rows if r["arm"] == arm and r["decision"] == "calibrated+post" and r.get("val_frr")]
        frr = [float(r["val_frr"]) for r in sorted(members, key=lambda r: int(r["seed"]))]
        fah = [float(r["val_fa_per_hour"]) for r in sorted(members, key=lambda r: int(r["seed"]))]
        cells.append((name, str(len(members)), pm(frr, 3), per_seed(frr, 3), pm(fah, 1)))
    header = ("training", "seeds", "val FRR", "per seed", "val FA/h")
    return markdown_table(header, cells, align="lrrrr")


def clip_table(rows: list[dict]) -> str:
    cells = []
    for arm, name in ARMS.items():
        members = {r["seed"]: r for r in rows if r["arm"] == arm}.values()
        acc = [100 * float(r["clip_test_acc"]) for r in members]
        minutes = [float(r["train_seconds"]) / 60 for r in members]
        rtf = [float(r["realtime_factor"]) for r in members]
        epochs = sorted({r["epochs"] for r in members})
        cells.append((name, ",".join(epochs), pm(acc, 1), per_seed(acc, 1), pm(minutes, 1),
                      pm(rtf, 1)))
    header = ("training", "epochs", "clip test acc %", "per seed", "train min", "stream scoring x real time")
    return markdown_table(header, cells, align="llrrrr")


def curve_table(rows: list[dict]) -> str:
    cells = []
    for arm, name in ARMS.items():
        budgets = sorted({float(r["budget"]) for r in rows})
        line = [name]
        for budget in budgets:
            frr = [float(r["frr"]) for r in rows if r["arm"] == arm and float(r["budget"]) == budget]
            line.append(pm(frr, 3))
        cells.append(line)
    header = ("training", *(f"FRR at {b:g} FA/h" for b in sorted({float(r['budget']) for r in rows})))
    return markdown_table(header, cells)


def calibration_check_table(rows: list[dict]) -> str:
    """calibration_check.py's validation-only check: each calibration's threshold on fresh validation audio."""
    cells = []
    for name in dict.fromkeys(r["calibration"] for r in rows):
        members = sorted((r for r in rows if r["calibration"] == name), key=lambda r: r["job"])
        fah = [float(r["check_fa_per_hour"]) for r in members]
        frr = [float(r["check_frr"]) for r in members]
        cells.append((name, str(len(members)), f"{sum(fah) / len(fah):.2f}", f"{min(fah):.1f}-{max(fah):.1f}",
                      f"{sum(frr) / len(frr):.3f}", " / ".join(f"{r['job']} {float(r['check_fa_per_hour']):.1f}"
                                                             for r in members)))
    header = ("calibration", "checkpoints", "check FA/h, mean", "range", "check FRR, mean", "per checkpoint FA/h")
    return markdown_table(header, cells, align="lrrrrl")


def main() -> None:
    runs, curves = read("runs.csv"), read("curves.csv")
    hours = sorted({r["test_hours"] for r in runs})
    text = "\n".join([
        "# kws_stream results (generated by summarize.py from runs.csv and curves.csv)", "",
        f"Test streams: {', '.join(hours)} h of audio. Decisions:", "",
        *(f"- `{key}`: {value}" for key, value in DECISIONS.items()), "",
        decision_table(runs),
        "On the validation streams the calibration chose on (calibrated+post, the budget 2 FA/h; arms",
        "scored before this column existed have no figure until `evaluate.py --validation ARM` adds it):", "",
        validation_table(runs),
        "Clip accuracy on the sample's kws12 test clips, training time and stream scoring speed:", "",
        clip_table(runs),
        "The test curves read at each budget (thresholds picked on the test streams themselves: the curve's",
        "shape, not a result; the calibrated rows above are the honest operating points):", "",
        curve_table(curves),
        "Thresholds calibrated for 2 FA/h (smooth 3) on each calibration's validation streams, scored on other",
        "validation streams of every word (seed 1, 1 h; calibration_check.py, calibration_check.csv):", "",
        calibration_check_table(read("calibration_check.csv")),
    ])
    (HERE / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
