"""The valid range of every numeric setting, declared once and checked at the config edge.

`check_ranges(cfg)` runs before any data is read or any torch object is built, so a zero,
negative or fractional size never reaches torch: the one-line error names the key, the value
and the range. A key is matched by the first pattern (fnmatch, on the dotted key) that fits;
a list of numbers is checked element by element; null always passes (it means "derived").
Keys no pattern fits are left to the library, whose ValueError the config edge names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from audioclf.errors import UserError


@dataclass(frozen=True)
class Range:
    """A whole number (`whole`) or any finite number, within [low, high]; `open_low`/`open_high` exclude the bound."""

    whole: bool = False
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def admits(self, value: Any) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            return False
        if self.whole and not float(value).is_integer():
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def __str__(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        low, high = _plain(self.low), _plain(self.high)
        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"
        if self.low is not None:
            return f"{kind} {'>' if self.open_low else '>='} {low}"
        return kind


def _plain(bound: float | None) -> str:
    return str(int(bound)) if bound is not None and float(bound).is_integer() else str(bound)


COUNT = Range(whole=True, low=1)  # sizes, lengths, counts
COUNT_OR_NONE = Range(whole=True, low=0)
POSITIVE = Range(low=0, open_low=True)
NON_NEGATIVE = Range(low=0)
SHARE = Range(low=0, high=1)
DROPOUT = Range(low=0, high=1, open_high=True)
SEED = Range(whole=True, low=0, high=2**32 - 1)  # numpy's seed range; Lightning swaps others for a random one

SCHEMA: tuple[tuple[str, Range], ...] = (
    ("seed", SEED),
    ("init_lr_scale", POSITIVE),
    ("*split_seed", SEED),
    ("loss.label_smoothing", DROPOUT),
    # data: the clip format, the batches and the synthetic set's size
    ("data.sample_rate", COUNT),
    ("data.clip_seconds", POSITIVE),
    ("data.*batch_size", COUNT),
    ("data.num_workers", COUNT_OR_NONE),
    ("data.num_classes", Range(whole=True, low=2)),
    ("data.*_per_class", COUNT),
    ("data.*_ratio", Range(low=0, high=1, open_high=True)),
    ("data.*_percentage", Range(low=0, high=100)),
    ("data.unknown_max", COUNT_OR_NONE),
    # features: frames in milliseconds, bins and bands
    ("features.sample_rate", COUNT),
    ("features.win_ms", POSITIVE),
    ("features.hop_ms", POSITIVE),
    ("features.n_fft", COUNT),
    ("features.n_mels", COUNT),
    ("features.n_mfcc", COUNT),
    ("features.phases", COUNT),
    ("features.pad_to", COUNT),
    ("features.pool", COUNT),
    ("features.sigma_scale", POSITIVE),
    ("features.f_min", NON_NEGATIVE),
    ("features.f_max", POSITIVE),
    # model: every numeric backbone setting but dropout and width is a whole size or count
    ("model.*dropout*", DROPOUT),
    ("model.width", POSITIVE),
    ("model.*", COUNT),
    # optimizer, schedule, trainer, callbacks
    ("optim.lr", POSITIVE),
    ("optim.weight_decay", NON_NEGATIVE),
    ("optim.momentum", Range(low=0, high=1, open_high=True)),
    ("optim.betas", Range(low=0, high=1, open_high=True)),
    ("optim.eps", POSITIVE),
    ("scheduler.warmup_epochs", NON_NEGATIVE),
    ("scheduler.*_ratio", SHARE),
    ("scheduler.floor", SHARE),
    ("scheduler.milestones", COUNT),
    ("scheduler.gamma", POSITIVE),
    ("scheduler.power", POSITIVE),
    ("scheduler.pct_start", Range(low=0, high=1, open_low=True, open_high=True)),
    ("scheduler.*div_factor", POSITIVE),
    ("trainer.log_every_n_steps", COUNT),
    ("trainer.check_val_every_n_epoch", COUNT),
    ("trainer.accumulate_grad_batches", COUNT),
    ("trainer.gradient_clip_val", NON_NEGATIVE),
    ("callbacks.*.patience", COUNT_OR_NONE),
    ("callbacks.*.decay", DROPOUT),
    ("callbacks.*.num_clips", COUNT_OR_NONE),
    ("callbacks.*.epochs", COUNT),
    ("callbacks.*_every_n_*", COUNT_OR_NONE),
    ("callbacks.*.errors_k", COUNT_OR_NONE),
    # augmentation: probabilities, shares, lengths and mask sizes
    ("augment.*_prob", SHARE),
    ("augment.shift_ms", NON_NEGATIVE),
    ("augment.speed", POSITIVE),
    ("augment.speed_steps", COUNT),
    ("augment.noise_volume", NON_NEGATIVE),
    ("augment.silence_volume", NON_NEGATIVE),
    ("augment.vtlp", POSITIVE),
    ("augment.mixup_alpha", NON_NEGATIVE),
    ("augment.stream_cut_visible", Range(low=0, high=1, open_high=True)),
    ("augment.max_pool_windows", COUNT_OR_NONE),
    ("augment.max_pool_span_ms", NON_NEGATIVE),
    ("augment.spec_augment.*", COUNT_OR_NONE),
    # predict (eval's and predict's stream settings have their own checks, with examples: check_stream_settings)
    ("batch_size", COUNT),
    ("top_k", COUNT),
)


def range_of(key: str) -> Range | None:
    return next((limits for pattern, limits in SCHEMA if fnmatchcase(key, pattern)), None)


def check_ranges(cfg: DictConfig) -> None:
    """A one-line UserError for the first numeric setting outside its declared range."""
    for key, value in numeric_settings(cfg):
        limits = range_of(key)
        if limits is None:
            continue
        values = value if isinstance(value, list) else [value]
        if not all(limits.admits(item) for item in values):
            shown = str(value).replace(" ", "")
            each = "a list of numbers, each " if isinstance(value, list) else ""
            raise UserError(f"{key}={shown} is out of range: give {each}{limits}")


def numeric_settings(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) for every number and list of numbers under `node`, resolved; interpolations
    that do not resolve here (`${hydra:...}`) and non-numeric values are skipped."""
    found = []
    for key in node:
        name = f"{prefix}{key}"
        if name == "hydra" or OmegaConf.is_missing(node, key):
            continue
        try:
            value = node[key]
        except Exception:  # noqa: BLE001 - an interpolation that needs a running Hydra app
            continue
        if isinstance(value, DictConfig):
            found += numeric_settings(value, f"{name}.")
        elif isinstance(value, ListConfig):
            items = OmegaConf.to_container(value, resolve=True)
            if items and all(_is_number(item) for item in items):
                found.append((name, items))
        elif _is_number(value):
            found.append((name, value))
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
