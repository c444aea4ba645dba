"""COCO-format keypoint files beyond COCO-17, and person detections as boxes to crop.

* CrowdPose: a COCO-format JSON with 14 keypoints per person (l/r shoulder, elbow, wrist, hip, knee, ankle,
  head, neck) and ``crowdIndex`` per image. People are read by the shared COCO-format reader and their
  keypoints mapped to the sample's COCO-17 through the registry (``crowdpose14`` -> ``coco17``); the face
  keypoints CrowdPose lacks are masked.
* Detection-box mode (any COCO-format dataset): a detection-results JSON (COCO results format, a list of
  ``{image_id, category_id, bbox (xywh), score}``) replaces the GT boxes. Each person detection with
  ``score >= threshold`` becomes a record with ``box_score`` and ``ann_id = -1``; the global centermap still
  comes from the image's annotated people.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ochmr_lit.body.keypoints import convert_keypoints, get_convention
from ochmr_lit.data.centermaps import body_centers
from ochmr_lit.data.readers.coco_format import load_coco, load_coco_keypoint_records
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.errors import MissingFileError

#: CrowdPose's keypoint names as its files spell them, and their registry names.
CROWDPOSE_FILE_NAMES = {"head": "head_top", "neck": "neck"}


def check_keypoint_names(coco, ann_file: Path, convention: str, renames: dict[str, str] | None = None) -> None:
    """Raise when the file's ``categories[].keypoints`` (if given) differ from the convention's joints."""
    expected = list(get_convention(convention).joint_names)
    for category in coco.dataset.get("categories", []):
        names = category.get("keypoints")
        if not names:
            continue
        names = [(renames or {}).get(n, n) for n in names]
        if names != expected:
            raise ValueError(f"{ann_file}: category '{category.get('name')}' lists keypoints {category['keypoints']}"
                             f", which is not the {convention} order {expected}; use the matching data config")


def load_crowdpose_records(ann_file: str | Path, image_root: str | Path, dataset: str = "crowdpose",
                           min_keypoints: int = 0) -> tuple[list[PersonRecord], Counter]:
    """Records of a CrowdPose-format file with COCO-17 keypoints (from the 14) and torso-based centres."""
    ann_file = Path(ann_file)
    coco = load_coco(ann_file)
    check_keypoint_names(coco, ann_file, "crowdpose14", CROWDPOSE_FILE_NAMES)
    records, skipped = load_coco_keypoint_records(ann_file, image_root, dataset, min_keypoints=0,
                                                  num_keypoints=14)
    by_image: dict[int, list[PersonRecord]] = {}
    for record in records:
        by_image.setdefault(record.image_id, []).append(record)
    kept: list[PersonRecord] = []
    for people in by_image.values():
        raw = np.array([np.asarray(coco.anns[p.ann_id].get("keypoints", [0] * 42), np.float64).reshape(14, 3)
                        for p in people])
        kp, present = convert_keypoints(raw, "crowdpose14", "coco17")
        kp = kp * present[:, None]
        centers = body_centers(kp, np.array([p.box for p in people]))
        for person, keypoints, center in zip(people, kp, centers, strict=True):
            person.keypoints, person.center, person.image_centers = keypoints, center, centers
            if int((keypoints[:, 2] > 0).sum()) < min_keypoints:
                skipped["too_few_keypoints"] += 1
                continue
            kept.append(person)
    return kept, skipped


def read_detections(det_file: str | Path) -> list[dict]:
    """The detections of a COCO results-format JSON, checked."""
    det_file = Path(det_file)
    if not det_file.is_file():
        raise MissingFileError(f"detection results not found: {det_file} (set data.det_files in the data config)")
    with det_file.open() as f:
        detections = json.load(f)
    if not isinstance(detections, list):
        raise ValueError(f"{det_file}: expected a list of detections (COCO results format)")
    for i, det in enumerate(detections):
        missing = [k for k in ("image_id", "bbox", "score") if k not in det]
        if missing:
            raise ValueError(f"{det_file}: detection {i} lacks {missing}; COCO results entries hold "
                             "image_id, category_id, bbox (xywh) and score")
    return detections


def _usable(det: dict, images: set[int], category_id: int) -> str | None:
    """Reason a detection cannot be a record, or None."""
    if int(det.get("category_id", category_id)) != category_id:
        return "not_person"
    if int(det["image_id"]) not in images:
        return "image_not_in_annotations"
    box = np.asarray(det["bbox"], np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 1 or box[3] <= 1:
        return "invalid_box"
    return None


def load_detection_records(det_file: str | Path, ann_file: str | Path, image_root: str | Path, dataset: str,
                           score_threshold: float = 0.0, keypoint_convention: str = "coco17",
                           category_id: int = 1) -> tuple[list[PersonRecord], Counter]:
    """One record per person detection with ``score >= score_threshold``.

    Args:
        det_file: detection results (COCO results format).
        ann_file: the split's COCO-format keypoint JSON (images, and the people whose centres make the
            global centermap).
        image_root: folder of the images' ``file_name``.
        dataset: dataset name stored in the records.
        score_threshold: detections scoring below are skipped (reason ``below_score_threshold``).
        keypoint_convention: keypoints of ``ann_file`` (``coco17`` or ``crowdpose14``).
        category_id: the person category.

    Returns:
        records (``box_score`` = score, ``ann_id`` = -1, ``extra['detection_index']``) and skipped counts
        (also ``not_person``, ``image_not_in_annotations``, ``invalid_box``).
    """
    ann_file, image_root = Path(ann_file), Path(image_root)
    coco = load_coco(ann_file)
    if keypoint_convention == "crowdpose14":
        gt, _ = load_crowdpose_records(ann_file, image_root, dataset)
    else:
        gt, _ = load_coco_keypoint_records(ann_file, image_root, dataset)
    centres: dict[int, np.ndarray] = {}
    for record in gt:
        centres.setdefault(record.image_id, record.image_centers)
    images = set(coco.imgs)
    records: list[PersonRecord] = []
    skipped: Counter = Counter()
    for i, det in enumerate(read_detections(det_file)):
        reason = _usable(det, images, category_id)
        if reason is None and float(det["score"]) < score_threshold:
            reason = "below_score_threshold"
        if reason is not None:
            skipped[reason] += 1
            continue
        image_id = int(det["image_id"])
        box = np.asarray(det["bbox"], np.float64)
        records.append(PersonRecord(
            image_path=image_root / coco.imgs[image_id]["file_name"], image_id=image_id, ann_id=-1, box=box,
            center=box[:2] + box[2:] / 2, image_centers=centres.get(image_id, np.zeros((0, 2))), dataset=dataset,
            box_score=float(det["score"]), keypoints=None, extra={"detection_index": i}))
    return records, skipped


def boxes_kept_per_threshold(det_file: str | Path, ann_file: str | Path, thresholds: Sequence[float],
                             category_id: int = 1) -> dict[float, int]:
    """Number of usable person detections with ``score >= t`` for each threshold ``t``."""
    coco = load_coco(ann_file)
    images = set(coco.imgs)
    scores = np.array([float(d["score"]) for d in read_detections(det_file) if _usable(d, images, category_id) is None])
    return {float(t): int((scores >= t).sum()) for t in thresholds}
