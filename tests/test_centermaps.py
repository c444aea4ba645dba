"""Body centres and centermaps of the context estimator, as ``ochmr_lit.data.centermaps`` defines them.

Centre: mean of the labelled shoulders and hips, else the box centre; maps: HRNet's unnormalised Gaussians
(peak 1, ``sigma`` in map pixels); global map: the pixel-wise maximum over the people whose centre is in the crop.
"""

import numpy as np
import torch

from ochmr_lit.data.centermaps import body_centers, centermap_peaks, gaussian_maps, render_centermaps


def test_body_centre_is_mean_of_labelled_torso_keypoints_else_box_centre():
    kp = np.zeros((2, 17, 3))
    kp[0, 5] = [10, 20, 2]
    kp[0, 6] = [30, 20, 1]
    kp[0, 11] = [10, 60, 2]  # right hip (12) unlabelled
    boxes = np.array([[0, 0, 100, 100], [50, 60, 20, 40]], dtype=float)
    centres = body_centers(kp, boxes)
    np.testing.assert_allclose(centres[0], [(10 + 30 + 10) / 3, (20 + 20 + 60) / 3])
    np.testing.assert_allclose(centres[1], [60, 80])  # no torso keypoint: box centre


def test_gaussian_peak_is_one_at_the_centre_and_sigma_sets_the_width():
    maps = gaussian_maps(torch.tensor([[5.0, 7.0]]), size=16, sigma=2.0)
    assert maps[0, 7, 5] == 1.0
    np.testing.assert_allclose(maps[0, 7, 7].item(), np.exp(-4 / 8), rtol=1e-6)  # 2 px away, sigma 2


def test_local_map_peaks_at_the_target_and_global_only_holds_people_inside_the_crop():
    # identity crop of a 64 px image onto 64 px, maps at 1/4 resolution (16 px)
    affine = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    target = np.array([31.5, 15.5])  # map px ((31.5 + .5) / 4 - .5) = 7.5 -> peak at 7 or 8
    others = np.array([[31.5, 15.5], [7.5, 47.5], [500.0, 500.0]])
    maps = render_centermaps(target, others, affine, crop_size=64, map_size=16, sigma=1.0)
    peaks = centermap_peaks(maps[None])[0]
    assert abs(peaks[0, 0].item() - 7.5) <= 0.5 and abs(peaks[0, 1].item() - 3.5) <= 0.5
    # global: two people inside, the one at (500, 500) is outside the crop and absent
    assert maps[1, 11, 1] > 0.5 and maps[1, 3, 7] > 0.5
    assert maps[1].sum() < 2 * maps[0].sum() + 1e-3
    assert torch.isclose(maps[1], torch.maximum(maps[0], maps[1])).all()
