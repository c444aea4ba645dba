"""KeypointAP against pycocotools' own COCOeval (COCO, OCHuman) and CrowdPose's official semantics."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.metrics import COCO_STAT_NAMES, KeypointAP
from ochmr_lit.metrics.coco_tools import GroundTruthError, silent
from ochmr_lit.metrics.crowdpose_eval import split_by_crowd_index

COCO_SIGMAS = get_convention("coco17").sigmas
CROWDPOSE_SIGMAS = get_convention("crowdpose14").sigmas
OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def _perturbed(dataset: dict, num_kp: int, seed: int, noise: float, drop: float, false_pos: int):
    """Predictions derived from the ground truth: keypoint noise (x box size), dropped people, extras."""
    rng = np.random.default_rng(seed)
    ids, kps, scores = [], [], []
    for ann in dataset["annotations"]:
        if ann["num_keypoints"] == 0 or ann.get("iscrowd", 0) or rng.uniform() < drop:
            continue
        kp = np.array(ann["keypoints"], dtype=np.float64).reshape(num_kp, 3)
        size = np.sqrt(ann["bbox"][2] * ann["bbox"][3])
        kp[:, :2] += rng.normal(0, noise * size, size=(num_kp, 2))
        kp[:, 2] = rng.uniform(0.2, 1.0, num_kp)
        ids.append(ann["image_id"])
        kps.append(kp)
        scores.append(rng.uniform(0.1, 1.0))
    image_ids = [im["id"] for im in dataset["images"]]
    for _ in range(false_pos):
        w, h = 640, 480
        ids.append(int(rng.choice(image_ids)))
        kps.append(np.concatenate([rng.uniform(0, [w, h], (num_kp, 2)), np.ones((num_kp, 1))], -1))
        scores.append(rng.uniform(0.0, 1.0))
    return np.array(ids), np.stack(kps), np.array(scores)


def _pycocotools_stats(gt_file: Path, ids, kps, scores, tmp_path: Path) -> np.ndarray:
    """The official route: a results JSON file, COCO.loadRes, COCOeval with the dataset's sigmas."""
    res_file = tmp_path / "results.json"
    res_file.write_text(
        json.dumps(
            [
                {"image_id": int(i), "category_id": 1, "keypoints": k.reshape(-1).tolist(), "score": float(s)}
                for i, k, s in zip(ids, kps, scores, strict=True)
            ]
        )
    )
    return pycocotools_file_stats(gt_file, res_file)


def pycocotools_file_stats(gt_file: Path, res_file: Path) -> np.ndarray:
    """COCO(gt), loadRes(results file), COCOeval with COCO's sigmas: the ten keypoint stats, as the official tool."""
    with silent():
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(str(res_file)), "keypoints")
        ev.params.kpt_oks_sigmas = COCO_SIGMAS
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats, dtype=np.float64)


@pytest.mark.parametrize("name", ["coco/test_coco.json", "ochuman/test_ochuman.json"])
def test_equals_pycocotools_on_real_fixtures(fixtures_dir: Path, tmp_path: Path, name: str) -> None:
    gt_file = fixtures_dir / name
    dataset = json.loads(gt_file.read_text())
    aps = []
    for seed, (noise, drop, fp) in enumerate([(0.02, 0.0, 0), (0.04, 0.2, 3), (0.06, 0.3, 5)]):
        ids, kps, scores = _perturbed(dataset, 17, seed, noise, drop, fp)
        metric = KeypointAP(gt_file, COCO_SIGMAS)
        half = len(ids) // 2  # two updates: accumulation must not change the answer
        metric.update(
            torch.from_numpy(ids[:half]), torch.from_numpy(kps[:half]), torch.from_numpy(scores[:half])
        )
        metric.update(
            torch.from_numpy(ids[half:]), torch.from_numpy(kps[half:]), torch.from_numpy(scores[half:])
        )
        ours = metric.compute()
        assert list(ours) == list(COCO_STAT_NAMES)
        ref = _pycocotools_stats(gt_file, ids, kps, scores, tmp_path)
        np.testing.assert_allclose([float(v) for v in ours.values()], ref, rtol=0, atol=1e-12)
        aps.append(float(ours["AP"]))
    assert aps[0] > aps[-1]  # more noise, fewer people, more false positives: lower AP
    assert 0.0 < aps[-1] < 1.0  # the comparison ran on a non-trivial operating point


def _one_person_gt(area: float | None, crowd_index: float | None = None) -> dict:
    kp = np.zeros((14, 3))
    kp[:, 0] = np.linspace(100, 160, 14)
    kp[:, 1] = np.linspace(50, 250, 14)
    kp[:, 2] = 2
    kp[3, 2] = 0  # one unlabelled joint: OKS averages over the labelled ones only
    kp[3, :2] = 0
    ann = {
        "id": 1,
        "image_id": 7,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [90.0, 40.0, 80.0, 220.0],
        "num_keypoints": 13,
        "keypoints": kp.reshape(-1).tolist(),
    }
    if area is not None:
        ann["area"] = area
    image = {"id": 7, "width": 300, "height": 300}
    if crowd_index is not None:
        image["crowdIndex"] = crowd_index
    return {"images": [image], "annotations": [ann], "categories": [{"id": 1, "name": "person"}]}


