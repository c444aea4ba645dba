"""The simulated detector of the SynthCrowd detector sweep: its faults, its format, its determinism."""

import json

import numpy as np
import pytest

from ochmr_lit.reproduce.simulated_detector import (
    DetectorModel,
    box_iou,
    mean_score_by_quality,
    simulate_detections,
    write_simulated_detections,
)


def _crowd(num_images: int = 300, seed: int = 0) -> dict:
    """COCO-format annotations: 4 people per 256x256 image, half of them heavily occluded."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "file_name": f"images/{image_id:06d}.jpg", "width": 256, "height": 256})
        for k in range(4):
            x, y = rng.uniform(10, 180), rng.uniform(10, 100)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                         "bbox": [x, y, 40.0, 110.0], "occlusion_ratio": 0.6 if k % 2 else 0.0})
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}


def test_box_iou_reference_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]], float)
    np.testing.assert_allclose(box_iou(a, b), [1.0, 50 / 150, 0.0])


def test_faults_follow_the_model():
    annotations = _crowd()
    model = DetectorModel()
    detections = simulate_detections(annotations, seed=0, model=model)
    true = [d for d in detections if d["simulated"] == "true"]
    occlusion = {a["id"]: a["occlusion_ratio"] for a in annotations["annotations"]}
    # misses: 3 % of the unoccluded, 3 % + 0.5 x 0.6 = 33 % of the occluded (600 people each)
    found_clear = sum(occlusion[d["ann_id"]] == 0.0 for d in true)
    found_hidden = sum(occlusion[d["ann_id"]] == 0.6 for d in true)
    assert found_clear / 600 == pytest.approx(0.97, abs=0.03)
    assert found_hidden / 600 == pytest.approx(0.67, abs=0.05)
    # false positives: Poisson with mean 1 per image
    assert (len(detections) - len(true)) / 300 == pytest.approx(1.0, abs=0.15)
    # scores fall with box quality, and occluded people's boxes are worse and score lower
    low, mid, high = mean_score_by_quality(detections)
    assert low < mid < high
    scores = {0.0: [], 0.6: []}
    for d in true:
        scores[occlusion[d["ann_id"]]].append(d["score"])
    assert np.mean(scores[0.6]) < np.mean(scores[0.0]) - 0.1
    false_scores = [d["score"] for d in detections if d["simulated"] == "false_positive"]
    assert np.mean(false_scores) < np.mean(scores[0.0]) - 0.3
    # every box lies inside its image and every score in (0, 1)
    for d in detections:
        x, y, w, h = d["bbox"]
        assert 0 <= x and 0 <= y and w >= 2 and h >= 2 and x + w <= 255 and y + h <= 255
        assert 0 < d["score"] < 1


def test_seeded_and_sorted_by_score_within_each_image():
    annotations = _crowd(20)
    first, again = simulate_detections(annotations, seed=3), simulate_detections(annotations, seed=3)
    assert first == again
    assert first != simulate_detections(annotations, seed=4)
    for image_id in {d["image_id"] for d in first}:
        scores = [d["score"] for d in first if d["image_id"] == image_id]
        assert scores == sorted(scores, reverse=True)


def test_written_file_is_read_by_the_detection_box_loader(tmp_path):
    from ochmr_lit.inference.boxes import load_json_boxes

    annotations = _crowd(5)
    ann_file = tmp_path / "annotations.json"
    ann_file.write_text(json.dumps(annotations))
    images = []
    for image in annotations["images"]:
        path = tmp_path / image["file_name"]
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"")  # only the names are matched here
        images.append(path)
    summary = write_simulated_detections(ann_file, tmp_path / "dets.json", seed=0)
    detections = json.loads((tmp_path / "dets.json").read_text())
    assert summary["detections"] == len(detections) == summary["true_detections"] + summary["false_positives"]
    assert summary["missed"] == 20 - summary["true_detections"]
    items, report = load_json_boxes(tmp_path / "dets.json", images, score_threshold=0.5, image_info=ann_file)
    kept = [d for d in detections if d["score"] >= 0.5]
    assert sum(len(item) for item in items) == len(kept)
    assert report.skipped_counts().get("below_score_threshold", 0) == len(detections) - len(kept)
    by_image = {item.image_id: item for item in items}
    for d in kept[:5]:
        assert any(np.allclose(box, d["bbox"]) for box in by_image[d["image_id"]].boxes)


def test_missing_annotation_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json: no such annotation file"):
        write_simulated_detections(tmp_path / "nothing.json", tmp_path / "dets.json")
