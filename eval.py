"""Evaluate a checkpoint: python eval.py ckpt_path=<file.ckpt> [data=<dataset>] [split=test]"""

import hydra
from omegaconf import DictConfig

from audioclf import evaluate
from audioclf.cli import precheck_arguments
from audioclf.errors import exit_on_user_error


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    evaluate.run(cfg)


if __name__ == "__main__":
    precheck_arguments()
    main()
