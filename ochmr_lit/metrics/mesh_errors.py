"""MPJPE, PA-MPJPE (with its depth and image-plane parts) and PVE as torchmetrics, in millimetres.

Inputs are metres (the project's unit); the metrics report millimetres. Each sample's error is the mean
Euclidean distance over its valid points (joints or vertices); the reported value is the mean of the
per-sample errors over samples (as SPIN and the papers that follow it report), so a masked-out joint
never counts as zero error. Samples without a single valid point are left out of the mean and counted
in ``num_empty``.

States are running sums (``dist_reduce_fx="sum"``) plus, with ``keep_per_sample=True``, per-sample
``cat`` states (sample id, error, occlusion ratio, distractor flag, dataset code) for the results files;
both are gathered across processes by torchmetrics. The pipeline that produces root-relative joints for each protocol is
``ochmr_lit.eval.joints``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ochmr_lit.metrics.per_sample import UNKNOWN_DATASET
from ochmr_lit.procrustes import similarity_procrustes

MM_PER_M = 1000.0
#: Per-sample ``cat`` states (1-D float64, one entry per updated sample) kept with ``keep_per_sample=True``.
PER_SAMPLE_STATES: tuple[str, ...] = ("sample_ids", "sample_errors", "occlusion", "distractor", "dataset")


def point_errors_mm(pred: Tensor, target: Tensor) -> Tensor:
    """Euclidean distance of corresponding points, (B, N, D) metres (D = 3, or 2 for x and y) -> (B, N) millimetres."""
    return torch.linalg.vector_norm(pred - target, dim=-1) * MM_PER_M


def _per_sample_or_nan(values: Tensor | None, batch_size: int, name: str) -> Tensor:
    """(B,) float64 per-sample values of the ``update`` argument ``name`` (bools as 1 / 0), or B NaNs (unknown)
    for None."""
    if values is None:
        return torch.full((batch_size,), math.nan, dtype=torch.float64)
    values = torch.as_tensor(values).reshape(-1)
    if values.shape[0] != batch_size:
        raise ValueError(f"{name} has {values.shape[0]} entries for a batch of {batch_size}; give one per sample")
    return values.to(torch.float64)


class PointError(Metric):
    """Mean per-point position error; subclasses choose the alignment, the error and the point dimension.

    Inputs are ``(B, N, point_dims)`` in ``input_unit``; this class and the mesh errors below report mm.
    """

    #: Coordinates per point of ``update``'s inputs, and their unit (named in errors).
    point_dims: int = 3
    input_unit: str = "metres"

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, num_points: int, keep_per_sample: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_points < 1:
            raise ValueError(f"num_points must be positive, got {num_points}")
        self.num_points = int(num_points)
        self.keep_per_sample = bool(keep_per_sample)
        # float64 sums: 100k samples of ~50 mm summed in float32 would lose ~1e-2 mm.
        self.add_state("error_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_samples", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_empty", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state(
            "point_sum", default=torch.zeros(self.num_points, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state(
            "point_count", default=torch.zeros(self.num_points, dtype=torch.float64), dist_reduce_fx="sum"
        )
        if self.keep_per_sample:
            # 1-D float64 cat states (see KeypointAP for why): ids and dataset codes are exact integers.
            for name in PER_SAMPLE_STATES:
                self.add_state(name, default=[], dist_reduce_fx="cat")
        self.set_dtype(torch.float64)

    def _align(self, pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
        return pred

    def _point_errors(self, aligned: Tensor, target: Tensor) -> Tensor:
        """(B, N) mm per point of the aligned prediction; the Euclidean distance unless a subclass measures a part."""
        return point_errors_mm(aligned, target)

    def _check(self, pred: Tensor, target: Tensor, mask: Tensor | None) -> None:
        name = type(self).__name__
        if pred.shape != target.shape or pred.ndim != 3 or pred.shape[-1] != self.point_dims:
            raise ValueError(
                f"{name}.update expects pred and target of shape (B, N, {self.point_dims}) {self.input_unit}, got "
                f"{tuple(pred.shape)} and {tuple(target.shape)}"
            )
        if pred.shape[1] != self.num_points:
            raise ValueError(
                f"{name} was built for {self.num_points} points per sample, got {pred.shape[1]}; "
                "pass num_points matching the protocol's joint set (or vertex count)"
            )
        if mask is not None and tuple(mask.shape) != tuple(pred.shape[:2]):
            raise ValueError(
                f"{name}.update expects mask (B, N) = {tuple(pred.shape[:2])}, got {tuple(mask.shape)}"
            )

    def update(
        self,
        pred: Tensor,
        target: Tensor,
        mask: Tensor | None = None,
        sample_ids: Tensor | None = None,
        occlusion: Tensor | None = None,
        dataset: Tensor | int | None = None,
        distractor: Tensor | None = None,
    ) -> None:
        """Add a batch.

        Args:
            pred: (B, N, 3) predicted points in metres (already root-relative where the protocol says so).
            target: (B, N, 3) ground-truth points in metres.
            mask: (B, N) bool, True where the ground truth is valid; None: all valid.
            sample_ids: (B,) integer dataset-level sample index (needed with ``keep_per_sample``).
            occlusion: (B,) occlusion ratio in [0, 1] (NaN if unknown).
            dataset: (B,) or scalar integer dataset code (``ochmr_lit.metrics.per_sample.DATASET_CODES``).
            distractor: (B,) distractor flag, 1 / 0 (bool or float), NaN if unknown; None: all unknown.
        """
        self._check(pred, target, mask)
        b = pred.shape[0]
        pred = pred.detach().to(torch.float64)
        target = target.detach().to(torch.float64)
        valid = (
            torch.ones(pred.shape[:2], dtype=torch.bool, device=pred.device) if mask is None else mask.bool()
        )
        if mask is not None:
            # invalid joints may hold anything (NaN included): zero them so they cannot reach the fit
            pred = torch.where(valid[..., None], pred, torch.zeros_like(pred))
            target = torch.where(valid[..., None], target, torch.zeros_like(target))
        err = self._point_errors(self._align(pred, target, None if mask is None else valid), target)  # (B, N)
        if mask is not None:
            err = torch.where(valid, err, torch.zeros_like(err))
        count = valid.sum(dim=1).to(torch.float64)  # (B,)
        has_points = count > 0
        per_sample = torch.where(has_points, err.sum(dim=1) / count.clamp(min=1), torch.nan)
        self.error_sum += per_sample[has_points].sum().to(self.error_sum.device)
        self.num_samples += has_points.sum().to(self.num_samples)
        self.num_empty += (~has_points).sum().to(self.num_empty)
        self.point_sum += err.sum(dim=0).to(self.point_sum)
        self.point_count += valid.sum(dim=0).to(self.point_count)
        if self.keep_per_sample:
            if sample_ids is None:
                raise ValueError(f"{type(self).__name__}(keep_per_sample=True).update needs sample_ids (B,)")
            ids = torch.as_tensor(sample_ids).reshape(-1)
            if ids.shape[0] != b:
                raise ValueError(f"sample_ids has {ids.shape[0]} entries for a batch of {b}")
            ds = torch.as_tensor(UNKNOWN_DATASET if dataset is None else dataset).reshape(-1).expand(b)
            columns = {"sample_ids": ids, "sample_errors": per_sample, "dataset": ds,
                       "occlusion": _per_sample_or_nan(occlusion, b, "occlusion"),
                       "distractor": _per_sample_or_nan(distractor, b, "distractor")}
            for name in PER_SAMPLE_STATES:
                getattr(self, name).append(columns[name].detach().to(self.device, torch.float64).reshape(b))

    def compute(self) -> Tensor:
        """Mean over samples of the per-sample mean point error (0-dim float64; NaN if no sample): mm for the mesh
        errors, the subclass's unit otherwise (crop px for the keypoint pixel errors)."""
        if self.num_samples == 0:
            return torch.tensor(math.nan, dtype=torch.float64, device=self.error_sum.device)
        return self.error_sum / self.num_samples

    def per_point(self) -> Tensor:
        """(N,) mean error of each point over the samples where it is valid, in :meth:`compute`'s unit (NaN where
        never valid)."""
        with self.sync_context():
            return torch.where(
                self.point_count > 0, self.point_sum / self.point_count.clamp(min=1), torch.nan
            )

    def per_sample(self, deduplicate: bool = True) -> dict[str, np.ndarray]:
        """Per-sample results gathered over all processes.

        Args:
            deduplicate: keep one row per (dataset, sample_id) (a distributed sampler pads the last batch
                with repeated samples).

        Returns:
            ``sample_id`` (S,) int64, ``dataset`` (S,) int64 codes, ``occlusion`` (S,) float64, ``distractor``
            (S,) float64 (1 / 0, NaN unknown), ``error_mm`` (S,) float64 (NaN for samples without a valid point),
            sorted by (dataset, id).
        """
        if not self.keep_per_sample:
            raise RuntimeError(f"{type(self).__name__} was built without keep_per_sample=True")
        with self.sync_context():
            cols = {
                name: (
                    dim_zero_cat(getattr(self, name)).cpu().numpy()
                    if len(getattr(self, name))
                    else np.zeros(0)
                )
                for name in PER_SAMPLE_STATES
            }
        ids = cols["sample_ids"].astype(np.int64)
        ds = cols["dataset"].astype(np.int64)
        order = np.lexsort((ids, ds))
        if deduplicate and order.size:
            pairs = np.stack([ds[order], ids[order]], axis=1)
            keep = np.ones(order.size, dtype=bool)
            keep[1:] = np.any(pairs[1:] != pairs[:-1], axis=1)
            order = order[keep]
        return {
            "sample_id": ids[order],
            "dataset": ds[order],
            "occlusion": cols["occlusion"][order],
            "distractor": cols["distractor"][order],
            "error_mm": cols["sample_errors"][order],
        }


