"""Optimiser set-up: the IEF head's own learning rate, its schedule, and settings checked at construction."""

import pytest
import torch
from lightning.pytorch.utilities import GradClipAlgorithmType

from ochmr_lit.lit.optim import (
    FusedOptimizerMixin,
    OptimConfig,
    build_optimizer,
    build_scheduler,
    fused_implementation,
    is_fused,
)
from ochmr_lit.models import MeshRegressor


def _regressor(**kwargs) -> MeshRegressor:
    return MeshRegressor("resnet18", conorm_depths=(), hidden_channels=8, **kwargs)


def test_the_head_learns_at_its_own_rate_under_the_same_schedule():
    model = _regressor()
    cfg = OptimConfig(name="adam", lr=1e-3, head_lr_scale=0.1, warmup_steps=10, schedule="cosine")
    optimizer = build_optimizer(model.parameters(), cfg, head=model.head_parameters())
    body, head = optimizer.param_groups
    assert {id(p) for p in head["params"]} == {id(p) for p in model.head_parameters()}
    assert len(body["params"]) + len(head["params"]) == len(list(model.parameters()))
    scheduler = build_scheduler(optimizer, cfg, total_steps=100)["scheduler"]
    for _ in range(30):
        optimizer.step()
        scheduler.step()
    assert head["lr"] == pytest.approx(0.1 * body["lr"]) and 0 < body["lr"] < 1e-3
    assert len(build_optimizer(model.parameters(), OptimConfig()).param_groups) == 1  # no head given: one group


@pytest.mark.parametrize("key, value", [("lr", -1e-3), ("lr", 0.0), ("head_lr_scale", 0.0)])
def test_rates_that_cannot_train_are_refused_naming_the_key(key, value):
    with pytest.raises(ValueError, match=f"optim.{key}="):
        OptimConfig(**{key: value})


def test_a_pooling_grid_keeps_where_features_fired():
    images = torch.randn(2, 3, 64, 64)
    spin, grid = _regressor().eval(), _regressor(pooling_grid=2).eval()
    assert spin.extract_features(images).shape == (2, 512) and grid.extract_features(images).shape == (2, 4 * 512)
    assert grid.fc1.in_features == spin.fc1.in_features + 3 * 512
    assert grid(images).rotmat.shape == (2, 24, 3, 3)
    # a mirrored last feature map averages to the same global feature but not to the same 2 x 2 grid
    last = torch.randn(1, 512, 2, 2)
    assert torch.allclose(spin.avgpool(last), spin.avgpool(last.flip(-1)))
    assert not torch.allclose(grid.avgpool(last), grid.avgpool(last.flip(-1)))
    with pytest.raises(ValueError, match="pooling_grid must be at least 1"):
        _regressor(pooling_grid=0)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_the_fused_update_is_torchs_update(name):
    """On a CPU the optimisers use torch's fused kernels; after 5 steps the weights equal those of torch's default
    implementation (to float32 rounding)."""
    torch.manual_seed(0)
    fused_model, loop_model = _regressor(), _regressor()
    loop_model.load_state_dict(fused_model.state_dict())
    cfg = OptimConfig(name=name, lr=1e-3, head_lr_scale=0.1, momentum=0.9 if name == "sgd" else 0.0,
                      weight_decay=1e-4)
    fused = build_optimizer(fused_model.parameters(), cfg, head=fused_model.head_parameters())
    assert all(group["fused"] for group in fused.param_groups)
    loop_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[name]
    extra = {"momentum": 0.9} if name == "sgd" else {}
    head_ids = {id(p) for p in loop_model.head_parameters()}
    loop = loop_cls([{"params": [p for p in loop_model.parameters() if id(p) not in head_ids]},
                     {"params": list(loop_model.head_parameters()), "lr": 1e-4}],
                    lr=1e-3, weight_decay=1e-4, foreach=False, **extra)
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        for a, b in zip(fused_model.parameters(), loop_model.parameters(), strict=True):
            a.grad = torch.randn(a.shape, generator=generator)
            b.grad = a.grad.clone()
        fused.step()
        loop.step()
    for a, b in zip(fused_model.parameters(), loop_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_parameters_on_a_device_without_fused_kernels_keep_torchs_default():
    assert fused_implementation([torch.nn.Parameter(torch.zeros(2))]) == {"fused": True}
    assert fused_implementation([torch.nn.Parameter(torch.zeros(2, device="meta"))]) == {}
    assert fused_implementation([]) == {}


@pytest.mark.parametrize("algorithm", ["norm", "value", GradClipAlgorithmType.NORM, GradClipAlgorithmType.VALUE])
def test_fused_optimisers_clip_as_lightning_would(algorithm):
    """Lightning's mixed-precision plugin refuses to clip for a fused optimiser; the mixin clips it directly."""

    class Module(FusedOptimizerMixin):
        pass

    layer = torch.nn.Linear(8, 8)
    optimizer = build_optimizer(layer.parameters(), OptimConfig(name="adam"))
    assert is_fused(optimizer) and Module().fused_allowed()
    for p in layer.parameters():
        p.grad = torch.full_like(p, 3.0)
    Module().configure_gradient_clipping(optimizer, 0.5, algorithm)
    grads = torch.cat([p.grad.flatten() for p in layer.parameters()])
    if algorithm == "norm":
        assert grads.norm().item() == pytest.approx(0.5, rel=1e-4)
    else:
        assert torch.all(grads == 0.5)
    assert not is_fused(build_optimizer(layer.parameters(), OptimConfig(name="adam"), fused=False))


@pytest.mark.parametrize(("precision", "fused"), [("16-mixed", False), ("bf16-mixed", True), ("32-true", True)])
def test_a_float16_gradient_scaler_keeps_torchs_default(precision, fused):
    """Fused kernels unscale inside the step, after clipping: no fused optimiser under 16-mixed."""

    class Module(FusedOptimizerMixin):
        _trainer = type("Trainer", (), {"precision": precision})()

    assert Module().fused_allowed() is fused
