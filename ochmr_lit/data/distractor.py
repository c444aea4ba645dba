"""Distractor people: whose crop shows more visible pixels of one other person than of themselves.

A top-down regressor sees a square crop around the person's box (side ``scale_factor x max(w, h)`` around the
box centre, :func:`~ochmr_lit.geometry.box_to_center_size`, as ``TopDownTransform`` cuts it without
augmentation). When another person fills more of that crop than the target does, the context must tell the
regressor whom to reconstruct. The rule, per person ``i`` of an image:

* the crop window is that square clipped to the image; a pixel is inside when its centre is (pixel column
  ``j`` spans ``[j, j + 1)`` in box coordinates, COCO's convention);
* ``visible(i, k)`` = pixels of person ``k``'s visible (modal) mask inside person ``i``'s window;
* ``i`` is a distractor case when ``max_{k != i} visible(i, k) > visible(i, i)``: the single largest other
  person, not all others together (two others each smaller than the target are not a distractor even if
  together they are larger). A tie is not a distractor case; a person alone in the image never is.

Every non-crowd annotation of the image with a segmentation counts as a person, also those the record loader
leaves out (too few keypoints, a box too small); crowd regions do not. The flag is 1.0 / 0.0, or NaN (unknown)
for every person of an image with a non-crowd person without a usable segmentation (none, or a mask of another
size than the image), and for a person whose own box is not a valid ``xywh`` box. It is decided once, on the
unaugmented crop, when a split is read; datasets without masks leave it NaN (``PersonRecord.distractor``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ochmr_lit.geometry import box_to_center_size

#: Crop side / longer box side of the window the flag is decided in (the data pipeline's default, as SPIN).
DISTRACTOR_CROP_SCALE = 1.2


def crop_windows(boxes: np.ndarray, height: int, width: int, scale_factor: float = DISTRACTOR_CROP_SCALE
                 ) -> np.ndarray:
    """Pixel index ranges of each person's square crop window, clipped to the image.

    Args:
        boxes: (N, 4) ``[x, y, w, h]`` person boxes, image px (COCO convention).
        height, width: image size in px.
        scale_factor: window side = ``scale_factor x max(w, h)``, centred on the box centre.

    Returns:
        (N, 4) int64 ``[x0, y0, x1, y1]``: the window holds pixel columns ``x0 .. x1 - 1`` and rows
        ``y0 .. y1 - 1`` (those whose centres lie in the square; empty when ``x1 <= x0`` or ``y1 <= y0``).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    center, size = box_to_center_size(boxes, scale_factor)
    low = center - size[:, None] / 2.0
    high = center + size[:, None] / 2.0
    # pixel j is inside when its centre j + 0.5 lies in [low, high]
    first = np.ceil(low - 0.5)
    stop = np.floor(high - 0.5) + 1.0
    limits = np.array([width, height], dtype=np.float64)
    first = np.clip(first, 0.0, limits)
    stop = np.clip(stop, 0.0, limits)
    return np.concatenate([first, stop], axis=1).astype(np.int64)


