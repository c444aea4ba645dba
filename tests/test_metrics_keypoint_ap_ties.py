"""KeypointAP with score ties: the same numbers as the official tools on the same results file.

pycocotools (and CrowdPose's fork of it) rank detections by a stable sort on ``-score``, so predictions
with equal scores keep their results-file order. KeypointAP orders them by a per-prediction index (the
results-file position), so the result matches the official route on the file listed in index order,
whatever the order, batching or sharding in which the metric received them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from test_metrics_keypoint_ap import pycocotools_file_stats

from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.eval.detector_sweep import DetectorSweep
from ochmr_lit.metrics import COCO_STAT_NAMES, KeypointAP
from ochmr_lit.metrics.coco_tools import silent
from ochmr_lit.metrics.crowdpose_eval import CROWDPOSE_AREA_FACTOR, split_by_crowd_index

COCO_SIGMAS = get_convention("coco17").sigmas
CROWDPOSE_SIGMAS = get_convention("crowdpose14").sigmas


def _tied_predictions(dataset: dict, num_kp: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A results list, in results-file order, full of exact score ties.

    Every labelled person gets a close and a far prediction with the same score (which of the two is
    ranked first decides which one is the true positive); scores take three values, so ties also span
    images; a few far-away false positives share those scores too. The list is shuffled.
    """
    rng = np.random.default_rng(seed)
    levels = np.array([0.3, 0.6, 0.9])
    ids, kps, scores = [], [], []
    for ann in dataset["annotations"]:
        if ann["num_keypoints"] == 0 or ann.get("iscrowd", 0):
            continue
        gt = np.array(ann["keypoints"], dtype=np.float64).reshape(num_kp, 3)
        size = np.sqrt(ann["bbox"][2] * ann["bbox"][3])
        score = float(rng.choice(levels))
        for noise in (0.02, 0.08):
            kp = gt.copy()
            kp[:, :2] += rng.normal(0, noise * size, size=(num_kp, 2))
            kp[:, 2] = 1.0
            ids.append(ann["image_id"])
            kps.append(kp)
            scores.append(score)
    for image in dataset["images"][::2]:
        ids.append(image["id"])
        kps.append(np.concatenate([rng.uniform(-900, -500, (num_kp, 2)), np.ones((num_kp, 1))], -1))
        scores.append(float(rng.choice(levels)))
    order = rng.permutation(len(ids))
    return np.array(ids)[order], np.stack(kps)[order], np.array(scores)[order]


def _results_file(path: Path, ids: np.ndarray, kps: np.ndarray, scores: np.ndarray) -> Path:
    path.write_text(
        json.dumps(
            [
                {"image_id": int(i), "category_id": 1, "keypoints": k.reshape(-1).tolist(), "score": float(s)}
                for i, k, s in zip(ids, kps, scores, strict=True)
            ]
        )
    )
    return path




def _crowdpose_reference(gt_data: dict, res_file: Path, tmp_path: Path) -> dict[str, float]:
    """CrowdPose's official numbers by its fork's rules, on a results file read with ``loadRes``.

    The fork's OKS and area ranges use ``0.53 x`` the GT box (written into ``area`` here), maxDets 20;
    AP/AR average the valid entries of the all-range arrays, AP easy/medium/hard average each split's
    whole precision array, rounded to 4 digits.
    """
    data = copy.deepcopy(gt_data)
    for ann in data["annotations"]:
        ann["area"] = ann["bbox"][2] * ann["bbox"][3] * CROWDPOSE_AREA_FACTOR
    gt_file = tmp_path / "crowdpose_gt.json"
    gt_file.write_text(json.dumps(data))
    with silent():
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(str(res_file)), "keypoints")
        ev.params.kpt_oks_sigmas = CROWDPOSE_SIGMAS
        ev.params.maxDets = [20]
        ev.evaluate()
        ev.accumulate()
    precision, recall = ev.eval["precision"][:, :, :, 0, 0], ev.eval["recall"][:, :, 0, 0]

    def valid_mean(a: np.ndarray) -> float:
        return float(a[a > -1].mean()) if (a > -1).any() else -1.0

    out = {"AP": valid_mean(precision), "AP50": valid_mean(precision[0]), "AP75": valid_mean(precision[5]),
           "AR": valid_mean(recall), "AR50": valid_mean(recall[0]), "AR75": valid_mean(recall[5])}
    for name, image_ids in split_by_crowd_index(data["images"]).items():
        with silent():
            ev.params.imgIds = image_ids
            ev.evaluate()
            ev.accumulate()
        out[f"AP_{name}"] = float(round(np.mean(ev.eval["precision"][:, :, :, 0, :]), 4))
    return out


def _update_in_batches(metric: KeypointAP, ids, kps, scores, positions, batches) -> None:
    """Feed the predictions at ``positions`` of the results file in the given batches, with their indices."""
    for batch in batches:
        rows = positions[batch]
        metric.update(
            torch.from_numpy(ids[rows]),
            torch.from_numpy(kps[rows]),
            torch.from_numpy(scores[rows]),
            torch.from_numpy(rows),
        )


