"""``BodyModel``: SMPL through smplx, from rotation matrices and betas to vertices and joints.

One module holds the neutral, male and female models of a body-model folder (real SMPL files or the
synthetic model), SPIN's H36M and extra joint regressors, and the faces. A gendered forward runs each
gender's model on its own subset of the batch (ground-truth meshes of 3DPW, H36M, ...).

The module keeps no persistent state: the body-model arrays are non-persistent buffers, so checkpoints
of a model that owns a ``BodyModel`` never contain (licensed) SMPL data and load with any body model.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import smplx
import torch
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS
from torch import nn

from ochmr_lit.body.files import (
    NUM_BETAS,
    NUM_JOINTS,
    REGRESSOR_ROWS,
    load_joint_regressor,
    load_smpl_arrays,
    model_file,
    resolve_body_model_dir,
)
from ochmr_lit.body.keypoints import convert_keypoints, get_convention
from ochmr_lit.body.synthetic import REGRESSOR_FILES

GENDER_CODES: dict[str, int] = {"neutral": 0, "male": 1, "female": 2}
GENDERS: tuple[str, ...] = tuple(GENDER_CODES)

# Face landmarks as SMPL vertex ids (smplx's table), in the order of ``smpl_face29``: nose, left_eye,
# right_eye, left_ear, right_ear (332, 2800, 6260, 583, 4071).
FACE_VERTEX_IDS: tuple[int, ...] = tuple(
    SMPLX_VERTEX_IDS["smplh"][k] for k in ("nose", "leye", "reye", "lear", "rear")
)


@dataclass
class BodyOutput:
    """A batch of posed bodies, metres, in the body's frame (plus ``transl`` if one was given)."""

    vertices: torch.Tensor  # (B, 6890, 3)
    joints: torch.Tensor  # (B, 24, 3) SMPL kinematic-tree joints, convention smpl24
    joints_h36m: torch.Tensor  # (B, 17, 3) J_regressor_h36m joints, convention h36m17
    joints_extra: torch.Tensor  # (B, 9, 3) SPIN's extra joints (J_regressor_extra), convention spin_extra9
    keypoints29: torch.Tensor  # (B, 29, 3) joints + nose, eyes, ears vertices, convention smpl_face29

    def keypoints(self, convention: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The body's keypoints in a registered convention.

        ``h36m17`` and ``spin_extra9`` are the regressors' own outputs. Any other convention is taken by
        joint name from ``keypoints29`` (SMPL joints and face vertices, as SMPL-to-COCO evaluations do);
        joints that ``keypoints29`` lacks are filled, by name, from the extra joints and then the H36M
        joints (e.g. ``head_top``, ``neck``, ``thorax`` of ``spin24`` or ``lsp14``).

        Returns:
            ``(B, J, 3)`` metres, zero where the body has no such joint, and ``present (J,)`` bool.
        """
        if convention == "h36m17":
            return self.joints_h36m, torch.ones(17, dtype=torch.bool, device=self.joints_h36m.device)
        if convention == "spin_extra9":
            return self.joints_extra, torch.ones(9, dtype=torch.bool, device=self.joints_extra.device)
        get_convention(convention)  # unknown names fail here, listing the known ones
        out, present = convert_keypoints(self.keypoints29, "smpl_face29", convention)
        for source, name in ((self.joints_extra, "spin_extra9"), (self.joints_h36m, "h36m17")):
            if bool(present.all()):
                break
            filled, has = convert_keypoints(source, name, convention)
            take = has & ~present
            out = torch.where(take[:, None], filled, out)
            present = present | take
        return out, present


class BodyModel(nn.Module):
    """SMPL (via ``smplx.SMPL``) for all three genders of one body-model folder.

    Args:
        model_dir: a folder with ``SMPL_{NEUTRAL,MALE,FEMALE}.pkl`` (official chumpy pickles, cleaned
            pickles or ``.npz``), ``J_regressor_h36m.npy``, ``J_regressor_extra.npy`` and
            ``smpl_mean_params.npz``; None for the synthetic model (generated into the cache once).

    Attributes:
        model_dir: the resolved folder (``model_dir / 'smpl_mean_params.npz'`` is SPIN's mean params).
        faces: ``(13776, 3)`` long buffer.
    """

    def __init__(self, model_dir: str | Path | None = None):
        super().__init__()
        self.model_dir = resolve_body_model_dir(model_dir)
        self.smpl = nn.ModuleDict({gender: self._load_smpl(gender) for gender in GENDERS})
        for kind, rows in REGRESSOR_ROWS.items():
            regressor = load_joint_regressor(self.model_dir / REGRESSOR_FILES[kind], rows)
            self.register_buffer(f"J_regressor_{kind}", torch.as_tensor(regressor, dtype=torch.float32),
                                 persistent=False)
        self.register_buffer("faces", self.smpl["neutral"].faces_tensor.clone(), persistent=False)
        self.register_buffer("face_vertex_ids", torch.tensor(FACE_VERTEX_IDS), persistent=False)

    def _load_smpl(self, gender: str) -> smplx.SMPL:
        path = model_file(self.model_dir, gender)
        arrays = load_smpl_arrays(path)
        # smplx prints a warning for models with 10 shape directions (all SMPL v1.0 files); silence it.
        with contextlib.redirect_stdout(io.StringIO()):
            smpl = smplx.SMPL(
                model_path=str(path), data_struct=arrays, gender=gender, num_betas=NUM_BETAS,
                create_betas=False, create_global_orient=False, create_body_pose=False, create_transl=False,
                use_hands=False, use_feet_keypoints=False,
            )
        for name, buffer in list(smpl.named_buffers(recurse=False)):
            smpl.register_buffer(name, buffer, persistent=False)
        for name, buffer in list(smpl.vertex_joint_selector.named_buffers(recurse=False)):
            smpl.vertex_joint_selector.register_buffer(name, buffer, persistent=False)
        return smpl

    def _smpl_forward(
        self, gender: str, rotmats: torch.Tensor, betas: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.smpl[gender](
            betas=betas, global_orient=rotmats[:, :1], body_pose=rotmats[:, 1:], pose2rot=False
        )
        return out.vertices, out.joints[:, :NUM_JOINTS]

    def forward(
        self,
        rotmats: torch.Tensor,
        betas: torch.Tensor,
        gender: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Pose and shape the bodies.

        Args:
            rotmats: ``(B, 24, 3, 3)`` joint rotation matrices (global orientation first), SMPL's order.
            betas: ``(B, 10)`` shape coefficients.
            gender: ``(B,)`` long codes of :data:`GENDER_CODES` (0 neutral, 1 male, 2 female); None runs
                the neutral model for all.
            transl: ``(B, 3)`` metres added to every output point; None adds nothing.

        Returns:
            :class:`BodyOutput` with ``vertices (B, 6890, 3)`` and all joints, metres.
        """
        b = rotmats.shape[0]
        if rotmats.shape[1:] != (NUM_JOINTS, 3, 3):
            raise ValueError(f"BodyModel: rotmats must be (B, 24, 3, 3) rotation matrices, "
                             f"got {tuple(rotmats.shape)}")
        if betas.shape != (b, NUM_BETAS):
            raise ValueError(f"BodyModel: betas must be ({b}, {NUM_BETAS}), got {tuple(betas.shape)}")
        if transl is not None and transl.shape != (b, 3):
            raise ValueError(f"BodyModel: transl must be ({b}, 3) metres, got {tuple(transl.shape)}")
        if gender is None:
            vertices, joints = self._smpl_forward("neutral", rotmats, betas)
        else:
            vertices, joints = self._gendered_forward(rotmats, betas, gender)
        if transl is not None:
            vertices = vertices + transl[:, None]
            joints = joints + transl[:, None]
        face = vertices.index_select(1, self.face_vertex_ids)
        return BodyOutput(
            vertices=vertices,
            joints=joints,
            joints_h36m=torch.einsum("jv,bvk->bjk", self.J_regressor_h36m.to(vertices.dtype), vertices),
            joints_extra=torch.einsum("jv,bvk->bjk", self.J_regressor_extra.to(vertices.dtype), vertices),
            keypoints29=torch.cat([joints, face], dim=1),
        )

    def _gendered_forward(self, rotmats: torch.Tensor, betas: torch.Tensor,
                          gender: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each gender's model on its subset of the batch, scattered back into batch order."""
        gender = torch.as_tensor(gender, device=rotmats.device).long().reshape(-1)
        if gender.shape[0] != rotmats.shape[0]:
            raise ValueError(f"BodyModel: gender must be ({rotmats.shape[0]},), got {tuple(gender.shape)}")
        if bool(((gender < 0) | (gender >= len(GENDERS))).any()):
            found = sorted(set(gender.tolist()))
            raise ValueError(f"BodyModel: gender codes must be in {GENDER_CODES}, got {found}")
        num_vertices = self.smpl["neutral"].v_template.shape[0]
        vertices = rotmats.new_zeros(rotmats.shape[0], num_vertices, 3)
        joints = rotmats.new_zeros(rotmats.shape[0], NUM_JOINTS, 3)
        for code, name in enumerate(GENDERS):
            idx = (gender == code).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            v, j = self._smpl_forward(name, rotmats[idx], betas[idx])
            vertices = vertices.index_copy(0, idx, v)
            joints = joints.index_copy(0, idx, j)
        return vertices, joints
