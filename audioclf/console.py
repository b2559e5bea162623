"""One console: each message once, in one format, and no noise the user cannot act on.

Hydra configures the root logger (console + the run's log file, `conf/hydra/default.yaml`);
Lightning adds its own console handler to the `lightning` logger at import, so every
Lightning line printed twice in two formats. `reconcile()` removes Lightning's handler
(its records reach the root's), filters the lines and warnings below, and is called once
per task, at the config edge (cli.py).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

# Lightning's own lines a user can do nothing about.
NOISE_LINES = (
    "💡 Tip:",  # an advertisement for litlogger, on every Trainer
    "Loading `train_dataloader` to estimate number of stepping batches",  # our per-step schedules ask for it
)

# Warnings from the libraries' own code, not from the user's settings (regexes from the message's start).
NOISE_WARNINGS = (
    # Lightning's _pytree against torch 2.11's deprecation: raised by Lightning itself on every fit and test
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # the summary's size estimate counts 32-bit weights under bf16-mixed; its parameter counts are right
    r"Precision .* is not supported by the model summary",
)


class ConsoleFormatter(logging.Formatter):
    """The message alone for info; `warning: ...`/`error: ...` above it, as the one-line user errors read."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno <= logging.INFO else f"{record.levelname.lower()}: {message}"


class DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith(NOISE_LINES)


def reconcile() -> None:
    """Route Lightning's records through the root logger's handlers only, and drop the known noise."""
    import lightning  # noqa: F401 - its import adds the handler removed here

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    root = logging.getLogger()
    if not root.handlers:  # no Hydra app configured logging (a task called from Python): a plain console
        handler = logging.StreamHandler()
        handler.setFormatter(ConsoleFormatter())
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    for handler in root.handlers:
        if not any(isinstance(f, DropNoise) for f in handler.filters):
            handler.addFilter(DropNoise())  # on the handler: a logger's filter misses its children's records
    for pattern in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


@contextlib.contextmanager
def lightning_setup_lines_hidden() -> Iterator[None]:
    """Lightning's info lines about the machine (GPU/TPU available, AMP) hidden while a Trainer that
    only scores is built (eval: its report names the precision; train printed the rest)."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
