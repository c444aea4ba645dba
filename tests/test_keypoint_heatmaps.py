"""The auxiliary keypoint heatmap head: target maps, its loss, the model output and the checks of its settings."""

import math

import pytest
import torch

from ochmr_lit.config_checks import check_regressor_model
from ochmr_lit.errors import ConfigError
from ochmr_lit.lit import MeshRegressorModule
from ochmr_lit.models.hmr import MeshRegressor
from ochmr_lit.models.keypoint_heatmaps import keypoint_heatmap_loss, keypoint_target_maps


def test_target_map_peaks_at_the_cell_holding_the_keypoint_and_sums_to_one():
    # 64 px crop, 16 x 16 cells of 4 px: crop px 10 lies in cell 2 (px 7.5 .. 11.5), px 20 in cell 5.
    keypoints = torch.tensor([[[10.0, 20.0, 1.0], [63.0, 0.0, 1.0]]])
    maps, valid = keypoint_target_maps(keypoints, (16, 16), 64, sigma=1.0)
    assert maps.shape == (1, 2, 16, 16) and bool(valid.all())
    assert divmod(int(maps[0, 0].argmax()), 16) == (5, 2)
    assert divmod(int(maps[0, 1].argmax()), 16) == (0, 15)
    torch.testing.assert_close(maps.sum(dim=(-2, -1)), torch.ones(1, 2))
    # the mean of the distribution is the keypoint's cell coordinate, up to the sampling of a 1-cell Gaussian
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    assert float((maps[0, 0] * xs).sum()) == pytest.approx((10 + 0.5) / 4 - 0.5, abs=0.02)
    assert float((maps[0, 0] * ys).sum()) == pytest.approx((20 + 0.5) / 4 - 0.5, abs=0.02)


def test_unlabelled_and_outside_keypoints_get_no_target():
    keypoints = torch.tensor([[[10.0, 20.0, 0.0], [-3.0, 20.0, 1.0], [10.0, 70.0, 1.0], [30.0, 30.0, 1.0]]])
    maps, valid = keypoint_target_maps(keypoints, (16, 16), 64)
    assert valid.tolist() == [[False, False, False, True]]
    assert maps[0, :3].abs().sum() == 0


def test_loss_is_log_cells_for_a_flat_map_and_the_target_entropy_at_its_minimum():
    keypoints = torch.tensor([[[10.0, 20.0, 1.0], [40.0, 50.0, 1.0], [0.0, 0.0, 0.0]]])
    flat = torch.zeros(1, 3, 16, 16, requires_grad=True)
    assert float(keypoint_heatmap_loss(flat, keypoints, 64).detach()) == pytest.approx(math.log(256), rel=1e-6)
    targets, valid = keypoint_target_maps(keypoints, (16, 16), 64)
    ideal = targets.clamp_min(1e-30).log()
    entropy = -(targets * ideal).sum(dim=(-2, -1))[valid].mean()
    assert float(keypoint_heatmap_loss(ideal, keypoints, 64)) == pytest.approx(float(entropy), rel=1e-5)
    # the gradient of a flat map points towards the targets: the keypoint's cell gains, a far one loses
    keypoint_heatmap_loss(flat, keypoints, 64).backward()
    assert flat.grad[0, 0, 5, 2] < 0 < flat.grad[0, 0, 15, 15]
    assert flat.grad[0, 2].abs().sum() == 0  # the unlabelled keypoint takes no part


def test_no_valid_keypoint_gives_zero_loss_with_a_graph():
    logits = torch.randn(2, 17, 16, 16, requires_grad=True)
    loss = keypoint_heatmap_loss(logits, torch.zeros(2, 17, 3), 64)
    assert float(loss) == 0.0
    loss.backward()
    assert logits.grad.abs().sum() == 0


@pytest.mark.parametrize("backbone, crop", [("resnet18", 64), ("resnet50", 96)])
def test_regressor_returns_heatmaps_at_a_quarter_of_the_crop(backbone, crop):
    model = MeshRegressor(backbone, [2], 32, heatmap_keypoints=17).eval()
    out = model(torch.randn(2, 3, crop, crop), torch.rand(2, 2, 16, 16))
    assert out.heatmaps.shape == (2, 17, crop // 4, crop // 4)
    plain = MeshRegressor(backbone, [2], 32)
    assert plain(torch.randn(2, 3, crop, crop), torch.rand(2, 2, 16, 16)).heatmaps is None
    # the head is extra: every key of the plain model is in the one with a head, which adds only heatmap_head.*
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra and all(key.startswith("heatmap_head.") for key in extra)
    assert set(plain.state_dict()) <= set(model.state_dict())


def _batch(size: int = 3) -> dict:
    g = torch.Generator().manual_seed(0)
    keypoints_2d = torch.cat([torch.rand(size, 17, 2, generator=g) * 64, torch.ones(size, 17, 1)], dim=-1)
    return {"image": torch.randn(size, 3, 64, 64, generator=g), "centermaps": torch.rand(size, 2, 16, 16, generator=g),
            "keypoints_2d": keypoints_2d,
            "keypoints_3d": torch.cat([torch.randn(size, 17, 3, generator=g) * 0.3, torch.ones(size, 17, 1)], -1),
            "has_keypoints_3d": torch.ones(size, dtype=torch.bool), "has_smpl": torch.ones(size, dtype=torch.bool),
            "smpl_pose": torch.randn(size, 72, generator=g) * 0.2, "smpl_betas": torch.zeros(size, 10),
            "gender": torch.zeros(size, dtype=torch.long)}


def test_module_trains_the_head_through_its_weighted_loss():
    module = MeshRegressorModule(backbone="resnet18", conorm_depths=[2], hidden_channels=16, crop_size=64,
                                 context_source="gt", heatmap_keypoints=17, channels_last=False,
                                 loss_weights={"keypoint_heatmaps": 0.5})
    batch = _batch()
    pred = module.predict_batch(batch)
    terms = module.compute_losses(batch, pred)
    assert "keypoint_heatmaps" in terms and float(terms["keypoint_heatmaps"]) > 0
    terms["total"].backward()
    head = module.model.heatmap_head
    assert head.classifier.weight.grad.abs().sum() > 0
    assert module.model.layer1[0].conv1.weight.grad.abs().sum() > 0
    # without the head there is no such term
    plain = MeshRegressorModule(backbone="resnet18", conorm_depths=[2], hidden_channels=16, crop_size=64,
                                context_source="gt", channels_last=False)
    assert "keypoint_heatmaps" not in plain.compute_losses(batch, plain.predict_batch(batch))


@pytest.mark.parametrize("values, message", [
    ({"heatmap_keypoints": 17}, "model.heatmap_keypoints=17 adds a heatmap head that nothing trains"),
    ({"loss_weights": {"keypoint_heatmaps": 0.5}}, "model.loss_weights.keypoint_heatmaps=0.5 weighs a heatmap head"),
    ({"heatmap_keypoints": -1, "loss_weights": {"keypoint_heatmaps": 0.5}}, "heatmap_keypoints must be 0"),
])
def test_settings_that_do_not_fit_together_stop_before_work(values, message):
    config = {"backbone": "resnet18", "conorm_depths": [2], "context_source": "gt", **values}
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        check_regressor_model(config)
    with pytest.raises(ValueError):
        MeshRegressorModule(**{**config, "crop_size": 64})
