"""The default two-stage pipeline, stopped by SIGTERM in either stage, resumes with ``ckpt_path=last`` in its own
run folder and ends with the weights of an uninterrupted run: a finished context stage is reused, an interrupted one
continues from its own last.ckpt, and the CSV log runs on without gaps or repeated steps."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, TINY_OVERRIDES, assert_same_weights, checkpoint_weights
from hydra import compose, initialize_config_module

from ochmr_lit.runner import PREEMPTED_EXIT_CODE, STAGE_FINISHED, run_fit

PIPELINE = ["experiment=synthcrowd", "logger=csv", "trainer.max_epochs=2", "++context_stage.trainer.max_epochs=2",
            "++context_stage.data={crop_size:64,map_size:16}", "model.context_input_size=64",
            "callbacks.last_checkpoint.every_n_train_steps=1", "trainer.enable_progress_bar=false",
            "+trainer.max_time=null", *TINY_OVERRIDES]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_synthcrowd):
    root = tmp_path_factory.mktemp("pipeline_uninterrupted")
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=[*PIPELINE, f"++data.root={tiny_synthcrowd}", f"run_dir={root}"])
    outcome = run_fit(cfg)
    return checkpoint_weights(Path(outcome["context_checkpoint"])), checkpoint_weights(Path(outcome["checkpoint"]))


def _fit(output_dir: Path, synthcrowd: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline", PYTHONPATH=str(REPO_ROOT))
    cmd = [sys.executable, "-m", "ochmr_lit.fit", *PIPELINE, f"++data.root={synthcrowd}",
           f"paths.output_dir={output_dir}", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop_at_step(path: Path, proc: subprocess.Popen, step: int, timeout: float = 600) -> str:
    """SIGTERM once ``path`` holds a checkpoint of at least ``step``; the process's output."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.is_file():
            try:
                if torch.load(path, map_location="cpu", weights_only=True)["global_step"] >= step:
                    proc.send_signal(signal.SIGTERM)
                    out = proc.communicate(timeout=300)[0]
                    assert proc.returncode == PREEMPTED_EXIT_CODE, out[-3000:]
                    return out
            except (EOFError, RuntimeError):  # being replaced right now: read the next one
                pass
        time.sleep(0.1)
    raise AssertionError(f"run ended or stalled before step {step}: {proc.communicate()[0][-3000:]}")


def _csv_steps(path: Path) -> list[int]:
    rows = list(csv.DictReader(path.open()))
    return [int(float(r["step"])) for r in rows if r.get("train/loss")]


@pytest.mark.slow
def test_sigterm_in_each_stage_in_turn_resumes_in_place_to_the_uninterrupted_weights(tmp_path, tiny_synthcrowd,
                                                                                       uninterrupted):
    """Stopped in the context stage, resumed, stopped again in the regressor stage, resumed again: three processes
    end with the weights of one uninterrupted run."""
    context_weights, regressor_weights = uninterrupted
    run_dir = tmp_path / "synthcrowd" / "run"
    first = _fit(tmp_path, tiny_synthcrowd, f"hydra.run.dir={run_dir}")
    out = _stop_at_step(run_dir / "context" / "checkpoints" / "last.ckpt", first, 2)
    assert "continue with ckpt_path=last" in out
    assert "weights_only" not in out  # the full state is saved on purpose: no Lightning notice about it
    assert not (run_dir / "context" / STAGE_FINISHED).is_file()

    second = _fit(tmp_path, tiny_synthcrowd, "ckpt_path=last")  # no folder named: it finds the run's own
    _stop_at_step(run_dir / "checkpoints" / "last.ckpt", second, 2)  # the context stage ended, the regressor's began
    assert (run_dir / "context" / STAGE_FINISHED).is_file()
    assert_same_weights(checkpoint_weights(run_dir / "context" / "checkpoints" / "last.ckpt"), context_weights)

    third = _fit(tmp_path, tiny_synthcrowd, "ckpt_path=last")  # the finished context stage is reused
    out = third.communicate(timeout=900)[0]
    assert third.returncode == 0, out[-3000:]
    assert "not resumable" not in out  # the training loader's state is in the checkpoint
    assert "exists and is not empty" not in out  # Lightning's notice about the folder is not shown on a resume
    assert [p.name for p in (tmp_path / "synthcrowd").iterdir()] == ["run"]  # one run folder, no new one
    assert_same_weights(checkpoint_weights(run_dir / "context" / "checkpoints" / "last.ckpt"), context_weights)
    assert_same_weights(checkpoint_weights(run_dir / "checkpoints" / "last.ckpt"), regressor_weights)
    assert (run_dir / "results" / "metrics.json").is_file()
    for log in (run_dir / "csv" / "metrics.csv", run_dir / "context" / "csv" / "metrics.csv"):
        steps = _csv_steps(log)
        assert steps == sorted(set(steps)) and steps[0] <= 1, steps  # from the start, each step once


def test_resume_without_a_run_to_resume_is_one_line(tmp_path):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline", PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run([sys.executable, "-m", "ochmr_lit.fit", "experiment=synthcrowd_spin", "ckpt_path=last",
                           f"paths.output_dir={tmp_path}"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: ckpt_path=last: no run of synthcrowd_spin to resume under "
                                   f"{tmp_path}/synthcrowd_spin (no checkpoints/last.ckpt in any run folder); "
                                   "start without ckpt_path or give a checkpoint file")
    assert not any(tmp_path.iterdir())  # nothing was created
