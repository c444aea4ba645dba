"""MPJPE of multi-person predictions matched to ground-truth people (CMU Panoptic, CRMH protocol).

CRMH's evaluation (JiangWenPL/multiperson, ``mmdetection/mmdet/core/utils/eval_utils.py``,
``PanopticEvalHandler``), reproduced with ``matching="nearest"`` and ``average="all_joints"``:

* pred and GT joints are root-relative (17 H36M-ordered joints; no Procrustes, no scale);
* matching is by 3D pose: the Euclidean norm of the flattened difference of the joints that are
  visible for *every* GT person of the image; each GT person takes its nearest prediction (two GT
  people may take the same prediction: such images are counted in ``num_duplicate_images``);
* a person's error is ``sum_j(visible_j * ||pred_j - gt_j||) / J``: invisible joints contribute zero
  but stay in the denominator; the reported number is the mean over GT people, in mm.

``matching="hungarian"`` makes a one-to-one assignment instead (scipy's ``linear_sum_assignment`` on
the same distances; GT people left without a prediction are counted in ``num_unmatched`` and left out
of the mean), and ``average="visible"`` divides by the number of visible joints instead of J.
Results are kept per sequence (integer codes naming ``sequence_names``) and as their mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

#: The four CMU Panoptic test sequences of the CRMH protocol.
PANOPTIC_SEQUENCES: tuple[str, ...] = (
    "160422_haggling1",
    "160422_mafia2",
    "160422_ultimatum1",
    "160906_pizza1",
)

Matching = Literal["nearest", "hungarian"]
Average = Literal["all_joints", "visible"]


def match_people(pred: Tensor, target: Tensor, visibility: Tensor, matching: Matching = "nearest") -> Tensor:
    """Index of the prediction matched to each GT person.

    Args:
        pred: (P, J, 3) root-relative predicted joints, metres.
        target: (G, J, 3) root-relative GT joints, metres.
        visibility: (G, J) bool.
        matching: ``"nearest"`` (CRMH: each GT person takes its nearest prediction) or ``"hungarian"``
            (one-to-one assignment minimising the summed distance).

    Returns:
        (G,) long: the matched prediction index, -1 where no prediction was assigned.
    """
    g, p = target.shape[0], pred.shape[0]
    if p == 0 or g == 0:
        return torch.full((g,), -1, dtype=torch.long)
    common = visibility.bool().all(dim=0).to(pred.dtype)[None, :, None]  # joints visible for all GT people
    a = (common * target).reshape(g, -1)
    b = (common * pred).reshape(p, -1)
    dist = torch.cdist(a[None], b[None])[0]  # (G, P)
    if matching == "nearest":
        return dist.argmin(dim=1)
    if matching == "hungarian":
        rows, cols = linear_sum_assignment(dist.cpu().numpy())
        out = torch.full((g,), -1, dtype=torch.long)
        out[torch.as_tensor(rows, dtype=torch.long)] = torch.as_tensor(cols, dtype=torch.long)
        return out
    raise ValueError(f"matching must be 'nearest' or 'hungarian', got {matching!r}")


def matched_person_errors(
    pred: Tensor, target: Tensor, visibility: Tensor, matching: Matching = "nearest", average: Average = "all_joints"
) -> tuple[Tensor, Tensor]:
    """Each GT person's error against its matched prediction (one image).

    Args:
        pred: (P, J, 3) root-relative predicted joints, metres.
        target: (G, J, 3) root-relative GT joints, metres.
        visibility: (G, J) bool, True where the GT joint is valid.
        matching: see :func:`match_people`.
        average: ``"all_joints"`` (divide the summed visible-joint errors by J, as CRMH) or ``"visible"``.

    Returns:
        errors (G,) float64 mm (NaN where no prediction was matched) and matched (G,) long (-1: none).
    """
    pred = pred.detach().to(torch.float64).cpu()
    target = target.detach().to(torch.float64).cpu()
    vis = visibility.detach().bool().cpu()
    matched = match_people(pred, target, vis, matching)
    ok = matched >= 0
    errors = torch.full((target.shape[0],), torch.nan, dtype=torch.float64)
    if ok.any():
        err = torch.linalg.vector_norm(pred[matched[ok]] - target[ok], dim=-1) * 1000.0 * vis[ok]  # (M, J) mm
        denom = float(target.shape[1]) if average == "all_joints" else vis[ok].sum(dim=1).clamp(min=1)
        errors[ok] = err.sum(dim=1) / denom
    return errors, matched


class MatchedMPJPE(Metric):
    """Visibility-masked MPJPE (mm) of predictions matched to GT people, per sequence and overall.

    Args:
        num_joints: J (17 for the CRMH protocol).
        sequence_names: names of the sequence codes used in ``update`` (default: the CRMH four).
        matching: ``"nearest"`` (CRMH) or ``"hungarian"``.
        average: ``"all_joints"`` (CRMH: divide by J) or ``"visible"`` (divide by the visible joints).

    ``update`` takes one image. ``compute()`` returns a dict of 0-dim float64 tensors: ``mpjpe`` (mean
    over all matched GT people), ``mpjpe_mean_of_sequences`` (mean of the per-sequence values that have
    data), ``mpjpe/<sequence>`` for each sequence, and the counts ``num_people``, ``num_unmatched``,
    ``num_images``, ``num_duplicate_images``.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(
        self,
        num_joints: int = 17,
        sequence_names: Sequence[str] = PANOPTIC_SEQUENCES,
        matching: Matching = "nearest",
        average: Average = "all_joints",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if matching not in ("nearest", "hungarian"):
            raise ValueError(f"matching must be 'nearest' or 'hungarian', got {matching!r}")
        if average not in ("all_joints", "visible"):
            raise ValueError(f"average must be 'all_joints' or 'visible', got {average!r}")
        self.num_joints = int(num_joints)
        self.sequence_names = tuple(sequence_names)
        self.matching: Matching = matching
        self.average: Average = average
        s = len(self.sequence_names)
        f64 = torch.float64
        self.add_state("seq_error_sum", default=torch.zeros(s, dtype=f64), dist_reduce_fx="sum")
        self.add_state("seq_people", default=torch.zeros(s, dtype=f64), dist_reduce_fx="sum")
        self.add_state("seq_unmatched", default=torch.zeros(s, dtype=f64), dist_reduce_fx="sum")
        self.add_state("num_images", default=torch.tensor(0.0, dtype=f64), dist_reduce_fx="sum")
        self.add_state("num_duplicate_images", default=torch.tensor(0.0, dtype=f64), dist_reduce_fx="sum")
        self.set_dtype(f64)

    def update(self, pred: Tensor, target: Tensor, visibility: Tensor, sequence: int = 0) -> None:
        """Add one image.

        Args:
            pred: (P, J, 3) root-relative predicted joints of every predicted person, metres.
            target: (G, J, 3) root-relative GT joints, metres.
            visibility: (G, J) bool (or 0/1), True where the GT joint is valid.
            sequence: integer code: index into ``sequence_names``.
        """
        j = self.num_joints
        if pred.ndim != 3 or pred.shape[1:] != (j, 3) or target.ndim != 3 or target.shape[1:] != (j, 3):
            raise ValueError(
                f"MatchedMPJPE.update expects pred (P, {j}, 3) and target (G, {j}, 3) metres, "
                f"got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        if tuple(visibility.shape) != tuple(target.shape[:2]):
            raise ValueError(
                f"visibility must be (G, J) = {tuple(target.shape[:2])}, got {tuple(visibility.shape)}"
            )
        if not 0 <= int(sequence) < len(self.sequence_names):
            raise ValueError(
                f"sequence code {sequence} is outside 0..{len(self.sequence_names) - 1} "
                f"({self.sequence_names})"
            )
        errors, matched = matched_person_errors(pred, target, visibility, self.matching, self.average)
        ok = matched >= 0
        s = int(sequence)
        self.num_images += 1
        if ok.any():
            sel = matched[ok]
            if torch.unique(sel).numel() < sel.numel():
                self.num_duplicate_images += 1
            self.seq_error_sum[s] += errors[ok].sum().to(self.seq_error_sum)
            self.seq_people[s] += float(ok.sum())
        self.seq_unmatched[s] += float((~ok).sum())

    def compute(self) -> dict[str, Tensor]:
        """Per-sequence and overall MPJPE in mm with the counts (see the class doc)."""
        f64 = torch.float64
        per_seq = torch.where(
            self.seq_people > 0, self.seq_error_sum / self.seq_people.clamp(min=1), torch.nan
        )
        people = self.seq_people.sum()
        has = self.seq_people > 0
        out = {
            "mpjpe": (self.seq_error_sum.sum() / people) if people > 0 else torch.tensor(math.nan, dtype=f64),
            "mpjpe_mean_of_sequences": per_seq[has].mean()
            if has.any()
            else torch.tensor(math.nan, dtype=f64),
        }
        for name, value in zip(self.sequence_names, per_seq, strict=True):
            out[f"mpjpe/{name}"] = value
        out["num_people"] = people
        out["num_unmatched"] = self.seq_unmatched.sum()
        out["num_images"] = self.num_images.clone()
        out["num_duplicate_images"] = self.num_duplicate_images.clone()
        return out


class MatchedMPJPEByImage(Metric):
    """:class:`MatchedMPJPE` over people that arrive one at a time (top-down crops), grouped by image.

    A top-down regressor sees each person of an image in its own crop, possibly in different batches or
    processes. Each ``update`` row is one GT person and the prediction from its crop; ``compute()`` gathers
    all rows, groups them by image id, and evaluates every image as CRMH does: the image's predictions are
    all its rows' predictions, its GT people all its rows' targets.

    Args:
        num_joints, sequence_names, matching, average: as :class:`MatchedMPJPE`.

    ``compute()`` returns :class:`MatchedMPJPE`'s dict; :meth:`per_person` the per-GT-person errors.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, num_joints: int = 17, sequence_names: Sequence[str] = PANOPTIC_SEQUENCES,
                 matching: Matching = "nearest", average: Average = "all_joints", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = {"num_joints": int(num_joints), "sequence_names": tuple(sequence_names),
                         "matching": matching, "average": average}
        MatchedMPJPE(**self.settings)  # checks the settings
        for name in ("image_ids", "sequences", "sample_ids", "datasets", "pred", "target", "visibility"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self.set_dtype(torch.float64)

    def update(self, image_ids: Tensor, pred: Tensor, target: Tensor, visibility: Tensor, sequences: Tensor,
               sample_ids: Tensor, datasets: Tensor) -> None:
        """Add B people.

        Args:
            image_ids: (B,) image of each person (unique over the evaluated split).
            pred: (B, J, 3) root-relative predicted joints of the person's crop, metres.
            target: (B, J, 3) root-relative GT joints, metres.
            visibility: (B, J) bool, True where the GT joint is valid.
            sequences: (B,) sequence codes (index into ``sequence_names``).
            sample_ids, datasets: (B,) the row key (dataset-level sample index, dataset code).
        """
        j, b = self.settings["num_joints"], pred.shape[0]
        if pred.shape != (b, j, 3) or target.shape != (b, j, 3) or tuple(visibility.shape) != (b, j):
            raise ValueError(f"MatchedMPJPEByImage.update expects pred and target (B, {j}, 3) metres and "
                             f"visibility (B, {j}); got {tuple(pred.shape)}, {tuple(target.shape)}, "
                             f"{tuple(visibility.shape)}")
        codes = torch.as_tensor(sequences).reshape(-1)
        bad = (codes < 0) | (codes >= len(self.settings["sequence_names"]))
        if bool(bad.any()):
            raise ValueError(f"sequence codes {sorted(set(codes[bad].tolist()))} are outside 0.."
                             f"{len(self.settings['sequence_names']) - 1} ({self.settings['sequence_names']}); "
                             "evaluate only the protocol's sequences")
        for name, value in (("image_ids", image_ids), ("sequences", codes), ("sample_ids", sample_ids),
                            ("datasets", datasets), ("pred", pred), ("target", target),
                            ("visibility", visibility)):
            getattr(self, name).append(torch.as_tensor(value).detach().to(self.device, torch.float64).reshape(-1))

    def _rows(self) -> dict[str, np.ndarray]:
        j = self.settings["num_joints"]
        if len(self.image_ids) == 0:
            return {"image_ids": np.zeros(0), "sequences": np.zeros(0), "sample_ids": np.zeros(0),
                    "datasets": np.zeros(0), "pred": np.zeros((0, j, 3)), "target": np.zeros((0, j, 3)),
                    "visibility": np.zeros((0, j), bool)}
        cols = {name: dim_zero_cat(getattr(self, name)).cpu().numpy() for name in (
            "image_ids", "sequences", "sample_ids", "datasets", "pred", "target", "visibility")}
        cols["pred"] = cols["pred"].reshape(-1, j, 3)
        cols["target"] = cols["target"].reshape(-1, j, 3)
        cols["visibility"] = cols["visibility"].reshape(-1, j) > 0
        # one row per (dataset, sample): a padding sampler may repeat people
        _, first = np.unique(np.stack([cols["datasets"], cols["sample_ids"]], axis=1), axis=0, return_index=True)
        return {name: value[np.sort(first)] for name, value in cols.items()}

    def _evaluate(self) -> tuple[MatchedMPJPE, dict[str, np.ndarray]]:
        rows = self._rows()
        metric = MatchedMPJPE(**self.settings)
        errors = np.full(len(rows["image_ids"]), np.nan)
        matched_ids = np.full(len(rows["image_ids"]), -1, dtype=np.int64)
        for image in np.unique(rows["image_ids"]):
            members = np.flatnonzero(rows["image_ids"] == image)
            pred, target = torch.from_numpy(rows["pred"][members]), torch.from_numpy(rows["target"][members])
            vis = torch.from_numpy(rows["visibility"][members])
            sequence = int(rows["sequences"][members[0]])
            metric.update(pred, target, vis, sequence)
            err, matched = matched_person_errors(pred, target, vis, metric.matching, metric.average)
            errors[members] = err.numpy()
            ok = matched.numpy() >= 0
            matched_ids[members[ok]] = rows["sample_ids"][members[matched.numpy()[ok]]].astype(np.int64)
        table = {"sample_id": rows["sample_ids"].astype(np.int64), "dataset": rows["datasets"].astype(np.int64),
                 "image_id": rows["image_ids"].astype(np.int64), "sequence": rows["sequences"].astype(np.int64),
                 "matched_sample_id": matched_ids, "error_mm": errors}
        return metric, table

    def compute(self) -> dict[str, Tensor]:
        """:class:`MatchedMPJPE`'s results over all gathered people, grouped by image."""
        return self._evaluate()[0].compute()

    def per_person(self) -> dict[str, np.ndarray]:
        """One row per GT person (gathered over processes), sorted by (dataset, sample_id).

        Returns:
            ``sample_id``, ``dataset``, ``image_id``, ``sequence``, ``matched_sample_id`` (whose crop's
            prediction was matched; -1: none) and ``error_mm`` (NaN: unmatched).
        """
        with self.sync_context():
            table = self._evaluate()[1]
        order = np.lexsort((table["sample_id"], table["dataset"]))
        return {name: value[order] for name, value in table.items()}
