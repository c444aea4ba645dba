"""SynthCrowd splits as person records: the COCO-format JSON plus its 3D ground-truth fields.

Each record also gets its distractor flag (``ochmr_lit.data.distractor``), decided from every person's visible
mask when the split is read (so splits generated before the flag existed get it too).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ochmr_lit.body.keypoints import convert_keypoints
from ochmr_lit.data.distractor import image_distractors
from ochmr_lit.data.readers.coco_format import ImageLabels, load_coco_keypoint_records
from ochmr_lit.data.schema import PersonRecord

GENDERS = {"neutral": 0, "male": 1, "female": 2}


def synthcrowd_labels(ann: dict) -> dict:
    """3D labels of one SynthCrowd annotation: SMPL pose/betas, gender, COCO-17 3D joints, occlusion."""
    joints = np.asarray(ann["joints_3d"], np.float64).reshape(24, 3)
    coco3d, present = convert_keypoints(joints, "smpl24", "coco17")
    keypoints_3d = np.concatenate([np.asarray(coco3d), present[:, None].astype(np.float64)], axis=1)
    gender = ann.get("gender", "neutral")
    return {
        "smpl_pose": np.asarray(ann["smpl_pose"], np.float64),
        "smpl_betas": np.asarray(ann["smpl_betas"], np.float64),
        "gender": GENDERS[gender] if isinstance(gender, str) else int(gender),
        "keypoints_3d": keypoints_3d,
        "occlusion_ratio": float(ann["occlusion_ratio"]),
    }


def distractor_labels(ann_file: Path) -> ImageLabels:
    """Per-image labels for the record loader: ``{annotation id: {"distractor": 1.0 | 0.0 | NaN}}``.

    The returned function raises a one-line ValueError naming the file and the image when an image entry
    lacks a positive integer ``height`` or ``width`` (the size of its masks).
    """

    def labels(image: dict, annotations: list[dict]) -> dict[int, dict]:
        size = [image.get("height"), image.get("width")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
            raise ValueError(f"{ann_file}: image {image.get('id')} has no positive integer 'height' and 'width' "
                             f"(got {size}); regenerate the split (the generator writes both)")
        flags = image_distractors(annotations, size[0], size[1])
        return {ann_id: {"distractor": flag} for ann_id, flag in flags.items()}

    return labels


def load_synthcrowd_records(split_dir: str | Path, min_keypoints: int = 0) -> tuple[list[PersonRecord], Counter]:
    """Records of a generated SynthCrowd split folder (``annotations.json`` + ``images/``), with their 3D
    labels, occlusion ratios and distractor flags."""
    split_dir = Path(split_dir)
    ann_file = split_dir / "annotations.json"
    return load_coco_keypoint_records(ann_file, split_dir, dataset="synthcrowd", min_keypoints=min_keypoints,
                                      extra_labels=synthcrowd_labels, image_labels=distractor_labels(ann_file))
