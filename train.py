"""Train a backbone: python train.py model=<name> data=<dataset> [key=value ...]"""

import hydra
from omegaconf import DictConfig

from audioclf import train
from audioclf.cli import precheck_arguments
from audioclf.errors import exit_on_user_error


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    metrics = train.run(cfg)
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    precheck_arguments()
    main()
