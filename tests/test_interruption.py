"""Interrupted runs lose nothing: SIGTERM and Ctrl-C save last.ckpt, SIGKILL leaves the periodic one, and resuming
from either ends with the weights of an uninterrupted run with the same seed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from conftest import REPO_ROOT, TINY_OVERRIDES, assert_same_weights, checkpoint_weights
from hydra import compose, initialize_config_module
from lightning.pytorch.callbacks import Callback

from ochmr_lit.lit.callbacks import ExactResume
from ochmr_lit.runner import PREEMPTED_EXIT_CODE, build, run_fit

BASE = ["experiment=synthcrowd_spin", "logger=csv", "test_after_fit=false", "trainer.max_epochs=2",
        "callbacks.last_checkpoint.every_n_train_steps=1", "trainer.enable_progress_bar=false",
        "trainer.num_sanity_val_steps=0", *TINY_OVERRIDES]


def _compose(overrides):
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        return compose(config_name="fit", overrides=overrides)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_synthcrowd):
    root = tmp_path_factory.mktemp("uninterrupted")
    outcome = run_fit(_compose([*BASE, f"++data.root={tiny_synthcrowd}", f"run_dir={root}",
                                f"paths.output_dir={root}"]))
    state = torch.load(outcome["checkpoint"], map_location="cpu", weights_only=True)
    return checkpoint_weights(Path(outcome["checkpoint"])), state["global_step"]


class _SigtermAtStep(Callback):
    """Delivers what a SIGTERM handler does, at a chosen step (deterministic in-process preemption)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_and_resume_matches_uninterrupted(tmp_path, tiny_synthcrowd, uninterrupted):
    weights, total_steps = uninterrupted
    cfg = _compose([*BASE, f"++data.root={tiny_synthcrowd}", f"run_dir={tmp_path}/a", f"paths.output_dir={tmp_path}"])
    L.seed_everything(cfg.seed, workers=True)  # as run_fit does
    module, datamodule, trainer = build(cfg)
    stop_at = total_steps // 2 - 1  # inside the first epoch
    trainer.callbacks.append(_SigtermAtStep(stop_at))
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    with pytest.raises(SIGTERMException):
        trainer.fit(module, datamodule=datamodule)
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == stop_at and state["epoch"] == 0
    resumed = run_fit(_compose([*BASE, f"++data.root={tiny_synthcrowd}", f"run_dir={tmp_path}/b",
                                f"ckpt_path={last}"]))
    final = torch.load(resumed["checkpoint"], map_location="cpu", weights_only=True)
    assert final["global_step"] == total_steps
    assert_same_weights(checkpoint_weights(Path(resumed["checkpoint"])), weights)


def _start(run_dir: Path, synthcrowd: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONPATH=str(REPO_ROOT))
    cmd = [sys.executable, "-m", "ochmr_lit.fit", *BASE, f"++data.root={synthcrowd}", f"hydra.run.dir={run_dir}",
           "+trainer.max_time=null", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def _wait_for_step(path: Path, proc: subprocess.Popen, step: int, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.is_file():
            try:
                if _step(path) >= step:
                    return
            except (EOFError, RuntimeError):  # being replaced right now: read the next one
                pass
        time.sleep(0.2)
    raise AssertionError(f"run ended or stalled before step {step}: {proc.communicate()[0][-2000:]}")


@pytest.mark.slow
def test_ctrl_c_then_sigkill_then_resume_end_with_the_uninterrupted_weights(tmp_path, tiny_synthcrowd, uninterrupted):
    """Ctrl-C saves last.ckpt and stops as SIGTERM does (the pipeline test stops processes by SIGTERM); the process
    that continues it, killed outright, leaves its periodic last.ckpt; continuing that one ends with the weights of
    an uninterrupted run."""
    weights, total_steps = uninterrupted
    first_last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    first = _start(tmp_path / "first", tiny_synthcrowd)
    _wait_for_step(first_last, first, 2)
    first.send_signal(signal.SIGINT)
    out = first.communicate(timeout=120)[0]
    assert first.returncode == PREEMPTED_EXIT_CODE, out[-3000:]
    assert "continue with ckpt_path=last" in out
    assert "weights_only" not in out  # the full state is saved on purpose: no Lightning notice about it
    interrupted = _step(first_last)
    assert 2 <= interrupted < total_steps - 2

    second_last = tmp_path / "second" / "checkpoints" / "last.ckpt"
    second = _start(tmp_path / "second", tiny_synthcrowd, f"ckpt_path={first_last}")
    _wait_for_step(second_last, second, interrupted + 1)
    second.send_signal(signal.SIGKILL)
    out = second.communicate(timeout=120)[0]
    assert second.returncode == -signal.SIGKILL, out[-3000:]
    assert interrupted < _step(second_last) < total_steps

    resumed = run_fit(_compose([*BASE, f"++data.root={tiny_synthcrowd}", f"run_dir={tmp_path}/resumed",
                                f"ckpt_path={second_last}"]))
    assert_same_weights(checkpoint_weights(Path(resumed["checkpoint"])), weights)


def test_one_last_checkpoint_holds_the_newest_state(tmp_path, tiny_synthcrowd):
    """The epoch and the every-N-steps checkpoint callbacks share last.ckpt (no last-v1.ckpt beside it)."""
    overrides = [o for o in BASE if not o.startswith("callbacks.last_checkpoint")]
    outcome = run_fit(_compose([*overrides, "callbacks.last_checkpoint.every_n_train_steps=3",
                                f"++data.root={tiny_synthcrowd}", f"run_dir={tmp_path}"]))
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.glob("last*.ckpt")) == ["last.ckpt"]
    final_step = torch.load(outcome["checkpoint"], map_location="cpu", weights_only=True)["global_step"]
    assert torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == final_step


def test_a_resumed_epoch_counts_the_batches_trained_before_the_interruption():
    """Lightning calls no ``on_train_epoch_start`` when it restarts in the middle of an epoch: the count continues
    from the checkpoint's, so that a checkpoint written later in that epoch makes the next resume skip every batch
    trained in it, not only those trained since the last resume."""
    before = ExactResume()
    before.epoch, before.batches_done = 1, 5
    resumed = ExactResume()
    resumed._datamodule = SimpleNamespace(resume_skip_batches=0)
    resumed.load_state_dict(before.state_dict())
    assert resumed._datamodule.resume_skip_batches == 5  # the loader leaves out the five batches trained
    resumed.on_train_batch_end(None, None, None, None, 5)
    assert resumed.loader_state() == {"epoch": 1, "batches_done": 6}
