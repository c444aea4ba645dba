"""The evaluation-joint pipeline: from predicted (and ground-truth) meshes or joints to the root-relative
joints, masks and vertices that the mesh-error metrics compare.

SPIN's protocol (nkolot/SPIN ``eval.py``), used for 3DPW, H36M and MPI-INF-3DHP:

* joints come from ``J_regressor_h36m`` (17 rows) applied to the vertices;
* the pelvis is the regressed joint 0 and is subtracted from both pred and GT *before* the evaluation
  joints are selected (``H36M_TO_J14`` for the 14 LSP-ordered joints);
* MPJPE / PA-MPJPE are measured on those joints, in mm.

PVE: SPIN's ``eval.py`` allocates ``shape_err`` but never fills it (it reports no PVE). Its SMPL
layers have no translation (``create_transl=False``), so pred and GT vertices share the model's own
origin; the SPIN-derived PARE (mkocabas/PARE ``pare/core/trainer.py``, ``compute_error_verts``) measures
PVE on exactly such vertices without centring them. This pipeline does the same: vertices are compared
as they come out of the body model without translation, with no alignment and no centring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ochmr_lit.body.keypoints import get_convention

#: The joint sets protocols evaluate on, by name (joint names of the keypoint registry).
#: ``lsp14``: SPIN's J14 (``H36M_TO_J14`` / ``J24_TO_J14``); ``lsp14_h36m3``: SPIN's J17 for
#: MPI-INF-3DHP (``H36M_TO_J17`` / ``J24_TO_J17``: J14 + pelvis, spine, jaw); ``h36m17``: all 17
#: regressed joints in H36M order (CMU Panoptic, CRMH).
JOINT_SETS: dict[str, tuple[str, ...]] = {
    "lsp14": get_convention("lsp14").joint_names,
    "lsp14_h36m3": get_convention("lsp14").joint_names + ("pelvis", "spine", "jaw"),
    "h36m17": get_convention("h36m17").joint_names,
}

#: The ground truth each joint pipeline compares against: ``smpl`` (the sample's SMPL pose/betas/gender) or
#: an evaluation-target key of the samples (``ochmr_lit.data.schema.EVAL_TARGET_KEYS``).
PIPELINE_TARGETS: dict[str, str] = {
    "mesh_vs_mesh": "smpl",
    "mesh_vs_spin24": "joints_spin24",
    "mesh_vs_lsp14": "joints_lsp14",
    "panoptic_joints": "joints_panoptic19",
}

GTRoot = Literal["pelvis", "mid_hips"]

#: CRMH's Panoptic preprocessing (JiangWenPL/multiperson ``misc/preprocess_datasets/full/panoptic.py``,
#: ``J24_to_J15``) stores Panoptic's body centre in the pelvis slot and Panoptic's neck in the LSP-neck
#: slot (= H36M joint 8) of its 24 joints; its evaluation then reads them as the H36M pelvis and neck.
PANOPTIC_AS_H36M: dict[str, str] = {"pelvis": "mid_hip", "neck": "neck_openpose"}


def joint_indices(convention: str, joint_set: str) -> np.ndarray:
    """Index of each joint of ``joint_set`` in ``convention``.

    Raises:
        KeyError: unknown joint set (lists the known ones); ValueError: the convention lacks a joint.
    """
    if joint_set not in JOINT_SETS:
        raise KeyError(f"unknown joint set {joint_set!r}; known: {sorted(JOINT_SETS)}")
    conv = get_convention(convention)
    return np.array([conv.index(name) for name in JOINT_SETS[joint_set]], dtype=np.int64)


def regress_joints(vertices: Tensor, regressor: Tensor | np.ndarray) -> Tensor:
    """Joints as fixed linear combinations of vertices.

    Args:
        vertices: (B, V, 3) metres.
        regressor: (J, V), e.g. ``J_regressor_h36m`` (17, 6890).

    Returns:
        (B, J, 3) metres, in the dtype of ``vertices``.
    """
    reg = torch.as_tensor(regressor, dtype=vertices.dtype, device=vertices.device)
    if reg.ndim != 2 or reg.shape[1] != vertices.shape[-2]:
        raise ValueError(
            f"joint regressor of shape {tuple(reg.shape)} does not fit vertices "
            f"{tuple(vertices.shape)}: expected (J, {vertices.shape[-2]})"
        )
    return torch.einsum("jv,bvc->bjc", reg, vertices)


@dataclass
class EvalJoints:
    """What the mesh-error metrics compare for one batch.

    Attributes:
        pred: (B, J, 3) root-relative predicted joints, metres.
        target: (B, J, 3) root-relative GT joints, metres.
        mask: (B, J) bool, True where the GT joint is valid.
        pred_vertices: (B, V, 3) metres or None (for PVE).
        target_vertices: (B, V, 3) metres or None.
    """

    pred: Tensor
    target: Tensor
    mask: Tensor
    pred_vertices: Tensor | None = None
    target_vertices: Tensor | None = None


def _pred_h36m_rootrel(
    pred_vertices: Tensor, j_regressor_h36m: Tensor | np.ndarray, joint_set: str
) -> Tensor:
    joints = regress_joints(pred_vertices, j_regressor_h36m)  # (B, 17, 3) h36m17
    if joints.shape[1] != 17:
        raise ValueError(f"expected the 17-row J_regressor_h36m, got {joints.shape[1]} rows")
    pelvis = joints[:, get_convention("h36m17").index("pelvis")]
    return joints[:, joint_indices("h36m17", joint_set)] - pelvis[:, None]


def mesh_vs_mesh(
    pred_vertices: Tensor,
    target_vertices: Tensor,
    j_regressor_h36m: Tensor | np.ndarray,
    joint_set: str = "lsp14",
) -> EvalJoints:
    """3DPW / SynthCrowd: GT is a mesh too (from the gendered or neutral model, without translation).

    Args:
        pred_vertices: (B, V, 3) metres, neutral model, no translation.
        target_vertices: (B, V, 3) metres, no translation.
        j_regressor_h36m: (17, V).
        joint_set: a key of ``JOINT_SETS``.

    Returns:
        both sides' joints minus their regressed pelvis (joint 0), then selected; all joints valid; the
        vertices as given (for PVE).
    """
    if pred_vertices.shape != target_vertices.shape:
        raise ValueError(
            f"pred and GT vertices differ in shape: {tuple(pred_vertices.shape)} vs "
            f"{tuple(target_vertices.shape)}"
        )
    pred = _pred_h36m_rootrel(pred_vertices, j_regressor_h36m, joint_set)
    target = _pred_h36m_rootrel(target_vertices, j_regressor_h36m, joint_set)
    mask = torch.ones(pred.shape[:2], dtype=torch.bool, device=pred.device)
    return EvalJoints(pred, target, mask, pred_vertices, target_vertices)


def _mid_hips(joints: Tensor, convention: str) -> Tensor:
    conv = get_convention(convention)
    return 0.5 * (joints[:, conv.index("left_hip")] + joints[:, conv.index("right_hip")])


def mesh_vs_spin24(
    pred_vertices: Tensor,
    target_s: Tensor,
    j_regressor_h36m: Tensor | np.ndarray,
    joint_set: str = "lsp14",
    gt_root: GTRoot = "pelvis",
) -> EvalJoints:
    """H36M / MPI-INF-3DHP: GT is SPIN's ``S`` array of 24 joints with a confidence column.

    SPIN's ``eval.py`` uses the stored ``S`` as it is (``batch['pose_3d'][:, J24_TO_J14, :-1]``, no
    centring), because SPIN's preprocessing stores it centred on the dataset's pelvis: for H36M
    (``datasets/preprocess/h36m.py``) ``S17 -= S17[0]`` before the 17 joints are written into the 24, the
    pelvis going to the ``pelvis`` slot (J24 index 14), which is therefore exactly zero. Subtracting the
    stored ``pelvis`` joint (``gt_root="pelvis"``) is thus a no-op on SPIN's files (``x - 0.0 == x``) and
    re-centres an ``S`` stored otherwise exactly as SPIN's preprocessing would have, before SPIN's formula.

    Args:
        pred_vertices: (B, V, 3) metres.
        target_s: (B, 24, 4) ``[x, y, z, conf]`` metres in the ``spin24`` convention.
        j_regressor_h36m: (17, V).
        joint_set: ``"lsp14"`` (H36M, SPIN's J24_TO_J14) or ``"lsp14_h36m3"`` (MPI-INF-3DHP, J24_TO_J17).
        gt_root: the GT point subtracted: ``"pelvis"`` (the stored ``pelvis`` joint: SPIN's protocol, for
            H36M and MPI-INF-3DHP) or ``"mid_hips"`` (midpoint of the stored hips; not SPIN's: it differs
            wherever the hips do not sit symmetrically about the pelvis).

    Returns:
        pred: regressed joints minus regressed pelvis, selected; target: selected GT minus its root;
        mask: GT confidence > 0 of the selected joints (and of the root joints used).
    """
    if target_s.ndim != 3 or tuple(target_s.shape[1:]) != (24, 4):
        raise ValueError(
            f"GT S must be (B, 24, 4) [x, y, z, conf] in spin24 order, got {tuple(target_s.shape)}"
        )
    pred = _pred_h36m_rootrel(pred_vertices, j_regressor_h36m, joint_set)
    xyz = target_s[..., :3].to(pred.dtype)
    conf = target_s[..., 3] > 0
    conv = get_convention("spin24")
    if gt_root == "mid_hips":
        root = _mid_hips(xyz, "spin24")
        root_ok = conf[:, conv.index("left_hip")] & conf[:, conv.index("right_hip")]
    elif gt_root == "pelvis":
        root = xyz[:, conv.index("pelvis")]
        root_ok = conf[:, conv.index("pelvis")]
    else:
        raise ValueError(f"gt_root must be 'mid_hips' or 'pelvis', got {gt_root!r}")
    idx = torch.as_tensor(joint_indices("spin24", joint_set), device=xyz.device)
    target = xyz[:, idx] - root[:, None]
    mask = conf[:, idx] & root_ok[:, None]
    return EvalJoints(pred, target, mask, pred_vertices, None)


def mesh_vs_lsp14(
    pred_vertices: Tensor, target_lsp14: Tensor, j_regressor_h36m: Tensor | np.ndarray
) -> EvalJoints:
    """3DOH: GT is 14 LSP joints (``lsp_joints_3d``), which have no pelvis.

    Both sides are centred on the midpoint of their hips (the regressed H36M hips for the prediction).

    Args:
        pred_vertices: (B, V, 3) metres.
        target_lsp14: (B, 14, 3) metres, or (B, 14, 4) with a confidence column.
        j_regressor_h36m: (17, V).
    """
    if target_lsp14.ndim != 3 or target_lsp14.shape[1] != 14 or target_lsp14.shape[2] not in (3, 4):
        raise ValueError(f"GT must be (B, 14, 3|4) lsp14 joints, got {tuple(target_lsp14.shape)}")
    joints = regress_joints(pred_vertices, j_regressor_h36m)
    pred = joints[:, joint_indices("h36m17", "lsp14")]
    pred = pred - _mid_hips(pred, "lsp14")[:, None]
    xyz = target_lsp14[..., :3].to(pred.dtype)
    target = xyz - _mid_hips(xyz, "lsp14")[:, None]
    if target_lsp14.shape[2] == 4:
        conf = target_lsp14[..., 3] > 0
        conv = get_convention("lsp14")
        mask = conf & (conf[:, conv.index("left_hip")] & conf[:, conv.index("right_hip")])[:, None]
    else:
        mask = torch.ones(target.shape[:2], dtype=torch.bool, device=target.device)
    return EvalJoints(pred, target, mask, pred_vertices, None)


def panoptic_joints(
    pred_vertices: Tensor,
    target_panoptic19: Tensor,
    j_regressor_h36m: Tensor | np.ndarray,
    conf_threshold: float = 0.1,
) -> EvalJoints:
    """CMU Panoptic (CRMH): all people of one image; 17 H36M joints, root-relative, with visibility.

    Args:
        pred_vertices: (P, V, 3) metres, every predicted person of the image.
        target_panoptic19: (G, 19, 4) ``[x, y, z, conf]`` metres in the ``panoptic19`` convention.
        j_regressor_h36m: (17, V).
        conf_threshold: a GT joint is visible when its confidence exceeds this (CRMH: 0.1).

    Returns:
        pred (P, 17, 3) minus the regressed pelvis; target (G, 17, 3) minus the body centre; mask (G, 17):
        visible and present in Panoptic (the body centre and neck read as H36M pelvis and neck, as CRMH
        does; spine, jaw and head have no Panoptic counterpart and are never visible).
    """
    if target_panoptic19.ndim != 3 or tuple(target_panoptic19.shape[1:]) != (19, 4):
        raise ValueError(
            f"GT must be (G, 19, 4) panoptic19 joints with confidence, got {tuple(target_panoptic19.shape)}"
        )
    pred = _pred_h36m_rootrel(pred_vertices, j_regressor_h36m, "h36m17")
    pan = get_convention("panoptic19")
    pan_index = {name: i for i, name in enumerate(pan.joint_names)}
    src = [pan_index.get(PANOPTIC_AS_H36M.get(n, n), -1) for n in JOINT_SETS["h36m17"]]
    present = torch.tensor([s >= 0 for s in src], device=target_panoptic19.device)
    idx = torch.tensor([max(s, 0) for s in src], device=target_panoptic19.device)
    xyz = target_panoptic19[..., :3].to(pred.dtype)
    conf = target_panoptic19[..., 3] > conf_threshold
    root = xyz[:, pan.index("mid_hip")]
    target = torch.where(
        present[None, :, None], xyz[:, idx] - root[:, None], torch.zeros((), dtype=xyz.dtype)
    )
    mask = conf[:, idx] & present[None] & conf[:, pan.index("mid_hip")][:, None]
    return EvalJoints(pred, target, mask, pred_vertices, None)
