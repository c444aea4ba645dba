"""The settings of ``python -m ochmr_lit.vis.compare``, checked before the model code is imported.

Without torch: a mistaken ``num_images``, ``split`` or checkpoint path is named in one line within a second,
not after the models are loaded (:mod:`ochmr_lit.vis.comparison_run` checks again for library callers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ochmr_lit.checkpoint_files import REGRESSOR_CHECKPOINTS, checkpoint_file
from ochmr_lit.command_choices import DEFAULT_SPLITS
from ochmr_lit.errors import ConfigError
from ochmr_lit.setting_types import boolean_setting, is_whole

#: How the command is called, for the line that names a missing checkpoint.
USAGE = "python -m ochmr_lit.vis.compare ckpt_path=<ckpt> [split=val] [num_images=4] [out=<dir>]"


def check_compare_settings(cfg: Mapping[str, Any]) -> None:
    """One :class:`~ochmr_lit.errors.ConfigError` (``MissingFileError`` for the checkpoint) naming the first mistaken
    setting of ``cfg`` (the ``compare`` config, or a mapping with its keys): ``ckpt_path``, ``num_images``,
    ``batch_size``, ``side_view``, ``split``, then the checkpoint file."""
    if cfg.get("ckpt_path") in (None, "", "???"):
        raise ConfigError(f"compare needs ckpt_path=...: {USAGE}")
    num_images = cfg.get("num_images")
    if not is_whole(num_images, 1):
        raise ConfigError(f"num_images={num_images!r}: how many images of the split to draw, a whole number >= 1")
    batch_size = cfg.get("batch_size")
    if not is_whole(batch_size, 1):
        raise ConfigError(f"batch_size={batch_size!r}: people per forward pass, a whole number >= 1")
    boolean_setting(cfg.get("side_view"), "side_view", "add the predicted and the ground-truth side views")
    if str(cfg.get("split")) not in DEFAULT_SPLITS:
        raise ConfigError(f"split={cfg.get('split')}: a SynthCrowd split, one of {', '.join(DEFAULT_SPLITS)}")
    checkpoint_file(cfg.get("ckpt_path"), REGRESSOR_CHECKPOINTS)
