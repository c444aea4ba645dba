"""A regressor checkpoint is self-contained: evaluate and predict work after its context estimator's file is gone."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_OVERRIDES
from hydra import compose, initialize_config_module

from ochmr_lit.inference.boxes import load_json_boxes
from ochmr_lit.inference.inputs import list_images
from ochmr_lit.inference.pipeline import Predictor, load_regressor
from ochmr_lit.lit import MeshRegressorModule
from ochmr_lit.lit.checkpoints import load_regressor_checkpoint, stored_context_width
from ochmr_lit.runner import run_evaluate


def _relocated(checkpoint: str, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of a predicted-context regressor checkpoint whose context-estimator file has been deleted."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    context = tmp_path / "context_then_deleted.ckpt"
    shutil.copy(state["hyper_parameters"]["context_checkpoint"], context)
    state["hyper_parameters"]["context_checkpoint"] = str(context)
    state["run_config"]["model"]["context_checkpoint"] = str(context)
    regressor = tmp_path / "regressor.ckpt"
    torch.save(state, regressor)
    context.unlink()
    return regressor, context


@pytest.mark.slow
def test_predict_and_evaluate_need_no_context_estimator_file(tiny_run, tiny_synthcrowd, fixtures_dir, tmp_path):
    run_dir, outcome = tiny_run
    regressor, context = _relocated(outcome["checkpoint"], tmp_path)
    assert not context.exists()

    original, portable = load_regressor(outcome["checkpoint"]), load_regressor(regressor)
    assert portable.context_net.width == original.context_net.width == 16
    for name, tensor in original.state_dict().items():
        assert torch.equal(tensor, portable.state_dict()[name]), name
    folder = fixtures_dir / "ochuman"
    items, _ = load_json_boxes(folder / "test_ochuman.json", list_images(folder))
    for a, b in zip(Predictor(original).predict(items), Predictor(portable).predict(items), strict=True):
        np.testing.assert_array_equal(a.vertices, b.vertices)

    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=[
            "experiment=synthcrowd", f"ckpt_path={regressor}", f"run_dir={tmp_path / 'evaluated'}",
            f"++data.root={tiny_synthcrowd}",
            *TINY_OVERRIDES])
    evaluated = run_evaluate(cfg)["results"]["metrics"]
    fitted = json.loads((run_dir / "results" / "metrics.json").read_text())["metrics"]
    for name in ("mpjpe", "pa_mpjpe", "pve", "kp_AP"):
        assert evaluated[name] == pytest.approx(fitted[name], rel=1e-4, abs=1e-6)


def test_the_stored_width_is_read_from_the_weights_and_a_missing_file_is_one_line(tmp_path):
    from ochmr_lit.models import ContextEstimator

    weights = {f"context_net.{k}": v for k, v in ContextEstimator(width=16).state_dict().items()}
    assert stored_context_width(weights) == 16 and stored_context_width({}) is None
    with pytest.raises(FileNotFoundError, match=r"model.context_checkpoint=.*gone.ckpt: no such file; give the"):
        MeshRegressorModule(backbone="resnet18", context_source="predicted", crop_size=64, context_input_size=64,
                            context_checkpoint=str(tmp_path / "gone.ckpt"))
    with pytest.raises(FileNotFoundError, match=r"ckpt_path=.*none.ckpt: no such file; evaluate, predict and compare"):
        load_regressor_checkpoint(tmp_path / "none.ckpt")


def test_a_network_built_for_stored_weights_refuses_to_run_without_them():
    module = MeshRegressorModule(backbone="resnet18", context_source="predicted", context_width=16, crop_size=64,
                                 context_input_size=64)
    batch = {"image": torch.zeros(1, 3, 64, 64)}
    with pytest.raises(ValueError, match="model.context_width=16 builds the context estimator for a regressor"):
        module._own_context(batch)
    module.load_state_dict(module.state_dict())  # what restoring a checkpoint does
    assert module._own_context(batch).shape == (1, 2, 16, 16)
