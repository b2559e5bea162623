"""audioclf.report.results: runs -> arms -> mean ± std, paired differences and Welch's t."""

from __future__ import annotations

import json
import math

import pytest

from audioclf.errors import UserError
from audioclf.report.results import (
    arm_of,
    by_arm,
    figure,
    paired_differences,
    pm,
    read_runs,
    summary_table,
    values,
    welch_t,
)
from tests.report.test_sweep import fake_multirun


def test_arm_is_the_job_name_without_its_seed():
    assert arm_of("kws12_gru-s1/0") == "kws12_gru"
    assert arm_of("crnn-bf16-mixed-s2/0") == "crnn-bf16-mixed"
    assert arm_of("bcresnet_sc_old-s0") == "bcresnet_sc_old"
    assert arm_of("magnitude") == "magnitude"


def test_mean_and_sample_std_printed_to_one_decimal():
    assert pm([89.4, 90.1, 88.3]) == "89.3 ± 0.9"
    assert pm([70.0]) == "70.0"
    assert pm([]) == "-"


def test_paired_differences_keep_only_the_seeds_both_arms_have():
    arm, baseline = {0: 90.0, 1: 85.0, 2: 80.0}, {0: 88.0, 2: 81.0}
    assert paired_differences(arm, baseline) == {0: 2.0, 2: -1.0}


def test_welch_t_of_two_known_samples():
    # means 2 and 5, variances 1 and 1, 3 each: t = -3 / sqrt(2 / 3)
    assert welch_t([1, 2, 3], [4, 5, 6]) == pytest.approx(-3.6742, abs=1e-4)
    assert math.isnan(welch_t([1.0], [2.0, 3.0]))


def test_reads_a_per_run_csv_into_arms_by_seed(tmp_path):
    path = tmp_path / "results_runs.csv"
    path.write_text(
        "job,config,seed,test/acc,epochs\n"
        "kws12_gru-s0/0,model=gru,0,0.86,30\n"
        "kws12_gru-s1/0,model=gru,1,0.88,27\n"
        "kws12_tf_cnn-s0/0,model=tf_cnn,0,0.67,\n"
    )
    runs = by_arm(read_runs(path))
    assert list(runs) == ["kws12_gru", "kws12_tf_cnn"]
    assert values(runs["kws12_gru"], "test/acc", 100) == pytest.approx({0: 86.0, 1: 88.0})
    assert values(runs["kws12_tf_cnn"], "epochs") == {}  # an empty cell is missing, not zero
    assert figure(runs, "kws12_gru", "test/acc") == "87.0 ± 1.4"


def test_reads_a_sweep_folder_grouped_by_overrides_without_the_seed(tmp_path):
    runs = by_arm(read_runs(fake_multirun(tmp_path)))
    assert list(runs) == ["model=tf_cnn", "model=gru"]
    assert list(runs["model=gru"]) == [0, 1, 2]
    assert figure(runs, "model=tf_cnn", "test/acc") == "92.0 ± 2.0"
    table = summary_table(runs, ["test/acc", "epochs"])
    assert "| model=gru | 0 1 2 | 75.0 ± 5.0 | 10.0 ± 0.0 |" in table


def test_reads_study_jobs_named_by_arm_and_seed(tmp_path):
    for seed, acc in enumerate([0.5, 0.7]):
        job = tmp_path / f"posted-s{seed}" / "0"
        job.mkdir(parents=True)
        record = {"overrides": [f"seed={seed}", "model=gru"], "seed": seed, "split": "official", "test_ckpt": "last"}
        (job / "metrics.json").write_text(json.dumps({"test/acc": acc, "job": record}))
    runs = by_arm(read_runs(tmp_path))
    assert list(runs) == ["posted"]
    assert {(run["split"], run["test_ckpt"]) for run in runs["posted"].values()} == {("official", "last")}
    assert figure(runs, "posted", "test/acc") == "60.0 ± 14.1"


def test_a_missing_source_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="neither a per-run CSV nor a folder"):
        read_runs(tmp_path / "nothing.csv")
