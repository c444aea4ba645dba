"""``select_checkpoint=best``: a run ends with its best validation epoch's weights (both pipeline stages)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_OVERRIDES
from hydra import compose, initialize_config_module

from ochmr_lit.errors import ConfigError
from ochmr_lit.runner import run_evaluate, run_fit


def _compose(config: str, overrides: list[str]):
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        return compose(config_name=config, overrides=overrides)


def _per_epoch(metrics_csv: Path, key: str) -> list[float]:
    """The value of ``key`` logged at each validation epoch, in epoch order."""
    rows = [r for r in csv.DictReader(metrics_csv.open()) if r.get(key)]
    return [float(r[key]) for r in sorted(rows, key=lambda r: int(r["epoch"]))]


def _epoch_of(checkpoint: str) -> int:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"]


@pytest.mark.slow
def test_best_selects_the_best_validation_epoch_of_each_stage(tiny_synthcrowd, tmp_path):
    run_dir = tmp_path / "run"
    outcome = run_fit(_compose("fit", [
        "experiment=synthcrowd", f"run_dir={run_dir}", f"++data.root={tiny_synthcrowd}", "trainer.max_epochs=3",
        "++context_stage.trainer.max_epochs=2", "++context_stage.data={crop_size:64,map_size:16}",
        "model.context_input_size=64", "select_checkpoint=best", *TINY_OVERRIDES, "logger=csv"]))

    # the regressor: lowest val/mpjpe (the first of equal ones), kept by the epoch checkpoint and tested
    val_mpjpe = _per_epoch(run_dir / "csv" / "metrics.csv", "val/mpjpe")
    assert len(val_mpjpe) == 3
    assert _epoch_of(outcome["checkpoint"]) == int(np.argmin(val_mpjpe))
    assert outcome["selected"]["monitor"] == "val/mpjpe" and outcome["selected"]["mode"] == "min"
    assert outcome["selected"]["score"] == pytest.approx(min(val_mpjpe), rel=1e-5)
    stored = json.loads((run_dir / "results" / "metrics.json").read_text())
    assert stored["run_config"]["selected_checkpoint"]["path"] == outcome["checkpoint"]
    evaluated = run_evaluate(_compose("evaluate", [
        "experiment=synthcrowd", f"ckpt_path={outcome['checkpoint']}", f"run_dir={tmp_path / 'eval'}",
        f"++data.root={tiny_synthcrowd}", *TINY_OVERRIDES]))["results"]["metrics"]
    for name in ("mpjpe", "pa_mpjpe", "kp_AP"):
        assert stored["metrics"][name] == pytest.approx(evaluated[name], rel=1e-4, abs=1e-6)

    # the context estimator: highest val/pck_centre; the regressor read the maps of that checkpoint
    pck = _per_epoch(run_dir / "context" / "csv" / "metrics.csv", "val/pck_centre")
    assert len(pck) == 2
    assert _epoch_of(outcome["context_checkpoint"]) == int(np.argmax(pck))
    assert stored["run_config"]["model"]["context_checkpoint"] == outcome["context_checkpoint"]


def test_a_wrong_value_or_no_epoch_checkpoint_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match=r"select_checkpoint='newest'.*use last .* or best"):
        run_fit(_compose("fit", ["experiment=synthcrowd", f"run_dir={tmp_path}", "select_checkpoint=newest"]))
    with pytest.raises(ConfigError, match="select_checkpoint=best needs callbacks.model_checkpoint"):
        run_fit(_compose("fit", ["experiment=synthcrowd", f"run_dir={tmp_path}", "select_checkpoint=best",
                                 "callbacks=none"]))


def test_a_monitor_the_run_does_not_log_is_one_line_naming_its_key(tiny_synthcrowd, tmp_path):
    """Which metrics a module logs is known after its first validation: Lightning's report of a monitor it cannot find
    becomes one line naming the callback's key and the closest metrics."""
    cfg = _compose("fit", ["experiment=synthcrowd_spin", f"run_dir={tmp_path}", f"++data.root={tiny_synthcrowd}",
                           "trainer.max_epochs=1", "callbacks.model_checkpoint.monitor=val/mpjpee", *TINY_OVERRIDES,
                           "logger=csv"])
    with pytest.raises(ConfigError) as error:
        run_fit(cfg)
    message = str(error.value)
    assert message.startswith("callbacks.model_checkpoint.monitor=val/mpjpee: the run logs no such metric; did you "
                              "mean val/mpjpe")
    assert "its validation metrics are val/mpjpe, val/pa_mpjpe, " in message and "train/loss" not in message
    assert "\n" not in message
