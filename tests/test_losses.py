"""SPIN's losses: values on hand-computed cases, and the 2D keypoint limit."""

import torch

from ochmr_lit.geometry import axis_angle_to_rotmat
from ochmr_lit.lit.losses import camera_regulariser, keypoint_2d_loss, keypoint_3d_body_loss, keypoint_3d_loss


def test_keypoint_2d_loss_is_spin_normalised_mse():
    crop = 64
    target = torch.tensor([[[32.0, 32.0, 1.0], [0.0, 64.0, 1.0], [10.0, 10.0, 0.0]]])
    pred = torch.tensor([[[48.0, 32.0], [0.0, 32.0], [60.0, 60.0]]])  # errors 0.5, 1.0 (normalised), unlabelled
    expected = (0.5**2 + 0.0 + 0.0 + 1.0**2) / 6  # mean over B x J x 2 coordinates
    assert torch.isclose(keypoint_2d_loss(pred, target, crop), torch.tensor(expected))
    assert torch.isclose(keypoint_2d_loss(pred, target, crop, limit=1.5), torch.tensor(expected))


def test_keypoint_2d_limit_drops_only_targets_far_outside_the_crop():
    crop = 64
    inside = torch.tensor([[16.0, 48.0, 1.0]])
    edge = torch.tensor([[64.0 + 16.0, 32.0, 1.0]])  # normalised x = 1.5: kept
    far = torch.tensor([[32.0, 32.0 + 6 * 64.0, 1.0]])  # six crops below: dropped
    target = torch.cat([inside, edge, far])[None]
    pred = torch.zeros(1, 3, 2)
    kept = keypoint_2d_loss(pred, target, crop, limit=1.5)
    manual = keypoint_2d_loss(pred[:, :2], target[:, :2], crop) * 2 / 3  # same sum, mean over 3 joints
    assert torch.isclose(kept, manual)
    assert keypoint_2d_loss(pred, target, crop) > 10 * kept  # the far keypoint dominates SPIN's loss
    # no gradient reaches the prediction of the dropped keypoint
    pred.requires_grad_(True)
    keypoint_2d_loss(pred, target, crop, limit=1.5).backward()
    assert pred.grad[0, 2].abs().sum() == 0 and pred.grad[0, :2].abs().sum() > 0


def test_keypoint_3d_loss_is_pelvis_centred_and_masks_samples_without_3d():
    target = torch.zeros(2, 17, 4)
    target[..., 3] = 1.0
    pred = torch.zeros(2, 17, 3)
    pred[0] += 0.7  # a pure translation: no loss after centring on the pelvis
    pred[1, 0, 0] = 0.3
    has_3d = torch.tensor([True, False])
    assert keypoint_3d_loss(pred, target, has_3d) == 0
    assert torch.isclose(keypoint_3d_loss(pred, target, torch.tensor([False, True])),
                         torch.tensor(0.3**2 / (17 * 3)))


def test_camera_regulariser_penalises_a_collapsing_scale():
    cam = torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.1, -0.1]])
    assert torch.isclose(camera_regulariser(cam), torch.tensor((1.0 + torch.exp(torch.tensor(-9.0)) ** 2) / 2))


def test_body_frame_3d_loss_sees_the_articulation_only():
    torch.manual_seed(0)
    body = torch.randn(3, 17, 3) * 0.3  # joints in each body's root frame, metres
    orient = axis_angle_to_rotmat(torch.randn(3, 3))
    other = axis_angle_to_rotmat(torch.randn(3, 3))
    shift = torch.randn(3, 1, 3)
    conf = torch.ones(3, 17, 1)
    target = torch.cat([body @ orient.transpose(1, 2) + shift, conf], dim=-1)  # camera frame: R x + t
    has = torch.ones(3, dtype=torch.bool)
    # the same articulation under another orientation and translation: no body-frame loss, a camera-frame one
    turned = body @ other.transpose(1, 2) - shift
    assert keypoint_3d_body_loss(turned, other, target, orient, has) < 1e-10
    assert keypoint_3d_loss(turned, target, has) > 1e-2
    # another articulation under the true orientation: both losses see it, with the same value
    bent = (body + 0.05) @ orient.transpose(1, 2)
    bent[:, :3] += 0.1 * torch.randn(3, 3, 3)
    assert torch.isclose(keypoint_3d_body_loss(bent, orient, target, orient, has),
                         keypoint_3d_loss(bent, target, has), rtol=1e-5)
    assert keypoint_3d_body_loss(bent, orient, target, orient, ~has) == 0


def test_camera_regulariser_is_spin_above_the_knee_and_finite_below():
    scales = torch.tensor([2.0, 0.9, 0.1, 0.0, -0.2])
    cam = torch.stack([scales, torch.zeros(5), torch.zeros(5)], dim=1)
    spin = torch.exp(-10.0 * scales).pow(2)
    for i in range(5):
        assert torch.isclose(camera_regulariser(cam[i:i + 1]), spin[i], rtol=1e-6)
    flipped = torch.tensor([[-50.0, 0.0, 0.0]], requires_grad=True)
    value = camera_regulariser(flipped)
    value.backward()
    assert torch.isfinite(value) and torch.isinf(torch.exp(-10.0 * flipped[0, 0].detach()).pow(2))
    assert flipped.grad[0, 0] < 0  # still pushes the scale back up
    # continuous (and with a continuous slope) at the knee
    below, above = (camera_regulariser(torch.tensor([[-0.25 + d, 0.0, 0.0]])) for d in (-1e-4, 1e-4))
    assert torch.isclose(below, above, rtol=1e-2)
