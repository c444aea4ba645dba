"""The synthetic SMPL-format body model: official file layout, a closed person-shaped mesh, its rig."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from ochmr_lit.body import (
    SYNTHETIC_FILES,
    default_synthetic_dir,
    ensure_synthetic_body_model,
    generate_synthetic_body_model,
    load_mean_params,
)
from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.body.synthetic_mesh import JOINT_NAMES, PARENTS
from ochmr_lit.body.synthetic_rig import EXTRA_JOINT_NAMES, H36M_JOINT_NAMES, LANDMARK_VERTEX_IDS
from ochmr_lit.geometry import rot6d_to_rotmat
from ochmr_lit.safe_pickle import safe_load_pickle

GENDER_FILES = {"neutral": "SMPL_NEUTRAL.pkl", "male": "SMPL_MALE.pkl", "female": "SMPL_FEMALE.pkl"}
J = {name: i for i, name in enumerate(JOINT_NAMES)}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A freshly generated synthetic model (through the same path as the cache: temp folder + rename)."""
    return ensure_synthetic_body_model(tmp_path_factory.mktemp("body") / "synthetic")


@pytest.fixture(scope="module")
def models(model_dir: Path) -> dict[str, dict]:
    return {g: safe_load_pickle(model_dir / name) for g, name in GENDER_FILES.items()}


def _height(v: np.ndarray) -> float:
    return float(v[:, 1].max() - v[:, 1].min())


def test_files_have_the_official_layout(model_dir: Path, models: dict[str, dict]) -> None:
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(SYNTHETIC_FILES)
    for m in models.values():
        assert m["v_template"].shape == (6890, 3) and m["v_template"].dtype == np.float64
        assert m["f"].shape == (13776, 3) and m["f"].dtype == np.uint32
        assert sp.isspmatrix_csc(m["J_regressor"]) and m["J_regressor"].shape == (24, 6890)
        assert m["weights"].shape == (6890, 24)
        assert m["posedirs"].shape == (6890, 3, 207)
        assert m["shapedirs"].shape == (6890, 3, 10)
        assert m["kintree_table"].dtype == np.uint32 and m["kintree_table"].shape == (2, 24)
        np.testing.assert_array_equal(m["kintree_table"][0, 1:], PARENTS[1:])
        assert m["kintree_table"][0, 0] == 4294967295
        np.testing.assert_array_equal(m["kintree_table"][1], np.arange(24))
        assert (m["bs_type"], m["bs_style"]) == ("lrotmin", "lbs")
        np.testing.assert_allclose(m["J"], m["J_regressor"] @ m["v_template"], atol=1e-12)
    # one topology (and so one set of vertex ids) for all genders, as SMPL's
    np.testing.assert_array_equal(models["male"]["f"], models["neutral"]["f"])
    np.testing.assert_array_equal(models["female"]["f"], models["neutral"]["f"])


def test_mesh_is_one_closed_oriented_genus0_surface(models: dict[str, dict]) -> None:
    f = models["neutral"]["f"].astype(np.int64)
    directed = np.stack([f, np.roll(f, -1, axis=1)], axis=-1).reshape(-1, 2)
    # every directed edge once and its reverse once: each edge in exactly two faces, consistently oriented
    assert len(np.unique(directed, axis=0)) == len(directed)
    forward = {tuple(e) for e in directed.tolist()}
    assert all((b, a) in forward for a, b in forward)
    edges = np.unique(np.sort(directed, axis=1), axis=0)
    assert len(edges) * 2 == len(directed)
    assert 6890 - len(edges) + 13776 == 2  # Euler characteristic of a sphere
    assert np.array_equal(np.unique(f), np.arange(6890))
    for m in models.values():
        tri = m["v_template"][f]
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        assert np.linalg.norm(cross, axis=1).min() / 2 > 1e-7  # no degenerate triangle (m^2)
        volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
        assert 0.04 < volume < 0.12  # m^3, normals outward; a 70 kg person is about 0.07 m^3


def test_heights_and_gender_proportions(models: dict[str, dict]) -> None:
    heights = {g: _height(m["v_template"]) for g, m in models.items()}
    assert all(1.6 <= h <= 1.85 for h in heights.values()), heights
    assert heights["male"] > heights["neutral"] + 0.03 > heights["female"] + 0.06
    width = {g: m["J"][J["left_shoulder"], 0] - m["J"][J["right_shoulder"], 0] for g, m in models.items()}
    hips = {g: m["J"][J["left_hip"], 0] - m["J"][J["right_hip"], 0] for g, m in models.items()}
    assert width["male"] > width["neutral"] > width["female"]
    assert hips["female"] / heights["female"] > hips["male"] / heights["male"]


