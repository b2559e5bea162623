import numpy as np
import pytest

from audioclf.report.classification import classification_report, to_markdown, write_report


def test_report_matches_hand_computed_values():
    # rows: true class, columns: predicted class
    confusion = np.array([[3, 1], [2, 4]])
    rows = {row["label"]: row for row in classification_report(confusion, ["a", "b"])}
    assert rows["a"]["precision"] == pytest.approx(3 / 5)
    assert rows["a"]["recall"] == pytest.approx(3 / 4)
    assert rows["b"]["f1"] == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))
    assert rows["accuracy"]["f1"] == pytest.approx(0.7) and rows["accuracy"]["support"] == 10
    assert rows["macro avg"]["recall"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert rows["weighted avg"]["precision"] == pytest.approx(0.4 * 3 / 5 + 0.6 * 4 / 5)


def test_a_class_never_predicted_has_zero_precision_not_nan():
    rows = classification_report(np.array([[2, 0], [1, 0]]), ["a", "b"])
    assert rows[1]["precision"] == 0.0 and rows[1]["f1"] == 0.0
    assert "nan" not in to_markdown(rows)


def test_write_report_creates_all_files(tmp_path):
    text = write_report(np.eye(3, dtype=int) * 5, ["x", "y", "z"], tmp_path, "test")
    assert "accuracy" in text
    for name in ("test_report.md", "test_report.csv", "test_confusion.png"):
        assert (tmp_path / name).stat().st_size > 0
