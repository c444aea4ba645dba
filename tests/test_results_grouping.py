"""What the analysis notebooks show: one entry per evaluation, and full joint names.

A checkpoint tested at the end of ``fit`` and scored again by ``evaluate`` (same split, protocol, context maps and
numbers) is one evaluation, shown once as the newest with how often it was evaluated; another checkpoint, split,
context mode, run or other numbers stay apart. Joint names of every evaluated joint set read in full.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import pytest

from ochmr_lit.body.keypoints import available_conventions, get_convention
from ochmr_lit.eval.joints import JOINT_SETS
from ochmr_lit.eval.records import (
    FINAL_CHECKPOINT,
    evaluated_checkpoint,
    group_evaluations,
    joint_display_name,
    joint_display_names,
    load_evaluations,
    per_joint_errors,
    per_joint_table,
    run_label,
)
from ochmr_lit.eval.results_files import write_results

METRICS = {"mpjpe": 81.25, "pa_mpjpe": 52.5, "pve": 97.0, "mpjpe_heavy": math.nan, "count_none": 3, "kp_AP": 0.25}
PROTOCOL = {"name": "synthcrowd", "joint_set": "lsp14"}
TRAINED = {"experiment_name": "synthcrowd", "run_dir": "outputs/synthcrowd/run_a", "seed": 0,
           "model": {"context_source": "predicted", "conorm_depths": [2]},
           "data": {"root": "synthcrowd", "splits": {"test": 80}, "batch_size": 32, "predicted_centres": "run_a/pc"}}


def _fit(folder: str = "run_a/results", written: float = 100.0, **metrics: float) -> dict[str, Any]:
    """A record of the test at the end of ``fit``."""
    payload = {"metrics": {**METRICS, **metrics}, "protocol": dict(PROTOCOL), "run_config": copy.deepcopy(TRAINED)}
    return {"folder": Path(folder), "payload": payload, "written": written}


def _evaluate(folder: str = "eval_b/results", written: float = 200.0, ckpt: str = "run_a/checkpoints/last.ckpt",
              split: str = "test", **metrics: float) -> dict[str, Any]:
    """A record of ``evaluate`` of run_a's checkpoint ``ckpt``: other loader settings, its own centre cache."""
    record = _fit(folder, written, **metrics)
    data = {**TRAINED["data"], "batch_size": 4, "predicted_centres": None}
    record["payload"]["run_config"]["evaluated_with"] = {"ckpt_path": ckpt, "split": split, "data": data,
                                                        "run_dir": str(Path(folder).parent)}
    return record


def test_fit_then_evaluate_of_the_same_checkpoint_is_one_row_evaluated_twice():
    rows = group_evaluations([_fit(), _evaluate()])
    assert len(rows) == 1
    assert rows[0]["times_evaluated"] == 2
    assert rows[0]["folder"] == Path("eval_b/results")  # the most recent
    assert rows[0]["folders"] == [Path("eval_b/results"), Path("run_a/results")]
    assert rows[0]["payload"]["metrics"]["mpjpe"] == 81.25
    assert run_label(rows[0]) == "synthcrowd (context=predicted, CoNorm=[2]), evaluated 2 times"


def test_the_newest_is_kept_whatever_the_order():
    rows = group_evaluations([_evaluate(written=50.0), _fit(written=300.0), _evaluate("eval_c/results", 120.0)])
    assert [(r["folder"], r["times_evaluated"]) for r in rows] == [(Path("run_a/results"), 3)]


@pytest.mark.parametrize("other", [
    _evaluate(ckpt="run_a/checkpoints/epoch000-step000007.ckpt"),  # another checkpoint of the run
    _evaluate(split="val"),  # another split
    _evaluate(mpjpe=82.25),  # other numbers
    _evaluate("eval_b/results/context_shuffled"),  # another person's context maps
    _evaluate(pve=math.nan),  # a metric measured once, missing the other time
])
def test_different_evaluations_stay_apart(other):
    rows = group_evaluations([_fit(), other])
    assert [r["times_evaluated"] for r in rows] == [1, 1]
    assert [r["folder"] for r in rows] == [Path("run_a/results"), other["folder"]]