def _expected_ap(gt: dict, offset: float, area: float) -> tuple[float, float]:
    """OKS of the GT shifted by ``offset`` px in x, by the formula, and the AP it implies for one person."""
    kp = np.array(gt["annotations"][0]["keypoints"]).reshape(14, 3)
    vis = kp[:, 2] > 0
    e = offset**2 / (2 * (2 * CROWDPOSE_SIGMAS) ** 2 * area)
    oks = float(np.exp(-e[vis]).mean())
    return oks, float((OKS_THRESHOLDS <= oks).mean())  # one detection: AP_t is 1 if matched at t, else 0


@pytest.mark.parametrize("offset", [3.0, 9.0, 14.0])
def test_oks_area_semantics_by_hand(offset: float) -> None:
    annotated_area = 4000.0  # deliberately unlike the box: COCO-style uses it, CrowdPose must not
    gt = _one_person_gt(annotated_area, crowd_index=0.1)
    kp = np.array(gt["annotations"][0]["keypoints"], dtype=np.float64).reshape(1, 14, 3)
    kp[..., 0] += offset
    kp[..., 2] = 1.0
    box_area = 80.0 * 220.0 * 0.53
    for flavour, area in (("coco", annotated_area), ("crowdpose", box_area)):
        metric = KeypointAP(gt, CROWDPOSE_SIGMAS, flavour=flavour)
        metric.update(torch.tensor([7]), torch.from_numpy(kp), torch.tensor([0.9]))
        out = metric.compute()
        oks, ap = _expected_ap(gt, offset, area)
        assert float(out["AP"]) == pytest.approx(ap, abs=1e-12), (flavour, oks)
        if flavour == "crowdpose":
            assert float(out["AP_easy"]) == pytest.approx(round(ap, 4), abs=1e-12)
            assert float(out["AP_medium"]) == -1.0 and float(out["AP_hard"]) == -1.0  # no GT there


def test_crowdpose_val_split_counts(crowdpose_val_file: Path) -> None:
    data = json.loads(crowdpose_val_file.read_text())
    splits = split_by_crowd_index(data["images"])
    assert [len(splits[k]) for k in ("easy", "medium", "hard")] == [411, 1240, 349]


@pytest.fixture(scope="module")
def crowdpose_val(crowdpose_val_file: Path) -> tuple[Path, dict]:
    return crowdpose_val_file, json.loads(crowdpose_val_file.read_text())


