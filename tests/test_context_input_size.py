"""The side crops are resized to for a frozen context estimator: the crop side it was trained on."""

import re

import pytest
import torch

from ochmr_lit.config_checks import check_regressor_model
from ochmr_lit.errors import ConfigError
from ochmr_lit.lit import MeshRegressorModule, frozen_context
from ochmr_lit.lit.frozen_context import load_frozen_context
from ochmr_lit.models import ContextEstimator


def write_context_checkpoint(path, crop_size):
    """A context-estimator checkpoint as a run writes it: HRNet-W16 weights under ``model.`` and, unless None, the
    run config with the training crop side."""
    weights = {f"model.{k}": v for k, v in ContextEstimator(width=16).state_dict().items()}
    state = {"state_dict": weights, "hyper_parameters": {"width": 16}}
    if crop_size is not None:
        state["run_config"] = {"task": "context", "data": {"crop_size": crop_size, "map_size": crop_size // 4}}
    torch.save(state, path)
    return str(path)


def test_null_reads_the_training_crop_and_a_number_must_agree(tmp_path):
    ckpt = write_context_checkpoint(tmp_path / "context128.ckpt", 128)
    assert load_frozen_context(ckpt, None)[1] == 128
    assert load_frozen_context(ckpt, 128)[1] == 128
    with pytest.raises(ConfigError, match=re.escape(
            f"model.context_input_size=64, but the context estimator {ckpt} was trained on 128 px crops: set "
            "model.context_input_size=128")):
        load_frozen_context(ckpt, 64)


def test_a_checkpoint_without_its_run_config_needs_the_size_given(tmp_path):
    ckpt = write_context_checkpoint(tmp_path / "foreign.ckpt", None)
    assert load_frozen_context(ckpt, 96)[1] == 96  # nothing to check it against
    with pytest.raises(ConfigError, match=re.escape(f"but {ckpt} does not record it: set "
                                                    "model.context_input_size=<that side in px>")):
        load_frozen_context(ckpt, None)


def test_the_estimator_and_its_side_come_from_one_read_of_the_checkpoint(tmp_path, monkeypatch):
    ckpt = write_context_checkpoint(tmp_path / "context128.ckpt", 128)
    reads = []
    real_load = torch.load
    monkeypatch.setattr(frozen_context.torch, "load", lambda *a, **k: reads.append(a[0]) or real_load(*a, **k))
    net, size = load_frozen_context(ckpt, None)
    assert (net.width, size, reads) == (16, 128, [ckpt])
    assert not any(p.requires_grad for p in net.parameters()) and not net.training
    with pytest.raises(ConfigError, match="model.context_input_size=96, but the context estimator"):
        load_frozen_context(ckpt, 96)


def test_the_regressor_on_predicted_context_takes_the_estimators_crop(tmp_path):
    ckpt = write_context_checkpoint(tmp_path / "context96.ckpt", 96)
    module = MeshRegressorModule(backbone="resnet18", context_source="predicted", context_checkpoint=ckpt,
                                 crop_size=128)
    assert module.hparams.context_input_size == 96
    with pytest.raises(ConfigError, match="model.context_input_size=64, but the context estimator"):
        MeshRegressorModule(backbone="resnet18", context_source="predicted", context_checkpoint=ckpt,
                            crop_size=128, context_input_size=64)


@pytest.mark.parametrize("size", ["big", 0, -64, 1.5, True])
def test_the_config_check_refuses_a_size_that_is_not_a_side_in_px(size):
    with pytest.raises(ConfigError, match=re.escape(f"model.context_input_size={size!r}: the crop side in px")):
        check_regressor_model({"backbone": "resnet18", "context_input_size": size})
    check_regressor_model({"backbone": "resnet18", "context_input_size": None})
    check_regressor_model({"backbone": "resnet18", "context_input_size": 64})
