"""Body centres and the local/global Gaussian centermaps the context estimator predicts.

Body centre = mean of the labelled shoulders and hips (COCO 5, 6, 11, 12), box centre when none is
labelled. Maps follow HRNet's unnormalised Gaussian (peak 1, ``sigma`` in map pixels); the global map is
the pixel-wise maximum over every person whose centre falls inside the crop.
"""

from __future__ import annotations

import numpy as np
import torch

from ochmr_lit.geometry import apply_affine

TORSO_KEYPOINTS = (5, 6, 11, 12)  # COCO-17: left/right shoulder, left/right hip


def body_centers(keypoints: np.ndarray | None, boxes: np.ndarray) -> np.ndarray:
    """Body centres in pixels.

    Args:
        keypoints: (P, 17, 3) COCO-17 ``[x, y, v]`` (v > 0 counts as labelled), or None.
        boxes: (P, 4) xywh pixels, the fallback for people with no labelled torso keypoint.
    Returns:
        (P, 2) float64 pixel coordinates.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centers = boxes[:, :2] + boxes[:, 2:] / 2.0
    if keypoints is None:
        return centers
    torso = np.asarray(keypoints, dtype=np.float64).reshape(-1, 17, 3)[:, TORSO_KEYPOINTS]
    labelled = torso[..., 2] > 0
    counts = labelled.sum(axis=1)
    sums = (torso[..., :2] * labelled[..., None]).sum(axis=1)
    has_torso = counts > 0
    centers[has_torso] = sums[has_torso] / counts[has_torso, None]
    return centers


def gaussian_maps(centers: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Unnormalised Gaussians ``exp(-d^2 / (2 sigma^2))`` at each centre.

    Args:
        centers: (N, 2) map-pixel coordinates (pixel centres at integers).
        size: side of the square map in pixels.
        sigma: standard deviation in map pixels.
    Returns:
        (N, size, size) float32, peak 1 at a centre that falls on a pixel.
    """
    grid = torch.arange(size, dtype=torch.float32)
    dx = grid[None, None, :] - centers[:, 0, None, None].float()
    dy = grid[None, :, None] - centers[:, 1, None, None].float()
    return torch.exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma))


def render_centermaps(
    target_center: np.ndarray,
    all_centers: np.ndarray,
    crop_affine: np.ndarray,
    crop_size: int,
    map_size: int,
    sigma: float = 2.0,
) -> torch.Tensor:
    """The [local, global] centermaps of one crop.

    Args:
        target_center: (2,) image px, the person whose box made the crop.
        all_centers: (P, 2) image px, every person in the image (the target included).
        crop_affine: (2, 3) image px -> crop px.
        crop_size: crop side in px; map px = crop px * map_size / crop_size (pixel-centre aligned).
        map_size: centermap side in px (crop_size / 4 by default in the configs).
        sigma: Gaussian sigma in map pixels.
    Returns:
        (2, map_size, map_size) float32.
    """
    points = np.concatenate([np.asarray(target_center, np.float64).reshape(1, 2),
                             np.asarray(all_centers, np.float64).reshape(-1, 2)])
    in_crop = apply_affine(np.asarray(crop_affine, np.float64), points)
    ratio = map_size / crop_size
    in_map = torch.from_numpy((in_crop + 0.5) * ratio - 0.5)
    maps = torch.zeros(2, map_size, map_size)
    maps[0] = gaussian_maps(in_map[:1], map_size, sigma)[0]
    others = in_map[1:]
    inside = ((others >= -0.5) & (others <= map_size - 0.5)).all(dim=1)
    if inside.any():
        maps[1] = gaussian_maps(others[inside], map_size, sigma).amax(dim=0)
    return maps


def centermap_peaks(maps: torch.Tensor) -> torch.Tensor:
    """Arg-max location of each map.

    Args:
        maps: (B, C, h, w).
    Returns:
        (B, C, 2) float32 map-pixel coordinates ``[x, y]``.
    """
    b, c, h, w = maps.shape
    flat = maps.reshape(b, c, h * w).argmax(dim=-1)
    return torch.stack([flat % w, torch.div(flat, w, rounding_mode="floor")], dim=-1).float()
