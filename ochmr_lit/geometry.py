"""Rotations, cameras, projection, crop transforms and Procrustes alignment.

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


# ---------------------------------------------------------------------------------------------------------
# Procrustes
# ---------------------------------------------------------------------------------------------------------


def _working_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for reduced-precision floats (the SVD and the centring lose digits in float32)."""
    return torch.float64 if dtype in (torch.float32, torch.float16, torch.bfloat16) else dtype


#: Relative eigenvalue gap of K^T K below which the closed-form eigenvectors lose digits (their error grows
#: like eps * |A| / gap): such samples are solved by LAPACK's ``eigh`` instead.
_CLOSED_FORM_MIN_GAP = 1e-3


def _eigenvector_of(A: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Unit eigenvector (B, 3) of symmetric A (B, 3, 3) for a simple eigenvalue ``lam`` (B,).

    The rows of A - lam I span the plane orthogonal to the eigenvector: the largest of their three cross
    products is taken (the most accurate one).
    """
    M = A - lam[:, None, None] * torch.eye(3, dtype=A.dtype, device=A.device)
    r0, r1, r2 = M[:, 0], M[:, 1], M[:, 2]
    c = torch.stack([torch.linalg.cross(r0, r1), torch.linalg.cross(r0, r2), torch.linalg.cross(r1, r2)], 1)
    norms = (c * c).sum(-1)  # (B, 3)
    best = norms.argmax(1)
    v = c[torch.arange(len(c), device=c.device), best]
    return v / norms.gather(1, best[:, None]).sqrt().clamp_min(torch.finfo(A.dtype).tiny)


def _symmetric_eigen_3x3(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-decomposition of symmetric (B, 3, 3) matrices, descending eigenvalues.

    Closed form, element-wise over the batch (LAPACK's batched ``eigh`` solves one 3 x 3 matrix at a time
    and dominated PA-MPJPE's cost): eigenvalues by the trigonometric solution of the characteristic cubic,
    eigenvectors of the largest two by cross products, the third completing a right-handed basis. Samples
    whose eigenvalues lie within ``_CLOSED_FORM_MIN_GAP`` of the largest (relative) go to ``eigh``.

    Returns:
        eigenvalues (B, 3) descending, V (B, 3, 3) with the eigenvectors as columns.
    """
    a00, a11, a22 = A[:, 0, 0], A[:, 1, 1], A[:, 2, 2]
    a01, a02, a12 = A[:, 0, 1], A[:, 0, 2], A[:, 1, 2]
    q = (a00 + a11 + a22) / 3.0
    b00, b11, b22 = a00 - q, a11 - q, a22 - q
    p = ((b00 * b00 + b11 * b11 + b22 * b22 + 2.0 * (a01 * a01 + a02 * a02 + a12 * a12)) / 6.0).sqrt()
    tiny = torch.finfo(A.dtype).tiny
    p_safe = p.clamp_min(tiny)
    det_b = b00 * (b11 * b22 - a12 * a12) - a01 * (a01 * b22 - a12 * a02) + a02 * (a01 * a12 - b11 * a02)
    phi = torch.acos((det_b / (2.0 * p_safe**3)).clamp(-1.0, 1.0)) / 3.0
    lam1 = q + 2.0 * p * torch.cos(phi)
    lam3 = q + 2.0 * p * torch.cos(phi + 2.0 * math.pi / 3.0)
    lam2 = 3.0 * q - lam1 - lam3
    evals = torch.stack([lam1, lam2, lam3], -1)
    v1 = _eigenvector_of(A, lam1)
    v2 = _eigenvector_of(A, lam2)
    v2 = v2 - (v1 * v2).sum(-1, keepdim=True) * v1
    v2 = v2 / torch.linalg.vector_norm(v2, dim=-1, keepdim=True).clamp_min(tiny)
    V = torch.stack([v1, v2, torch.linalg.cross(v1, v2)], -1)
    gap = _CLOSED_FORM_MIN_GAP * lam1.abs()
    # written as "not well separated" so that NaN (p = 0: a multiple of the identity) counts as close
    close = ~(((lam1 - lam2) > gap) & ((lam2 - lam3) > gap) & (lam1.abs() > tiny))
    if bool(close.any()):
        w, U = torch.linalg.eigh(A[close])  # ascending
        evals[close], V[close] = w.flip(-1), U.flip(-1)
    return evals, V


def _procrustes_rotation(K: torch.Tensor) -> torch.Tensor:
    """The proper rotation R (B, 3, 3) maximising tr(R K): R = V diag(1, 1, sign det(V U^T)) U^T for K = U S V^T.

    The SVD is formed from the symmetric eigen-decomposition of K^T K (closed form, see
    :func:`_symmetric_eigen_3x3`; a batched 3x3 SVD is several times slower on CPUs): V and S from it;
    u1, u2 = K v / s; u3 = u1 x u2, so det U = +1 and the determinant
    fix becomes det V (the sign of the third singular triplet cancels). Samples whose second singular value
    vanishes (fewer than three non-collinear points) fall back to ``torch.linalg.svd``.
    """
    evals, V = _symmetric_eigen_3x3(K.transpose(-1, -2) @ K)  # descending eigenvalues
    sigma = evals.clamp_min(0).sqrt()
    KV = K @ V  # columns s_i u_i
    # eigh of K^T K resolves singular values to about sqrt(eps) of the largest: below 1e-6 of it, use the SVD
    degenerate = (sigma[..., 1] <= 1e-6 * sigma[..., 0]) | (sigma[..., 0] <= torch.finfo(K.dtype).tiny)
    u1 = KV[..., 0] / sigma[..., 0:1].clamp_min(torch.finfo(K.dtype).tiny)
    u2 = KV[..., 1] - (u1 * KV[..., 1]).sum(-1, keepdim=True) * u1  # re-orthogonalised against u1
    u2 = u2 / torch.linalg.vector_norm(u2, dim=-1, keepdim=True).clamp_min(torch.finfo(K.dtype).tiny)
    U = torch.stack([u1, u2, torch.linalg.cross(u1, u2)], dim=-1)
    d = torch.where(torch.linalg.det(V) < 0, -1.0, 1.0).to(K.dtype)
    V = torch.cat([V[..., :2], V[..., 2:] * d[:, None, None]], dim=-1)  # V diag(1, 1, det V)
    R = V @ U.transpose(-1, -2)
    if bool(degenerate.any()):
        Ud, _, Vhd = torch.linalg.svd(K[degenerate])
        Vd = Vhd.transpose(-1, -2)
        sign = torch.where(torch.linalg.det(Ud) * torch.linalg.det(Vhd) < 0, -1.0, 1.0).to(K.dtype)
        Vd = torch.cat([Vd[..., :2], Vd[..., 2:] * sign[:, None, None]], dim=-1)
        R[degenerate] = Vd @ Ud.transpose(-1, -2)
    return R


def _similarity_fit(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """scale ``(B,)``, R ``(B, 3, 3)``, t ``(B, 3)`` in the working dtype; see similarity_transform."""
    if pred.ndim != 3 or pred.shape[-1] != 3 or pred.shape != target.shape:
        raise ValueError(
            f"similarity_transform expects pred and target (B, N, 3) of equal shape, "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if mask is not None and tuple(mask.shape) != tuple(pred.shape[:2]):
        raise ValueError(f"mask must be (B, N) = {tuple(pred.shape[:2])}, got {tuple(mask.shape)}")
    work = _working_dtype(pred.dtype)
    X, Y = pred.to(work), target.to(work)
    if mask is None:  # the common case, without the weights' extra passes
        mu_x, mu_y = X.mean(1), Y.mean(1)
        Xc, Yc = X - mu_x[:, None], Y - mu_y[:, None]
        var_x = (Xc * Xc).sum((1, 2))
        Xw = Xc
    else:
        w = mask.to(work)
        n = w.sum(1).clamp_min(1.0)  # (B,)
        mu_x = (w[..., None] * X).sum(1) / n[:, None]
        mu_y = (w[..., None] * Y).sum(1) / n[:, None]
        Xc, Yc = X - mu_x[:, None], Y - mu_y[:, None]
        Xw = w[..., None] * Xc
        var_x = (Xw * Xc).sum((1, 2))
    # K = sum_n w_n x_n y_n^T (3 x 3, always transposed the same way whatever the batch size);
    # for K = U S V^T the optimal proper rotation is R = V diag(1, 1, sign det(V U^T)) U^T.
    K = Xw.transpose(1, 2) @ Yc
    R = _procrustes_rotation(K)
    scale = (R * K.transpose(-1, -2)).sum((-1, -2)) / var_x.clamp_min(torch.finfo(work).tiny)  # tr(R K)
    t = mu_y - scale[:, None] * torch.einsum("bij,bj->bi", R, mu_x)
    return scale, R, t


def similarity_transform(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity transform taking ``pred`` onto ``target`` (Umeyama), per sample.

    Finds ``scale, R, t`` minimising ``sum_n mask_n |scale * R @ pred_n + t - target_n|^2`` with ``R`` a
    proper rotation (determinant sign fix), ``scale = tr(R K) / var(pred)``,
    ``t = mu_target - scale R mu_pred``. Batched (no per-sample loop) and correct for every batch size.
    float32/half inputs are solved in float64; outputs have the input dtype.

    Args:
        pred: ``(B, N, 3)``, e.g. metres.
        target: ``(B, N, 3)``, same unit.
        mask: ``(B, N)`` bool or None; joints with ``False`` take no part in the fit. A sample with fewer
            than three unmasked, non-collinear joints has no unique fit (its scale is then 0).

    Returns:
        ``scale (B,)``, ``R (B, 3, 3)``, ``t (B, 3)`` (same unit as the inputs).
    """
    scale, R, t = _similarity_fit(pred, target, mask)
    return scale.to(pred.dtype), R.to(pred.dtype), t.to(pred.dtype)


def similarity_procrustes(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``pred`` aligned to ``target`` by the per-sample similarity transform of :func:`similarity_transform`.

    Masked joints take no part in the fit but are still transformed.

    Args:
        pred: ``(B, N, 3)``, e.g. metres.
        target: ``(B, N, 3)``, same unit.
        mask: ``(B, N)`` bool or None.

    Returns:
        ``(B, N, 3)`` in the input dtype (computed in float64 for float32 input).
    """
    scale, R, t = _similarity_fit(pred, target, mask)
    X = pred.to(scale.dtype)
    aligned = scale[:, None, None] * torch.einsum("bij,bnj->bni", R, X) + t[:, None]
    return aligned.to(pred.dtype)