class MPJPE(PointError):
    """Mean per-joint position error in mm, no alignment (inputs already root-relative).

    Args:
        num_joints: J, the size of the protocol's joint set (14 for the SPIN protocols).
        keep_per_sample: also keep per-sample results (``per_sample()``).

    ``per_joint()`` gives the (J,) breakdown.
    """

    def __init__(self, num_joints: int, keep_per_sample: bool = False, **kwargs: Any) -> None:
        super().__init__(num_joints, keep_per_sample, **kwargs)

    def per_joint(self) -> Tensor:
        """(J,) mean error per joint in mm over the samples where the joint is valid."""
        return self.per_point()


class PAMPJPE(MPJPE):
    """MPJPE after a per-sample similarity Procrustes alignment of pred to target (mm).

    The alignment (rotation with determinant fix, scale tr(RK)/var, translation) is fitted on the valid
    joints of each sample only.
    """

    def _align(self, pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
        return similarity_procrustes(pred, target, mask)


class PAMPJPEDepth(PAMPJPE):
    """The depth part of PA-MPJPE: after the same alignment, each joint's error along the camera axis, |dz| in mm.

    Meaningful where pred and target are in the camera frame (z along the optical axis), as in the SPIN
    protocol's 3DPW and SynthCrowd meshes. Per joint, ``depth^2 + plane^2 = PA error^2`` (:class:`PAMPJPEPlane`):
    a model that reads the image-plane articulation but not the depth shows a plane part that falls with
    training while the depth part stays near a constant guess's.
    """

    def _point_errors(self, aligned: Tensor, target: Tensor) -> Tensor:
        return (aligned[..., 2] - target[..., 2]).abs() * MM_PER_M


class PAMPJPEPlane(PAMPJPE):
    """The image-plane part of PA-MPJPE: after the same alignment, each joint's error in x and y, mm.

    See :class:`PAMPJPEDepth` for the frame it assumes and how the two parts add up.
    """

    def _point_errors(self, aligned: Tensor, target: Tensor) -> Tensor:
        return point_errors_mm(aligned[..., :2], target[..., :2])


class PVE(PointError):
    """Per-vertex error in mm on all vertices, no alignment.

    Args:
        num_vertices: V (6890 for SMPL).
        keep_per_sample: also keep per-sample results.

    ``per_vertex()`` gives the (V,) breakdown.
    """

    def __init__(self, num_vertices: int = 6890, keep_per_sample: bool = False, **kwargs: Any) -> None:
        super().__init__(num_vertices, keep_per_sample, **kwargs)

    def per_vertex(self) -> Tensor:
        """(V,) mean error per vertex in mm."""
        return self.per_point()
