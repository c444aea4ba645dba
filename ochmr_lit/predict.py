"""Predict: ``python -m ochmr_lit.predict ckpt_path=<ckpt> input=<image|folder> boxes=<json|detector> out=<dir>``."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
def main(cfg: DictConfig) -> None:
    from ochmr_lit.errors import user_errors
    from ochmr_lit.inference.run import run_predict

    with user_errors():
        run_predict(cfg)


if __name__ == "__main__":
    main()
