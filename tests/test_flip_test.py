"""Flip test: the mirrored crop's SMPL prediction, mirrored back and averaged with the crop's own."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY_OVERRIDES, compose_evaluate, save_module_checkpoint

from ochmr_lit.body import BodyModel
from ochmr_lit.config_checks import check_regressor_model
from ochmr_lit.data.transforms import flip_smpl_pose
from ochmr_lit.errors import ConfigError
from ochmr_lit.evaluate import evaluate
from ochmr_lit.geometry import axis_angle_to_rotmat, perspective_projection, weak_perspective_to_translation
from ochmr_lit.lit import MeshRegressorModule
from ochmr_lit.models.flip_test import flip_test_average, mean_rotation, mirror_camera, mirror_rotmats

TINY = {"backbone": "resnet18", "crop_size": 64, "channels_last": False, "num_vis": 0}


def _random_rotmats(batch: int, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    pose = np.random.default_rng(seed).normal(0.0, 0.6, (batch, 72))
    return pose, axis_angle_to_rotmat(torch.from_numpy(pose).reshape(batch, 24, 3))


def test_mirrored_rotations_are_the_training_flip_of_the_pose_and_an_involution():
    pose, rotmat = _random_rotmats(5, seed=0)
    expected = axis_angle_to_rotmat(torch.from_numpy(np.stack([flip_smpl_pose(p) for p in pose])).reshape(5, 24, 3))
    mirrored = mirror_rotmats(rotmat)
    torch.testing.assert_close(mirrored, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(mirror_rotmats(mirrored), rotmat, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"expects \(B, 24, 3, 3\) SMPL rotations, got \(5, 23, 3, 3\)"):
        mirror_rotmats(rotmat[:, 1:])


def test_the_mirrored_pose_gives_the_mirrored_body():
    body = BodyModel(None)
    _, rotmat = _random_rotmats(3, seed=1)
    rotmat = rotmat.float()
    betas = torch.zeros(3, 10)
    joints, _ = body(rotmat, betas).keypoints("coco17")
    joints_m, _ = body(mirror_rotmats(rotmat), betas).keypoints("coco17")
    perm = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]  # COCO-17 left <-> right
    expected = joints[:, perm] * torch.tensor([-1.0, 1.0, 1.0])
    # the body's template is mirror-symmetric to a millimetre: the mirrored pose is the mirrored body
    assert float((joints_m - expected).norm(dim=-1).max()) < 2e-3


def test_mean_rotation_is_halfway_and_a_rotation():
    def about_z(angle: float) -> torch.Tensor:
        c, s = math.cos(angle), math.sin(angle)
        return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)

    torch.testing.assert_close(mean_rotation(about_z(0.2), about_z(1.0)), about_z(0.6), rtol=0, atol=1e-12)
    _, a = _random_rotmats(4, seed=2)
    _, b = _random_rotmats(4, seed=3)
    mean = mean_rotation(a, b)
    torch.testing.assert_close(mean @ mean.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand_as(mean),
                               rtol=0, atol=1e-12)
    assert bool((torch.linalg.det(mean) > 0).all())
    torch.testing.assert_close(mean_rotation(a, a), a, rtol=0, atol=1e-12)
    torch.testing.assert_close(mean_rotation(a, b), mean_rotation(b, a), rtol=0, atol=1e-12)


@pytest.mark.parametrize("crop_size", [64, 96])
def test_the_mirrored_camera_puts_each_point_at_s_minus_1_minus_x(crop_size):
    """A point at the root's depth seen at x in the mirrored crop lies at S - 1 - x in the crop."""
    focal = 5000.0 * crop_size / 224.0
    cam_m = torch.tensor([[0.9, 0.05, -0.1], [1.3, -0.2, 0.15]], dtype=torch.float64)
    points = torch.tensor([[[0.3, -0.4, 0.0], [-0.2, 0.5, 0.0], [0.0, 0.0, 0.0]]], dtype=torch.float64).expand(2, 3, 3)
    centre = torch.full((2, 2), crop_size / 2.0, dtype=torch.float64)
    seen_m = perspective_projection(points * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64),
                                    weak_perspective_to_translation(cam_m, focal, crop_size), focal, centre)
    seen = perspective_projection(points, weak_perspective_to_translation(mirror_camera(cam_m, crop_size), focal,
                                                                          crop_size), focal, centre)
    torch.testing.assert_close(seen[..., 0], crop_size - 1.0 - seen_m[..., 0], rtol=0, atol=1e-6)
    torch.testing.assert_close(seen[..., 1], seen_m[..., 1], rtol=0, atol=1e-9)


