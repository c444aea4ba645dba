"""Cameras: SPIN's weak-perspective camera and its translation, pinhole projection, and the crop camera's focal
length at any crop size. Lengths in metres, image coordinates in pixels."""

from __future__ import annotations

import torch

from ochmr_lit.setting_types import positive_pixels


def weak_perspective_to_translation(
    cam: torch.Tensor, focal_length: float = 5000.0, image_size: float = 224.0
) -> torch.Tensor:
    """SPIN's weak-perspective camera ``[s, tx, ty]`` to a camera translation in metres.

    ``t = [tx, ty, 2 f / (image_size * s + 1e-9)]``: the depth at which a perspective camera of focal
    length ``f`` px shows the body at the scale the weak-perspective camera gives it.

    Args:
        cam: ``(..., 3)`` ``[s, tx, ty]``; ``s`` maps metres to normalised crop coordinates ([-1, 1]).
        focal_length: pixels (SPIN: 5000 at 224 px).
        image_size: crop side in pixels.

    Returns:
        ``(..., 3)`` translation in metres.
    """
    if cam.shape[-1] != 3:
        raise ValueError(
            f"weak_perspective_to_translation expects (..., 3) [s, tx, ty], got {tuple(cam.shape)}"
        )
    s, tx, ty = cam.unbind(-1)
    tz = 2.0 * focal_length / (image_size * s + 1e-9)
    return torch.stack([tx, ty, tz], dim=-1)


def translation_to_weak_perspective(
    transl: torch.Tensor, focal_length: float = 5000.0, image_size: float = 224.0
) -> torch.Tensor:
    """Inverse of :func:`weak_perspective_to_translation`.

    Args:
        transl: ``(..., 3)`` camera translation in metres (``tz > 0``).
        focal_length: pixels.
        image_size: crop side in pixels.

    Returns:
        ``(..., 3)`` ``[s, tx, ty]``.
    """
    if transl.shape[-1] != 3:
        raise ValueError(f"translation_to_weak_perspective expects (..., 3), got {tuple(transl.shape)}")
    tx, ty, tz = transl.unbind(-1)
    s = (2.0 * focal_length / tz - 1e-9) / image_size
    return torch.stack([s, tx, ty], dim=-1)


def perspective_projection(
    points: torch.Tensor,
    translation: torch.Tensor,
    focal_length: float | torch.Tensor,
    camera_center: torch.Tensor,
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pinhole projection of 3D points to pixels: ``x = f * (R p + t)_xy / (R p + t)_z + c``.

    Args:
        points: ``(B, N, 3)`` metres.
        translation: ``(B, 3)`` metres.
        focal_length: pixels; a float, ``(B,)`` or ``(B, 2)`` (fx, fy).
        camera_center: ``(B, 2)`` pixels (principal point).
        rotation: ``(B, 3, 3)`` or None (identity).

    Returns:
        ``(B, N, 2)`` pixels.
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"perspective_projection expects points (B, N, 3), got {tuple(points.shape)}")
    if rotation is not None:
        points = torch.einsum("bij,bnj->bni", rotation, points)
    points = points + translation[:, None, :]
    xy = points[..., :2] / points[..., 2:3]
    f = torch.as_tensor(focal_length, dtype=points.dtype, device=points.device)
    if f.ndim == 0:
        f = f.expand(points.shape[0], 2)
    elif f.ndim == 1:
        f = f[:, None].expand(-1, 2)
    elif f.shape[-1] != 2:
        raise ValueError(f"focal_length must be a float, (B,) or (B, 2), got shape {tuple(f.shape)}")
    return xy * f[:, None, :] + camera_center[:, None, :]


#: SPIN's crop camera: focal length in px at a crop of :data:`SPIN_CROP_SIZE` px.
SPIN_FOCAL_LENGTH = 5000.0
SPIN_CROP_SIZE = 224


def crop_focal_length(crop_size: int, focal_length: float | None = None,
                      focal_length_224: float = SPIN_FOCAL_LENGTH) -> float:
    """Focal length in px of the crop camera of a model with ``crop_size`` px crops.

    Args:
        crop_size: crop side S in px.
        focal_length: the model's focal length in px at ``crop_size``; None = the rule below.
        focal_length_224: focal length in px at a 224 px crop (SPIN: 5000).
    Returns:
        ``focal_length`` when given, else ``focal_length_224 * crop_size / 224``: SPIN's field of view at any
        crop size (e.g. 1428.57 px at 64 px, 5000 px at 224 px).
    """
    if focal_length is not None:
        return positive_pixels(focal_length, "focal_length")
    scale = positive_pixels(crop_size, "crop_size") / SPIN_CROP_SIZE
    return positive_pixels(focal_length_224, "focal_length_224") * scale
