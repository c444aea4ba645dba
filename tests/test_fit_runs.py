"""Training runs end to end: outputs of a run, resume from last.ckpt, DDP on CPU (2 processes, 2 "nodes")."""

import csv
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT
from conftest import TINY_OVERRIDES as TINY
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from ochmr_lit.errors import CheckpointError, ConfigError
from ochmr_lit.runner import run_evaluate, run_fit


def _compose(overrides):
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        return compose(config_name="fit", overrides=overrides)


@pytest.mark.slow
def test_pipeline_run_leaves_checkpoints_logs_and_results(tiny_run):
    run_dir, outcome = tiny_run
    ckpt = torch.load(outcome["checkpoint"], map_location="cpu", weights_only=True)
    assert ckpt["run_config"]["model"]["context_source"] == "predicted"
    assert ckpt["run_config"]["model"]["context_checkpoint"] == outcome["context_checkpoint"]
    assert not any(k.startswith("body.") for k in ckpt["state_dict"])  # body model never stored
    assert (run_dir / "context" / "checkpoints" / "last.ckpt").is_file()
    metrics = json.loads((run_dir / "results" / "metrics.json").read_text())
    assert metrics["protocol"]["name"] == "synthcrowd"
    assert metrics["metrics"]["mpjpe"] > 0
    assert len(metrics["per_joint"]["mpjpe_mm"]) == 14
    rows = list(csv.DictReader((run_dir / "results" / "per_sample.csv").open()))
    counted = sum(metrics["metrics"][f"count_{b}"] for b in ("none", "partial", "heavy"))
    assert len(rows) == counted > 0
    assert (run_dir / "csv" / "metrics.csv").is_file()
    (regressor_run,) = (run_dir / "wandb").glob("offline-run-*/*.wandb")
    (context_run,) = (run_dir / "context" / "wandb").glob("offline-run-*/*.wandb")
    for run in (regressor_run, context_run):  # one W&B group; dashboards filter by dataset (and protocol)
        assert b"data:synthcrowd" in run.read_bytes()
    assert b"protocol:synthcrowd" in regressor_run.read_bytes()


@pytest.mark.slow
def test_evaluate_reproduces_the_test_metrics_of_the_run(tiny_run, tiny_synthcrowd, tmp_path):
    run_dir, outcome = tiny_run
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=[
            "experiment=synthcrowd", f"ckpt_path={outcome['checkpoint']}", f"run_dir={tmp_path}",
            f"++data.root={tiny_synthcrowd}", *TINY])
    evaluated = run_evaluate(cfg)
    fitted = json.loads((run_dir / "results" / "metrics.json").read_text())["metrics"]
    for name in ("mpjpe", "pa_mpjpe", "pve", "kp_AP"):
        assert evaluated["results"]["metrics"][name] == pytest.approx(fitted[name], rel=1e-4, abs=1e-6)
    assert (tmp_path / "results" / "per_sample.csv").is_file()


def test_evaluate_writes_how_far_each_predicted_centre_lies_from_the_annotated_one(tiny_run, tiny_synthcrowd,
                                                                                  tmp_path):
    """``context_centres.csv``: one row per person of ``per_sample.csv``; the share within 5 % of the crop side is the
    context estimator's own ``pck_centre`` on the split (its evaluation decodes the same maps)."""
    _, outcome = tiny_run
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=[
            "experiment=synthcrowd", f"ckpt_path={outcome['checkpoint']}", f"run_dir={tmp_path / 'regressor'}",
            f"++data.root={tiny_synthcrowd}", *TINY])
        context_cfg = compose(config_name="evaluate", overrides=[
            "experiment=synthcrowd_context", "task=context", f"ckpt_path={outcome['context_checkpoint']}",
            f"run_dir={tmp_path / 'context'}", f"++data.root={tiny_synthcrowd}", *TINY, "data.crop_size=64",
            "data.map_size=16"])
    run_evaluate(cfg)
    centres = list(csv.DictReader((tmp_path / "regressor" / "results" / "context_centres.csv").open()))
    people = list(csv.DictReader((tmp_path / "regressor" / "results" / "per_sample.csv").open()))
    assert len(centres) >= 2
    assert [int(r["sample_index"]) for r in centres] == sorted(int(r["sample_index"]) for r in people)
    errors = np.array([float(r["centre_error"]) for r in centres])
    assert np.all(errors >= 0) and np.all(np.array([float(r["centre_error_px"]) for r in centres]) >= errors)
    estimator = run_evaluate(context_cfg)["results"]["metrics"]
    assert float(np.mean(errors < 0.05)) == pytest.approx(estimator["pck_centre"], abs=1e-6)


