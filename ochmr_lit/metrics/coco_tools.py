"""Ground-truth loading and pycocotools plumbing shared by the keypoint AP evaluations.

pycocotools does the evaluation itself; this module only validates the inputs (so a bad file fails
with a message naming the file and the key instead of a ``KeyError`` deep inside ``COCOeval``), builds
the ``COCO`` objects in memory and silences pycocotools' progress prints.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

GroundTruthSource = str | Path | Mapping[str, Any]


class GroundTruthError(ValueError):
    """A keypoint ground-truth file or dict that cannot be evaluated."""


@contextlib.contextmanager
def silent() -> Iterator[None]:
    """Swallow pycocotools' progress prints (``loading annotations...``, ``DONE (t=...)``)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def load_keypoint_ground_truth(
    source: GroundTruthSource,
    num_keypoints: int,
    require_area: bool = True,
    require_crowd_index: bool = False,
) -> tuple[dict[str, Any], str]:
    """Read and check a COCO-format keypoint annotation file (or an already loaded dict).

    Args:
        source: path to the JSON file, or the parsed dict (it is deep-copied, never modified).
        num_keypoints: K; every annotation's ``keypoints`` must hold 3K numbers ``[x, y, v]`` in pixels.
        require_area: COCO-style OKS divides by ``area``; CrowdPose files have none (its tool uses the box).
        require_crowd_index: CrowdPose's easy/medium/hard split needs ``crowdIndex`` on every image.

    Returns:
        ``(dataset dict, label)`` where the label names the file (or ``"<dict>"``) for error messages.

    Raises:
        GroundTruthError: naming the file, the offending key and what to do about it.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise GroundTruthError(
                f"keypoint ground truth {label} does not exist: pass the path of a "
                "COCO-format keypoint annotation JSON file"
            )
        with path.open() as f:
            dataset = json.load(f)
    elif isinstance(source, Mapping):
        label = "<dict>"
        dataset = copy.deepcopy(dict(source))
    else:
        raise GroundTruthError(f"keypoint ground truth must be a path or a dict, got {type(source).__name__}")

    for key in ("images", "annotations", "categories"):
        if key not in dataset:
            raise GroundTruthError(
                f"{label}: missing top-level key {key!r}; a COCO keypoint file has "
                "'images', 'annotations' and 'categories'"
            )
    image_ids = set()
    for image in dataset["images"]:
        if "id" not in image:
            raise GroundTruthError(f"{label}: an entry of 'images' has no 'id'")
        image_ids.add(image["id"])
        if require_crowd_index and "crowdIndex" not in image:
            raise GroundTruthError(
                f"{label}: image id {image['id']} has no 'crowdIndex'; the CrowdPose "
                "evaluation splits images by it (use the official CrowdPose annotation "
                "file, or flavour='coco')"
            )
    needed = ["id", "image_id", "category_id", "keypoints", "num_keypoints", "bbox", "iscrowd"]
    if require_area:
        needed.append("area")
    for ann in dataset["annotations"]:
        for key in needed:
            if key not in ann:
                hint = " (CrowdPose files have no 'area': use flavour='crowdpose')" if key == "area" else ""
                raise GroundTruthError(f"{label}: annotation id {ann.get('id', '?')} has no {key!r}{hint}")
        if len(ann["keypoints"]) != 3 * num_keypoints:
            raise GroundTruthError(
                f"{label}: annotation id {ann['id']} has {len(ann['keypoints'])} keypoint values, expected "
                f"3 x {num_keypoints} (the number of OKS sigmas given); pass the sigmas of this dataset's "
                "keypoint convention"
            )
        if ann["image_id"] not in image_ids:
            raise GroundTruthError(
                f"{label}: annotation id {ann['id']} refers to image id "
                f"{ann['image_id']} which is not in 'images'"
            )
    return dataset, label


def coco_from_dataset(dataset: dict[str, Any]) -> COCO:
    """A pycocotools ``COCO`` object over an in-memory dataset dict (no file round trip)."""
    coco = COCO()
    coco.dataset = dataset
    with silent():
        coco.createIndex()
    return coco


def keypoint_results(
    image_ids: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, category_id: int = 1
) -> list[dict[str, Any]]:
    """Predictions in the COCO keypoint results format.

    Args:
        image_ids: (N,) integer image ids.
        keypoints: (N, K, 3) ``[x, y, confidence]`` in pixels.
        scores: (N,) person scores.

    Returns:
        N dicts ``{image_id, category_id, keypoints: [x1, y1, c1, ...], score}`` (no ``bbox`` key: with one,
        ``COCO.loadRes`` would take the box branch and compute areas from it).
    """
    if len(image_ids) == 0:
        return []
    flat = np.asarray(keypoints, dtype=np.float64).reshape(len(image_ids), -1).tolist()
    ids = np.asarray(image_ids).astype(np.int64).tolist()
    sc = np.asarray(scores, dtype=np.float64).tolist()
    return [
        {"image_id": i, "category_id": category_id, "keypoints": k, "score": s}
        for i, k, s in zip(ids, flat, sc, strict=True)
    ]


def load_results(coco_gt: COCO, results: Sequence[dict[str, Any]]) -> COCO:
    """``coco_gt.loadRes(results)``, also for an empty result list (which loadRes cannot take)."""
    if len(results) > 0:
        with silent():
            return coco_gt.loadRes(list(results))
    empty = COCO()
    empty.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "categories": copy.deepcopy(coco_gt.dataset["categories"]),
        "annotations": [],
    }
    with silent():
        empty.createIndex()
    return empty
