"""Classification reports (like scikit-learn's) and confusion-matrix figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from audioclf.report.tables import markdown_table, write_csv  # noqa: E402

COLUMNS = ("precision", "recall", "f1", "support")


def classification_report(confusion: np.ndarray, class_names: list[str]) -> list[dict]:
    """Rows per class, then accuracy, macro avg and weighted avg; rows[i]["label"] names each."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positives = np.diag(confusion)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=predicted > 0)
    recall = np.divide(true_positives, support, out=np.zeros_like(true_positives), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    rows = [
        {"label": name, "precision": p, "recall": r, "f1": f, "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)
    ]
    total = int(support.sum())
    accuracy = true_positives.sum() / max(total, 1)
    weights = support / max(total, 1)
    rows.append({"label": "accuracy", "precision": None, "recall": None, "f1": accuracy, "support": total})
    rows.append({"label": "macro avg", "precision": precision.mean(), "recall": recall.mean(),
                 "f1": f1.mean(), "support": total})
    rows.append({"label": "weighted avg", "precision": (precision * weights).sum(),
                 "recall": (recall * weights).sum(), "f1": (f1 * weights).sum(), "support": total})
    return rows


def _cell(value) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def to_markdown(rows: list[dict]) -> str:
    return markdown_table(("label", *COLUMNS), ([row["label"], *(_cell(row[c]) for c in COLUMNS)] for row in rows))


def to_text(rows: list[dict]) -> str:
    width = max(12, *(len(row["label"]) for row in rows))
    lines = [" " * width + "".join(f"{c:>11}" for c in COLUMNS)]
    for row in rows:
        if row["label"] == "accuracy":
            lines.append("")
        lines.append(f"{row['label']:>{width}}" + "".join(f"{_cell(row[c]):>11}" for c in COLUMNS))
    return "\n".join(lines)


def confusion_figure(confusion: np.ndarray, class_names: list[str], title: str = "confusion matrix"):
    confusion = np.asarray(confusion)
    size = max(4.0, 0.5 * len(class_names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(confusion, cmap="Blues")
    ticks = range(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=90)
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    if len(class_names) <= 20:
        threshold = confusion.max() / 2
        for (i, j), count in np.ndenumerate(confusion):
            color = "white" if count > threshold else "black"
            axes.text(j, i, str(int(count)), ha="center", va="center", color=color, fontsize=8)
    figure.tight_layout()
    return figure


def write_report(confusion: np.ndarray, class_names: list[str], folder: Path, prefix: str = "test") -> str:
    """Write <prefix>_report.md/.csv and <prefix>_confusion.png into `folder`; return the text table."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = classification_report(confusion, class_names)
    (folder / f"{prefix}_report.md").write_text(to_markdown(rows))
    write_csv(folder / f"{prefix}_report.csv", ("label", *COLUMNS), rows)
    figure = confusion_figure(confusion, class_names, f"{prefix} confusion matrix")
    figure.savefig(folder / f"{prefix}_confusion.png", dpi=100)
    plt.close(figure)
    return to_text(rows)

