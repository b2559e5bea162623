"""Official split vs leave-one-speaker-out, per model: summary.md/.csv and summary.png.

    python experiments/unseen_speakers/summarize.py experiments/unseen_speakers/results_runs.csv
"""

import csv
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

runs = list(csv.DictReader(open(sys.argv[1])))
out = Path(sys.argv[1]).parent
models = list(dict.fromkeys(r["model"] for r in runs))
rows, folds = [], {}
for model in models:
    mine = [r for r in runs if r["model"] == model]
    official = [float(r["test/acc"]) for r in mine if r["data.split"] == "official"]
    held = {r["data.split"].split("=", 1)[1]: float(r["test/acc"])
            for r in mine if r["data.split"].startswith("speaker=")}
    folds[model] = held
    loso = list(held.values())
    rows.append({
        "model": model,
        "official acc %": 100 * statistics.fmean(official),
        "LOSO mean acc %": 100 * statistics.fmean(loso),
        "LOSO std over speakers": 100 * statistics.stdev(loso),
        "LOSO worst speaker": min(held, key=held.get),
        "LOSO worst acc %": 100 * min(loso),
        "gap (official - LOSO) pts": 100 * (statistics.fmean(official) - statistics.fmean(loso)),
    })

with open(out / "summary.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
lines = ["| " + " | ".join(rows[0]) + " |", "|---|" + "---:|" * (len(rows[0]) - 1)]
for row in rows:
    lines.append("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v)
                                   for v in row.values()) + " |")
speakers = sorted({s for held in folds.values() for s in held})
lines += ["", "Per held-out speaker, test acc %:", "",
          "| model | " + " | ".join(speakers) + " |", "|---|" + "---:|" * len(speakers)]
for model in models:
    lines.append(f"| {model} | " + " | ".join(f"{100 * folds[model].get(s, float('nan')):.1f}"
                                              for s in speakers) + " |")
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))

figure, axes = plt.subplots(figsize=(8, 4))
width = 0.8 / len(models)
labels = ["official", *speakers]
for m, model in enumerate(models):
    official = next(r["official acc %"] for r in rows if r["model"] == model)
    values = [official, *(100 * folds[model].get(s, float("nan")) for s in speakers)]
    axes.bar([i + m * width for i in range(len(labels))], values, width, label=model)
axes.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(labels))], labels)
axes.set_ylabel("test accuracy (%)")
axes.set_ylim(0, 105)
axes.set_title("Official split vs each speaker held out of training")
axes.legend()
axes.grid(axis="y", alpha=0.3)
figure.tight_layout()
figure.savefig(out / "summary.png", dpi=110)
print(f"wrote {out}/summary.md, summary.csv, summary.png")