def test_rest_pose_is_a_t_pose_facing_plus_z(models: dict[str, dict]) -> None:
    for m in models.values():
        joints = m["J"]
        for side, sign in (("left", 1.0), ("right", -1.0)):
            chain = joints[[J[f"{side}_{n}"] for n in ("shoulder", "elbow", "wrist", "hand")]]
            assert np.all(np.diff(sign * chain[:, 0]) > 0.05)  # arms along x, the body's left is +x
            assert np.abs(chain[:, 1] - chain[0, 1]).max() < 0.02  # wrists level with shoulders
            assert np.abs(chain[:, 2] - chain[0, 2]).max() < 0.02
            assert sign * joints[J[f"{side}_hip"], 0] > 0.05
            assert joints[J[f"{side}_foot"], 2] > joints[J[f"{side}_ankle"], 2] + 0.08  # toes point +z
        assert joints[J["head"], 1] > joints[J["neck"], 1] > joints[J["spine3"], 1] > joints[J["pelvis"], 1]


def test_landmark_vertex_ids_sit_on_their_landmarks(models: dict[str, dict]) -> None:
    ids = LANDMARK_VERTEX_IDS
    for m in models.values():
        v, joints = m["v_template"], m["J"]
        head = v[v[:, 1] > joints[J["neck"], 1] + 0.05]
        nose, leye, reye, lear, rear = (v[ids[k]] for k in ("nose", "leye", "reye", "lear", "rear"))
        assert abs(nose[0]) < 1e-6 and nose[2] == pytest.approx(head[:, 2].max(), abs=0.005)
        np.testing.assert_allclose(leye * [-1, 1, 1], reye, atol=1e-6)  # mirror images
        assert 0.02 < leye[0] < 0.05 and leye[1] > nose[1] + 0.01 and leye[2] > 0.07
        np.testing.assert_allclose(lear * [-1, 1, 1], rear, atol=1e-6)
        assert lear[0] == pytest.approx(head[:, 0].max(), abs=0.01) and abs(lear[2]) < 0.03
        for foot, side in (("L", "left"), ("R", "right")):
            ankle = joints[J[f"{side}_ankle"]]
            assert v[ids[f"{foot}BigToe"], 2] > ankle[2] + 0.15 and v[ids[f"{foot}Heel"], 2] < ankle[2] - 0.03
        for hand, side in (("l", "left"), ("r", "right")):
            wrist = joints[J[f"{side}_wrist"]]
            assert abs(v[ids[f"{hand}middle"], 0]) > abs(wrist[0]) + 0.15


def test_skinning_weights_blend_neighbouring_bones(models: dict[str, dict]) -> None:
    legs = {"left": [J[f"left_{n}"] for n in ("hip", "knee", "ankle", "foot")],
            "right": [J[f"right_{n}"] for n in ("hip", "knee", "ankle", "foot")]}
    for m in models.values():
        w, v, joints = m["weights"], m["v_template"], m["J"]
        assert w.min() >= 0.0
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
        for part, child in ((1, 4), (2, 5), (4, 7), (16, 18), (17, 19), (18, 20), (19, 21)):
            mid = (joints[part] + joints[child]) / 2  # middle of the bone: that bone only
            near = np.argsort(np.linalg.norm(v - mid, axis=1))[:30]
            assert np.all(w[near].argmax(axis=1) == part)
            assert w[near, part].mean() > 0.95 and w[near, part].min() > 0.8
            at_joint = np.argsort(np.linalg.norm(v - joints[child], axis=1))[:30]
            blend = w[at_joint][:, [part, child]].sum(axis=1)
            assert blend.min() > 0.9 and w[at_joint, part].max() > 0.1 and w[at_joint, child].max() > 0.1
        # nothing leaks across the gap between the legs (only the crotch blends both, through the pelvis)
        left_leg = w[:, legs["left"]].sum(1) > 0.9
        assert left_leg.sum() > 1000 and w[left_leg][:, legs["right"]].max() == 0.0


