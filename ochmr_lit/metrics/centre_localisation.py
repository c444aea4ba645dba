"""How well a context estimator finds body centres: the target's centre and everyone's, in a crop's centermaps.

The regressor's predicted context is the decoded centres (the target's sub-pixel centre of the local map, the
local maxima of the global map), so the context estimator is scored on those, not on the raw maps:

* ``peak_dist``: mean distance between the predicted and the true target centre, as a fraction of the map side;
* ``pck``: share of people whose predicted target centre lies within ``threshold`` x map side of the true one;
* ``on_other``: share of people whose predicted target centre misses their own but lies within ``threshold`` x map
  side of another person's true centre (the global map's centres farther than that from the target's): the
  estimator marked someone else, the failure a distractor causes, rather than placing the target imprecisely;
* ``global_recall`` / ``global_precision``: share of the true global centres with a predicted one within
  ``global_radius`` x map side, and share of the predicted ones with a true one there (a greedy one-to-one
  matching, nearest pairs first).

Centres are sub-pixel map coordinates; an arg-max on the map grid alone would quantise them to whole cells, so
that at 64 px crops (16-cell maps) a threshold of 0.05 of the side (0.8 cell) would count exact-cell hits only.
States are sums, so the metric synchronises under DDP.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric


def match_centres(pred: Tensor, true: Tensor, radius: float) -> int:
    """Number of one-to-one pairs of predicted and true centres closer than ``radius``, nearest pairs first.

    Args:
        pred: (P, 2) predicted centres. true: (T, 2) true centres, same units as ``radius``.
    """
    if len(pred) == 0 or len(true) == 0:
        return 0
    dist = torch.cdist(pred.double(), true.double())
    order = torch.argsort(dist.flatten())
    used_pred, used_true, matches = set(), set(), 0
    for flat in order.tolist():
        i, j = divmod(flat, dist.shape[1])
        if dist[i, j] > radius:
            break
        if i in used_pred or j in used_true:
            continue
        used_pred.add(i)
        used_true.add(j)
        matches += 1
    return matches


class CentreLocalisation(Metric):
    """Target-centre distance and PCK, and global-centre recall and precision, over a split.

    Args:
        threshold: fraction of the map side under which a target centre counts as found (``pck``).
        global_radius: fraction of the map side under which a predicted global centre matches a true one.
    """

    full_state_update = False

    def __init__(self, threshold: float = 0.05, global_radius: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        if threshold <= 0 or global_radius <= 0:
            raise ValueError(f"CentreLocalisation: threshold={threshold} and global_radius={global_radius} "
                             "must be positive fractions of the map side")
        self.threshold = float(threshold)
        self.global_radius = float(global_radius)
        for name in ("dist_sum", "found", "on_other", "people", "global_matched", "global_true", "global_pred"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred_local: Tensor, true_local: Tensor, pred_global: Sequence[Tensor],
               true_global: Sequence[Tensor], map_size: int) -> None:
        """Add a batch.

        Args:
            pred_local, true_local: (B, 2) target centres, map px.
            pred_global, true_global: B tensors (K_b, 2) of everyone's centres, map px.
            map_size: side of the maps, px.
        """
        if pred_local.shape != true_local.shape or pred_local.ndim != 2 or pred_local.shape[-1] != 2:
            raise ValueError(f"CentreLocalisation: target centres must both be (B, 2), got "
                             f"{tuple(pred_local.shape)} and {tuple(true_local.shape)}")
        if not len(pred_global) == len(true_global) == len(pred_local):
            raise ValueError("CentreLocalisation: one list of global centres per person, for predictions and truth")
        dist = (pred_local.double() - true_local.double()).norm(dim=-1) / map_size
        self.dist_sum += dist.sum()
        found = dist <= self.threshold
        self.found += found.sum()
        self.people += len(dist)
        radius = self.threshold * map_size
        for i, (pred, true) in enumerate(zip(pred_global, true_global, strict=True)):
            self.global_matched += match_centres(pred, true, self.global_radius * map_size)
            self.global_true += len(true)
            self.global_pred += len(pred)
            others = true[(true.double() - true_local[i].double()).norm(dim=-1) > radius]
            if not found[i] and len(others):
                self.on_other += bool(((others.double() - pred_local[i].double()).norm(dim=-1) <= radius).any())

    def compute(self) -> dict[str, Tensor]:
        """``peak_dist``, ``pck``, ``on_other``, ``global_recall`` and ``global_precision`` (NaN where nothing was
        counted)."""
        nan = torch.tensor(float("nan"), dtype=torch.float64)

        def ratio(num: Tensor, den: Tensor) -> Tensor:
            return num / den if den > 0 else nan

        return {"peak_dist": ratio(self.dist_sum, self.people), "pck": ratio(self.found, self.people),
                "on_other": ratio(self.on_other, self.people),
                "global_recall": ratio(self.global_matched, self.global_true),
                "global_precision": ratio(self.global_matched, self.global_pred)}
