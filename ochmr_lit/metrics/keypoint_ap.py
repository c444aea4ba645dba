"""Keypoint AP (OKS) as a torchmetric: COCO / OCHuman via pycocotools, CrowdPose with its own semantics.

Predictions (2D keypoints in image pixels with a person score) are accumulated as ``cat`` states, so
under DDP ``compute()`` evaluates the predictions of every process. The evaluation itself is
pycocotools' ``COCOeval(..., "keypoints")`` with the dataset's OKS sigmas; for CrowdPose, see
``crowdpose_eval``.

Score ties. pycocotools (and CrowdPose's fork of it) sort detections with a stable sort on ``-score``:
within an image ties keep the order of the results file, and over the accumulated detections they keep
the per-image order of the sorted image ids. Every prediction therefore carries a per-prediction index,
its position in the results file (the dataset sample index, or the order of ``update`` calls), gathered
with the other states; ``compute()`` lists the predictions by that index before evaluating, which
restores the results-file order after a DDP gather and breaks ties exactly as the official tools do.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ochmr_lit.metrics.coco_tools import (
    GroundTruthSource,
    coco_from_dataset,
    keypoint_results,
    load_keypoint_ground_truth,
    load_results,
    silent,
)
from ochmr_lit.metrics.crowdpose_eval import CROWDPOSE_STAT_NAMES, evaluate_crowdpose, with_box_areas

Flavour = Literal["coco", "crowdpose"]

#: Names of pycocotools' ten keypoint summary numbers, in ``COCOeval.stats`` order.
COCO_STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def evaluate_coco_keypoints(coco_gt: COCO, coco_dt: COCO, sigmas: np.ndarray) -> dict[str, float]:
    """pycocotools' keypoint evaluation with the given OKS sigmas.

    Returns:
        ``COCOeval.stats`` by name (``COCO_STAT_NAMES``), fractions in [0, 1] (-1: no valid ground truth).
    """
    evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
    evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
    with silent():
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(COCO_STAT_NAMES, evaluator.stats, strict=True)}


def object_keypoint_similarity(
    pred: np.ndarray, target: np.ndarray, areas: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """OKS of each prediction with its own ground-truth person, as pycocotools' ``computeOks``.

    Args:
        pred: (N, K, 2+) predicted keypoints, image pixels (a third column is ignored).
        target: (N, K, 3) ground-truth ``[x, y, v]`` pixels; only keypoints with ``v > 0`` count.
        areas: (N,) object areas in px^2 (COCO's ``area``; CrowdPose: 0.53 x box area).
        sigmas: (K,) OKS sigmas of the convention.

    Returns:
        (N,) OKS in [0, 1]; NaN for a ground truth without labelled keypoints (COCOeval ignores those).
    """
    pred = np.asarray(pred, np.float64)[..., :2]
    target = np.asarray(target, np.float64)
    variances = (2.0 * np.asarray(sigmas, np.float64)) ** 2
    labelled = target[..., 2] > 0
    d2 = ((pred - target[..., :2]) ** 2).sum(-1)
    e = d2 / variances / (np.asarray(areas, np.float64)[:, None] + np.spacing(1)) / 2.0
    count = labelled.sum(-1)
    total = np.where(labelled, np.exp(-e), 0.0).sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def results_order(indices: np.ndarray) -> np.ndarray:
    """A permutation that lists predictions by their per-prediction index (the results-file order).

    Args:
        indices: (N,) per-prediction indices (integers; position of each prediction in the results file).

    Returns:
        (N,) int64 permutation; a stable sort, so predictions with the same index keep their given order.
    """
    return np.argsort(np.asarray(indices).reshape(-1), kind="stable").astype(np.int64)


class KeypointAP(Metric):
    """Object keypoint similarity AP/AR over a COCO-format ground-truth file.

    Args:
        ground_truth: path of a COCO-format keypoint JSON (or the loaded dict).
        sigmas: (K,) OKS sigmas of the dataset's convention, e.g. ``get_convention("coco17").sigmas``.
        flavour: ``"coco"`` (pycocotools, for COCO and OCHuman) or ``"crowdpose"`` (official CrowdPose
            semantics: box-derived areas, maxDets 20, AP easy/medium/hard by ``crowdIndex``).
        category_id: the person category id of the file.

    ``update(image_ids (N,), keypoints (N, K, 3) [x, y, confidence] pixels, scores (N,), indices (N,))``,
    where ``indices`` are per-prediction indices: each prediction's position in the results file, e.g. the
    dataset sample index. Predictions with equal scores are ranked by it, as pycocotools ranks them by
    results-file order; pass it whenever the predictions come from several processes (DDP), so that the
    result does not depend on how the samples were split among them. Without it, a prediction's index is
    the order in which this process received it (the results-file order of a single process).
    ``compute()`` returns a dict of 0-dim float64 tensors: AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm,
    ARl for "coco"; AP, AP50, AP75, AR, AR50, AR75, AP_easy, AP_medium, AP_hard for "crowdpose".
    Values are fractions in [0, 1]; -1 means no valid ground truth for that number.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(
        self,
        ground_truth: GroundTruthSource,
        sigmas: Sequence[float] | np.ndarray,
        flavour: Flavour = "coco",
        category_id: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if flavour not in ("coco", "crowdpose"):
            raise ValueError(f"flavour must be 'coco' or 'crowdpose', got {flavour!r}")
        self.sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
        self.num_keypoints = int(self.sigmas.shape[0])
        self.flavour = flavour
        self.category_id = category_id
        dataset, self.ground_truth_label = load_keypoint_ground_truth(
            ground_truth,
            self.num_keypoints,
            require_area=flavour == "coco",
            require_crowd_index=flavour == "crowdpose",
        )
        if flavour == "crowdpose":
            with_box_areas(dataset)
        self._coco_gt = coco_from_dataset(dataset)
        self._image_ids = np.array(sorted({im["id"] for im in dataset["images"]}), dtype=np.int64)
        # Every cat state is a 1-D float64 tensor: torchmetrics substitutes a 1-D tensor of the metric's
        # dtype for the states of a process that saw no data, and gathering needs matching rank/dtype.
        # float64 holds integer image ids exactly up to 2**53.
        self.add_state("image_ids", default=[], dist_reduce_fx="cat")
        self.add_state("keypoints", default=[], dist_reduce_fx="cat")
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        # Per-prediction index (results-file position): orders score ties; float64 is exact up to 2**53.
        self.add_state("indices", default=[], dist_reduce_fx="cat")
        self.set_dtype(torch.float64)
        # Next index given to a prediction that comes without one (never reset: only the order matters).
        self._next_index = 0

    @property
    def coco_gt(self) -> COCO:
        """The ground truth as pycocotools sees it (CrowdPose: with its box-derived areas)."""
        return self._coco_gt

    @property
    def stat_names(self) -> tuple[str, ...]:
        """Keys of ``compute()``'s dict, in order."""
        return COCO_STAT_NAMES if self.flavour == "coco" else CROWDPOSE_STAT_NAMES

    def _check(self, image_ids: Tensor, keypoints: Tensor, scores: Tensor) -> None:
        n = image_ids.shape[0]
        if image_ids.ndim != 1 or scores.shape != (n,) or keypoints.shape != (n, self.num_keypoints, 3):
            raise ValueError(
                f"KeypointAP.update expects image_ids (N,), keypoints (N, {self.num_keypoints}, 3) and "
                f"scores (N,); got {tuple(image_ids.shape)}, {tuple(keypoints.shape)}, {tuple(scores.shape)}"
            )
        ids = image_ids.detach().cpu().numpy().astype(np.int64)
        unknown = np.setdiff1d(ids, self._image_ids)
        if unknown.size:
            raise ValueError(
                f"image ids {unknown[:5].tolist()} are not in the ground truth "
                f"{self.ground_truth_label}; predictions must use the file's image ids"
            )

    def update(
        self, image_ids: Tensor, keypoints: Tensor, scores: Tensor, indices: Tensor | None = None
    ) -> None:
        """Add N predicted people.

        Args:
            image_ids: (N,) integer image ids of the ground-truth file.
            keypoints: (N, K, 3) ``[x, y, confidence]`` in image pixels.
            scores: (N,) person scores (higher first; e.g. box score x mean keypoint confidence).
            indices: (N,) integer per-prediction indices, each prediction's position in the results file
                (e.g. the dataset sample index), unique over everything evaluated together; ties in
                ``scores`` are ranked by it. None: the order in which this process receives them.
        """
        image_ids, keypoints, scores = (torch.as_tensor(t) for t in (image_ids, keypoints, scores))
        self._check(image_ids, keypoints, scores)
        n = image_ids.shape[0]
        if indices is None:
            indices = torch.arange(self._next_index, self._next_index + n, dtype=torch.float64)
            self._next_index += n
        else:
            indices = torch.as_tensor(indices)
            if indices.shape != (n,) or indices.is_floating_point() or indices.is_complex():
                raise ValueError(
                    f"KeypointAP.update expects integer indices (N,) = ({n},) like image_ids, got "
                    f"{indices.dtype} {tuple(indices.shape)}"
                )
        self.image_ids.append(image_ids.detach().to(self.device, torch.float64).reshape(-1))
        self.keypoints.append(keypoints.detach().to(self.device, torch.float64).reshape(-1))
        self.scores.append(scores.detach().to(self.device, torch.float64).reshape(-1))
        self.indices.append(indices.detach().to(self.device, torch.float64).reshape(-1))

    def prediction_order(self) -> np.ndarray:
        """(N,) int64 permutation that lists the accumulated predictions by their per-prediction index.

        Applied to the concatenated ``cat`` states (local, or gathered while ``compute`` runs), it restores
        the results-file order whatever the order of the processes' shards.
        """
        if len(self.indices) == 0:
            return np.zeros(0, dtype=np.int64)
        return results_order(dim_zero_cat(self.indices).cpu().numpy())

    def predictions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The accumulated predictions in results-file order (local, or gathered while ``compute`` runs).

        The order is that of the per-prediction indices (``prediction_order``).

        Returns:
            image_ids (N,) int64, keypoints (N, K, 3) float64 pixels, scores (N,) float64.
        """
        if len(self.image_ids) == 0:
            return (np.zeros(0, np.int64), np.zeros((0, self.num_keypoints, 3)), np.zeros(0))
        order = self.prediction_order()
        index = dim_zero_cat(self.indices).cpu().numpy()
        if np.unique(index).size != index.size:
            warnings.warn(
                "KeypointAP: some per-prediction indices repeat (were predictions of several processes "
                "updated without indices?); score ties among them follow the gather order. Pass each "
                "prediction's dataset sample index to update().",
                UserWarning,
                stacklevel=2,
            )
        ids = dim_zero_cat(self.image_ids).cpu().numpy().astype(np.int64)[order]
        kps = dim_zero_cat(self.keypoints).cpu().numpy().reshape(-1, self.num_keypoints, 3)[order]
        sc = dim_zero_cat(self.scores).cpu().numpy()[order]
        return ids, kps, sc

    def evaluate(self, image_ids: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        """Evaluate the given predictions against this metric's ground truth (no state involved).

        Args:
            image_ids: (N,) image ids; keypoints: (N, K, 3) ``[x, y, confidence]`` pixels; scores: (N,),
                listed in results-file order: as pycocotools, predictions with equal scores in an image are
                ranked by their order here.

        Returns:
            the summary numbers by name (``stat_names``), fractions in [0, 1].
        """
        results = keypoint_results(image_ids, keypoints, scores, self.category_id)
        coco_dt = load_results(self._coco_gt, results)
        if self.flavour == "crowdpose":
            return evaluate_crowdpose(self._coco_gt, coco_dt, self.sigmas)
        return evaluate_coco_keypoints(self._coco_gt, coco_dt, self.sigmas)

    def compute(self) -> dict[str, Tensor]:
        """AP/AR over all gathered predictions: a dict of 0-dim float64 tensors (see the class doc)."""
        stats = self.evaluate(*self.predictions())
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in stats.items()}