def test_another_run_or_protocol_stays_apart():
    other_run, other_protocol = _fit("run_c/results"), _fit("run_a/sweep")
    other_run["payload"]["run_config"]["run_dir"] = "outputs/synthcrowd/run_c"
    other_protocol["payload"]["protocol"]["name"] = "detector_sweep_synthcrowd"
    assert [r["times_evaluated"] for r in group_evaluations([_fit(), other_run, other_protocol])] == [1, 1, 1]


def test_metrics_equal_to_six_digits_are_the_same_numbers():
    assert len(group_evaluations([_fit(mpjpe=81.25), _evaluate(mpjpe=81.25000001)])) == 1
    assert len(group_evaluations([_fit(mpjpe=81.25), _evaluate(mpjpe=81.2501)])) == 2
    assert len(group_evaluations([_fit(mpjpe=81.25), _evaluate(mpjpe=81.2501)], significant=4)) == 1


def test_checkpoint_names_and_labels_say_what_differs():
    assert evaluated_checkpoint(_fit()["payload"]) == FINAL_CHECKPOINT
    assert evaluated_checkpoint(_evaluate(ckpt="last")["payload"]) == FINAL_CHECKPOINT
    assert evaluated_checkpoint(_evaluate(ckpt="run_a/checkpoints/final.ckpt")["payload"]) == FINAL_CHECKPOINT
    other = _evaluate(ckpt="run_a/checkpoints/epoch=3.ckpt", split="val")
    assert evaluated_checkpoint(other["payload"]) == "epoch=3.ckpt"
    assert run_label(group_evaluations([other])[0]) == (
        "synthcrowd (context=predicted, CoNorm=[2]), checkpoint epoch=3.ckpt, val split")
    shuffled = group_evaluations([_evaluate("eval_b/results/context_shuffled")])[0]
    assert run_label(shuffled).endswith(", context maps shuffled")


def _write(folder: Path, run_config: dict, mpjpe: float, written: float) -> Path:
    """Results files as ``fit`` / ``evaluate`` write them, dated ``written``."""
    per_joint = {"joint_names": list(JOINT_SETS["lsp14"]), "mpjpe_mm": [float(j) for j in range(14)]}
    write_results(folder, {**METRICS, "mpjpe": mpjpe}, {"sample_index": [0, 1], "mpjpe_mm": [80.0, 82.5]},
                  PROTOCOL, run_config=run_config, per_joint=per_joint)
    os.utime(folder / "metrics.json", (written, written))
    return folder


def test_load_evaluations_reads_folders_and_groups_them(tmp_path):
    evaluated = {**TRAINED, "evaluated_with": {"ckpt_path": "last", "split": "test", "data": TRAINED["data"]}}
    _write(tmp_path / "run_a" / "results", TRAINED, 81.25, 1_000.0)
    _write(tmp_path / "eval_b" / "results", evaluated, 81.25, 2_000.0)
    _write(tmp_path / "eval_c" / "results", evaluated, 90.0, 3_000.0)
    runs = load_evaluations(f"{tmp_path}/*/results, {tmp_path}/missing")
    assert [(r["folder"].parent.name, r["times_evaluated"]) for r in runs] == [("eval_b", 2), ("eval_c", 1)]
    assert runs[0]["label"] == "synthcrowd (context=predicted, CoNorm=[2]), evaluated 2 times"
    assert runs[1]["label"] == "synthcrowd (context=predicted, CoNorm=[2])"
    assert list(runs[1]["samples"]["mpjpe_mm"]) == [80.0, 82.5]
    assert load_evaluations(f"{tmp_path}/nothing*") == []


