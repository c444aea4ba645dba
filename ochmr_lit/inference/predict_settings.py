"""The settings of ``python -m ochmr_lit.predict``, checked before any work and before torch and the model code are
imported.

The entry point calls :func:`check_predict_settings` first, so that a mistaken setting or a missing input file is one
line within a second rather than after torch, Lightning and the models are imported, and hands the checked settings
to :func:`~ochmr_lit.inference.run.run_predict`, which checks them itself for callers that skip the entry point
(a notebook).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ochmr_lit.checkpoint_files import REGRESSOR_CHECKPOINTS, checkpoint_file
from ochmr_lit.errors import ConfigError
from ochmr_lit.inference.inputs import DETECTOR, box_file, detector_weights_file, list_images
from ochmr_lit.setting_types import boolean_setting, is_number, is_whole, positive_pixels

#: Mesh file formats ``mesh_format`` takes.
MESH_FORMATS = ("obj", "ply")

#: The settings predict cannot run without.
REQUIRED = ("ckpt_path", "input", "boxes", "out")


@dataclass(frozen=True)
class PredictSettings:
    """What :func:`check_predict_settings` found: the input images (sorted), the box JSON file (None:
    ``boxes=detector``) and the image camera's focal length in px (None: each image's diagonal)."""

    images: list[Path]
    box_file: Path | None
    focal_length: float | None


def check_predict_settings(cfg: Mapping[str, Any]) -> PredictSettings:
    """A one-line :class:`ConfigError` for a missing or mistaken predict setting, a ``MissingFileError`` for an
    ``input``, ``boxes``, ``detector_weights`` or ``ckpt_path`` file that is not there; else the settings found."""
    for key in REQUIRED:
        if cfg.get(key) in (None, "", "???"):
            raise ConfigError(f"predict needs {key}=...: python -m ochmr_lit.predict ckpt_path=<ckpt> "
                              "input=<image|folder> boxes=<coco.json|detections.json|detector> out=<dir>")
    if str(cfg.get("on_bad_sample") or "raise") not in ("raise", "skip"):
        raise ConfigError(f"on_bad_sample={cfg.get('on_bad_sample')}; use raise (stop at an unreadable image) or "
                          "skip (predict the others and report it)")
    mesh_format = str(cfg.get("mesh_format") or "obj")
    if mesh_format not in MESH_FORMATS:  # before any work: a typo must not cost a whole run
        raise ConfigError(f"mesh_format={mesh_format}; use one of {'|'.join(MESH_FORMATS)}")
    focal_length = cfg.get("focal_length")
    if focal_length is not None:
        try:
            focal_length = positive_pixels(focal_length)
        except (TypeError, ValueError):
            raise ConfigError(f"focal_length={focal_length}: the image camera's focal length in pixels, a positive "
                              "number, or null for the image diagonal") from None
    batch_size = cfg.get("batch_size")
    if not is_whole(batch_size, 1):
        raise ConfigError(f"batch_size={batch_size!r}: people per forward pass, a whole number >= 1")
    threshold = cfg.get("score_threshold")
    if not is_number(threshold) or not 0 <= threshold <= 1:
        raise ConfigError(f"score_threshold={threshold!r}: detections scored below it are dropped, a number in [0, 1]")
    boolean_setting(cfg.get("save_figures"), "save_figures", "write the paper figure of every image")
    boolean_setting(cfg.get("save_meshes"), "save_meshes", "write every person's mesh")
    images = list_images(cfg["input"])
    if str(cfg["boxes"]) == DETECTOR:
        boxes = None
        detector_weights_file(cfg.get("detector_weights"))
    else:
        boxes = box_file(cfg["boxes"])
    checkpoint_file(cfg["ckpt_path"], REGRESSOR_CHECKPOINTS)
    return PredictSettings(images=images, box_file=boxes, focal_length=focal_length)