def _exact(dataset: dict) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    anns = [a for a in dataset["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    ids = np.array([a["image_id"] for a in anns])
    kps = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, 14, 3)
    return ids, kps, anns


def test_crowdpose_exact_ground_truth_and_false_positives(crowdpose_val: tuple[Path, dict]) -> None:
    path, data = crowdpose_val
    ids, kps, _ = _exact(data)
    metric = KeypointAP(path, CROWDPOSE_SIGMAS, flavour="crowdpose")
    metric.update(torch.from_numpy(ids), torch.from_numpy(kps), torch.ones(len(ids), dtype=torch.float64))
    out = metric.compute()
    for k in ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard"):
        assert float(out[k]) == 1.0, k

    # Exact people plus false positives far away that outscore them: n false positives ahead of N true
    # positives give precision N / (N + n) at every recall level, so AP = N / (N + n) exactly.
    split_of = {i: s for s, members in split_by_crowd_index(data["images"]).items() for i in members}
    per_image = {i: int((ids == i).sum()) for i in np.unique(ids)}
    fp_images = [i for i, n in per_image.items() if n <= 10][::7]  # stay clear of maxDets = 20
    fp_kps = np.tile(np.array([[-5000.0, -5000.0, 1.0]]), (len(fp_images), 14, 1))
    metric.reset()
    metric.update(
        torch.from_numpy(np.concatenate([ids, fp_images])),
        torch.from_numpy(np.concatenate([kps, fp_kps])),
        torch.from_numpy(np.concatenate([np.full(len(ids), 0.5), np.full(len(fp_images), 0.9)])),
    )
    out = metric.compute()
    n_true, n_false = len(ids), len(fp_images)
    assert float(out["AP"]) == pytest.approx(n_true / (n_true + n_false), abs=1e-12)
    assert float(out["AR"]) == 1.0
    for split in ("easy", "medium", "hard"):
        t = sum(per_image.get(i, 0) for i in split_of if split_of[i] == split)
        f = sum(1 for i in fp_images if split_of[i] == split)
        assert float(out[f"AP_{split}"]) == pytest.approx(round(t / (t + f), 4), abs=1e-12), split


def test_crowdpose_dropped_people_and_noise(crowdpose_val: tuple[Path, dict]) -> None:
    _, full = crowdpose_val
    # a quarter of the images (every split represented) keeps the test fast
    data = {**full, "images": full["images"][::4]}
    kept_images = {im["id"] for im in data["images"]}
    data["annotations"] = [a for a in full["annotations"] if a["image_id"] in kept_images]
    ids, kps, _ = _exact(data)
    rng = np.random.default_rng(0)
    keep = rng.uniform(size=len(ids)) > 0.137
    metric = KeypointAP(data, CROWDPOSE_SIGMAS, flavour="crowdpose")
    metric.update(torch.from_numpy(ids[keep]), torch.from_numpy(kps[keep]), torch.ones(int(keep.sum())))
    out = metric.compute()
    recall = keep.sum() / len(ids)  # every kept prediction is exact, every dropped person is missed
    assert float(out["AR"]) == pytest.approx(recall, abs=1e-12)
    # precision 1 up to the reached recall, 0 beyond: AP = share of the 101 recall levels <= recall
    assert float(out["AP"]) == pytest.approx((np.linspace(0, 1, 101) <= recall).mean(), abs=1e-12)

    previous = 1.0
    for noise in (0.01, 0.04):
        noisy = kps.copy()
        noisy[..., :2] += rng.normal(0, noise * 200, size=noisy[..., :2].shape)
        metric.reset()
        metric.update(
            torch.from_numpy(ids), torch.from_numpy(noisy), torch.from_numpy(rng.uniform(size=len(ids)))
        )
        out = metric.compute()
        assert 0.0 < float(out["AP"]) < previous
        assert float(out["AP50"]) >= float(out["AP"])
        previous = float(out["AP"])


def test_order_of_predictions_does_not_matter(fixtures_dir: Path, tmp_path: Path) -> None:
    gt_file = fixtures_dir / "coco" / "test_coco.json"
    ids, kps, scores = _perturbed(json.loads(gt_file.read_text()), 17, 4, 0.06, 0.1, 4)
    scores[::2] = 0.5  # ties, which pycocotools breaks by results-file order
    perm = np.random.default_rng(1).permutation(len(ids))
    a, b = KeypointAP(gt_file, COCO_SIGMAS), KeypointAP(gt_file, COCO_SIGMAS)
    a.update(torch.from_numpy(ids), torch.from_numpy(kps), torch.from_numpy(scores))
    # received in another order, each prediction with its results-file position
    b.update(
        torch.from_numpy(ids[perm]), torch.from_numpy(kps[perm]), torch.from_numpy(scores[perm]),
        torch.from_numpy(perm),
    )
    ours = {k: float(v) for k, v in a.compute().items()}
    assert {k: float(v) for k, v in b.compute().items()} == ours
    ref = _pycocotools_stats(gt_file, ids, kps, scores, tmp_path)
    np.testing.assert_allclose(list(ours.values()), ref, rtol=0, atol=1e-12)


def test_no_predictions_gives_zero(fixtures_dir: Path) -> None:
    metric = KeypointAP(fixtures_dir / "coco" / "test_coco.json", COCO_SIGMAS)
    # a process that saw no one still calls update
    metric.update(torch.zeros(0, dtype=torch.long), torch.zeros(0, 17, 3), torch.zeros(0))
    out = metric.compute()
    assert float(out["AP"]) == 0.0 and float(out["AR"]) == 0.0


def test_bad_ground_truth_and_input_are_named(fixtures_dir: Path, tmp_path: Path) -> None:
    crowd = fixtures_dir / "crowdpose" / "test_crowdpose.json"
    with pytest.raises(GroundTruthError, match="test_crowdpose.json.*'area'.*flavour='crowdpose'"):
        KeypointAP(crowd, CROWDPOSE_SIGMAS, flavour="coco")
    with pytest.raises(GroundTruthError, match="keypoint values, expected 3 x 17"):
        KeypointAP(crowd, COCO_SIGMAS, flavour="crowdpose")
    no_index = copy.deepcopy(json.loads(crowd.read_text()))
    del no_index["images"][0]["crowdIndex"]
    with pytest.raises(GroundTruthError, match="crowdIndex"):
        KeypointAP(no_index, CROWDPOSE_SIGMAS, flavour="crowdpose")
    with pytest.raises(GroundTruthError, match="does not exist"):
        KeypointAP(tmp_path / "missing.json", COCO_SIGMAS)
    metric = KeypointAP(fixtures_dir / "coco" / "test_coco.json", COCO_SIGMAS)
    with pytest.raises(ValueError, match=r"image ids \[123\] are not in the ground truth"):
        metric.update(torch.tensor([123]), torch.zeros(1, 17, 3), torch.ones(1))
    with pytest.raises(ValueError, match="keypoints"):
        metric.update(torch.tensor([785]), torch.zeros(1, 14, 3), torch.ones(1))
