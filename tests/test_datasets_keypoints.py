"""COCO-format keypoint datasets: CrowdPose-14 -> COCO-17, detection-box mode, OCHuman's raw file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.data.datamodules import CrowdPoseDataModule, KeypointDataModule, OCHumanDataModule
from ochmr_lit.data.preparation import prepare
from ochmr_lit.data.readers.crowdpose import boxes_kept_per_threshold, load_crowdpose_records
from ochmr_lit.data.readers.ochuman_raw import ochuman_to_coco, read_ochuman_raw
from ochmr_lit.prepare import main as prepare_main


def test_crowdpose_fixture_people_and_coco17_mapping(fixtures_dir):
    ann_file = fixtures_dir / "crowdpose" / "test_crowdpose.json"
    records, skipped = load_crowdpose_records(ann_file, fixtures_dir / "crowdpose")
    raw = json.loads(ann_file.read_text())
    assert len(records) == len(raw["annotations"]) == 5 and not skipped
    anns = {a["id"]: np.asarray(a["keypoints"], float).reshape(14, 3) for a in raw["annotations"]}
    coco = get_convention("coco17")
    for record in records:
        crowd = anns[record.ann_id]
        np.testing.assert_array_equal(record.keypoints[5:], crowd[:12])  # the 12 limb joints, same names
        assert (record.keypoints[:5] == 0).all()  # nose, eyes, ears: CrowdPose has none -> masked
    first = next(r for r in records if r.ann_id == 123803)
    assert first.keypoints[coco.index("right_shoulder")].tolist() == [208, 108, 2]
    assert first.keypoints[coco.index("right_wrist")].tolist() == [348, 98, 2]
    np.testing.assert_allclose(first.center, [(208 + 173) / 2, (108 + 299) / 2])  # labelled torso mean
    same_image = [r for r in records if r.image_id == first.image_id]
    np.testing.assert_allclose(first.image_centers, [r.center for r in same_image])


def test_crowdpose_full_val_file_counts(crowdpose_val_file):
    ann_file = crowdpose_val_file
    raw = json.loads(ann_file.read_text())
    expected = sum(1 for a in raw["annotations"] if not a["iscrowd"] and a["bbox"][2] > 1 and a["bbox"][3] > 1)
    records, skipped = load_crowdpose_records(ann_file, ann_file.parent)
    assert len(raw["annotations"]) == 8527
    assert len(records) == expected and len(records) + sum(skipped.values()) == 8527


def test_crowdpose_datamodule_sample(fixtures_dir):
    root = fixtures_dir / "crowdpose"
    module = CrowdPoseDataModule({"test": str(root / "test_crowdpose.json")}, {"test": str(root)}, num_workers=0,
                                 crop_size=64, map_size=16)
    sample = module.dataset("test")[0]
    assert sample["dataset"] == "crowdpose" and sample["keypoints_2d"].shape == (17, 3)
    assert module.keypoint_ground_truth("test") == root / "test_crowdpose.json"


def test_detection_mode_keeps_boxes_at_or_above_threshold(fixtures_dir):
    root = fixtures_dir / "coco"
    det_file = root / "test_coco_det_AP_H_56.json"
    detections = json.loads(det_file.read_text())
    module = KeypointDataModule("coco", {"val": str(root / "test_coco.json")}, {"val": str(root)},
                                det_files={"val": str(det_file)}, det_score_threshold=0.5, num_workers=0,
                                crop_size=64, map_size=16)
    records, skipped = module.load_records("val")
    expected = sorted(d["score"] for d in detections if d["score"] >= 0.5)
    assert sorted(r.box_score for r in records) == pytest.approx(expected)
    assert skipped == {"below_score_threshold": len(detections) - len(expected)}
    assert all(r.ann_id == -1 and r.keypoints is None for r in records)
    gt, _ = KeypointDataModule("coco", {"val": str(root / "test_coco.json")}, {"val": str(root)}).load_records("val")
    gt_centres = {r.image_id: r.image_centers for r in gt}
    for record in records:  # the global centermap still comes from the annotated people
        np.testing.assert_array_equal(record.image_centers, gt_centres[record.image_id])
    thresholds = [0.0, 0.3, 0.5, 0.9, 0.99]
    assert module.boxes_kept("val", thresholds) == {t: sum(d["score"] >= t for d in detections) for t in thresholds}
    assert module.boxes_kept("val", [0.0])[0.0] == 118
    sample = module.dataset("val")[3]
    assert sample["ann_id"] == -1 and float(sample["box_score"]) == pytest.approx(records[3].box_score, rel=1e-6)
    assert sample["visibility"].sum() == 0


def test_crowdpose_detections(fixtures_dir):
    root = fixtures_dir / "crowdpose"
    det_file = root / "test_crowdpose_det_AP_40.json"
    scores = [d["score"] for d in json.loads(det_file.read_text())]
    counts = boxes_kept_per_threshold(det_file, root / "test_crowdpose.json", [0.0, 0.4])
    assert counts == {0.0: len(scores), 0.4: sum(s >= 0.4 for s in scores)}


# -- OCHuman raw ---------------------------------------------------------------------------------------
RAW_NAMES = ["right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
             "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "head", "neck",
             "right_ear", "left_ear", "nose", "right_eye", "left_eye"]


def _raw_person(rng, codes, max_iou, segms=True, keypoints=True):
    kp = np.zeros((19, 3))
    kp[:, 0], kp[:, 1] = rng.uniform(10, 90, 19), rng.uniform(10, 70, 19)
    kp[:, 2] = codes
    square = [[10.0, 10.0, 60.0, 10.0, 60.0, 70.0, 10.0, 70.0]]
    hole = [[20.0, 20.0, 30.0, 20.0, 30.0, 30.0, 20.0, 30.0]]
    return {"bbox": [10.0, 10.0, 60.0, 70.0], "keypoints": kp.reshape(-1).tolist() if keypoints else None,
            "segms": {"outer": square, "inner": hole, "height": 80, "width": 100} if segms else None,
            "max_iou": max_iou}


@pytest.fixture()
def ochuman_raw(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    codes = np.arange(19) % 4  # every visibility code
    images = [
        {"image_id": 10, "file_name": "a.jpg", "height": 80, "width": 100,
         "annotations": [_raw_person(rng, codes, 0.6), _raw_person(rng, codes, 0.3, segms=False)]},
        {"image_id": 11, "file_name": "b.jpg", "height": 80, "width": 100,
         "annotations": [_raw_person(rng, codes, 0.2, keypoints=False)]},
        {"image_id": 12, "file_name": "c.jpg", "height": 80, "width": 100,
         "annotations": [_raw_person(rng, codes, 0.8), _raw_person(rng, 3 - codes, 0.1)]},
    ]
    path = tmp_path / "ochuman.json"
    path.write_text(json.dumps({"images": images, "keypoint_names": RAW_NAMES,
                                "keypoint_visible": {"missing": 0, "vis": 1, "self_occluded": 2,
                                                     "others_occluded": 3}}))
    return path


def test_ochuman_raw_conversion_as_ochumanapi(ochuman_raw):
    raw = read_ochuman_raw(ochuman_raw)
    coco, skipped = ochuman_to_coco(raw, "all")
    assert skipped == {"no_keypoints_or_mask": 2}
    assert [i["id"] for i in coco["images"]] == [1, 2] and [i["file_name"] for i in coco["images"]] == ["a.jpg",
                                                                                                         "c.jpg"]
    assert [a["id"] for a in coco["annotations"]] == [1, 2, 3] and [a["image_id"] for a in coco["annotations"]] == [
        1, 2, 2]
    first = coco["annotations"][0]
    assert first["bbox"] == [10.0, 10.0, 50.0, 60.0] and first["area"] == 3000.0
    source = np.asarray(raw["images"][0]["annotations"][0]["keypoints"]).reshape(19, 3)
    kp = np.asarray(first["keypoints"]).reshape(17, 3)
    for j, name in enumerate(get_convention("coco17").joint_names):
        raw_row = source[RAW_NAMES.index(name)]
        np.testing.assert_array_equal(kp[j, :2], raw_row[:2])
        assert kp[j, 2] == {0: 0, 1: 2, 2: 2, 3: 1}[int(raw_row[2])]  # OCHumanApi's visibility mapping
    assert first["num_keypoints"] == int((source[[RAW_NAMES.index(n) for n in get_convention("coco17").joint_names],
                                                 2] > 0).sum())
    mask = mask_utils.decode(first["segmentation"])
    assert mask.shape == (80, 100) and int(mask.sum()) == 50 * 60 - 10 * 10  # outer square minus the hole
    val, _ = ochuman_to_coco(raw, "val", val_images=1)
    test, _ = ochuman_to_coco(raw, "test", val_images=1)
    assert [i["file_name"] for i in val["images"]] == ["a.jpg"] and [i["file_name"] for i in test["images"]] == [
        "c.jpg"]
    hard, hard_skipped = ochuman_to_coco(raw, "all", max_iou_range=(0.75, 1.0))
    assert len(hard["annotations"]) == 1 and hard_skipped["max_iou_out_of_range"] == 2


def test_ochuman_raw_rejects_other_keypoint_orders(ochuman_raw, tmp_path):
    data = json.loads(ochuman_raw.read_text())
    data["keypoint_names"] = RAW_NAMES[::-1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="bad.json: keypoint_names"):
        read_ochuman_raw(bad)


def test_ochuman_datamodule_from_raw_and_prepare_idempotent(ochuman_raw, tmp_path, capsys):
    module = OCHumanDataModule({"val": str(tmp_path), "test": str(tmp_path)}, raw_file=str(ochuman_raw),
                               index_dir=str(tmp_path / "prepared"), num_workers=0)
    records, _ = module.load_records("val")  # 2500 val images: all of this tiny file
    assert len(records) == 3 and {r.dataset for r in records} == {"ochuman"}
    assert records[0].extra["ochuman_visibility"].tolist() == [
        int(np.arange(19)[RAW_NAMES.index(n)] % 4) for n in get_convention("coco17").joint_names]
    gt = json.loads(module.keypoint_ground_truth("val").read_text())
    assert len(gt["annotations"]) == 3
    out = tmp_path / "prep"
    first = prepare("ochuman", ochuman_raw, out, show_progress=False, val_images=1)
    assert [o.status for o in first.outputs] == ["written", "written"]
    assert [o.counts["kept"] for o in first.outputs] == [1, 2]
    assert first.outputs[0].counts["no_keypoints_or_mask"] == 2
    stamp = first.outputs[0].path.stat().st_mtime_ns
    assert prepare_main(["ochuman", "--raw", str(ochuman_raw), "--out", str(out), "--no-progress"]) == 0
    assert "up_to_date" in capsys.readouterr().out and first.outputs[0].path.stat().st_mtime_ns == stamp


def test_ochuman_fixture_coco_format(fixtures_dir):
    root = fixtures_dir / "ochuman"
    module = OCHumanDataModule({"test": str(root)}, ann_files={"test": str(root / "test_ochuman.json")},
                               num_workers=0)
    records, skipped = module.load_records("test")
    raw = json.loads((root / "test_ochuman.json").read_text())
    assert len(records) + sum(skipped.values()) == len(raw["annotations"]) and len(records) > 0
