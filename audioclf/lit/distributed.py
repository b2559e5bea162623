"""Multi-process runs: only global rank 0 writes logs and run files.

Under `trainer=ddp` Lightning re-launches the entry point for ranks 1..N-1 into rank 0's
run folder (the launch arguments are the config layer's business: `audioclf/conf/trainer/ddp.yaml`).
The entry point may still have given each of them a log file (`train_ddp_process_<rank>.log`);
`quiet_other_ranks` closes and removes it before anything is logged, so the run folder holds
one set of logs. Under torchrun or SLURM every rank starts the script itself with the same run
folder (the launcher configs do), so its log file is rank 0's `train.log`: closed, never removed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.fabric.utilities.rank_zero import _get_rank

RELAUNCHED_LOG = "_ddp_process_"


def global_rank() -> int:
    """The process's rank from the launcher's environment (RANK, LOCAL_RANK, SLURM_PROCID)."""
    return _get_rank() or 0


def quiet_other_ranks() -> None:
    """On ranks > 0, drop the root logger's file handlers and the empty files they opened."""
    if global_rank() == 0:
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
            path = Path(handler.baseFilename)
            # only the files of Lightning's re-launched ranks (hydra.job.name=<job>_ddp_process_<rank>):
            # an empty train.log here is rank 0's, about to be written
            if RELAUNCHED_LOG in path.name and path.is_file() and path.stat().st_size == 0:
                path.unlink()
