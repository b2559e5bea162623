"""experiments/unseen_speakers/ladder.py: seeds run in a later checkout extend a rung's committed runs."""

from __future__ import annotations

import json

from tests.report.test_claims import load_script

ladder = load_script("unseen_speakers/ladder.py")


def write_run(folder, speaker, seed, test_acc):
    job = folder / f"{speaker}-s{seed}"
    job.mkdir(parents=True)
    (job / "metrics.json").write_text(json.dumps({
        "job": {"seed": seed, "split": f"speaker={speaker}", "overrides": ["data.val_speaker=auto"]},
        "test/acc": test_acc, "val/acc_best": 0.9, "train_seconds": 10.0, "epochs": 20}))


def test_new_seeds_extend_the_committed_runs_of_a_rung(tmp_path):
    rung = tmp_path / "16_x"
    (rung).mkdir()
    (rung / "rung.txt").write_text("what\ntrainer.max_epochs=20\n")
    recorded = [{"rung": "16_x", "job": f"{sp}-s0", "split": sp, "seed": "0", "val_speaker": "x",
                 "val/acc_best": "0.8", "test/acc": "0.50", "epochs": "20", "train_seconds": "5.0"}
                for sp in ladder.SPEAKERS]
    recorded.append({**recorded[0], "rung": "15_other"})
    for speaker in ladder.SPEAKERS:
        write_run(rung, speaker, 1, 0.70)
    write_run(rung, "george", 0, 0.60)  # rerun: replaces the committed george-s0

    runs = ladder.merged_runs(recorded, [rung])
    assert len(runs) == 6 + 6 + 1 and sum(r["rung"] == "15_other" for r in runs) == 1
    george_s0 = [r for r in runs if r["rung"] == "16_x" and r["job"] == "george-s0"]
    assert len(george_s0) == 1 and float(george_s0[0]["test/acc"]) == 0.60

    earlier = [r for r in recorded if r["rung"] == "16_x" and r["job"] != "george-s0"]
    row = ladder.rung_row(rung, earlier)
    assert row["seeds"] == 2 and row["jobs"] == "12"
    assert abs(row["LOSO mean %"] - (50 * 5 / 6 + 60 / 6 + 70) / 2) < 1e-9
