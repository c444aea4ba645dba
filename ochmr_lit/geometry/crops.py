"""Crop transforms between an image and a person's square crop, on numpy arrays (for ``cv2.warpAffine`` in the data
pipeline) or torch tensors alike. Pixels as OpenCV uses them (pixel centres at integer coordinates, x to the right,
y down), so the matrices can be handed to ``cv2.warpAffine`` unchanged."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)

# SPIN stores a person's box as ``scale = box_side / 200`` (pixels); see size_to_spin_scale.
SPIN_SCALE_UNIT = 200.0


def _xp(x: Any) -> Any:
    """The array module for ``x``: torch for tensors, numpy otherwise."""
    return torch if isinstance(x, torch.Tensor) else np


def _like(value: Any, ref: Any) -> Any:
    """``value`` as the same kind of array as ``ref`` (dtype float, device of ``ref`` for torch)."""
    if isinstance(ref, torch.Tensor):
        dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
        return torch.as_tensor(value, dtype=dtype, device=ref.device)
    return np.asarray(value, dtype=np.result_type(np.asarray(ref).dtype, np.float64))


def size_to_spin_scale(size: Array) -> Array:
    """Square crop side (px) to SPIN's ``scale`` (``size / 200``)."""
    return size / SPIN_SCALE_UNIT


def spin_scale_to_size(scale: Array) -> Array:
    """SPIN's ``scale`` to the square crop side in pixels (``scale * 200``)."""
    return scale * SPIN_SCALE_UNIT


def box_to_center_size(box_xywh: Array, scale_factor: float = 1.2) -> tuple[Array, Array]:
    """Person box to the square crop around it.

    Args:
        box_xywh: ``(..., 4)`` ``[x, y, w, h]`` pixels (top-left corner, width, height).
        scale_factor: side of the square = ``scale_factor * max(w, h)`` (SPIN and the paper: 1.2).

    Returns:
        ``center (..., 2)`` pixels and ``size (...,)`` pixels.
    """
    box = _like(box_xywh, box_xywh)
    if box.shape[-1] != 4:
        raise ValueError(f"box_to_center_size expects (..., 4) [x, y, w, h], got shape {tuple(box.shape)}")
    xp = _xp(box)
    center = box[..., :2] + box[..., 2:] / 2.0
    size = scale_factor * xp.maximum(box[..., 2], box[..., 3])
    return center, size


def crop_affine(
    center: Array, size: Array | float, out_size: int, rotation_deg: Array | float = 0.0
) -> Array:
    """Affine map from image pixels to crop pixels.

    The crop is the square of side ``size`` centred at ``center``, turned by ``rotation_deg``
    counter-clockwise as seen on screen (y down), resampled to ``out_size x out_size``. Its corners map
    to the crop corners ((0, 0) is the corner that is top-left before turning), and ``center`` maps to
    ``(out_size / 2, out_size / 2)``. Because the window is turned counter-clockwise, image content
    appears turned clockwise in the crop: the linear part equals
    ``cv2.getRotationMatrix2D(center, -rotation_deg, out_size / size)``, and SPIN's ``rot`` argument
    has the opposite sign (SPIN ``rot = r`` equals ``rotation_deg = -r``). Without rotation:
    ``q = out_size / size * (p - center) + out_size / 2`` (SPIN's and mmpose's map, without a
    half-pixel correction).

    Args:
        center: ``(..., 2)`` pixels.
        size: ``(...,)`` or scalar, square side in pixels.
        out_size: crop side in pixels.
        rotation_deg: ``(...,)`` or scalar, degrees.

    Returns:
        ``(..., 2, 3)`` matrices ``A`` with ``q = A[..., :2] @ p + A[..., 2]``; same array type as ``center``
        (``cv2.warpAffine(image, A, (out_size, out_size))`` produces the crop).
    """
    center = _like(center, center)
    if center.shape[-1] != 2:
        raise ValueError(f"crop_affine expects center (..., 2), got shape {tuple(center.shape)}")
    xp = _xp(center)
    size = _like(size, center)
    rot = _like(rotation_deg, center) * (math.pi / 180.0)
    lead = xp.broadcast_shapes(tuple(center.shape[:-1]), tuple(size.shape), tuple(rot.shape))
    k = out_size / size
    c, s = xp.cos(rot), xp.sin(rot)
    # Crop = k * Rz^T (p - center) + out/2 where Rz turns the window counter-clockwise on screen.
    m00, m01 = k * c, -k * s
    m10, m11 = k * s, k * c
    cx, cy = center[..., 0], center[..., 1]
    t0 = out_size / 2.0 - (m00 * cx + m01 * cy)
    t1 = out_size / 2.0 - (m10 * cx + m11 * cy)
    rows = [xp.broadcast_to(v, lead) for v in (m00, m01, t0, m10, m11, t1)]
    return xp.stack(rows, -1).reshape(*lead, 2, 3)


def invert_affine(A: Array) -> Array:
    """Inverse of 2D affine maps.

    Args:
        A: ``(..., 2, 3)``.

    Returns:
        ``(..., 2, 3)`` with ``apply_affine(invert_affine(A), apply_affine(A, p)) == p``.
    """
    if tuple(A.shape[-2:]) != (2, 3):
        raise ValueError(f"invert_affine expects (..., 2, 3), got shape {tuple(A.shape)}")
    xp = _xp(A)
    M, t = A[..., :2], A[..., 2]
    Minv = xp.linalg.inv(M)
    tinv = -(Minv @ t[..., None])[..., 0]
    return xp.concatenate([Minv, tinv[..., None]], -1)


def apply_affine(A: Array, points: Array) -> Array:
    """Apply 2D affine maps to points.

    Args:
        A: ``(..., 2, 3)``.
        points: ``(..., N, 2)`` pixels.

    Returns:
        ``(..., N, 2)``: ``points @ A[..., :2].T + A[..., 2]``.
    """
    if tuple(A.shape[-2:]) != (2, 3):
        raise ValueError(f"apply_affine expects A (..., 2, 3), got shape {tuple(A.shape)}")
    if points.shape[-1] != 2:
        raise ValueError(f"apply_affine expects points (..., N, 2), got shape {tuple(points.shape)}")
    M, t = A[..., :2], A[..., 2]
    return points @ _swap_last(M) + t[..., None, :]


def _swap_last(M: Array) -> Array:
    """Swap the last two axes of a numpy array or tensor."""
    return M.transpose(-1, -2) if isinstance(M, torch.Tensor) else np.swapaxes(M, -1, -2)
