"""Robustness to detector boxes (supplementary table 4): keypoint AP and kept box count per threshold.

Each prediction comes from one detector box with a detection score; for every threshold ``t`` the
boxes with ``score >= t`` are kept and evaluated with the dataset's keypoint AP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat

from ochmr_lit.metrics.coco_tools import GroundTruthSource
from ochmr_lit.metrics.keypoint_ap import Flavour, KeypointAP

#: Detection-score thresholds of the supplementary's table 4.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)


class DetectorSweep(KeypointAP):
    """``KeypointAP`` evaluated at several detection-score thresholds.

    Args:
        ground_truth, sigmas, flavour, category_id: as ``KeypointAP``.
        thresholds: detection-score thresholds; a box is kept when its score is >= the threshold.

    ``update(image_ids (N,), keypoints (N, K, 3) pixels, scores (N,), box_scores (N,), indices (N,))`` where
    ``scores`` rank the people for AP, ``box_scores`` are the detector's scores and ``indices`` the
    per-prediction indices that rank score ties (see ``KeypointAP``). ``compute()`` returns a dict of
    float64 tensors of shape (T,): ``threshold``, ``num_boxes`` and every AP/AR number of the flavour.
    """

    def __init__(
        self,
        ground_truth: GroundTruthSource,
        sigmas: Sequence[float] | np.ndarray,
        flavour: Flavour = "coco",
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        category_id: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(ground_truth, sigmas, flavour=flavour, category_id=category_id, **kwargs)
        self.thresholds = tuple(float(t) for t in thresholds)
        if not self.thresholds:
            raise ValueError("DetectorSweep needs at least one threshold")
        self.add_state("box_scores", default=[], dist_reduce_fx="cat")
        self.set_dtype(torch.float64)

    def update(
        self,
        image_ids: Tensor,
        keypoints: Tensor,
        scores: Tensor,  # type: ignore[override]
        box_scores: Tensor,
        indices: Tensor | None = None,
    ) -> None:
        """Add N predicted people and the detection scores of their boxes (see the class doc).

        Args:
            image_ids, keypoints, scores, indices: as ``KeypointAP.update``.
            box_scores: (N,) detection scores of the boxes, compared with the thresholds.
        """
        box_scores = torch.as_tensor(box_scores)
        if box_scores.shape != (torch.as_tensor(image_ids).shape[0],):
            raise ValueError(f"box_scores must be (N,) like image_ids, got {tuple(box_scores.shape)}")
        super().update(image_ids, keypoints, scores, indices)
        self.box_scores.append(box_scores.detach().to(self.device, torch.float64).reshape(-1))

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        """AP and kept box count per threshold (see the class doc)."""
        ids, kps, sc = self.predictions()  # in results-file order
        box = dim_zero_cat(self.box_scores).cpu().numpy() if len(self.box_scores) else np.zeros(0)
        box = box[self.prediction_order()] if box.size else box
        rows = sweep(self.evaluate, ids, kps, sc, box, self.thresholds)
        return {k: torch.tensor([r[k] for r in rows], dtype=torch.float64) for k in rows[0]}


def sweep(
    evaluate: Any,
    image_ids: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    box_scores: np.ndarray,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> list[dict[str, float]]:
    """One row per threshold: ``threshold``, ``num_boxes`` (kept) and the AP numbers of ``evaluate``.

    Args:
        evaluate: ``KeypointAP.evaluate``-like callable ``(ids, keypoints, scores) -> dict``.
        image_ids: (N,), keypoints: (N, K, 3) pixels, scores: (N,), box_scores: (N,).
        thresholds: keep boxes with ``box_score >= threshold``.
    """
    rows = []
    for t in thresholds:
        keep = box_scores >= t
        stats = evaluate(image_ids[keep], keypoints[keep], scores[keep])
        rows.append({"threshold": float(t), "num_boxes": float(keep.sum()), **stats})
    return rows


def format_sweep_table(result: dict[str, Tensor], columns: Sequence[str] = ("AP",)) -> str:
    """A Markdown table of a ``DetectorSweep.compute()`` result: threshold, #boxes, AP (in %)."""
    head = "| min. box score | #boxes | " + " | ".join(f"{c} (%)" for c in columns) + " |"
    lines = [head, "|" + "---|" * (2 + len(columns))]
    for i, t in enumerate(result["threshold"].tolist()):
        vals = " | ".join(f"{100 * float(result[c][i]):.1f}" for c in columns)
        lines.append(f"| {t:.2f} | {int(result['num_boxes'][i])} | {vals} |")
    return "\n".join(lines)
