"""The limb keypoints' 2D error in crop px: against a numpy reference, exact cases, and in the results table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.eval.references import REFERENCE_LABELS
from ochmr_lit.eval.results_files import depth_split_table
from ochmr_lit.metrics.keypoint_pixel_error import (
    COCO17_LIMB_KEYPOINTS,
    CentredKeypointPixelError,
    KeypointPixelError,
)


def test_limb_keypoints_are_the_twelve_joints_coco_and_lsp_share() -> None:
    names = [get_convention("coco17").joint_names[i] for i in COCO17_LIMB_KEYPOINTS]
    assert len(names) == 12 and not any(n in names for n in ("nose", "left_eye", "right_ear"))
    assert names[0] == "left_shoulder" and names[-1] == "right_ankle"


def test_pixel_error_equals_a_per_person_numpy_mean_over_labelled_keypoints() -> None:
    rng = np.random.default_rng(0)
    target = rng.uniform(0, 96, size=(23, 12, 2))
    pred = target + rng.normal(0, 3, size=target.shape)
    labelled = rng.uniform(size=(23, 12)) < 0.7
    labelled[4] = False  # nobody labelled: left out, counted as empty
    pred[~labelled] = np.nan  # what an unlabelled slot holds must not matter
    metric = KeypointPixelError()
    for rows in np.array_split(np.arange(23), 3):
        metric.update(torch.from_numpy(pred[rows]), torch.from_numpy(target[rows]),
                      mask=torch.from_numpy(labelled[rows]))
    per_person = [np.linalg.norm(pred[i] - target[i], axis=-1)[labelled[i]].mean()
                  for i in range(23) if labelled[i].any()]
    assert float(metric.compute()) == pytest.approx(float(np.mean(per_person)), abs=1e-12)
    assert int(metric.num_empty) == 1 and int(metric.num_samples) == 22
    per_keypoint = [np.linalg.norm(pred[:, k] - target[:, k], axis=-1)[labelled[:, k]].mean() for k in range(12)]
    np.testing.assert_allclose(metric.per_keypoint().numpy(), per_keypoint, rtol=0, atol=1e-12)


def test_a_shift_of_three_and_four_pixels_is_five_pixels_no_alignment() -> None:
    target = torch.rand(5, 12, 2) * 64
    metric = KeypointPixelError()
    metric.update(target + torch.tensor([3.0, 4.0]), target)
    assert float(metric.compute()) == pytest.approx(5.0, abs=1e-5)
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(float(metric.compute()))  # nobody measured: NaN, not 0


def test_centring_removes_where_the_person_was_placed_but_not_the_articulation() -> None:
    rng = np.random.default_rng(1)
    target = torch.from_numpy(rng.uniform(0, 96, size=(7, 12, 2)))
    labelled = torch.from_numpy(rng.uniform(size=(7, 12)) < 0.8)
    shifted = target + torch.from_numpy(rng.normal(0, 10, size=(7, 1, 2)))  # a whole person misplaced
    centred = CentredKeypointPixelError()
    centred.update(shifted, target, mask=labelled)
    assert float(centred.compute()) == pytest.approx(0.0, abs=1e-9)
    # one joint off by 12 px: centring spreads its offset over the person's n labelled joints, 12 / n each,
    # so the error is ((n - 1) * 12 / n + 12 (n - 1) / n) / n = 24 (n - 1) / n^2 px
    bent = target.clone()
    bent[:, 0, 0] += 12.0
    every = torch.ones(7, 12, dtype=torch.bool)
    centred.reset()
    centred.update(bent + 5.0, target, mask=every)
    assert float(centred.compute()) == pytest.approx(24 * 11 / 144, abs=1e-9)
    plain = KeypointPixelError()
    plain.update(shifted, target, mask=labelled)
    assert float(plain.compute()) > 1.0


def test_wrong_shapes_name_the_expected_layout() -> None:
    with pytest.raises(ValueError, match=r"\(B, N, 2\) crop px"):
        KeypointPixelError().update(torch.zeros(2, 12, 3), torch.zeros(2, 12, 3))
    with pytest.raises(ValueError, match="built for 12 points"):
        KeypointPixelError().update(torch.zeros(2, 17, 2), torch.zeros(2, 17, 2))


def test_results_table_shows_the_pixel_error_beside_the_image_plane_where_measured() -> None:
    model = {"pa_mpjpe": 66.0, "pa_mpjpe_depth": 44.0, "pa_mpjpe_plane": 41.5, "kp2d_px": 2.34,
             "kp2d_px_centred": 1.71}
    constant = {"pa_mpjpe": 86.2, "pa_mpjpe_depth": 49.2, "pa_mpjpe_plane": 62.2, "kp2d_px": 9.87}
    table = depth_split_table(model, {"constant": constant})
    lines = table.splitlines()
    assert lines[0] == "| source | PA-MPJPE | depth | image plane | 2D limbs (px) | centred (px) |"
    assert lines[2] == "| model | 66.0 | 44.0 | 41.5 | 2.3 | 1.7 |"
    assert lines[3] == f"| {REFERENCE_LABELS['constant']} | 86.2 | 49.2 | 62.2 | 9.9 | - |"  # older file: no centred
    # not measured (protocols without keypoint labels, or older metrics files): the four columns as before
    assert depth_split_table({**model, "kp2d_px": math.nan}).splitlines()[0].count("|") == 5
