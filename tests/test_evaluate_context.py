"""``evaluate`` with a context experiment scores a context estimator's decoded centres, for everyone and per bucket."""

import json

import numpy as np
import pytest
import torch
from conftest import TINY_OVERRIDES
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ochmr_lit.data.predicted_centres import decode_centres
from ochmr_lit.errors import CheckpointError
from ochmr_lit.lit import MeshRegressorModule
from ochmr_lit.lit.frozen_context import load_frozen_context_estimator
from ochmr_lit.runner import run_evaluate


def _evaluate_config(overrides: list[str]):
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        return compose(config_name="evaluate", overrides=["experiment=synthcrowd_context", *overrides])


def _by_hand(checkpoint: str, data_cfg) -> tuple[np.ndarray, np.ndarray]:
    """Target-centre distances (fraction of the map side) and occlusion ratios of the test crops, computed with
    the frozen estimator the regressor's predicted context uses, in fp32."""
    datamodule = instantiate(OmegaConf.to_container(data_cfg, resolve=True), _convert_="all")
    net = load_frozen_context_estimator(checkpoint)
    dists, ratios = [], []
    with torch.no_grad():
        for batch in datamodule.unaugmented_loader("test"):
            pred, _ = decode_centres(net(batch["image"]).float())
            true, _ = decode_centres(batch["centermaps"].float())
            dists.append(((pred - true).norm(dim=-1) / batch["centermaps"].shape[-1]).numpy())
            ratios.append(batch["occlusion_ratio"].numpy())
    return np.concatenate(dists), np.concatenate(ratios)


@pytest.mark.slow
def test_context_estimator_scores_equal_a_computation_by_hand(tiny_run, tiny_synthcrowd, tmp_path):
    _, outcome = tiny_run
    cfg = _evaluate_config([f"ckpt_path={outcome['context_checkpoint']}", f"run_dir={tmp_path}",
                            f"++data.root={tiny_synthcrowd}", "trainer.precision=32-true", *TINY_OVERRIDES])
    returned = run_evaluate(cfg)["results"]["metrics"]
    stored = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert stored["metrics"] == pytest.approx(returned, nan_ok=True)
    assert stored["protocol"]["pck_threshold"] == 0.05 and stored["protocol"]["split"] == "test"

    dists, ratios = _by_hand(outcome["context_checkpoint"], cfg.data)
    assert returned["count_all"] == len(dists)
    assert returned["peak_dist"] == pytest.approx(dists.mean(), abs=1e-5)
    assert returned["pck_centre"] == pytest.approx((dists <= 0.05).mean())
    for bucket, members in (("none", ratios < 0.1), ("partial", (ratios >= 0.1) & (ratios < 0.4)),
                            ("heavy", ratios >= 0.4)):
        assert returned[f"count_{bucket}"] == members.sum()
        if members.any():
            assert returned[f"peak_dist_{bucket}"] == pytest.approx(dists[members].mean(), abs=1e-5)
    assert 0.0 <= returned["global_recall"] <= 1.0
    # a barely trained estimator may mark no centre on the global map: then the precision is undefined (NaN)
    assert np.isnan(returned["global_precision"]) or 0.0 <= returned["global_precision"] <= 1.0


def test_a_regressor_checkpoint_is_refused_in_one_line(tmp_path):
    regressor = MeshRegressorModule(backbone="resnet18", conorm_depths=[2], hidden_channels=16, crop_size=64,
                                    context_source="gt", channels_last=False)
    ckpt = tmp_path / "regressor.ckpt"
    torch.save({"state_dict": regressor.state_dict(), "hyper_parameters": dict(regressor.hparams),
                "run_config": {"task": "regressor"}}, ckpt)
    with pytest.raises(CheckpointError, match=r"regressor\.ckpt is a mesh regressor's checkpoint, not a context "
                                              r"estimator's .*evaluate a regressor with its own experiment"):
        run_evaluate(_evaluate_config([f"ckpt_path={ckpt}", f"run_dir={tmp_path / 'eval'}"]))
    assert not (tmp_path / "eval").exists()
