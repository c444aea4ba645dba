"""Preview grids of a generated split: images with boxes and keypoints coloured by visibility."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ochmr_lit.errors import MissingFileError
from ochmr_lit.vis.draw import COCO17_SKELETON, draw_boxes, draw_keypoints, image_grid, save_image


def preview_grid(split_dir: str | Path, count: int = 8, ncols: int = 4) -> np.ndarray:
    """The first ``count`` images of a split with every person's visible box (white) and COCO-17 keypoints
    (green visible, yellow self-occluded, red occluded by another person).

    Args:
        split_dir: folder with ``annotations.json`` and ``images/``.
        count: images to show.
        ncols: images per row.
    Returns:
        (H', W', 3) uint8 RGB grid.
    """
    split_dir = Path(split_dir)
    ann_file = split_dir / "annotations.json"
    if not ann_file.is_file():
        raise MissingFileError(
            f"{ann_file} not found: generate the split first (python -m "
            "ochmr_lit.data.synthcrowd --out DIR --num-images N)"
        )
    doc = json.loads(ann_file.read_text())
    by_image: dict[int, list[dict]] = {}
    for ann in doc["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    tiles = []
    for info in doc["images"][:count]:
        path = split_dir / info["file_name"]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise MissingFileError(f"image {path} listed in {ann_file} cannot be read")
        image = np.ascontiguousarray(bgr[..., ::-1])
        anns = by_image.get(info["id"], [])
        if anns:
            image = draw_boxes(image, np.array([a["bbox"] for a in anns]), color=(255, 255, 255))
        for ann in anns:
            kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
            image = draw_keypoints(image, kp[:, :2], np.asarray(ann["visibility_code"]), COCO17_SKELETON)
        tiles.append(image)
    if not tiles:
        raise ValueError(f"{ann_file} lists no images")
    return image_grid(tiles, ncols=ncols)


def write_preview(split_dir: str | Path, path: str | Path, count: int = 8, ncols: int = 4) -> Path:
    """Writes :func:`preview_grid` to ``path`` (PNG or JPEG by suffix); returns the path."""
    return save_image(path, preview_grid(split_dir, count=count, ncols=ncols))
