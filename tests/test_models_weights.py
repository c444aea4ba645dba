"""Weight import: SPIN, torchvision ResNet and HRNet COCO files in their official formats, built here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ochmr_lit.geometry import rot6d_to_rotmat
from ochmr_lit.models import (
    ContextEstimator,
    HRNet,
    MeshRegressor,
    load_hrnet_coco,
    load_spin_checkpoint,
    load_torchvision_resnet,
)

HEAD_SHAPES = {
    "fc1": (1024, 2048 + 144 + 13),
    "fc2": (1024, 1024),
    "decpose": (144, 1024),
    "decshape": (10, 1024),
    "deccam": (3, 1024),
}


def _randomise(module: nn.Module, seed: int) -> nn.Module:
    """Non-trivial weights: He-normal convolutions and random BatchNorm statistics and affines."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.num_batches_tracked.fill_(1000)
    return module


def _spin_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """SPIN's HMR keys: torchvision ResNet-50 without fc, the IEF head and the mean-parameter buffers."""
    g = torch.Generator().manual_seed(seed)
    backbone = _randomise(torchvision.models.resnet50(weights=None), seed)
    sd = {k: v for k, v in backbone.state_dict().items() if not k.startswith("fc.")}
    for name, shape in HEAD_SHAPES.items():
        sd[f"{name}.weight"] = torch.randn(shape, generator=g) * (1.0 / shape[1]) ** 0.5
        sd[f"{name}.bias"] = 0.01 * torch.randn(shape[0], generator=g)
    pose = torch.linalg.qr(torch.randn(24, 3, 3, generator=g, dtype=torch.float64))[0][..., :2]
    sd["init_pose"] = pose.reshape(1, 144)  # float64 as in SPIN's smpl_mean_params.npz
    sd["init_shape"] = torch.randn(1, 10, generator=g)
    sd["init_cam"] = torch.tensor([[0.9, 0.05, -0.02]])
    return sd


def _reference_hmr(sd: dict[str, torch.Tensor], images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """SPIN's forward written out from the state dict: ResNet-50 features, then 3 IEF iterations."""
    net = torchvision.models.resnet50(weights=None)
    net.fc = nn.Identity()
    net.load_state_dict(
        {
            k: v
            for k, v in sd.items()
            if k.split(".")[0] not in {*HEAD_SHAPES, "init_pose", "init_shape", "init_cam"}
        }
    )
    net.eval()
    with torch.no_grad():
        feats = net(images)
        b = images.shape[0]
        pose = sd["init_pose"].float().expand(b, -1)
        shape = sd["init_shape"].expand(b, -1)
        cam = sd["init_cam"].expand(b, -1)
        for _ in range(3):
            x = F.linear(torch.cat([feats, pose, shape, cam], 1), sd["fc1.weight"], sd["fc1.bias"])
            x = F.linear(x, sd["fc2.weight"], sd["fc2.bias"])
            pose = F.linear(x, sd["decpose.weight"], sd["decpose.bias"]) + pose
            shape = F.linear(x, sd["decshape.weight"], sd["decshape.bias"]) + shape
            cam = F.linear(x, sd["deccam.weight"], sd["deccam.bias"]) + cam
    return rot6d_to_rotmat(pose.reshape(b, 24, 6)), shape, cam


@pytest.fixture(scope="module")
def spin_file(tmp_path_factory) -> tuple:
    """SPIN's ``model_checkpoint.pt`` layout: weights under ``model`` beside optimizer state and counters."""
    sd = _spin_state_dict()
    path = tmp_path_factory.mktemp("spin") / "model_checkpoint.pt"
    optimizer = torch.optim.Adam([torch.zeros(3, requires_grad=True)], lr=5e-5).state_dict()
    torch.save(
        {
            "model": sd,
            "optimizer": optimizer,
            "epoch": 7,
            "batch_idx": 0,
            "batch_size": 64,
            "total_step_count": 12345,
        },
        path,
    )
    return path, sd


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))


def test_spin_checkpoint_loads_key_for_key_and_matches_reference(spin_file, images, tmp_path):
    path, sd = spin_file
    model = MeshRegressor("resnet50", conorm_depths=[])
    report = load_spin_checkpoint(model, path, strict=True)
    assert sorted(report.loaded) == sorted(sd) and len(report.loaded) == 331
    assert report.ok and not (report.new or report.not_used)
    model.eval()
    with torch.no_grad():
        out = model(images)
    ref_rotmat, ref_shape, ref_cam = _reference_hmr(sd, images)
    torch.testing.assert_close(out.rotmat, ref_rotmat, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.betas, ref_shape, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.cam, ref_cam, atol=1e-5, rtol=1e-5)
    assert (out.cam - out.cam.mean(0)).abs().max() > 1e-3  # the two images give different predictions

    # Round trip: our state dict saved in SPIN's format loads into a fresh model with identical outputs.
    resaved = tmp_path / "resaved.pt"
    torch.save({"model": model.state_dict()}, resaved)
    again = MeshRegressor("resnet50", conorm_depths=[])
    assert load_spin_checkpoint(again, resaved, strict=True).ok
    again.eval()
    with torch.no_grad():
        out2 = again(images)
    assert torch.equal(out2.rotmat, out.rotmat) and torch.equal(out2.betas, out.betas)
    assert torch.equal(out2.cam, out.cam)


