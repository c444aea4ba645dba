"""Predicted meshes land where the crop camera projects them."""

import numpy as np
import torch

from ochmr_lit.body import BodyModel
from ochmr_lit.geometry import perspective_projection, rot6d_to_rotmat, weak_perspective_to_translation
from ochmr_lit.models.hmr import load_mean_params
from ochmr_lit.vis.overlays import mesh_overlays


def test_mean_pose_mesh_covers_its_projected_pelvis_and_not_the_corners():
    body = BodyModel()
    mean = load_mean_params(body.model_dir / "smpl_mean_params.npz")
    rotmat = rot6d_to_rotmat(mean["pose"].view(1, 24, 6))
    out = body(rotmat, mean["shape"].view(1, 10))
    cam_t = weak_perspective_to_translation(mean["cam"].view(1, 3), 5000.0, 128.0)
    crops = np.zeros((1, 128, 128, 3), np.uint8)
    overlay = mesh_overlays(crops, out.vertices, cam_t, body.faces, focal_length=5000.0)
    pelvis = perspective_projection(out.joints[:, :1], cam_t, 5000.0, torch.full((1, 2), 64.0))[0, 0]
    x, y = [int(round(v)) for v in pelvis.tolist()]
    assert overlay[0, y, x].max() > 50  # mesh drawn at its own projected pelvis
    assert overlay[0, 0, 0].max() == 0 and overlay[0, -1, -1].max() == 0  # background untouched at the corners
    covered = (overlay[0].max(axis=-1) > 0).mean()
    assert 0.05 < covered < 0.6  # a person-sized silhouette in a 1.2x box crop
