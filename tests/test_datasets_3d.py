"""3DOH annots.json and CMU Panoptic per-frame JSON + calibration, written here in the official layouts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.data.datamodules import PanopticDataModule, ThreeDOHDataModule
from ochmr_lit.data.preparation import prepare
from ochmr_lit.data.readers.panoptic import read_calibration
from ochmr_lit.metrics.per_sample import DATASET_CODES


# -- 3DOH ------------------------------------------------------------------------------------------------
def _oh_entry(rng, name: str, bbox) -> dict:
    """One annots.json entry for a 64x48 image: 2D joints inside the image, as in the release."""
    extri = np.eye(4)
    extri[:3, :3] = Rotation.from_rotvec(rng.normal(0, 0.5, 3)).as_matrix()
    extri[:3, 3] = [0.1, 0.2, 3.0]
    return {"extri": extri.tolist(), "intri": [[500, 0, 32], [0, 500, 24], [0, 0, 1]],
            "img_path": f"images\\{name}.jpg", "bbox": bbox, "betas": [rng.normal(size=10).tolist()],
            "pose": [rng.normal(0, 0.3, 72).tolist()], "trans": [[0.0, 0.1, 0.2]], "scale": [1.0],
            "smpl_joints_2d": rng.uniform(0, [60, 44], (24, 2)).tolist(),
            "smpl_joints_3d": rng.normal(size=(24, 3)).tolist(),
            "lsp_joints_2d": rng.uniform(0, [60, 44], (14, 2)).tolist(),
            "lsp_joints_3d": rng.normal(size=(14, 3)).tolist(),
            "mask_path": f"masks\\{name}.png"}


def test_3doh_annots(tmp_path):
    rng = np.random.default_rng(0)
    split = tmp_path / "testset"
    (split / "images").mkdir(parents=True)
    annots = {"00000": _oh_entry(rng, "00000", [[5.0, 4.0], [45.0, 44.0]]),
              "00001": _oh_entry(rng, "00001", [[5.0, 4.0], [5.5, 44.0]])}  # no width: skipped
    (split / "annots.json").write_text(json.dumps(annots))
    cv2.imwrite(str(split / "images" / "00000.jpg"), np.zeros((48, 64, 3), np.uint8))
    module = ThreeDOHDataModule({"test": str(split / "annots.json")}, num_workers=0, crop_size=64, map_size=16)
    records, skipped = module.load_records("test")
    assert len(records) == 1 and skipped == {"invalid_box": 1}
    record, entry = records[0], annots["00000"]
    np.testing.assert_allclose(record.box, [5, 4, 40, 40])
    extri = np.asarray(entry["extri"])
    expected_root = extri[:3, :3] @ Rotation.from_rotvec(entry["pose"][0][:3]).as_matrix()
    np.testing.assert_allclose(Rotation.from_rotvec(record.smpl_pose[:3]).as_matrix(), expected_root, atol=1e-9)
    np.testing.assert_array_equal(record.smpl_pose[3:], entry["pose"][0][3:])
    coco, lsp = get_convention("coco17"), get_convention("lsp14")
    for name in ("left_ankle", "right_wrist", "left_shoulder"):
        np.testing.assert_array_equal(record.keypoints[coco.index(name), :2], entry["lsp_joints_2d"][lsp.index(name)])
        np.testing.assert_array_equal(record.keypoints_3d[coco.index(name), :3],
                                      entry["lsp_joints_3d"][lsp.index(name)])
    assert (record.keypoints[:5, 2] == 0).all() and (record.keypoints[5:, 2] == 2).all()
    np.testing.assert_array_equal(record.extra["lsp_joints_3d"], entry["lsp_joints_3d"])
    sample = module.dataset("test")[0]
    assert sample["has_smpl"] and sample["dataset"] == "3doh" and "3doh" in DATASET_CODES


def test_3doh_missing_key_is_named(tmp_path):
    entry = _oh_entry(np.random.default_rng(0), "0", [[0, 0], [10, 10]])
    del entry["pose"]
    (tmp_path / "annots.json").write_text(json.dumps({"0": entry}))
    with pytest.raises(KeyError, match="annots.json entry '0': key 'pose' missing"):
        ThreeDOHDataModule({"test": str(tmp_path / "annots.json")}).load_records("test")


# -- CMU Panoptic ----------------------------------------------------------------------------------------
SEQ = "160422_haggling1"


def _camera(name: str, rng, dist) -> dict:
    rot = Rotation.from_rotvec(rng.normal(0, 0.1, 3)).as_matrix()
    return {"name": name, "type": "hd", "resolution": [320, 240], "panel": 0, "node": int(name[-2:]),
            "K": [[300.0, 0, 160.0], [0, 300.0, 120.0], [0, 0, 1]], "distCoef": dist, "R": rot.tolist(),
            "t": [[5.0], [-10.0], [400.0]]}


@pytest.fixture()
def panoptic_root(tmp_path) -> Path:
    rng = np.random.default_rng(2)
    seq = tmp_path / "panoptic" / SEQ
    (seq / "hdPose3d_stage1_coco19").mkdir(parents=True)
    cameras = [_camera("00_16", rng, [0, 0, 0, 0, 0]), _camera("00_30", rng, [-0.2, 0.05, 0.001, 0.0, 0.0]),
               {**_camera("01_01", rng, [0] * 5), "type": "vga"}]
    (seq / f"calibration_{SEQ}.json").write_text(json.dumps({"calibDataSource": SEQ, "cameras": cameras}))
    for frame in (100, 101, 102):
        bodies = []
        for body_id, offset in ((0, [0, 0, 0]), (1, [40, 0, 30]), (2, [0, 0, -900])):  # body 2: behind the camera
            joints = np.concatenate([rng.normal(0, 30, (19, 3)) + offset, rng.uniform(0, 1, (19, 1))], axis=1)
            joints[:4, 3] = 0.9
            bodies.append({"id": body_id, "joints19": joints.reshape(-1).tolist()})
        (seq / "hdPose3d_stage1_coco19" / f"body3DScene_{frame:08d}.json").write_text(
            json.dumps({"version": 0.7, "univTime": 1.0 * frame, "fpsType": "hd_29_97", "bodies": bodies}))
    return tmp_path / "panoptic"


def test_panoptic_projection_boxes_and_index(panoptic_root, tmp_path):
    module = PanopticDataModule(str(panoptic_root), splits={"test": [SEQ]}, index_dir=str(tmp_path / "idx"),
                                num_workers=0)
    records, _ = module.load_records("test")
    assert {r.extra["camera"] for r in records} == {"00_16", "00_30"}
    assert len(records) == 2 * 3 * 2  # bodies 0 and 1 of 3 frames in 2 cameras; body 2 is behind both
    report = prepare("panoptic", panoptic_root, tmp_path / "idx", show_progress=False, sequences=[SEQ])
    assert [o.status for o in report.outputs] == ["up_to_date", "up_to_date"]
    assert [o.counts for o in report.outputs] == [{"kept": 6, "too_few_visible_joints": 3}] * 2
    calib = read_calibration(panoptic_root / SEQ / f"calibration_{SEQ}.json")["00_16"]
    record = next(r for r in records if r.extra["camera"] == "00_16" and r.extra["body_id"] == 1
                  and r.extra["frame"] == 101)
    scene = json.loads((panoptic_root / SEQ / "hdPose3d_stage1_coco19" / "body3DScene_00000101.json").read_text())
    world = np.asarray(scene["bodies"][1]["joints19"]).reshape(19, 4)
    cam = world[:, :3] / 100 @ calib["R"].T + calib["t"]  # cm -> m, then R X + t
    np.testing.assert_allclose(record.extra["joints_panoptic19"][:, :3], cam, atol=1e-12)
    pixels = cam[:, :2] / cam[:, 2:] * 300 + [160, 120]  # no distortion for 00_16: a plain pinhole
    visible = (world[:, 3] > 0.1) & (pixels >= 0).all(1) & (pixels[:, 0] <= 319) & (pixels[:, 1] <= 239)
    lo, hi = pixels[visible].min(0), pixels[visible].max(0)
    np.testing.assert_allclose(record.box, [*lo, *(hi - lo)], atol=1e-6)
    pan, coco = get_convention("panoptic19"), get_convention("coco17")
    for name in ("nose", "left_hip", "right_ear"):
        np.testing.assert_allclose(record.keypoints[coco.index(name), :2], pixels[pan.index(name)], atol=1e-6)
        np.testing.assert_allclose(record.keypoints_3d[coco.index(name), :3], cam[pan.index(name)], atol=1e-12)
        assert record.keypoints[coco.index(name), 2] == (2 if visible[pan.index(name)] else 0)
    same = [r for r in records if r.image_id == record.image_id]
    assert len(same) == 2 and record.image_path.name == "00_16_00000101.jpg"
    assert record.dataset == "panoptic" and "panoptic" in DATASET_CODES


def test_panoptic_missing_sequence_is_an_error(panoptic_root, tmp_path):
    module = PanopticDataModule(str(panoptic_root), splits={"test": [SEQ, "160906_pizza1"]},
                                index_dir=str(tmp_path / "idx"))
    with pytest.raises(FileNotFoundError, match="160906_pizza1"):
        module.load_records("test")
