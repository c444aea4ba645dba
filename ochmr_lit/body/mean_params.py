"""SPIN-format mean parameters (the regressor's IEF starting point) computed from a training split's SMPL labels.

SPIN's ``smpl_mean_params.npz`` is the average of real poses; a regressor that starts from identity rotations
(a T-pose) must first learn the average pose before it can learn anything else. This module computes the same
three arrays from any set of SMPL annotations:

* ``pose (144,)``: per joint, the arithmetic mean of the rotation matrices projected back onto SO(3) (the
  closest rotation in the Frobenius norm, through an SVD with the determinant fixed to +1), as SPIN's 6D: the
  first two columns of each matrix, row-major;
* ``shape (10,)``: the mean betas;
* ``cam (3,)``: the mean weak-perspective camera ``[s, tx, ty]`` of the people in their training crops, where
  the crop is known (``s = 2 f / (L z)`` for a crop of side ``L`` px around the person at depth ``z`` m seen
  with focal ``f`` px; ``tx, ty``: the root joint's offset from the crop centre in body units).

The file also records what it was computed from (``source``, ``num_people``) so a run can log and store it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ochmr_lit.body.synthetic import save_npz_reproducible
from ochmr_lit.errors import MissingFileError
from ochmr_lit.geometry import axis_angle_to_rotmat

NUM_JOINTS = 24
NUM_BETAS = 10
#: Camera of SPIN's default start, used where a split gives no crop to measure one from.
DEFAULT_CAM = (0.9, 0.0, 0.0)


def project_to_rotation(matrices: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """The rotations closest (Frobenius) to ``matrices`` (..., 3, 3): ``U diag(1, 1, det(U V^T)) V^T``.

    A numpy array comes back as one; a tensor stays on its device (the flip test's mean of two rotations).
    """
    as_numpy = isinstance(matrices, np.ndarray)
    m = torch.from_numpy(matrices) if as_numpy else matrices
    u, _, vh = torch.linalg.svd(m)
    fix = torch.ones(m.shape[:-1], dtype=m.dtype, device=m.device)
    fix[..., -1] = torch.linalg.det(u @ vh)
    rotations = (u * fix.unsqueeze(-2)) @ vh
    return rotations.numpy() if as_numpy else rotations


def mean_rotations(poses: np.ndarray) -> np.ndarray:
    """(24, 3, 3) per-joint mean rotation of (N, 72) SMPL axis-angle poses (radians), projected onto SO(3)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 3 * NUM_JOINTS or len(poses) == 0:
        raise ValueError(f"poses must be (N, 72) SMPL axis-angle vectors with N >= 1, got {poses.shape}")
    rotmats = axis_angle_to_rotmat(torch.from_numpy(poses.reshape(-1, 3))).numpy().reshape(-1, NUM_JOINTS, 3, 3)
    return project_to_rotation(rotmats.mean(axis=0))


def rotations_to_spin6d(rotmats: np.ndarray) -> np.ndarray:
    """SPIN's 6D vector (24 * 6,) of (24, 3, 3) rotations: the first two columns of each, row-major."""
    return np.asarray(rotmats)[:, :, :2].reshape(-1)


def crop_cameras(root_xyz: np.ndarray, boxes_xywh: np.ndarray, focal: np.ndarray, principal_point: np.ndarray,
                 scale_factor: float = 1.2) -> np.ndarray:
    """(N, 3) weak-perspective cameras ``[s, tx, ty]`` of people in their training crops.

    Args:
        root_xyz: (N, 3) camera-frame position of each person's root joint, metres.
        boxes_xywh: (N, 4) the boxes the crops are made from, px; the crop is a square of side
            ``scale_factor x max(w, h)`` around the box centre (the data pipeline's crop).
        focal: (N,) or (N, 2) focal length in px; principal_point: (N, 2) px.
    """
    root = np.asarray(root_xyz, dtype=np.float64)
    boxes = np.asarray(boxes_xywh, dtype=np.float64)
    focal = np.asarray(focal, dtype=np.float64).reshape(len(root), -1)[:, :2]
    focal = np.broadcast_to(focal, (len(root), 2))
    pp = np.asarray(principal_point, dtype=np.float64).reshape(len(root), 2)
    side = scale_factor * boxes[:, 2:].max(axis=1)
    centre = boxes[:, :2] + boxes[:, 2:] / 2.0
    z = root[:, 2]
    s = 2.0 * focal[:, 0] / (side * z)
    root_px = focal * root[:, :2] / z[:, None] + pp
    offset = (root_px - centre) * 2.0 / side[:, None]  # normalised crop coordinates, crop = [-1, 1]
    return np.concatenate([s[:, None], offset / s[:, None]], axis=1)


def compute_mean_params(poses: np.ndarray, betas: np.ndarray, cams: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """SPIN-format mean parameters: ``pose (144,)``, ``shape (10,)``, ``cam (3,)``, float32.

    Args:
        poses: (N, 72) SMPL axis-angle poses, radians (global orientation first, in the camera frame).
        betas: (N, 10) shape coefficients.
        cams: (N, 3) weak-perspective crop cameras (:func:`crop_cameras`); None = SPIN's default camera.
    """
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 2 or betas.shape[1] < NUM_BETAS or len(betas) != len(poses):
        raise ValueError(f"betas must be (N, >=10) with N = {len(poses)} (the poses), got {betas.shape}")
    cam = np.asarray(DEFAULT_CAM) if cams is None else np.asarray(cams, dtype=np.float64).mean(axis=0)
    return {
        "pose": rotations_to_spin6d(mean_rotations(poses)).astype(np.float32),
        "shape": betas[:, :NUM_BETAS].mean(axis=0).astype(np.float32),
        "cam": np.asarray(cam, dtype=np.float32).reshape(3),
    }


def save_mean_params(path: str | Path, params: Mapping[str, np.ndarray], source: str, num_people: int) -> Path:
    """Write ``params`` as SPIN's npz (plus ``source`` and ``num_people``), atomically, byte-reproducibly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {**{k: np.asarray(params[k], dtype=np.float32) for k in ("pose", "shape", "cam")},
              "source": np.asarray(source), "num_people": np.asarray(int(num_people))}
    tmp = path.with_name(f".{path.name}.tmp")
    save_npz_reproducible(tmp, arrays)
    tmp.replace(path)
    return path


def mean_params_of_synthcrowd_split(split_dir: str | Path,
                                    scale_factor: float = 1.2) -> tuple[dict[str, np.ndarray], int]:
    """Mean parameters of a SynthCrowd split folder (its ``annotations.json``) and the number of people used.

    The camera is measured in the crops the data pipeline makes (the visible ``bbox``, ``scale_factor``).
    """
    path = Path(split_dir) / "annotations.json"
    if not path.is_file():
        raise MissingFileError(f"{path} not found: pass a SynthCrowd split folder (with annotations.json) "
                               "or a SPIN-format npz with 'pose' and 'shape'")
    with path.open() as f:
        doc = json.load(f)
    cameras = {im["id"]: im.get("camera") for im in doc.get("images", [])}
    poses, betas, roots, boxes, focals, pps = [], [], [], [], [], []
    for i, ann in enumerate(doc.get("annotations", [])):
        for key in ("smpl_pose", "smpl_betas", "joints_3d", "bbox"):
            if key not in ann:
                raise KeyError(f"{path}: annotations[{i}] has no '{key}'; is this a SynthCrowd split?")
        camera = cameras.get(ann["image_id"])
        if not camera:
            raise KeyError(f"{path}: image {ann['image_id']} (annotations[{i}]) has no 'camera'")
        poses.append(ann["smpl_pose"])
        betas.append(ann["smpl_betas"])
        roots.append(np.asarray(ann["joints_3d"], np.float64).reshape(24, 3)[0])
        boxes.append(ann["bbox"])
        focals.append(camera["focal"])
        pps.append(camera["principal_point"])
    if not poses:
        raise ValueError(f"{path}: no annotated people to average")
    cams = crop_cameras(np.array(roots), np.array(boxes), np.array(focals), np.array(pps), scale_factor)
    return compute_mean_params(np.array(poses), np.array(betas), cams), len(poses)


def mean_params_of_spin_npz(path: str | Path) -> tuple[dict[str, np.ndarray], int]:
    """Mean parameters of a SPIN-format npz (``pose (N, 72)``, ``shape (N, 10)``, optional ``has_smpl``).

    SPIN's files carry no camera, so the camera is SPIN's default ``[0.9, 0, 0]``.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as npz:
        for key in ("pose", "shape"):
            if key not in npz.files:
                raise KeyError(f"{path}: no '{key}' (keys: {npz.files}); a SPIN-format npz needs pose (N, 72) "
                               "and shape (N, 10)")
        poses, betas = npz["pose"], npz["shape"]
        keep = npz["has_smpl"].astype(bool) if "has_smpl" in npz.files else np.ones(len(poses), bool)
    if not keep.any():
        raise ValueError(f"{path}: no sample has SMPL labels (has_smpl is 0 everywhere)")
    return compute_mean_params(poses[keep], betas[keep]), int(keep.sum())
