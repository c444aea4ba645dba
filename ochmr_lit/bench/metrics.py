"""Benchmark section ``metrics``: the batched metrics against straightforward references.

* PA-MPJPE: ``PAMPJPE`` (batched torch Procrustes) against the per-sample numpy loop that SPIN and most
  papers use (``compute_similarity_transform`` one sample at a time);
* MPJPE: ``MPJPE`` against a per-sample numpy loop;
* keypoint AP: ``KeypointAP`` (in-memory results) against the usual route: write a results JSON, read it
  back with ``COCO.loadRes`` and run ``COCOeval``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ochmr_lit.bench import BenchRow
from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.metrics.coco_tools import silent
from ochmr_lit.metrics.keypoint_ap import COCO_STAT_NAMES, KeypointAP
from ochmr_lit.metrics.mesh_errors import MPJPE, PAMPJPE

SECTION = "metrics"


def similarity_align_numpy(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Reference similarity Procrustes of one sample, as SPIN's ``compute_similarity_transform``.

    Args:
        s1: (N, 3) points to align; s2: (N, 3) target points (same unit).

    Returns:
        (N, 3) ``s1`` mapped by the rotation (determinant sign fixed), scale ``tr(RK)/var`` and translation
        that best fit it to ``s2``.
    """
    x1, x2 = s1.T, s2.T  # (3, N)
    mu1 = x1.mean(axis=1, keepdims=True)
    mu2 = x2.mean(axis=1, keepdims=True)
    c1, c2 = x1 - mu1, x2 - mu2
    var1 = np.sum(c1**2)
    k = c1 @ c2.T
    u, _, vh = np.linalg.svd(k)
    v = vh.T
    z = np.eye(3)
    z[-1, -1] = np.sign(np.linalg.det(u @ v.T))
    r = v @ z @ u.T
    scale = np.trace(r @ k) / var1
    t = mu2 - scale * (r @ mu1)
    return (scale * r @ x1 + t).T


