"""Train: ``python -m ochmr_lit.fit experiment=<name> [key=value ...]`` (Hydra; see configs/fit.yaml)."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(version_base="1.3", config_path="configs", config_name="fit")
def main(cfg: DictConfig) -> None:
    from ochmr_lit.runner import run_fit

    run_fit(cfg)


if __name__ == "__main__":
    main()