def pixels_in_windows(masks: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Mask pixels inside each window, from the masks' integral image (no loop over pixels or windows).

    Args:
        masks: (H, W, K) 0 / 1 masks, as ``pycocotools.mask.decode`` returns them.
        windows: (N, 4) int ``[x0, y0, x1, y1]`` pixel ranges inside the image (:func:`crop_windows`).

    Returns:
        (N, K) int64: ``counts[i, k]`` = pixels of mask ``k`` in window ``i``. The integral image takes
        ``4 x (H + 1) x (W + 1) x K`` bytes (6 MB for 6 people at 512 x 512).
    """
    masks = np.asarray(masks)
    height, width, k = masks.shape
    integral = np.zeros((height + 1, width + 1, k), dtype=np.int32)
    np.cumsum(masks, axis=0, dtype=np.int32, out=integral[1:, 1:])
    np.cumsum(integral[1:, 1:], axis=1, dtype=np.int32, out=integral[1:, 1:])
    w = np.asarray(windows, dtype=np.int64).reshape(-1, 4)
    x0, y0 = w[:, 0], w[:, 1]
    x1, y1 = np.maximum(w[:, 2], x0), np.maximum(w[:, 3], y0)
    counts = integral[y1, x1].astype(np.int64) - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return counts.astype(np.int64)


def distractor_flags(counts: np.ndarray, targets: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Whether the largest other person outnumbers each target in the target's window.

    Args:
        counts: (N, K) visible pixels of person ``k`` in the window of target ``n`` (:func:`pixels_in_windows`).
        targets: (N,) column of each window's own person; None: window ``n`` is person ``n`` (N == K).

    Returns:
        (N,) bool: ``max_{k != own} counts[n, k] > counts[n, own]`` (False for a lone person).
    """
    counts = np.asarray(counts, dtype=np.int64)
    n, k = counts.shape
    own_column = np.arange(n) if targets is None else np.asarray(targets, dtype=np.int64).reshape(n)
    rows = np.arange(n)
    own = counts[rows, own_column]
    others = counts.copy()
    others[rows, own_column] = -1
    largest_other = others.max(axis=1) if k > 1 else np.full(n, -1, dtype=np.int64)
    return largest_other > own


def _rle(segmentation: Any, height: int, width: int) -> dict | None:
    """A compressed RLE (pycocotools) of a COCO segmentation: RLE (``counts`` str, bytes or list) or polygons;
    None when there is none."""
    if isinstance(segmentation, dict) and "counts" in segmentation:
        counts = segmentation["counts"]
        if isinstance(counts, list):  # uncompressed RLE
            return mask_utils.frPyObjects(segmentation, height, width)
        size = [int(v) for v in segmentation.get("size", (height, width))]
        return {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    if isinstance(segmentation, list) and segmentation:  # polygons
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    return None


def _valid_box(box: Any) -> bool:
    values = np.asarray(box, dtype=np.float64) if isinstance(box, list | tuple) else np.zeros(0)
    return values.shape == (4,) and bool(np.all(np.isfinite(values))) and values[2] > 0 and values[3] > 0


def image_distractors(annotations: Sequence[dict], height: int, width: int,
                      scale_factor: float = DISTRACTOR_CROP_SCALE) -> dict[int, float]:
    """Distractor flag of every person of one image (the module's rule).

    Args:
        annotations: the image's COCO annotations (``id``, ``bbox`` xywh px, ``segmentation``, ``iscrowd``).
        height, width: image size in px (also the size of the masks).
        scale_factor: crop side / longer box side.

    Returns:
        annotation id -> 1.0 (distractor), 0.0 (not), NaN (unknown: the image has a non-crowd person
        without a usable segmentation, or this person's box is invalid); crowd regions get no entry.
    """
    people = [a for a in annotations if not a.get("iscrowd", 0)]
    if not people:
        return {}
    rles = [_rle(a.get("segmentation"), height, width) for a in people]
    if any(r is None or [int(v) for v in r["size"]] != [height, width] for r in rles):
        return {int(a["id"]): float("nan") for a in people}
    valid = np.array([_valid_box(a.get("bbox")) for a in people])
    out = {int(a["id"]): float("nan") for a in people}
    if not valid.any():
        return out
    masks = mask_utils.decode(rles)  # (H, W, N) uint8, one decode for the whole image
    targets = np.flatnonzero(valid)
    boxes = np.array([people[i]["bbox"] for i in targets], dtype=np.float64)
    counts = pixels_in_windows(masks, crop_windows(boxes, height, width, scale_factor))
    flags = distractor_flags(counts, targets)
    for i, flag in zip(targets.tolist(), flags.tolist(), strict=True):
        out[int(people[i]["id"])] = float(flag)
    return out
