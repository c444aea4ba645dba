"""Predict: ``python -m ochmr_lit.predict ckpt_path=<ckpt> input=<image|folder> boxes=<json|detector> out=<dir>``.

The command line is composed once before Hydra runs, so that an unknown key or a malformed argument is one line
(:func:`ochmr_lit.runner.command_line.check_command_line`).
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from ochmr_lit.runner.command_line import check_command_line  # noqa: E402


def predict_app(out_is_new: bool) -> Callable[[], None]:
    """The Hydra command. ``out_is_new``: Hydra creates the ``out`` folder for this command (known before Hydra runs),
    so that a user error that stops predict before it wrote anything removes it again, as it does the stand-in
    folder of a command without ``out=``; a folder the user had is kept."""

    @hydra.main(version_base="1.3", config_path="configs", config_name="predict")
    def main(cfg: DictConfig) -> None:
        from ochmr_lit.errors import user_errors
        from ochmr_lit.inference.predict_settings import check_predict_settings

        new_folder = OmegaConf.is_missing(cfg, "out") or out_is_new
        with user_errors(HydraConfig.get().runtime.output_dir if new_folder else None):
            settings = check_predict_settings(cfg)  # before torch and the model code: a mistake is said at once
            from ochmr_lit.inference.run import run_predict

            run_predict(cfg, settings)

    return main


if __name__ == "__main__":
    composed = check_command_line("predict", sys.argv[1:])
    predict_app(composed is not None and not OmegaConf.is_missing(composed, "out")
                and not Path(str(composed.out)).exists())()
