"""HRNet: official structure, key names and size; the context estimator's output layout."""

from __future__ import annotations

import pytest
import torch

from ochmr_lit.models import ContextEstimator, HRNet, HRNetConfig


@pytest.fixture(scope="module")
def hrnet_w32() -> HRNet:
    torch.manual_seed(0)
    return HRNet(width=32, num_joints=17)


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_w32_parameter_count(hrnet_w32):
    # The official pose_hrnet_w32 (lib/models/pose_hrnet.py with w32_256x192 config, 17 joints) built and
    # counted: 28,536,113 parameters, 1754 state-dict entries -- "28.5M" in the official model zoo.
    n = _n_params(hrnet_w32)
    assert n == 28_536_113
    assert round(n / 1e6, 1) == 28.5
    assert len(hrnet_w32.state_dict()) == 1754
    # Without the 17-joint 1x1 final layer (32*17 + 17 parameters).
    assert _n_params(HRNet(width=32, num_joints=None)) == 28_536_113 - 561


def test_w48_parameter_count():
    # Official pose_hrnet_w48 with 17 joints: 63,595,745 ("63.6M" in the official model zoo).
    n = _n_params(HRNet(width=48, num_joints=17))
    assert n == 63_595_745 and round(n / 1e6, 1) == 63.6


def test_w32_config():
    cfg = HRNetConfig.from_width(32)
    assert [s.num_modules for s in (cfg.stage2, cfg.stage3, cfg.stage4)] == [1, 4, 3]
    assert cfg.stage4.num_channels == (32, 64, 128, 256) and cfg.stage4.num_blocks == (4, 4, 4, 4)
    assert HRNetConfig.from_width(48).stage4.num_channels == (48, 96, 192, 384)


# Key names and shapes of the official COCO checkpoint (pose_hrnet_w32_256x192.pth).
OFFICIAL_KEYS = {
    "conv1.weight": (64, 3, 3, 3),
    "bn2.running_var": (64,),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.3.conv3.weight": (256, 64, 1, 1),
    "transition1.0.0.weight": (32, 256, 3, 3),
    "transition1.1.0.0.weight": (64, 256, 3, 3),
    "transition2.2.0.0.weight": (128, 64, 3, 3),
    "transition3.3.0.1.running_mean": (256,),
    "stage2.0.branches.1.3.conv2.weight": (64, 64, 3, 3),
    "stage2.0.fuse_layers.0.1.0.weight": (32, 64, 1, 1),
    "stage2.0.fuse_layers.1.0.0.0.weight": (64, 32, 3, 3),
    "stage3.3.fuse_layers.2.0.0.0.weight": (32, 32, 3, 3),
    "stage3.3.fuse_layers.2.0.1.0.weight": (128, 32, 3, 3),
    "stage3.3.fuse_layers.2.1.0.0.weight": (128, 64, 3, 3),
    "stage4.2.branches.3.3.bn2.weight": (256,),
    "stage4.2.fuse_layers.0.3.0.weight": (32, 256, 1, 1),
    "stage4.1.fuse_layers.3.0.2.0.weight": (256, 32, 3, 3),
    "final_layer.weight": (17, 32, 1, 1),
    "final_layer.bias": (17,),
}


def test_official_key_names(hrnet_w32):
    sd = hrnet_w32.state_dict()
    for key, shape in OFFICIAL_KEYS.items():
        assert tuple(sd[key].shape) == shape, key
    # The last module of stage 4 fuses to the highest resolution only; identity slots hold no weights.
    assert not any(k.startswith("stage4.2.fuse_layers.1.") for k in sd)
    assert not any(
        k.startswith(("stage2.0.fuse_layers.0.0.", "transition2.0.", "transition2.1.")) for k in sd
    )


def test_heatmaps_at_quarter_resolution(hrnet_w32):
    hrnet_w32.eval()
    with torch.no_grad():
        assert hrnet_w32(torch.randn(1, 3, 64, 96)).shape == (1, 17, 16, 24)
        features = hrnet_w32.forward_features(torch.randn(1, 3, 64, 64))
    assert features.shape == (1, 32, 16, 16)
    with pytest.raises(ValueError, match=r"multiples of 32.*\(1, 3, 70, 64\)"):
        hrnet_w32(torch.randn(1, 3, 70, 64))


def test_official_initialisation(hrnet_w32):
    w = hrnet_w32.stage3[1].branches[2][0].conv1.weight
    assert abs(w.std().item() - 0.001) < 1e-4
    assert torch.equal(hrnet_w32.bn1.weight, torch.ones(64))


def test_context_estimator_shapes_and_gradients():
    torch.manual_seed(0)
    model = ContextEstimator(width=32)
    assert model.backbone.final_layer is None
    assert (model.head.in_channels, model.head.out_channels, model.head.kernel_size) == (32, 2, (1, 1))
    images = torch.randn(2, 3, 64, 96, requires_grad=True)
    maps = model(images)
    assert maps.shape == (2, 2, 16, 24)
    maps.square().sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert model.head.weight.grad.abs().sum() > 0 and model.backbone.conv1.weight.grad.abs().sum() > 0
    # Head = 1x1 conv on the backbone's highest-resolution features.
    model.eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        expected = torch.nn.functional.conv2d(
            model.backbone.forward_features(x), model.head.weight, model.head.bias
        )
        torch.testing.assert_close(model(x), expected, atol=0, rtol=0)


def test_context_estimator_w48():
    model = ContextEstimator(width=48).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2, 16, 16)