def test_spin_checkpoint_into_conorm_model_reports_conorm_as_new(spin_file):
    path, sd = spin_file
    model = MeshRegressor("resnet50", conorm_depths=[2, 3], hidden_channels=8)
    report = load_spin_checkpoint(model, path, strict=True)
    conorm_keys = sorted(k for k in model.state_dict() if k.startswith("conorm."))
    assert len(conorm_keys) == 12 and sorted(report.new) == conorm_keys
    assert report.ok and len(report.loaded) == 331
    assert torch.equal(model.layer3[2].conv2.weight, sd["layer3.2.conv2.weight"])
    assert torch.equal(model.init_pose, sd["init_pose"].float())
    assert "331 loaded; 12 new" in str(report)


def test_dataparallel_prefix_is_stripped(tmp_path):
    source = _randomise(MeshRegressor("resnet18", conorm_depths=[]), 1)
    path = tmp_path / "dp.pt"
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model = MeshRegressor("resnet18", conorm_depths=[])
    report = load_spin_checkpoint(model, path, strict=True)
    assert len(report.loaded) == len(source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_faults_are_reported_and_strict_loads_nothing(tmp_path):
    sd = _randomise(MeshRegressor("resnet18", conorm_depths=[]), 2).state_dict()
    del sd["layer2.0.conv1.weight"]
    sd["extra_head.weight"] = torch.zeros(3)
    sd["fc2.weight"] = torch.zeros(1024, 512)
    path = tmp_path / "broken.pt"
    torch.save({"model": sd}, path)

    model = MeshRegressor("resnet18", conorm_depths=[])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="broken.pt") as err:
        load_spin_checkpoint(model, path, strict=True)
    message = str(err.value)
    assert "\n" not in message
    for needle in (
        "1 missing (layer2.0.conv1.weight)",
        "1 unexpected (extra_head.weight)",
        "1 of another shape (fc2.weight file [1024, 512] vs model [1024, 1024])",
    ):
        assert needle in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    report = load_spin_checkpoint(model, path, strict=False)
    assert report.missing == ["layer2.0.conv1.weight"]
    assert report.unexpected == ["extra_head.weight"]
    assert report.shape_mismatched == [("fc2.weight", (1024, 512), (1024, 1024))]
    assert len(report.loaded) == len(before) - 2 and not report.ok
    assert torch.equal(model.layer2[0].conv2.weight, sd["layer2.0.conv2.weight"])
    assert torch.equal(model.layer2[0].conv1.weight, before["layer2.0.conv1.weight"])  # left as it was
    assert torch.equal(model.fc2.weight, before["fc2.weight"])
    assert "1 missing [layer2.0.conv1.weight]; 1 unexpected [extra_head.weight]" in str(report)


def test_wrong_backbone_depth_is_shape_mismatch(spin_file):
    path, _ = spin_file
    model = MeshRegressor("resnet18", conorm_depths=[])
    with pytest.raises(ValueError, match="model_checkpoint.pt"):
        load_spin_checkpoint(model, path, strict=True)
    report = load_spin_checkpoint(model, path)
    mismatched = dict((k, (a, b)) for k, a, b in report.shape_mismatched)
    assert mismatched["layer1.0.conv1.weight"] == ((64, 64, 1, 1), (64, 64, 3, 3))
    assert mismatched["fc1.weight"] == ((1024, 2205), (1024, 669))
    assert "layer1.0.conv3.weight" in report.unexpected


def test_torchvision_resnet_into_backbone(tmp_path):
    net = _randomise(torchvision.models.resnet18(weights=None), 3)
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(net.state_dict(), path)

    model = MeshRegressor("resnet18", conorm_depths=[2], hidden_channels=8)
    report = load_torchvision_resnet(model, path, strict=True)
    assert sorted(report.not_used) == ["fc.bias", "fc.weight"]
    backbone_keys = [k for k in net.state_dict() if not k.startswith("fc.")]
    assert sorted(report.loaded) == sorted(backbone_keys)
    head = ["fc1", "fc2", "decpose", "decshape", "deccam"]
    expected_new = [
        k
        for k in model.state_dict()
        if k.startswith("conorm.") or k.split(".")[0] in head or k.startswith("init_")
    ]
    assert sorted(report.new) == sorted(expected_new) and report.ok

    # Features of the baseline regressor equal torchvision's ResNet up to its pooling.
    baseline = MeshRegressor("resnet18", conorm_depths=[])
    load_torchvision_resnet(baseline, path, strict=True)
    net.fc = nn.Identity()
    baseline.eval(), net.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(baseline.extract_features(x), net(x))


