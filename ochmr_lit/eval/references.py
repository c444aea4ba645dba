"""Reference predictions evaluated beside every model: what the regressor's starting point scores with no image.

The IEF head of :class:`~ochmr_lit.models.MeshRegressor` starts from mean parameters (``init_pose`` (1, 144)
as 24 x 6D, ``init_shape`` (1, 10), ``init_cam`` (1, 3)); on SynthCrowd they are the training split's mean.
Two references are built from them and go through the same evaluation as the model:

* ``constant``: every person gets the mean pose (mean global orientation included), the mean betas and the
  mean camera: the IEF starting point, i.e. a model that ignores the image;
* ``oracle``: the mean body pose (joints 1..23), mean betas and mean camera, but each person's true global
  orientation (``smpl_pose[:, :3]``, camera frame, augmented like the image); people without SMPL labels
  keep the mean orientation.

A model whose MPJPE or PA-MPJPE is not lower than ``constant``'s has learnt nothing the evaluation measures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ochmr_lit.geometry import axis_angle_to_rotmat, rot6d_to_rotmat

#: The reference predictions, in table order.
REFERENCES: tuple[str, ...] = ("constant", "oracle")
#: How tables name each reference.
REFERENCE_LABELS: dict[str, str] = {"constant": "constant: mean pose, shape and camera",
                                    "oracle": "oracle: mean pose + true orientation"}
#: Metrics a model must lower against ``constant`` not to be flagged (mm).
COMPARED_METRICS: tuple[str, ...] = ("mpjpe", "pa_mpjpe")
#: The flag a table shows beside a model that does not beat ``constant``.
NOT_BETTER_FLAG = "⚠ not better than constant"

NUM_JOINTS = 24


def mean_parameters(init_pose: torch.Tensor, init_shape: torch.Tensor, init_cam: torch.Tensor,
                    batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The IEF starting point for ``batch_size`` people, as the regressor turns it into a prediction.

    Args:
        init_pose: (1, 144) mean pose, 24 x SPIN 6D; init_shape: (1, 10) mean betas; init_cam: (1, 3) mean
            weak-perspective camera ``[s, tx, ty]``.
    Returns:
        rotmat (B, 24, 3, 3), betas (B, 10), cam (B, 3), float32; rotmat goes through the same
        :func:`rot6d_to_rotmat` on the same (B, 24, 6) values as a head with zero residuals, so the two agree
        bit for bit.
    """
    pose = init_pose.float().expand(batch_size, -1).reshape(batch_size, NUM_JOINTS, 6)
    return (rot6d_to_rotmat(pose), init_shape.float().expand(batch_size, -1),
            init_cam.float().expand(batch_size, -1))


def with_true_orientation(rotmat: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
    """``rotmat`` (B, 24, 3, 3) with joint 0 replaced by the true global orientation where SMPL labels exist.

    The orientation is ``batch["smpl_pose"][:, :3]`` (axis-angle, radians, camera frame); samples with
    ``has_smpl`` false (or batches without ``smpl_pose``) keep the given orientation.
    """
    if "smpl_pose" not in batch:
        return rotmat
    pose = batch["smpl_pose"].to(rotmat.device).reshape(rotmat.shape[0], -1)[:, :3].float()
    labelled = batch.get("has_smpl", torch.ones(rotmat.shape[0], dtype=torch.bool))
    labelled = labelled.to(rotmat.device).bool().reshape(-1, 1, 1)
    out = rotmat.clone()
    out[:, 0] = torch.where(labelled, axis_angle_to_rotmat(pose), rotmat[:, 0])
    return out


def reference_parameters(name: str, init_pose: torch.Tensor, init_shape: torch.Tensor, init_cam: torch.Tensor,
                         batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """rotmat (B, 24, 3, 3), betas (B, 10), cam (B, 3) of reference ``name`` for a batch (B = its images)."""
    if name not in REFERENCES:
        raise KeyError(f"reference {name!r}: unknown reference prediction; use one of {', '.join(REFERENCES)}")
    rotmat, betas, cam = mean_parameters(init_pose, init_shape, init_cam, int(batch["image"].shape[0]))
    if name == "oracle":
        rotmat = with_true_orientation(rotmat, batch)
    return rotmat, betas, cam


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def not_better_than_constant(metrics: Mapping[str, Any], constant: Mapping[str, Any],
                             keys: Iterable[str] = COMPARED_METRICS) -> bool | None:
    """Whether any of ``keys`` (errors, lower is better) is not lower in ``metrics`` than in ``constant``.

    Keys missing or NaN on either side are not compared; None when nothing could be compared.
    """
    compared = False
    for key in keys:
        model, reference = _finite(metrics.get(key)), _finite(constant.get(key))
        if model is None or reference is None:
            continue
        if model >= reference:
            return True
        compared = True
    return False if compared else None


def constant_verdict(metrics: Mapping[str, Any], constant: Mapping[str, Any],
                     keys: Iterable[str] = COMPARED_METRICS) -> str:
    """What a table says of a model against ``constant``: :data:`NOT_BETTER_FLAG`, ``better`` or ``-``."""
    flag = not_better_than_constant(metrics, constant, keys)
    return "-" if flag is None else NOT_BETTER_FLAG if flag else "better"