def test_evaluate_refuses_crops_of_another_size_than_the_run_trained_on(tiny_run, tiny_synthcrowd, tmp_path):
    _, outcome = tiny_run
    trained = torch.load(outcome["checkpoint"], map_location="cpu", weights_only=True)["run_config"]["data"]
    other = int(trained["crop_size"]) * 2
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=[
            "experiment=synthcrowd", f"ckpt_path={outcome['checkpoint']}", f"run_dir={tmp_path}",
            f"++data.root={tiny_synthcrowd}", *TINY, f"data.crop_size={other}"])
    with pytest.raises(ConfigError, match=re.escape(
            f"data.crop_size={other}, but {outcome['checkpoint']} was trained with data.crop_size="
            f"{trained['crop_size']}: evaluate it with data.crop_size={trained['crop_size']} "
            f"data.map_size={trained['map_size']}")):
        run_evaluate(cfg)
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_evaluate_split_train_scores_the_training_people_unaugmented(tiny_run, tiny_synthcrowd, tmp_path):
    """``split=train`` scores the training split as evaluation crops: every person of it, twice the same."""
    _, outcome = tiny_run
    tiny = TINY

    def config(split: str, folder: Path):
        with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
            return compose(config_name="evaluate", overrides=[
                "experiment=synthcrowd", f"ckpt_path={outcome['checkpoint']}", f"run_dir={folder}",
                f"++data.root={tiny_synthcrowd}", f"split={split}", *tiny])

    def evaluate(split: str, folder: Path) -> dict:
        return run_evaluate(config(split, folder))["results"]["metrics"]

    first, again = evaluate("train", tmp_path / "a"), evaluate("train", tmp_path / "b")
    records, _ = instantiate(config("train", tmp_path / "d").data, _convert_="all").load_records("train")
    people = len(np.load(tiny_synthcrowd / "test" / "smpl_gt.npz")["pose"])
    assert sum(first[f"count_{b}"] for b in ("none", "partial", "heavy")) == len(records) != people
    assert first["mpjpe"] == pytest.approx(again["mpjpe"], rel=1e-6)  # no augmentation: the same crops each time
    with pytest.raises(ConfigError, match=r"split='trian': evaluate scores one of train, val, test"):
        evaluate("trian", tmp_path / "c")


