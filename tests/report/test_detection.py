import csv
import math

import numpy as np
import pytest

from audioclf.report.detection import (
    det_curve,
    detection_report,
    false_alarms_per_hour,
    frr_at_far,
    keyword_indices,
    roc_auc,
    thresholds_at_far,
    write_detection_report,
)

CLASSES = ["yes", "no", "_silence_", "_unknown_"]
# 200 negatives scoring 0, 0.005, ..., 0.995: at 1 % FAR at most 2 of them may be accepted
NEGATIVE_SCORES = np.arange(200) / 200
POSITIVE_SCORES = np.array([0.999, 0.988, 0.97, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3])


def test_det_points_by_hand():
    scores = np.array([0.9, 0.6, 0.4, 0.8, 0.4, 0.2, 0.1])
    positive = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    curve = det_curve(scores, positive)
    assert curve.thresholds[:-1].tolist() == [0.1, 0.2, 0.4, 0.6, 0.8, 0.9]
    assert curve.thresholds[-1] > 0.9  # accept nothing
    assert curve.far.tolist() == [1, 0.75, 0.5, 0.25, 0.25, 0, 0]
    assert np.allclose(curve.frr, [0, 0, 0, 1 / 3, 2 / 3, 2 / 3, 1])


def test_auc_counts_a_tie_as_half():
    scores = np.array([0.9, 0.6, 0.4, 0.8, 0.4, 0.2, 0.1])
    positive = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    # pairs ranked right: 0.9 beats 4, 0.6 beats 3, 0.4 beats 2 and ties 1 -> 9.5 of 12
    assert roc_auc(det_curve(scores, positive)) == pytest.approx(9.5 / 12)
    assert roc_auc(det_curve(np.full(6, 0.5), np.array([1, 1, 0, 0, 0, 0], dtype=bool))) == pytest.approx(0.5)
    assert roc_auc(det_curve(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0], dtype=bool))) == 1.0


def test_frr_at_far_is_the_lowest_threshold_within_the_target():
    scores = np.concatenate([POSITIVE_SCORES, NEGATIVE_SCORES])
    positive = np.arange(len(scores)) < len(POSITIVE_SCORES)
    curve = det_curve(scores, positive)
    # 1 %: 2 false accepts (0.99, 0.995); the lowest such threshold is the positive at 0.988,
    # which rejects the 8 positives below it
    assert frr_at_far(curve, 0.01) == (pytest.approx(0.8), 0.988)
    # 0.5 %: 1 false accept (0.995): threshold 0.995, only 0.999 accepted
    assert frr_at_far(curve, 0.005) == (pytest.approx(0.9), 0.995)
    # 0 %: above every negative, the positive at 0.999
    assert frr_at_far(curve, 0.0) == (pytest.approx(0.9), 0.999)


def test_no_threshold_reaches_the_target_accepts_nothing():
    curve = det_curve(np.array([1.0, 1.0, 0.5]), np.array([0, 0, 1], dtype=bool))
    frr, threshold = frr_at_far(curve, 0.01)
    assert frr == 1.0 and threshold > 1.0


def known_probabilities() -> tuple[np.ndarray, np.ndarray]:
    """`yes` scores as above; the negatives are `no`, `_silence_` and `_unknown_` clips."""
    yes = np.concatenate([POSITIVE_SCORES, NEGATIVE_SCORES])
    labels = np.concatenate([np.zeros(10, int), np.arange(200) % 3 + 1])
    probabilities = np.empty((len(yes), 4))
    probabilities[:, 0] = yes
    probabilities[:, 1:] = ((1 - yes) / 3)[:, None]
    return probabilities, labels


def test_silence_and_unknown_are_negatives_not_keywords():
    probabilities, labels = known_probabilities()
    assert keyword_indices(CLASSES) == [0, 1]
    rows = detection_report(probabilities, labels, CLASSES)
    assert [row["keyword"] for row in rows] == ["yes", "no", "macro avg"]
    yes = rows[0]
    assert (yes["positives"], yes["negatives"]) == (10, 200)
    assert yes["frr_at_far1"] == pytest.approx(0.8) and yes["threshold_at_far1"] == 0.988
    assert yes["frr_at_far0.5"] == pytest.approx(0.9) and yes["threshold_at_far0.5"] == 0.995
    assert thresholds_at_far(probabilities, labels, CLASSES)["yes"] == 0.988
    # AUC: negatives below each positive 200, 198, 194, 190, 180, 160, 140, 120, 100, 60 (= 1542), and the
    # 8 positives from 0.97 down each tie one negative (+ 8 / 2): 1546 of 10 x 200 pairs
    assert yes["auc"] == pytest.approx(1546 / 2000)
    assert rows[2]["auc"] == pytest.approx((rows[0]["auc"] + rows[1]["auc"]) / 2)


def test_a_keyword_without_positives_is_nan_and_left_out_of_the_mean():
    probabilities, labels = known_probabilities()
    labels = np.where(labels == 1, 2, labels)  # no `no` clips left
    rows = detection_report(probabilities, labels, CLASSES)
    assert math.isnan(rows[1]["auc"]) and math.isnan(rows[1]["frr_at_far1"])
    assert rows[2]["auc"] == rows[0]["auc"]
    assert "no" not in thresholds_at_far(probabilities, labels, CLASSES)


def test_false_alarms_per_hour():
    assert false_alarms_per_hour(3, 1800) == 6.0
    assert false_alarms_per_hour(2, 60) == 120.0
    assert false_alarms_per_hour(0, 10) == 0.0
    with pytest.raises(ValueError, match="some audio"):
        false_alarms_per_hour(1, 0)


def test_write_detection_report(tmp_path):
    probabilities, labels = known_probabilities()
    rows, text = write_detection_report(probabilities, labels, CLASSES, tmp_path, "val")
    assert "yes" in text and "macro avg" in text
    assert (tmp_path / "val_det.png").stat().st_size > 0
    assert "| yes | " in (tmp_path / "val_detection.md").read_text()
    with open(tmp_path / "val_detection.csv") as stream:
        table = list(csv.DictReader(stream))
    assert [row["keyword"] for row in table] == ["yes", "no", "macro avg"]
    assert float(table[0]["threshold_at_far1"]) == 0.988 and table[0]["negatives"] == "200"
    assert table[2]["positives"] == ""
