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
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from omegaconf import DictConfig, OmegaConf  # noqa: E402
from omegaconf.errors import OmegaConfBaseException  # noqa: E402

from ochmr_lit.errors import ConfigError, MissingFileError, OchmrError, user_errors  # noqa: E402
from ochmr_lit.paths import folder_problem  # noqa: E402
from ochmr_lit.reproduce.tables import PRESETS, TABLES  # noqa: E402
from ochmr_lit.setting_types import boolean_setting, is_whole  # noqa: E402


def load_settings(argv: list[str]) -> DictConfig:
    """The defaults of ``configs/reproduce.yaml`` with ``key=value`` arguments merged; unknown keys, tables and
    presets are refused with a :class:`~ochmr_lit.errors.ConfigError` (a ValueError)."""
    defaults = OmegaConf.create((resources.files("ochmr_lit.configs") / "reproduce.yaml").read_text())
    OmegaConf.set_struct(defaults, True)
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ConfigError(f"argument {bad[0]!r} is not key=value; e.g. table=occlusion preset=cpu seeds=[0,1]")
    try:
        cfg = OmegaConf.merge(defaults, OmegaConf.from_dotlist(argv))
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", "") or str(error).splitlines()[0]
        raise ConfigError(f"unknown or malformed setting '{key}'; the settings are {', '.join(defaults)} "
                          "(ochmr_lit/configs/reproduce.yaml)") from None
    check_settings(cfg)
    return cfg


def check_settings(cfg: DictConfig) -> None:
    """The table, the preset and the seeds name things that exist, before anything is imported or trained."""
    if OmegaConf.is_missing(cfg, "table"):
        raise ConfigError(f"table=<{'|'.join(TABLES)}> is required")
    if cfg.table not in TABLES:
        raise ConfigError(f"table={cfg.table!r}: unknown table; choose one of {', '.join(TABLES)}")
    if cfg.preset not in PRESETS:
        raise ConfigError(f"preset={cfg.preset!r}: unknown preset; choose one of {', '.join(PRESETS)}")
    if cfg.seeds is not None and not OmegaConf.is_list(cfg.seeds):
        raise ConfigError(f"seeds={cfg.seeds!r}: give a list of seeds, e.g. seeds=[0,1]")
    if cfg.seeds is not None and not cfg.seeds:
        raise ConfigError("seeds=[]: give at least one seed (e.g. seeds=[0,1])")
    seeds = list(cfg.seeds or [])
    if any(not is_whole(s, 0) for s in seeds):
        raise ConfigError(f"seeds={seeds}: every seed is a whole number >= 0, e.g. seeds=[0,1]")
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"seeds={seeds}: a seed is listed twice (it would count as two runs of one); list each "
                          "once, e.g. seeds=[0,1]")
    for key in ("overrides", "context_overrides", "regressor_overrides"):
        _check_override_list(cfg.get(key), key)
    for key in ("budget", "context_budget"):
        node = cfg.get(key)
        if node is not None and not OmegaConf.is_dict(node):
            raise ConfigError(f"{key}={node!r}: give the overrides of each preset, e.g. {key}.{cfg.preset}="
                              "[trainer.max_epochs=4]")
        for preset in node or {}:
            if preset not in PRESETS:
                raise ConfigError(f"{key}.{preset}: unknown preset; the presets are {', '.join(PRESETS)}")
            _check_override_list(node[preset], f"{key}.{preset}")
    boolean_setting(cfg.get("context_diagnostics"), "context_diagnostics",
                    "the occlusion table adds the context diagnostics' rows")
    seed = cfg.get("detector_seed")
    if not is_whole(seed, 0):
        raise ConfigError(f"detector_seed={seed!r}: the seed of the detector sweep's detections, a whole number >= 0")
    problem = folder_problem(Path(str(cfg.out)))
    if problem is not None:
        raise ConfigError(f"out={cfg.out}: the table's folder cannot be created ({problem}); give a folder that can "
                          "be written, e.g. out=reproduction")


def _check_override_list(value: Any, key: str) -> None:
    """``key`` holds null or a list of ``key=value`` strings (each is checked when the table's runs are composed)."""
    if value is not None and not OmegaConf.is_list(value):
        raise ConfigError(f"{key}={value!r}: give a list of key=value overrides, e.g. {key}=[trainer.max_epochs=4]")


def run(cfg: DictConfig) -> None:
    """Run the table; a file it needs that is missing (a dataset, a detections file) is a user error."""
    from ochmr_lit.reproduce.run import run_table  # trains: imported once the settings are known to be good

    try:
        run_table(cfg)
    except OchmrError:
        raise
    except FileNotFoundError as error:
        raise MissingFileError(str(error)) from error


def main(argv: list[str]) -> int:
    """Run ``python -m ochmr_lit.reproduce`` with ``argv``; a user mistake prints one line ``error: ...`` and
    exits with status 2 (the traceback with ``HYDRA_FULL_ERROR=1``)."""
    with user_errors():
        cfg = load_settings(argv)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        run(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
