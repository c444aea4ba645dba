"""Predicted meshes rendered over the crops they were predicted from (validation media, figures)."""

from __future__ import annotations

import numpy as np
import torch

from ochmr_lit.vis.render import Mesh, MeshRenderer

#: Overlay colour of predicted meshes (light blue), RGB in [0, 1].
MESH_COLOR = (0.55, 0.75, 1.0)


def crop_intrinsics(focal_length: float, crop_size: int) -> np.ndarray:
    """(3, 3) pinhole intrinsics of the crop camera: focal ``focal_length`` px, centre at ``crop_size / 2``."""
    c = crop_size / 2.0
    return np.array([[focal_length, 0.0, c], [0.0, focal_length, c], [0.0, 0.0, 1.0]])


def mesh_overlays(crops: np.ndarray, vertices: torch.Tensor, cam_t: torch.Tensor, faces: torch.Tensor,
                  focal_length: float, alpha: float = 0.8, renderer: MeshRenderer | None = None) -> np.ndarray:
    """Each crop with its predicted mesh blended on top.

    Args:
        crops: (B, S, S, 3) uint8 RGB.
        vertices: (B, V, 3) metres in the body frame; cam_t: (B, 3) metres, the crop camera's translation.
        faces: (F, 3) vertex indices.
        focal_length: crop camera focal length in px.
        alpha: mesh opacity.
    Returns:
        (B, S, S, 3) uint8.
    """
    size = crops.shape[1]
    renderer = renderer or MeshRenderer(size, size)
    K = crop_intrinsics(focal_length, size)
    faces_np = faces.detach().cpu().numpy()
    placed = (vertices.detach().float() + cam_t.detach().float()[:, None]).cpu().numpy()
    out = np.empty_like(crops)
    for i in range(crops.shape[0]):
        out[i] = renderer.render([Mesh(placed[i], faces_np, MESH_COLOR, alpha=alpha)], K,
                                 background=np.ascontiguousarray(crops[i])).image
    return out
