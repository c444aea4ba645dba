"""COCO-format keypoint files -> person records, on the real fixtures."""

import json
from collections import Counter

import numpy as np
import pytest

from ochmr_lit.data.readers.coco_format import load_coco_keypoint_records
from ochmr_lit.data.transforms import AugmentationConfig, BadSampleError, TopDownTransform
from ochmr_lit.geometry import apply_affine


def test_coco_fixture_records_count_every_annotation(fixtures_dir):
    ann_file = fixtures_dir / "coco" / "test_coco.json"
    data = json.loads(ann_file.read_text())
    records, skipped = load_coco_keypoint_records(ann_file, fixtures_dir / "coco", "coco", min_keypoints=1)
    crowd = sum(1 for a in data["annotations"] if a.get("iscrowd", 0))
    no_kp = sum(1 for a in data["annotations"] if not a.get("iscrowd", 0) and a["num_keypoints"] < 1)
    assert len(records) + sum(skipped.values()) == len(data["annotations"])
    assert skipped == Counter({k: v for k, v in {"crowd_region": crowd, "too_few_keypoints": no_kp}.items() if v})
    for record in records:
        assert record.image_path.is_file()
        assert any(np.allclose(record.center, c) for c in record.image_centers)


def test_crop_moves_keypoints_with_the_image_and_flip_permutes_them(fixtures_dir):
    records, _ = load_coco_keypoint_records(fixtures_dir / "coco" / "test_coco.json", fixtures_dir / "coco",
                                            "coco", min_keypoints=5)
    record = records[0]
    plain = TopDownTransform(crop_size=224, map_size=56)(record)
    kp = record.keypoints
    labelled = kp[:, 2] > 0
    expected = apply_affine(plain["crop_affine"].double().numpy(), kp[:, :2])
    np.testing.assert_allclose(plain["keypoints_2d"][labelled, :2].numpy(), expected[labelled], atol=1e-3)
    assert plain["image"].shape == (3, 224, 224) and plain["centermaps"].shape == (2, 56, 56)

    flip_only = AugmentationConfig(rotation_deg=0, scale=0, translation=0, flip_prob=1.0, brightness_contrast=0,
                                   noise_prob=0)
    flipped = TopDownTransform(crop_size=224, map_size=56, augment=flip_only)(record, rng=np.random.default_rng(0))
    # left shoulder (5) of the flipped crop is the mirrored right shoulder (6) of the plain crop
    if plain["keypoints_2d"][6, 2] > 0:
        np.testing.assert_allclose(flipped["keypoints_2d"][5, 0].item(), 223 - plain["keypoints_2d"][6, 0].item(),
                                   atol=1e-3)
    # cv2's fixed-point bilinear sampling rounds a few pixels differently at mirrored positions
    diff = (flipped["image"] - plain["image"].flip(-1)).abs()
    assert diff.mean() < 1e-3 and (diff > 0.1).sum() == 0


def test_degenerate_box_is_refused_with_the_sample_named(fixtures_dir):
    records, _ = load_coco_keypoint_records(fixtures_dir / "coco" / "test_coco.json", fixtures_dir / "coco", "coco")
    record = records[0]
    record.box = np.array([10.0, 10.0, 0.0, np.nan])
    with pytest.raises(BadSampleError, match=record.sample_id):
        TopDownTransform()(record)
