"""Evaluate: ``python -m ochmr_lit.evaluate experiment=<name> ckpt_path=<ckpt> [protocol=<name>] [context_mode=..]
[flip_test=true]``.

``context_mode``: ``true`` (default), ``exact``, ``shuffled``, ``zeroed`` or a list of them (context diagnostics;
``exact``: the maps rendered from the annotations, what a perfect context estimator would give the model).
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from ochmr_lit.runner.command_line import (  # noqa: E402
    check_command_line,
    existing_above_run_folder,
    pass_trainer_arguments,
)


def evaluate(cfg: DictConfig) -> dict:
    """Resolve the composed config (its interpolations refer to its own root) and evaluate as it says."""
    from ochmr_lit.runner import run_evaluate

    OmegaConf.resolve(cfg)
    return run_evaluate(cfg)


def own_experiment_override(argv: list[str]) -> list[str]:
    """With ``allow_other_architecture=true``, the results are filed under the experiment that trained the checkpoint
    (``experiment_name=<its name>``), not under the experiment whose data and protocol evaluate it."""
    if "allow_other_architecture=true" not in argv or any(a.startswith("experiment_name=") for a in argv):
        return []
    ckpt = next((a.split("=", 1)[1] for a in argv if a.startswith("ckpt_path=")), None)
    if not ckpt or not os.path.isfile(ckpt):
        return []
    import torch

    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception:  # not a checkpoint: the evaluation itself names the problem in one line
        return []
    name = ((state.get("run_config") or {}) if isinstance(state, dict) else {}).get("experiment_name")
    return [f"experiment_name={name}"] if name else []


def evaluate_app(existed: Path | None) -> Callable[[], None]:
    """The Hydra command; ``existed`` as in ``fit``: see :func:`ochmr_lit.errors.user_errors`."""

    @hydra.main(version_base="1.3", config_path="configs", config_name="evaluate")
    def main(cfg: DictConfig) -> None:
        from ochmr_lit.errors import user_errors

        with user_errors(cfg.run_dir, existed):
            check_checkpoint_given(cfg)
            evaluate(cfg)

    return main


def check_checkpoint_given(cfg: DictConfig) -> None:
    """A one-line error for a missing ``ckpt_path`` or a file that is not there, before the model code is imported;
    ``ckpt_path=last`` is looked up in the run folders by the evaluation itself."""
    from ochmr_lit.checkpoint_files import (
        CONTEXT_CHECKPOINTS,
        EVALUATE_NEEDS_CHECKPOINT,
        REGRESSOR_CHECKPOINTS,
        checkpoint_file,
    )
    from ochmr_lit.errors import ConfigError

    ckpt = cfg.get("ckpt_path")
    if ckpt in (None, ""):
        raise ConfigError(EVALUATE_NEEDS_CHECKPOINT)
    if ckpt != "last":
        checkpoint_file(ckpt, CONTEXT_CHECKPOINTS if cfg.get("task") == "context" else REGRESSOR_CHECKPOINTS)


if __name__ == "__main__":
    sys.argv[1:] = pass_trainer_arguments(sys.argv[1:])
    composed = check_command_line("evaluate", sys.argv[1:])
    sys.argv += own_experiment_override(sys.argv[1:])
    evaluate_app(existing_above_run_folder(composed))()
