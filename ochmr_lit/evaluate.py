"""Evaluate: ``python -m ochmr_lit.evaluate experiment=<name> ckpt_path=<ckpt> [protocol=<name>] [context_mode=..]``.

``context_mode``: ``true`` (default), ``shuffled``, ``zeroed`` or a list of them (context diagnostics).
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import sys  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402


def evaluate(cfg: DictConfig) -> dict:
    """Resolve the composed config (its interpolations refer to its own root) and evaluate as it says."""
    from ochmr_lit.runner import run_evaluate

    OmegaConf.resolve(cfg)
    return run_evaluate(cfg)


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from ochmr_lit.errors import user_errors

    with user_errors(cfg.run_dir):
        evaluate(cfg)


if __name__ == "__main__":
    from ochmr_lit.fit import check_command_line, pass_trainer_arguments

    sys.argv[1:] = pass_trainer_arguments(sys.argv[1:])
    check_command_line("evaluate", sys.argv[1:])
    main()
