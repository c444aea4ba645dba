"""The full-image camera of ``predict``: default focal length, the crop camera's focal length, depths of people."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ochmr_lit.geometry import (
    apply_affine,
    axis_angle_to_rotmat,
    box_to_center_size,
    crop_affine,
    perspective_projection,
    weak_perspective_to_translation,
)
from ochmr_lit.inference.camera import (
    crop_focal_length,
    crop_points_to_image,
    crop_to_image_camera,
    image_focal_length,
)

#: The predictor's crop: side = 1.2 x the longer box side (``data.scale_factor``).
SCALE_FACTOR = 1.2


def test_default_focal_length_is_the_image_diagonal_and_can_be_set():
    assert image_focal_length((640, 480)) == 800.0
    assert image_focal_length((1920, 1080)) == pytest.approx(math.hypot(1920, 1080))
    assert image_focal_length((640, 480), 1000.0) == 1000.0
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="focal_length=.*positive number of pixels"):
            image_focal_length((640, 480), bad)

    # through the crop -> image conversion: depth scales with F, the position in the image plane does not move
    cam = torch.tensor([[0.9, 0.05, -0.1], [0.6, -0.2, 0.3]], dtype=torch.float64)
    boxes = torch.tensor([[100.0, 60.0, 120.0, 300.0], [400.0, 200.0, 80.0, 150.0]], dtype=torch.float64)
    center, side = box_to_center_size(boxes, SCALE_FACTOR)
    affine = crop_affine(center, side, 64)
    F, principal, default = crop_to_image_camera(cam, affine, (640, 480), 64)
    assert F == 800.0 and principal.tolist() == [320.0, 240.0]
    torch.testing.assert_close(default[:, 2], 2.0 * 800.0 / (cam[:, 0] * side))
    F_set, _, given = crop_to_image_camera(cam, affine, (640, 480), 64, focal_length=1000.0)
    assert F_set == 1000.0
    torch.testing.assert_close(given[:, 2], default[:, 2] * 1000.0 / 800.0)
    torch.testing.assert_close(given[:, :2], default[:, :2])
    with pytest.raises(TypeError):  # the former positional (..., crop focal, crop size) call is refused, not misread
        crop_to_image_camera(cam, affine, (640, 480), 5000.0, 64)


def test_crop_focal_length_keeps_spins_field_of_view_at_every_crop_size():
    assert crop_focal_length(224) == 5000.0
    assert crop_focal_length(64) == pytest.approx(5000.0 * 64 / 224)  # 1428.57 px
    assert crop_focal_length(256) == pytest.approx(5000.0 * 256 / 224)
    assert crop_focal_length(64, 5000.0) == 5000.0  # a model's own focal length wins
    assert crop_focal_length(64, focal_length_224=2240.0) == pytest.approx(640.0)
    with pytest.raises(ValueError, match="focal_length=0.0"):
        crop_focal_length(64, 0.0)
    fov = {size: 2 * math.atan(size / 2 / crop_focal_length(size)) for size in (64, 128, 224, 256)}
    assert all(v == pytest.approx(fov[224]) for v in fov.values())  # 2.57 deg
    # so one weak-perspective camera means one perspective camera whatever the crop size
    cam = torch.tensor([[0.8, 0.1, -0.05]], dtype=torch.float64)
    depths = [weak_perspective_to_translation(cam, crop_focal_length(size), float(size))[0, 2].item()
              for size in (64, 128, 224)]
    assert depths == pytest.approx([2 * 5000.0 / (224 * 0.8)] * 3)


def _synthetic_person(yaw_deg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertices (V, 3) and COCO-17 keypoints (17, 3), metres, of the synthetic body upright in the camera frame
    (y down), turned by ``yaw_deg`` about the vertical."""
    from ochmr_lit.body import BodyModel

    body = BodyModel(None).double()
    upright = axis_angle_to_rotmat(torch.tensor([[math.pi, 0.0, 0.0]], dtype=torch.float64))
    turn = axis_angle_to_rotmat(torch.tensor([[0.0, math.radians(yaw_deg), 0.0]], dtype=torch.float64))
    rotmat = torch.eye(3, dtype=torch.float64).repeat(1, 24, 1, 1)
    rotmat[:, 0] = upright @ turn
    with torch.no_grad():
        out = body(rotmat, torch.zeros(1, 10, dtype=torch.float64))
    return out.vertices[0], out.keypoints("coco17")[0][0]


