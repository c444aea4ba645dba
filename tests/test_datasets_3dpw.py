"""3DPW from official-format sequence pickles (Python-2 latin1 pickles of numpy arrays), written here."""

from __future__ import annotations

import pickle
import pickletools
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ochmr_lit.body import BodyModel
from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.data.datamodules import ThreeDPWDataModule
from ochmr_lit.data.readers.threedpw import (
    camera_frame_smpl,
    keypoint_box,
    load_3dpw_records,
    read_sequence,
    write_index,
)
from ochmr_lit.geometry import axis_angle_to_rotmat, crop_affine
from ochmr_lit.metrics.per_sample import DATASET_CODES
from ochmr_lit.safe_pickle import UnsafePickleError


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote: text and raw bytes as py2 ``str`` (BINSTRING), numpy 1.x names."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _string(self, data: bytes) -> None:
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)

    def save_bytes(self, obj: bytes) -> None:
        self._string(obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        self._string(obj.encode("latin1"))
        self.memoize(obj)

    def save_global(self, obj, name=None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def write_py2_pickle(path: Path, obj) -> None:
    with path.open("wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


def _random_rotations(rng, n: int) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(rng.normal(0, 0.6, (n, 3))).as_matrix()


def make_sequence(body: BodyModel, name: str, num_frames: int, rng, genders=("m", "f")) -> dict:
    """A sequence in the official layout, with jointPositions computed from its own SMPL parameters."""
    p = len(genders)
    betas = rng.normal(0, 0.8, (p, 10))
    poses = rng.normal(0, 0.25, (p, num_frames, 72))
    trans = rng.normal(0, 0.5, (p, num_frames, 3)) + np.array([0, 0, 0.5])
    codes = torch.tensor([1 if g == "m" else 2 for g in genders]).repeat_interleave(num_frames)
    with torch.no_grad():
        out = body(axis_angle_to_rotmat(torch.tensor(poses.reshape(-1, 24, 3))).float(),
                   torch.tensor(np.repeat(betas, num_frames, axis=0)).float(), gender=codes,
                   transl=torch.tensor(trans.reshape(-1, 3)).float())
    joints = out.joints.double().numpy().reshape(p, num_frames, 72)
    cam = np.tile(np.eye(4), (num_frames, 1, 1))
    cam[:, :3, :3] = _random_rotations(rng, num_frames)
    cam[:, :3, 3] = rng.normal(0, 1, (num_frames, 3)) + np.array([0, 0, 5])
    poses2d = np.zeros((p, num_frames, 3, 18))
    poses2d[:, :, 0] = rng.uniform(10, 50, (p, num_frames, 18))
    poses2d[:, :, 1] = rng.uniform(5, 40, (p, num_frames, 18))
    poses2d[:, :, 2] = rng.uniform(0.2, 1.0, (p, num_frames, 18)) * (rng.random((p, num_frames, 18)) > 0.2)
    poses2d[:, :, 2, 0] = 0.9  # at least one joint per person and frame
    valid = np.ones((p, num_frames), bool)
    return {
        "sequence": name, "genders": list(genders), "betas": [b for b in betas], "betas_clothed": [b for b in betas],
        "v_template_clothed": [np.zeros((6890, 3)) for _ in genders], "texture_maps": [np.zeros((2, 2, 3))] * p,
        "poses": [x for x in poses], "trans": [x for x in trans], "jointPositions": [x for x in joints],
        "poses2d": [x for x in poses2d], "cam_poses": cam, "cam_intrinsics": np.diag([60.0, 60.0, 1.0]),
        "img_frame_ids": np.arange(num_frames) * 2, "campose_valid": [x for x in valid],
        "poses_60Hz": [x for x in poses], "trans_60Hz": [x for x in trans],
    }


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel()


@pytest.fixture(scope="module")
def pw3d(tmp_path_factory, body):
    """A 3DPW folder: test/courtyard_dancing_00 (64 frames, 2 actors), train/courtyard_backpack_00 (3 frames)."""
    root = tmp_path_factory.mktemp("3DPW")
    rng = np.random.default_rng(0)
    seqs = {"test": make_sequence(body, "courtyard_dancing_00", 64, rng),
            "train": make_sequence(body, "courtyard_backpack_00", 3, rng, genders=("f",)),
            "validation": make_sequence(body, "downtown_walking_00", 2, rng, genders=("m",))}
    seqs["test"]["campose_valid"][1][[0, 1, 61]] = False  # 3 invalid camera poses of actor 1
    seqs["test"]["poses2d"][0][5, 2, :] = 0.0  # actor 0, frame 5: no detected joint
    for split, seq in seqs.items():
        folder = root / "sequenceFiles" / split
        folder.mkdir(parents=True)
        write_py2_pickle(folder / f"{seq['sequence']}.pkl", seq)
        images = root / "imageFiles" / seq["sequence"]
        images.mkdir(parents=True)
        for frame in range(len(seq["cam_poses"])):
            cv2.imwrite(str(images / f"image_{frame:05d}.jpg"), np.full((48, 64, 3), frame % 255, np.uint8))
    return root, seqs


def test_pickle_is_python2_style_and_reads(pw3d):
    root, seqs = pw3d
    path = root / "sequenceFiles" / "test" / "courtyard_dancing_00.pkl"
    ops = {op.name for op, _, _ in pickletools.genops(path.read_bytes())}
    assert "SHORT_BINSTRING" in ops and "BINUNICODE" not in ops and b"_codecs" not in path.read_bytes()
    with pytest.raises(UnicodeDecodeError):  # a plain Python 3 load (ASCII) cannot read it, latin1 can
        pickle.loads(path.read_bytes())
    seq = read_sequence(path)
    assert seq["sequence"] == "courtyard_dancing_00" and list(seq["genders"]) == ["m", "f"]
    assert seq["poses2d"].shape == (2, 64, 18, 3) and seq["joints"].shape == (2, 64, 24, 3)
    np.testing.assert_array_equal(seq["cam_poses"], seqs["test"]["cam_poses"])


def test_code_running_pickle_is_refused(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(UnsafePickleError, match="os.system|posix.system"):
        read_sequence(evil)


def test_missing_key_is_named(tmp_path, pw3d):
    _, seqs = pw3d
    broken = {k: v for k, v in seqs["train"].items() if k != "cam_poses"}
    write_py2_pickle(tmp_path / "broken.pkl", broken)
    with pytest.raises(KeyError, match="broken.pkl: key 'cam_poses' missing"):
        read_sequence(tmp_path / "broken.pkl")


def test_camera_frame_smpl_reproduces_joint_positions(pw3d, body, tmp_path):
    """SMPL posed from the camera-frame parameters = the pickle's jointPositions moved by cam_poses."""
    root, seqs = pw3d
    counts = write_index(sorted((root / "sequenceFiles" / "test").glob("*.pkl")), tmp_path / "test.npz")
    assert counts == {"kept": 2 * 64 - 3 - 1, "campose_invalid": 3, "no_2d_keypoints": 1}
    records, skipped = load_3dpw_records([tmp_path / "test.npz"], root)
    assert len(records) == 124 and not skipped
    seq = seqs["test"]
    betas = torch.tensor(np.stack([r.smpl_betas for r in records])).float()
    gender = torch.tensor([r.gender for r in records])
    assert gender.tolist() == [1 if r.extra["person"] == 0 else 2 for r in records]
    with torch.no_grad():
        rest = body(torch.eye(3).expand(len(records), 24, 3, 3), betas, gender=gender).joints[:, 0].double().numpy()
    frames = np.array([r.extra["frame"] for r in records])
    people = np.array([r.extra["person"] for r in records])
    world_pose = np.stack(seq["poses"])[people, frames]
    pose_cam, trans_cam = camera_frame_smpl(world_pose, np.stack(seq["trans"])[people, frames],
                                            seq["cam_poses"][frames], root_joint=rest)
    np.testing.assert_allclose(pose_cam, np.stack([r.smpl_pose for r in records]), atol=1e-9)
    with torch.no_grad():
        posed = body(axis_angle_to_rotmat(torch.tensor(pose_cam).view(-1, 24, 3)).float(), betas, gender=gender,
                     transl=torch.tensor(trans_cam).float()).joints.double().numpy()
    world = np.stack(seq["jointPositions"]).reshape(2, 64, 24, 3)[people, frames]
    extr = seq["cam_poses"][frames]
    expected = np.einsum("nij,nkj->nki", extr[:, :3, :3], world) + extr[:, None, :3, 3]
    np.testing.assert_allclose(posed, expected, atol=2e-5)
    np.testing.assert_allclose(np.stack([r.extra["joints_smpl24"] for r in records]), expected, atol=1e-9)
    # COCO-17 3D keypoints: the camera-frame SMPL limb joints of the same name; face joints masked
    coco, smpl = get_convention("coco17"), get_convention("smpl24")
    kp3 = np.stack([r.keypoints_3d for r in records])
    for name in ("left_shoulder", "right_knee", "left_ankle", "right_wrist"):
        np.testing.assert_allclose(kp3[:, coco.index(name), :3], expected[:, smpl.index(name)], atol=1e-9)
    assert (kp3[:, :5, 3] == 0).all() and (kp3[:, 5:, 3] == 1).all()
    assert "3dpw" in DATASET_CODES and {r.dataset for r in records} == {"3dpw"}


def test_boxes_are_1p2_times_keypoint_extent(pw3d, tmp_path):
    root, seqs = pw3d
    module = ThreeDPWDataModule(str(root), index_dir=str(tmp_path / "index"), num_workers=0, crop_size=64,
                                map_size=16)
    dataset = module.dataset("test")
    poses2d = np.stack(seqs["test"]["poses2d"]).transpose(0, 1, 3, 2)
    for i in (0, 7, 50, len(dataset) - 1):
        record = dataset.records[i]
        kp = poses2d[record.extra["person"], record.extra["frame"]]
        seen = kp[kp[:, 2] > 0]
        lo, hi = seen[:, :2].min(0), seen[:, :2].max(0)
        np.testing.assert_allclose(keypoint_box(kp), [*lo, *(hi - lo)])
        sample = dataset[i]
        affine = sample["crop_affine"].double().numpy()
        crop_side = 64 / np.sqrt(abs(np.linalg.det(affine[:, :2])))
        assert crop_side == pytest.approx(1.2 * max(hi - lo), rel=1e-5)
        expected = crop_affine((lo + hi) / 2, 1.2 * max(hi - lo), 64)  # square crop around the extent's centre
        np.testing.assert_allclose(affine, expected, rtol=1e-5, atol=1e-4)
        assert sample["has_smpl"] and sample["has_keypoints_3d"] and sample["dataset"] == "3dpw"


def test_pc_and_occ_subsets_keep_exactly_their_frames(pw3d, tmp_path):
    root, _ = pw3d
    index = tmp_path / "index"
    every = {"test": ["train", "validation", "test"]}
    pc = ThreeDPWDataModule(str(root), subset="pc", splits=every, index_dir=str(index), num_workers=0)
    records, skipped = pc.load_records("test")
    # courtyard_dancing_00 is PC in frames [60, 370): frames 60-63 of actor 0, 60 and 62-63 of actor 1
    assert sorted((r.extra["frame"], r.extra["person"]) for r in records) == [
        (60, 0), (60, 1), (61, 0), (62, 0), (62, 1), (63, 0), (63, 1)]
    assert skipped["not_in_3dpw_pc"] == 124 + 3 + 2 - 7
    occ = ThreeDPWDataModule(str(root), subset="occ", splits=every, index_dir=str(index), num_workers=0)
    records, skipped = occ.load_records("test")
    assert {r.extra["sequence"] for r in records} == {"courtyard_backpack_00"} and len(records) == 3
    assert skipped["not_in_3dpw_occ"] == 126
    ids = [r.sample_id for r in ThreeDPWDataModule(str(root), splits=every, index_dir=str(index)).load_records(
        "test")[0]]
    assert len(ids) == len(set(ids)) == 129  # ids stay unique across the three split files


def test_prepare_is_idempotent_and_reports_skips(pw3d, tmp_path, capsys):
    from ochmr_lit.data.preparation import prepare
    from ochmr_lit.prepare import main

    root, seqs = pw3d
    out = tmp_path / "prepared"
    first = prepare("3dpw", root, out, show_progress=False)
    assert [o.status for o in first.outputs] == ["written"] * 3
    assert first.totals() == {"kept": 124 + 3 + 2, "campose_invalid": 3, "no_2d_keypoints": 1}
    stamps = [o.path.stat().st_mtime_ns for o in first.outputs]
    assert main(["3dpw", "--raw", str(root), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "up_to_date" in printed and "3 campose_invalid" in printed and "1 no_2d_keypoints" in printed
    assert [o.path.stat().st_mtime_ns for o in first.outputs] == stamps
    test_pkl = root / "sequenceFiles" / "test" / "courtyard_dancing_00.pkl"
    write_py2_pickle(test_pkl, seqs["test"])  # a newer input: only its split is rebuilt
    again = prepare("3dpw", root, out, show_progress=False)
    assert [o.status for o in again.outputs] == ["up_to_date", "up_to_date", "written"]
    assert main(["3dpw", "--raw", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
