"""Person records from a COCO-format keypoint JSON (COCO, CrowdPose, OCHuman, SynthCrowd).

The JSON is read with pycocotools; each non-crowd person with a valid box becomes a
:class:`~ochmr_lit.data.schema.PersonRecord`. Every annotation left out is counted by reason.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from ochmr_lit.data.centermaps import body_centers
from ochmr_lit.data.schema import NUM_KEYPOINTS, PersonRecord

ExtraLabels = Callable[[dict], dict]


def load_coco(ann_file: str | Path) -> COCO:
    """pycocotools' COCO index of a keypoint JSON, quietly; a clear error for a missing/invalid file."""
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise FileNotFoundError(f"annotation file not found: {ann_file} "
                                "(set the dataset's ann_files in the data config)")
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return COCO(str(ann_file))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{ann_file} is not a COCO-format annotation file: {error}") from error


def _valid_box(box) -> bool:
    box = np.asarray(box, dtype=np.float64)
    return box.shape == (4,) and bool(np.all(np.isfinite(box))) and box[2] > 1 and box[3] > 1


def load_coco_keypoint_records(
    ann_file: str | Path,
    image_root: str | Path,
    dataset: str,
    min_keypoints: int = 0,
    extra_labels: ExtraLabels | None = None,
    num_keypoints: int = NUM_KEYPOINTS,
) -> tuple[list[PersonRecord], Counter]:
    """Records of every usable person, and the count of skipped annotations by reason.

    Args:
        ann_file: COCO-format keypoint JSON.
        image_root: folder the images' ``file_name`` is relative to.
        dataset: dataset name stored in each record.
        min_keypoints: people with fewer labelled keypoints are skipped (reason ``too_few_keypoints``).
        extra_labels: maps an annotation dict to extra PersonRecord fields (3D labels, occlusion ratio...).
        num_keypoints: keypoints per person in the file (17 for COCO-17 files).
    """
    coco = load_coco(ann_file)
    image_root = Path(image_root)
    records: list[PersonRecord] = []
    skipped: Counter = Counter()
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        anns = coco.imgToAnns.get(image_id, [])
        people = []
        for ann in anns:
            if ann.get("iscrowd", 0):
                skipped["crowd_region"] += 1
            elif not _valid_box(ann.get("bbox", ())):
                skipped["invalid_box"] += 1
            else:
                people.append(ann)
        if not people:
            continue
        boxes = np.array([p["bbox"] for p in people], dtype=np.float64)
        keypoints = np.zeros((len(people), num_keypoints, 3))
        for i, person in enumerate(people):
            if "keypoints" in person and len(person["keypoints"]) == num_keypoints * 3:
                keypoints[i] = np.asarray(person["keypoints"], np.float64).reshape(num_keypoints, 3)
            elif "keypoints" in person:
                raise ValueError(f"{ann_file}: annotation {person['id']} has {len(person['keypoints'])} keypoint "
                                 f"values, expected {num_keypoints * 3}")
        centers = body_centers(keypoints if num_keypoints == NUM_KEYPOINTS else None, boxes)
        for i, person in enumerate(people):
            labelled = int((keypoints[i, :, 2] > 0).sum())
            if labelled < min_keypoints:
                skipped["too_few_keypoints"] += 1
                continue
            fields = extra_labels(person) if extra_labels is not None else {}
            records.append(PersonRecord(
                image_path=image_root / info["file_name"], image_id=int(image_id), ann_id=int(person["id"]),
                box=boxes[i], center=centers[i], image_centers=centers, dataset=dataset,
                keypoints=keypoints[i] if num_keypoints == NUM_KEYPOINTS else None, **fields))
    return records, skipped
