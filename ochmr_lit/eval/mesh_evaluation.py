"""The metrics of a regressor evaluation, fed from batches, as the evaluation protocol says.

The :class:`~ochmr_lit.eval.protocols.Protocol` decides everything (``ochmr_lit.eval.protocols``):

* its 3D joint pipeline (``ochmr_lit.eval.joints``) and what it compares against (``Protocol.target``): the
  sample's SMPL mesh (3DPW, SynthCrowd: SPIN protocol, MPJPE / PA-MPJPE on 14 joints and PVE, mm), SPIN's
  ``S`` (H36M, MPI-INF-3DHP), 3DOH's LSP-14 joints, or Panoptic's joints19, where every person of an image is
  matched to the image's predictions (CRMH's matched MPJPE, per sequence and overall, mm);
* keypoint AP when the split has a COCO-format keypoint file: the mesh's keypoints in the protocol's
  convention (``Protocol.keypoint_convention``: COCO-17, or CrowdPose-14 projected from the mesh) mapped to
  image pixels, scored by the box score (a regressor has no per-keypoint confidence), evaluated with the
  convention's sigmas and the protocol's flavour (pycocotools, or CrowdPose's semantics). With GT boxes,
  people whose annotation has no labelled keypoint are not scored (as HRNet's and mmpose's GT-box
  evaluations leave them out; COCOeval ignores their ground truth).

The mesh errors measured are those the protocol declares (``Protocol.metrics`` among
``ochmr_lit.eval.protocols.MESH_ERRORS``, built by ``build_metrics``). Protocols without a 3D pipeline (the AP
protocols) still report SPIN-protocol mesh errors for samples with an SMPL ground truth, those of
``Protocol.mesh_protocol``; every name of ``MESH_ERRORS`` is always in :meth:`MeshEvaluation.compute`'s
output, NaN where nothing was measured or the protocol declares no such error.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ochmr_lit.body import BodyModel
from ochmr_lit.errors import ConfigError
from ochmr_lit.eval import joints as J
from ochmr_lit.eval.buckets import RESULT_BUCKETS, occlusion_bucket, result_bucket_members
from ochmr_lit.eval.protocols import MESH_ERRORS, build_metrics, get_protocol
from ochmr_lit.geometry import apply_affine, axis_angle_to_rotmat, invert_affine, perspective_projection
from ochmr_lit.metrics.keypoint_ap import object_keypoint_similarity
from ochmr_lit.metrics.keypoint_pixel_error import (
    COCO17_LIMB_KEYPOINTS,
    CentredKeypointPixelError,
    KeypointPixelError,
)
from ochmr_lit.metrics.matched_mpjpe import MatchedMPJPEByImage
from ochmr_lit.metrics.per_sample import dataset_code
from ochmr_lit.metrics.sample_table import SampleTable

#: Columns of the per-person table of keypoint AP evaluations.
KEYPOINT_COLUMNS: tuple[str, ...] = ("sample_id", "dataset", "image_id", "ann_id", "score", "oks")


def regressor_focal_length(pred: dict, crop_size: float) -> Tensor:
    """(B,) focal length in px of the camera that projected ``pred['keypoints_3d']`` to ``pred['keypoints_2d']``.

    The regressor projects ``x = f (X + t)_xy / (X + t)_z + S / 2`` (S: crop side); the least-squares f over
    the keypoints recovers its focal length exactly, so other keypoints can be projected with the same camera.
    """
    points = pred["keypoints_3d"].double() + pred["cam_t"].double()[:, None]
    ray = points[..., :2] / points[..., 2:]
    offset = pred["keypoints_2d"].double() - crop_size / 2.0
    return (offset * ray).sum(dim=(1, 2)) / (ray * ray).sum(dim=(1, 2)).clamp(min=1e-12)


class MeshEvaluation(nn.Module):
    """The evaluation of one split under one protocol, with per-sample results.

    Args:
        protocol: name of the evaluation protocol (``ochmr_lit.eval.protocols``).
        keypoint_ground_truth: COCO-format keypoint JSON of the evaluated split (None: no AP; required by
            protocols that measure keypoint AP).
        num_vertices: vertices of the body model.
        focal_length: the regressor's focal length in px at the crop size; None recovers it from each
            prediction (:func:`regressor_focal_length`).

    ``update(batch, pred, body)`` takes :meth:`MeshRegressorModule.predict_batch`'s output; ``pred`` may
    also hold ``keypoints_2d_<convention>`` (B, K, 2) crop px, which then replaces the mesh's projection.
    """

    def __init__(self, protocol: str = "synthcrowd", keypoint_ground_truth: str | Path | None = None,
                 num_vertices: int = 6890, focal_length: float | None = None):
        super().__init__()
        self.protocol = get_protocol(protocol)
        p = self.protocol
        # Protocols without a 3D pipeline (keypoint AP) measure SPIN-protocol mesh errors where a mesh GT exists.
        mesh = p.mesh_protocol
        self.pipeline = mesh.pipeline
        self.joint_set = mesh.joint_set
        self.target = mesh.target
        self.focal_length = focal_length
        #: The declared mesh errors of :data:`MESH_ERRORS`, by name (per-sample results kept).
        self.mesh_errors = nn.ModuleDict(build_metrics(mesh, num_vertices=num_vertices, names=MESH_ERRORS))
        self.matched = MatchedMPJPEByImage(mesh.num_joints) if self.pipeline == "panoptic_joints" else None
        self.keypoint_ap = self.keypoint_rows = self.keypoint_pixels = self.keypoint_pixels_centred = None
        self._labelled: dict[int, int] = {}
        if keypoint_ground_truth is None and p.ap_flavour:
            raise ConfigError(f"protocol {p.name!r} measures keypoint AP against the split's COCO-format keypoint "
                              f"file, but the data module gives none for this split; evaluate data={p.dataset}")
        if keypoint_ground_truth is not None:
            self.keypoint_ap = p.keypoint_ap(str(keypoint_ground_truth))
            self.keypoint_rows = SampleTable(KEYPOINT_COLUMNS)
            # AP protocols' samples carry COCO-17 labels in crop px: the limb keypoints' error in px beside AP
            self.keypoint_pixels = KeypointPixelError(len(COCO17_LIMB_KEYPOINTS))
            self.keypoint_pixels_centred = CentredKeypointPixelError(len(COCO17_LIMB_KEYPOINTS))
            anns = self.keypoint_ap.coco_gt.anns
            self._labelled = {int(i): int(a["num_keypoints"]) for i, a in anns.items()}

    # -- update ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, batch: dict, pred: dict, body: BodyModel) -> None:
        """Add one batch: ``pred`` is :meth:`MeshRegressorModule.predict_batch`'s output.

        Runs in float32 even inside a mixed-precision step (bf16 joint regression would cost ~0.1 % of MPJPE).
        """
        pred = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in pred.items()}
        with torch.autocast(pred["vertices"].device.type, enabled=False):
            if self.matched is not None:
                self._update_matched(batch, pred, body)
            else:
                self._update_mesh_errors(batch, pred, body)
            if self.keypoint_ap is not None:
                self._update_keypoints(batch, pred, body)
                self._update_keypoint_pixels(batch, pred)

    def _eval_target(self, batch: dict) -> Tensor:
        if self.target not in batch:
            p = self.protocol
            raise ConfigError(f"protocol {p.name!r} compares against '{self.target}', which the samples of this "
                              f"split do not carry; evaluate it on data={p.dataset}")
        return batch[self.target]

    @staticmethod
    def _codes(batch: dict, keep: Tensor) -> Tensor:
        return torch.tensor([dataset_code(name) for name, k in zip(batch["dataset"], keep.tolist(), strict=True)
                             if k], dtype=torch.int64)

    @staticmethod
    def _distractor(batch: dict, keep: Tensor) -> Tensor:
        """(K,) float distractor flags (1 / 0, NaN unknown) of the kept samples; all NaN when the batch has none."""
        if "distractor" not in batch:
            return torch.full((int(keep.sum()),), math.nan)
        return batch["distractor"][keep].float()

    def _update_mesh_errors(self, batch: dict, pred: dict, body: BodyModel) -> None:
        if self.target == "smpl":
            keep = batch["has_smpl"].bool()
            if not bool(keep.any()):
                return
            gt_rotmat = axis_angle_to_rotmat(batch["smpl_pose"][keep].view(-1, 24, 3).float())
            gt = body(gt_rotmat, batch["smpl_betas"][keep].float(), gender=batch["gender"][keep])
            joints = J.mesh_vs_mesh(pred["vertices"][keep], gt.vertices, body.J_regressor_h36m, self.joint_set)
        else:
            target = self._eval_target(batch)
            keep = (target[..., 3] > 0).any(dim=1)
            if not bool(keep.any()):
                return
            joints = self.protocol.eval_joints(pred["vertices"][keep], target[keep].float(), body.J_regressor_h36m)
        mask = None if bool(joints.mask.all()) else joints.mask
        extra = {"sample_ids": batch["index"][keep], "occlusion": batch["occlusion_ratio"][keep],
                 "distractor": self._distractor(batch, keep), "dataset": self._codes(batch, keep)}
        for name, metric in self.mesh_errors.items():
            if name != "pve":
                metric.update(joints.pred, joints.target, mask=mask, **extra)
            elif joints.target_vertices is not None:
                metric.update(joints.pred_vertices, joints.target_vertices, **extra)

    def _update_matched(self, batch: dict, pred: dict, body: BodyModel) -> None:
        target = self._eval_target(batch)
        joints = self.protocol.eval_joints(pred["vertices"], target.float(), body.J_regressor_h36m)
        if "sequence_code" not in batch:
            raise ConfigError(f"protocol {self.protocol.name!r} reports per sequence, but the samples carry no "
                              f"'sequence_code'; evaluate it on data={self.protocol.dataset}")
        everyone = torch.ones(len(batch["dataset"]), dtype=torch.bool)
        self.matched.update(batch["image_id"], joints.pred, joints.target, joints.mask, batch["sequence_code"],
                            batch["index"], self._codes(batch, everyone))

    def _keypoints_in_crop(self, batch: dict, pred: dict, body: BodyModel) -> Tensor:
        """(B, K, 2) crop px of the protocol's AP keypoints: given in ``pred``, or projected from the mesh."""
        convention = self.protocol.keypoint_convention
        if f"keypoints_2d_{convention}" in pred:
            return pred[f"keypoints_2d_{convention}"]
        if convention == "coco17":
            return pred["keypoints_2d"]
        points, _ = body(pred["rotmat"], pred["betas"]).keypoints(convention)
        size = float(batch["image"].shape[-1])
        focal = (torch.as_tensor(self.focal_length, dtype=torch.float64) if self.focal_length is not None
                 else regressor_focal_length(pred, size))
        centre = torch.full((points.shape[0], 2), size / 2.0, dtype=torch.float64, device=points.device)
        return perspective_projection(points.double(), pred["cam_t"].double(), focal.to(points.device), centre)

    def _update_keypoints(self, batch: dict, pred: dict, body: BodyModel) -> None:
        ann_ids = batch["ann_id"].tolist()
        # GT boxes of people without labelled keypoints are not scored (detector boxes always are).
        scored = torch.tensor([a < 0 or self._labelled.get(a, 1) > 0 for a in ann_ids], dtype=torch.bool)
        if not bool(scored.any()):
            return
        to_image = invert_affine(batch["crop_affine"].double())
        keypoints = apply_affine(to_image, self._keypoints_in_crop(batch, pred, body).double().to(to_image.device))
        keypoints, scores = keypoints[scored.to(keypoints.device)], batch["box_score"].double()[scored]
        image_ids = batch["image_id"][scored]
        confidence = torch.ones_like(keypoints[..., :1])
        # the sample index ranks equal scores as a results file in dataset order would, on any number of processes
        self.keypoint_ap.update(image_ids, torch.cat([keypoints, confidence], dim=-1), scores, batch["index"][scored])
        self.keypoint_rows.update(sample_id=batch["index"][scored], dataset=self._codes(batch, scored),
                                  image_id=image_ids, ann_id=batch["ann_id"][scored], score=scores,
                                  oks=self._own_oks(keypoints.cpu().numpy(), batch["ann_id"][scored].tolist()))

    def _update_keypoint_pixels(self, batch: dict, pred: dict) -> None:
        """Limb keypoints' 2D error in crop px against the labels (``keypoints_2d`` (B, 17, 3), confidence > 0)."""
        if "keypoints_2d" not in batch:
            raise ConfigError(f"protocol {self.protocol.name!r} measures keypoints, but the samples carry no "
                              f"'keypoints_2d' (COCO-17 crop px); evaluate it on data={self.protocol.dataset}")
        limbs = list(COCO17_LIMB_KEYPOINTS)
        target = batch["keypoints_2d"][:, limbs].double()
        predicted = pred["keypoints_2d_coco17" if "keypoints_2d_coco17" in pred else "keypoints_2d"][:, limbs].double()
        for metric in (self.keypoint_pixels, self.keypoint_pixels_centred):
            metric.update(predicted.to(target.device), target[..., :2], mask=target[..., 2] > 0)

    def _own_oks(self, keypoints: np.ndarray, ann_ids: list[int]) -> np.ndarray:
        """OKS of each prediction with its own annotated person (NaN for detector boxes)."""
        anns = self.keypoint_ap.coco_gt.anns
        out = np.full(len(ann_ids), np.nan)
        own = [i for i, a in enumerate(ann_ids) if a in anns]
        if own:
            gt = np.array([np.asarray(anns[ann_ids[i]]["keypoints"], np.float64).reshape(-1, 3) for i in own])
            areas = np.array([float(anns[ann_ids[i]]["area"]) for i in own])
            out[own] = object_keypoint_similarity(keypoints[own], gt, areas, self.keypoint_ap.sigmas)
        return out

    # -- results ---------------------------------------------------------------------------------------
    def per_sample(self) -> dict[str, np.ndarray]:
        """One row per evaluated person, by protocol.

        * keypoint AP protocols: ``sample_index``, ``dataset`` (code), ``image_id``, ``ann_id``, ``score``
          and ``oks`` (with the person's own annotation; NaN for detector boxes);
        * matched MPJPE (Panoptic): ``sample_index``, ``dataset``, ``image_id``, ``sequence``,
          ``matched_sample_index`` and ``mpjpe_mm``;
        * otherwise: ``sample_index``, ``dataset``, ``occlusion_ratio``, ``occlusion_bucket`` (``unknown`` for
          a NaN ratio), ``distractor`` (1.0 / 0.0, NaN unknown: see ``ochmr_lit.data.distractor``),
          ``mpjpe_mm``, ``pa_mpjpe_mm``, ``pve_mm``, ``pa_mpjpe_depth_mm`` and ``pa_mpjpe_plane_mm`` (NaN where
          the protocol does not measure the error).
        """
        if self.protocol.ap_flavour and self.keypoint_rows is not None:
            rows = self.keypoint_rows.rows()
            out = {"sample_index": rows["sample_id"].astype(np.int64), "dataset": rows["dataset"].astype(np.int64)}
            out.update({k: rows[k].astype(np.int64) for k in ("image_id", "ann_id")})
            out.update({"score": rows["score"], "oks": rows["oks"]})
            return out
        if self.matched is not None:
            rows = self.matched.per_person()
            return {"sample_index": rows["sample_id"], "dataset": rows["dataset"], "image_id": rows["image_id"],
                    "sequence": rows["sequence"], "matched_sample_index": rows["matched_sample_id"],
                    "mpjpe_mm": rows["error_mm"]}
        rows = self.mesh_errors["mpjpe"].per_sample()
        ids = rows["sample_id"]
        errors = {}
        for name in MESH_ERRORS:
            table = self.mesh_errors[name].per_sample() if name in self.mesh_errors else None
            if table is None or (name == "pve" and not table["sample_id"].size):
                errors[f"{name}_mm"] = np.full(ids.shape, np.nan)  # not declared, or no vertices measured
                continue
            if not np.array_equal(ids, table["sample_id"]):
                raise RuntimeError(f"MPJPE and {name} saw different samples; they must be updated together")
            errors[f"{name}_mm"] = table["error_mm"]
        return {"sample_index": rows["sample_id"], "dataset": rows["dataset"], "occlusion_ratio": rows["occlusion"],
                "occlusion_bucket": np.array([occlusion_bucket(r) if math.isfinite(r) else "unknown"
                                              for r in rows["occlusion"]]),
                "distractor": rows["distractor"], **errors}

    def per_joint(self) -> dict[str, list]:
        """MPJPE and PA-MPJPE (mm) of each evaluation joint, with the joint names ({} for AP and matched)."""
        if self.protocol.ap_flavour or self.matched is not None:
            return {}
        return {"joint_names": list(J.JOINT_SETS[self.joint_set]),
                **{f"{name}_mm": self.mesh_errors[name].per_joint().tolist() for name in ("mpjpe", "pa_mpjpe")}}

    def compute(self) -> dict[str, float]:
        """Scalar metrics by protocol.

        ``mpjpe``, ``pa_mpjpe``, ``pve``, ``pa_mpjpe_depth``, ``pa_mpjpe_plane`` in mm (NaN where not
        measured; for Panoptic ``mpjpe`` is the matched MPJPE, with ``mpjpe_mean_of_sequences``,
        ``mpjpe/<sequence>`` and the counts); for protocols with buckets, ``count_<bucket>`` and
        ``<metric>_<bucket>`` for every bucket of ``ochmr_lit.eval.buckets.RESULT_BUCKETS`` (none / partial /
        heavy, then distractor, which overlaps them); keypoint AP as ``kp_<stat>`` fractions, with
        ``kp_num_scored`` (predictions scored) and ``kp_num_gt_people`` (non-crowd annotated people with keypoints),
        and ``kp2d_px``, the mean 2D error of the twelve limb keypoints in crop px over the labelled ones
        (:class:`~ochmr_lit.metrics.keypoint_pixel_error.KeypointPixelError`; NaN if none was labelled), and
        ``kp2d_px_centred``, the same after removing each person's mean offset (the articulation's part).
        """
        values = {name: float(self.mesh_errors[name].compute())
                  if name in self.mesh_errors and self.mesh_errors[name].update_called else math.nan
                  for name in MESH_ERRORS}
        if self.matched is not None:
            values.update({k: float(v) for k, v in self.matched.compute().items()})
        if self.protocol.occlusion_buckets and self.mesh_errors["mpjpe"].num_samples > 0:
            rows = self.per_sample()
            members = result_bucket_members(rows["occlusion_ratio"], rows["distractor"])
            for bucket in RESULT_BUCKETS:
                chosen = members[bucket]
                values[f"count_{bucket}"] = int(chosen.sum())
                for name in MESH_ERRORS:
                    column = rows[f"{name}_mm"][chosen]
                    values[f"{name}_{bucket}"] = float(np.nanmean(column)) if column.size else math.nan
        if self.keypoint_ap is not None:
            values.update({f"kp_{k}": float(v) for k, v in self.keypoint_ap.compute().items()})
            values["kp_num_scored"] = int(self.keypoint_rows.compute())
            for name, metric in (("kp2d_px", self.keypoint_pixels), ("kp2d_px_centred", self.keypoint_pixels_centred)):
                values[name] = float(metric.compute()) if metric.update_called else math.nan
            gt = self.keypoint_ap.coco_gt.dataset["annotations"]
            values["kp_num_gt_people"] = sum(1 for a in gt if not a.get("iscrowd", 0) and a["num_keypoints"] > 0)
        return values

    def reset(self) -> None:
        for metric in (*self.mesh_errors.values(), self.matched, self.keypoint_ap, self.keypoint_rows,
                       self.keypoint_pixels, self.keypoint_pixels_centred):
            if metric is not None:
                metric.reset()
