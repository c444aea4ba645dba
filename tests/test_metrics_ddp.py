"""Two CPU processes (gloo) give the same metric values as one process on the same data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ochmr_lit.bench.metrics import random_poses
from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.eval.detector_sweep import DetectorSweep
from ochmr_lit.metrics import MPJPE, PAMPJPE, PVE, KeypointAP, MatchedMPJPE

WORLD = 2


def _data(fixtures: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    pred, target = random_poses(37, seed=1)
    mask = rng.uniform(size=(37, 14)) < 0.85
    verts_p = rng.normal(size=(37, 100, 3))
    verts_t = verts_p + rng.normal(0, 0.01, size=verts_p.shape)
    out: dict[str, Any] = {
        "pred": pred,
        "target": target,
        "mask": mask,
        "vp": verts_p,
        "vt": verts_t,
        "occ": rng.uniform(size=37),
        # 1 / 0 / NaN (unknown), from its own generator so the other inputs stay as they were
        "distractor": np.where(np.arange(37) % 7 == 3, np.nan, np.random.default_rng(1).uniform(size=37) < 0.4),
    }
    for key, name, k in (("coco", "coco/test_coco.json", 17), ("crowd", "crowdpose/test_crowdpose.json", 14)):
        data = json.loads((fixtures / name).read_text())
        anns = [a for a in data["annotations"] if a["num_keypoints"] > 0]
        kps = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, k, 3)
        kps[..., :2] += rng.normal(0, 6, size=kps[..., :2].shape)
        kps[..., 2] = 1
        out[key] = (
            fixtures / name,
            np.array([a["image_id"] for a in anns]),
            kps,
            np.round(rng.uniform(size=len(anns)) * 4) / 4,  # person scores with ties, ranked by sample index
            rng.uniform(size=len(anns)),
        )
    scenes = []
    for s in range(9):
        g, p = rng.integers(1, 4), rng.integers(1, 5)
        gt = rng.normal(0, 0.3, size=(g, 17, 3))
        pr = np.concatenate([gt + rng.normal(0, 0.02, size=gt.shape), rng.normal(0, 0.3, size=(3, 17, 3))])[
            :p
        ]
        scenes.append((pr, gt, rng.uniform(size=(g, 17)) < 0.8, s % 4))
    out["scenes"] = scenes
    return out


def _part(n: int, rank: int, world: int) -> slice:
    """Uneven shards (60 % / 40 %), so the gathered states have different sizes."""
    if world == 1:
        return slice(0, n)
    cut = int(round(0.6 * n))
    return slice(0, cut) if rank == 0 else slice(cut, n)


def _run_metrics(data: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    t = torch.from_numpy
    n = len(data["pred"])
    sl = _part(n, rank, world)
    ids = torch.arange(n)[sl]
    results: dict[str, Any] = {}
    for name, metric in (
        ("mpjpe", MPJPE(14, keep_per_sample=True)),
        ("pa", PAMPJPE(14, keep_per_sample=True)),
    ):
        metric.update(
            t(data["pred"][sl]),
            t(data["target"][sl]),
            t(data["mask"][sl]),
            sample_ids=ids,
            occlusion=t(data["occ"][sl]),
            dataset=3,
            distractor=t(data["distractor"][sl]),
        )
        results[name] = metric.compute()
        results[f"{name}_joint"] = metric.per_joint()
        results[f"{name}_rows"] = metric.per_sample()
    pve = PVE(100, keep_per_sample=True)
    pve.update(t(data["vp"][sl]), t(data["vt"][sl]), sample_ids=ids)
    results["pve"], results["pve_rows"] = pve.compute(), pve.per_sample()

    path, img, kps, scores, boxes = data["coco"]
    # split as the evaluation sampler splits samples (rank r: r, r + world, ...), so the gathered order is
    # not the sample order; each prediction carries its sample index, which ranks the score ties
    sl = slice(rank, None, world)
    index = torch.arange(len(img))[sl]
    ap = KeypointAP(path, get_convention("coco17").sigmas)
    ap.update(t(img[sl]), t(kps[sl]), t(scores[sl]), index)
    results["coco_ap"] = ap.compute()
    sweep = DetectorSweep(path, get_convention("coco17").sigmas, thresholds=(0.0, 0.3, 0.7))
    sweep.update(t(img[sl]), t(kps[sl]), t(scores[sl]), t(boxes[sl]), index)
    results["sweep"] = sweep.compute()

    path, img, kps, scores, _ = data["crowd"]
    crowd = KeypointAP(path, get_convention("crowdpose14").sigmas, flavour="crowdpose")
    if rank == 0:  # the other process sees no CrowdPose prediction at all
        crowd.update(t(img), t(kps), t(scores))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        results["crowd_ap"] = crowd.compute()

    matched = MatchedMPJPE()
    scenes = data["scenes"]
    for pr, gt, vis, seq in scenes[_part(len(scenes), rank, world)]:
        matched.update(t(pr), t(gt), t(vis), seq)
    results["matched"] = matched.compute()
    return results


def _worker(rank: int, init_file: str, out_dir: str, fixtures: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.save(_run_metrics(_data(Path(fixtures)), rank, WORLD), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _assert_same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    else:
        np.testing.assert_allclose(
            np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=0, atol=1e-9, err_msg=where
        )


def test_two_process_gloo_equals_single_process(fixtures_dir: Path, tmp_path: Path) -> None:
    mp.spawn(
        _worker, args=(str(tmp_path / "init"), str(tmp_path), str(fixtures_dir)), nprocs=WORLD, join=True
    )
    single = _run_metrics(_data(fixtures_dir), 0, 1)
    for rank in range(WORLD):
        distributed = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        _assert_same(single, distributed, f"rank{rank}")
    # the comparison is not vacuous: every metric saw data
    assert single["pa_rows"]["sample_id"].tolist() == list(range(37))
    np.testing.assert_array_equal(single["pa_rows"]["distractor"], _data(fixtures_dir)["distractor"])
    assert 0.0 < float(single["coco_ap"]["AP"]) < 1.0
    # the AP comparison includes score ties whose order matters: ranked by the gathered order (rank 0's
    # shard, then rank 1's) instead of the sample index, they give another AP
    path, img, kps, scores, _ = _data(fixtures_dir)["coco"]
    gathered = np.concatenate([np.arange(r, len(img), WORLD) for r in range(WORLD)])
    by_gather = KeypointAP(path, get_convention("coco17").sigmas)
    by_gather.update(torch.from_numpy(img[gathered]), torch.from_numpy(kps[gathered]),
                     torch.from_numpy(scores[gathered]))
    assert abs(float(by_gather.compute()["AP"]) - float(single["coco_ap"]["AP"])) > 1e-3
    assert float(single["crowd_ap"]["AP"]) > 0.0
    assert single["sweep"]["num_boxes"].tolist()[0] > single["sweep"]["num_boxes"].tolist()[-1] > 0
    assert float(single["matched"]["num_people"]) > 0
