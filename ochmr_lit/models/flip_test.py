"""Flip test: average a regressor's prediction for a crop with its prediction for the mirrored crop.

The evaluation-time counterpart of the training flip (:func:`ochmr_lit.data.transforms.flip_smpl_pose`): the
mirrored crop's SMPL parameters are mirrored back and averaged with the crop's own. HRNet's COCO protocol averages
heatmaps this way; for SMPL parameters the mean must stay a rotation, so each joint's two rotation matrices are
averaged and projected back onto SO(3) (the chordal mean), as the mean parameters are.

Conventions (those of :class:`~ochmr_lit.data.transforms.TopDownTransform`): the mirrored crop of side ``S`` holds
crop pixel ``x`` at ``S - 1 - x`` (``torch.flip`` of the image and, pixel-centre aligned, of its context maps);
a mirrored body has its left and right joints swapped and each rotation conjugated by ``diag(-1, 1, 1)``
(axis-angle ``(a_x, -a_y, -a_z)``).

Written here rather than taken from a library: SPIN, PARE and mmhuman3d have no SMPL flip test, and HRNet's
heatmap flip does not apply to rotations.
"""

from __future__ import annotations

import torch

from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.body.mean_params import project_to_rotation

#: Sign pattern of ``M R M`` with ``M = diag(-1, 1, 1)``: element (i, j) is multiplied by m_i m_j.
_MIRROR_SIGNS = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, 1.0], [-1.0, 1.0, 1.0]])


def mirror_rotmats(rotmat: torch.Tensor) -> torch.Tensor:
    """The SMPL rotations of the mirrored body: left/right joints swapped, each conjugated by ``diag(-1, 1, 1)``.

    Args:
        rotmat: ``(B, 24, 3, 3)`` joint rotations, global orientation first (camera frame).

    Returns:
        ``(B, 24, 3, 3)``; applying it twice gives ``rotmat`` back.
    """
    if rotmat.shape[-3:] != (24, 3, 3):
        raise ValueError(f"mirror_rotmats expects (B, 24, 3, 3) SMPL rotations, got {tuple(rotmat.shape)}")
    perm = torch.tensor(get_convention("smpl24").flip_perm, device=rotmat.device)
    return rotmat[..., perm, :, :] * _MIRROR_SIGNS.to(rotmat)


def mirror_camera(cam: torch.Tensor, crop_size: int) -> torch.Tensor:
    """The weak-perspective camera that shows the mirrored body where the mirrored crop's camera showed it.

    A body at crop x in the mirrored crop lies at ``S - 1 - x`` in the crop. Negating ``tx`` mirrors about the
    principal point ``S / 2`` (to ``S - x``); the remaining pixel is ``2 / (S s)`` in ``tx`` (exact at the root's
    depth, the weak-perspective approximation elsewhere).

    Args:
        cam: ``(B, 3)`` ``[s, tx, ty]`` of the mirrored crop; crop_size: ``S`` px.

    Returns:
        ``(B, 3)`` ``[s, -tx - 2 / (S s), ty]``.
    """
    s, tx, ty = cam.unbind(-1)
    return torch.stack([s, -tx - 2.0 / (crop_size * s + 1e-9), ty], dim=-1)


def mean_rotation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The chordal mean of two rotations: ``(a + b) / 2`` projected onto SO(3) (:func:`project_to_rotation`).

    Args:
        a, b: ``(..., 3, 3)`` rotation matrices.

    Returns:
        ``(..., 3, 3)``; equal to ``a`` when ``b == a``, and the rotation halfway between them otherwise.
    """
    return project_to_rotation((a + b).double()).to(a.dtype)


def flip_test_average(rotmat: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor, rotmat_mirrored: torch.Tensor,
                      betas_mirrored: torch.Tensor, cam_mirrored: torch.Tensor,
                      crop_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The flip-test prediction from a crop's parameters and those predicted for the mirrored crop.

    Args:
        rotmat: ``(B, 24, 3, 3)``; betas: ``(B, 10)``; cam: ``(B, 3)`` ``[s, tx, ty]``: the crop's prediction.
        rotmat_mirrored, betas_mirrored, cam_mirrored: the same for the mirrored crop (its own frame).
        crop_size: crop side ``S`` px.

    Returns:
        ``(rotmat (B, 24, 3, 3), betas (B, 10), cam (B, 3))``: per joint the chordal mean of the two rotations,
        the mean betas (SMPL's shape space is treated as mirror-symmetric, as the training flip does) and the mean
        camera.
    """
    rotmat_back = mirror_rotmats(rotmat_mirrored)
    cam_back = mirror_camera(cam_mirrored, crop_size)
    return mean_rotation(rotmat, rotmat_back), (betas + betas_mirrored) / 2.0, (cam + cam_back) / 2.0
