"""MatchedMPJPE (CMU Panoptic, CRMH protocol) against a plain numpy transcription of CRMH's handler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ochmr_lit.metrics import PANOPTIC_SEQUENCES, MatchedMPJPE, match_people


def _crmh_numpy(pred: np.ndarray, target: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CRMH: distances over joints visible for every GT person, nearest prediction per GT, divide by J."""
    common = vis.all(axis=0).astype(np.float64)[None, :, None]
    a = (common * target).reshape(len(target), -1)
    b = (common * pred).reshape(len(pred), -1)
    dist = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    idx = dist.argmin(axis=1)
    err = np.sqrt(((pred[idx] - target) ** 2).sum(-1)) * vis * 1000.0
    return err.mean(axis=1), idx


def _scene(rng: np.random.Generator, g: int, extra: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    target = rng.normal(0, 0.3, size=(g, 17, 3))
    pred = np.concatenate(
        [target + rng.normal(0, 0.03, size=target.shape), rng.normal(0, 0.3, (extra, 17, 3))]
    )
    pred = pred[rng.permutation(len(pred))]
    vis = rng.uniform(size=(g, 17)) < 0.8
    vis[:, [7, 9, 10]] = False  # spine, jaw, head: never annotated in Panoptic
    return pred, target, vis


def test_equals_crmh_reference_per_sequence_and_mean() -> None:
    rng = np.random.default_rng(0)
    metric = MatchedMPJPE()
    per_seq: dict[int, list[float]] = {s: [] for s in range(4)}
    for i in range(24):
        pred, target, vis = _scene(rng, int(rng.integers(1, 5)), int(rng.integers(0, 3)))
        seq = i % 3  # the fourth sequence gets no image
        metric.update(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(vis), seq)
        errors, _ = _crmh_numpy(pred, target, vis)
        per_seq[seq].extend(errors.tolist())
    out = metric.compute()
    everyone = sum(per_seq.values(), [])
    assert float(out["mpjpe"]) == pytest.approx(np.mean(everyone), abs=1e-9)
    for s, name in enumerate(PANOPTIC_SEQUENCES[:3]):
        assert float(out[f"mpjpe/{name}"]) == pytest.approx(np.mean(per_seq[s]), abs=1e-9)
    assert np.isnan(float(out[f"mpjpe/{PANOPTIC_SEQUENCES[3]}"]))
    assert float(out["mpjpe_mean_of_sequences"]) == pytest.approx(
        np.mean([np.mean(per_seq[s]) for s in range(3)])
    )
    assert float(out["num_people"]) == len(everyone) and float(out["num_images"]) == 24
    assert float(out["num_unmatched"]) == 0
    assert 10 < float(out["mpjpe"]) < 60  # matched to the right people: ~30 mm noise, not ~500 mm strangers


def test_order_of_predictions_does_not_matter_and_no_alignment() -> None:
    rng = np.random.default_rng(1)
    pred, target, vis = _scene(rng, 3, 2)
    a, b, shifted = MatchedMPJPE(), MatchedMPJPE(), MatchedMPJPE()
    a.update(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(vis))
    b.update(torch.from_numpy(pred[::-1].copy()), torch.from_numpy(target), torch.from_numpy(vis))
    assert float(a.compute()["mpjpe"]) == pytest.approx(float(b.compute()["mpjpe"]), abs=1e-12)
    # no Procrustes and no re-centring: a 10 cm offset of every prediction adds to the error
    shifted.update(
        torch.from_numpy(pred + np.array([0.1, 0, 0])), torch.from_numpy(target), torch.from_numpy(vis)
    )
    assert float(shifted.compute()["mpjpe"]) > float(a.compute()["mpjpe"]) + 30


def test_visible_average_and_hungarian_unmatched() -> None:
    rng = np.random.default_rng(2)
    pred, target, vis = _scene(rng, 3, 0)
    crmh, visible = MatchedMPJPE(), MatchedMPJPE(average="visible")
    for m in (crmh, visible):
        m.update(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(vis))
    errors, idx = _crmh_numpy(pred, target, vis)
    full = np.sqrt(((pred[idx] - target) ** 2).sum(-1)) * 1000
    assert float(visible.compute()["mpjpe"]) == pytest.approx(np.mean((full * vis).sum(1) / vis.sum(1)))
    assert float(visible.compute()["mpjpe"]) > float(crmh.compute()["mpjpe"])  # CRMH divides by all 17

    # two GT people, one prediction: nearest matching gives both the same one (counted as a duplicate),
    # Hungarian leaves one GT person unmatched (counted, not averaged).
    one = pred[idx[:1]]
    nearest, hungarian = MatchedMPJPE(), MatchedMPJPE(matching="hungarian")
    for m in (nearest, hungarian):
        m.update(torch.from_numpy(one), torch.from_numpy(target[:2]), torch.from_numpy(vis[:2]))
    assert (
        float(nearest.compute()["num_duplicate_images"]) == 1 and float(nearest.compute()["num_people"]) == 2
    )
    out = hungarian.compute()
    assert float(out["num_unmatched"]) == 1 and float(out["num_people"]) == 1
    assert match_people(
        torch.from_numpy(one), torch.from_numpy(target[:2]), torch.from_numpy(vis[:2]), "hungarian"
    ).tolist() == [0, -1]


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="sequence code 7"):
        MatchedMPJPE().update(torch.zeros(1, 17, 3), torch.zeros(1, 17, 3), torch.ones(1, 17), 7)
    with pytest.raises(ValueError, match=r"pred \(P, 17, 3\)"):
        MatchedMPJPE().update(torch.zeros(1, 14, 3), torch.zeros(1, 17, 3), torch.ones(1, 17))
