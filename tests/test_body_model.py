"""BodyModel: SMPL through smplx from rotation matrices, gendered batches, real-format folders."""

from __future__ import annotations

import math
import pickle
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import smplx
import torch
from torch import nn

from ochmr_lit.body import (
    EXPECTED_FILES,
    FACE_VERTEX_IDS,
    BodyModel,
    BodyModelFileError,
    ensure_synthetic_body_model,
    resolve_body_model_dir,
)
from ochmr_lit.geometry import axis_angle_to_rotmat
from ochmr_lit.safe_pickle import safe_load_pickle

MODEL_FILES = ("SMPL_NEUTRAL.pkl", "SMPL_MALE.pkl", "SMPL_FEMALE.pkl")
SHARED_FILES = ("J_regressor_h36m.npy", "J_regressor_extra.npy", "smpl_mean_params.npz")
LEFT_SHOULDER, LEFT_ELBOW, LEFT_WRIST, LEFT_HAND, RIGHT_WRIST = 16, 18, 20, 22, 21


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel()  # the synthetic model from the cache


def _random_batch(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rotmats = axis_angle_to_rotmat(0.4 * torch.randn(n, 24, 3, generator=g))
    betas = torch.randn(n, 10, generator=g)
    return rotmats, betas


def _rest_joints(body: BodyModel, gender: str, betas: torch.Tensor) -> torch.Tensor:
    smpl = body.smpl[gender]
    shaped = smpl.v_template + torch.einsum("bl,vkl->bvk", betas, smpl.shapedirs)
    return torch.einsum("jv,bvk->bjk", smpl.J_regressor, shaped)


def test_synthetic_files_load_through_smplx_itself(body: BodyModel) -> None:
    """smplx reads the synthetic .pkl with its own loader; zero pose and shape give the template."""
    with torch.no_grad():
        reference = smplx.SMPL(model_path=str(body.model_dir), gender="male")
        out = reference(betas=torch.zeros(1, 10), body_pose=torch.zeros(1, 69), global_orient=torch.zeros(1, 3))
        template = torch.as_tensor(safe_load_pickle(body.model_dir / "SMPL_MALE.pkl")["v_template"]).float()
        torch.testing.assert_close(out.vertices[0], template, atol=1e-6, rtol=0)
        ours = body(torch.eye(3).expand(1, 24, 3, 3), torch.zeros(1, 10), gender=torch.tensor([1]))
        torch.testing.assert_close(ours.vertices[0], template, atol=1e-6, rtol=0)
        torch.testing.assert_close(ours.joints, out.joints[:, :24], atol=1e-6, rtol=0)


def test_output_shapes_and_no_persistent_state(body: BodyModel) -> None:
    rotmats, betas = _random_batch(3)
    out = body(rotmats, betas)
    assert out.vertices.shape == (3, 6890, 3) and out.joints.shape == (3, 24, 3)
    assert out.joints_h36m.shape == (3, 17, 3) and out.joints_extra.shape == (3, 9, 3)
    assert out.keypoints29.shape == (3, 29, 3) and body.faces.shape == (13776, 3)
    assert body.faces.dtype == torch.long
    # checkpoints of a module that owns a BodyModel carry no body-model data
    assert body.state_dict() == {}
    owner = nn.Module()
    owner.head, owner.body = nn.Linear(2, 2), body
    assert sorted(owner.state_dict()) == ["head.bias", "head.weight"]


@pytest.mark.parametrize("gender", ["neutral", "female"])
def test_bending_the_elbow_moves_the_wrist_by_forward_kinematics(body: BodyModel, gender: str) -> None:
    betas = torch.zeros(1, 10) if gender == "neutral" else torch.tensor([[1.5, -1.0] + [0.5] * 8])
    rest = _rest_joints(body, gender, betas)[0]
    axis_angle = torch.zeros(1, 24, 3)
    axis_angle[0, LEFT_ELBOW] = torch.tensor([0.0, math.pi / 2, 0.0])  # 90 degrees about y
    rotmats = axis_angle_to_rotmat(axis_angle)
    code = torch.tensor([{"neutral": 0, "female": 2}[gender]])
    with torch.no_grad():
        out = body(rotmats, betas, gender=code)
        still = body(torch.eye(3).expand(1, 24, 3, 3), betas, gender=code)
    r = rotmats[0, LEFT_ELBOW]
    elbow = rest[LEFT_ELBOW]
    for joint in (LEFT_WRIST, LEFT_HAND):
        expected = elbow + r @ (rest[joint] - elbow)
        torch.testing.assert_close(out.joints[0, joint], expected, atol=1e-5, rtol=0)
    moved = (out.joints[0, LEFT_WRIST] - rest[LEFT_WRIST]).norm()
    assert moved > 0.3  # a forearm of about 0.24 m swung through 90 degrees
    for joint in (LEFT_ELBOW, LEFT_SHOULDER, RIGHT_WRIST):
        torch.testing.assert_close(out.joints[0, joint], rest[joint], atol=1e-5, rtol=0)
    # vertices skinned only to the hand turn rigidly about the elbow as well
    weights = body.smpl[gender].lbs_weights
    hand = (weights[:, LEFT_WRIST] + weights[:, LEFT_HAND]) > 0.999
    assert hand.sum() > 100
    expected = elbow + (still.vertices[0, hand] - elbow) @ r.T
    torch.testing.assert_close(out.vertices[0, hand], expected, atol=1e-5, rtol=0)


def test_global_orientation_turns_the_body_about_the_root(body: BodyModel) -> None:
    rotmats = torch.eye(3).repeat(1, 24, 1, 1)
    turn = axis_angle_to_rotmat(torch.tensor([0.3, -1.1, 0.7]))
    rotmats[0, 0] = turn
    betas = torch.zeros(1, 10)
    with torch.no_grad():
        rest = body(torch.eye(3).expand(1, 24, 3, 3), betas)
        out = body(rotmats, betas)
    root = rest.joints[0, 0]
    torch.testing.assert_close(out.vertices[0], root + (rest.vertices[0] - root) @ turn.T, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.joints_h36m[0], root + (rest.joints_h36m[0] - root) @ turn.T, atol=1e-5, rtol=0)


def test_gendered_forward_equals_separate_forwards(body: BodyModel) -> None:
    rotmats, betas = _random_batch(5, seed=1)
    gender = torch.tensor([2, 0, 1, 1, 2])
    with torch.no_grad():
        mixed = body(rotmats, betas, gender=gender)
        for code, name in enumerate(("neutral", "male", "female")):
            idx = (gender == code).nonzero().squeeze(1)
            alone = body.smpl[name](betas=betas[idx], global_orient=rotmats[idx, :1], body_pose=rotmats[idx, 1:],
                                    pose2rot=False)
            torch.testing.assert_close(mixed.vertices[idx], alone.vertices, atol=1e-6, rtol=0)
            torch.testing.assert_close(mixed.joints[idx], alone.joints[:, :24], atol=1e-6, rtol=0)
        neutral = body(rotmats, betas)
    assert (mixed.vertices[0] - neutral.vertices[0]).abs().max() > 0.01  # female differs from neutral
    torch.testing.assert_close(mixed.vertices[1], neutral.vertices[1], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="gender codes"):
        body(rotmats, betas, gender=torch.tensor([0, 1, 2, 3, 0]))


def test_translation_and_gradients(body: BodyModel) -> None:
    rotmats, betas = _random_batch(2, seed=2)
    rotmats.requires_grad_(True)
    betas.requires_grad_(True)
    transl = torch.tensor([[0.1, -0.2, 3.0], [0.0, 0.5, 5.0]])
    out = body(rotmats, betas, transl=transl)
    plain = body(rotmats, betas)
    for a, b in ((out.vertices, plain.vertices), (out.joints_h36m, plain.joints_h36m),
                 (out.keypoints29, plain.keypoints29), (out.joints_extra, plain.joints_extra)):
        torch.testing.assert_close(a - b, transl[:, None].expand_as(a), atol=1e-5, rtol=0)
    out.vertices.square().sum().backward()
    assert torch.isfinite(rotmats.grad).all() and rotmats.grad.abs().sum() > 0
    assert torch.isfinite(betas.grad).all() and betas.grad.abs().sum() > 0


def test_keypoints_by_convention(body: BodyModel) -> None:
    rotmats, betas = _random_batch(2, seed=3)
    with torch.no_grad():
        out = body(rotmats, betas)
    coco, present = out.keypoints("coco17")
    assert coco.shape == (2, 17, 3) and bool(present.all())
    torch.testing.assert_close(coco[:, 0], out.vertices[:, FACE_VERTEX_IDS[0]])  # nose = vertex 332
    torch.testing.assert_close(coco[:, 11], out.joints[:, 1])  # left_hip = SMPL joint 1
    h36m, present = out.keypoints("h36m17")
    assert h36m is out.joints_h36m and bool(present.all())
    spin, present = out.keypoints("spin24")
    assert bool(present.all())
    torch.testing.assert_close(spin[:, 13], out.joints_extra[:, 3])  # head_top from the extra regressor
    lsp, present = out.keypoints("lsp14")
    assert bool(present.all())
    torch.testing.assert_close(lsp[:, 12], out.joints_extra[:, 2])  # neck (LSP)
    torch.testing.assert_close(lsp[:, 13], out.joints_h36m[:, 10])  # head_h36m: same point in both files
    openpose, present = out.keypoints("openpose25")
    assert not bool(present[1]) and bool((openpose[:, 1] == 0).all())  # OpenPose's neck: not on SMPL
    with pytest.raises(ValueError, match="unknown keypoint convention"):
        out.keypoints("coco18")


# -- real-format folders --------------------------------------------------------------------------------
class _Ch:
    """A stand-in for ``chumpy.ch.Ch``: pickles its array in the state under ``'x'``."""

    def __init__(self, x: np.ndarray):
        self.x = np.asarray(x, dtype=np.float64)
        self._dirty_vars = set()


def _write_chumpy_style(path: Path, model: dict) -> None:
    """Write ``model`` as the official files are: shapedirs a chumpy array, J_regressor sparse."""
    ch_class = type("Ch", (_Ch,), {"__module__": "chumpy.ch"})
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    ch.Ch, chumpy.ch = ch_class, ch
    sys.modules.update({"chumpy": chumpy, "chumpy.ch": ch})
    try:
        data = dict(model, shapedirs=ch_class(model["shapedirs"]), v_template=ch_class(model["v_template"]))
        path.write_bytes(pickle.dumps(data, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, body: BodyModel) -> dict[str, Path]:
    """The synthetic model as cleaned .pkl (itself), as .npz, and as chumpy-style official .pkl."""
    src = ensure_synthetic_body_model()
    root = tmp_path_factory.mktemp("formats")
    out = {"pkl": src}
    for kind in ("npz", "chumpy", "v1.1"):
        folder = root / kind
        folder.mkdir()
        for name in SHARED_FILES:
            shutil.copy(src / name, folder / name)
        for name in MODEL_FILES:
            model = safe_load_pickle(src / name)
            if kind == "chumpy":
                _write_chumpy_style(folder / name, model)
                continue
            arrays = {k: (v.toarray() if hasattr(v, "toarray") else v) for k, v in model.items()}
            if kind == "v1.1":  # SMPL v1.1 ships 300 shape directions; the first 10 are used
                extra = np.random.default_rng(0).normal(size=(6890, 3, 290))
                arrays["shapedirs"] = np.concatenate([arrays["shapedirs"], extra], axis=2)
            np.savez(folder / name.replace(".pkl", ".npz"), **arrays)
        out[kind] = folder
    return out


def test_npz_cleaned_and_chumpy_pickles_give_identical_bodies(folders: dict[str, Path]) -> None:
    rotmats, betas = _random_batch(4, seed=4)
    gender = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        outputs = {kind: BodyModel(folder)(rotmats, betas, gender=gender) for kind, folder in folders.items()}
    reference = outputs.pop("pkl")
    for kind, out in outputs.items():
        for field in ("vertices", "joints", "joints_h36m", "joints_extra", "keypoints29"):
            assert torch.equal(getattr(out, field), getattr(reference, field)), (kind, field)


def test_missing_folder_lists_the_expected_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        resolve_body_model_dir(tmp_path / "nowhere")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and "paths.body_model_dir=null" in message
    for name in EXPECTED_FILES:
        assert name in message
    assert all(stem in message for stem in ("SMPL_NEUTRAL.pkl", "J_regressor_h36m.npy", "smpl_mean_params.npz"))


def test_incomplete_folder_names_what_is_missing(tmp_path: Path) -> None:
    src = ensure_synthetic_body_model()
    shutil.copy(src / "SMPL_NEUTRAL.pkl", tmp_path / "SMPL_NEUTRAL.pkl")
    shutil.copy(src / "J_regressor_h36m.npy", tmp_path / "J_regressor_h36m.npy")
    with pytest.raises(FileNotFoundError) as err:
        BodyModel(tmp_path)
    lacks = str(err.value).split("Expected files")[0]
    assert "SMPL_MALE.pkl" in lacks and "J_regressor_extra.npy" in lacks and "smpl_mean_params.npz" in lacks
    assert "SMPL_NEUTRAL" not in lacks and "J_regressor_h36m" not in lacks


def test_bad_model_file_names_file_and_key(tmp_path: Path) -> None:
    src = ensure_synthetic_body_model()
    for name in SHARED_FILES:
        shutil.copy(src / name, tmp_path / name)
    model = safe_load_pickle(src / "SMPL_NEUTRAL.pkl")
    arrays = {k: (v.toarray() if hasattr(v, "toarray") else v) for k, v in model.items() if k != "shapedirs"}
    for name in MODEL_FILES:
        np.savez(tmp_path / name.replace(".pkl", ".npz"), **arrays)
    with pytest.raises(BodyModelFileError, match=r"SMPL_NEUTRAL\.npz: no 'shapedirs'"):
        BodyModel(tmp_path)
