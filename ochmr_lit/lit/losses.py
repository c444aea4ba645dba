"""SPIN's training losses for the mesh regressor.

Default weights are SPIN's (``utils/train_options.py`` and ``train/trainer.py`` of its code release, see
:class:`LossWeights`); all are configurable under ``model.loss_weights``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from ochmr_lit.errors import ConfigError
from ochmr_lit.setting_types import is_number

PELVIS_FROM_HIPS = (11, 12)  # COCO-17 left/right hip: the pelvis used to centre 3D keypoints


@dataclass
class LossWeights:
    """SPIN defaults: 2D 5.0, 3D 5.0, pose 1.0, betas 0.001, vertices 0, camera regulariser 1, total x 60.

    ``keypoints_3d_body`` (not in SPIN, 0 there) weighs :func:`keypoint_3d_body_loss`, the 3D keypoints in each
    body's own root frame: the articulation alone, whatever the global orientation. ``keypoint_heatmaps`` (not
    in SPIN, 0 there) weighs the auxiliary heatmap head's cross-entropy
    (:func:`~ochmr_lit.models.keypoint_heatmaps.keypoint_heatmap_loss`); it needs ``model.heatmap_keypoints``.
    """

    keypoints_2d: float = 5.0
    keypoints_3d: float = 5.0
    keypoints_3d_body: float = 0.0
    keypoint_heatmaps: float = 0.0
    smpl_pose: float = 1.0
    smpl_betas: float = 0.001
    vertices: float = 0.0
    camera: float = 1.0
    total_scale: float = 60.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not is_number(value) or not value >= 0:
                raise ConfigError(f"loss_weights.{field.name}={value!r}: a loss weight is a number >= 0 (0 = off); "
                                  "a negative one would train the model to make that error larger")


def keypoint_2d_loss(pred: torch.Tensor, target: torch.Tensor, crop_size: int,
                     limit: float | None = None) -> torch.Tensor:
    """Confidence-weighted MSE of 2D keypoints normalised to [-1, 1] in the crop (SPIN).

    Args:
        pred: (B, J, 2) crop px. target: (B, J, 3) crop px + confidence.
        limit: target keypoints with a normalised coordinate beyond +-limit (1.5: a quarter crop outside
            the crop) give no 2D supervision; None keeps them all (SPIN). Labelled keypoints of an occluded
            person can lie crops away from a box drawn round its visible part (up to 12 normalised units
            in SynthCrowd's crowds): a handful of them otherwise dominate the loss and its gradient.
    """
    scale = 2.0 / crop_size
    target_xy = target[..., :2] * scale - 1.0
    conf = target[..., 2:]
    if limit is not None:
        conf = conf * (target_xy.abs().amax(-1, keepdim=True) <= limit).to(conf.dtype)
    diff = (pred * scale - 1.0) - target_xy
    return (conf * diff.pow(2)).mean()


def keypoint_3d_loss(pred: torch.Tensor, target: torch.Tensor, has_3d: torch.Tensor) -> torch.Tensor:
    """Confidence-weighted MSE of pelvis-centred 3D keypoints (metres), samples without 3D masked.

    Args:
        pred: (B, J, 3). target: (B, J, 4) with confidence. has_3d: (B,) bool.
    """
    if not bool(has_3d.any()):
        return pred.sum() * 0.0
    pred, target = pred[has_3d], target[has_3d]
    conf = target[..., 3:]
    pelvis_t = target[:, PELVIS_FROM_HIPS, :3].mean(dim=1, keepdim=True)
    pelvis_p = pred[:, PELVIS_FROM_HIPS].mean(dim=1, keepdim=True)
    diff = (pred - pelvis_p) - (target[..., :3] - pelvis_t)
    return (conf * diff.pow(2)).mean()


def keypoint_3d_body_loss(pred: torch.Tensor, pred_orient: torch.Tensor, target: torch.Tensor,
                          target_orient: torch.Tensor, has_3d: torch.Tensor) -> torch.Tensor:
    """Confidence-weighted MSE of pelvis-centred 3D keypoints, each set in its own body's root frame.

    The camera-frame loss (:func:`keypoint_3d_loss`) mixes the articulation with the global orientation: where the
    orientation is uncertain (a person seen from the back or the front looks alike in a small crop), its
    minimum lies at a body drawn in towards the pelvis, a crouch that is wrong for every orientation. Rotating
    the prediction by its own inverse orientation and the target by the true one leaves the articulation only;
    the orientation keeps its own supervision (SMPL pose loss on joint 0, camera-frame 3D and 2D keypoints).

    Args:
        pred: (B, J, 3) metres. pred_orient: (B, 3, 3) predicted global orientation.
        target: (B, J, 4) metres + confidence. target_orient: (B, 3, 3) true global orientation.
        has_3d: (B,) bool.
    """
    if not bool(has_3d.any()):
        return pred.sum() * 0.0
    pred, target = pred[has_3d], target[has_3d]
    pred_orient, target_orient = pred_orient[has_3d], target_orient[has_3d]
    conf = target[..., 3:]
    pred_c = pred - pred[:, PELVIS_FROM_HIPS].mean(dim=1, keepdim=True)
    target_c = target[..., :3] - target[:, PELVIS_FROM_HIPS, :3].mean(dim=1, keepdim=True)
    # row vectors: x_body = R^T x_camera  <=>  x_body^T = x_camera^T R
    diff = pred_c @ pred_orient - target_c @ target_orient.to(target_c.dtype)
    return (conf * diff.pow(2)).mean()


def smpl_losses(pred_rotmat: torch.Tensor, pred_betas: torch.Tensor, gt_rotmat: torch.Tensor,
                gt_betas: torch.Tensor, has_smpl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE on rotation matrices (B, 24, 3, 3) and on betas (B, 10), over samples with SMPL labels."""
    if not bool(has_smpl.any()):
        zero = pred_rotmat.sum() * 0.0
        return zero, zero
    pose = (pred_rotmat[has_smpl] - gt_rotmat[has_smpl]).pow(2).mean()
    betas = (pred_betas[has_smpl] - gt_betas[has_smpl]).pow(2).mean()
    return pose, betas


def vertex_loss(pred: torch.Tensor, target: torch.Tensor, has_smpl: torch.Tensor) -> torch.Tensor:
    """L1 on pelvis-free vertices (B, V, 3) metres over samples with SMPL labels (SPIN's shape loss)."""
    if not bool(has_smpl.any()):
        return pred.sum() * 0.0
    return (pred[has_smpl] - target[has_smpl]).abs().mean()


#: Below this weak-perspective scale the camera penalty continues as its tangent line (see camera_regulariser).
CAMERA_PENALTY_KNEE = -0.25


def camera_regulariser(cam: torch.Tensor) -> torch.Tensor:
    """SPIN's ``exp(-10 s)^2`` penalty on a weak-perspective scale s that collapses towards 0 (B, 3) -> ().

    Equal to SPIN's for ``s >= -0.25``; below, it continues as its tangent line there. SPIN's exponential
    overflows to inf once a scale passes -4.4, and every later step is then skipped as non-finite: a run that
    once flipped its camera could never recover. The line keeps pushing the scale back, with a finite loss.
    """
    s = cam[:, 0].float()
    knee = CAMERA_PENALTY_KNEE
    at_knee = math.exp(-20.0 * knee)
    penalty = torch.where(s >= knee, torch.exp(-20.0 * s.clamp(min=knee)), at_knee * (1.0 - 20.0 * (s - knee)))
    return penalty.mean()
