"""Reference predictions beside every model (``constant``, ``oracle``): same evaluation, exact numbers, tables."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import TINY_OVERRIDES
from hydra import compose, initialize_config_module

from ochmr_lit.eval.references import (
    NOT_BETTER_FLAG,
    REFERENCE_LABELS,
    mean_parameters,
    not_better_than_constant,
    reference_parameters,
    with_true_orientation,
)
from ochmr_lit.eval.results_files import summary_table, write_results
from ochmr_lit.geometry import axis_angle_to_rotmat, rot6d_to_rotmat, rotmat_to_axis_angle
from ochmr_lit.lit import MeshRegressorModule
from ochmr_lit.reproduce.formatting import format_table_document, versus_constant
from ochmr_lit.reproduce.mesh_table import OCCLUSION_COLUMNS, _reference_metrics, _reference_rows

TINY_SPIN = {"backbone": "resnet18", "conorm_depths": [], "context_source": "none", "crop_size": 64,
             "channels_last": False, "num_vis": 0}


def _spin_module() -> MeshRegressorModule:
    torch.manual_seed(0)
    return MeshRegressorModule(**TINY_SPIN).eval()


def _zero_head(module: MeshRegressorModule) -> None:
    """Make the IEF head output zero residuals: the prediction is then the mean parameters it starts from."""
    with torch.no_grad():
        for layer in (module.model.decpose, module.model.decshape, module.model.deccam):
            layer.weight.zero_()
            layer.bias.zero_()


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# -- the reference predictions -----------------------------------------------------------------------------
def test_constant_is_the_ief_start_and_oracle_swaps_in_the_labelled_orientation():
    module = _spin_module()
    net = module.model
    aa = torch.tensor([[0.0, math.pi / 2, 0.0], [0.3, 0.0, 0.0]])
    batch = {"image": torch.zeros(2, 3, 64, 64), "smpl_pose": torch.cat([aa, torch.zeros(2, 69)], dim=1),
             "has_smpl": torch.tensor([True, False])}
    rotmat, betas, cam = reference_parameters("constant", net.init_pose, net.init_shape, net.init_cam, batch)
    assert rotmat.shape == (2, 24, 3, 3) and betas.shape == (2, 10) and cam.shape == (2, 3)
    assert torch.equal(betas, net.init_shape.expand(2, -1)) and torch.equal(cam, net.init_cam.expand(2, -1))
    # everyone gets the 6D start turned into rotations as the head turns it
    start = rot6d_to_rotmat(net.init_pose.reshape(1, 24, 6))
    assert torch.allclose(rotmat, start.expand(2, -1, -1, -1), atol=0) and torch.equal(rotmat[0], rotmat[1])
    oracle, betas_o, cam_o = reference_parameters("oracle", net.init_pose, net.init_shape, net.init_cam, batch)
    assert torch.equal(betas_o, betas) and torch.equal(cam_o, cam) and torch.equal(oracle[:, 1:], rotmat[:, 1:])
    assert torch.allclose(oracle[0, 0], axis_angle_to_rotmat(aa[0]), atol=1e-7)  # labelled: the true orientation
    assert torch.equal(oracle[1, 0], rotmat[1, 0])  # has_smpl false: the mean orientation stays
    assert torch.equal(with_true_orientation(rotmat, {"image": batch["image"]}), rotmat)  # no SMPL labels at all
    with pytest.raises(KeyError, match="reference 'median': unknown reference prediction; use one of constant"):
        reference_parameters("median", net.init_pose, net.init_shape, net.init_cam, batch)


def test_zero_residual_head_predicts_exactly_the_constant_reference():
    module = _spin_module()
    _zero_head(module)
    batch = {"image": torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))}
    with torch.no_grad():
        model = module.predict_batch(batch)
        constant = module.reference_predictions(batch)["constant"]
    assert set(model) == set(constant)
    for key, value in model.items():
        assert torch.equal(value, constant[key]), key


def _turned_away_batch(module: MeshRegressorModule) -> dict:
    """Three people with the mean body pose and shape: turned 180 deg about the vertical axis (facing away),
    lying down (90 deg about x), and in the mean orientation. Neutral body, SMPL labels, three buckets."""
    net = module.model
    mean_rotmat, betas, _ = mean_parameters(net.init_pose, net.init_shape, net.init_cam, 3)
    turns = axis_angle_to_rotmat(torch.tensor([[0.0, math.pi, 0.0], [math.pi / 2, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    rotmat = mean_rotmat.clone()
    rotmat[:, 0] = turns @ mean_rotmat[:, 0]
    pose = rotmat_to_axis_angle(rotmat.double()).float().reshape(3, 72)
    return {"image": torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0)), "smpl_pose": pose,
            "smpl_betas": betas.clone(), "has_smpl": torch.ones(3, dtype=torch.bool),
            "gender": torch.zeros(3, dtype=torch.long), "index": torch.arange(3),
            "occlusion_ratio": torch.tensor([0.0, 0.2, 0.5]), "dataset": ["synthcrowd"] * 3}


def test_oracle_orientation_recovers_a_mean_body_turned_away_and_constant_does_not():
    module = _spin_module()
    module._eval_step(_turned_away_batch(module), "test", references=True)  # the test step's evaluation path
    constant = module._evaluation("test", "constant")
    oracle = module._evaluation("test", "oracle")
    c, o = constant.per_sample(), oracle.per_sample()
    assert c["sample_index"].tolist() == o["sample_index"].tolist() == [0, 1, 2]
    # the truth is the mean body in the true orientation: the oracle's prediction is the truth itself
    for name in ("mpjpe_mm", "pa_mpjpe_mm", "pve_mm"):
        assert o[name].max() < 0.01, (name, o[name])
    # constant faces the mean way: off by a rotation about the pelvis (large MPJPE and PVE) for the two turned
    # people, exact for the third; Procrustes removes a rotation, so its PA-MPJPE is the oracle's (zero)
    assert c["mpjpe_mm"][0] > 100.0 and c["mpjpe_mm"][1] > 100.0 and c["mpjpe_mm"][2] < 0.01
    assert c["pve_mm"][0] > 100.0 and c["pve_mm"][2] < 0.01
    assert c["pa_mpjpe_mm"].max() < 0.01
    totals = constant.compute(), oracle.compute()
    assert totals[1]["mpjpe"] < 0.01 < 60.0 < totals[0]["mpjpe"]
    assert totals[0]["mpjpe"] == pytest.approx(c["mpjpe_mm"].mean(), rel=1e-6)
    assert totals[0]["pa_mpjpe"] == pytest.approx(totals[1]["pa_mpjpe"], abs=0.01)


# -- tables -------------------------------------------------------------------------------------------------
def _metrics(mpjpe: float, pa_mpjpe: float, pve: float, ap: float) -> dict:
    out = {"mpjpe": mpjpe, "pa_mpjpe": pa_mpjpe, "pve": pve, "kp_AP": ap}
    for bucket, offset in (("none", -10.0), ("partial", 0.0), ("heavy", 20.0), ("distractor", 5.0)):
        out.update({f"count_{bucket}": 2, f"mpjpe_{bucket}": mpjpe + offset, f"pa_mpjpe_{bucket}": pa_mpjpe + offset,
                    f"pve_{bucket}": pve + offset})
    return out


CONSTANT = _metrics(150.0, 80.0, 170.0, 0.05)
ORACLE = _metrics(120.0, 80.0, 140.0, 0.10)


def _row(text: str, name: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_results_table_flags_a_model_not_better_than_constant():
    references = {"constant": CONSTANT, "oracle": ORACLE}
    better = summary_table(_metrics(100.0, 60.0, 120.0, 0.30), references)
    worse_pa = summary_table(_metrics(100.0, 80.0, 120.0, 0.30), references)  # MPJPE lower, PA-MPJPE equal
    worse = summary_table(_metrics(160.0, 90.0, 180.0, 0.01), references)
    header = _row(better, "source")
    assert header[:5] == ["source", "MPJPE none", "MPJPE partial", "MPJPE heavy", "MPJPE all"]
    assert header[-2:] == ["AP (%)", "vs constant"] and "PVE heavy" in header
    model = dict(zip(header, _row(better, "model"), strict=True))
    assert model["MPJPE heavy"] == "120.0" and model["PA-MPJPE all"] == "60.0" and model["AP (%)"] == "30.0"
    assert model["vs constant"] == "better"
    assert _row(worse_pa, "model")[-1] == NOT_BETTER_FLAG and _row(worse, "model")[-1] == NOT_BETTER_FLAG
    constant = dict(zip(header, _row(better, REFERENCE_LABELS["constant"]), strict=True))
    assert constant["MPJPE all"] == "150.0" and constant["AP (%)"] == "5.0" and constant["vs constant"] == "reference"
    assert _row(better, REFERENCE_LABELS["oracle"])[4] == "120.0"
    assert not_better_than_constant({"mpjpe": math.nan}, CONSTANT) is None  # nothing comparable: no flag
    assert summary_table(_metrics(100.0, 60.0, 120.0, 0.3)).count("vs constant") == 0  # no references, no rows


def test_results_table_splits_pa_mpjpe_into_depth_and_image_plane_where_measured():
    def split(metrics: dict, depth: float, plane: float) -> dict:
        return {**metrics, "pa_mpjpe_depth": depth, "pa_mpjpe_plane": plane}

    references = {"constant": split(CONSTANT, 49.2, 62.2), "oracle": split(ORACLE, 49.2, 62.2)}
    text = summary_table(split(_metrics(100.0, 72.3, 120.0, 0.3), 46.9, 46.9), references)
    parts = text[text.index("PA-MPJPE's parts"):]
    assert _row(parts, "source") == ["source", "PA-MPJPE", "depth", "image plane"]
    assert _row(parts, "model") == ["model", "72.3", "46.9", "46.9"]
    assert _row(parts, REFERENCE_LABELS["constant"]) == [REFERENCE_LABELS["constant"], "80.0", "49.2", "62.2"]
    assert "crop px" not in parts  # no pixel error measured: neither columns nor words for it
    with_pixels = summary_table({**split(_metrics(100.0, 72.3, 120.0, 0.3), 46.9, 46.9), "kp2d_px": 3.3}, references)
    assert "2D error in crop px, as placed and centred" in with_pixels
    assert _row(with_pixels[with_pixels.index("PA-MPJPE's parts"):], "model")[-2:] == ["3.3", "-"]
    # protocols without camera-frame ground truth measure no split (NaN): no such table
    unmeasured = summary_table(split(_metrics(100.0, 72.3, 120.0, 0.3), math.nan, math.nan), references)
    assert "PA-MPJPE's parts" not in unmeasured and "PA-MPJPE's parts" not in summary_table(CONSTANT)


def _reproduction(rows: list[dict], references: list[dict] | None = None) -> dict:
    columns = [[h, k] for h, k, _ in OCCLUSION_COLUMNS]
    return {"table": "occlusion", "preset": "cpu", "seeds": [0], "budget": [], "overrides": [], "machine": "test",
            "context_overrides": [], "regressor_overrides": [], "seconds": 60.0, "columns": columns, "rows": rows,
            "references": references or []}


def _model_row(key: str, metrics: dict) -> dict:
    cells = {k: {"mean": metrics[k] * scale, "sd": 0.0, "values": [metrics[k] * scale]}
             for _, k, scale in OCCLUSION_COLUMNS}
    return {"key": key, "label": key.upper(), "context": "none", "depths": [], "cells": cells, "counts": {}}


def test_reproduction_rows_come_from_the_first_runs_references_and_are_flagged(tmp_path):
    folder = write_results(tmp_path / "results", _metrics(130.0, 70.0, 150.0, 0.2), None, {"name": "synthcrowd"},
                           references={"constant": CONSTANT, "oracle": ORACLE})
    references = _reference_metrics({"results": str(folder)}, {})
    rows = _reference_rows(references, list(OCCLUSION_COLUMNS))
    assert [r["key"] for r in rows] == ["constant", "oracle"] and all(r["reference"] for r in rows)
    assert rows[0]["cells"]["mpjpe_heavy"]["mean"] == 170.0 and rows[0]["cells"]["kp_AP"]["mean"] == 5.0
    assert rows[1]["label"] == "oracle: mean pose + true orientation"
    result = _reproduction([_model_row("spin", _metrics(155.0, 70.0, 160.0, 0.1)),
                            _model_row("ochmr", _metrics(140.0, 75.0, 150.0, 0.2))], rows)
    assert versus_constant(result) == {"spin": NOT_BETTER_FLAG, "ochmr": "better", "constant": "reference",
                                       "oracle": "reference"}
    text = format_table_document(result)
    assert _row(text, "SPIN")[-1] == NOT_BETTER_FLAG and _row(text, "OCHMR")[-1] == "better"
    assert _row(text, "constant: mean pose, shape and camera")[:4] == ["constant: mean pose, shape and camera",
                                                                       "-", "-", "140.0"]
    # paper preset: a column per evaluation, the references from that evaluation's results
    evaluated = write_results(tmp_path / "eval", {"mpjpe": 90.0}, None, {"name": "3dpw_pc"},
                              references={"constant": {"mpjpe": 200.0}, "oracle": {"mpjpe": 150.0}})
    paper = _reference_metrics({"results": None}, {"3dpw_pc/mpjpe": {"results": str(evaluated)}})
    assert paper == {"constant": {"3dpw_pc/mpjpe": 200.0}, "oracle": {"3dpw_pc/mpjpe": 150.0}}
    assert _reference_metrics({"results": str(tmp_path / "missing")}, {}) == {}  # old runs: no reference rows
    assert versus_constant(_reproduction([_model_row("spin", CONSTANT)])) == {}


def test_metrics_json_round_trip_keeps_the_references(tmp_path):
    model = _metrics(130.0, 70.0, 150.0, 0.2)
    references = {"constant": {**CONSTANT, "pve_partial": math.nan}, "oracle": ORACLE}
    write_results(tmp_path, model, None, {"name": "synthcrowd"}, references=references)
    payload = json.loads((tmp_path / "metrics.json").read_text())
    assert payload["metrics"] == model and set(payload) >= {"metrics", "protocol", "run_config", "per_joint"}
    assert set(payload["references"]) == {"constant", "oracle"}
    assert payload["references"]["oracle"] == ORACLE
    assert all(_same(payload["references"]["constant"][k], v) for k, v in references["constant"].items())
    table = (tmp_path / "table.md").read_text()
    assert _row(table, "model")[-1] == "better" and REFERENCE_LABELS["oracle"] in table
    write_results(tmp_path / "plain", model, None, {"name": "synthcrowd"})
    assert "references" not in json.loads((tmp_path / "plain" / "metrics.json").read_text())


# -- the test loop, end to end -------------------------------------------------------------------------------
@pytest.mark.slow
def test_test_loop_writes_references_and_a_zero_head_equals_constant(tmp_path, tiny_synthcrowd):
    from ochmr_lit.runner import build
    from ochmr_lit.runner.testing import run_test

    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=[
            "experiment=synthcrowd_spin", f"run_dir={tmp_path}", f"++data.root={tiny_synthcrowd}", "logger=csv",
            "callbacks=none", "model.num_vis=0", "trainer.enable_progress_bar=false", *TINY_OVERRIDES])
    module, datamodule, trainer = build(cfg)
    _zero_head(module)
    results = run_test(module, datamodule, trainer, cfg)
    model, references = results["metrics"], results["references"]
    assert set(references) == {"constant", "oracle"} and references is module.test_references
    constant = references["constant"]
    assert set(model) == set(constant) and "kp_AP" in model
    assert 1.0 < model["kp2d_px"] < 64.0  # the limb keypoints' 2D error in crop px, measured beside AP
    assert 0.0 < model["kp2d_px_centred"] < model["kp2d_px"]  # less once each person's offset is removed
    assert all(_same(model[k], constant[k]) for k in model), {k: (model[k], constant[k]) for k in model}
    assert model["mpjpe"] > 10.0 and model["count_none"] + model["count_partial"] + model["count_heavy"] > 0
    assert references["oracle"]["pa_mpjpe"] == pytest.approx(constant["pa_mpjpe"], rel=1e-5)  # PA removes orientation
    assert trainer.callback_metrics["test/constant/mpjpe"].item() == pytest.approx(constant["mpjpe"], rel=1e-6)
    assert trainer.callback_metrics["test/oracle/mpjpe"].item() == pytest.approx(references["oracle"]["mpjpe"],
                                                                                  rel=1e-6)
    saved = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert saved["references"]["constant"]["mpjpe"] == pytest.approx(constant["mpjpe"])
    assert saved["metrics"]["mpjpe"] == pytest.approx(model["mpjpe"])
    table = (tmp_path / "results" / "table.md").read_text()
    assert _row(table, "model")[-1] == NOT_BETTER_FLAG  # equal to constant is not better

    # validation evaluates the references once (they do not depend on the weights) and logs them every time
    trainer.validate(module, datamodule=datamodule, verbose=False)
    first = trainer.callback_metrics["val/constant/mpjpe"].item()
    assert first == pytest.approx(trainer.callback_metrics["val/mpjpe"].item(), rel=1e-6)
    trainer.validate(module, datamodule=datamodule, verbose=False)
    assert not module._evaluation("val", "constant").mesh_errors["mpjpe"].update_called
    assert trainer.callback_metrics["val/constant/mpjpe"].item() == first
