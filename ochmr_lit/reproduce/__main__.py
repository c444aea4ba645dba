"""``python -m ochmr_lit.reproduce table=<occlusion|conorm_depth|detector_sweep> [preset=cpu|paper] [key=value ...]``.

Settings and their defaults are in ``ochmr_lit/configs/reproduce.yaml``; ``overrides=[...]`` passes Hydra
overrides to every training run of the table.
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import logging  # noqa: E402
import sys  # noqa: E402
from importlib import resources  # noqa: E402

from omegaconf import DictConfig, OmegaConf  # noqa: E402
from omegaconf.errors import OmegaConfBaseException  # noqa: E402


def load_settings(argv: list[str]) -> DictConfig:
    """The defaults of ``configs/reproduce.yaml`` with ``key=value`` arguments merged; unknown keys refused."""
    defaults = OmegaConf.create((resources.files("ochmr_lit.configs") / "reproduce.yaml").read_text())
    OmegaConf.set_struct(defaults, True)
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ValueError(f"argument {bad[0]!r} is not key=value; e.g. table=occlusion preset=cpu seeds=[0,1]")
    try:
        cfg = OmegaConf.merge(defaults, OmegaConf.from_dotlist(argv))
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", "") or str(error).splitlines()[0]
        raise ValueError(f"unknown or malformed setting '{key}'; the settings are {', '.join(defaults)} "
                         "(ochmr_lit/configs/reproduce.yaml)") from None
    if OmegaConf.is_missing(cfg, "table"):
        raise ValueError("table=<occlusion|conorm_depth|detector_sweep> is required")
    return cfg


def main(argv: list[str]) -> int:
    from ochmr_lit.reproduce.run import run_table

    try:
        cfg = load_settings(argv)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        run_table(cfg)
    except (KeyError, ValueError, FileNotFoundError) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message} (HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
