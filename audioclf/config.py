"""The config edge: composing Hydra configs, and catching bad overrides before they reach the library."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from audioclf.errors import UserError
from audioclf.schema import check_ranges

CONF_DIR = Path(__file__).resolve().parent / "conf"  # shipped inside the package


def user_conf_dir() -> Path | None:
    """The user's own configs, searched ahead of the package's (hydra_plugins/audioclf_user_conf):
    $AUDIOCLF_CONF, else conf/ in the working directory; None where that is no folder."""
    folder = Path(os.environ.get("AUDIOCLF_CONF") or "conf").expanduser().resolve()
    return folder if folder.is_dir() and folder != CONF_DIR else None


def config_dirs() -> list[Path]:
    """Where config files are found, first match first: the user's conf/, then the package's."""
    return [folder for folder in (user_conf_dir(), CONF_DIR) if folder is not None]


def config_file(group: str, option: str) -> Path | None:
    """conf/<group>/<option>.yaml as Hydra finds it, or None."""
    return next((path for folder in config_dirs() if (path := folder / group / f"{option}.yaml").is_file()), None)


def is_group(name: str) -> bool:
    return any((folder / name).is_dir() for folder in config_dirs())


def group_options(group: str) -> list[str]:
    """The options of config group `group` (a folder of conf/), from every config folder; [] if it is none."""
    return sorted({path.stem for folder in config_dirs() for path in (folder / group).glob("*.yaml")})


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
    primary = config_file("", HydraConfig.get().job.config_name)
    if primary is not None:  # the task's own top-level keys: seed, test, top_k, ...
        _compare(_defaults(primary.read_text()), cfg, "")
    for group, choice in HydraConfig.get().runtime.choices.items():
        path = config_file(group, choice) if choice is not None else None
        if group.startswith("hydra") or path is None:
            continue
        text = path.read_text()
        defaults = _defaults(text)
        if "@package _global_" in text:
            _compare(defaults, cfg, "")
        elif group in cfg:
            _compare(defaults, cfg[group], f"{group}.")


def _defaults(text: str) -> dict:
    """A config file's own values: its defaults list and Hydra's node left out."""
    values = OmegaConf.to_container(OmegaConf.create(text), resolve=False) or {}
    values.pop("defaults", None)
    values.pop("hydra", None)
    return values


def _compare(defaults: dict, actual: Any, prefix: str) -> None:
    if not isinstance(actual, DictConfig):
        return
    for key, default in defaults.items():
        if key not in actual or OmegaConf.is_interpolation(actual, key) or OmegaConf.is_missing(actual, key):
            continue
        value = actual[key]
        name = f"{prefix}{key}"
        if isinstance(default, dict) and default and value is not None and not isinstance(value, DictConfig):
            first = next(iter(default))
            raise UserError(f"{name}={value!r} has the wrong type: {name} is a group of keys ({', '.join(default)}), "
                            f"set one of them, e.g. {name}.{first}={_show(default[first])}")
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


def check_values(cfg: DictConfig) -> None:
    """Values of the right type that cannot work (a negative learning rate, an empty batch, a zero
    window, a GPU trainer without a GPU), named before any data is decoded."""
    check_ranges(cfg)  # every numeric setting against its declared range (schema.py)
    check_epochs(cfg)
    check_accelerator(cfg)


def _number(cfg: DictConfig, key: str) -> float | None:
    value = OmegaConf.select(cfg, key, default=None)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def check_epochs(cfg: DictConfig) -> None:
    """At least one epoch, or -1 (Lightning: no limit) where no schedule needs the run's length."""
    epochs = _number(cfg, "trainer.max_epochs")
    if epochs is None or (epochs >= 1 and float(epochs).is_integer()):
        return
    if not float(epochs).is_integer():
        raise UserError(f"trainer.max_epochs={epochs} must be a whole number of epochs, e.g. trainer.max_epochs=20")
    if epochs != -1:
        raise UserError(f"trainer.max_epochs={epochs} must be at least 1 (or -1 for no limit), "
                        "e.g. trainer.max_epochs=20")
    if (cfg.get("scheduler") or {}).get("_target_"):
        raise UserError("trainer.max_epochs=-1 (no limit) leaves the learning-rate schedule no length: "
                        "give trainer.max_epochs=<N>, or add scheduler=none")


def check_accelerator(cfg: DictConfig) -> None:
    """`trainer=gpu` (accelerator gpu, cuda or mps) on a machine where PyTorch sees no such device."""
    import torch

    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    found = {"gpu": cuda or mps, "cuda": cuda, "mps": mps}.get(accelerator, True)
    if found:
        return
    choice = HydraConfig.get().runtime.choices.get("trainer") if HydraConfig.initialized() else None
    named = "trainer=gpu" if choice == "gpu" and accelerator == "gpu" else f"trainer.accelerator={accelerator}"
    raise UserError(f"{named} needs a GPU, and PyTorch sees none on this machine: "
                    "use trainer=cpu or trainer.accelerator=auto")


@contextlib.contextmanager
def config_errors(group: str, node: Any, **other_groups: Any) -> Iterator[None]:
    """Turn the library's ValueError about a parameter of config `node`, e.g. `n_fft=64 is shorter ...`,
    into a UserError naming the override, `features.n_fft=64 is shorter ...`. When one object is
    built from several groups, `other_groups` (e.g. `augment=<node>`) name the group whose key it is."""
    try:
        yield
    except ValueError as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        key = re.match(r"([A-Za-z_]\w*)=", message)
        nodes = {group: node, **other_groups}
        owner = next((name for name, values in nodes.items() if key is not None and key.group(1) in (values or {})),
                     None)
        raise UserError(f"{owner}.{message}" if owner else f"{group}: {message}") from None