def pa_mpjpe_numpy_loop(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-sample PA-MPJPE in mm, one sample at a time (the reference).

    Args:
        pred, target: (B, N, 3) metres. mask: (B, N) bool or None; the fit and the mean use valid joints.

    Returns:
        (B,) mm (NaN for a sample without valid joints).
    """
    out = np.full(pred.shape[0], np.nan)
    for i in range(pred.shape[0]):
        m = np.ones(pred.shape[1], dtype=bool) if mask is None else mask[i]
        if not m.any():
            continue
        aligned = similarity_align_numpy(pred[i][m], target[i][m])
        out[i] = np.sqrt(((aligned - target[i][m]) ** 2).sum(-1)).mean() * 1000.0
    return out


def mpjpe_numpy_loop(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-sample MPJPE in mm, one sample at a time: (B, N, 3) metres -> (B,)."""
    return np.array(
        [np.sqrt(((p - t) ** 2).sum(-1)).mean() * 1000.0 for p, t in zip(pred, target, strict=True)]
    )


def random_poses(n: int, joints: int = 14, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, joints, 3) pairs of root-relative-sized poses (metres): GT and a noisy, rotated, scaled copy."""
    rng = np.random.default_rng(seed)
    target = rng.normal(0.0, 0.3, size=(n, joints, 3))
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    rot = np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        1,
    )
    scale = rng.uniform(0.8, 1.2, size=(n, 1, 1))
    pred = scale * np.einsum("bij,bnj->bni", rot, target) + rng.normal(0, 0.03, size=(n, joints, 3))
    return pred, target


def synthetic_keypoint_set(
    num_images: int, seed: int = 0, people_per_image: int = 4
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    """A COCO-format keypoint ground truth of random people and noisy predictions of them.

    Returns:
        ground-truth dict, and predictions: image ids (N,), keypoints (N, 17, 3) pixels, scores (N,).
    """
    rng = np.random.default_rng(seed)
    images, anns, pids, pkps, pscores = [], [], [], [], []
    ann_id = 1
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": 640, "height": 480, "file_name": f"{image_id:06d}.jpg"})
        for _ in range(rng.integers(1, people_per_image + 1)):
            x0, y0 = rng.uniform(0, 500), rng.uniform(0, 300)
            w, h = rng.uniform(30, 140), rng.uniform(60, 180)
            xy = np.stack([rng.uniform(x0, x0 + w, 17), rng.uniform(y0, y0 + h, 17)], -1)
            vis = (rng.uniform(size=17) < 0.8).astype(np.float64) * 2
            kp = np.concatenate([xy, vis[:, None]], -1)
            kp[vis == 0, :2] = 0
            anns.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [x0, y0, w, h],
                    "area": w * h * 0.6,
                    "num_keypoints": int((vis > 0).sum()),
                    "keypoints": kp.reshape(-1).tolist(),
                }
            )
            ann_id += 1
            if rng.uniform() < 0.9:  # some people are missed
                pred = np.concatenate(
                    [xy + rng.normal(0, 0.05 * np.sqrt(w * h), xy.shape), np.ones((17, 1))], -1
                )
                pids.append(image_id)
                pkps.append(pred)
                pscores.append(rng.uniform(0.2, 1.0))
        if rng.uniform() < 0.3:  # a false positive
            pids.append(image_id)
            pkps.append(np.concatenate([rng.uniform(0, 480, (17, 2)), np.ones((17, 1))], -1))
            pscores.append(rng.uniform(0.0, 0.6))
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(get_convention("coco17").joint_names)}],
    }
    return gt, np.array(pids), np.stack(pkps), np.array(pscores)


def _time(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _bench_pa_mpjpe(n: int) -> list[BenchRow]:
    pred, target = random_poses(n)
    pred_t, target_t = torch.from_numpy(pred), torch.from_numpy(target)

    def ours(metric_cls: type[MPJPE], keep_per_sample: bool = False) -> MPJPE:
        metric = metric_cls(14, keep_per_sample=keep_per_sample)
        for i in range(0, n, 10_000):
            ids = torch.arange(i, min(i + 10_000, n)) if keep_per_sample else None
            metric.update(pred_t[i : i + 10_000], target_t[i : i + 10_000], sample_ids=ids)
        metric.compute()
        return metric

    ours(PAMPJPE)  # warm-up (first calls of the linear-algebra kernels)
    t_pa, _ = _time(lambda: ours(PAMPJPE))
    t_pa_ref, pa_ref = _time(lambda: pa_mpjpe_numpy_loop(pred, target))
    t_mp, _ = _time(lambda: ours(MPJPE))
    t_mp_ref, mp_ref = _time(lambda: mpjpe_numpy_loop(pred, target))
    # agreement, untimed: every per-sample error against the reference
    pa_diff = np.abs(ours(PAMPJPE, True).per_sample()["error_mm"] - pa_ref).max()
    mp_diff = np.abs(ours(MPJPE, True).per_sample()["error_mm"] - mp_ref).max()
    return [
        BenchRow(
            SECTION,
            f"PA-MPJPE, {n} samples x 14 joints",
            t_pa,
            t_pa_ref,
            "per-sample numpy loop (SPIN)",
            float(pa_diff),
            "mm",
            target_speedup=20.0,
        ),
        BenchRow(
            SECTION,
            f"MPJPE, {n} samples x 14 joints",
            t_mp,
            t_mp_ref,
            "per-sample numpy loop",
            float(mp_diff),
            "mm",
        ),
    ]


def _bench_keypoint_ap(num_images: int) -> list[BenchRow]:
    gt, ids, kps, scores = synthetic_keypoint_set(num_images)
    sigmas = get_convention("coco17").sigmas

    metric = KeypointAP(gt, sigmas)  # the ground truth is read once, when the metric is built

    def ours() -> dict[str, float]:
        metric.reset()
        metric.update(torch.from_numpy(ids), torch.from_numpy(kps), torch.from_numpy(scores))
        return {k: float(v) for k, v in metric.compute().items()}

    def reference(folder: Path) -> dict[str, float]:
        gt_file, res_file = folder / "gt.json", folder / "results.json"
        gt_file.write_text(json.dumps(gt))
        res_file.write_text(
            json.dumps(
                [
                    {
                        "image_id": int(i),
                        "category_id": 1,
                        "keypoints": k.reshape(-1).tolist(),
                        "score": float(s),
                    }
                    for i, k, s in zip(ids, kps, scores, strict=True)
                ]
            )
        )
        with silent():
            coco_gt = COCO(str(gt_file))
            evaluator = COCOeval(coco_gt, coco_gt.loadRes(str(res_file)), "keypoints")
            evaluator.params.kpt_oks_sigmas = sigmas
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return dict(zip(COCO_STAT_NAMES, evaluator.stats.tolist(), strict=True))

    # best of three for both (the first call of either pays one-off allocation costs)
    t_ours, a = min((_time(ours) for _ in range(3)), key=lambda r: r[0])
    with tempfile.TemporaryDirectory() as tmp:
        t_ref, b = min((_time(lambda: reference(Path(tmp))) for _ in range(3)), key=lambda r: r[0])
    diff = max(abs(a[k] - b[k]) for k in COCO_STAT_NAMES)
    name = f"keypoint AP (COCO), {num_images} images, {len(ids)} predictions, update + compute"
    reference_name = "results JSON + COCO(gt file) + loadRes + COCOeval"
    return [BenchRow(SECTION, name, t_ours, t_ref, reference_name, diff, "AP")]


def run(quick: bool = False) -> list[BenchRow]:
    """The section's rows: PA-MPJPE and MPJPE over 100k samples (10k quick), keypoint AP."""
    n = 10_000 if quick else 100_000
    return _bench_pa_mpjpe(n) + _bench_keypoint_ap(100 if quick else 1000)
