"""LSP, LSP-extended and MPII in SPIN's preprocessed npz format, written here as SPIN's preprocessing writes them.

Each dataset's npz holds ``imgname`` (str, relative to the image root), ``center`` (N, 2) float64 px, ``scale``
(N,) float64 (= box side / 200), ``part`` (N, 24, 3) float64 in SPIN's 24-joint order with visibility in the
last column, ``openpose`` (N, 25, 3); MPII here also carries the optional ``pose``, ``shape``, ``has_smpl`` and
``gender``. The files go where the data configs look for them (under ``paths.data_root``) and are read back
through the DataModules those configs build.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.data import H36MDataModule, LSPDataModule, LSPExtendedDataModule, MPIIDataModule
from ochmr_lit.data.schema import SAMPLE_KEYS

IMAGE_W, IMAGE_H = 120, 100  # px
CROP = 64  # px

# SPIN's 24 GT joints (constants.JOINT_NAMES[25:]): LSP's 14 first, then MPII/H36M extras and the COCO face.
SPIN_INDEX = {"right_ankle": 0, "right_knee": 1, "right_hip": 2, "left_hip": 3, "left_knee": 4, "left_ankle": 5,
              "right_wrist": 6, "right_elbow": 7, "right_shoulder": 8, "left_shoulder": 9, "left_elbow": 10,
              "left_wrist": 11, "neck": 12, "head_top": 13, "pelvis": 14, "thorax": 15, "nose": 19,
              "left_eye": 20, "right_eye": 21, "left_ear": 22, "right_ear": 23}
# COCO-17 positions of the joints checked below.
COCO_INDEX = {"nose": 0, "left_eye": 1, "right_eye": 2, "left_ear": 3, "right_ear": 4, "left_shoulder": 5,
              "right_shoulder": 6, "left_elbow": 7, "right_elbow": 8, "left_wrist": 9, "right_wrist": 10,
              "left_hip": 11, "right_hip": 12, "left_knee": 13, "right_knee": 14, "left_ankle": 15, "right_ankle": 16}
BODY = [n for n in COCO_INDEX if n not in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
FACE = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
# Rows of ``part`` that SPIN's preprocessing fills: LSP's 14 joints in order; MPII's 16 joints through
# mpii_extract's joints_idx = [0, 1, 2, 3, 4, 5, 14, 15, 12, 13, 6, 7, 8, 9, 10, 11].
LSP_ROWS = list(range(14))
MPII_ROWS = [0, 1, 2, 3, 4, 5, 14, 15, 12, 13, 6, 7, 8, 9, 10, 11]

#: data config -> (class, sample name, train npz, image folder, images: people per image, labelled part rows,
#: (person, joint) with visibility 0)
DATASETS = {
    "lsp": (LSPDataModule, "lsp", "lsp_dataset_original_train.npz", "lsp_original",
            {"images/im0001.jpg": 1, "images/im0002.jpg": 1}, LSP_ROWS, (0, "left_wrist")),
    "lsp_extended": (LSPExtendedDataModule, "lspet", "hr-lspet_train.npz", "hr-lspet",
                     {"im00001.png": 1, "im00002.png": 2}, LSP_ROWS, (2, "right_ankle")),
    "mpii": (MPIIDataModule, "mpii", "mpii_train.npz", "mpii",
             {"images/015601864.jpg": 2, "images/015599452.jpg": 1}, MPII_ROWS, (1, "right_knee")),
}


def _write_spin_npz(path: Path, image_root: Path, images: dict[str, int], rows: list[int],
                    hidden: tuple[int, str], seed: int, smpl: bool = False, s3d: bool = False) -> dict:
    """A SPIN-format npz with ``images`` (relative name -> people) and the images themselves.

    Every person's labelled joints lie within 25 px of its centre (inside the 120x100 image and the crop);
    ``hidden`` = (row, joint name) gets visibility 0. Returns the arrays written.
    """
    rng = np.random.default_rng(seed)
    names = [name for name, people in images.items() for _ in range(people)]
    n = len(names)
    center = np.stack([rng.uniform(40, 80, n), rng.uniform(40, 60, n)], axis=1)  # float64
    scale = rng.uniform(0.3, 0.4, n)  # float64, box side / 200: 60-80 px
    part = np.zeros((n, 24, 3))
    part[:, rows, :2] = center[:, None, :] + rng.uniform(-25, 25, (n, len(rows), 2))
    part[:, rows, 2] = 1.0
    person, joint = hidden
    part[person, SPIN_INDEX[joint], 2] = 0.0
    openpose = np.concatenate([rng.uniform(0, 100, (n, 25, 2)), np.full((n, 25, 1), 0.9)], axis=2)
    arrays = {"imgname": np.array(names), "center": center, "scale": scale, "part": part, "openpose": openpose}
    if smpl:
        arrays.update(pose=rng.normal(0, 0.2, (n, 72)), shape=rng.normal(0, 1, (n, 10)),
                      has_smpl=(np.arange(n) == 0).astype(np.float64), gender=np.array(["m", "f", "m"][:n]))
    if s3d:
        arrays["S"] = np.concatenate([rng.normal(0, 0.3, (n, 24, 3)), np.ones((n, 24, 1))], axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    for name in images:
        image = image_root / name
        image.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(image), rng.integers(0, 255, (IMAGE_H, IMAGE_W, 3), dtype=np.uint8))
    return arrays


def _datamodule(name: str, root: Path, *overrides: str):
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=["~experiment", f"data={name}", f"paths.data_root={root}",
                                                    "data.num_workers=0", f"data.crop_size={CROP}",
                                                    "data.map_size=16", *overrides])
    return instantiate(cfg.data)


def _write(name: str, root: Path) -> dict:
    _, _, npz, folder, images, rows, hidden = DATASETS[name]
    return _write_spin_npz(root / "spin_extras" / npz, root / folder, images, rows, hidden, seed=len(name),
                           smpl=name == "mpii")


def _inverse(affine: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([affine, [0.0, 0.0, 1.0]]))[:2]


def test_joint_tables_agree_with_the_registry():
    """The hand-written SPIN/COCO positions used below are the registry's (so the checks are independent)."""
    spin, coco = get_convention("spin24").joint_names, get_convention("coco17").joint_names
    assert all(spin[i] == name for name, i in SPIN_INDEX.items())
    assert all(coco[i] == name for name, i in COCO_INDEX.items())


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_config_defaults_name_spins_files(name, tmp_path):
    cls, dataset, npz, folder, *_ = DATASETS[name]
    module = _datamodule(name, tmp_path)
    assert type(module) is cls and module.name == dataset
    assert module.npz_files["train"] == tmp_path / "spin_extras" / npz
    assert module.image_roots["train"] == tmp_path / folder
    if name == "lsp":  # evaluation on the lsp_dataset release's test images
        assert module.npz_files["test"] == module.npz_files["val"] == tmp_path / "spin_extras" / "lsp_dataset_test.npz"
        assert module.image_roots["test"] == tmp_path / "lsp_dataset"
    else:  # training sets only
        assert set(module.npz_files) == {"train"}
        with pytest.raises(KeyError, match="no 'test' split"):
            module.load_records("test")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_records_people_boxes_and_coco_joints(name, tmp_path):
    arrays = _write(name, tmp_path)
    _, dataset, _, folder, images, *_ = DATASETS[name]
    module = _datamodule(name, tmp_path)
    records, skipped = module.load_records("train")
    n = len(arrays["imgname"])
    assert len(records) == n == sum(images.values()) and not skipped
    assert len(module.dataset("train")) == n
    assert len({r.image_id for r in records}) == len(images)
    part = arrays["part"]
    for i, record in enumerate(records):
        assert record.dataset == dataset
        assert record.image_path == tmp_path / folder / arrays["imgname"][i]
        # SPIN's crop is the square center +- 100 * scale; the box is that square shrunk by scale_factor (1.2)
        cx, cy = arrays["center"][i]
        half = 100.0 * arrays["scale"][i] / 1.2
        np.testing.assert_allclose(record.box, [cx - half, cy - half, 2 * half, 2 * half], atol=1e-9)
        # people of one image share its global centres
        assert len(record.image_centers) == images[arrays["imgname"][i]]
        for joint in BODY:
            spin = part[i, SPIN_INDEX[joint]]
            coco = record.keypoints[COCO_INDEX[joint]]
            if spin[2] > 0:
                np.testing.assert_allclose(coco, [spin[0], spin[1], 2.0], err_msg=f"{name} person {i} {joint}")
            else:
                assert coco[2] == 0, f"{name} person {i} {joint}: visibility 0 in part, labelled in the record"
        # LSP and MPII label no face joint; OpenPose's detections (confidence 0.9) are not ground truth
        assert all(record.keypoints[COCO_INDEX[j], 2] == 0 for j in FACE)
    # named joints at the right rows, checked explicitly
    assert records[0].keypoints[COCO_INDEX["left_ankle"], :2] == pytest.approx(part[0, 5, :2])
    assert records[0].keypoints[COCO_INDEX["right_wrist"], :2] == pytest.approx(part[0, 6, :2])
    assert sum(int((r.keypoints[:, 2] > 0).sum()) for r in records) == 12 * n - 1  # one hidden joint


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_augmented_samples_keep_joints_and_mask_missing_labels(name, tmp_path):
    arrays = _write(name, tmp_path)
    *_, (hidden_person, hidden_joint) = DATASETS[name]
    data = _datamodule(name, tmp_path).dataset("train")
    flip_perm = get_convention("coco17").flip_perm
    part, flips = arrays["part"], 0
    for epoch in range(6):
        for i in range(len(data)):
            sample = data[(epoch, i)]
            assert set(sample) == set(SAMPLE_KEYS)
            affine = sample["crop_affine"].numpy().astype(np.float64)
            flipped = np.linalg.det(affine[:, :2]) < 0
            flips += int(flipped)
            back = _inverse(affine)
            kp = sample["keypoints_2d"].numpy().astype(np.float64)
            image_xy = kp[:, :2] @ back[:, :2].T + back[:, 2]
            for joint in BODY:
                j = COCO_INDEX[joint]
                source = get_convention("coco17").joint_names[flip_perm[j] if flipped else j]
                spin = part[i, SPIN_INDEX[source]]
                assert kp[j, 2] == float(spin[2] > 0) and int(sample["visibility"][j]) == (2 if spin[2] > 0 else 0)
                if spin[2] > 0:
                    np.testing.assert_allclose(image_xy[j], spin[:2], atol=1e-3, err_msg=f"{name} {i} {joint}")
            assert not kp[[COCO_INDEX[f] for f in FACE], 2].any()
            hidden = COCO_INDEX[hidden_joint]
            if i == hidden_person:
                assert kp[flip_perm[hidden] if flipped else hidden, 2] == 0
            assert not bool(sample["has_keypoints_3d"]) and not sample["keypoints_3d"].any()
            has_smpl = bool(arrays.get("has_smpl", np.zeros(len(data)))[i])
            assert bool(sample["has_smpl"]) == has_smpl
            if not has_smpl:
                assert not sample["smpl_pose"].any() and not sample["smpl_betas"].any()
    assert 0 < flips < 6 * len(data)  # both orientations were checked