def test_file_without_batchnorm_counters(tmp_path):
    # ImageNet files saved by old PyTorch have no num_batches_tracked: reported as new, not a fault.
    sd = {
        k: v
        for k, v in torchvision.models.resnet18(weights=None).state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    path = tmp_path / "resnet18-5c106cde.pth"
    torch.save(sd, path)
    report = load_torchvision_resnet(MeshRegressor("resnet18", conorm_depths=[]), path, strict=True)
    assert report.ok and sum(k.endswith("num_batches_tracked") for k in report.new) == 20


@pytest.fixture(scope="module")
def hrnet_file(tmp_path_factory) -> tuple:
    """The released COCO checkpoint's format: a plain state dict of the 17-joint pose model."""
    source = _randomise(HRNet(width=32, num_joints=17), 4)
    with torch.no_grad():
        source.final_layer.weight.normal_(0.0, 0.1)
    path = tmp_path_factory.mktemp("hrnet") / "pose_hrnet_w32_256x192.pth"
    torch.save(source.state_dict(), path)
    return path, source.eval()


def test_hrnet_coco_into_context_estimator(hrnet_file):
    path, source = hrnet_file
    model = ContextEstimator(width=32)
    report = load_hrnet_coco(model, path, strict=True)
    assert sorted(report.not_used) == ["final_layer.bias", "final_layer.weight"]
    assert sorted(report.new) == ["head.bias", "head.weight"]
    assert len(report.loaded) == 1752 and report.ok
    model.eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model.backbone.forward_features(x), source.forward_features(x))
    assert "1752 loaded; 2 new [head.weight, head.bias]; 2 not used" in str(report)


def test_hrnet_coco_into_pose_model_and_training_checkpoint_format(hrnet_file, tmp_path):
    path, source = hrnet_file
    full = HRNet(width=32, num_joints=17)
    report = load_hrnet_coco(full, path, strict=True)
    assert len(report.loaded) == 1754 and not (report.new or report.not_used)
    # The official training code's checkpoint.pth keeps a DataParallel state dict under 'state_dict'.
    wrapped = tmp_path / "checkpoint.pth"
    torch.save(
        {
            "epoch": 140,
            "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
            "perf": 0.744,
        },
        wrapped,
    )
    again = HRNet(width=32, num_joints=17)
    assert len(load_hrnet_coco(again, wrapped, strict=True).loaded) == 1754
    full.eval(), again.eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        heatmaps = source(x)
        assert torch.equal(full(x), heatmaps) and torch.equal(again(x), heatmaps)


def test_hrnet_width_mismatch(tmp_path):
    path = tmp_path / "pose_hrnet_w16.pth"
    torch.save(HRNet(width=16, num_joints=17).state_dict(), path)
    model = ContextEstimator(width=32)
    with pytest.raises(
        ValueError, match=r"pose_hrnet_w16.pth.*of another shape \(backbone.transition1.0.0"
    ):
        load_hrnet_coco(model, path, strict=True)
    report = load_hrnet_coco(model, path)
    assert len(report.shape_mismatched) > 1000 and not report.missing and not report.unexpected


def test_unreadable_and_misformatted_files(tmp_path, spin_file):
    model = MeshRegressor("resnet18", conorm_depths=[])
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_spin_checkpoint(model, tmp_path / "nowhere.pt")
    # Arbitrary pickled objects are refused by torch.load(weights_only=True).
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": np.random.default_rng(0)}, pickled)
    with pytest.raises(
        ValueError, match=r"pickled.pt could not be read with torch.load\(weights_only=True\)"
    ):
        load_spin_checkpoint(model, pickled)
    # A bare state dict is not SPIN's checkpoint format.
    bare = tmp_path / "bare.pt"
    torch.save(model.state_dict(), bare)
    with pytest.raises(
        ValueError, match=r"bare.pt: expected SPIN's checkpoint format with the weights under 'model'"
    ):
        load_spin_checkpoint(model, bare)
    # A SPIN checkpoint is not a torchvision state dict.
    with pytest.raises(ValueError, match="model_checkpoint.pt: expected a torchvision ResNet state dict"):
        load_torchvision_resnet(model, spin_file[0])
