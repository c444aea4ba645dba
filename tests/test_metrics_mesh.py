"""MPJPE / PA-MPJPE / PVE torchmetrics against plain per-sample numpy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ochmr_lit.bench.metrics import (
    mpjpe_numpy_loop,
    pa_mpjpe_numpy_loop,
    random_poses,
    similarity_align_numpy,
)
from ochmr_lit.metrics import (
    MPJPE,
    PAMPJPE,
    PVE,
    PAMPJPEDepth,
    PAMPJPEPlane,
    bucket_summary,
    dataset_code,
    merge_per_sample,
)


def _rotation(seed: int) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def test_reference_procrustes_recovers_a_similarity_and_fixes_reflections() -> None:
    rng = np.random.default_rng(0)
    target = rng.normal(size=(14, 3))
    src = (target - 0.3) @ _rotation(1) / 1.7  # target = 1.7 R^T (src) + 0.3: exactly recoverable
    np.testing.assert_allclose(similarity_align_numpy(src, target), target, atol=1e-12)
    # A mirror image cannot be undone by a proper rotation: the fit must stay a rotation (error > 0), and
    # it must not be worse than leaving the points where they are after centring and scaling.
    mirrored = target * np.array([-1.0, 1.0, 1.0])
    aligned = similarity_align_numpy(mirrored, target)
    c = aligned - aligned.mean(0)
    r, *_ = np.linalg.lstsq(mirrored - mirrored.mean(0), c, rcond=None)
    assert np.linalg.det(r) > 0
    err = np.linalg.norm(aligned - target, axis=1).mean()
    assert 0 < err <= np.linalg.norm(mirrored - target, axis=1).mean()


def test_pa_mpjpe_depth_and_plane_parts_equal_numpy_and_add_up_per_joint() -> None:
    pred, target = random_poses(50, seed=7)
    aligned = np.stack([similarity_align_numpy(p, t) for p, t in zip(pred, target, strict=True)])
    depth_ref = np.abs(aligned[..., 2] - target[..., 2]) * 1000.0  # (50, 14) mm
    plane_ref = np.linalg.norm(aligned[..., :2] - target[..., :2], axis=-1) * 1000.0
    ids = torch.arange(50)
    metrics = {cls: cls(14, keep_per_sample=True) for cls in (PAMPJPE, PAMPJPEDepth, PAMPJPEPlane)}
    for metric in metrics.values():
        metric.update(torch.tensor(pred), torch.tensor(target), sample_ids=ids)
    depth, plane, full = metrics[PAMPJPEDepth], metrics[PAMPJPEPlane], metrics[PAMPJPE]
    np.testing.assert_allclose(depth.per_sample()["error_mm"], depth_ref.mean(1), rtol=1e-9)
    np.testing.assert_allclose(plane.per_sample()["error_mm"], plane_ref.mean(1), rtol=1e-9)
    np.testing.assert_allclose(float(depth.compute()), depth_ref.mean(), rtol=1e-9)
    # per joint the two parts are the legs of the PA error: each is smaller, their squares sum to its square
    np.testing.assert_allclose(np.hypot(depth_ref, plane_ref).mean(1), full.per_sample()["error_mm"], rtol=1e-9)
    assert float(depth.compute()) < float(full.compute()) and float(plane.compute()) < float(full.compute())


def test_pa_mpjpe_depth_sees_a_limb_flipped_in_depth_and_plane_does_not() -> None:
    # A forearm pointing at the camera read as pointing away: same image, different depth. After the alignment
    # the error must be almost all along z (the rest of the body pins the rotation), not in the image plane.
    target = torch.tensor(random_poses(1, seed=3)[1])
    pred = target.clone()
    elbow, wrist = 10, 11  # LSP-14: left elbow, left wrist
    pred[0, wrist, 2] = 2 * target[0, elbow, 2] - target[0, wrist, 2]  # mirrored about the elbow's depth
    depth, plane = PAMPJPEDepth(14), PAMPJPEPlane(14)
    depth.update(pred, target)
    plane.update(pred, target)
    moved_mm = abs(float(pred[0, wrist, 2] - target[0, wrist, 2])) * 1000.0
    assert moved_mm > 20.0
    assert float(depth.compute()) > 3.0 * float(plane.compute())  # 16.4 against 3.9 mm


@pytest.mark.parametrize("batch", [1, 2, 3, 1000])
def test_pa_mpjpe_mpjpe_equal_numpy_per_sample(batch: int) -> None:
    pred, target = random_poses(batch, seed=batch)
    ref_pa = pa_mpjpe_numpy_loop(pred, target)
    ref_mp = mpjpe_numpy_loop(pred, target)
    for dtype in (torch.float64, torch.float32):
        pa, mp = PAMPJPE(14, keep_per_sample=True), MPJPE(14, keep_per_sample=True)
        p, t = torch.tensor(pred, dtype=dtype), torch.tensor(target, dtype=dtype)
        ids = torch.arange(batch)
        pa.update(p, t, sample_ids=ids)
        mp.update(p, t, sample_ids=ids)
        # float32 inputs are rounded before the metric sees them: compare with the reference on those.
        rp, rt = p.double().numpy(), t.double().numpy()
        exp_pa = ref_pa if dtype == torch.float64 else pa_mpjpe_numpy_loop(rp, rt)
        exp_mp = ref_mp if dtype == torch.float64 else mpjpe_numpy_loop(rp, rt)
        np.testing.assert_allclose(pa.per_sample()["error_mm"], exp_pa, rtol=0, atol=1e-4)
        np.testing.assert_allclose(mp.per_sample()["error_mm"], exp_mp, rtol=0, atol=1e-4)
        assert abs(float(pa.compute()) - exp_pa.mean()) < 1e-4
        assert abs(float(mp.compute()) - exp_mp.mean()) < 1e-4
    assert ref_pa.mean() < ref_mp.mean()  # the alignment removed the random rotation and scale


@pytest.mark.parametrize("batch", [1, 2, 3, 1000])
def test_pve_equals_numpy(batch: int) -> None:
    rng = np.random.default_rng(batch)
    num_vertices = 6890 if batch <= 3 else 500
    pred = rng.normal(0, 0.5, size=(batch, num_vertices, 3))
    target = pred + rng.normal(0, 0.02, size=pred.shape)
    metric = PVE(num_vertices, keep_per_sample=True)
    for i in range(0, batch, 256):  # several updates: the running sums must add up to the single answer
        metric.update(
            torch.from_numpy(pred[i : i + 256]),
            torch.from_numpy(target[i : i + 256]),
            sample_ids=torch.arange(i, min(i + 256, batch)),
        )
    per_sample = np.linalg.norm(pred - target, axis=-1).mean(-1) * 1000
    np.testing.assert_allclose(metric.per_sample()["error_mm"], per_sample, atol=1e-4, rtol=0)
    assert abs(float(metric.compute()) - per_sample.mean()) < 1e-4
    np.testing.assert_allclose(
        metric.per_vertex().numpy(), np.linalg.norm(pred - target, axis=-1).mean(0) * 1000, atol=1e-4, rtol=0
    )


def test_units_metres_in_millimetres_out() -> None:
    target = torch.zeros(4, 14, 3, dtype=torch.float64)
    pred = target + torch.tensor([0.0, 0.0, 0.025], dtype=torch.float64)  # 25 mm along z
    metric = MPJPE(14)
    metric.update(pred, target)
    assert float(metric.compute()) == pytest.approx(25.0, abs=1e-9)
    # PA-MPJPE is invariant to any translation, rotation and scale of the prediction.
    pred, target = random_poses(4, seed=9)
    moved = 2.5 * pred @ _rotation(4).T + np.array([5.0, -1.0, 0.3])
    pa, pa_moved = PAMPJPE(14), PAMPJPE(14)
    pa.update(torch.from_numpy(pred), torch.from_numpy(target))
    pa_moved.update(torch.from_numpy(moved), torch.from_numpy(target))
    assert float(pa_moved.compute()) == pytest.approx(float(pa.compute()), abs=1e-6)


def test_masked_joints_and_empty_samples() -> None:
    rng = np.random.default_rng(3)
    pred, target = random_poses(50, seed=3)
    mask = rng.uniform(size=(50, 14)) < 0.8
    mask[7] = False  # a sample without a single valid joint
    mp, pa = MPJPE(14, keep_per_sample=True), PAMPJPE(14, keep_per_sample=True)
    corrupt = pred.copy()
    corrupt[~mask] = np.nan  # invalid joints hold garbage: it must not leak into the result
    for m in (mp, pa):
        m.update(
            torch.from_numpy(corrupt),
            torch.from_numpy(target),
            torch.from_numpy(mask),
            sample_ids=torch.arange(50),
        )
    dist = np.linalg.norm(pred - target, axis=-1) * 1000
    exp_mp = np.array([dist[i][mask[i]].mean() if mask[i].any() else np.nan for i in range(50)])
    exp_pa = pa_mpjpe_numpy_loop(pred, target, mask)
    np.testing.assert_allclose(mp.per_sample()["error_mm"], exp_mp, atol=1e-4, rtol=0)
    np.testing.assert_allclose(pa.per_sample()["error_mm"], exp_pa, atol=1e-4, rtol=0)
    assert float(mp.compute()) == pytest.approx(np.nanmean(exp_mp), abs=1e-4)
    assert float(pa.compute()) == pytest.approx(np.nanmean(exp_pa), abs=1e-4)
    assert float(mp.num_empty) == 1 and float(mp.num_samples) == 49
    per_joint = np.array([dist[mask[:, j], j].mean() for j in range(14)])
    np.testing.assert_allclose(mp.per_joint().numpy(), per_joint, atol=1e-4, rtol=0)


def test_per_sample_results_deduplicate_and_join() -> None:
    pred, target = random_poses(6, seed=5)
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    occ = torch.tensor([0.0, 0.1, 0.5, 0.9, float("nan"), 1.0])
    distractor = torch.tensor([True, False, False, True, True, False])
    mp, pa = MPJPE(14, keep_per_sample=True), PAMPJPE(14, keep_per_sample=True)
    code = dataset_code("synthcrowd")
    for m in (mp, pa):
        m.update(p[3:], t[3:], sample_ids=torch.arange(3, 6), occlusion=occ[3:], dataset=code,
                 distractor=distractor[3:])
        m.update(p[:4], t[:4], sample_ids=torch.arange(4), occlusion=occ[:4], dataset=code)  # 3 repeats
    table = mp.per_sample()
    # the repeats carry no flag (NaN); deduplication keeps the first update's row of each sample
    np.testing.assert_array_equal(table["distractor"], [np.nan, np.nan, np.nan, 1.0, 1.0, 0.0])
    assert table["sample_id"].tolist() == [0, 1, 2, 3, 4, 5]
    assert set(table["dataset"].tolist()) == {code}
    np.testing.assert_allclose(table["error_mm"], mpjpe_numpy_loop(pred, target), atol=1e-6)
    assert len(mp.per_sample(deduplicate=False)["sample_id"]) == 7
    merged = merge_per_sample({"mpjpe": table, "pa_mpjpe": pa.per_sample()})
    assert merged["sample_id"].tolist() == list(range(6))
    assert np.all(merged["pa_mpjpe_mm"] < merged["mpjpe_mm"])
    np.testing.assert_array_equal(merged["distractor"], table["distractor"])
    rows = bucket_summary(merged["mpjpe_mm"], merged["occlusion"], [0.0, 0.5, 1.0], merged["distractor"])
    assert [r["count"] for r in rows] == [2, 3, 1, 2]  # [0, .5): 0, .1; [.5, 1]: .5, .9, 1.0; unknown: nan; 3, 4
    assert rows[0]["mean"] == pytest.approx(table["error_mm"][:2].mean())
    assert rows[3]["mean"] == pytest.approx(table["error_mm"][3:5].mean())
    assert math.isnan(rows[2]["low"]) and [r["name"] for r in rows[2:]] == ["unknown", "distractor"]


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="built for 14 points"):
        MPJPE(14).update(torch.zeros(2, 17, 3), torch.zeros(2, 17, 3))
    with pytest.raises(ValueError, match="sample_ids"):
        MPJPE(14, keep_per_sample=True).update(torch.zeros(2, 14, 3), torch.zeros(2, 14, 3))
    with pytest.raises(KeyError, match="known"):
        dataset_code("nope")
