"""Per-step learning-rate schedules, built once the run's length is known.

Each factory is called as `factory(optimizer, total_steps=..., steps_per_epoch=...)`
with its own keyword options already bound (a `functools.partial`, e.g. from a
config's `_partial_: true`), and returns a `LambdaLR` stepped after every
optimizer step. Warm-up is linear from lr / warmup_steps up to the base lr.
Lengths are given in epochs, as papers state them, and turned into steps here.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def _warmup_steps(warmup_epochs: float, steps_per_epoch: int, total_steps: int) -> int:
    steps = int(round(warmup_epochs * steps_per_epoch))
    if steps >= total_steps and warmup_epochs > 0:
        raise ValueError(
            f"warm-up of {warmup_epochs} epochs ({steps} steps) is not shorter than the run ({total_steps} steps)"
        )
    return steps


def _cosine(progress: float, floor: float) -> float:
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine(optimizer: Optimizer, *, total_steps: int, steps_per_epoch: int,
                  warmup_epochs: float = 0.0, floor: float = 0.0) -> LambdaLR:
    """Linear warm-up, then cosine from the base lr down to `floor` x base lr at the last step."""
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return _cosine((step - warmup) / max(1, total_steps - warmup), floor)

    return LambdaLR(optimizer, factor)


def warmup_hold_decay(optimizer: Optimizer, *, total_steps: int, steps_per_epoch: int,
                      warmup_ratio: float = 0.05, hold_ratio: float = 0.45, floor: float = 0.0,
                      power: float = 2.0) -> LambdaLR:
    """NeMo's PolynomialHoldDecayAnnealing: warm-up over `warmup_ratio` of the run, hold the
    base lr for `hold_ratio`, then a polynomial decay of `power` down to `floor` x base lr."""
    if not 0 <= warmup_ratio + hold_ratio < 1:
        raise ValueError(f"warmup_ratio + hold_ratio = {warmup_ratio + hold_ratio} must lie in [0, 1)")
    warmup = int(round(warmup_ratio * total_steps))
    hold_end = warmup + int(round(hold_ratio * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if step < hold_end:
            return 1.0
        remaining = 1 - (step - hold_end) / max(1, total_steps - hold_end)
        return floor + (1 - floor) * max(0.0, remaining) ** power

    return LambdaLR(optimizer, factor)


def multistep(optimizer: Optimizer, *, total_steps: int, steps_per_epoch: int,
              milestones: list[float] = (), gamma: float = 0.1, warmup_epochs: float = 0.0) -> LambdaLR:
    """Optional linear warm-up, then the lr times `gamma` at each milestone epoch."""
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)
    steps = sorted(int(round(m * steps_per_epoch)) for m in milestones)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return gamma ** sum(step >= m for m in steps)

    return LambdaLR(optimizer, factor)


def onecycle(optimizer: Optimizer, *, total_steps: int, steps_per_epoch: int,
             pct_start: float = 0.3, div_factor: float = 25.0, final_div_factor: float = 1e4) -> LambdaLR:
    """Smith's one-cycle policy on the lr only: cosine up from lr / div_factor over `pct_start`
    of the run, then cosine down to lr / (div_factor x final_div_factor)."""
    peak = max(1, int(round(pct_start * total_steps)))
    start, end = 1 / div_factor, 1 / (div_factor * final_div_factor)

    def factor(step: int) -> float:
        if step < peak:
            return start + (1 - start) * (1 - math.cos(math.pi * step / peak)) / 2
        return _cosine((step - peak) / max(1, total_steps - peak), end)

    return LambdaLR(optimizer, factor)
