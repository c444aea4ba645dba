"""CrowdPose's official keypoint evaluation, reproduced on top of pycocotools' ``COCOeval``.

The official tool (Jeff-sjtu/CrowdPose, ``crowdpose-api/PythonAPI/crowdposetools/cocoeval.py``) is a
fork of pycocotools' ``COCOeval`` that differs in exactly these points, each reproduced here:

* OKS uses CrowdPose's 14 sigmas and, instead of an annotation ``area`` (CrowdPose files have none),
  ``0.53 * box width * box height`` of the ground-truth box; the same box-derived area decides which
  ground truths fall outside an area range. Writing that value into each annotation's ``area`` makes
  pycocotools' ``computeOks``/``evaluateImg`` compute exactly the fork's numbers.
* Keypoint parameters: ``maxDets = [20]``, area ranges all / medium / large (no "small") - the same as
  pycocotools' keypoint defaults.
* The summary reports AP, AP50, AP75, AR, AR50, AR75 on the "all" range (no medium/large numbers) and
  AP easy / medium / hard: the images are split by their ``crowdIndex`` (easy < 0.2 <= medium < 0.8 <=
  hard), each split is evaluated on its own, and its AP is ``round(mean(precision[:, :, :, 0, :]), 4)``
  over the whole precision array, as the fork does (-1 entries included, so a split without any valid
  ground truth reports -1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ochmr_lit.metrics.coco_tools import silent

#: crowdIndex bounds of CrowdPose's split: easy < 0.2 <= medium < 0.8 <= hard.
CROWD_INDEX_BOUNDS: tuple[float, float] = (0.2, 0.8)
#: Share of the ground-truth box used as the object area by CrowdPose's OKS.
CROWDPOSE_AREA_FACTOR = 0.53
CROWDPOSE_STAT_NAMES: tuple[str, ...] = (
    "AP",
    "AP50",
    "AP75",
    "AR",
    "AR50",
    "AR75",
    "AP_easy",
    "AP_medium",
    "AP_hard",
)


def with_box_areas(dataset: dict[str, Any]) -> dict[str, Any]:
    """Set every annotation's ``area`` to ``0.53 * w * h`` of its box (in place; returns the dict).

    Any ``area`` already present is overwritten: the official tool never reads it.
    """
    for ann in dataset["annotations"]:
        _, _, w, h = ann["bbox"]
        ann["area"] = w * h * CROWDPOSE_AREA_FACTOR
    return dataset


def split_by_crowd_index(
    images: Sequence[dict[str, Any]], bounds: tuple[float, float] = CROWD_INDEX_BOUNDS
) -> dict[str, list[int]]:
    """Image ids of the easy / medium / hard splits, in file order.

    Args:
        images: the ``images`` entries of a CrowdPose annotation file (each with ``id`` and ``crowdIndex``).
        bounds: (first, second): easy ``< first``, medium ``< second``, hard otherwise.
    """
    first, second = bounds
    splits: dict[str, list[int]] = {"easy": [], "medium": [], "hard": []}
    for image in images:
        ci = image["crowdIndex"]
        key = "easy" if ci < first else "medium" if ci < second else "hard"
        splits[key].append(image["id"])
    return splits


def _run(evaluator: COCOeval, image_ids: Sequence[int]) -> None:
    evaluator.params.imgIds = list(image_ids)
    with silent():
        evaluator.evaluate()
        evaluator.accumulate()


def _mean_valid(values: np.ndarray) -> float:
    # pycocotools' _summarize: mean over entries > -1, or -1 if there are none.
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def evaluate_crowdpose(coco_gt: COCO, coco_dt: COCO, sigmas: np.ndarray) -> dict[str, float]:
    """CrowdPose AP/AR with the official semantics.

    Args:
        coco_gt: ground truth whose annotations carry the box-derived ``area`` (see ``with_box_areas``)
            and whose images carry ``crowdIndex``.
        coco_dt: predictions (``COCO.loadRes`` output).
        sigmas: (14,) OKS sigmas.

    Returns:
        ``{AP, AP50, AP75, AR, AR50, AR75, AP_easy, AP_medium, AP_hard}`` as fractions in [0, 1]
        (-1 where a setting has no valid ground truth, as the official tool reports).
    """
    evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
    evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
    evaluator.params.maxDets = [20]
    all_ids = sorted(coco_gt.getImgIds())
    _run(evaluator, all_ids)
    p = evaluator.params
    a_all = p.areaRngLbl.index("all")
    m20 = p.maxDets.index(20)
    precision = evaluator.eval["precision"][:, :, :, a_all, m20]  # (T, R, K)
    recall = evaluator.eval["recall"][:, :, a_all, m20]  # (T, K)
    t50 = np.where(np.abs(p.iouThrs - 0.5) < 0.01)[0]
    t75 = np.where(np.abs(p.iouThrs - 0.75) < 0.01)[0]
    out = {
        "AP": _mean_valid(precision),
        "AP50": _mean_valid(precision[t50]),
        "AP75": _mean_valid(precision[t75]),
        "AR": _mean_valid(recall),
        "AR50": _mean_valid(recall[t50]),
        "AR75": _mean_valid(recall[t75]),
    }
    splits = split_by_crowd_index(coco_gt.dataset["images"])
    for name in ("easy", "medium", "hard"):
        _run(evaluator, splits[name])
        # The official tool averages the whole "all"-range precision array, -1 entries included.
        out[f"AP_{name}"] = float(round(np.mean(evaluator.eval["precision"][:, :, :, 0, :]), 4))
    return out