def _fit_weak_perspective(keypoints_3d: torch.Tensor, keypoints_crop: torch.Tensor, crop_size: int) -> torch.Tensor:
    """(1, 3) ``[s, tx, ty]``: the least-squares weak-perspective camera of 2D keypoints in a crop (what the 2D
    loss drives a regressor towards): ``u = s (X_xy + [tx, ty])`` in normalised crop coordinates."""
    u = keypoints_crop * 2.0 / crop_size - 1.0
    n = len(keypoints_3d)
    design = torch.zeros(2 * n, 3, dtype=torch.float64)
    design[0::2, 0], design[0::2, 1] = keypoints_3d[:, 0], 1.0
    design[1::2, 0], design[1::2, 2] = keypoints_3d[:, 1], 1.0
    s, a, b = torch.linalg.lstsq(design, u.reshape(-1, 1)).solution[:, 0]
    return torch.stack([s, a / s, b / s])[None]


@pytest.mark.parametrize(("translation", "yaw_deg"), [
    ((0.3, -0.1, 6.0), 0.0), ((0.3, -0.1, 6.0), 40.0), ((2.0, 0.5, 12.0), 40.0), ((-0.6, 0.3, 4.0), 0.0),
    ((-1.0, 0.4, 3.0), 40.0)])
@pytest.mark.parametrize("image_size", [(640, 480), (500, 500)])
def test_a_synthetic_person_comes_back_at_its_depth(translation, yaw_deg, image_size):
    """A body seen by a camera of focal length the image diagonal: its box, the predictor's crop of it and the
    weak-perspective camera fitted to its keypoints in that crop give back its translation through the
    crop -> image conversion of ``predict``: depth within 5 %, x and y within 5 cm, at any crop size."""
    width, height = image_size
    vertices, keypoints = _synthetic_person(yaw_deg)
    F = math.hypot(width, height)
    principal = torch.tensor([[width / 2.0, height / 2.0]], dtype=torch.float64)
    truth = torch.tensor([translation], dtype=torch.float64)
    uv = perspective_projection(vertices[None], truth, F, principal)[0]
    keypoints_2d = perspective_projection(keypoints[None], truth, F, principal)[0]
    box = torch.cat([uv.min(0).values, uv.max(0).values - uv.min(0).values])  # the person's box in the image
    center, side = box_to_center_size(box[None], SCALE_FACTOR)

    recovered = []
    for crop_size in (64, 224):
        affine = crop_affine(center, side, crop_size)
        cam = _fit_weak_perspective(keypoints, apply_affine(affine[0], keypoints_2d), crop_size)
        F_image, principal_image, transl = crop_to_image_camera(cam, affine, image_size, crop_size)
        assert F_image == pytest.approx(F) and principal_image.tolist() == principal[0].tolist()
        depth_error = abs(transl[0, 2].item() - translation[2]) / translation[2]
        assert depth_error < 0.05, (crop_size, transl.tolist())
        assert (transl[0, :2] - truth[0, :2]).abs().max().item() < 0.05, (crop_size, transl.tolist())
        # the crop camera's keypoints, mapped back to the image, and the image camera's projection of the body:
        # the same point at the body origin; near the true keypoints on average (a weak-perspective fit)
        crop_focal = crop_focal_length(crop_size)
        cam_t_crop = weak_perspective_to_translation(cam, crop_focal, float(crop_size))
        points = torch.cat([torch.zeros(1, 3, dtype=torch.float64), keypoints])[None]
        back = crop_points_to_image(points, cam_t_crop, crop_focal, crop_size, affine)[0]
        in_image = perspective_projection(points, transl, F_image, principal)[0]
        torch.testing.assert_close(back[0], in_image[0], rtol=0.0, atol=1e-6)
        assert (back[1:] - keypoints_2d).norm(dim=-1).mean().item() < 0.03 * side.item()
        recovered.append(transl)
    torch.testing.assert_close(recovered[0], recovered[1])  # the crop size plays no part

    # exact at the body origin: the crop camera that puts the origin where the image camera does, and spans a
    # metre there as it does, gives the translation back to rounding
    origin = F * truth[0, :2] / truth[0, 2] + principal[0]
    s = 2.0 * F / (truth[0, 2] * side[0])
    cam = torch.cat([s[None], 2.0 * (origin - center[0]) / (side[0] * s)])[None]
    _, _, exact = crop_to_image_camera(cam, crop_affine(center, side, 64), image_size, 64)
    torch.testing.assert_close(exact, truth, rtol=1e-9, atol=1e-9)


