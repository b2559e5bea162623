"""The config edge: composing Hydra configs, and catching bad overrides before they reach the library."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from audioclf.errors import UserError

CONF_DIR = Path(__file__).resolve().parent / "conf"  # shipped inside the package


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose conf/<config_name>.yaml with command-line overrides, as a Hydra app would, without
    a run folder; an override that does not parse or compose is a one-line UserError."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    check_group_choices(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name, overrides=overrides)
    except Exception as error:  # hydra and omegaconf report a bad override in their own types
        raise UserError(f"the overrides do not compose ({str(error).splitlines()[0]}): use key=value") from None


def to_dict(node: Any) -> Any:
    """A resolved plain-Python copy of a config node (None stays None)."""
    return OmegaConf.to_container(node, resolve=True) if node is not None else None


def model_sample_rate(cfg: Any) -> int:
    """The rate clips are decoded at: the one the model declares (`features.sample_rate`),
    else the data's own (`data.sample_rate`). Works on a DictConfig or plain dicts."""
    declared = (cfg["features"] or {}).get("sample_rate")
    return int(declared or cfg["data"]["sample_rate"])


def check_override_types(cfg: DictConfig) -> None:
    """Compare each selected group option's YAML defaults with the composed values.

    A value whose default is a number, a bool or a list must still be one: the
    one-line error names the key and shows a value of the right kind.
    """
    if not HydraConfig.initialized():
        return
    for group, choice in HydraConfig.get().runtime.choices.items():
        path = CONF_DIR / group / f"{choice}.yaml"
        if group.startswith("hydra") or choice is None or not path.is_file():
            continue
        text = path.read_text()
        defaults = OmegaConf.to_container(OmegaConf.create(text), resolve=False) or {}
        defaults.pop("defaults", None)
        if "@package _global_" in text:
            _compare(defaults, cfg, "")
        elif group in cfg:
            _compare(defaults, cfg[group], f"{group}.")


def _compare(defaults: dict, actual: Any, prefix: str) -> None:
    if not isinstance(actual, DictConfig):
        return
    for key, default in defaults.items():
        if key not in actual or OmegaConf.is_interpolation(actual, key):
            continue
        value = actual[key]
        name = f"{prefix}{key}"
        if isinstance(default, dict):
            _compare(default, value, f"{name}.")
        elif not _same_kind(default, value):
            raise UserError(
                f"{name}={value!r} has the wrong type: expected {_kind(default)}, e.g. {name}={_show(default)}"
            )


def _same_kind(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, list):
        return OmegaConf.is_list(value)
    return True


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int | float):
        return "a number"
    return "a list"


def _show(default: Any) -> str:
    if isinstance(default, bool):
        return str(default).lower()
    return str(default).replace(" ", "")


def check_group_choices(argv: list[str]) -> None:
    """Reject `group=option` arguments naming no conf/<group>/<option>.yaml, in one line.

    Runs before Hydra, whose own message for this spans a screen.
    """
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        folder = CONF_DIR / key
        if not sep or "." in key or "/" in key or not folder.is_dir() or value in ("", "null"):
            continue
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        for choice in value.split(","):
            if choice.strip() not in options:
                raise UserError(f"{key}={choice} is not a config in conf/{key}/: choose one of {', '.join(options)}")
