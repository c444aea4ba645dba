"""SynthCrowd splits as person records: the COCO-format JSON plus its 3D ground-truth fields."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ochmr_lit.body.keypoints import convert_keypoints
from ochmr_lit.data.datasets.coco_format import load_coco_keypoint_records
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


def load_synthcrowd_records(split_dir: str | Path, min_keypoints: int = 0) -> tuple[list[PersonRecord], Counter]:
    """Records of a generated SynthCrowd split folder (``annotations.json`` + ``images/``)."""
    split_dir = Path(split_dir)
    return load_coco_keypoint_records(split_dir / "annotations.json", split_dir, dataset="synthcrowd",
                                      min_keypoints=min_keypoints, extra_labels=synthcrowd_labels)