def test_shape_directions_have_visible_distinct_effects(models: dict[str, dict]) -> None:
    for m in models.values():
        v, dirs, reg = m["v_template"], m["shapedirs"], m["J_regressor"]
        pelvis = m["J"][J["pelvis"]]
        # beta 0 is stature: a uniform scale by 1.04 per unit about the pelvis, joints follow exactly
        shaped = v + dirs @ np.eye(10)[0] * 2.0
        assert _height(shaped) == pytest.approx(1.08 * _height(v), rel=1e-9)
        np.testing.assert_allclose(reg @ shaped - pelvis, 1.08 * (m["J"] - pelvis), atol=1e-9)
        moved = np.abs(dirs).max(axis=(0, 1))
        assert np.all(moved > 0.01), moved  # every direction moves some vertex by > 1 cm per unit
        flat = dirs.reshape(-1, 10)
        cos = (flat.T @ flat) / np.outer(np.linalg.norm(flat, axis=0), np.linalg.norm(flat, axis=0))
        assert np.abs(cos - np.eye(10)).max() < 0.95
        # all left-right symmetric: beta moves a vertex and its mirror image alike
        mirror = np.argmin(np.linalg.norm(v[:, None] * [-1, 1, 1] - v[None, ::50], axis=2), axis=0)
        np.testing.assert_allclose(dirs[mirror] * [[-1], [1], [1]], dirs[::50], atol=1e-6)


def test_regressors_are_convex_and_agree_with_the_registry(model_dir: Path, models: dict[str, dict]) -> None:
    assert H36M_JOINT_NAMES == get_convention("h36m17").joint_names
    assert EXTRA_JOINT_NAMES == get_convention("spin_extra9").joint_names
    v, joints = models["neutral"]["v_template"], models["neutral"]["J"]
    smpl_names = get_convention("smpl24").joint_names
    points = {}
    for file, names in (("J_regressor_h36m.npy", H36M_JOINT_NAMES), ("J_regressor_extra.npy", EXTRA_JOINT_NAMES)):
        reg = np.load(model_dir / file)
        assert reg.shape == (len(names), 6890) and reg.min() >= 0
        np.testing.assert_allclose(reg.sum(axis=1), 1.0, atol=1e-12)
        for name, point in zip(names, reg @ v, strict=True):
            if name in smpl_names:  # a name shared with SMPL's joints is that joint
                np.testing.assert_allclose(point, joints[smpl_names.index(name)], atol=1e-6)
            if name in points:  # the same name in both files is the same point
                np.testing.assert_allclose(point, points[name], atol=1e-6)
            points[name] = point
    y = {k: p[1] for k, p in points.items()}
    assert y["head_top"] > y["head_h36m"] > y["jaw"] > y["neck"] > y["thorax"] > y["spine"] > y["pelvis"]
    assert points["jaw"][2] > points["head_h36m"][2]


def test_mean_params_face_the_camera(model_dir: Path) -> None:
    mean = load_mean_params(model_dir / "smpl_mean_params.npz")
    assert {k: a.dtype for k, a in mean.items()} == {"pose": np.float32, "shape": np.float32, "cam": np.float32}
    rotmats = rot6d_to_rotmat(torch.from_numpy(mean["pose"]).view(24, 6)).numpy()
    np.testing.assert_allclose(rotmats[0], np.diag([1.0, -1.0, -1.0]), atol=1e-7)  # 180 deg about x
    np.testing.assert_allclose(rotmats[1:], np.tile(np.eye(3), (23, 1, 1)), atol=1e-7)
    np.testing.assert_array_equal(mean["shape"], np.zeros(10))
    np.testing.assert_array_equal(mean["cam"], np.array([0.9, 0.0, 0.0], dtype=np.float32))


def test_generation_is_deterministic(model_dir: Path, tmp_path: Path) -> None:
    again = generate_synthetic_body_model(tmp_path / "again")

    def digest(folder: Path) -> dict[str, str]:
        return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in SYNTHETIC_FILES}

    assert digest(again) == digest(model_dir)


def test_existing_complete_folder_is_used_as_is(model_dir: Path) -> None:
    before = {name: (model_dir / name).stat().st_mtime_ns for name in SYNTHETIC_FILES}
    assert ensure_synthetic_body_model(model_dir) == model_dir
    assert {name: (model_dir / name).stat().st_mtime_ns for name in SYNTHETIC_FILES} == before


def test_default_location_is_the_cache() -> None:
    assert default_synthetic_dir() == Path(os.environ["OCHMR_CACHE"]) / "body_model" / "synthetic_v1"
