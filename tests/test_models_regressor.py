"""MeshRegressor: SPIN's HMR layout, CoNorm at any depth, IEF head, context checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision

from ochmr_lit.geometry import rot6d_to_rotmat
from ochmr_lit.models import MeshRegressor, load_mean_params

SPIN_HEAD_KEYS = [
    f"{layer}.{p}" for layer in ("fc1", "fc2", "decpose", "decshape", "deccam") for p in ("weight", "bias")
]


def test_spin_resnet50_parameter_count():
    model = MeshRegressor("resnet50", conorm_depths=[])
    n_params = sum(p.numel() for p in model.parameters())
    # torchvision ResNet-50 without fc: 25,557,032 - (2048*1000 + 1000) = 23,508,032
    # IEF head: fc1 (2048+144+10+3)*1024+1024, fc2 1024*1024+1024, decpose 1024*144+144,
    #           decshape 1024*10+10, deccam 1024*3+3 = 3,469,469
    assert n_params == 26_977_501
    backbone = torchvision.models.resnet50(weights=None)
    fc = backbone.fc.weight.numel() + backbone.fc.bias.numel()
    assert n_params == sum(p.numel() for p in backbone.parameters()) - fc + 3_469_469
    # CoNorm at depth 2 (512 channels, K=128) adds 1,183,104.
    with_conorm = MeshRegressor("resnet50", conorm_depths=[2])
    assert sum(p.numel() for p in with_conorm.parameters()) == 26_977_501 + 1_183_104


def test_state_dict_keys_are_spins():
    model = MeshRegressor("resnet50", conorm_depths=[])
    backbone = [k for k in torchvision.models.resnet50(weights=None).state_dict() if not k.startswith("fc.")]
    expected = {"init_pose", "init_shape", "init_cam", *backbone, *SPIN_HEAD_KEYS}
    assert set(model.state_dict()) == expected
    sd = model.state_dict()
    assert sd["fc1.weight"].shape == (1024, 2048 + 157)
    assert (sd["init_pose"].shape, sd["init_shape"].shape, sd["init_cam"].shape) == (
        (1, 144),
        (1, 10),
        (1, 3),
    )
    with_conorm = MeshRegressor("resnet18", conorm_depths=[1, 3])
    extra = sorted(set(with_conorm.state_dict()) - set(MeshRegressor("resnet18", []).state_dict()))
    assert {k.split(".")[1] for k in extra} == {"1", "3"} and all(k.startswith("conorm.") for k in extra)
    assert with_conorm.conorm["1"].num_channels == 64 and with_conorm.conorm["3"].num_channels == 256


def test_output_heads_use_xavier_gain_001():
    torch.manual_seed(0)
    model = MeshRegressor("resnet18", conorm_depths=[])
    for layer, fan_out in ((model.decpose, 144), (model.decshape, 10), (model.deccam, 3)):
        bound = 0.01 * math.sqrt(6.0 / (1024 + fan_out))
        w = layer.weight.abs()
        assert w.max() <= bound and w.max() > 0.9 * bound


def _tiny_inputs(batch: int = 2, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(batch, 3, size, size, generator=g), torch.rand(batch, 2, 16, 16, generator=g)


@pytest.mark.parametrize("depths", [[], [1], [2], [3], [4], [1, 2, 3, 4]])
def test_forward_backward_at_every_depth(depths):
    torch.manual_seed(0)
    model = MeshRegressor("resnet18", conorm_depths=depths, hidden_channels=16)
    images, ctx = _tiny_inputs()
    ctx.requires_grad_(bool(depths))
    out = model(images, ctx if depths else None)
    assert out.rotmat.shape == (2, 24, 3, 3) and out.betas.shape == (2, 10) and out.cam.shape == (2, 3)
    assert len(out.iterations) == 3
    # Rotations: orthonormal with determinant +1; the last iteration is the returned estimate.
    eye = torch.eye(3).expand(2, 24, 3, 3)
    torch.testing.assert_close(out.rotmat.transpose(-1, -2) @ out.rotmat, eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(out.rotmat), torch.ones(2, 24), atol=1e-5, rtol=0)
    last = out.iterations[-1]
    assert torch.equal(last.betas, out.betas) and torch.equal(last.cam, out.cam)
    torch.testing.assert_close(rot6d_to_rotmat(last.pose6d.reshape(2, 24, 6)), out.rotmat, atol=0, rtol=0)
    loss = out.rotmat.square().sum() + out.betas.square().sum() + out.cam.square().sum()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for depth in depths:
        grads = [p.grad.abs().sum() for p in model.conorm[str(depth)].parameters()]
        assert all(g > 0 for g in grads)
    if depths:
        assert ctx.grad is not None and ctx.grad.abs().sum() > 0


def test_context_changes_the_prediction():
    torch.manual_seed(0)
    model = MeshRegressor("resnet18", conorm_depths=[2], hidden_channels=16).eval()
    images, ctx = _tiny_inputs()
    with torch.no_grad():
        a, b = model(images, ctx), model(images, ctx.flip(-1))
    assert (a.cam - b.cam).abs().max() > 1e-6


def test_iterations_start_from_mean_params():
    # With zeroed output layers every IEF update is 0, so each iteration returns the mean parameters.
    rng = np.random.default_rng(0)
    rot = torch.linalg.qr(torch.from_numpy(rng.normal(size=(24, 3, 3))))[0]
    rot = rot * torch.linalg.det(rot)[:, None, None]  # proper rotations
    mean = {"pose": rot[..., :2].reshape(144).numpy(), "shape": rng.normal(size=10), "cam": [1.1, 0.2, -0.3]}
    model = MeshRegressor("resnet18", conorm_depths=[], mean_params=mean)
    with torch.no_grad():
        for layer in (model.decpose, model.decshape, model.deccam):
            layer.weight.zero_()
            layer.bias.zero_()
    out = model(_tiny_inputs()[0])
    for step in out.iterations:
        torch.testing.assert_close(step.pose6d, torch.as_tensor(mean["pose"]).float().expand(2, 144))
    torch.testing.assert_close(out.rotmat, rot.float().expand(2, 24, 3, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.betas, torch.as_tensor(mean["shape"]).float().expand(2, 10))
    torch.testing.assert_close(out.cam, torch.tensor([[1.1, 0.2, -0.3]] * 2))


def test_default_mean_params_are_identity_zero_shape_cam_09():
    params = load_mean_params(None)
    torch.testing.assert_close(rot6d_to_rotmat(params["pose"].reshape(24, 6)), torch.eye(3).expand(24, 3, 3))
    assert params["shape"].tolist() == [0.0] * 10
    torch.testing.assert_close(params["cam"], torch.tensor([0.9, 0.0, 0.0]))


def test_mean_params_from_npz(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {"pose": rng.normal(size=144), "shape": rng.normal(size=10), "cam": rng.normal(size=3)}
    np.savez(tmp_path / "smpl_mean_params.npz", **arrays)
    model = MeshRegressor("resnet18", conorm_depths=[], mean_params=tmp_path / "smpl_mean_params.npz")
    torch.testing.assert_close(model.init_pose, torch.from_numpy(arrays["pose"]).float()[None])
    torch.testing.assert_close(model.init_shape, torch.from_numpy(arrays["shape"]).float()[None])
    torch.testing.assert_close(model.init_cam, torch.from_numpy(arrays["cam"]).float()[None])
    np.savez(tmp_path / "bad.npz", pose=arrays["pose"], shape=arrays["shape"])
    with pytest.raises(KeyError, match=r"bad\.npz.*'cam'"):
        load_mean_params(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="'pose' has 72 values, expected 144"):
        load_mean_params({"pose": np.zeros(72), "shape": np.zeros(10), "cam": np.zeros(3)})
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_mean_params(tmp_path / "missing.npz")


def test_context_errors_are_clear():
    model = MeshRegressor("resnet18", conorm_depths=[2], hidden_channels=8)
    images, ctx = _tiny_inputs()
    with pytest.raises(ValueError, match=r"CoNorm blocks at depths \[2\] and needs a context"):
        model(images)
    with pytest.raises(ValueError, match=r"context must be \(B, 2, h, w\).*got \(2, 3, 16, 16\)"):
        model(images, torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"B = 2.*got \(1, 2, 16, 16\)"):
        model(images, ctx[:1])
    with pytest.raises(ValueError, match=r"got \(2, 16, 16\)"):
        model(images, ctx[:, 0])
    with pytest.raises(ValueError, match=r"no CoNorm blocks"):
        MeshRegressor("resnet18", conorm_depths=[])(images, ctx)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"conorm_depths": [5]}, "1..4"),
        ({"conorm_depths": [2, 2]}, "distinct"),
        ({"backbone": "vgg16"}, "backbone must be one of .*resnet50"),
        ({"iterations": 0}, "at least 1"),
    ],
)
def test_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MeshRegressor(**kwargs)


@pytest.mark.parametrize(("backbone", "features"), [("resnet34", 512), ("resnet101", 2048)])
def test_other_backbones(backbone, features):
    model = MeshRegressor(backbone, conorm_depths=[4], hidden_channels=8)
    assert model.num_features == features and model.fc1.in_features == features + 157
    assert model.conorm["4"].num_channels == features
    images, ctx = _tiny_inputs(batch=1)
    model.eval()
    with torch.no_grad():
        assert model(images, ctx).rotmat.shape == (1, 24, 3, 3)