def test_mpii_smpl_labels_only_where_has_smpl(tmp_path):
    arrays = _write("mpii", tmp_path)
    data = _datamodule("mpii", tmp_path, "data.augment=null").dataset("train")
    first, second = data[0], data[1]
    assert bool(first["has_smpl"]) and not bool(second["has_smpl"])
    np.testing.assert_allclose(first["smpl_pose"].numpy(), arrays["pose"][0], atol=1e-5)  # unrotated crop
    np.testing.assert_allclose(first["smpl_betas"].numpy(), arrays["shape"][0], atol=1e-6)
    assert not second["smpl_pose"].any() and not second["smpl_betas"].any()
    assert [int(data[i]["gender"]) for i in range(3)] == [1, 2, 1]  # m, f, m


def test_unaugmented_crop_is_spins_square_and_schema_matches_h36m(tmp_path):
    arrays = _write("lsp", tmp_path)
    _write_spin_npz(tmp_path / "spin_extras" / "lsp_dataset_test.npz", tmp_path / "lsp_dataset",
                    {"images/im1001.jpg": 1}, LSP_ROWS, (0, "nose"), seed=7)
    module = _datamodule("lsp", tmp_path, "data.augment=null")
    sample = module.dataset("train")[1]
    # center -/+ 100 * scale map to the crop's corners
    cx, cy = arrays["center"][1]
    half = 100.0 * arrays["scale"][1]
    affine = sample["crop_affine"].numpy().astype(np.float64)
    corners = np.array([[cx - half, cy - half], [cx + half, cy + half]]) @ affine[:, :2].T + affine[:, 2]
    np.testing.assert_allclose(corners, [[0, 0], [CROP, CROP]], atol=1e-3)
    test_sample = module.dataset("test")[0]
    assert test_sample["dataset"] == "lsp" and len(module.dataset("test")) == 1
    assert str(module.dataset("test").records[0].image_path).startswith(str(tmp_path / "lsp_dataset"))
    # evaluation samples: the schema plus joints_spin24, masked (no S in LSP)
    assert set(test_sample) == set(SAMPLE_KEYS) | {"joints_spin24"}
    assert not test_sample["joints_spin24"].any()
    # H36M, the same format with 3D joints and SMPL, yields exactly the same keys
    _write_spin_npz(tmp_path / "spin_extras" / "h36m_valid_protocol2.npz", tmp_path / "h36m",
                    {"S9/im_000001.jpg": 1}, LSP_ROWS, (0, "nose"), seed=8, s3d=True)
    h36m = _datamodule("h36m", tmp_path)
    assert type(h36m) is H36MDataModule
    h36m_sample = h36m.dataset("test")[0]
    assert set(h36m_sample) == set(test_sample)
    assert h36m_sample["joints_spin24"][:, 3].all()
