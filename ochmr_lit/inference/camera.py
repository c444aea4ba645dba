"""From the crop camera the regressor predicts to one perspective camera of the full image.

The regressor's camera is weak-perspective in the crop, ``[s, tx, ty]``, turned into a perspective one
with focal length ``f`` px at the crop side ``S`` px (SPIN: 5000 at 224) and translation
``t = [tx, ty, 2 f / (S s)]`` (:func:`ochmr_lit.geometry.weak_perspective_to_translation`).

In the image, all people share one camera, so they form one scene (depth-correct compositing, side
views): principal point at the image centre, focal length ``F = f * max(W, H) / S`` (the crop's focal
length scaled to image pixels), and each person gets the translation that keeps the crop's projection:

* scale: a metre at the body's origin spans ``s * b / 2`` image px, ``b`` the crop side in image px, so
  ``t_z = 2 F / (s b)``;
* position: the body's origin lands where the crop puts it, ``c + b s [tx, ty] / 2`` with ``c`` the crop
  centre in the image, so ``t_xy = [tx, ty] + 2 (c - image centre) / (s b)``.

This is exact at the body's origin (the pelvis) and holds elsewhere up to the perspective difference
between the two depths (a fraction of a pixel for people whose depth extent is small against ``t_z``).
"""

from __future__ import annotations

import torch


def crop_geometry(crop_affine: torch.Tensor, crop_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and side of evaluation crops in the image.

    Args:
        crop_affine: (B, 2, 3) image px -> crop px, a scaled identity plus a shift (no rotation or flip).
        crop_size: crop side S in px.
    Returns:
        ``center (B, 2)`` image px (maps to ``S / 2``) and ``side (B,)`` image px (maps to ``S``).
    Raises:
        ValueError: an affine with rotation, flip or unequal axis scales (augmented crops).
    """
    linear = crop_affine[..., :2]
    k = linear[..., 0, 0]
    off = linear - k[..., None, None] * torch.eye(2, dtype=linear.dtype, device=linear.device)
    if bool((off.abs() > 1e-6 * k.abs()[..., None, None]).any()) or bool((k <= 0).any()):
        raise ValueError("crop_affine must scale and shift only (evaluation crops); augmented crops with rotation "
                         "or flip have no single full-image camera")
    center = (crop_size / 2.0 - crop_affine[..., 2]) / k[..., None]
    return center, crop_size / k


def image_focal_length(image_size: tuple[int, int], focal_length: float, crop_size: int) -> float:
    """``F = focal_length * max(W, H) / crop_size``: the crop focal length scaled to image pixels."""
    width, height = image_size
    return float(focal_length) * max(width, height) / float(crop_size)


def crop_to_image_camera(cam: torch.Tensor, crop_affine: torch.Tensor, image_size: tuple[int, int],
                         focal_length: float, crop_size: int) -> tuple[float, torch.Tensor, torch.Tensor]:
    """The full-image perspective camera of people predicted in crops of one image.

    Args:
        cam: (B, 3) weak-perspective ``[s, tx, ty]`` in normalised crop coordinates.
        crop_affine: (B, 2, 3) image px -> crop px of each person's crop.
        image_size: ``(W, H)`` px.
        focal_length: crop camera focal length in px at ``crop_size``.
        crop_size: crop side S in px.
    Returns:
        ``F`` (px), ``principal_point (2,)`` px (the image centre) and ``translation (B, 3)`` metres: a body
        point ``X`` (metres, body frame) projects to ``F (X + t)_xy / (X + t)_z + principal_point``.
    """
    center, side = crop_geometry(crop_affine.to(cam.dtype), crop_size)
    width, height = image_size
    F = image_focal_length(image_size, focal_length, crop_size)
    principal = torch.tensor([width / 2.0, height / 2.0], dtype=cam.dtype, device=cam.device)
    s, txy = cam[:, 0], cam[:, 1:]
    scale = s * side  # image px per metre x 2
    tz = 2.0 * F / (scale + 1e-9)
    txy = txy + 2.0 * (center - principal) / (scale[:, None] + 1e-9)
    return F, principal, torch.cat([txy, tz[:, None]], dim=1)
