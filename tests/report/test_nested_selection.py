"""experiments/unseen_speakers/nested.py: a rung is chosen per test speaker on its validation speaker only."""

from __future__ import annotations

import csv

import pytest

from tests.report.test_claims import load_script

nested = load_script("unseen_speakers/nested.py")
SPEAKERS = nested.SPEAKERS


def run(rung, speaker, seed, val, test, val_speaker="auto"):
    if val_speaker == "auto":
        val_speaker = SPEAKERS[(SPEAKERS.index(speaker) + 1) % len(SPEAKERS)]
    return {"rung": rung, "job": f"{speaker}-s{seed}", "split": speaker, "seed": seed, "val_speaker": val_speaker,
            "val/acc_best": val, "test/acc": test, "epochs": 20, "train_seconds": 1.0}


def synthetic() -> list[dict]:
    """Rung a validates better on george (and tests worse there), b everywhere else; b's test is the
    higher for every speaker, so a choice made on test would pick b for george too."""
    rows = []
    for seed, wobble in ((0, 0.0), (1, 0.02)):
        for speaker in SPEAKERS:
            a_val, b_val = (0.90, 0.80) if speaker == "george" else (0.80, 0.85)
            rows.append(run("a", speaker, seed, a_val + wobble, 0.70 + wobble))
            rows.append(run("b", speaker, seed, b_val - wobble, 0.90 - wobble))
        rows.append(run("b", "official", seed, "", 0.99, "seen"))
    rows += [run("old", speaker, 0, 0.99, 0.95, "seen") for speaker in SPEAKERS]  # validated on seen speakers
    return rows


@pytest.fixture
def runs(tmp_path):
    path = tmp_path / "ladder_runs.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(synthetic()[0]))
        writer.writeheader()
        writer.writerows(synthetic())
    return nested.read_runs(path)


def test_each_test_speaker_gets_the_rung_its_validation_speaker_prefers_and_that_rungs_test_score(runs):
    assert nested.candidates(runs) == ["a", "b"]  # "old" validated on the training speakers: no candidate
    choices = nested.choose(runs, ["a", "b"])
    assert [(c.speaker, c.val_speaker, c.rung) for c in choices] == [
        ("george", "jackson", "a"), ("jackson", "lucas", "b"), ("lucas", "nicolas", "b"),
        ("nicolas", "theo", "b"), ("theo", "yweweler", "b"), ("yweweler", "george", "b")]
    assert choices[0].test == pytest.approx({0: 70.0, 1: 72.0}) and choices[0].val == pytest.approx({"a": 91, "b": 79})
    per_seed = nested.loso_per_seed(choices)
    assert per_seed == pytest.approx({0: (70 + 5 * 90) / 6, 1: (72 + 5 * 88) / 6})
    assert nested.worst(per_seed) == "85.3 (seed 1)"


def test_the_table_reports_the_nested_figure_and_each_candidate_alone(runs):
    lines = nested.table(runs, ["a", "b"])
    assert "| george | jackson | 91.0 | 79.0 | a | 71.0 ± 1.4 | 70.0 (seed 0) | 2 |" in lines
    assert "| **LOSO, nested** | |  |  | | **86.0 ± 0.9** | 85.3 (seed 1) | 2 |" in lines
    assert "| b | 83.2 | 89.0 ± 1.4 | 88.0 (seed 1) | 2 | jackson, lucas, nicolas, theo, yweweler |" in lines


def test_candidates_that_validated_on_different_speakers_are_refused(runs):
    for row in runs:
        if row["rung"] == "b" and row["split"] == "theo":
            row["val_speaker"] = "george"
    with pytest.raises(SystemExit, match="test speaker theo validated on"):
        nested.choose(runs, ["a", "b"])