def test_a_pattern_or_folder_left_out_is_said(tmp_path, caplog):
    _write(tmp_path / "run_a" / "results", TRAINED, 81.25, 1_000.0)
    (tmp_path / "run_b" / "results").mkdir(parents=True)  # an evaluation stopped before it wrote metrics.json
    with caplog.at_level("WARNING", logger="ochmr_lit.eval.records"):
        runs = load_evaluations(f"{tmp_path}/*/results, {tmp_path}/run_z/results")
    assert [r["folder"].parent.name for r in runs] == ["run_a"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path}/run_b/results: no metrics.json (an evaluation that did not finish?); left out",
        f"'{tmp_path}/run_z/results' matches no results folder (one holding metrics.json)"]


def test_shared_labels_end_with_their_folder(tmp_path):
    other_run = {**TRAINED, "run_dir": "outputs/synthcrowd/run_c"}
    _write(tmp_path / "run_a" / "results", TRAINED, 81.25, 1_000.0)
    _write(tmp_path / "run_c" / "results", other_run, 81.25, 2_000.0)
    labels = [r["label"] for r in load_evaluations(f"{tmp_path}/*/results")]
    name = "synthcrowd (context=predicted, CoNorm=[2])"
    assert labels == [f"{name} [{tmp_path.name}/run_a/results]", f"{name} [{tmp_path.name}/run_c/results]"]


#: Every word a full joint name is made of (no abbreviation), and whose definition a joint follows.
FULL_WORDS = {"left", "right", "ankle", "knee", "hip", "wrist", "elbow", "shoulder", "neck", "head", "top", "of",
              "pelvis", "spine", "jaw", "thorax", "nose", "eye", "ear", "foot", "hand", "collar", "big", "small",
              "toe", "heel", "mid-hip", "1", "2", "3", "(Human3.6M)", "(SMPL)", "(OpenPose)", "(OCHuman)"}


@pytest.mark.parametrize("joint_set", sorted(JOINT_SETS))
def test_every_evaluated_joint_has_a_full_name(joint_set):
    names = joint_display_names(JOINT_SETS[joint_set])
    assert len(names) == len(set(names)) == len(JOINT_SETS[joint_set])
    for joint, name in zip(JOINT_SETS[joint_set], names, strict=True):
        assert "_" not in name and set(name.split()) <= FULL_WORDS, (joint, name)


def test_every_registry_joint_has_a_full_name():
    for convention in available_conventions():
        for joint in get_convention(convention).joint_names:
            assert set(joint_display_name(joint).split()) <= FULL_WORDS, (convention, joint)


def test_joint_names_read_as_words():
    assert joint_display_names(JOINT_SETS["lsp14"]) == [
        "right ankle", "right knee", "right hip", "left hip", "left knee", "left ankle", "right wrist",
        "right elbow", "right shoulder", "left shoulder", "left elbow", "left wrist", "neck", "head (Human3.6M)"]
    assert [joint_display_name(j) for j in ("head_top", "spine1", "neck_openpose", "pelvis_smpl", "mid_hip")] == [
        "top of head", "spine 1", "neck (OpenPose)", "pelvis (SMPL)", "mid-hip"]


def test_per_joint_errors_align_joint_sets_and_tables_use_full_names():
    a, b, none = _fit(), _fit("run_c/results"), _fit("run_d/results")
    a["payload"]["per_joint"] = {"joint_names": ["right_ankle", "head_h36m"], "mpjpe_mm": [100.0, 40.0]}
    b["payload"]["per_joint"] = {"joint_names": ["head_h36m", "pelvis"], "mpjpe_mm": [50.0, 10.0]}
    a["label"], b["label"], none["label"] = "A", "B", "none"
    joints, series = per_joint_errors([a, b, none])
    assert joints == ["right_ankle", "head_h36m", "pelvis"]
    assert [label for label, _ in series] == ["A", "B"]
    assert series[0][1][:2].tolist() == [100.0, 40.0] and math.isnan(series[0][1][2])
    assert math.isnan(series[1][1][0]) and series[1][1][1:].tolist() == [50.0, 10.0]
    assert per_joint_table([a, b, none]).splitlines() == [
        "| joint | A | B |", "|---|---|---|", "| right ankle | 100.0 | - |", "| head (Human3.6M) | 40.0 | 50.0 |",
        "| pelvis | - | 10.0 |"]
