"""Optimiser set-up: the IEF head's own learning rate, its schedule, and settings checked at construction."""

import pytest
import torch

from ochmr_lit.lit.optim import OptimConfig, build_optimizer, build_scheduler
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
