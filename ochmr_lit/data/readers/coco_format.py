"""Person records from a COCO-format keypoint JSON (COCO, CrowdPose, OCHuman, SynthCrowd).

The JSON is checked field by field (a malformed file stops with a one-line error naming the file, the
field and the fix), then indexed with pycocotools; each non-crowd person with a valid box becomes a
:class:`~ochmr_lit.data.schema.PersonRecord`. Every annotation left out is counted by reason.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from pycocotools.coco import COCO

from ochmr_lit.data.centermaps import body_centers
from ochmr_lit.data.schema import NUM_KEYPOINTS, PersonRecord
from ochmr_lit.errors import MissingFileError

ExtraLabels = Callable[[dict], dict]
#: ``(image entry, the image's annotations) -> {annotation id: extra PersonRecord fields}``: labels that need
#: the whole image (every person's mask), such as the distractor flag.
ImageLabels = Callable[[dict, list[dict]], dict[int, dict]]


def _short(value: Any, limit: int = 40) -> str:
    """``repr`` of a value from the file, cut to one short line."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _type_name(value: Any) -> str:
    return {dict: "dict", list: "list", str: "string", type(None): "null"}.get(type(value), type(value).__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Checker:
    """Raises the one-line ``<file>: <where>: <problem>; <fix>`` errors of a malformed annotation file."""

    def __init__(self, ann_file: Path):
        self.ann_file = ann_file

    def fail(self, problem: str, fix: str) -> NoReturn:
        raise ValueError(f"{self.ann_file}: {problem}; {fix}")

    def objects(self, data: dict, key: str, required: bool = True) -> list[dict]:
        """``data[key]``, checked to be a list of JSON objects."""
        if key not in data:
            if required:
                self.fail(f"no '{key}' list", f"a COCO-format file has '{key}': [...] at its top level")
            return []
        items = data[key]
        if not isinstance(items, list):
            self.fail(f"'{key}' must be a list of objects, got a {_type_name(items)}", f"write '{key}': [{{...}}, ...]")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                self.fail(f"{key}[{i}] must be an object, got {_short(item)}", f"fix or remove {key}[{i}]")
        return items

    def integer(self, item: dict, key: str, where: str) -> int:
        """``item[key]``, checked to be present and a JSON integer."""
        if key not in item:
            self.fail(f"{where} has no '{key}'", f"give it an integer '{key}'")
        if not _is_int(item[key]):
            self.fail(f"{where}: '{key}' must be an integer, got {_short(item[key])}", f"fix {where}")
        return item[key]

    def unique_ids(self, items: list[dict], key: str, label: str) -> None:
        """Every item of ``items`` (the file's ``key`` list) has an integer ``id`` no other item has."""
        first: dict[int, int] = {}
        for i, item in enumerate(items):
            identifier = self.integer(item, "id", f"{key}[{i}]")
            if identifier in first:
                self.fail(f"{label} id {identifier} appears twice ({key}[{first[identifier]}] and {key}[{i}])",
                          "ids must be unique: renumber or remove the duplicate")
            first[identifier] = i


def _checked_coco_json(ann_file: Path) -> dict:
    """The parsed annotation file, with everything pycocotools and the record loader index checked."""
    check = _Checker(ann_file)
    try:
        data = json.loads(ann_file.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        check.fail(f"is not valid JSON ({_short(str(error), 80)})", "re-export the annotation file as UTF-8 JSON")
    if not isinstance(data, dict):
        check.fail(f"top level is a {_type_name(data)}, expected a JSON object with 'images' and 'annotations'",
                   "give a COCO-format keypoint annotation file")
    images = check.objects(data, "images")
    annotations = check.objects(data, "annotations")
    categories = check.objects(data, "categories", required=False)
    check.unique_ids(images, "images", "image")
    for i, image in enumerate(images):
        where, fix = f"images[{i}] (id {image['id']})", "give the image path relative to the image root"
        if "file_name" not in image:
            check.fail(f"{where} has no 'file_name'", fix)
        if not isinstance(image["file_name"], str):
            check.fail(f"{where}: 'file_name' must be a string, got {_short(image['file_name'])}", fix)
    check.unique_ids(annotations, "annotations", "annotation")
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}] (id {ann['id']})"
        check.integer(ann, "image_id", where)
        if "categories" in data or "category_id" in ann:  # pycocotools indexes it when there are categories
            check.integer(ann, "category_id", where)
    for i, category in enumerate(categories):
        check.integer(category, "id", f"categories[{i}]")
    return data


def load_coco(ann_file: str | Path) -> COCO:
    """pycocotools' COCO index of a keypoint JSON, quietly; a one-line error for a missing or malformed file."""
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise MissingFileError(f"annotation file not found: {ann_file} "
                               "(set the dataset's ann_files in the data config)")
    data = _checked_coco_json(ann_file)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _valid_box(box: Any) -> bool:
    """A list of 4 finite numbers ``[x, y, w, h]`` with width and height above one pixel."""
    if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
        return False
    values = np.asarray(box, dtype=np.float64)
    return bool(np.all(np.isfinite(values))) and values[2] > 1 and values[3] > 1