@pytest.mark.parametrize("name", ["coco/test_coco.json", "ochuman/test_ochuman.json"])
def test_score_ties_equalpycocotools_file_stats(fixtures_dir: Path, tmp_path: Path, name: str) -> None:
    gt_file = fixtures_dir / name
    dataset = json.loads(gt_file.read_text())
    tie_order_mattered = False
    for seed in range(4):
        ids, kps, scores = _tied_predictions(dataset, 17, seed)
        n = len(ids)
        assert len(np.unique(scores)) < n / 3  # ties within images and across them
        ref = pycocotools_file_stats(gt_file, _results_file(tmp_path / "results.json", ids, kps, scores))
        backwards = pycocotools_file_stats(gt_file, _results_file(tmp_path / "reversed.json", ids[::-1], kps[::-1],
                                                        scores[::-1]))
        tie_order_mattered |= not np.allclose(ref, backwards, rtol=0, atol=1e-9)

        # Received shuffled and in uneven batches, each prediction with its results-file position.
        metric = KeypointAP(gt_file, COCO_SIGMAS)
        received = np.random.default_rng(100 + seed).permutation(n)
        _update_in_batches(metric, ids, kps, scores, received, [slice(0, 3), slice(3, n // 2), slice(n // 2, n)])
        ours = metric.compute()
        assert list(ours) == list(COCO_STAT_NAMES)
        np.testing.assert_allclose([float(v) for v in ours.values()], ref, rtol=0, atol=1e-9)
        assert float(ours["AP"]) > 0.0

        # Without indices, a single process's input order is the results-file order.
        plain = KeypointAP(gt_file, COCO_SIGMAS)
        plain.update(torch.from_numpy(ids), torch.from_numpy(kps), torch.from_numpy(scores))
        np.testing.assert_allclose([float(v) for v in plain.compute().values()], ref, rtol=0, atol=1e-9)
        np.testing.assert_allclose(list(metric.evaluate(ids, kps, scores).values()), ref, rtol=0, atol=1e-9)
    assert tie_order_mattered  # the comparison is not vacuous: the tie order moves AP on these sets


def test_score_ties_do_not_depend_on_sharding(fixtures_dir: Path, tmp_path: Path) -> None:
    """Two "ranks" that saw the predictions in another grouping, merged as a DDP ``cat`` gather does."""
    gt_file = fixtures_dir / "coco" / "test_coco.json"
    ids, kps, scores = _tied_predictions(json.loads(gt_file.read_text()), 17, 7)
    n = len(ids)
    ref = pycocotools_file_stats(gt_file, _results_file(tmp_path / "results.json", ids, kps, scores))
    everything = np.arange(n)

    single = KeypointAP(gt_file, COCO_SIGMAS)
    _update_in_batches(single, ids, kps, scores, everything, [slice(0, n)])
    expected = {k: float(v) for k, v in single.compute().items()}
    np.testing.assert_allclose(list(expected.values()), ref, rtol=0, atol=1e-9)

    # Same metric, two update calls in another grouping (the second "rank's" shard first).
    two_calls = KeypointAP(gt_file, COCO_SIGMAS)
    _update_in_batches(two_calls, ids, kps, scores, everything, [slice(1, None, 2), slice(0, None, 2)])
    assert {k: float(v) for k, v in two_calls.compute().items()} == expected

    # Two ranks as a strided sampler splits them (rank r: r, r + 2, ...), in batches of 3, merged both ways.
    for first, second in ((0, 1), (1, 0)):
        ranks = [KeypointAP(gt_file, COCO_SIGMAS) for _ in range(2)]
        for r, metric in enumerate(ranks):
            shard = everything[r::2]
            _update_in_batches(metric, ids, kps, scores, shard, [slice(i, i + 3) for i in range(0, len(shard), 3)])
        ranks[first].merge_state(ranks[second])
        assert {k: float(v) for k, v in ranks[first].compute().items()} == expected

    # The detector sweep keeps each box score with its prediction through the reordering.
    box = np.linspace(0.05, 0.95, n)
    sweeps = []
    for positions in (everything, everything[::-1].copy()):
        sweep = DetectorSweep(gt_file, COCO_SIGMAS, thresholds=(0.0, 0.5))
        sweep.update(torch.from_numpy(ids[positions]), torch.from_numpy(kps[positions]),
                     torch.from_numpy(scores[positions]), torch.from_numpy(box[positions]),
                     torch.from_numpy(positions))
        sweeps.append({k: v.tolist() for k, v in sweep.compute().items()})
    assert sweeps[0] == sweeps[1]
    assert sweeps[0]["AP"][0] == pytest.approx(expected["AP"], abs=1e-12)
    kept = box >= 0.5
    kept_file = _results_file(tmp_path / "kept.json", ids[kept], kps[kept], scores[kept])
    half_ref = pycocotools_file_stats(gt_file, kept_file)
    assert sweeps[0]["num_boxes"] == [float(n), float(kept.sum())]
    assert sweeps[0]["AP"][1] == pytest.approx(half_ref[0], abs=1e-9)


def test_crowdpose_score_ties_equal_the_official_rules(fixtures_dir: Path, tmp_path: Path) -> None:
    gt_file = fixtures_dir / "crowdpose" / "test_crowdpose.json"
    data = json.loads(gt_file.read_text())
    tie_order_mattered = False
    for seed in range(4):
        ids, kps, scores = _tied_predictions(data, 14, seed)
        n = len(ids)
        ref = _crowdpose_reference(data, _results_file(tmp_path / "results.json", ids, kps, scores), tmp_path)
        backwards = _crowdpose_reference(
            data, _results_file(tmp_path / "reversed.json", ids[::-1], kps[::-1], scores[::-1]), tmp_path
        )
        tie_order_mattered |= abs(ref["AP"] - backwards["AP"]) > 1e-9
        metric = KeypointAP(gt_file, CROWDPOSE_SIGMAS, flavour="crowdpose")
        received = np.random.default_rng(200 + seed).permutation(n)
        _update_in_batches(metric, ids, kps, scores, received, [slice(0, n // 3), slice(n // 3, n)])
        ours = {k: float(v) for k, v in metric.compute().items()}
        assert ours.keys() == ref.keys()
        for key, value in ref.items():
            assert ours[key] == pytest.approx(value, abs=1e-9), key
    assert tie_order_mattered


def test_indices_must_be_integers_like_image_ids(fixtures_dir: Path) -> None:
    metric = KeypointAP(fixtures_dir / "coco" / "test_coco.json", COCO_SIGMAS)
    with pytest.raises(ValueError, match="integer indices"):
        metric.update(torch.tensor([785]), torch.zeros(1, 17, 3), torch.ones(1), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="integer indices"):
        metric.update(torch.tensor([785]), torch.zeros(1, 17, 3), torch.ones(1), torch.tensor([0, 1]))


def test_repeated_indices_are_named(fixtures_dir: Path) -> None:
    metric = KeypointAP(fixtures_dir / "coco" / "test_coco.json", COCO_SIGMAS)
    metric.update(torch.tensor([785, 785]), torch.zeros(2, 17, 3), torch.ones(2), torch.tensor([3, 3]))
    with pytest.warns(UserWarning, match="indices repeat"):
        metric.compute()


def test_evaluation_ranks_box_score_ties_by_sample_index(fixtures_dir: Path, tmp_path: Path) -> None:
    """The evaluation scores people by their box score, all equal for GT boxes: every prediction is tied, and
    the AP is pycocotools' on a results file listing the samples in dataset order."""
    from ochmr_lit.eval.mesh_evaluation import MeshEvaluation
    from ochmr_lit.geometry import apply_affine

    gt_file = fixtures_dir / "coco" / "test_coco.json"
    ids, kps, _ = _tied_predictions(json.loads(gt_file.read_text()), 17, 3)
    kps = kps.astype(np.float32).astype(np.float64)  # the evaluation runs in float32: keep the inputs exact
    n = len(ids)
    scores = np.ones(n)
    ref = pycocotools_file_stats(gt_file, _results_file(tmp_path / "results.json", ids, kps, scores))
    backwards = pycocotools_file_stats(gt_file, _results_file(tmp_path / "reversed.json", ids[::-1], kps[::-1], scores))
    assert abs(ref[0] - backwards[0]) > 1e-3  # the sample order decides these ties

    evaluation = MeshEvaluation("coco_ap", keypoint_ground_truth=gt_file)
    to_crop = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]], dtype=torch.float64)  # exact in float32
    received = np.random.default_rng(0).permutation(n)  # as another sampler or process split would deliver
    for rows in np.array_split(received, 3):
        b = len(rows)
        batch = {
            "index": torch.from_numpy(rows),  # the sample's position in its dataset
            "image_id": torch.from_numpy(ids[rows]),
            "ann_id": torch.full((b,), -1),  # not tied to an annotation: always scored
            "box_score": torch.ones(b),
            "crop_affine": to_crop.expand(b, 2, 3),
            "dataset": ["coco"] * b,
            "has_smpl": torch.zeros(b, dtype=torch.bool),
        }
        crop_px = apply_affine(to_crop, torch.from_numpy(kps[rows][..., :2]))
        batch["keypoints_2d"] = torch.cat([crop_px, torch.ones(b, 17, 1, dtype=crop_px.dtype)], dim=-1)
        evaluation.update(batch, {"vertices": torch.zeros(b, 1, 3), "keypoints_2d_coco17": crop_px}, body=None)
    metrics = evaluation.compute()
    assert metrics["kp_num_scored"] == n
    assert metrics["kp2d_px"] == 0.0  # the predictions are the labels
    for name, value in zip(COCO_STAT_NAMES, ref, strict=True):
        assert metrics[f"kp_{name}"] == pytest.approx(value, abs=1e-9), name