def test_writer_reports_both_cameras(tmp_path):
    """The JSON and npz of a hand-made prediction: cam_t, cam_crop and the image camera, named and in units."""
    from ochmr_lit.inference.boxes import ImageBoxes
    from ochmr_lit.inference.pipeline import ImagePrediction
    from ochmr_lit.inference.writers import write_json, write_npz

    n = 2
    boxes = ImageBoxes(image_path=tmp_path / "img.jpg", image_id=7, boxes=np.array([[10.0, 20, 100, 200]] * n),
                       scores=np.ones(n), centers=np.array([[60.0, 120.0]] * n), ann_ids=np.arange(n), source="gt")
    cam_t = np.array([[0.1, -0.2, 5.0], [-0.4, 0.1, 9.0]])
    pred = ImagePrediction(
        boxes=boxes, image=np.zeros((480, 640, 3), np.uint8), pose=np.zeros((n, 72)), betas=np.zeros((n, 10)),
        cam_crop=np.array([[0.9, 0.0, 0.1], [0.5, 0.2, 0.0]]), cam_t_crop=np.zeros((n, 3)), focal_length=800.0,
        principal_point=np.array([320.0, 240.0]), translation=cam_t, vertices=np.zeros((n, 6890, 3), np.float32),
        keypoints_3d=np.zeros((n, 17, 3)), keypoints_2d=np.zeros((n, 17, 3)), crop_affine=np.zeros((n, 2, 3)),
        context=None, crop_size=64, crop_focal_length=crop_focal_length(64))
    assert pred.cam_t is pred.translation and pred.focal_length_source == "image_diagonal"
    result = json.loads(write_json(pred, tmp_path / "img.json").read_text())
    assert result["camera"] == {"focal_length": 800.0, "principal_point": [320.0, 240.0],
                                "focal_length_source": "image_diagonal"}
    for k, person in enumerate(result["people"]):
        assert person["cam_t"] == person["camera"]["translation"] == cam_t[k].tolist()
        assert person["cam_crop"] == person["camera"]["crop_weak_perspective"] == pred.cam_crop[k].tolist()
        assert person["camera"]["crop_focal_length"] == pytest.approx(5000.0 * 64 / 224)
        assert person["camera"]["crop_size"] == 64
    npz = np.load(write_npz(pred, tmp_path / "img.npz"))
    np.testing.assert_array_equal(npz["cam_t"], cam_t)
    np.testing.assert_array_equal(npz["translation"], cam_t)
    assert float(npz["focal_length"]) == 800.0 and str(npz["focal_length_source"]) == "image_diagonal"
    assert float(npz["crop_focal_length"]) == pytest.approx(5000.0 * 64 / 224) and int(npz["crop_size"]) == 64