def _keypoints(check: _Checker, where: str, ann: dict, num_keypoints: int) -> np.ndarray | None:
    """``(num_keypoints, 3)`` keypoints of an annotation (zeros when it has none); None when a value is not
    finite (the person is skipped as ``invalid_keypoints``)."""
    if "keypoints" not in ann:
        return np.zeros((num_keypoints, 3))
    values = ann["keypoints"]
    fix = f"give {num_keypoints} [x, y, v] triplets as one flat list of numbers, or remove 'keypoints'"
    if not isinstance(values, list):
        check.fail(f"{where}: 'keypoints' must be a list of numbers, got {_short(values)}", fix)
    if len(values) != num_keypoints * 3:
        check.fail(f"{where}: 'keypoints' has {len(values)} values, expected {num_keypoints * 3}", fix)
    for j, value in enumerate(values):
        if not _is_number(value):
            check.fail(f"{where}: 'keypoints' must be a list of numbers, got {_short(value)} at index {j}", fix)
    if not all(math.isfinite(v) for v in values):
        return None
    return np.asarray(values, np.float64).reshape(num_keypoints, 3)


def load_coco_keypoint_records(
    ann_file: str | Path,
    image_root: str | Path,
    dataset: str,
    min_keypoints: int = 0,
    extra_labels: ExtraLabels | None = None,
    num_keypoints: int = NUM_KEYPOINTS,
    image_labels: ImageLabels | None = None,
) -> tuple[list[PersonRecord], Counter]:
    """Records of every usable person, and the count of skipped annotations by reason.

    Skip reasons: ``crowd_region``, ``invalid_box`` (missing, not 4 finite numbers, or width/height <= 1 px),
    ``invalid_keypoints`` (a non-finite keypoint value), ``unknown_image`` (``image_id`` not in ``images``),
    ``too_few_keypoints``. A malformed file (not JSON, missing or mistyped fields, duplicate ids, keypoints of
    the wrong length or type) raises a one-line ValueError naming the file, the field and the fix.

    Args:
        ann_file: COCO-format keypoint JSON.
        image_root: folder the images' ``file_name`` is relative to.
        dataset: dataset name stored in each record.
        min_keypoints: people with fewer labelled keypoints are skipped (reason ``too_few_keypoints``).
        extra_labels: maps an annotation dict to extra PersonRecord fields (3D labels, occlusion ratio...).
        num_keypoints: keypoints per person in the file (17 for COCO-17 files).
        image_labels: called once per image with people, with the image entry and all its annotations
            (crowd regions and skipped people included); its fields for an annotation id are added to that
            person's record (after ``extra_labels``').
    """
    ann_file = Path(ann_file)
    coco = load_coco(ann_file)
    check = _Checker(ann_file)
    image_root = Path(image_root)
    records: list[PersonRecord] = []
    skipped: Counter = Counter()
    # per-annotation fields first, in file order, so that an error names the annotation's place in the file
    keypoints_of: dict[int, np.ndarray | None] = {}
    for i, ann in enumerate(coco.dataset["annotations"]):
        where = f"annotations[{i}] (id {ann['id']})"
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1) or isinstance(crowd, float):
            check.fail(f"{where}: 'iscrowd' must be 0 or 1, got {_short(crowd)}",
                       "use 1 for a crowd region, 0 (or no 'iscrowd') for a person")
        keypoints_of[ann["id"]] = _keypoints(check, where, ann, num_keypoints)
        if ann["image_id"] not in coco.imgs:
            skipped["unknown_image"] += 1
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        people, people_keypoints = [], []
        for ann in coco.imgToAnns.get(image_id, []):
            if ann.get("iscrowd", 0):
                skipped["crowd_region"] += 1
            elif not _valid_box(ann.get("bbox")):
                skipped["invalid_box"] += 1
            elif keypoints_of[ann["id"]] is None:
                skipped["invalid_keypoints"] += 1
            else:
                people.append(ann)
                people_keypoints.append(keypoints_of[ann["id"]])
        if not people:
            continue
        per_image = image_labels(info, coco.imgToAnns.get(image_id, [])) if image_labels is not None else {}
        boxes = np.array([p["bbox"] for p in people], dtype=np.float64)
        keypoints = np.stack(people_keypoints)  # (people, num_keypoints, 3)
        centers = body_centers(keypoints if num_keypoints == NUM_KEYPOINTS else None, boxes)
        for i, person in enumerate(people):
            labelled = int((keypoints[i, :, 2] > 0).sum())
            if labelled < min_keypoints:
                skipped["too_few_keypoints"] += 1
                continue
            fields = extra_labels(person) if extra_labels is not None else {}
            fields.update(per_image.get(person["id"], {}))
            records.append(PersonRecord(
                image_path=image_root / info["file_name"], image_id=int(image_id), ann_id=int(person["id"]),
                box=boxes[i], center=centers[i], image_centers=centers, dataset=dataset,
                keypoints=keypoints[i] if num_keypoints == NUM_KEYPOINTS else None, **fields))
    return records, skipped
