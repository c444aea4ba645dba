"""Predict's box sources: ground-truth annotations, detection results and torchvision's person detector."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from ochmr_lit.data.readers.coco_format import load_coco_keypoint_records
from ochmr_lit.inference.boxes import PersonDetector, load_json_boxes
from ochmr_lit.inference.inputs import list_images


def test_gt_boxes_of_ochuman_match_the_annotations_and_the_training_loader(fixtures_dir):
    folder = fixtures_dir / "ochuman"
    images = list_images(folder)
    assert [p.name for p in images] == ["000817.jpg", "003799.jpg", "003896.jpg"]
    items, report = load_json_boxes(folder / "test_ochuman.json", images)
    assert (report.images, report.people, report.skipped_counts()) == (3, 5, {})
    records, _ = load_coco_keypoint_records(folder / "test_ochuman.json", folder, "ochuman")
    by_ann = {r.ann_id: r for r in records}
    assert sum(len(it) for it in items) == len(records) == 5
    for item in items:
        assert item.source == "gt" and np.all(item.scores == 1.0)
        for k, ann_id in enumerate(item.ann_ids):
            ref = by_ann[int(ann_id)]
            assert ref.image_path.name == item.image_path.name
            np.testing.assert_allclose(item.boxes[k], ref.box)
            np.testing.assert_allclose(item.centers[k], ref.center)  # torso keypoints, as in training
        record = item.records()[0] if len(item) else None
        if record is not None:
            np.testing.assert_allclose(record.image_centers, item.centers)


def test_gt_boxes_of_crowdpose_take_body_centres_from_its_14_keypoints(fixtures_dir):
    folder = fixtures_dir / "crowdpose"
    data = json.loads((folder / "test_crowdpose.json").read_text())
    items, report = load_json_boxes(folder / "test_crowdpose.json", list_images(folder))
    anns = {a["id"]: a for a in data["annotations"]}
    checked = 0
    for item in items:
        for k, ann_id in enumerate(item.ann_ids):
            kp = np.asarray(anns[int(ann_id)]["keypoints"], np.float64).reshape(14, 3)
            torso = kp[[0, 1, 6, 7]]  # CrowdPose: l/r shoulder, l/r hip
            labelled = torso[:, 2] > 0
            x, y, w, h = anns[int(ann_id)]["bbox"]
            expected = torso[labelled, :2].mean(0) if labelled.any() else np.array([x + w / 2, y + h / 2])
            np.testing.assert_allclose(item.centers[k], expected)
            checked += 1
    crowd = sum(int(a.get("iscrowd", 0)) for a in data["annotations"])
    assert checked == report.people == len(data["annotations"]) - crowd - report.skipped["invalid_box"]


def test_detection_results_are_thresholded_and_matched_by_image_id(fixtures_dir, tmp_path):
    folder = fixtures_dir / "coco"
    dets = json.loads((folder / "test_coco_det_AP_H_56.json").read_text())
    images = list_images(folder)
    ids = {int(p.stem) for p in images}
    for threshold in (0.0, 0.5, 0.9):
        items, report = load_json_boxes(folder / "test_coco_det_AP_H_56.json", images, score_threshold=threshold)
        kept = [d for d in dets if d["image_id"] in ids and d["score"] >= threshold and d["category_id"] == 1]
        assert report.people == sum(len(it) for it in items) == len(kept)
        below = sum(d["image_id"] in ids and d["score"] < threshold for d in dets)
        assert report.skipped["below_score_threshold"] == below
        assert report.skipped["image_not_in_input"] == sum(d["image_id"] not in ids for d in dets)
        for item in items:
            mine = sorted((d for d in kept if d["image_id"] == item.image_id), key=lambda d: -d["score"])
            order = np.argsort(-item.scores, kind="stable")
            np.testing.assert_allclose(item.boxes[order], [d["bbox"] for d in mine])
            np.testing.assert_allclose(item.centers, item.boxes[:, :2] + item.boxes[:, 2:] / 2)
            assert np.all(item.ann_ids == -1) and item.source == "detections"

    # Files not named by id: the ids come from image_info (any COCO JSON of the images)
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    info = json.loads((folder / "test_coco.json").read_text())
    for im in info["images"]:
        shutil.copy(folder / im["file_name"], renamed / f"img_{im['id']}.jpg")
        im["file_name"] = f"img_{im['id']}.jpg"
    (tmp_path / "info.json").write_text(json.dumps({"images": info["images"]}))
    with pytest.raises(ValueError, match="image_info"):
        load_json_boxes(folder / "test_coco_det_AP_H_56.json", list_images(renamed), 0.5)
    items_b, _ = load_json_boxes(folder / "test_coco_det_AP_H_56.json", list_images(renamed), 0.5,
                                 image_info=tmp_path / "info.json")
    items_a, _ = load_json_boxes(folder / "test_coco_det_AP_H_56.json", images, 0.5)
    by_id = {it.image_id: it for it in items_a}
    for item in items_b:
        np.testing.assert_array_equal(item.boxes, by_id[item.image_id].boxes)


def test_box_sources_fail_with_clear_messages(fixtures_dir, tmp_path):
    images = list_images(fixtures_dir / "ochuman")
    with pytest.raises(FileNotFoundError, match="boxes=.*no such file"):
        load_json_boxes(tmp_path / "missing.json", images)
    (tmp_path / "odd.json").write_text(json.dumps({"foo": 1}))
    with pytest.raises(ValueError, match="neither COCO annotations"):
        load_json_boxes(tmp_path / "odd.json", images)
    with pytest.raises(ValueError, match="none of its 4 images"):
        load_json_boxes(fixtures_dir / "coco" / "test_coco.json", images)
    with pytest.raises(ValueError, match="detector_weights=<file>"):
        PersonDetector(None)
    with pytest.raises(FileNotFoundError, match="detector_weights=.*no such file"):
        PersonDetector(tmp_path / "frcnn.pth")


@pytest.mark.slow
def test_person_detector_equals_torchvision_on_a_local_weight_file(fixtures_dir, tmp_path):
    """A generated weight file in torchvision's format: our boxes equal torchvision's person boxes (xyxy -> xywh)."""
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    torch.manual_seed(0)
    reference = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91, min_size=320,
                                        max_size=480, box_score_thresh=0.3)
    with torch.no_grad():  # untrained weights that favour "person" over the other classes
        reference.roi_heads.box_predictor.cls_score.bias[1] += 6.0
    path = tmp_path / "fasterrcnn_resnet50_fpn_coco.pth"
    torch.save(reference.state_dict(), path)
    detector = PersonDetector(path, score_threshold=0.3, min_size=320, max_size=480)
    image = cv2.cvtColor(cv2.imread(str(fixtures_dir / "ochuman" / "003799.jpg")), cv2.COLOR_BGR2RGB)
    boxes, scores = detector(image)
    with torch.no_grad():
        out = reference.eval()([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
    person = out["labels"] == 1
    assert len(boxes) == int(person.sum()) > 0
    xyxy = out["boxes"][person].double().numpy()
    np.testing.assert_allclose(boxes, np.c_[xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], atol=1e-3)
    np.testing.assert_allclose(scores, out["scores"][person].double().numpy(), atol=1e-6)
    assert np.all(scores >= 0.3)
    torch.save({"backbone.body.conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="not a fasterrcnn_resnet50_fpn"):
        PersonDetector(tmp_path / "wrong.pth")
