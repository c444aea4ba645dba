"""Rotations: 6D, rotation matrices, axis-angle and quaternions, batched over leading dimensions and differentiable.

Rotation matrices act on column vectors (``p' = R @ p``). Hand-written because torchvision has no rotation utilities,
and smplx's ``batch_rodrigues`` adds ``1e-8`` to the rotation vector before taking its norm, which biases small
angles and has no inverse; the functions below are exact at 0 and stable near pi.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
