"""Rotations, cameras, projection and crop transforms (Procrustes alignment: ochmr_lit.procrustes).

Conventions used throughout:

* Torch functions are batched over any leading dimensions (``...``) and differentiable.
* Lengths are in metres unless a name says otherwise; image coordinates are pixels as OpenCV uses
  them (pixel centres at integer coordinates, x to the right, y down), so the crop matrices below can
  be handed to ``cv2.warpAffine`` unchanged.
* Rotation matrices act on column vectors (``p' = R @ p``).

Hand-written parts and why: torchvision has no rotation utilities, and smplx's ``batch_rodrigues``
adds ``1e-8`` to the rotation vector before taking its norm, which biases small angles and has no
inverse; the functions below are exact at 0 and stable near pi. Crop transforms accept numpy (for
``cv2.warpAffine`` in the data pipeline) as well as torch.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

Array = TypeVar("Array", np.ndarray, torch.Tensor)

# SPIN stores a person's box as ``scale = box_side / 200`` (pixels); see size_to_spin_scale.
SPIN_SCALE_UNIT = 200.0

# ---------------------------------------------------------------------------------------------------------
# Rotations
# ---------------------------------------------------------------------------------------------------------


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """6D rotation representation to rotation matrices (Zhou et al. 2019, in SPIN's layout).

    ``x`` is viewed as ``(..., 3, 2)``; its columns ``a1 = x[..., :, 0]`` and ``a2 = x[..., :, 1]`` are
    orthonormalised by Gram-Schmidt into ``b1, b2``, ``b3 = b1 x b2``, and
    ``R = stack([b1, b2, b3], dim=-1)`` (the b's are the columns of R).

    Args:
        x: ``(..., 6)``.

    Returns:
        ``(..., 3, 3)`` rotation matrices (orthonormal, determinant +1).
    """
    if x.shape[-1] != 6:
        raise ValueError(f"rot6d_to_rotmat expects (..., 6), got shape {tuple(x.shape)}")
    m = x.reshape(*x.shape[:-1], 3, 2)
    a1, a2 = m[..., 0], m[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def rotmat_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to the 6D representation of :func:`rot6d_to_rotmat` (its exact inverse on rotations).

    Args:
        R: ``(..., 3, 3)``.

    Returns:
        ``(..., 6)``: the first two columns of ``R`` laid out as SPIN's ``(3, 2)`` view.
    """
    _check_rotmat_shape(R, "rotmat_to_rot6d")
    return R[..., :, :2].reshape(*R.shape[:-2], 6)


def _check_rotmat_shape(R: torch.Tensor, fn: str) -> None:
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"{fn} expects (..., 3, 3), got shape {tuple(R.shape)}")


def _skew(v: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` -> ``(..., 3, 3)`` cross-product matrix ``[v]_x``."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape, 3)


def axis_angle_to_rotmat(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle (rotation vectors, radians) to rotation matrices by Rodrigues' formula.

    ``R = I + A [v]_x + B [v]_x^2`` with ``A = sin(t)/t`` and ``B = (1 - cos t)/t^2``; both use their
    Taylor series for ``t^2 < 1e-4`` so the result and its gradient are exact at the zero rotation.

    Args:
        aa: ``(..., 3)`` rotation vectors, angle = norm in radians.

    Returns:
        ``(..., 3, 3)``.
    """
    if aa.shape[-1] != 3:
        raise ValueError(f"axis_angle_to_rotmat expects (..., 3), got shape {tuple(aa.shape)}")
    t2 = (aa * aa).sum(-1)
    small = t2 < 1e-4
    t = torch.sqrt(torch.where(small, torch.ones_like(t2), t2))
    a = torch.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, torch.sin(t) / t)
    half = torch.sin(t / 2) / t
    b = torch.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0, 2.0 * half * half)
    K = _skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(K.shape)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def _sqrt_positive(x: torch.Tensor) -> torch.Tensor:
    """sqrt(max(x, 0)) with a zero (not NaN) gradient where x <= 0."""
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def rotmat_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to unit quaternions ``(w, x, y, z)`` with ``w >= 0``.

    Shepperd's method: of the four algebraically equal formulas, each sample uses the one with the
    largest denominator, so the result is accurate for every angle including pi.

    Args:
        R: ``(..., 3, 3)``.

    Returns:
        ``(..., 4)``.
    """
    _check_rotmat_shape(R, "rotmat_to_quaternion")
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # 2 * |w|, 2 * |x|, 2 * |y|, 2 * |z|
    q_abs = _sqrt_positive(
        torch.stack(
            [
                1.0 + m00 + m11 + m22,
                1.0 + m00 - m11 - m22,
                1.0 - m00 + m11 - m22,
                1.0 - m00 - m11 + m22,
            ],
            dim=-1,
        )
    )
    # Row i: 4 * q_i * q, for the candidate where component i is the pivot.
    cand = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], dim=-1),
        ],
        dim=-2,
    )
    cand = cand / (2.0 * q_abs[..., None].clamp_min(0.1))
    best = q_abs.argmax(dim=-1)
    idx = best[..., None, None].expand(*best.shape, 1, 4)
    q = torch.gather(cand, -2, idx).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(w, x, y, z)`` to rotation vectors with angle in ``[0, pi]`` (radians).

    Args:
        q: ``(..., 4)``.

    Returns:
        ``(..., 3)``.
    """
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    n2 = (v * v).sum(-1)
    small = n2 < 1e-8
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    # angle / |v| with angle = 2 atan2(|v|, w); series 2/w - 2|v|^2/(3 w^3) when |v| -> 0 (then w -> 1).
    w_safe = torch.where(small, w.clamp_min(0.5), w)
    factor = torch.where(small, 2.0 / w_safe - 2.0 * n2 / (3.0 * w_safe**3), 2.0 * torch.atan2(n, w) / n)
    return v * factor[..., None]


def rotmat_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to rotation vectors (radians), angle in ``[0, pi]``; stable at 0 and near pi.

    Args:
        R: ``(..., 3, 3)``.

    Returns:
        ``(..., 3)``.
    """
    return quaternion_to_axis_angle(rotmat_to_quaternion(R))


# ---------------------------------------------------------------------------------------------------------
# Cameras and projection
# ---------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------
# Crop transforms (numpy or torch)
# ---------------------------------------------------------------------------------------------------------


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


#: SPIN's crop camera: focal length in px at a crop of :data:`SPIN_CROP_SIZE` px.
SPIN_FOCAL_LENGTH = 5000.0
SPIN_CROP_SIZE = 224


def positive_pixels(value: float, name: str = "focal_length") -> float:
    """``value`` as a float; a ValueError naming ``name`` unless it is a finite positive number (of px)."""
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value}: must be a positive number of pixels")
    return value


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
