"""The pipeline check: experiment=synthcrowd_overfit fits the people it trains on, through the real entry point.

Generation, labels, crops, centermaps, model, losses, body model, evaluation and keypoint AP all take part: a
regression anywhere in that chain shows up as a model that cannot fit 20 people.
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT


@pytest.mark.slow
def test_overfit_experiment_fits_its_training_people(tmp_path):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="disabled", PYTHONPATH=str(REPO_ROOT))
    run_dir = tmp_path / "overfit"
    result = subprocess.run(
        [sys.executable, "-m", "ochmr_lit.fit", "experiment=synthcrowd_overfit", f"run_dir={run_dir}",
         "logger=csv", "trainer.enable_progress_bar=false"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((run_dir / "results" / "metrics.json").read_text())
    metrics, constant = results["metrics"], results["references"]["constant"]
    assert metrics["mpjpe"] < 40.0, metrics
    assert metrics["kp_AP"] > 0.6, metrics
    # far below what the same evaluation gives the mean body on the same people
    assert metrics["pa_mpjpe"] < 0.5 * constant["pa_mpjpe"], (metrics["pa_mpjpe"], constant["pa_mpjpe"])
