"""The metrics of a regressor evaluation, fed from batches: mesh errors, occlusion buckets, keypoint AP.

Mesh errors follow the SPIN/3DPW protocol (``ochmr_lit.eval.joints.mesh_vs_mesh``): predictions from the
neutral body model, ground truth from the gendered one, both without translation; H36M-17 joints regressed
from the vertices, pelvis (joint 0) subtracted from both sides before selecting the 14 evaluation joints
(``H36M_TO_J14``); MPJPE and PA-MPJPE in mm on those; PVE in mm on all vertices. Keypoint AP scores the
projected COCO-17 keypoints of the mesh in image pixels with the box score as the person score (a regressor
has no per-keypoint confidence).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ochmr_lit.body import BodyModel
from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.eval.joints import mesh_vs_mesh
from ochmr_lit.eval.protocols import OCCLUSION_BUCKETS, get_protocol, occlusion_bucket
from ochmr_lit.geometry import apply_affine, axis_angle_to_rotmat, invert_affine
from ochmr_lit.metrics import MPJPE, PAMPJPE, PVE, KeypointAP
from ochmr_lit.metrics.results import dataset_code


class MeshEvaluation(nn.Module):
    """MPJPE / PA-MPJPE / PVE (mm) with per-sample results, and keypoint AP when a ground truth is given.

    Args:
        protocol: name of the evaluation protocol (``ochmr_lit.eval.protocols``).
        keypoint_ground_truth: COCO-format keypoint JSON of the evaluated split (None: no AP).
        num_vertices: vertices of the body model.
    """

    def __init__(self, protocol: str = "synthcrowd", keypoint_ground_truth: str | Path | None = None,
                 num_vertices: int = 6890):
        super().__init__()
        self.protocol = get_protocol(protocol)
        self.mpjpe = MPJPE(14, keep_per_sample=True)
        self.pa_mpjpe = PAMPJPE(14, keep_per_sample=True)
        self.pve = PVE(num_vertices, keep_per_sample=True)
        self.keypoint_ap = None
        if keypoint_ground_truth is not None:
            self.keypoint_ap = KeypointAP(str(keypoint_ground_truth), get_convention("coco17").sigmas)

    @torch.no_grad()
    def update(self, batch: dict, pred: dict, body: BodyModel) -> None:
        """Add one batch: ``pred`` is :meth:`MeshRegressorModule.predict_batch`'s output."""
        has_smpl = batch["has_smpl"].bool()
        if bool(has_smpl.any()):
            gt_rotmat = axis_angle_to_rotmat(batch["smpl_pose"][has_smpl].view(-1, 24, 3).float())
            gt = body(gt_rotmat, batch["smpl_betas"][has_smpl].float(), gender=batch["gender"][has_smpl])
            joints = mesh_vs_mesh(pred["vertices"][has_smpl], gt.vertices, body.J_regressor_h36m)
            ids = batch["index"][has_smpl]
            occlusion = batch["occlusion_ratio"][has_smpl]
            codes = torch.tensor([dataset_code(name) for name, keep in zip(batch["dataset"], has_smpl.tolist(),
                                                                          strict=True) if keep])
            for metric, (p, t) in ((self.mpjpe, (joints.pred, joints.target)),
                                   (self.pa_mpjpe, (joints.pred, joints.target)),
                                   (self.pve, (joints.pred_vertices, joints.target_vertices))):
                metric.update(p, t, sample_ids=ids, occlusion=occlusion, dataset=codes)
        if self.keypoint_ap is not None:
            to_image = invert_affine(batch["crop_affine"].double())
            keypoints = apply_affine(to_image, pred["keypoints_2d"].double())
            confidence = torch.ones_like(keypoints[..., :1])
            self.keypoint_ap.update(batch["image_id"], torch.cat([keypoints, confidence], dim=-1),
                                    batch["box_score"].double())

    def per_sample(self) -> dict[str, np.ndarray]:
        """One row per evaluated person: dataset index, occlusion ratio and bucket, errors in mm."""
        rows = self.mpjpe.per_sample()
        pa = self.pa_mpjpe.per_sample()
        pve = self.pve.per_sample()
        ids = rows["sample_id"]
        if not (np.array_equal(ids, pa["sample_id"]) and np.array_equal(ids, pve["sample_id"])):
            raise RuntimeError("MPJPE, PA-MPJPE and PVE saw different samples; they must be updated together")
        return {"sample_index": rows["sample_id"], "dataset": rows["dataset"], "occlusion_ratio": rows["occlusion"],
                "occlusion_bucket": np.array([occlusion_bucket(r) if math.isfinite(r) else "unknown"
                                              for r in rows["occlusion"]]),
                "mpjpe_mm": rows["error_mm"], "pa_mpjpe_mm": pa["error_mm"], "pve_mm": pve["error_mm"]}

    def per_joint(self) -> dict[str, list]:
        """MPJPE and PA-MPJPE (mm) of each of the 14 evaluation joints, with the joint names."""
        return {"joint_names": list(get_convention("lsp14").joint_names),
                "mpjpe_mm": self.mpjpe.per_joint().tolist(), "pa_mpjpe_mm": self.pa_mpjpe.per_joint().tolist()}

    def compute(self) -> dict[str, float]:
        """Scalar metrics: ``mpjpe``, ``pa_mpjpe``, ``pve`` (mm), the same per occlusion bucket, and AP."""
        values = {"mpjpe": float(self.mpjpe.compute()), "pa_mpjpe": float(self.pa_mpjpe.compute()),
                  "pve": float(self.pve.compute())}
        if self.mpjpe.num_samples > 0:
            rows = self.per_sample()
            buckets = rows["occlusion_bucket"]
            for bucket in OCCLUSION_BUCKETS:
                chosen = buckets == bucket
                values[f"count_{bucket}"] = int(chosen.sum())
                for name in ("mpjpe", "pa_mpjpe", "pve"):
                    column = rows[f"{name}_mm"][chosen]
                    values[f"{name}_{bucket}"] = float(np.nanmean(column)) if column.size else math.nan
        if self.keypoint_ap is not None:
            values.update({f"kp_{k}": float(v) for k, v in self.keypoint_ap.compute().items()})
        return values

    def reset(self) -> None:
        for metric in (self.mpjpe, self.pa_mpjpe, self.pve, self.keypoint_ap):
            if metric is not None:
                metric.reset()

