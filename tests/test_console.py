"""The console a user reads: each line once, in one format, no warning they cannot act on."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections import Counter

from audioclf.console import ConsoleFormatter, reconcile
from tests.conftest import ROOT


def cli(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "audioclf", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def printed_lines(output: str) -> list[str]:
    """Lines as a terminal shows them (a carriage return redraws one); table rules and blank lines left out."""
    return [line.strip() for line in re.split(r"[\r\n]", output) if re.search(r"\w", line)]


def test_a_demo_run_prints_each_line_once_and_no_warning(tmp_path):
    """`make demo` in small: train (2 epochs), then eval of its last checkpoint."""
    run, cache = tmp_path / "demo", f"paths.cache_dir={tmp_path / 'cache'}"
    smaller = ["data.train_per_class=40", "data.val_per_class=4", "data.test_per_class=4"]  # still 10 batches
    output = cli("train", "experiment=demo", "test=false", "trainer.max_epochs=2", *smaller, f"hydra.run.dir={run}",
                 cache)
    output += cli("eval", f"ckpt_path={run}/checkpoints/last.ckpt", f"hydra.run.dir={run}/eval", cache)
    lines = printed_lines(output)
    assert {line: n for line, n in Counter(lines).items() if n > 1} == {}
    assert not [line for line in lines if "warning" in line.lower() or "Tip:" in line]
    assert sum(line.startswith("epoch ") for line in lines) == 2  # one line per epoch, no progress bar redraws
    assert "test report for" in output and len(lines) < 70


def test_lightning_lines_reach_the_console_once(capsys):
    import lightning  # noqa: F401 - adds its own console handler

    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter())
    saved = root.handlers[:], root.level
    root.handlers, root.level = [handler], logging.INFO
    try:
        reconcile()
        logging.getLogger("lightning.pytorch.utilities.rank_zero").info("Seed set to 1")
        logging.getLogger("lightning.pytorch.utilities.rank_zero").info("💡 Tip: install something")
        logging.getLogger("audioclf.x").warning("mind the gap")
    finally:
        root.handlers, root.level = saved
    assert capsys.readouterr().err.splitlines() == ["Seed set to 1", "warning: mind the gap"]
