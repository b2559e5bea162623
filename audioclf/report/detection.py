"""Keyword-detection metrics from clip softmax outputs: DET curves, ROC AUC, FRR at fixed FAR.

Each keyword is scored one-vs-rest on its softmax probability: clips of that keyword are
positives, every other clip (other keywords, `_silence_`, `_unknown_`) a negative. A clip is
accepted at threshold t when its probability for the keyword is >= t. FAR (false-accept rate) =
accepted negatives / negatives; FRR (false-reject rate) = rejected positives / positives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from audioclf.report.tables import blank_nan, markdown_table, write_csv  # noqa: E402

NON_KEYWORDS = ("_silence_", "_unknown_", "_background_noise_")
FAR_TARGETS = (0.01, 0.005)
COLUMNS = ("auc", "frr_at_far1", "threshold_at_far1", "frr_at_far0.5", "threshold_at_far0.5",
           "positives", "negatives")


@dataclass
class DetCurve:
    """One point per threshold, thresholds ascending (so FAR and FRR run from (1, 0) towards (0, 1))."""

    thresholds: np.ndarray
    far: np.ndarray
    frr: np.ndarray


def keyword_indices(class_names: list[str]) -> list[int]:
    return [i for i, name in enumerate(class_names) if name not in NON_KEYWORDS]


def det_curve(scores: np.ndarray, positive: np.ndarray) -> DetCurve:
    """FAR and FRR at every distinct score as threshold, plus one threshold above the highest
    score (accept nothing: FAR 0, FRR 1), so a FAR of 0 is always on the curve."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    distinct = np.unique(scores)
    thresholds = np.append(distinct, np.nextafter(distinct[-1], np.inf)) if len(distinct) else np.array([1.0])
    negatives_sorted, positives_sorted = np.sort(scores[~positive]), np.sort(scores[positive])
    accepted_negatives = len(negatives_sorted) - np.searchsorted(negatives_sorted, thresholds, side="left")
    rejected_positives = np.searchsorted(positives_sorted, thresholds, side="left")
    far = accepted_negatives / len(negatives_sorted) if len(negatives_sorted) else np.full(len(thresholds), np.nan)
    frr = rejected_positives / len(positives_sorted) if len(positives_sorted) else np.full(len(thresholds), np.nan)
    return DetCurve(thresholds, far, frr)


def roc_auc(curve: DetCurve) -> float:
    """Area under ROC (TPR = 1 - FRR against FAR) by the trapezoid rule over the distinct
    thresholds, which counts a tied positive/negative pair as half ranked right (Mann-Whitney U)."""
    if np.isnan(curve.far).any() or np.isnan(curve.frr).any():
        return math.nan
    far, tpr = curve.far[::-1], 1 - curve.frr[::-1]  # from (0, 0) to (1, 1)
    return float(np.sum(np.diff(far) * (tpr[1:] + tpr[:-1]) / 2))


def frr_at_far(curve: DetCurve, target: float) -> tuple[float, float]:
    """(FRR, threshold) at the lowest threshold whose FAR <= target: the most permissive
    operating point that keeps false accepts within the target. NaN without negatives or positives."""
    if np.isnan(curve.far).any() or np.isnan(curve.frr).any():
        return math.nan, math.nan
    first = int(np.argmax(curve.far <= target))  # FAR falls as the threshold rises; the last point has FAR 0
    return float(curve.frr[first]), float(curve.thresholds[first])


def false_alarms_per_hour(count: int, seconds: float) -> float:
    if seconds <= 0:
        raise ValueError(f"false alarms per hour need some audio scanned, got {seconds} s")
    return count / (seconds / 3600)


