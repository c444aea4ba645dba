"""The distractor bucket: the rule on hand-made masks, the flag of a generated split, and its evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torch.utils.data import default_collate

from ochmr_lit.data.dataset import TopDownDataset
from ochmr_lit.data.distractor import crop_windows, distractor_flags, image_distractors, pixels_in_windows
from ochmr_lit.data.readers.synthcrowd import load_synthcrowd_records
from ochmr_lit.data.transforms import TopDownTransform
from ochmr_lit.eval.buckets import OCCLUSION_BUCKETS, RESULT_BUCKETS
from ochmr_lit.eval.mesh_evaluation import MeshEvaluation
from ochmr_lit.geometry import axis_angle_to_rotmat

SIZE = 40  # side of the hand-made images, px


def _rect(rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """(SIZE, SIZE) uint8 mask of rows ``rows[0] .. rows[1] - 1`` and columns ``cols[0] .. cols[1] - 1``."""
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = 1
    return mask


def _ann(ann_id: int, mask: np.ndarray, **extra) -> dict:
    """A COCO annotation of a visible mask: string RLE (as SynthCrowd writes it) and its tight box."""
    rle = mask_utils.encode(np.asfortranarray(mask))
    box = mask_utils.toBbox(rle).tolist()
    return {"id": ann_id, "iscrowd": 0, "bbox": box, "segmentation": {"size": rle["size"],
                                                                      "counts": rle["counts"].decode("ascii")},
            **extra}


# The target: 12 rows x 4 columns (48 px) with box [18, 10, 4, 12]; its crop square has side 1.2 x 12 = 14.4
# around (20, 16): x in [12.8, 27.2], y in [8.8, 23.2], i.e. columns 13..26 and rows 9..22 (pixel centres).
TARGET = _rect((10, 22), (18, 22))
TARGET_WINDOW = [13, 9, 27, 23]


def test_crop_window_is_the_pipeline_square_clipped_to_the_image():
    boxes = np.array([[18.0, 10.0, 4.0, 12.0], [0.0, 0.0, 10.0, 10.0], [30.0, 35.0, 20.0, 10.0]])
    windows = crop_windows(boxes, height=SIZE, width=SIZE)
    # box 2: side 12 around (5, 5): [-1, 11] -> columns/rows 0..10; box 3: side 24 around (40, 40) -> 28..39
    assert windows.tolist() == [TARGET_WINDOW, [0, 0, 11, 11], [28, 28, 40, 40]]


def test_pixels_in_windows_equal_a_direct_count():
    rng = np.random.default_rng(3)
    masks = (rng.uniform(size=(SIZE, 30, 4)) < 0.3).astype(np.uint8)
    windows = np.array([[0, 0, 30, 40], [5, 7, 6, 8], [3, 10, 3, 20], [12, 0, 29, 39]])
    counts = pixels_in_windows(masks, windows)
    expected = [[int(masks[y0:y1, x0:x1, k].sum()) for k in range(4)] for x0, y0, x1, y1 in windows]
    assert counts.tolist() == expected
    assert counts[0].tolist() == masks.sum(axis=(0, 1)).tolist() and counts[2].tolist() == [0, 0, 0, 0]


def test_target_mostly_covered_by_a_bigger_person_is_a_distractor():
    big = _rect((0, 40), (22, 36))  # right beside (over) the target: columns 22..26 of its window, 14 rows
    anns = [_ann(1, TARGET), _ann(2, big)]
    boxes = np.array([a["bbox"] for a in anns])
    counts = pixels_in_windows(np.stack([TARGET, big], axis=-1), crop_windows(boxes, SIZE, SIZE))
    assert counts.tolist() == [[48, 5 * 14], [48, 560]]  # big's window: columns 5..39, all rows
    assert distractor_flags(counts).tolist() == [True, False]
    assert image_distractors(anns, SIZE, SIZE) == {1: 1.0, 2: 0.0}


def test_a_lone_person_is_not_a_distractor():
    assert image_distractors([_ann(7, TARGET)], SIZE, SIZE) == {7: 0.0}
    assert distractor_flags(np.array([[0]])).tolist() == [False]  # not even with no visible pixel


def test_two_smaller_others_are_not_a_distractor_even_when_larger_together():
    left, right = _rect((0, 40), (13, 16)), _rect((9, 23), (23, 26))  # 3 columns x 14 rows each in the window
    anns = [_ann(1, TARGET), _ann(2, left), _ann(3, right)]
    boxes = np.array([anns[0]["bbox"]])
    counts = pixels_in_windows(np.stack([TARGET, left, right], axis=-1), crop_windows(boxes, SIZE, SIZE))
    assert counts.tolist() == [[48, 42, 42]]  # 42 + 42 = 84 > 48, but each alone is smaller
    assert image_distractors(anns, SIZE, SIZE)[1] == 0.0
    # a tie is not a distractor either
    assert distractor_flags(np.array([[48, 48]]), targets=[0]).tolist() == [False]


def test_unknown_without_masks_and_crowd_regions_left_out():
    big = _rect((0, 40), (22, 36))
    crowd = _ann(9, _rect((0, 40), (0, 40)), iscrowd=1)
    assert image_distractors([_ann(1, TARGET), _ann(2, big), crowd], SIZE, SIZE) == {1: 1.0, 2: 0.0}
    no_mask = {"id": 3, "iscrowd": 0, "bbox": [0.0, 0.0, 5.0, 5.0]}
    flags = image_distractors([_ann(1, TARGET), _ann(2, big), no_mask], SIZE, SIZE)
    assert set(flags) == {1, 2, 3} and all(math.isnan(v) for v in flags.values())
    # polygon segmentations give the same flags as RLEs
    polygon = {"id": 2, "iscrowd": 0, "bbox": [22.0, 0.0, 14.0, 40.0], "segmentation": [[22, 0, 36, 0, 36, 40, 22, 40]]}
    assert image_distractors([_ann(1, TARGET), polygon], SIZE, SIZE) == {1: 1.0, 2: 0.0}


# -- a generated split -------------------------------------------------------------------------------------


def _direct_flags(ann_file: Path) -> dict[int, float]:
    """The rule written out person by person, with an explicit pixel-centre test (independent of the module)."""
    import json

    doc = json.loads(ann_file.read_text())
    out = {}
    for image in doc["images"]:
        h, w = image["height"], image["width"]
        anns = [a for a in doc["annotations"] if a["image_id"] == image["id"]]
        masks = [mask_utils.decode({"size": a["segmentation"]["size"],
                                    "counts": a["segmentation"]["counts"].encode("ascii")}) for a in anns]
        cols, rows = np.arange(w) + 0.5, np.arange(h) + 0.5
        for a, own in zip(anns, masks, strict=True):
            x, y, bw, bh = a["bbox"]
            side = 1.2 * max(bw, bh)
            cx, cy = x + bw / 2, y + bh / 2
            inside = ((np.abs(rows - cy) <= side / 2)[:, None] & (np.abs(cols - cx) <= side / 2)[None, :])
            others = [int((m & inside).sum()) for b, m in zip(anns, masks, strict=True) if b["id"] != a["id"]]
            out[a["id"]] = float(max(others, default=0) > int((own & inside).sum()))
    return out


@pytest.fixture(scope="module")
def train_records(tiny_synthcrowd: Path) -> list:
    records, skipped = load_synthcrowd_records(tiny_synthcrowd / "train")
    assert not skipped
    return records


def test_generated_split_has_distractor_people(train_records, tiny_synthcrowd):
    flags = {r.ann_id: r.distractor for r in train_records}
    assert flags == _direct_flags(tiny_synthcrowd / "train" / "annotations.json")
    flagged = sum(v == 1.0 for v in flags.values())
    assert 0 < flagged < len(flags)  # 8 of 14 at the time of writing
    # the flag overlaps the occlusion buckets: an unoccluded person can be a distractor case
    assert any(r.distractor == 1.0 and r.occlusion_ratio < OCCLUSION_BUCKETS["none"][1] for r in train_records)


def test_samples_carry_the_flag_and_the_evaluation_reports_the_bucket(train_records):
    from ochmr_lit.body import BodyModel

    dataset = TopDownDataset(train_records, TopDownTransform(crop_size=64, map_size=16))
    batch = default_collate([dataset[i] for i in range(len(dataset))])
    flags = np.array([r.distractor for r in train_records])
    assert batch["distractor"].dtype == torch.float32 and batch["distractor"].tolist() == flags.tolist()

    body = BodyModel(None)
    n = len(train_records)
    gen = torch.Generator().manual_seed(0)
    pose = batch["smpl_pose"] + torch.randn(n, 72, generator=gen) * 0.2
    with torch.no_grad():
        pred = body(axis_angle_to_rotmat(pose.view(n, 24, 3)), batch["smpl_betas"])
    evaluation = MeshEvaluation("synthcrowd")
    evaluation.update(batch, {"vertices": pred.vertices}, body)
    metrics, rows = evaluation.compute(), evaluation.per_sample()

    assert rows["distractor"].tolist() == flags[rows["sample_index"]].tolist()
    assert metrics["count_distractor"] == int(flags.sum()) > 0
    chosen = rows["distractor"] == 1.0
    for name in ("mpjpe", "pa_mpjpe", "pve"):
        assert metrics[f"{name}_distractor"] == pytest.approx(float(rows[f"{name}_mm"][chosen].mean()), rel=1e-9)
        assert metrics[f"{name}_distractor"] > 1.0  # millimetres, and the predictions are off
    # the occlusion buckets still split everyone; the distractor bucket comes on top
    assert sum(metrics[f"count_{b}"] for b in OCCLUSION_BUCKETS) == n
    assert list(RESULT_BUCKETS) == ["none", "partial", "heavy", "distractor"]
