"""Predict's input files, found and checked without torch: the entry point calls these before the model code is
imported, so that a missing image, box or detector weight file is one line within a second."""

from __future__ import annotations

from pathlib import Path

from ochmr_lit.errors import ConfigError, DataError, MissingFileError

#: The image files ``input`` takes (a file, or a folder's files with these suffixes; case does not matter).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

#: The ``boxes`` value that detects people with torchvision's detector instead of reading a JSON file.
DETECTOR = "detector"


def list_images(input_path: str | Path) -> list[Path]:
    """The image files of ``input_path``: the file itself, or a folder's images (sorted, not recursive)."""
    path = Path(input_path)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ConfigError(f"input={path}: not an image file (expected one of {IMAGE_SUFFIXES})")
        return [path]
    if not path.is_dir():
        raise MissingFileError(f"input={path}: no such image file or folder")
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"input={path}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def box_file(json_path: str | Path) -> Path:
    """``json_path`` as a Path; a one-line :class:`MissingFileError` when no such file is there."""
    path = Path(json_path)
    if not path.is_file():
        raise MissingFileError(f"boxes={path}: no such file; give a COCO-format JSON (GT annotations or "
                               f"detection results) or boxes={DETECTOR}")
    return path


def detector_weights_file(weights: str | Path | None) -> Path:
    """The detector's local weight file ``detector_weights`` (``boxes=detector``); a one-line error when it is not
    given or not there (nothing is downloaded)."""
    if not weights:
        raise ConfigError(f"boxes={DETECTOR} needs detector_weights=<file>: torchvision's fasterrcnn_resnet50_fpn "
                          "COCO weights (fasterrcnn_resnet50_fpn_coco-258fb6c6.pth) saved locally; nothing is "
                          "downloaded")
    path = Path(weights)
    if not path.is_file():
        raise MissingFileError(f"detector_weights={path}: no such file; download torchvision's "
                               "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth on a machine with network and point "
                               "detector_weights at it")
    return path
