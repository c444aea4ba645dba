"""The context estimator's validation scores: sub-pixel target-centre distance and PCK, global-centre recall.

The scores are computed on decoded centres (what the regressor's predicted context is made of), so a centre half
a map cell off counts as half a cell off, not as 0 or 1 whole cells as an arg-max on the grid would.
"""

import math

import pytest
import torch

from ochmr_lit.data.predicted_centres import decode_centres, render_maps
from ochmr_lit.metrics import CentreLocalisation, match_centres

SIZE = 16


def _maps(local: torch.Tensor, others: list[torch.Tensor]) -> torch.Tensor:
    return render_maps(local, others, SIZE, sigma=2.0)


def _score(metric: CentreLocalisation, pred: torch.Tensor, true: torch.Tensor) -> None:
    pred_local, pred_global = decode_centres(pred)
    true_local, true_global = decode_centres(true)
    metric.update(pred_local, true_local, pred_global, true_global, map_size=SIZE)


def test_subpixel_offsets_of_the_target_centre_are_measured_as_they_are():
    true_local = torch.tensor([[7.2, 6.9], [3.6, 10.1], [11.4, 4.5]])
    offsets = torch.tensor([[0.3, 0.4], [0.0, 0.5], [1.2, 1.6]])  # 0.5, 0.5 and 2.0 cells
    others = [torch.zeros(0, 2)] * 3
    metric = CentreLocalisation(threshold=0.05)  # 0.8 cell of a 16-cell map
    _score(metric, _maps(true_local + offsets, others), _maps(true_local, others))
    scores = metric.compute()
    assert scores["peak_dist"].item() == pytest.approx((0.5 + 0.5 + 2.0) / 3 / SIZE, abs=2e-3)
    assert scores["pck"].item() == pytest.approx(2 / 3)
    assert math.isnan(scores["global_recall"].item()) and math.isnan(scores["global_precision"].item())


def test_global_recall_and_precision_count_one_to_one_matches_within_the_radius():
    local = torch.tensor([[8.0, 8.0]])
    true_others = [torch.tensor([[8.0, 8.0], [2.0, 3.0], [13.0, 12.0]])]
    # two found (0.8 and 0.6 cells off, radius 0.1 x 16 = 1.6 cells), one missed, one false centre far away
    pred_others = [torch.tensor([[8.0, 8.8], [2.6, 3.0], [13.0, 2.0]])]
    metric = CentreLocalisation(threshold=0.05, global_radius=0.1)
    _score(metric, _maps(local, pred_others), _maps(local, true_others))
    scores = metric.compute()
    assert scores["global_recall"].item() == pytest.approx(2 / 3)
    assert scores["global_precision"].item() == pytest.approx(2 / 3)
    assert scores["pck"].item() == 1.0 and scores["peak_dist"].item() < 1e-3


def test_a_target_centre_on_another_persons_centre_is_told_from_an_imprecise_one():
    true_local = torch.tensor([[8.0, 8.0], [8.0, 8.0], [8.0, 8.0], [8.0, 8.0]])
    neighbour = torch.tensor([[11.0, 8.0]])  # another person 3 cells to the right
    true_others = [torch.cat([true_local[i : i + 1], neighbour]) for i in range(4)]
    # found; on the neighbour (0.3 cell off it); 1.5 cells off both (a miss, not a swap); found
    pred_local = torch.tensor([[8.3, 8.0], [10.7, 8.0], [9.5, 8.0], [7.8, 8.2]])
    metric = CentreLocalisation(threshold=0.05)  # 0.8 cell
    metric.update(pred_local, true_local, true_others, true_others, map_size=SIZE)
    scores = metric.compute()
    assert scores["pck"].item() == pytest.approx(2 / 4)
    assert scores["on_other"].item() == pytest.approx(1 / 4)
    # a target with nobody else in the crop cannot be swapped
    alone = CentreLocalisation(threshold=0.05)
    alone.update(torch.tensor([[12.0, 8.0]]), torch.tensor([[8.0, 8.0]]), [torch.zeros(0, 2)],
                 [torch.tensor([[8.0, 8.0]])], map_size=SIZE)
    assert alone.compute()["on_other"].item() == 0.0 and alone.compute()["pck"].item() == 0.0


def test_a_centre_is_matched_once_and_nearest_pairs_come_first():
    true = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    assert match_centres(torch.tensor([[0.5, 0.0], [0.2, 0.0]]), true, radius=1.0) == 1
    assert match_centres(torch.tensor([[0.5, 0.0], [9.0, 0.0]]), true, radius=1.0) == 2
    assert match_centres(torch.tensor([[0.5, 0.0], [8.0, 0.0]]), true, radius=1.0) == 1
    assert match_centres(torch.zeros(0, 2), true, radius=1.0) == 0


def test_scores_merged_from_two_processes_equal_one_pass_over_both_halves():
    generator = torch.Generator().manual_seed(0)
    true_local = 2 + 12 * torch.rand(8, 2, generator=generator)
    pred_local = true_local + 0.8 * torch.randn(8, 2, generator=generator)
    true_others = [torch.cat([true_local[i : i + 1], 2 + 12 * torch.rand(2, 2, generator=generator)]) for i in range(8)]
    pred_others = [t + 0.5 * torch.randn(t.shape, generator=generator) for t in true_others]
    pred, true = _maps(pred_local, pred_others), _maps(true_local, true_others)
    whole, first, second = (CentreLocalisation() for _ in range(3))
    _score(whole, pred, true)
    _score(first, pred[:5], true[:5])
    _score(second, pred[5:], true[5:])
    first.merge_state(second)  # what the sum states do under DDP
    for key, value in whole.compute().items():
        assert first.compute()[key].item() == pytest.approx(value.item(), rel=1e-9), key


def test_thresholds_must_be_positive():
    with pytest.raises(ValueError, match="threshold=0"):
        CentreLocalisation(threshold=0.0)
