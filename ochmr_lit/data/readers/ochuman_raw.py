"""OCHuman's raw ``ochuman.json`` converted to the COCO keypoint format, as OCHumanApi does it.

The raw file lists ``images`` (``image_id``, ``file_name``, ``height``, ``width``, ``annotations``), each
annotation with an xyxy ``bbox``, 19 ``keypoints`` (x, y, v in the ``keypoint_names`` order, the registry's
``ochuman19``), ``segms`` (``outer``/``inner`` polygons) and ``max_iou`` (its largest box overlap with another
person). Visibility codes: 0 missing, 1 visible, 2 self-occluded, 3 occluded by others.

:func:`ochuman_to_coco` reproduces OCHumanApi's ``toCocoFormart`` (filter ``kpt&segm``; val = the first
2500 images, test = the rest; ``max_iou`` range; ids renumbered from 1; COCO v 2 for codes 1 and 2, 1 for
code 3; area = box area; mask as RLE), so the files it writes equal the official COCO-format ones. Each
annotation also keeps ``ochuman_visibility`` (the raw codes in COCO-17 order) and ``max_iou``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from ochmr_lit.body.keypoints import convert_keypoints, get_convention
from ochmr_lit.data.readers.coco_format import load_coco_keypoint_records
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.errors import MissingFileError

#: Raw names that the registry spells differently (OCHuman's head and neck have no published definition).
RAW_NAMES = {"head": "head_ochuman", "neck": "neck_ochuman"}
#: Images of the official validation split (the rest are test).
VAL_IMAGES = 2500
SUBSETS = ("all", "val", "test")
#: Raw visibility code -> COCO v (0 missing, 1 labelled but occluded, 2 visible).
COCO_VISIBILITY = np.array([0, 2, 2, 1])


def read_ochuman_raw(raw_file: str | Path) -> dict:
    """The raw OCHuman annotation dict, with its keypoint order checked against ``ochuman19``."""
    raw_file = Path(raw_file)
    if not raw_file.is_file():
        raise MissingFileError(f"OCHuman annotation file not found: {raw_file} (set data.raw_file to ochuman.json)")
    with raw_file.open() as f:
        raw = json.load(f)
    for key in ("images", "keypoint_names"):
        if key not in raw:
            raise KeyError(f"{raw_file}: key '{key}' missing; not OCHuman's raw ochuman.json")
    names = [RAW_NAMES.get(n, n) for n in raw["keypoint_names"]]
    expected = list(get_convention("ochuman19").joint_names)
    if names != expected:
        raise ValueError(f"{raw_file}: keypoint_names {raw['keypoint_names']} are not OCHuman's 19 keypoints in the "
                         f"expected order {expected}")
    return raw


def _polygons_to_rle(segms: dict, height: int, width: int) -> dict:
    """OCHumanApi's ``Poly2Mask``: outer polygons minus inner polygons, as compressed RLE (str counts)."""
    h, w = int(segms.get("height", height)), int(segms.get("width", width))
    mask = np.zeros((h, w), np.uint8)
    if segms.get("outer"):
        mask = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(segms["outer"], h, w)))
        if segms.get("inner"):
            inner = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(segms["inner"], h, w)))
            mask[inner > 0] = 0
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def ochuman_to_coco(raw: dict, subset: str = "all", max_iou_range: tuple[float, float] = (0.0, 1.0),
                    with_masks: bool = True, val_images: int = VAL_IMAGES) -> tuple[dict, Counter]:
    """The COCO-format keypoint dict of one OCHuman subset, and the counts of instances left out.

    Skipped reasons: ``no_keypoints_or_mask`` (outside OCHumanApi's ``kpt&segm`` filter) and
    ``max_iou_out_of_range``.
    """
    if subset not in SUBSETS:
        raise ValueError(f"OCHuman subset must be one of {SUBSETS}, got {subset!r}")
    coco17 = get_convention("coco17")
    skipped: Counter = Counter()
    images = []
    for image in raw["images"]:
        annotations = [a for a in image.get("annotations", []) if a.get("keypoints") and a.get("segms")]
        skipped["no_keypoints_or_mask"] += len(image.get("annotations", [])) - len(annotations)
        if annotations:
            images.append((image, annotations))
    chosen = {"all": images, "val": images[:val_images], "test": images[val_images:]}[subset]
    out = {"images": [], "annotations": [], "categories": [{
        "supercategory": "person", "id": 1, "name": "person", "keypoints": list(coco17.joint_names),
        "skeleton": [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                     [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]}]}
    image_id = ann_id = 1
    for image, annotations in chosen:
        kept = 0
        for ann in annotations:
            if not max_iou_range[0] <= ann["max_iou"] < max_iou_range[1]:
                skipped["max_iou_out_of_range"] += 1
                continue
            x1, y1, x2, y2 = ann["bbox"]
            kp19 = np.asarray(ann["keypoints"], np.float64).reshape(19, 3)
            kp17, _ = convert_keypoints(kp19, "ochuman19", "coco17")
            codes = kp17[:, 2].astype(np.int64)
            if codes.min() < 0 or codes.max() > 3:
                raise ValueError(f"image {image.get('file_name')}: keypoint visibility codes {sorted(set(codes))} "
                                 "outside OCHuman's 0-3")
            kp17[:, 2] = COCO_VISIBILITY[codes]
            keypoints = [float(v) if i % 3 != 2 else int(v) for i, v in enumerate(kp17.reshape(-1))]
            out["annotations"].append({
                "image_id": image_id, "area": (x2 - x1) * (y2 - y1), "num_keypoints": int((codes > 0).sum()),
                "iscrowd": 0, "id": ann_id, "category_id": 1, "keypoints": keypoints,
                "segmentation": (_polygons_to_rle(ann["segms"], image["height"], image["width"]) if with_masks
                                 else [[]]),
                "bbox": [x1, y1, x2 - x1, y2 - y1], "ochuman_visibility": codes.tolist(),
                "max_iou": float(ann["max_iou"])})
            ann_id += 1
            kept += 1
        if kept:
            out["images"].append({"id": image_id, "file_name": image["file_name"], "height": image["height"],
                                  "width": image["width"]})
            image_id += 1
    return out, skipped


def write_ochuman_coco(raw_file: str | Path, out_file: str | Path, subset: str = "test",
                       max_iou_range: tuple[float, float] = (0.0, 1.0), val_images: int = VAL_IMAGES) -> Counter:
    """Convert ``ochuman.json`` into a COCO-format file (atomically); returns ``kept`` and skipped counts."""
    coco, counts = ochuman_to_coco(read_ochuman_raw(raw_file), subset, max_iou_range, val_images=val_images)
    counts["kept"] = len(coco["annotations"])
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".tmp")
    tmp.write_text(json.dumps(coco))
    tmp.replace(out_file)
    return counts


def ochuman_labels(ann: dict) -> dict:
    """Extra record fields of a converted annotation: the raw visibility codes and ``max_iou``."""
    return {"extra": {"ochuman_visibility": np.asarray(ann.get("ochuman_visibility", []), np.int64),
                      "max_iou": float(ann.get("max_iou", float("nan")))}}


def load_ochuman_records(coco_file: str | Path, image_root: str | Path, dataset: str = "ochuman",
                         min_keypoints: int = 0) -> tuple[list[PersonRecord], Counter]:
    """Records of a converted (or official) OCHuman COCO-format file, with the raw codes in ``extra``."""
    return load_coco_keypoint_records(coco_file, image_root, dataset, min_keypoints=min_keypoints,
                                      extra_labels=ochuman_labels)
