"""The regressor's crop camera, and one perspective camera of the full image that people are placed in.

**Crop camera.** The regressor predicts a weak-perspective camera of its crop, ``[s, tx, ty]`` in normalised
crop coordinates (the crop spans [-1, 1]), turned into a perspective one with focal length ``f`` px at the
crop side ``S`` px and translation ``t = [tx, ty, 2 f / (S s)]`` metres
(:func:`ochmr_lit.geometry.weak_perspective_to_translation`). SPIN uses ``f = 5000`` at ``S = 224``; a model
trained at another crop size uses ``f = 5000 S / 224`` (:func:`crop_focal_length`), the same field of view
(2.57 deg), so that the conversion describes the same camera at every crop size.

**Image camera.** In the image, all people share one camera, so they form one scene (depth-correct
compositing, side views, exported meshes that overlay the image): principal point at the image centre and
focal length ``F`` px, by default the image diagonal ``F = sqrt(W^2 + H^2)`` (:func:`image_focal_length`;
CLIFF's choice, a 53 deg diagonal field of view, a common guess for photos), or one that is given. Each person
gets the translation that keeps the crop's projection of its body origin (CLIFF's ``cam_crop2full``):

* scale: a metre at the body's origin spans ``s * b / 2`` image px, ``b`` the crop side in image px, so
  ``t_z = 2 F / (s b)``;
* position: the body's origin lands where the crop puts it, ``c + b s [tx, ty] / 2`` with ``c`` the crop
  centre in the image, so ``t_xy = [tx, ty] + 2 (c - image centre) / (s b)``.

This is exact at the body's origin (near the pelvis) and in the plane through it parallel to the image; other
points differ by the two cameras' different perspective: the image camera enlarges a point ``dz`` metres
nearer by ``1 / (1 - dz / t_z)`` about the origin, the crop camera by ``1 / (1 - dz s S / (2 f))``. The 2D
keypoints :mod:`ochmr_lit.inference.pipeline` writes are the crop camera's (the model's own 2D prediction,
which the 2D loss and the keypoint evaluation use), mapped back to the image (:func:`crop_points_to_image`).
"""

from __future__ import annotations

import math

import torch

from ochmr_lit.geometry import (  # noqa: F401  (crop camera rules re-exported here)
    SPIN_CROP_SIZE,
    SPIN_FOCAL_LENGTH,
    apply_affine,
    crop_focal_length,
    invert_affine,
    perspective_projection,
    positive_pixels,
)

#: ``focal_length_source`` of an image camera whose focal length is the image diagonal, or was given.
FOCAL_FROM_DIAGONAL = "image_diagonal"
FOCAL_GIVEN = "given"


def image_focal_length(image_size: tuple[int, int], focal_length: float | None = None) -> float:
    """Focal length in px of the full-image camera of a ``(W, H)`` px image.

    ``focal_length`` when given, else the image diagonal ``sqrt(W^2 + H^2)`` (800 px for 640 x 480).
    """
    if focal_length is not None:
        return positive_pixels(focal_length, "focal_length")
    width, height = image_size
    return math.hypot(float(width), float(height))


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


def crop_to_image_camera(cam: torch.Tensor, crop_affine: torch.Tensor, image_size: tuple[int, int],
                         crop_size: int, *, focal_length: float | None = None,
                         ) -> tuple[float, torch.Tensor, torch.Tensor]:
    """The full-image perspective camera of people predicted in crops of one image.

    Args:
        cam: (B, 3) weak-perspective ``[s, tx, ty]`` in normalised crop coordinates.
        crop_affine: (B, 2, 3) image px -> crop px of each person's crop.
        image_size: ``(W, H)`` px.
        crop_size: crop side S in px.
        focal_length: the image camera's focal length in px; None = the image diagonal
            (:func:`image_focal_length`).
    Returns:
        ``F`` (px), ``principal_point (2,)`` px (the image centre) and ``translation (B, 3)`` metres: a body
        point ``X`` (metres, body frame) projects to ``F (X + t)_xy / (X + t)_z + principal_point``. The crop
        camera's focal length plays no part: ``t_z = 2 F / (s b)`` with ``b`` the crop side in image px.
    """
    center, side = crop_geometry(crop_affine.to(cam.dtype), crop_size)
    width, height = image_size
    F = image_focal_length(image_size, focal_length)
    principal = torch.tensor([width / 2.0, height / 2.0], dtype=cam.dtype, device=cam.device)
    s, txy = cam[:, 0], cam[:, 1:]
    scale = s * side  # image px per metre x 2
    tz = 2.0 * F / (scale + 1e-9)
    txy = txy + 2.0 * (center - principal) / (scale[:, None] + 1e-9)
    return F, principal, torch.cat([txy, tz[:, None]], dim=1)


def crop_points_to_image(points: torch.Tensor, cam_t_crop: torch.Tensor, crop_focal: float, crop_size: int,
                         crop_affine: torch.Tensor) -> torch.Tensor:
    """Body points projected by each person's crop camera, in image px.

    Args:
        points: (B, N, 3) metres, body frame.
        cam_t_crop: (B, 3) metres, the crop camera's translation (focal ``crop_focal`` at ``crop_size``).
        crop_focal: crop camera focal length in px; crop_size: crop side S in px.
        crop_affine: (B, 2, 3) image px -> crop px.
    Returns:
        (B, N, 2) image px: the crop projection (principal point ``S / 2``) mapped back by the inverse crop affine.
    """
    centre = torch.full((points.shape[0], 2), crop_size / 2.0, dtype=points.dtype, device=points.device)
    in_crop = perspective_projection(points, cam_t_crop.to(points.dtype), crop_focal, centre)
    return apply_affine(invert_affine(crop_affine.to(points.dtype)), in_crop)
