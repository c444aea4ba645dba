"""Rotations, cameras, crops and Procrustes in ochmr_lit.geometry, checked against scipy, OpenCV and
a plain per-sample numpy Procrustes."""

import math

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from ochmr_lit.geometry import (
    apply_affine,
    axis_angle_to_rotmat,
    box_to_center_size,
    crop_affine,
    invert_affine,
    perspective_projection,
    rot6d_to_rotmat,
    rotmat_to_axis_angle,
    rotmat_to_rot6d,
    size_to_spin_scale,
    spin_scale_to_size,
    translation_to_weak_perspective,
    weak_perspective_to_translation,
)
from ochmr_lit.procrustes import similarity_procrustes, similarity_transform


def _random_rotmats(n: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(Rotation.random(n, random_state=seed).as_matrix())


# --------------------------------------------------------------------------------------------------------
# 6D
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_rot6d_output_is_a_rotation(dtype, tol):
    x = torch.randn(4, 24, 6, generator=torch.Generator().manual_seed(0), dtype=dtype)
    R = rot6d_to_rotmat(x)
    assert R.shape == (4, 24, 3, 3) and R.dtype == dtype
    eye = torch.eye(3, dtype=dtype)
    assert torch.allclose(R.transpose(-1, -2) @ R, eye.expand_as(R), atol=tol)
    assert torch.allclose(torch.linalg.det(R), torch.ones(4, 24, dtype=dtype), atol=tol)


def test_rot6d_uses_spin_layout():
    # SPIN views x as (3, 2): the first column of R is the normalised (x0, x2, x4).
    x = torch.tensor([[3.0, 0.5, 0.0, 2.0, 4.0, -1.0]], dtype=torch.float64)
    R = rot6d_to_rotmat(x)[0]
    a1 = torch.tensor([3.0, 0.0, 4.0], dtype=torch.float64) / 5.0
    assert torch.allclose(R[:, 0], a1, atol=1e-12)
    a2 = torch.tensor([0.5, 2.0, -1.0], dtype=torch.float64)
    b2 = a2 - (a1 @ a2) * a1
    assert torch.allclose(R[:, 1], b2 / b2.norm(), atol=1e-12)
    assert torch.allclose(R[:, 2], torch.linalg.cross(R[:, 0], R[:, 1]), atol=1e-12)
    identity6d = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    assert torch.equal(rot6d_to_rotmat(identity6d), torch.eye(3))


def test_rot6d_round_trip():
    R = _random_rotmats(500, seed=1)
    assert (rot6d_to_rotmat(rotmat_to_rot6d(R)) - R).abs().max() < 1e-12
    R32 = R.float()
    assert (rot6d_to_rotmat(rotmat_to_rot6d(R32)) - R32).abs().max() < 1e-5
    x = torch.randn(10, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    R2 = rot6d_to_rotmat(x)
    assert (rot6d_to_rotmat(rotmat_to_rot6d(R2)) - R2).abs().max() < 1e-12


def test_rot6d_gradient_is_finite():
    x = torch.randn(8, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rot6d_to_rotmat, (x,))


# --------------------------------------------------------------------------------------------------------
# Axis-angle
# --------------------------------------------------------------------------------------------------------


def _axis_angles(angles: np.ndarray, seed: int) -> np.ndarray:
    axes = np.random.default_rng(seed).normal(size=(len(angles), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return axes * angles[:, None]


def test_axis_angle_to_rotmat_equals_scipy():
    rng = np.random.default_rng(3)
    angles = np.concatenate([rng.uniform(0, math.pi, 200), [0.0, 1e-9, 1e-6, 1e-3, 9e-3, 0.011, math.pi]])
    aa = _axis_angles(angles, seed=4)
    R = axis_angle_to_rotmat(torch.from_numpy(aa))
    assert np.abs(R.numpy() - Rotation.from_rotvec(aa).as_matrix()).max() < 1e-12


@pytest.mark.parametrize(
    "angles",
    [
        np.random.default_rng(5).uniform(0.0, math.pi - 1e-3, 300),  # random
        np.array([0.0, 1e-12, 1e-9, 1e-7, 1e-5, 1e-4, 1e-3, 0.0099, 0.0101, 0.05]),  # near 0
        math.pi - np.array([1e-3, 1e-4, 1e-5, 1e-6, 1e-7]),  # near pi
    ],
    ids=["random", "near_0", "near_pi"],
)
def test_axis_angle_round_trip(angles):
    aa = torch.from_numpy(_axis_angles(angles, seed=6))
    back = rotmat_to_axis_angle(axis_angle_to_rotmat(aa))
    assert (back - aa).abs().max() < 1e-5
    assert (axis_angle_to_rotmat(back) - axis_angle_to_rotmat(aa)).abs().max() < 1e-12


def test_rotmat_to_axis_angle_equals_scipy_and_round_trips():
    R = _random_rotmats(400, seed=7)
    aa = rotmat_to_axis_angle(R)
    assert np.abs(aa.numpy() - Rotation.from_matrix(R.numpy()).as_rotvec()).max() < 1e-10
    assert (axis_angle_to_rotmat(aa) - R).abs().max() < 1e-12
    # Exactly pi: the sign of the axis is ambiguous, the rotation is not.
    half_turns = torch.from_numpy(_axis_angles(np.full(20, math.pi), seed=8))
    R_pi = axis_angle_to_rotmat(half_turns)
    aa_pi = rotmat_to_axis_angle(R_pi)
    assert (aa_pi.norm(dim=-1) - math.pi).abs().max() < 1e-6
    assert (axis_angle_to_rotmat(aa_pi) - R_pi).abs().max() < 1e-6


def test_axis_angle_float32_round_trip():
    angles = np.concatenate([np.random.default_rng(9).uniform(0, 3.1, 100), [0.0, 1e-6, 1e-3]])
    aa = torch.from_numpy(_axis_angles(angles, seed=10)).float()
    back = rotmat_to_axis_angle(axis_angle_to_rotmat(aa))
    assert back.dtype == torch.float32
    assert (back - aa).abs().max() < 1e-5


def test_axis_angle_gradients_are_finite_and_exact_at_zero():
    zero = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    R = axis_angle_to_rotmat(zero)
    # dR/d(aa) at 0 is the cross-product matrix: d R[2, 1] / d aa_x = +1.
    (g,) = torch.autograd.grad(R[0, 2, 1], zero)
    assert torch.allclose(g, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))
    aa = torch.from_numpy(_axis_angles(np.array([1e-6, 0.5, 2.0, 3.0]), seed=11)).requires_grad_(True)
    assert torch.autograd.gradcheck(axis_angle_to_rotmat, (aa,))
    R = _random_rotmats(4, seed=12).requires_grad_(True)
    assert torch.autograd.gradcheck(rotmat_to_axis_angle, (R,))
    near = axis_angle_to_rotmat(torch.from_numpy(_axis_angles(np.array([0.0, math.pi - 1e-4]), 13)))
    near.requires_grad_(True)
    rotmat_to_axis_angle(near).sum().backward()
    assert torch.isfinite(near.grad).all()


# --------------------------------------------------------------------------------------------------------
# Cameras
# --------------------------------------------------------------------------------------------------------


def test_weak_perspective_translation_values_and_round_trip():
    cam = torch.tensor([[0.9, 0.1, -0.2], [1.3, -0.05, 0.3]], dtype=torch.float64)
    t = weak_perspective_to_translation(cam)
    assert torch.allclose(t[:, :2], cam[:, 1:])
    assert t[0, 2].item() == pytest.approx(2 * 5000.0 / (224.0 * 0.9), rel=1e-9)  # 49.603 m
    assert torch.allclose(translation_to_weak_perspective(t), cam, atol=1e-12)
    t2 = weak_perspective_to_translation(cam, focal_length=1000.0, image_size=256.0)
    assert t2[1, 2].item() == pytest.approx(2000.0 / (256.0 * 1.3), rel=1e-9)
    assert torch.allclose(translation_to_weak_perspective(t2, 1000.0, 256.0), cam, atol=1e-12)


def test_projection_of_optical_axis_lands_on_camera_center():
    B = 3
    points = torch.tensor([[[0.0, 0.0, 2.0], [0.0, 0.0, 7.5]]]).expand(B, 2, 3)
    center = torch.tensor([[112.0, 112.0], [320.0, 240.0], [0.0, 50.0]])
    for f in (5000.0, torch.tensor([500.0, 1000.0, 1500.0]), torch.tensor([[500.0, 600.0]] * B)):
        px = perspective_projection(points, torch.zeros(B, 3), f, center)
        assert torch.allclose(px, center[:, None].expand(B, 2, 2))


def test_projection_matches_intrinsics_matrix():
    g = torch.Generator().manual_seed(14)
    B, N = 4, 10
    points = torch.randn(B, N, 3, generator=g, dtype=torch.float64)
    transl = torch.tensor([0.1, -0.2, 6.0], dtype=torch.float64).expand(B, 3)
    R = _random_rotmats(B, seed=15)
    f = torch.tensor([[1000.0, 1100.0]], dtype=torch.float64).expand(B, 2)
    c = torch.tensor([[300.0, 200.0]], dtype=torch.float64).expand(B, 2)
    px = perspective_projection(points, transl, f, c, rotation=R)
    K = torch.tensor([[1000.0, 0, 300.0], [0, 1100.0, 200.0], [0, 0, 1]], dtype=torch.float64)
    cam = points @ R.transpose(-1, -2) + transl[:, None]
    hom = cam @ K.T
    assert torch.allclose(px, hom[..., :2] / hom[..., 2:], atol=1e-9)
    # A (B,) focal length equals the same value given as (B, 2).
    fb = torch.full((B,), 1000.0, dtype=torch.float64)
    assert torch.allclose(
        perspective_projection(points, transl, fb, c), perspective_projection(points, transl, 1000.0, c)
    )


# --------------------------------------------------------------------------------------------------------
# Crops
# --------------------------------------------------------------------------------------------------------


def test_box_to_center_size_and_spin_scale():
    center, size = box_to_center_size(np.array([[10.0, 20.0, 100.0, 50.0], [0.0, 0.0, 30.0, 60.0]]))
    assert np.allclose(center, [[60.0, 45.0], [15.0, 30.0]])
    assert np.allclose(size, [120.0, 72.0])
    c_t, s_t = box_to_center_size(torch.tensor([10.0, 20.0, 100.0, 50.0]), scale_factor=1.0)
    assert isinstance(c_t, torch.Tensor) and torch.allclose(c_t, torch.tensor([60.0, 45.0]))
    assert s_t.item() == 100.0
    assert size_to_spin_scale(np.float64(240.0)) == pytest.approx(1.2)
    assert spin_scale_to_size(size_to_spin_scale(np.array([123.0, 45.0]))) == pytest.approx([123.0, 45.0])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_crop_affine_maps_box_to_crop(backend):
    box = np.array([40.0, 30.0, 80.0, 120.0])  # x, y, w, h
    center, size = box_to_center_size(box, scale_factor=1.0)  # a 120 px square around (80, 90)
    corners = np.array([[20.0, 30.0], [140.0, 30.0], [140.0, 150.0], [20.0, 150.0], [80.0, 90.0]])
    expected = np.array([[0.0, 0.0], [224.0, 0.0], [224.0, 224.0], [0.0, 224.0], [112.0, 112.0]])
    if backend == "torch":
        center, size, corners = (torch.from_numpy(np.asarray(a)) for a in (center, size, corners))
    A = crop_affine(center, size, 224)
    assert type(A) is type(center) and tuple(A.shape) == (2, 3)
    q = apply_affine(A, corners)
    assert type(q) is type(center)
    assert np.allclose(np.asarray(q), expected, atol=1e-9)
    back = apply_affine(invert_affine(A), q)
    assert np.allclose(np.asarray(back), np.asarray(corners), atol=1e-9)


def test_crop_affine_rotation_direction_and_batch():
    center = np.array([[80.0, 90.0], [10.0, -5.0]])
    size = np.array([120.0, 50.0])
    rot = np.array([90.0, -33.0])
    A = crop_affine(center, size, 256, rotation_deg=rot)
    assert A.shape == (2, 2, 3)
    # The window turned 90 deg counter-clockwise on screen: its first crop corner is the box's
    # bottom-left corner, and a point right of the centre appears at the bottom of the crop.
    q = apply_affine(A[0], np.array([[20.0, 150.0], [140.0, 90.0]]))
    assert np.allclose(q, [[0.0, 0.0], [128.0, 256.0]], atol=1e-9)
    for i in range(2):
        ref = cv2.getRotationMatrix2D((float(center[i, 0]), float(center[i, 1])), -rot[i], 256 / size[i])
        assert np.allclose(A[i, :, :2], ref[:, :2], atol=1e-12)
        assert np.allclose(A[i, :, 2], ref[:, 2] + (128.0 - center[i]), atol=1e-9)
    pts = np.random.default_rng(16).uniform(-50, 200, size=(2, 7, 2))
    assert np.allclose(apply_affine(invert_affine(A), apply_affine(A, pts)), pts, atol=1e-9)
    A_t = crop_affine(torch.from_numpy(center), torch.from_numpy(size), 256, torch.from_numpy(rot))
    assert torch.allclose(A_t, torch.from_numpy(A), atol=1e-12)


def test_crop_affine_agrees_with_cv2_warp_affine():
    # A bright 3x3 blob; warp it with cv2 and find it where apply_affine says it goes.
    img = np.zeros((200, 240), np.float32)
    img[69:72, 149:152] = 1.0  # centred on pixel (x=150, y=70)
    A = crop_affine(np.array([120.0, 100.0]), 100.0, 100, rotation_deg=30.0)
    crop = cv2.warpAffine(img, A, (100, 100), flags=cv2.INTER_LINEAR)
    ys, xs = np.mgrid[:100, :100]
    found = np.array([(xs * crop).sum(), (ys * crop).sum()]) / crop.sum()
    assert np.allclose(found, apply_affine(A, np.array([[150.0, 70.0]]))[0], atol=0.05)


# --------------------------------------------------------------------------------------------------------
# Procrustes
# --------------------------------------------------------------------------------------------------------


def _numpy_procrustes(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """One sample, plainly: fit on the unmasked joints, transform all of them (SPIN's formulas)."""
    m = np.ones(len(pred), bool) if mask is None else mask
    X1, X2 = pred[m].T, target[m].T  # (3, n)
    mu1, mu2 = X1.mean(1, keepdims=True), X2.mean(1, keepdims=True)
    X1c, X2c = X1 - mu1, X2 - mu2
    var1 = np.sum(X1c**2)
    K = X1c @ X2c.T
    U, _, Vh = np.linalg.svd(K)
    V = Vh.T
    Z = np.eye(3)
    Z[-1, -1] *= np.sign(np.linalg.det(U @ V.T))
    R = V @ Z @ U.T
    scale = np.trace(R @ K) / var1
    t = mu2 - scale * (R @ mu1)
    return (scale * R @ pred.T + t).T


def _numpy_procrustes_batch(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
) -> np.ndarray:
    p, t = pred.double().numpy(), target.double().numpy()
    m = [None] * len(p) if mask is None else list(mask.numpy())
    return np.stack([_numpy_procrustes(p[b], t[b], m[b]) for b in range(len(p))])


def _joints(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = 0.4 * torch.randn(batch, 14, 3, generator=g)  # metres
    pred = target + 0.05 * torch.randn(batch, 14, 3, generator=g)
    pred = pred @ torch.from_numpy(Rotation.random(batch, random_state=seed).as_matrix()).float()
    return 1.1 * pred + 0.3, target


@pytest.mark.parametrize("batch", [1, 2, 3, 64])
@pytest.mark.parametrize("masked", [False, True])
def test_procrustes_equals_per_sample_numpy(batch, masked):
    pred, target = _joints(batch, seed=batch)
    mask = None
    if masked:
        mask = torch.rand(batch, 14, generator=torch.Generator().manual_seed(batch + 100)) > 0.3
        mask[:, :4] = True  # at least four joints in every fit
    out = similarity_procrustes(pred, target, mask)
    assert out.dtype == torch.float32 and out.shape == pred.shape
    ref = _numpy_procrustes_batch(pred, target, mask)
    assert np.abs(out.double().numpy() * 1000 - ref * 1000).max() < 1e-4  # millimetres


def test_procrustes_reflection_case_matches_numpy():
    # A mirrored target forces the determinant fix: the best proper rotation, not the reflection.
    pred, target = _joints(3, seed=21)
    target = target * torch.tensor([-1.0, 1.0, 1.0])
    out = similarity_procrustes(pred.double(), target.double())
    ref = _numpy_procrustes_batch(pred, target, None)
    assert np.abs(out.numpy() - ref).max() * 1000 < 1e-6
    _, R, _ = similarity_transform(pred.double(), target.double())
    assert torch.allclose(torch.linalg.det(R), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("batch", [1, 2, 3, 64])
def test_procrustes_recovers_known_similarity(batch):
    g = torch.Generator().manual_seed(30 + batch)
    pred = torch.randn(batch, 17, 3, generator=g, dtype=torch.float64)
    s = 0.5 + torch.rand(batch, generator=g, dtype=torch.float64)
    R = _random_rotmats(batch, seed=31 + batch)
    t = torch.randn(batch, 3, generator=g, dtype=torch.float64)
    target = s[:, None, None] * pred @ R.transpose(-1, -2) + t[:, None]
    s_hat, R_hat, t_hat = similarity_transform(pred, target)
    assert (s_hat - s).abs().max() < 1e-5
    assert (R_hat - R).abs().max() < 1e-5
    assert (t_hat - t).abs().max() < 1e-5
    assert (similarity_procrustes(pred, target) - target).abs().max() < 1e-5
    # float32 input: solved in float64, returned in float32.
    out32 = similarity_procrustes(pred.float(), target.float())
    assert out32.dtype == torch.float32 and (out32.double() - target).abs().max() < 1e-5


def test_procrustes_mask_excludes_joints_from_fit_but_transforms_them():
    pred, target = _joints(5, seed=40)
    mask = torch.ones(5, 14, dtype=torch.bool)
    mask[:, -3:] = False
    corrupted = target.clone()
    corrupted[:, -3:] += 10.0  # far-off values on masked joints must not move the fit
    a = similarity_procrustes(pred, target, mask)
    b = similarity_procrustes(pred, corrupted, mask)
    assert torch.allclose(a, b, atol=1e-6)
    s, R, t = similarity_transform(pred, target, mask)
    manual = s[:, None, None] * pred @ R.transpose(-1, -2) + t[:, None]
    assert torch.allclose(a[:, -3:], manual[:, -3:], atol=1e-5)


def test_procrustes_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        similarity_procrustes(torch.zeros(2, 14, 3), torch.zeros(2, 13, 3))
    with pytest.raises(ValueError, match="mask"):
        bad_mask = torch.ones(2, 13, dtype=torch.bool)
        similarity_procrustes(torch.zeros(2, 14, 3), torch.zeros(2, 14, 3), bad_mask)


def test_procrustes_on_planar_and_collinear_points_matches_svd_reference():
    """The eigen-decomposition path: a zero third singular value (planar joints) and the SVD fallback
    (collinear joints) give the same alignment as the plain SVD formula."""
    from ochmr_lit.procrustes import _procrustes_rotation

    gen = torch.Generator().manual_seed(3)
    planar = torch.randn(5, 10, 3, generator=gen, dtype=torch.float64)
    planar[..., 2] = 0.0
    collinear = torch.randn(5, 10, 1, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 2.0, -0.5])
    for X in (planar, collinear):
        Y = X @ axis_angle_to_rotmat(torch.tensor([0.3, -0.2, 0.9], dtype=torch.float64)).T + 0.1
        Xc, Yc = X - X.mean(1, keepdim=True), Y - Y.mean(1, keepdim=True)
        K = Xc.transpose(1, 2) @ Yc
        R = _procrustes_rotation(K)
        torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3))
        assert torch.allclose(torch.linalg.det(R), torch.ones(5, dtype=torch.float64))
        # both maximise tr(R K): the aligned points agree even where R itself is not unique
        torch.testing.assert_close(Xc @ R.transpose(1, 2), Yc, atol=1e-9, rtol=0)


def test_closed_form_symmetric_eigen_matches_eigh_including_near_degenerate_spectra():
    from ochmr_lit.procrustes import _symmetric_eigen_3x3

    gen = torch.Generator().manual_seed(11)
    K = torch.randn(2000, 3, 3, generator=gen, dtype=torch.float64)
    A = K.transpose(1, 2) @ K  # PSD, as K^T K in the Procrustes fit
    Q = _random_rotmats(6, seed=12)
    spectra = torch.tensor([[1.0, 1.0, 0.2], [1.0, 0.3, 0.3], [2.0, 2.0, 2.0],  # repeated: eigh fallback
                            [1.0, 1.0 - 1e-5, 0.1], [1.0, 0.5, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    A = torch.cat([A, Q @ torch.diag_embed(spectra) @ Q.transpose(1, 2)])
    evals, V = _symmetric_eigen_3x3(A)
    ref = torch.linalg.eigvalsh(A).flip(-1)
    scale = ref[:, :1].abs().clamp_min(1.0)
    assert ((evals - ref).abs() / scale).max() < 1e-12
    torch.testing.assert_close(V.transpose(1, 2) @ V, torch.eye(3, dtype=torch.float64).expand_as(A), atol=1e-10,
                               rtol=0)
    torch.testing.assert_close(A @ V, V * evals[:, None, :], atol=1e-9 * float(scale.max()), rtol=0)
