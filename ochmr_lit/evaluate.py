"""Evaluate: ``python -m ochmr_lit.evaluate experiment=<name> ckpt_path=<ckpt> [protocol=<name>]``."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from ochmr_lit.runner import run_evaluate

    run_evaluate(cfg)


if __name__ == "__main__":
    main()