def test_an_equivariant_prediction_is_kept_and_the_average_is_symmetric():
    _, rotmat = _random_rotmats(2, seed=4)
    betas = torch.randn(2, 10, dtype=torch.float64)
    cam = torch.tensor([[0.9, 0.1, 0.0], [1.1, -0.1, 0.2]], dtype=torch.float64)
    cam_m = torch.stack([cam[:, 0], -cam[:, 1] - 2.0 / (64 * cam[:, 0]), cam[:, 2]], dim=-1)
    # a model that predicts exactly the mirror for the mirrored crop: the flip test returns its prediction
    averaged = flip_test_average(rotmat, betas, cam, mirror_rotmats(rotmat), betas, cam_m, 64)
    for got, want in zip(averaged, (rotmat, betas, cam), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def _ochmr(flip_test: bool) -> MeshRegressorModule:
    torch.manual_seed(0)
    return MeshRegressorModule(**TINY, conorm_depths=[2], hidden_channels=16, context_source="gt",
                               flip_test=flip_test).eval()


def test_the_module_averages_with_the_mirrored_crop_and_its_mirrored_maps():
    generator = torch.Generator().manual_seed(1)
    batch = {"image": torch.randn(3, 3, 64, 64, generator=generator),
             "centermaps": torch.rand(3, 2, 16, 16, generator=generator)}
    plain, flipping = _ochmr(False), _ochmr(True)
    with torch.no_grad():
        own = plain.predict_batch(batch)
        mirrored = plain.predict_batch({"image": batch["image"].flip(-1), "centermaps": batch["centermaps"].flip(-1)})
        both = flipping.predict_batch(batch)
        both_of_mirror = flipping.predict_batch({"image": batch["image"].flip(-1),
                                                 "centermaps": batch["centermaps"].flip(-1)})
    rotmat, betas, cam = flip_test_average(own["rotmat"], own["betas"], own["cam"], mirrored["rotmat"],
                                           mirrored["betas"], mirrored["cam"], 64)
    torch.testing.assert_close(both["rotmat"], rotmat, rtol=0, atol=1e-6)
    torch.testing.assert_close(both["betas"], betas, rtol=0, atol=1e-6)
    torch.testing.assert_close(both["cam"], cam, rtol=0, atol=1e-6)
    # the flip-tested pose of the mirrored crop is the mirror of the crop's (the average is equivariant)
    torch.testing.assert_close(both_of_mirror["rotmat"], mirror_rotmats(both["rotmat"]), rtol=0, atol=1e-5)
    assert not torch.allclose(both["rotmat"], own["rotmat"], atol=1e-4)  # an untrained model is not symmetric
    calls = []
    handle = flipping.model.register_forward_pre_hook(lambda _, args: calls.append(flipping.training))
    with torch.no_grad():
        flipping.predict_batch(batch)
        flipping.train()  # training never flips: one pass of the regressor
        flipping.predict_batch(batch)
    handle.remove()
    assert calls == [False, False, True]


def test_evaluate_refuses_a_flip_test_that_is_not_a_boolean(tmp_path):
    checkpoint = save_module_checkpoint(_ochmr(False), tmp_path)
    cfg = compose_evaluate(["experiment=synthcrowd", f"ckpt_path={checkpoint}", f"run_dir={tmp_path}",
                            "flip_test=sometimes"])
    with pytest.raises(ConfigError, match=r"^flip_test='sometimes': use true \(average each prediction"):
        evaluate(cfg)


def test_a_training_flip_test_that_is_not_a_boolean_is_refused_before_work_starts():
    check_regressor_model({"backbone": "resnet18", "flip_test": True})
    with pytest.raises(ConfigError, match=r"^model.flip_test='yes': use true \(validate and test each crop"):
        check_regressor_model({"backbone": "resnet18", "flip_test": "yes"})


@pytest.mark.slow
def test_evaluate_flip_test_is_recorded_and_changes_the_scores(tmp_path, tiny_synthcrowd):
    checkpoint = save_module_checkpoint(_ochmr(False), tmp_path)
    scores = {}
    for flip in ("false", "true"):
        run_dir = tmp_path / f"eval_{flip}"
        cfg = compose_evaluate(["experiment=synthcrowd", f"ckpt_path={checkpoint}", f"run_dir={run_dir}",
                                f"++data.root={tiny_synthcrowd}", "logger=csv", f"flip_test={flip}",
                                *TINY_OVERRIDES])
        evaluate(cfg)
        scores[flip] = json.loads((run_dir / "results" / "metrics.json").read_text())
    assert scores["false"]["protocol"]["flip_test"] is False and scores["true"]["protocol"]["flip_test"] is True
    assert scores["true"]["metrics"]["mpjpe"] != scores["false"]["metrics"]["mpjpe"]
    # the references read no image: the flip test leaves them as they are
    assert scores["true"]["references"]["oracle"]["mpjpe"] == pytest.approx(
        scores["false"]["references"]["oracle"]["mpjpe"])
