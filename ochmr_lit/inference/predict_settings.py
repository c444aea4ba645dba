"""The settings of ``python -m ochmr_lit.predict``, checked before any work and before the model code is imported.

The entry point calls :func:`check_predict_settings` first, so that a mistaken setting is one line as soon as torch is
imported rather than after Lightning and the models too; :func:`~ochmr_lit.inference.run.run_predict` calls it
again for callers that skip the entry point (a notebook).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ochmr_lit.errors import ConfigError
from ochmr_lit.geometry.cameras import positive_pixels
from ochmr_lit.setting_types import boolean_setting, is_number, is_whole

#: Mesh file formats ``mesh_format`` takes.
MESH_FORMATS = ("obj", "ply")

#: The settings predict cannot run without.
REQUIRED = ("ckpt_path", "input", "boxes", "out")


def check_predict_settings(cfg: Mapping[str, Any]) -> float | None:
    """A one-line :class:`ConfigError` for a missing or mistaken predict setting; else the image camera's focal
    length in px from ``focal_length`` (None: each image's diagonal)."""
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
    return focal_length
