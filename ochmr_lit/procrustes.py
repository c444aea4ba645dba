"""Similarity Procrustes alignment (Umeyama), batched: the fit behind PA-MPJPE.

Hand-written because torch has no batched similarity fit; the 3 x 3 eigen-decomposition is closed form
(element-wise over the batch) since LAPACK's batched ``eigh`` solves one small matrix at a time.
"""

from __future__ import annotations

import math

import torch


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
    # an eigen-decomposition of K^T K resolves singular values to about sqrt(eps) of the largest: below 1e-6
    # of it, use the SVD
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
