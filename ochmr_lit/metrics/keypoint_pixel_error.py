"""Mean 2D keypoint error in crop pixels, as a torchmetric.

How precisely does a model place joints in its crop? Keypoint AP answers with OKS thresholds; this answers in
pixels, the unit of ``python -m ochmr_lit.eval.ceilings``' noisy readers (which read PA-MPJPE off 2D noise of a
given number of crop pixels). The error is the Euclidean distance between the predicted and the labelled
keypoint in the evaluated crop (no alignment: a misplaced person counts), averaged over each person's labelled
keypoints, then over people, like :class:`~ochmr_lit.metrics.mesh_errors.MPJPE`. Running sums, so it
syncs under DDP.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ochmr_lit.metrics.mesh_errors import PointError

#: COCO-17 indices of the twelve limb keypoints (shoulders, elbows, wrists, hips, knees, ankles): the joints the
#: COCO and LSP sets share, so the error speaks of the same joints as the SPIN protocol's mesh errors.
COCO17_LIMB_KEYPOINTS: tuple[int, ...] = tuple(range(5, 17))


class KeypointPixelError(PointError):
    """Mean 2D keypoint error in crop px over labelled keypoints (per person, then over people).

    ``update(pred, target, mask)``: pred and target ``(B, K, 2)`` crop px, mask ``(B, K)`` True where the
    keypoint is labelled; people without a labelled keypoint are left out and counted in ``num_empty``.
    ``compute()`` gives px (0-dim float64, NaN if nobody was measured), ``per_keypoint()`` the ``(K,)`` breakdown.
    """

    point_dims = 2
    input_unit = "crop px"

    def __init__(self, num_keypoints: int = len(COCO17_LIMB_KEYPOINTS), **kwargs: Any) -> None:
        super().__init__(num_keypoints, keep_per_sample=False, **kwargs)

    def _point_errors(self, aligned: Tensor, target: Tensor) -> Tensor:
        return torch.linalg.vector_norm(aligned - target, dim=-1)

    def per_keypoint(self) -> Tensor:
        """(K,) mean error of each keypoint in crop px over the people where it is labelled (NaN where never)."""
        return self.per_point()


class CentredKeypointPixelError(KeypointPixelError):
    """:class:`KeypointPixelError` after moving each person's prediction by its mean offset from the labels.

    The mean is taken over the person's labelled keypoints, so what remains is the error of the joints relative
    to each other (the articulation in the image plane), not where the person was placed: the part of the 2D
    error that PA-MPJPE's alignment cannot remove, comparable with the per-joint noise of the ceilings' readers.
    """

    def _align(self, pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
        weights = torch.ones(pred.shape[:2], dtype=pred.dtype, device=pred.device) if mask is None else mask.to(pred)
        count = weights.sum(dim=1, keepdim=True).clamp(min=1.0)[..., None]  # (B, 1, 1)
        offset = ((target - pred) * weights[..., None]).sum(dim=1, keepdim=True) / count
        return pred + offset
