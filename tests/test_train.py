import json

import pytest

from audioclf import train
from tests.conftest import SMALL_SYNTHETIC, compose_config


def test_fast_dev_run_on_synthetic(tmp_path):
    cfg = compose_config(tmp_path, [*SMALL_SYNTHETIC, "debug=fast"])
    metrics = train.run(cfg)
    assert 0.0 <= metrics["test/acc"] <= 1.0
    run = tmp_path / "run"
    assert json.loads((run / "metrics.json").read_text())["params"] == 1_625_608
    assert (run / "test_report.md").read_text().startswith("| label |")
    assert (run / "test_confusion.png").stat().st_size > 0


def test_fast_dev_run_on_speech_commands_fixture(tmp_path, speech_commands_root):
    cfg = compose_config(
        tmp_path, ["data=speech_commands", f"data.root={speech_commands_root}", "debug=fast",
                   "augment=default", "data.batch_size=8"],
    )
    metrics = train.run(cfg)
    assert "test/acc" in metrics