def keyword_curves(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict[str, DetCurve]:
    """One-vs-rest DET curve per keyword from (N, C) probabilities and (N,) integer labels."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    return {class_names[k]: det_curve(probabilities[:, k], labels == k) for k in keyword_indices(class_names)}


def thresholds_at_far(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str],
                      target: float = FAR_TARGETS[0]) -> dict[str, float]:
    """keyword -> the threshold at `target` FAR (keywords without positives or negatives left out)."""
    chosen = {}
    for keyword, curve in keyword_curves(probabilities, labels, class_names).items():
        threshold = frr_at_far(curve, target)[1]
        if not math.isnan(threshold):
            chosen[keyword] = threshold
    return chosen


def detection_report(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str]) -> list[dict]:
    """Rows per keyword (COLUMNS), then a `macro avg` row of AUC and FRRs over the keywords that have them."""
    labels = np.asarray(labels)
    rows = []
    for keyword, curve in keyword_curves(probabilities, labels, class_names).items():
        positives = int(np.sum(labels == class_names.index(keyword)))
        row = {"keyword": keyword, "auc": roc_auc(curve), "positives": positives,
               "negatives": len(labels) - positives}
        for target in FAR_TARGETS:
            row[f"frr_at_far{target * 100:g}"], row[f"threshold_at_far{target * 100:g}"] = frr_at_far(curve, target)
        rows.append(row)
    mean = {"keyword": "macro avg", "positives": None, "negatives": None}
    for column in ("auc", *(f"frr_at_far{t * 100:g}" for t in FAR_TARGETS)):
        values = [row[column] for row in rows if not math.isnan(row[column])]
        mean[column] = float(np.mean(values)) if values else math.nan
    rows.append({column: mean.get(column) for column in ("keyword", *COLUMNS)})
    return rows


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return "n/a" if math.isnan(value) else f"{value:.4f}"


HEADERS = ("keyword", "AUC", "FRR@FAR 1%", "threshold", "FRR@FAR 0.5%", "threshold", "positives", "negatives")


def to_markdown(rows: list[dict]) -> str:
    return markdown_table(HEADERS, ([row["keyword"], *(_cell(row[c]) for c in COLUMNS)] for row in rows))


def to_text(rows: list[dict]) -> str:
    width = max(12, *(len(row["keyword"]) for row in rows))
    lines = [f"{'keyword':>{width}}" + "".join(f"{h:>14}" for h in HEADERS[1:])]
    for row in rows:
        lines.append((f"{row['keyword']:>{width}}" + "".join(f"{_cell(row[c]):>14}" for c in COLUMNS)).rstrip())
    return "\n".join(lines)


def det_figure(curves: dict[str, DetCurve], title: str = "DET curves"):
    """FRR against FAR on log axes; rates of 0 are drawn at the axis floor (half of 1 / the largest count)."""
    figure, axes = plt.subplots(figsize=(7.5, 5))
    drawn = {k: c for k, c in curves.items() if not (np.isnan(c.far).any() or np.isnan(c.frr).any())}
    smallest = [min(r[r > 0], default=1.0) for c in drawn.values() for r in (c.far, c.frr)]
    floor = min(smallest, default=1e-3) / 2
    for keyword, curve in drawn.items():
        # consecutive thresholds cross one clip (or a tie): the points themselves make the staircase
        axes.plot(np.maximum(curve.far, floor), np.maximum(curve.frr, floor), label=keyword)
    for target in FAR_TARGETS:
        axes.axvline(target, color="grey", linestyle=":", linewidth=1)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(floor, 1)
    axes.set_ylim(floor, 1)
    axes.set_xlabel("false-accept rate (FAR)")
    axes.set_ylabel("false-reject rate (FRR)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    if drawn:
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), ncol=2 if len(drawn) > 20 else 1)
    figure.tight_layout()
    return figure


def write_detection_report(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str], folder: Path,
                           prefix: str = "test") -> tuple[list[dict], str]:
    """Write <prefix>_detection.md/.csv and <prefix>_det.png into `folder`; return the rows and the text table."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = detection_report(probabilities, labels, class_names)
    (folder / f"{prefix}_detection.md").write_text(to_markdown(rows))
    write_csv(folder / f"{prefix}_detection.csv", ("keyword", *COLUMNS), map(blank_nan, rows))
    figure = det_figure(keyword_curves(probabilities, labels, class_names), f"{prefix} DET curves")
    figure.savefig(folder / f"{prefix}_det.png", dpi=100)
    plt.close(figure)
    return rows, to_text(rows)
