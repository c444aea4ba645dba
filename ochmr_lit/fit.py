"""Train: ``python -m ochmr_lit.fit experiment=<name> [key=value ...]`` (Hydra; see configs/fit.yaml).

Before Hydra runs, the command line is composed once with Hydra's compose API: an unknown experiment,
config group option or key then stops the command with one line that names it and lists what exists,
instead of Hydra's multi-line report (:func:`ochmr_lit.runner.command_line.compose_command_line`).
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from ochmr_lit.runner.command_line import (  # noqa: E402
    check_command_line,
    existing_above_run_folder,
    pass_trainer_arguments,
)


def resume_folder_override(argv: list[str], cfg: DictConfig | None) -> list[str]:
    """``ckpt_path=last`` continues the run folder it resumes: Hydra is pointed at that folder (``hydra.run.dir``)
    instead of creating a new, timestamped one. Nothing changes when the command names its folder itself.
    ``cfg``: the command line's composed config (None where Hydra composes it alone: multirun, Hydra's flags)."""
    if cfg is None or "ckpt_path=last" not in argv or any(a.startswith(("hydra.run.dir=", "run_dir=")) for a in argv):
        return []
    from ochmr_lit.runner import find_resume_folder

    try:
        folder = find_resume_folder(cfg.paths.output_dir, cfg.experiment_name)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return [f"hydra.run.dir={folder}"]


def fit_app(existed: Path | None) -> Callable[[], None]:
    """The Hydra command. ``existed``: the nearest folder above the run folder that existed before the command
    (:func:`~ochmr_lit.runner.command_line.existing_above_run_folder`); a user error removes the empty folders the
    command made below it."""

    @hydra.main(version_base="1.3", config_path="configs", config_name="fit")
    def main(cfg: DictConfig) -> None:
        from ochmr_lit.errors import user_errors
        from ochmr_lit.runner import run_fit

        with user_errors(cfg.run_dir, existed):
            run_fit(cfg)

    return main


if __name__ == "__main__":
    sys.argv[1:] = pass_trainer_arguments(sys.argv[1:])
    composed = check_command_line("fit", sys.argv[1:])
    sys.argv += resume_folder_override(sys.argv[1:], composed)
    fit_app(existing_above_run_folder(composed))()