@pytest.mark.slow
def test_resume_from_last_continues_step_and_optimizer_state(tmp_path, tiny_synthcrowd):
    base = ["experiment=synthcrowd_spin", f"++data.root={tiny_synthcrowd}", "logger=csv", "test_after_fit=false",
            f"paths.output_dir={tmp_path}", *TINY]
    first = run_fit(_compose([*base, f"run_dir={tmp_path}/synthcrowd_spin/a", "trainer.max_epochs=1"]))
    state1 = torch.load(first["checkpoint"], map_location="cpu", weights_only=True)
    with pytest.raises(ConfigError, match=r"resumes a run started with other settings: data.batch_size=2 then, 1 now"):
        run_fit(_compose([*base, f"run_dir={tmp_path}/synthcrowd_spin/b", "trainer.max_epochs=2", "ckpt_path=last",
                          "data.batch_size=1"]))  # the run's batches would be skipped by another count
    second = run_fit(_compose([*base, f"run_dir={tmp_path}/synthcrowd_spin/b", "trainer.max_epochs=2",
                               "ckpt_path=last"]))
    state2 = torch.load(second["checkpoint"], map_location="cpu", weights_only=True)
    # last.ckpt is rewritten when training ends, after the epoch counter has moved on: "epoch" counts the
    # epochs completed, and the fit loop's progress says the same
    steps = state1["global_step"]  # one epoch
    assert steps > 0 and state1["epoch"] == 1
    assert state1["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 1
    assert state2["global_step"] == 2 * steps and state2["epoch"] == 2
    assert state2["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 2
    adam1 = state1["optimizer_states"][0]["state"]
    adam2 = state2["optimizer_states"][0]["state"]
    assert float(adam2[0]["step"]) == float(adam1[0]["step"]) + steps  # Adam's moments carried over, not reset
    last = Path(second["checkpoint"]).parent / "last.ckpt"
    last.write_bytes(last.read_bytes()[:200])  # a copy cut short: one line naming the file, not torch's traceback
    with pytest.raises(CheckpointError, match=rf"ckpt_path={last} cannot be read as a checkpoint \(the file is cut "):
        run_fit(_compose([*base, f"run_dir={tmp_path}/synthcrowd_spin/c", "trainer.max_epochs=3", "ckpt_path=last"]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fit_command(run_dir: Path, synthcrowd: Path, extra: list[str], experiment: str = "synthcrowd_spin") -> list[str]:
    if experiment == "synthcrowd":  # the default pipeline: shrink its context-estimator stage too
        extra = [*extra, "++context_stage.trainer.max_epochs=1", "model.context_input_size=64"]
    return [sys.executable, "-m", "ochmr_lit.fit", f"experiment={experiment}", f"hydra.run.dir={run_dir}",
            f"++data.root={synthcrowd}", "logger=csv", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
            *TINY, *extra]


def _env(**extra) -> dict:
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline", OMP_NUM_THREADS="1", **extra)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def _final_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "results" / "metrics.json").read_text())["metrics"]


@pytest.mark.slow
def test_ddp_two_cpu_processes_one_run_folder_and_synced_metrics(tmp_path, tiny_synthcrowd):
    run_dir = tmp_path / "ddp"
    command = _fit_command(run_dir, tiny_synthcrowd, ["trainer=ddp_cpu"], experiment="synthcrowd")
    done = subprocess.run(command, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # one run folder, not one per rank
    assert (run_dir / "context" / "checkpoints" / "last.ckpt").is_file()  # both stages of the pipeline ran
    metrics = _final_metrics(run_dir)
    # the 2 test images' people, split over 2 ranks, are all counted once after the sync
    people = sum(metrics[f"count_{b}"] for b in ("none", "partial", "heavy"))
    annotations = json.loads((tiny_synthcrowd / "test" / "annotations.json").read_text())["annotations"]
    assert people == len(annotations)


@pytest.mark.slow
def test_two_nodes_on_localhost(tmp_path, tiny_synthcrowd):
    port = _free_port()
    run_dir = tmp_path / "nodes"
    procs = []
    for node in (0, 1):
        env = _env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NODE_RANK=str(node), LOCAL_RANK="0",
                   WORLD_SIZE="2")
        cmd = _fit_command(run_dir, tiny_synthcrowd, ["trainer.strategy=ddp", "trainer.num_nodes=2",
                                                      "trainer.devices=1"])
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    metrics = _final_metrics(run_dir)
    annotations = json.loads((tiny_synthcrowd / "test" / "annotations.json").read_text())["annotations"]
    assert sum(metrics[f"count_{b}"] for b in ("none", "partial", "heavy")) == len(annotations)


@pytest.mark.slow
def test_ddp_run_has_one_wandb_run_and_rank_zero_writes_the_files(tmp_path, tiny_synthcrowd):
    run_dir = tmp_path / "ddp_wandb"
    command = _fit_command(run_dir, tiny_synthcrowd, ["trainer=ddp_cpu", "logger=wandb"])
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp_wandb"]  # one run folder, not one per rank
    runs = sorted(p.name for p in (run_dir / "wandb").iterdir() if p.name.startswith(("offline-run-", "run-")))
    assert len(runs) == 1 and runs[0].startswith("offline-run-")  # one W&B run for both processes
    assert len(list((run_dir / "wandb" / runs[0]).glob("*.wandb"))) == 1
    # result files come from rank zero alone: written once, with every test person once
    written = {p.name for p in (run_dir / "results").iterdir()}
    assert {"metrics.json", "per_sample.csv", "table.md"} <= written
    assert not [name for name in written if "rank" in name or "-v1" in name]
    rows = list(csv.DictReader((run_dir / "results" / "per_sample.csv").open()))
    annotations = json.loads((tiny_synthcrowd / "test" / "annotations.json").read_text())["annotations"]
    assert len(rows) == len({row["sample_index"] for row in rows}) == len(annotations)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if not p.name.startswith("epoch")) == \
        ["last.ckpt"]