def check_group_choices(argv: list[str]) -> None:
    """Reject `group=option` arguments naming no conf/<group>/<option>.yaml, and `<group>.<key>=`
    arguments for a key the chosen config of that group lacks, in one line.

    Runs before Hydra, whose own message for this spans a screen.
    """
    check_override_syntax(argv)
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if not sep or "." in key or "/" in key or not is_group(key) or value in ("", "null"):
            continue
        options = group_options(key)
        user = user_conf_dir()
        for choice in value.split(","):
            if choice.strip() not in options:
                mine = f" or {user / key}/" if user is not None and (user / key).is_dir() else ""
                raise UserError(f"{key}={choice} is not a config in audioclf/conf/{key}/{mine}: "
                                f"choose one of {', '.join(options)}")
    check_group_keys(argv)


def check_override_syntax(argv: list[str]) -> None:
    """Reject a `key=value` argument Hydra cannot parse, naming it and the fix (Hydra's own message,
    e.g. "mismatched input '=' expecting <EOF>", names neither)."""
    parser = OverridesParser.create()
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            parser.parse_override(arg)
        except HydraException as error:
            key, _, value = arg.partition("=")
            reason = str(error).splitlines()[0]
            raise UserError(f"{arg} is not a valid override ({reason}): quote the value for Hydra and the "
                            f"shell, \"{key}='{value}'\"") from None


def check_group_keys(argv: list[str]) -> None:
    """Reject `<group>.<key>=` for a key the chosen config of that group lacks (Hydra says only "not
    in struct"; the choice may be one the model config made), naming the config and its keys."""
    keys = [(group, key.split("[")[0]) for group, key in map(_group_key, argv) if key]
    if not keys:
        return
    others = [arg for arg in argv if "=" in arg and not arg.startswith("-") and not _group_key(arg)[1]]
    try:
        cfg = compose_train(others)
    except Exception:  # noqa: BLE001 - another override is wrong: Hydra reports it
        return
    for group, key in keys:
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or key in node:
            continue
        choice = cfg.hydra.runtime.choices.get(group)
        raise UserError(f"{group}.{key} is not a key of {group}={choice}, whose keys are "
                        f"{', '.join(node)}: {_missing_key_fix(group, key)}")


def _group_key(arg: str) -> tuple[str, str]:
    """`trainer.max_epochs=3` -> ("trainer", "max_epochs"); ("", "") for anything but a plain
    override of a key inside a config group (`+`/`~` overrides add or delete keys on purpose)."""
    name, sep, _ = arg.partition("=")
    group, dot, key = name.partition(".")
    if not sep or not dot or arg.startswith(("+", "~", "-")) or group == "hydra" or not is_group(group):
        return "", ""
    return group, key.split(".")[0]


def _group_node(config: DictConfig, group: str) -> DictConfig:
    """A group option's own keys, whether its file is packaged `_global_` (model: {...}) or not."""
    node = config.get(group)
    return node if isinstance(node, DictConfig) else config


def _missing_key_fix(group: str, key: str) -> str:
    having = [option for option in group_options(group)
              if key in _group_node(OmegaConf.load(config_file(group, option)), group)]
    if group == "features":
        return f"pick features={' or '.join(having)} for {key}" if having else "use one of those"
    if having:
        return f"pick {group}={' or '.join(having)}, or add the key with +{group}.{key}=<value>"
    return f"check the spelling, or add the key with +{group}.{key}=<value>"


# arguments with which a Hydra app prints or completes and creates no run folder
NO_RUN_FOLDER = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc")


def check_run_folder(config_name: str, argv: list[str]) -> None:
    """The folder Hydra is about to create for the run (hydra.run.dir; hydra.sweep.dir with -m): its
    nearest existing parent must be a folder this process can write in. Runs before Hydra, which
    would create it and report the failure as a traceback."""
    if any(arg.split("=")[0] in NO_RUN_FOLDER for arg in argv):
        return
    parser = OverridesParser.create()
    try:  # a sweep's values do not change the folder; a bad override is reported by Hydra
        fixed = [arg for arg in argv if "=" in arg and not arg.startswith("-")
                 and not parser.parse_override(arg).is_sweep_override()]
        cfg = compose_config_with_hydra(config_name, fixed)
        key = "hydra.sweep.dir" if any(arg in ("-m", "--multirun") for arg in argv) else "hydra.run.dir"
        folder = Path(str(OmegaConf.select(cfg, key))).expanduser()
    except Exception:  # noqa: BLE001
        return
    check_creatable(folder)


def check_creatable(folder: Path) -> None:
    """The nearest existing parent of the run folder is a folder this process can write in."""
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    fix = "give paths.log_dir=<a folder you can write> (or hydra.run.dir=)"
    if not existing.is_dir():
        raise UserError(f"the run folder {folder} cannot be created: {existing} is a file, not a folder: {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"the run folder {folder} cannot be created: {existing} is not writable: {fix}")


def compose_train(overrides: list[str]) -> DictConfig:
    """train.py's config with `overrides`, and Hydra's own node (`hydra.runtime.choices`), no run folder."""
    return compose_config_with_hydra("train", overrides)


def compose_config_with_hydra(config_name: str, overrides: list[str]) -> DictConfig:
    """conf/<config_name>.yaml with `overrides` and Hydra's own node, no run folder."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides, return_hydra_config=True)
