"""Mean parameters from SMPL labels: SO(3) means, SPIN's 6D layout, crop cameras, files, the prepare command."""

import json

import numpy as np
import pytest
import torch

from ochmr_lit.body.mean_params import (
    compute_mean_params,
    crop_cameras,
    mean_params_of_spin_npz,
    mean_params_of_synthcrowd_split,
    mean_rotations,
    project_to_rotation,
    save_mean_params,
)
from ochmr_lit.geometry import axis_angle_to_rotmat, rot6d_to_rotmat
from ochmr_lit.models.hmr import load_mean_params
from ochmr_lit.prepare import main as prepare_main


def _random_poses(n: int, scale: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=scale, size=(n, 72))


def test_projection_keeps_rotations_and_fixes_reflections():
    rotations = axis_angle_to_rotmat(torch.from_numpy(_random_poses(5, 1.0).reshape(-1, 3))).numpy()
    assert np.allclose(project_to_rotation(rotations), rotations, atol=1e-10)
    noisy = rotations + np.random.default_rng(1).normal(scale=0.05, size=rotations.shape)
    projected = project_to_rotation(noisy)
    assert np.allclose(projected @ np.swapaxes(projected, -1, -2), np.eye(3), atol=1e-10)
    assert np.allclose(np.linalg.det(projected), 1.0)
    reflection = np.diag([1.0, 1.0, -1.0])  # nearest rotation of a reflection has det +1
    assert np.isclose(np.linalg.det(project_to_rotation(reflection)), 1.0)


def test_mean_rotation_of_symmetric_poses_is_their_centre():
    centre = np.tile([0.3, -0.2, 0.5], 24)
    same = np.repeat(centre[None], 3, axis=0)
    expected = axis_angle_to_rotmat(torch.from_numpy(centre.reshape(24, 3))).numpy()
    assert np.allclose(mean_rotations(same), expected, atol=1e-10)
    # +-0.4 rad about x: the mean matrix is cos-weighted, its projection the identity
    pair = np.zeros((2, 72))
    pair[0, 0::3], pair[1, 0::3] = 0.4, -0.4
    assert np.allclose(mean_rotations(pair), np.eye(3), atol=1e-10)


def test_spin_6d_round_trip_and_means():
    poses = _random_poses(200, 0.3)
    betas = np.random.default_rng(2).normal(size=(200, 10))
    params = compute_mean_params(poses, betas)
    assert params["pose"].shape == (144,) and params["shape"].shape == (10,) and params["cam"].shape == (3,)
    rotmats = rot6d_to_rotmat(torch.from_numpy(params["pose"]).double().view(24, 6)).numpy()
    assert np.allclose(rotmats, mean_rotations(poses), atol=1e-6)
    assert np.allclose(params["shape"], betas.mean(axis=0), atol=1e-6)
    assert np.allclose(params["cam"], [0.9, 0.0, 0.0])  # no crops: SPIN's default camera


def test_crop_camera_reproduces_the_crop_projection():
    focal, pp = 500.0, np.array([128.0, 128.0])
    root = np.array([[0.4, -0.1, 5.0], [-0.2, 0.3, 8.0]])
    root_px = focal * root[:, :2] / root[:, 2:] + pp
    boxes = np.array([[root_px[0, 0] - 30, root_px[0, 1] - 50, 60, 100],  # centred on the root
                      [root_px[1, 0] - 10, root_px[1, 1] - 40, 40, 60]])  # root off the box centre
    cams = crop_cameras(root, boxes, np.full(2, focal), np.tile(pp, (2, 1)), scale_factor=1.2)
    side = 1.2 * boxes[:, 2:].max(axis=1)
    assert np.allclose(cams[:, 0], 2 * focal / (side * root[:, 2]))
    assert np.allclose(cams[0, 1:], 0.0, atol=1e-12)
    # weak perspective s * t reproduces the root's normalised crop coordinates
    centre = boxes[:, :2] + boxes[:, 2:] / 2
    normalised = (root_px - centre) * 2 / side[:, None]
    assert np.allclose(cams[:, :1] * cams[:, 1:], normalised)


def test_file_round_trip_is_reproducible(tmp_path):
    params = compute_mean_params(_random_poses(10, 0.2), np.zeros((10, 10)))
    a = save_mean_params(tmp_path / "a.npz", params, source="test", num_people=10)
    b = save_mean_params(tmp_path / "b.npz", params, source="test", num_people=10)
    assert a.read_bytes() == b.read_bytes()
    loaded = load_mean_params(a)
    for key in ("pose", "shape", "cam"):
        assert torch.equal(loaded[key], torch.from_numpy(params[key]))


def test_synthcrowd_split_writes_its_mean(tiny_synthcrowd):
    split = tiny_synthcrowd / "train"
    written = load_mean_params(split / "smpl_mean_params.npz")
    params, people = mean_params_of_synthcrowd_split(split)
    annotations = json.loads((split / "annotations.json").read_text())["annotations"]
    assert people == len(annotations)
    assert torch.allclose(written["pose"], torch.from_numpy(params["pose"]))
    poses = np.array([a["smpl_pose"] for a in annotations])
    assert np.allclose(params["shape"], np.mean([a["smpl_betas"] for a in annotations], axis=0), atol=1e-6)
    # the mean start is closer to every person's pose than the T-pose (identity body joints) is
    rotmats = axis_angle_to_rotmat(torch.from_numpy(poses.reshape(-1, 3))).numpy().reshape(-1, 24, 3, 3)
    mean = rot6d_to_rotmat(written["pose"].double().view(24, 6)).numpy()
    to_mean = np.square(rotmats[:, 1:] - mean[1:]).sum(axis=(2, 3)).mean()
    to_identity = np.square(rotmats[:, 1:] - np.eye(3)).sum(axis=(2, 3)).mean()
    assert to_mean < to_identity
    assert 0.2 < float(params["cam"][0]) < 3.0  # a person fills about 1/1.2 of the crop: s near 1


def test_spin_npz_uses_labelled_people_only(tmp_path):
    poses = _random_poses(4, 0.2)
    shape = np.arange(40, dtype=np.float64).reshape(4, 10)
    np.savez(tmp_path / "spin.npz", pose=poses, shape=shape, has_smpl=np.array([1, 1, 0, 0]))
    params, people = mean_params_of_spin_npz(tmp_path / "spin.npz")
    assert people == 2
    assert np.allclose(params["shape"], shape[:2].mean(axis=0))
    np.savez(tmp_path / "bad.npz", pose=poses)
    with pytest.raises(KeyError, match="bad.npz: no 'shape'"):
        mean_params_of_spin_npz(tmp_path / "bad.npz")


def test_prepare_command(tmp_path, capsys):
    np.savez(tmp_path / "spin.npz", pose=_random_poses(3, 0.2), shape=np.zeros((3, 10)))
    assert prepare_main(["mean_params", "--data", str(tmp_path / "spin.npz")]) == 0
    assert "mean parameters of 3 people" in capsys.readouterr().out
    assert (tmp_path / "spin_mean_params.npz").is_file()
    assert prepare_main(["mean_params", "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --data") and err.count("\n") == 1
